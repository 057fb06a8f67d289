"""Cross-site models: multilevel ANCOVA, moderators and sensitivity analyses (docs/design.md, 'Analyses').

Statistics only (DataFrames and plain arguments in, DataFrames out). With at least 3 sites the
models have a random intercept for site, fitted by REML with t intervals on Satterthwaite df
(:mod:`linkeval.stats.lmm`, equal to R's ``lmerTest``); with one or two sites, OLS with fixed
site effects (a random effect cannot be estimated from one or two sites). A fit whose site
variance is estimated as zero is flagged (``singular``, ``note``), and a degenerate fit is
refused with a ValueError, never returned as numbers. The fitted model is in
``result.attrs["fit"]``.

The outcome model is ANCOVA: ``followup ~ baseline + ...``. A term's coefficient is the
difference in follow-up score, and so in change, between groups of people with the same
baseline score. For a context (moderator) that coefficient is the context x time interaction
adjusted for baseline; :func:`moderator_analysis` gives the unadjusted interaction (the
change-score model, difference in mean change) beside it, and the difference that regression
to the mean alone would produce, because the two can disagree when the context predicts the
baseline score (Lord's paradox).

Site-level contexts (the same for everyone at a site) rest on the number of sites, not
people: read them from :func:`linkeval.stats.pooling.context_meta_regression`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import statsmodels.formula.api as smf
from scipy import stats

from linkeval.errors import did_you_mean
from linkeval.instruments import direction, score_names, score_spec
from linkeval.stats.describe import reason_flags
from linkeval.stats.imputation import chained_imputations, rubin_pool
from linkeval.stats.lmm import MixedFit, fit_random_intercept
from linkeval.stats.pairing import pair_keys
from linkeval.vocab import imd_quintile

__all__ = [
    "analysis_frame",
    "minimum_detectable",
    "moderator_analysis",
    "multilevel_model",
    "sensitivity_analyses",
]

DEFAULT_COVARIATES = ("age_band", "sex", "imd_quintile", "n_attended")
MIN_SITES_FOR_RANDOM_EFFECT = 3
COEF_COLUMNS = [
    "term",
    "estimate",
    "std_error",
    "df",
    "ci_low",
    "ci_high",
    "p_value",
    "model",
    "n",
    "n_sites",
    "singular",
    "note",
]
MODERATOR_COLUMNS = [
    "moderator",
    "level",
    "reference",
    "context_level",
    "estimate",
    "std_error",
    "df",
    "ci_low",
    "ci_high",
    "p_value",
    "mde",
    "n_level",
    "n_reference",
    "change_estimate",
    "change_std_error",
    "change_df",
    "change_ci_low",
    "change_ci_high",
    "change_p_value",
    "baseline_difference",
    "rtm_expected",
    "model",
    "n",
    "singular",
    "note",
]
SENSITIVITY_COLUMNS = [
    "analysis",
    "n",
    "n_observed",
    "mean_change",
    "std_error",
    "df",
    "ci_low",
    "ci_high",
    "p_value",
    "delta",
]
MIXED = "mixed model (random intercept for site, REML, Satterthwaite df)"
FIXED = "ols (fixed site effects)"
PAIR_COLUMNS = (
    "site",
    "person_id",
    "referral_id",
    "instrument",
    "baseline",
    "followup",
    "change",
    "in_window",
)
REFERRAL_COLUMNS = (
    "site",
    "referral_id",
    "age_band",
    "age_at_referral",
    "sex",
    "imd_decile",
    "n_attended",
)


def _require(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in frame]
    if missing:
        raise ValueError(f"{what} has no column {', '.join(map(repr, missing))}")


def _check_instrument(instrument: str) -> None:
    names = score_names()
    if instrument not in names:
        raise ValueError(
            f"unknown instrument score {instrument!r}"
            f"{did_you_mean(instrument, names)}; known: {', '.join(names)}"
        )


def analysis_frame(
    pairs: pd.DataFrame,
    referrals: pd.DataFrame,
    instrument: str,
    referral_reasons: pd.DataFrame | None = None,
    window_only: bool = True,
    complete_only: bool = True,
    lonely_threshold: float = 6,
) -> pd.DataFrame:
    """One row per person for one score, with the context variables models use.

    Parameters
    ----------
    pairs : DataFrame
        Paired scores (``linkeval.stats.pairing.pair_scores``): ``site``, ``person_id``,
        ``referral_id``, ``instrument``, ``baseline``, ``followup``, ``change``,
        ``in_window``.
    referrals : DataFrame
        Clean referrals: ``site``, ``referral_id``, ``age_band``, ``age_at_referral``,
        ``sex``, ``imd_decile``, ``n_attended``.
    instrument : str
        The score, e.g. ``"swemwbs"`` or ``"ons4_anxious"``.
    referral_reasons : DataFrame, optional
        ``site``, ``referral_id``, ``reason``: adds one ``reason_<code>`` flag per reason.
    window_only : bool, default True
        Treat follow-ups outside the follow-up window as missing.
    complete_only : bool, default True
        Keep only people with a (kept) follow-up.
    lonely_threshold : float, default 6
        UCLA-3 total at or above which a person counts as lonely (ONS: 6).

    Returns
    -------
    DataFrame
        Columns: ``site``, ``person_id``, ``referral_id``, ``instrument``, ``baseline``,
        ``followup``, ``change``, the other pair columns, ``age_band``, ``age``, ``sex``
        (female / male / other or unknown), ``imd_decile``, ``imd_quintile``,
        ``most_deprived`` (IMD decile 1), ``n_attended``, ``ucla3_baseline``,
        ``lonely_baseline`` (UCLA-3 at baseline >= ``lonely_threshold``, where measured), and
        ``reason_<code>`` flags when reasons are given.

    Raises
    ------
    ValueError
        For an unknown score name (with the closest known one) or a missing column.

    Notes
    -----
    imd_quintile = (imd_decile + 1) // 2.

    References
    ----------
    Hughes ME, et al. (2004) A short scale for measuring loneliness in large surveys. Res
    Aging 26:655-672 (UCLA-3; ONS's cut-off of 6).

    Examples
    --------
    >>> pairs = pd.DataFrame({"site": "A", "person_id": ["p1", "p2"], "referral_id": ["r1", "r2"],
    ...     "instrument": "swemwbs", "baseline": [20.0, 18.0], "followup": [23.0, np.nan],
    ...     "change": [3.0, np.nan], "in_window": [True, False]})
    >>> referrals = pd.DataFrame({"site": "A", "referral_id": ["r1", "r2"],
    ...     "age_band": ["65+", "25-44"], "age_at_referral": [70, 30], "sex": ["female", "x"],
    ...     "imd_decile": [1, 6], "n_attended": [5, 2]})
    >>> analysis_frame(pairs, referrals, "swemwbs")[["person_id", "change", "most_deprived"]]
      person_id  change  most_deprived
    0        p1     3.0           True
    """
    _check_instrument(instrument)
    _require(pairs, PAIR_COLUMNS, "pairs")
    _require(referrals, REFERRAL_COLUMNS, "referrals")
    p = pairs[pairs["instrument"] == instrument].copy()
    if window_only:
        p.loc[~p["in_window"].astype(bool), ["followup", "change"]] = np.nan
    if complete_only:
        p = p[p["followup"].notna()]
    frame = p.merge(referrals[list(REFERRAL_COLUMNS)], on=["site", "referral_id"], how="left")
    frame = frame.rename(columns={"age_at_referral": "age"})
    frame["sex"] = frame["sex"].where(frame["sex"].isin(["female", "male"]), "other or unknown")
    frame["imd_decile"] = frame["imd_decile"].astype("Float64")
    frame["imd_quintile"] = imd_quintile(frame["imd_decile"])
    frame["most_deprived"] = (frame["imd_decile"] == 1).astype("boolean")
    keys = pair_keys(pairs)
    ucla = pairs[pairs["instrument"] == "ucla3"][[*keys, "baseline"]]
    ucla = ucla.rename(columns={"baseline": "ucla3_baseline"})
    frame = frame.merge(ucla, on=keys, how="left")
    frame["lonely_baseline"] = (frame["ucla3_baseline"] >= lonely_threshold).astype("boolean")
    if referral_reasons is not None:
        _require(referral_reasons, ("site", "referral_id", "reason"), "referral_reasons")
        flags = reason_flags(referral_reasons).add_prefix("reason_")
        frame = frame.merge(flags, left_on=["site", "referral_id"], right_index=True, how="left")
        for col in flags.columns:
            frame[col] = frame[col].astype("boolean").fillna(False)
    for col in ("baseline", "followup", "change", "age", "imd_quintile", "n_attended"):
        frame[col] = frame[col].astype(float)
    return frame


def _term(column: str, frame: pd.DataFrame) -> str:
    values = frame[column].dropna()
    if values.dtype == bool or str(values.dtype) == "boolean":
        return f"C({column})"
    if pd.api.types.is_numeric_dtype(values):
        return column
    return f"C({column})"


def _fit(formula: str, data: pd.DataFrame):
    """Random site intercept (REML, Satterthwaite) with >= 3 sites, else OLS, fixed sites."""
    n_sites = data["site"].nunique()
    if n_sites >= MIN_SITES_FOR_RANDOM_EFFECT:
        return fit_random_intercept(formula, data, group="site"), MIXED
    formula = formula + (" + C(site)" if n_sites > 1 else "")
    fit = smf.ols(formula, data).fit()
    if not np.isfinite(fit.bse).all() or fit.df_resid < 1:
        raise ValueError(f"too few people for {formula!r} ({len(data)} rows)")
    return fit, FIXED


def _coefficients(fit, model: str, data: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    if isinstance(fit, MixedFit):
        table = fit.summary(confidence)
        singular, note = fit.singular, fit.note
    else:
        ci = fit.conf_int(alpha=1 - confidence)
        table = pd.DataFrame(
            {
                "term": fit.params.index,
                "estimate": fit.params.to_numpy(),
                "std_error": fit.bse.to_numpy(),
                "df": float(fit.df_resid),
                "p_value": fit.pvalues.to_numpy(),
                "ci_low": ci[0].to_numpy(),
                "ci_high": ci[1].to_numpy(),
            }
        )
        singular, note = False, ""
    table = table.assign(
        model=model, n=len(data), n_sites=data["site"].nunique(), singular=singular, note=note
    )
    if isinstance(fit, MixedFit):
        table = pd.concat(
            [
                table,
                pd.DataFrame(
                    [
                        {
                            "term": "site variance (random intercept)",
                            "estimate": fit.group_variance,
                            "model": model,
                            "n": len(data),
                            "n_sites": fit.n_groups,
                            "singular": singular,
                            "note": note,
                        }
                    ]
                ),
            ],
            ignore_index=True,
        )
    return table[COEF_COLUMNS]


def _as_list(covariates) -> list[str]:
    if covariates is None:
        return []
    if isinstance(covariates, str):
        return [covariates]
    return list(covariates)


def multilevel_model(
    frame: pd.DataFrame, covariates=DEFAULT_COVARIATES, confidence: float = 0.95
) -> pd.DataFrame:
    """Follow-up ~ baseline + covariates, random intercept for site (fixed with < 3 sites).

    Parameters
    ----------
    frame : DataFrame
        From :func:`analysis_frame` (``site``, ``baseline``, ``followup`` and the
        covariates).
    covariates : str or sequence of str, default ("age_band", "sex", "imd_quintile", "n_attended")
        Columns added to the model: yes/no and text columns as categories (first level in
        sorted order as reference), numbers as linear terms. A single name may be given as
        a string.
    confidence : float, default 0.95

    Returns
    -------
    DataFrame
        One row per fixed effect plus, with a random intercept, a row
        ``"site variance (random intercept)"``. Columns: ``term``, ``estimate``,
        ``std_error``, ``df`` (Satterthwaite; residual df for OLS), ``ci_low``, ``ci_high``
        (t-based), ``p_value``, ``model``, ``n`` (people used: rows with a missing covariate
        are dropped), ``n_sites``, ``singular`` (site variance estimated as zero) and
        ``note`` (the same in words). ``result.attrs["fit"]`` is the fitted model
        (:class:`linkeval.stats.lmm.MixedFit` or a statsmodels OLS result).

    Raises
    ------
    ValueError
        Naming a covariate that is not a column (with the closest one), one that takes a
        single value in the rows used, or a degenerate fit.

    Notes
    -----
    followup_ij = b0 + b1 baseline_ij + x_ij' b + u_j + e_ij, u_j ~ N(0, s_u^2),
    e_ij ~ N(0, s^2), fitted by REML; t intervals on Satterthwaite df (see
    :func:`linkeval.stats.lmm.fit_random_intercept`).

    References
    ----------
    Vickers AJ, Altman DG (2001) Analysing controlled trials with baseline and follow up
    measurements. BMJ 323:1123-1124. Kuznetsova A, et al. (2017) lmerTest. J Stat Softw
    82(13).

    Examples
    --------
    >>> frame = pd.DataFrame({"site": list("AAAABBBBCCCC"),
    ...     "baseline": [20., 21, 19, 22, 18, 20, 19, 21, 23, 20, 22, 21],
    ...     "followup": [22., 24, 20, 23, 21, 21, 23, 22, 23, 24, 23, 25],
    ...     "n_attended": [3., 5, 2, 4, 6, 3, 7, 2, 4, 5, 3, 6]})
    >>> table = multilevel_model(frame, covariates="n_attended")
    >>> table[["term", "estimate", "df"]].round(3)
                                   term  estimate   df
    0                         Intercept     5.783  9.0
    1                          baseline     0.692  9.0
    2                        n_attended     0.629  9.0
    3  site variance (random intercept)     0.000  NaN
    >>> bool(table["singular"].iloc[0])
    True
    """
    covariates = _as_list(covariates)
    _require(frame, ("site", "baseline", "followup"), "frame")
    for c in covariates:
        if c not in frame:
            raise ValueError(f"unknown covariate {c!r}{did_you_mean(c, frame.columns)}")
    data = frame.dropna(subset=["followup", "baseline", *covariates]).copy()
    for c in covariates:
        if data[c].nunique() < 2:
            raise ValueError(f"covariate {c!r} takes one value in the {len(data)} rows used")
    formula = "followup ~ baseline" + "".join(f" + {_term(c, data)}" for c in covariates)
    fit, model = _fit(formula, data)
    out = _coefficients(fit, model, data, confidence)
    out.attrs["fit"] = fit
    return out


def minimum_detectable(std_error, df=np.inf, confidence: float = 0.95, power: float = 0.8):
    """The smallest true difference a two-sided test would detect with the given power.

    Parameters
    ----------
    std_error : float or array-like
        Standard error of the estimate.
    df : float or array-like, default inf
        Degrees of freedom of its t distribution (inf: normal).
    confidence : float, default 0.95
        1 - the two-sided significance level.
    power : float, default 0.8

    Returns
    -------
    float or ndarray
        (t(1 - alpha/2, df) + t(power, df)) x SE.

    Notes
    -----
    The usual approximation ignoring the (tiny) chance of significance in the wrong
    direction; with df = inf and 80% power it is 2.80 SE.

    References
    ----------
    Bloom HS (1995) Minimum detectable effects: a simple way to report the statistical power
    of experimental designs. Eval Rev 19:547-556.

    Examples
    --------
    >>> round(float(minimum_detectable(1.0)), 3), round(float(minimum_detectable(1.0, df=4)), 3)
    (2.802, 3.717)
    """
    alpha = 1 - confidence
    return (stats.t.ppf(1 - alpha / 2, df) + stats.t.ppf(power, df)) * np.asarray(std_error)


def _site_level(data: pd.DataFrame, column: str) -> bool:
    return bool((data.groupby("site")[column].nunique(dropna=True) <= 1).all())


def _level_rows(fit, model, data, moderator, prefix, ref, confidence) -> list[dict]:
    """One dict per compared level: estimate, SE, df, CI, p from a fitted model."""
    coefs = _coefficients(fit, model, data, confidence).set_index("term")
    rows = []
    if prefix is None:
        c = coefs.loc[moderator]
        rows.append(
            {
                "level": "per unit",
                **c[["estimate", "std_error", "df", "ci_low", "ci_high", "p_value"]].to_dict(),
            }
        )
    else:
        for term, c in coefs.iterrows():
            if str(term).startswith(prefix):
                rows.append(
                    {
                        "level": str(term)[len(prefix) : -1],
                        **c[
                            ["estimate", "std_error", "df", "ci_low", "ci_high", "p_value"]
                        ].to_dict(),
                    }
                )
    return rows


def moderator_analysis(
    frame: pd.DataFrame,
    moderator: str,
    confidence: float = 0.95,
    reference=None,
    reliability: float | None = None,
    power: float = 0.8,
) -> pd.DataFrame:
    """Does change differ by a context? The context x time interaction, two ways.

    Parameters
    ----------
    frame : DataFrame
        From :func:`analysis_frame`: ``site``, ``baseline``, ``followup`` and ``moderator``.
    moderator : str
        A column: yes/no or text (each level compared with ``reference``), or a number (the
        difference per unit). ``"site"`` compares sites (fixed effects).
    confidence : float, default 0.95
    reference : optional
        The comparison level (default: the first in sorted order, so False for yes/no).
    reliability : float, optional
        The score's reliability (e.g. Cronbach's alpha or test-retest r), for
        ``rtm_expected``.
    power : float, default 0.8
        Power for ``mde``.

    Returns
    -------
    DataFrame
        One row per compared level. Columns: ``moderator``, ``level``, ``reference``;
        ``context_level`` ("person", or "site" when the moderator is the same for everyone
        at each site: then read :func:`linkeval.stats.pooling.context_meta_regression`);
        ``estimate`` (baseline-adjusted difference in change, level minus reference: the
        ANCOVA coefficient), ``std_error``, ``df`` (Satterthwaite), ``ci_low``, ``ci_high``,
        ``p_value``; ``mde`` (smallest difference detectable with ``power``, from the SE);
        ``n_level``, ``n_reference``; ``change_estimate``, ``change_std_error``,
        ``change_df``, ``change_ci_low``, ``change_ci_high``, ``change_p_value`` (the
        change-score model: unadjusted difference in mean change); ``baseline_difference``
        (mean baseline, level minus reference; per unit for a number);
        ``rtm_expected`` (difference in change that regression to the mean alone would give
        if the groups had been picked by their measured baseline, -(1 - reliability) x
        baseline_difference; NaN without a reliability); ``model``; ``n``; ``singular``;
        ``note``. ``result.attrs["fit"]`` and ``result.attrs["change_fit"]`` hold the two
        fitted models.

    Raises
    ------
    ValueError
        When ``moderator`` is not a column (the closest is named), takes one value, the
        reference is not one of its levels, or the fit is degenerate.

    Notes
    -----
    ANCOVA: followup = b0 + b1 baseline + g x + u_site + e; g is the context x time
    interaction among people with the same baseline. Change score: (followup - baseline) =
    c0 + d x + u_site + e; d is the interaction without adjustment (equal to the time x
    context term of a long-format model with a random intercept per person). When the
    context predicts the baseline, g and d differ (Lord's paradox): with an unreliable
    baseline, g carries part of regression to the mean into the estimate, and d carries it
    when groups were selected by the measured baseline. ``rtm_expected`` is the size of
    the latter; if ``change_estimate`` is near it, regression to the mean may explain it.
    MDE = (t(1 - alpha/2, df) + t(power, df)) SE.

    References
    ----------
    Lord FM (1967) A paradox in the interpretation of group comparisons. Psychol Bull
    68:304-305. Barnett AG, van der Pols JC, Dobson AJ (2005) Regression to the mean: what it
    is and how to deal with it. Int J Epidemiol 34:215-220. Van Breukelen GJP (2006) ANCOVA
    versus change from baseline had more power in randomized studies and more bias in
    nonrandomized studies. J Clin Epidemiol 59:920-925.

    Examples
    --------
    >>> frame = pd.DataFrame({"site": list("AAAABBBBCCCC"),
    ...     "baseline": [20., 21, 19, 22, 18, 20, 19, 21, 23, 20, 22, 21],
    ...     "followup": [22., 24, 20, 23, 21, 21, 23, 22, 23, 24, 23, 25],
    ...     "lonely": [True, False] * 6})
    >>> out = moderator_analysis(frame, "lonely", reliability=0.8)
    >>> out[["level", "reference", "estimate", "change_estimate", "rtm_expected"]].round(3)
      level reference  estimate  change_estimate  rtm_expected
    0  True     False    -0.951             -0.5         0.133
    """
    _require(frame, ("site", "baseline", "followup"), "frame")
    if moderator not in frame:
        raise ValueError(f"unknown moderator {moderator!r}{did_you_mean(moderator, frame.columns)}")
    data = frame.dropna(subset=["followup", "baseline", moderator]).copy()
    data["change"] = data["followup"] - data["baseline"]
    if data[moderator].nunique() < 2:
        raise ValueError(
            f"moderator {moderator!r} takes one value in the {len(data)} rows with "
            "both scores: there is nothing to compare"
        )
    numeric = _term(moderator, data) == moderator
    context_level = "site" if moderator == "site" or _site_level(data, moderator) else "person"
    if moderator == "site":
        levels = sorted(data["site"].astype(str).unique())
        ref = str(reference) if reference is not None else levels[0]
        if ref not in levels:
            raise ValueError(f"reference {ref!r} is not a site of these data: {levels}")
        term = f"C(site, Treatment({ref!r}))"
        fit = smf.ols(f"followup ~ baseline + {term}", data).fit()
        change_fit = smf.ols(f"change ~ {term}", data).fit()
        model = change_model = "ols (sites as fixed effects)"
        prefix = f"{term}[T."
    elif numeric:
        fit, model = _fit(f"followup ~ baseline + {moderator}", data)
        change_fit, change_model = _fit(f"change ~ {moderator}", data)
        prefix, ref = None, None
    else:
        data[moderator] = data[moderator].astype(str)
        levels = sorted(data[moderator].unique())
        ref = str(reference) if reference is not None else levels[0]
        if ref not in levels:
            raise ValueError(f"reference {ref!r} is not a level of {moderator!r}: {levels}")
        term = f"C({moderator}, Treatment({ref!r}))"
        fit, model = _fit(f"followup ~ baseline + {term}", data)
        change_fit, change_model = _fit(f"change ~ {term}", data)
        prefix = f"{term}[T."
    ancova = _level_rows(fit, model, data, moderator, prefix, ref, confidence)
    change = {
        r["level"]: r
        for r in _level_rows(change_fit, change_model, data, moderator, prefix, ref, confidence)
    }
    counts = data[moderator].astype(str).value_counts()
    notes = []
    if isinstance(fit, MixedFit) and fit.note:
        notes.append(fit.note)
    if context_level == "site" and moderator != "site":
        notes.append(
            f"{moderator!r} is the same for everyone at a site: its effect rests on "
            f"{data['site'].nunique()} sites; see context_meta_regression"
        )
    rows = []
    for r in ancova:
        level = r["level"]
        c = change.get(level, {})
        if prefix is None:
            slope = np.polyfit(data[moderator].astype(float), data["baseline"], 1)[0]
            base_diff = float(slope)
            n_level, n_ref = len(data), np.nan
        else:
            is_level = data[moderator].astype(str) == level
            is_ref = data[moderator].astype(str) == str(ref)
            base_diff = float(
                data.loc[is_level, "baseline"].mean() - data.loc[is_ref, "baseline"].mean()
            )
            n_level, n_ref = int(counts.get(level, 0)), int(counts.get(str(ref), 0))
        rtm = -(1 - reliability) * base_diff if reliability is not None else np.nan
        rows.append(
            {
                "moderator": moderator,
                "level": level,
                "reference": "" if ref is None else str(ref),
                "context_level": context_level,
                **{
                    k: r[k] for k in ("estimate", "std_error", "df", "ci_low", "ci_high", "p_value")
                },
                "mde": float(minimum_detectable(r["std_error"], r["df"], confidence, power)),
                "n_level": n_level,
                "n_reference": n_ref,
                **{
                    f"change_{k}": c.get(k, np.nan)
                    for k in ("estimate", "std_error", "df", "ci_low", "ci_high", "p_value")
                },
                "baseline_difference": base_diff,
                "rtm_expected": rtm,
                "model": model,
                "n": len(data),
                "singular": bool(getattr(fit, "singular", False)),
                "note": "; ".join(notes),
            }
        )
    out = pd.DataFrame(rows, columns=MODERATOR_COLUMNS)
    out.attrs["fit"], out.attrs["change_fit"] = fit, change_fit
    return out


def _mean_and_var(values: np.ndarray) -> tuple[float, float]:
    n = len(values)
    return float(values.mean()), float(values.var(ddof=1) / n)


def sensitivity_analyses(
    pairs: pd.DataFrame,
    referrals: pd.DataFrame,
    instrument: str,
    n_imputations: int = 20,
    seed: int = 0,
    confidence: float = 0.95,
    n_iterations: int = 10,
    deltas: Sequence[float] | None = None,
    lonely_threshold: float = 6,
) -> pd.DataFrame:
    """Mean change under different assumptions about who was followed up, side by side.

    Parameters
    ----------
    pairs, referrals : DataFrame
        As for :func:`analysis_frame`.
    instrument : str
        The score.
    n_imputations : int, default 20
        Imputations (each from its own chain).
    seed : int, default 0
        Seeds the imputations: the same seed gives the same table.
    confidence : float, default 0.95
    n_iterations : int, default 10
        Iterations of each chain.
    deltas : sequence of float, optional
        Shifts (score points, the score's own scale) added to every imputed change for the
        not-at-random analyses. Default: half and one MID (or, without an MID, half and one
        SD of the observed change) in the direction of less improvement.
    lonely_threshold : float, default 6
        Passed to :func:`analysis_frame`.

    Returns
    -------
    DataFrame
        Rows: "complete cases, in window" (the primary analysis); "complete cases, any time";
        "multiple imputation (m imputations, missing at random)"; one "not at random: ..."
        row per delta; "tipping point: ..." (the delta at which the interval first reaches
        no change; only when the missing-at-random interval excludes it). Columns:
        ``analysis``, ``n`` (people in the analysis), ``n_observed`` (with an observed
        follow-up), ``mean_change``, ``std_error``, ``df``, ``ci_low``, ``ci_high``,
        ``p_value``, ``delta`` (NaN for the first three rows). ``result.attrs`` has
        ``tipping_point`` (float, NaN when none) and ``seed``.

    Raises
    ------
    ValueError
        For an unknown score or a missing column.

    Notes
    -----
    Imputation model (:func:`linkeval.stats.imputation.chained_imputations`): change, age,
    IMD decile and attended contacts, each incomplete one from a Bayesian linear regression
    on the others plus the baseline score, sex (female) and site indicators. Follow-ups
    outside the window count as missing. Each completed data set gives the mean change of
    everyone with a baseline and its variance s^2/n (n - 1 df); these are pooled by Rubin's
    rules with Barnard-Rubin df (:func:`linkeval.stats.imputation.rubin_pool`).
    Delta adjustment: the imputed changes are shifted by delta (people without a follow-up
    assumed to have changed delta points differently from similar people with one), and
    pooled again; the tipping point solves "interval bound = 0" for delta.

    References
    ----------
    Rubin DB (1987) Multiple imputation for nonresponse in surveys. Barnard J, Rubin DB
    (1999) Biometrika 86:948-955. van Buuren S (2018) Flexible imputation of missing data,
    section 3.9 (delta adjustment). Carpenter JR, Kenward MG (2013) Multiple imputation and
    its application, chapter 10. White IR, Royston P, Wood AM (2011) Stat Med 30:377-399.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> n = 60
    >>> base = rng.normal(20, 4, n).round()
    >>> follow = (base + rng.normal(2, 3, n)).round()
    >>> follow[rng.random(n) < 0.3] = np.nan
    >>> pairs = pd.DataFrame({"site": np.repeat(list("ABC"), 20), "person_id": range(n),
    ...     "referral_id": range(n), "instrument": "swemwbs", "baseline": base,
    ...     "followup": follow, "change": follow - base, "in_window": True})
    >>> referrals = pd.DataFrame({"site": pairs["site"], "referral_id": range(n),
    ...     "age_band": "45-64", "age_at_referral": rng.integers(20, 80, n), "sex": "female",
    ...     "imd_decile": rng.integers(1, 11, n), "n_attended": rng.integers(1, 8, n)})
    >>> a = sensitivity_analyses(pairs, referrals, "swemwbs", n_imputations=5, seed=3)
    >>> b = sensitivity_analyses(pairs, referrals, "swemwbs", n_imputations=5, seed=3)
    >>> a.equals(b), [label.split(":")[0].split(" (")[0] for label in a["analysis"]]
    (True, ['complete cases, in window', 'complete cases, any time', 'multiple imputation', 'not at random', 'not at random', 'tipping point'])
    """
    rows = []
    for label, window in (("complete cases, in window", True), ("complete cases, any time", False)):
        f = analysis_frame(
            pairs, referrals, instrument, window_only=window, lonely_threshold=lonely_threshold
        )
        diff = f["change"].dropna().to_numpy(dtype=float)
        row = dict.fromkeys(SENSITIVITY_COLUMNS, np.nan)
        row.update(
            analysis=label,
            n=len(diff),
            n_observed=len(diff),
            mean_change=diff.mean() if len(diff) else np.nan,
        )
        if len(diff) >= 2 and np.ptp(diff) > 0:
            mean, var = _mean_and_var(diff)
            se, df = np.sqrt(var), len(diff) - 1
            crit = stats.t.ppf(1 - (1 - confidence) / 2, df)
            row.update(
                std_error=se,
                df=df,
                ci_low=mean - crit * se,
                ci_high=mean + crit * se,
                p_value=float(2 * stats.t.sf(abs(mean / se), df)),
            )
        rows.append(row)
    everyone = analysis_frame(
        pairs,
        referrals,
        instrument,
        window_only=True,
        complete_only=False,
        lonely_threshold=lonely_threshold,
    )
    everyone = everyone[everyone["baseline"].notna()].reset_index(drop=True)
    observed_mask = everyone["change"].notna().to_numpy()
    observed = int(observed_mask.sum())
    tipping = np.nan
    if observed >= 10 and not observed_mask.all():
        incomplete = pd.DataFrame(
            {
                "change": everyone["change"],
                "age": everyone["age"].astype(float),
                "imd_decile": everyone["imd_decile"].astype(float),
                "n_attended": everyone["n_attended"].astype(float),
            }
        )
        sites = pd.get_dummies(
            everyone["site"].astype(str), prefix="site", drop_first=True, dtype=float
        )
        predictors = pd.concat(
            [
                everyone[["baseline"]].astype(float),
                (everyone["sex"] == "female").astype(float).rename("female"),
                sites,
            ],
            axis=1,
        )
        completed = chained_imputations(
            incomplete, predictors, n_imputations, n_iterations, seed, keep=["change"]
        )
        changes = np.column_stack([c["change"].to_numpy() for c in completed])
        n = len(everyone)
        missing = ~observed_mask

        def pooled(delta: float) -> dict:
            shifted = changes + np.where(missing, delta, 0.0)[:, None]
            q = shifted.mean(axis=0)
            u = shifted.var(axis=0, ddof=1) / n
            return rubin_pool(q, u, n - 1, confidence)

        mar = pooled(0.0)
        base_row = {"n": n, "n_observed": observed}
        rows.append(
            {
                **base_row,
                "analysis": f"multiple imputation ({n_imputations} imputations, missing at random)",
                **_pooled_cols(mar),
                "delta": np.nan,
            }
        )
        sign = direction(instrument)
        if deltas is None:
            spec = score_spec(instrument)
            unit = spec.mid if spec.mid else float(np.std(changes[observed_mask, 0], ddof=1))
            deltas = [-sign * 0.5 * unit, -sign * unit]
        for d in deltas:
            worse = "less" if d * sign < 0 else "more"
            rows.append(
                {
                    **base_row,
                    "analysis": f"not at random: missing follow-ups {d:+.3g} "
                    f"points ({worse} improvement than similar people followed up)",
                    **_pooled_cols(pooled(float(d))),
                    "delta": float(d),
                }
            )
        tipping = _tipping_point(pooled, mar, missing.mean())
        if np.isfinite(tipping):
            rows.append(
                {
                    **base_row,
                    "analysis": f"tipping point: missing follow-ups "
                    f"{tipping:+.3g} points make the interval reach no change",
                    **_pooled_cols(pooled(tipping)),
                    "delta": tipping,
                }
            )
    out = pd.DataFrame(rows, columns=SENSITIVITY_COLUMNS)
    out.attrs["tipping_point"] = tipping
    out.attrs["seed"] = seed
    return out


def _pooled_cols(r: dict) -> dict:
    return {
        "mean_change": r["estimate"],
        "std_error": r["std_error"],
        "df": r["df"],
        "ci_low": r["ci_low"],
        "ci_high": r["ci_high"],
        "p_value": r["p_value"],
    }


def _tipping_point(pooled, mar: dict, frac_missing: float) -> float:
    """The shift of imputed changes at which the interval's near bound reaches 0."""
    from scipy.optimize import brentq

    if mar["ci_low"] > 0:
        bound, toward = "ci_low", -1.0
    elif mar["ci_high"] < 0:
        bound, toward = "ci_high", 1.0
    else:
        return np.nan
    span = 2 * abs(mar[bound]) / max(frac_missing, 1e-9) + 1.0
    f = lambda d: pooled(d)[bound]  # noqa: E731
    hi = toward * span
    for _ in range(30):
        if np.sign(f(hi)) != np.sign(f(0.0)):
            break
        hi *= 2
    else:  # pragma: no cover
        return np.nan
    lo, hi = sorted((0.0, hi))
    return float(brentq(f, lo, hi, xtol=1e-10))
