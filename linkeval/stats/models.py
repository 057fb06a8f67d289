"""Cross-site models: multilevel ANCOVA, moderators and sensitivity analyses (DESIGN section 8).

Statistics only (DataFrames in and out). Models are statsmodels' own: ``MixedLM`` with a random
intercept for site when there are at least 3 sites, else OLS with fixed site effects (a random
effect cannot be estimated from one or two sites); MICE for multiple imputation.

The outcome model is ANCOVA: ``followup ~ baseline + ...``. A term's coefficient is the
difference in follow-up score, and so in change, between groups of people with the same
baseline score.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import statsmodels.api as sm
import statsmodels.formula.api as smf
from statsmodels.imputation import mice

from linkeval.instruments import INSTRUMENTS, Settings, score_names

DEFAULT_COVARIATES = ("age_band", "sex", "imd_quintile", "n_attended")
MIN_SITES_FOR_RANDOM_EFFECT = 3
COEF_COLUMNS = ["term", "estimate", "std_error", "ci_low", "ci_high", "p_value", "model", "n",
                "n_sites"]


def analysis_frame(
    pairs: pd.DataFrame,
    referrals: pd.DataFrame,
    instrument: str,
    referral_reasons: pd.DataFrame | None = None,
    window_only: bool = True,
    complete_only: bool = True,
    ucla3_settings: Settings | None = None,
) -> pd.DataFrame:
    """One row per person for one score, with the context variables models use.

    Columns: site, person_id, referral_id, baseline, followup, change, age_band, age, sex
    (female / male / other or unknown), imd_decile, imd_quintile, most_deprived (IMD decile 1),
    n_attended, lonely_baseline (UCLA-3 at baseline at or above the lonely threshold, where
    measured), and ``reason_<code>`` flags when reasons are given. With ``complete_only``
    only pairs with a follow-up (inside the window when ``window_only``) are kept.
    """
    p = pairs[pairs["instrument"] == instrument].copy()
    if window_only:
        p.loc[~p["in_window"].astype(bool), ["followup", "change"]] = np.nan
    if complete_only:
        p = p[p["followup"].notna()]
    cols = ["site", "referral_id", "age_band", "age_at_referral", "sex", "imd_decile",
            "n_attended"]
    frame = p.merge(referrals[cols], on=["site", "referral_id"], how="left")
    frame = frame.rename(columns={"age_at_referral": "age"})
    frame["sex"] = frame["sex"].where(frame["sex"].isin(["female", "male"]), "other or unknown")
    frame["imd_decile"] = frame["imd_decile"].astype("Float64")
    frame["imd_quintile"] = (frame["imd_decile"] + 1) // 2
    frame["most_deprived"] = (frame["imd_decile"] == 1).astype("boolean")
    threshold = (ucla3_settings or Settings()).lonely_threshold
    ucla = pairs[pairs["instrument"] == "ucla3"][["site", "person_id", "baseline"]]
    ucla = ucla.rename(columns={"baseline": "ucla3_baseline"})
    frame = frame.merge(ucla, on=["site", "person_id"], how="left")
    frame["lonely_baseline"] = (frame["ucla3_baseline"] >= threshold).astype("boolean")
    if referral_reasons is not None:
        flags = (referral_reasons.assign(v=True)
                 .pivot_table(index=["site", "referral_id"], columns="reason", values="v",
                              aggfunc="max").add_prefix("reason_"))
        frame = frame.merge(flags, left_on=["site", "referral_id"], right_index=True,
                            how="left")
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
    """MixedLM with a site random intercept (>= 3 sites), else OLS with fixed site effects."""
    n_sites = data["site"].nunique()
    if n_sites >= MIN_SITES_FOR_RANDOM_EFFECT:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence chatter; checked below
            model = smf.mixedlm(formula, data, groups=data["site"])
            fit = model.fit(reml=True)
            if not fit.converged:
                fit = model.fit(reml=True, method=["lbfgs", "powell"])
        return fit, "mixedlm (random intercept for site)"
    formula = formula + (" + C(site)" if n_sites > 1 else "")
    return smf.ols(formula, data).fit(), "ols (fixed site effects)"


def _coefficients(fit, model: str, data: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    params = fit.fe_params if hasattr(fit, "fe_params") else fit.params
    names = list(params.index)
    ci = fit.conf_int(alpha=1 - confidence).loc[names]
    out = pd.DataFrame({
        "term": names, "estimate": params.to_numpy(), "std_error": fit.bse[names].to_numpy(),
        "ci_low": ci.iloc[:, 0].to_numpy(), "ci_high": ci.iloc[:, 1].to_numpy(),
        "p_value": fit.pvalues[names].to_numpy(), "model": model, "n": len(data),
        "n_sites": data["site"].nunique()})
    if hasattr(fit, "cov_re"):
        out = pd.concat([out, pd.DataFrame([{
            "term": "site variance (random intercept)", "estimate": float(fit.cov_re.iloc[0, 0]),
            "model": model, "n": len(data), "n_sites": data["site"].nunique()}])],
            ignore_index=True)
    return out[COEF_COLUMNS]


def multilevel_model(frame: pd.DataFrame, covariates=DEFAULT_COVARIATES,
                     confidence: float = 0.95) -> pd.DataFrame:
    """Follow-up ~ baseline + covariates, random intercept for site (fixed with < 3 sites).

    ``frame`` comes from :func:`analysis_frame`. Rows with a missing covariate are dropped
    (``n`` says how many were used). Returns the tidy fixed-effect table (``term``,
    ``estimate``, ``std_error``, ``ci_low``, ``ci_high``, ``p_value``, ``model``, ``n``,
    ``n_sites``) plus the site variance when it is a random effect.
    """
    covariates = [c for c in covariates if c in frame]
    data = frame.dropna(subset=["followup", "baseline", *covariates]).copy()
    formula = "followup ~ baseline" + "".join(f" + {_term(c, data)}" for c in covariates)
    fit, model = _fit(formula, data)
    return _coefficients(fit, model, data, confidence)


def moderator_analysis(frame: pd.DataFrame, moderator: str, confidence: float = 0.95,
                       reference=None) -> pd.DataFrame:
    """Does change differ by a context variable, among people with the same baseline?

    Model: ``followup ~ baseline + moderator`` with a site random intercept (fixed site
    effects with fewer than 3 sites; with ``moderator="site"`` the sites are the fixed
    effects). For a categorical or yes/no moderator each row compares one level with the
    ``reference`` level (default: the first in sorted order, so False for yes/no); for a
    number the row is the difference per unit.

    Columns: ``moderator``, ``level``, ``reference``, ``estimate`` (difference in change),
    ``std_error``, ``ci_low``, ``ci_high``, ``p_value``, ``n_level``, ``n_reference``,
    ``model``, ``n``.
    """
    data = frame.dropna(subset=["followup", "baseline", moderator]).copy()
    numeric = _term(moderator, data) == moderator
    if moderator == "site":
        levels = sorted(data["site"].unique())
        ref = reference if reference is not None else levels[0]
        fit = smf.ols(f"followup ~ baseline + C(site, Treatment({ref!r}))", data).fit()
        model, prefix = "ols (sites as fixed effects)", f"C(site, Treatment({ref!r}))[T."
    elif numeric:
        fit, model = _fit(f"followup ~ baseline + {moderator}", data)
        prefix, ref = None, None
    else:
        data[moderator] = data[moderator].astype(str)
        levels = sorted(data[moderator].unique())
        ref = str(reference) if reference is not None else levels[0]
        term = f"C({moderator}, Treatment({ref!r}))"
        fit, model = _fit(f"followup ~ baseline + {term}", data)
        prefix = f"{term}[T."
    coefs = _coefficients(fit, model, data, confidence).set_index("term")
    rows = []
    if prefix is None:
        c = coefs.loc[moderator]
        rows.append({"moderator": moderator, "level": "per unit", "reference": "",
                     **c[["estimate", "std_error", "ci_low", "ci_high", "p_value"]].to_dict(),
                     "n_level": len(data), "n_reference": np.nan})
    else:
        counts = data[moderator].astype(str).value_counts()
        for term, c in coefs.iterrows():
            if not str(term).startswith(prefix):
                continue
            level = str(term)[len(prefix):-1]
            rows.append({"moderator": moderator, "level": level, "reference": str(ref),
                         **c[["estimate", "std_error", "ci_low", "ci_high", "p_value"]].to_dict(),
                         "n_level": int(counts.get(level, 0)),
                         "n_reference": int(counts.get(str(ref), 0))})
    out = pd.DataFrame(rows)
    out["model"], out["n"] = model, len(data)
    return out


def sensitivity_analyses(pairs: pd.DataFrame, referrals: pd.DataFrame, instrument: str,
                         n_imputations: int = 20, seed: int = 0,
                         confidence: float = 0.95) -> pd.DataFrame:
    """Mean change three ways, side by side.

    - complete cases, follow-up in the window (the primary analysis);
    - complete cases, follow-up at any time after baseline;
    - multiple imputation of missing (or out-of-window) follow-up by chained equations
      (statsmodels MICE, ``n_imputations``, predictors: baseline, age, IMD decile, attended
      contacts, sex), pooled by Rubin's rules.

    Columns: ``analysis``, ``n`` (people in the analysis), ``n_observed`` (with an observed
    follow-up), ``mean_change``, ``ci_low``, ``ci_high``.
    """
    from scipy import stats

    rows = []
    for label, window in (("complete cases, in window", True),
                          ("complete cases, any time", False)):
        f = analysis_frame(pairs, referrals, instrument, window_only=window)
        diff = f["change"].dropna()
        n = len(diff)
        if n >= 2:
            ci = stats.t.interval(confidence, n - 1, loc=diff.mean(), scale=stats.sem(diff))
        else:
            ci = (np.nan, np.nan)
        rows.append({"analysis": label, "n": n, "n_observed": n, "mean_change": diff.mean(),
                     "ci_low": ci[0], "ci_high": ci[1]})
    everyone = analysis_frame(pairs, referrals, instrument, window_only=True,
                              complete_only=False)
    data = pd.DataFrame({
        "change": everyone["change"], "baseline": everyone["baseline"],
        "age": everyone["age"], "imd_decile": everyone["imd_decile"].astype(float),
        "n_attended": everyone["n_attended"],
        "female": (everyone["sex"] == "female").astype(float)}).reset_index(drop=True)
    observed = int(data["change"].notna().sum())
    if observed >= 10 and data["change"].isna().any():
        # Everyone has a baseline, so with the baseline centred on its mean the OLS intercept
        # is exactly the mean (imputed) change. (A one-term "change ~ 1" model is not pooled
        # by statsmodels' MICE.combine.)
        data["baseline_c"] = data["baseline"] - data["baseline"].mean()
        data = data.drop(columns="baseline")
        np.random.seed(seed)  # statsmodels' MICE draws from numpy's global generator
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = mice.MICE("change ~ baseline_c", sm.OLS, mice.MICEData(data)).fit(
                n_burnin=10, n_imputations=n_imputations)
        ci = result.conf_int(alpha=1 - confidence)
        rows.append({"analysis": f"multiple imputation ({n_imputations} imputations)",
                     "n": len(data), "n_observed": observed,
                     "mean_change": float(result.params[0]), "ci_low": float(ci[0][0]),
                     "ci_high": float(ci[0][1])})
    return pd.DataFrame(rows)


def score_direction(instrument: str) -> int:
    """+1 when a higher score is better, -1 when lower is better."""
    spec = INSTRUMENTS[score_names()[instrument]].score(instrument)
    return 1 if spec.higher_is_better else -1
