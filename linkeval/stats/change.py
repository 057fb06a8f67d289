"""Change from baseline to follow-up (docs/design.md, 'Analyses').

Statistics only: DataFrames in, tidy DataFrames out, no file I/O. Tests are SciPy's and
statsmodels' own where they agree with R (``scipy.stats.ttest_rel``, ``wilcoxon``,
``bootstrap``; ``statsmodels.stats.contingency_tables.mcnemar``); Bowker's test, R's V,
the Hodges-Lehmann estimate and the effect-size intervals are in
:mod:`linkeval.stats.effects`. Pooling across sites is :func:`linkeval.stats.pooling.pooled_change`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.contingency_tables import mcnemar

from linkeval.errors import did_you_mean
from linkeval.instruments import INSTRUMENTS, band_labels, cronbach_alpha, direction, score_names
from linkeval.stats.describe import group_keys
from linkeval.stats.effects import (
    bowker_test,
    cronbach_alpha_ci,
    dz_interval,
    hedges_g_av,
    hodges_lehmann,
    wilcoxon_v,
)
from linkeval.stats.pairing import reliable_change_index

__all__ = [
    "paired_change",
    "band_transitions",
    "reliable_change",
    "cronbach_alpha",
    "cronbach_alpha_ci",
]

BCA_MAX_N = 5_000  # pairs; above, the bootstrap interval is the percentile one

CHANGE_COLUMNS = [
    "instrument",
    "n",
    "baseline_mean",
    "baseline_sd",
    "followup_mean",
    "followup_sd",
    "mean_change",
    "change_sd",
    "ci_low",
    "ci_high",
    "t",
    "df",
    "p_value",
    "wilcoxon_stat",
    "wilcoxon_p",
    "hodges_lehmann",
    "d_z",
    "d_z_ci_low",
    "d_z_ci_high",
    "g_av",
    "boot_ci_low",
    "boot_ci_high",
    "pct_improved_reliably",
    "pct_deteriorated_reliably",
    "pct_met_mid",
    "n_clinical_baseline",
    "pct_recovered",
    "note",
]


def reliable_change(change: pd.Series, baseline_sd: float, reliability: float) -> pd.Series:
    """Jacobson & Truax (1991) reliable change index of each change.

    Parameters
    ----------
    change : Series
        Follow-up minus baseline.
    baseline_sd : float
        SD of the baseline scores.
    reliability : float
        The score's reliability r (0 < r < 1).

    Returns
    -------
    Series
        RC = change / S_diff (Float64); |RC| > 1.96 is reliable change.

    Notes
    -----
    S_diff = sqrt(2 SE^2), SE = baseline_sd sqrt(1 - r)
    (:func:`linkeval.stats.pairing.reliable_change_index`).

    References
    ----------
    Jacobson NS, Truax P (1991) Clinical significance: a statistical approach to defining
    meaningful change in psychotherapy research. J Consult Clin Psychol 59:12-19.

    Examples
    --------
    >>> reliable_change(pd.Series([4.0, -1.0]), baseline_sd=4.0, reliability=0.84).round(3).tolist()
    [1.768, -0.442]
    """
    return reliable_change_index(change, baseline_sd, reliability)


def paired_change(
    pairs: pd.DataFrame,
    by: str | list[str] | None = None,
    confidence: float = 0.95,
    window_only: bool = True,
    n_boot: int = 2000,
    seed: int = 0,
    cutoffs: dict[str, float] | None = None,
) -> pd.DataFrame:
    """Baseline-to-follow-up change per instrument score (and per group of ``by``).

    Uses complete pairs (inside the follow-up window when ``window_only``). Within one
    site this is the site's change; across sites use
    :func:`linkeval.stats.pooling.pooled_change`, whose interval allows for sites differing.

    Parameters
    ----------
    pairs : DataFrame
        Paired scores: ``instrument``, ``baseline``, ``followup``, optionally ``in_window``,
        ``improved_reliably``, ``deteriorated_reliably``, ``met_mid_improvement`` and the
        ``by`` columns.
    by : str or list of str, optional
        Grouping columns (e.g. ``"site"``).
    confidence : float, default 0.95
    window_only : bool, default True
    n_boot : int, default 2000
        Bootstrap resamples (0: no bootstrap interval).
    seed : int, default 0
        Seeds the bootstrap.
    cutoffs : dict of str to float, optional
        Score -> caseness cut-off c for Jacobson-Truax "recovered" (e.g. ``{"phq9": 10,
        "gad7": 10}``): for a lower-is-better score, c and above is the clinical range; for
        a higher-is-better score, below c is.

    Returns
    -------
    DataFrame
        One row per group and score. Columns (after the ``by`` columns):

        instrument : score name (e.g. ``swemwbs``, ``ons4_anxious``).
        n : complete pairs.
        baseline_mean, baseline_sd, followup_mean, followup_sd : of the paired people
            (SD ddof=1).
        mean_change, change_sd : of follow-up minus baseline.
        ci_low, ci_high : t interval of the mean change, mean +/- t(1 - alpha/2, n - 1) SD/sqrt(n).
        t, df, p_value : paired t-test, ``scipy.stats.ttest_rel(followup, baseline)``.
        wilcoxon_stat, wilcoxon_p : Wilcoxon signed-rank test of the changes: the statistic
            is R's V, the sum of the ranks of the positive changes, as
            ``wilcox.test(followup, baseline, paired = TRUE)`` (zero changes dropped; exact
            p below 50 changes without ties or zeros, otherwise the normal approximation
            with continuity correction, as R).
        hodges_lehmann : median of the Walsh averages of the changes (the estimate that goes
            with the Wilcoxon test).
        d_z, d_z_ci_low, d_z_ci_high : mean change / SD of change (Cohen's d for paired data,
            the standardised response mean) with its noncentral-t interval.
        g_av : Hedges' g_av, mean change over the mean of the baseline and follow-up SDs,
            bias-corrected (comparable with between-group effect sizes).
        boot_ci_low, boot_ci_high : bootstrap (BCa) interval of the mean change,
            ``scipy.stats.bootstrap`` with ``n_boot`` resamples and ``seed``; above
            ``BCA_MAX_N`` pairs the percentile interval (BCa's jackknife takes n^2 time and
            memory, and its bias and skewness corrections vanish as n grows).
        pct_improved_reliably, pct_deteriorated_reliably : % of pairs with reliable
            improvement / deterioration (Jacobson & Truax), where the score has a reliability.
        pct_met_mid : % of pairs improving by at least the score's MID, where it has one.
        n_clinical_baseline, pct_recovered : with a cut-off, pairs in the clinical range at
            baseline and the % of them who improved reliably and ended in the other range
            (Jacobson-Truax "recovered"); NaN without a cut-off.
        note : why inference is missing: fewer than 2 pairs, or a change that is the same
            for every pair (no test or interval is given, as R's ``t.test`` refuses "data
            are essentially constant").

    Raises
    ------
    ValueError
        When a required column is missing.

    Notes
    -----
    Direction: ``mean_change`` is follow-up minus baseline on the score's own scale, so for
    PHQ-9, GAD-7, UCLA-3, ONS anxiety and the loneliness question a fall is an improvement.
    d_z = t / sqrt(n); its interval inverts the noncentral t (see
    :func:`linkeval.stats.effects.dz_interval`).

    References
    ----------
    Student (1908) Biometrika 6:1-25. Wilcoxon F (1945) Biometrics Bull 1:80-83. Hodges JL,
    Lehmann EL (1963) Ann Math Stat 34:598-611. Lakens D (2013) Front Psychol 4:863.
    Jacobson NS, Truax P (1991) J Consult Clin Psychol 59:12-19. Efron B (1987) Better
    bootstrap confidence intervals. J Am Stat Assoc 82:171-185.

    Examples
    --------
    >>> pairs = pd.DataFrame({"instrument": "swemwbs", "baseline": [20.0, 18.0, 22.0],
    ...                       "followup": [23.0, 19.0, 25.0], "in_window": True})
    >>> row = paired_change(pairs, n_boot=200).iloc[0]
    >>> float(row["mean_change"]), float(row["wilcoxon_stat"]), float(row["hodges_lehmann"])
    (2.3333333333333335, 6.0, 2.5)

    SciPy's ``ttest_rel`` and R's ``t.test(paired = TRUE)`` give the same t and p:

    >>> float(round(row["t"], 4)), float(round(row["p_value"], 4))
    (3.5, 0.0728)
    """
    keys = group_keys(by)
    missing = [c for c in ("instrument", "baseline", "followup", *keys) if c not in pairs]
    if missing:
        raise ValueError(f"pairs has no column {', '.join(map(repr, missing))}")
    p = pairs[pairs["followup"].notna() & pairs["baseline"].notna()]
    if window_only and "in_window" in p:
        p = p[p["in_window"].astype(bool)]
    rows = []
    for group, part in p.groupby([*keys, "instrument"], sort=True, observed=True):
        group = group if isinstance(group, tuple) else (group,)
        instrument = group[-1]
        cutoff = (cutoffs or {}).get(instrument)
        rows.append(
            {
                **dict(zip([*keys, "instrument"], group, strict=True)),
                **_change_row(part, confidence, n_boot, seed, instrument, cutoff),
            }
        )
    columns = [*keys, *CHANGE_COLUMNS]
    return pd.DataFrame(rows, columns=columns)


def _pct(flags: pd.Series | None) -> float:
    if flags is None:
        return np.nan
    known = flags.dropna()
    return 100 * float(known.astype(bool).mean()) if len(known) else np.nan


def _recovered(part: pd.DataFrame, instrument: str, cutoff: float | None) -> tuple[float, float]:
    if cutoff is None:
        return np.nan, np.nan
    sign = direction(instrument)
    base, follow = part["baseline"].astype(float), part["followup"].astype(float)
    if sign > 0:
        clinical, functional_after = base < cutoff, follow >= cutoff
    else:
        clinical, functional_after = base >= cutoff, follow < cutoff
    n_clinical = int(clinical.sum())
    if "improved_reliably" not in part or n_clinical == 0:
        return float(n_clinical), np.nan
    reliable = part["improved_reliably"]
    known = clinical & reliable.notna()
    if not known.any():
        return float(n_clinical), np.nan
    hit = known & functional_after & reliable.fillna(False).astype(bool)
    return float(n_clinical), 100 * float(hit.sum() / known.sum())


def _change_row(
    part: pd.DataFrame,
    confidence: float,
    n_boot: int,
    seed: int,
    instrument: str,
    cutoff: float | None = None,
) -> dict:
    base = part["baseline"].to_numpy(dtype=float)
    follow = part["followup"].to_numpy(dtype=float)
    diff = follow - base
    n = len(diff)
    row = {
        "n": n,
        "baseline_mean": base.mean(),
        "followup_mean": follow.mean(),
        "mean_change": diff.mean(),
        "baseline_sd": base.std(ddof=1) if n > 1 else np.nan,
        "followup_sd": follow.std(ddof=1) if n > 1 else np.nan,
        "change_sd": diff.std(ddof=1) if n > 1 else np.nan,
        "note": "",
    }
    # Every inference column: from the mean change's interval to the bootstrap interval.
    nan_keys = CHANGE_COLUMNS[
        CHANGE_COLUMNS.index("ci_low") : CHANGE_COLUMNS.index("boot_ci_high") + 1
    ]
    row.update(dict.fromkeys(nan_keys, np.nan))
    if n:
        row["hodges_lehmann"] = hodges_lehmann(diff)
    if n < 2:
        row["note"] = "fewer than 2 pairs: no test or interval"
    elif np.ptp(diff) == 0:
        row["note"] = (
            f"every pair changed by {diff[0]:g}: no test or interval (the data "
            "are constant, as R's t.test says)"
        )
        nonzero = diff[diff != 0]
        if len(nonzero):
            row["wilcoxon_stat"] = wilcoxon_v(diff)
    else:
        test = stats.ttest_rel(follow, base)
        ci = test.confidence_interval(confidence_level=confidence)
        row.update(
            t=float(test.statistic),
            df=int(test.df),
            p_value=float(test.pvalue),
            ci_low=float(ci.low),
            ci_high=float(ci.high),
        )
        row["d_z"] = row["mean_change"] / row["change_sd"]
        row["d_z_ci_low"], row["d_z_ci_high"] = dz_interval(row["t"], n, confidence)
        row["g_av"] = hedges_g_av(row["mean_change"], row["baseline_sd"], row["followup_sd"], n)
        nonzero = diff[diff != 0]
        if len(nonzero):
            # As R: the exact distribution for fewer than 50 changes without ties or zeros,
            # otherwise the normal approximation with continuity correction.
            ties = len(np.unique(np.abs(nonzero))) < len(nonzero)
            exact = len(nonzero) < 50 and not ties and len(nonzero) == n
            w = stats.wilcoxon(
                diff, zero_method="wilcox", correction=True, method="exact" if exact else "approx"
            )
            row.update(wilcoxon_stat=wilcoxon_v(diff), wilcoxon_p=float(w.pvalue))
        if n_boot:
            boot = stats.bootstrap(
                (diff,),
                np.mean,
                n_resamples=n_boot,
                confidence_level=confidence,
                # BCa's jackknife costs n^2; past BCA_MAX_N its correction is negligible.
                method="BCa" if len(diff) <= BCA_MAX_N else "percentile",
                random_state=np.random.default_rng(seed),
            )
            row.update(
                boot_ci_low=float(boot.confidence_interval.low),
                boot_ci_high=float(boot.confidence_interval.high),
            )
    row["pct_improved_reliably"] = _pct(part.get("improved_reliably"))
    row["pct_deteriorated_reliably"] = _pct(part.get("deteriorated_reliably"))
    row["pct_met_mid"] = _pct(part.get("met_mid_improvement"))
    row["n_clinical_baseline"], row["pct_recovered"] = _recovered(part, instrument, cutoff)
    return row


def band_transitions(
    pairs: pd.DataFrame, instrument: str, window_only: bool = True
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Baseline band x follow-up band counts, with a test of symmetry.

    Parameters
    ----------
    pairs : DataFrame
        ``instrument``, ``followup``, ``baseline_band``, ``followup_band`` and, with
        ``window_only``, ``in_window``.
    instrument : str
        A score with bands (e.g. ``"phq9"``).
    window_only : bool, default True

    Returns
    -------
    (DataFrame, DataFrame)
        ``table``: long and tidy, ``baseline_band``, ``followup_band``, ``n`` (every
        combination, zeros included, bands in their natural order). ``test``: one row with
        ``instrument``, ``n``, ``test`` ("McNemar" for two bands, with continuity
        correction; "Bowker" for more), ``statistic``, ``df``, ``p_value`` and ``note``.
        Statistic and p are NaN when there are no pairs or nobody changed band.

    Raises
    ------
    ValueError
        For an unknown score (the closest known one is named) or a missing column.

    Notes
    -----
    A symmetric table means as many people moved up as down between each pair of bands.
    McNemar: (|b - c| - 1)^2 / (b + c) on 1 df. Bowker: sum over pairs of bands with any
    movement of (n_ij - n_ji)^2 / (n_ij + n_ji), on as many df as such pairs (empty pairs
    carry no information; :func:`linkeval.stats.effects.bowker_test`).

    References
    ----------
    McNemar Q (1947) Psychometrika 12:153-157. Bowker AH (1948) J Am Stat Assoc
    43:572-574. Agresti A (2013) Categorical data analysis, 3rd ed., section 11.4.

    Examples
    --------
    >>> pairs = pd.DataFrame({"instrument": "gad7", "followup": 1.0, "in_window": True,
    ...     "baseline_band": ["mild", "mild", "moderate", "minimal"],
    ...     "followup_band": ["minimal", "minimal", "mild", "minimal"]})
    >>> table, test = band_transitions(pairs, "gad7")
    >>> test[["test", "n", "df"]]
         test  n  df
    0  Bowker  4   2
    """
    names = score_names()
    if instrument not in names:
        raise ValueError(
            f"unknown instrument score {instrument!r}"
            f"{did_you_mean(instrument, names)}; known: {', '.join(names)}"
        )
    needed = ["instrument", "followup", "baseline_band", "followup_band"]
    missing = [c for c in needed if c not in pairs]
    if missing:
        raise ValueError(f"pairs has no column {', '.join(map(repr, missing))}")
    spec = INSTRUMENTS[names[instrument]].score(instrument)
    levels = band_labels(spec)
    p = pairs[(pairs["instrument"] == instrument) & pairs["followup"].notna()]
    if window_only and "in_window" in p:
        p = p[p["in_window"].astype(bool)]
    counts = pd.crosstab(
        pd.Categorical(p["baseline_band"], categories=levels),
        pd.Categorical(p["followup_band"], categories=levels),
        dropna=False,
    )
    counts = counts.reindex(index=levels, columns=levels, fill_value=0)
    table = (
        counts.rename_axis(index="baseline_band", columns="followup_band")
        .stack()
        .rename("n")
        .reset_index()
    )
    matrix = counts.to_numpy()
    if len(levels) == 2:
        b, c = matrix[0, 1], matrix[1, 0]
        if b + c > 0:
            result = mcnemar(matrix, exact=False, correction=True)
            test = {
                "test": "McNemar",
                "statistic": float(result.statistic),
                "df": 1,
                "p_value": float(result.pvalue),
                "note": "",
            }
        else:
            test = {
                "test": "McNemar",
                "statistic": np.nan,
                "df": 1,
                "p_value": np.nan,
                "note": "no data"
                if matrix.sum() == 0
                else "nobody changed band: symmetry cannot be tested",
            }
    elif len(levels) > 2:
        test = {"test": "Bowker", **bowker_test(matrix)}
    else:
        test = {
            "test": "none (score has no bands)",
            "statistic": np.nan,
            "df": np.nan,
            "p_value": np.nan,
            "note": "the score has no bands",
        }
    return table, pd.DataFrame([{"instrument": instrument, "n": int(matrix.sum()), **test}])
