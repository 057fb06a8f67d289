"""Change from baseline to follow-up (DESIGN section 8).

Statistics only: DataFrames in, tidy DataFrames out, no file I/O. Tests are SciPy's and
statsmodels' own (``scipy.stats.ttest_rel``, ``wilcoxon``, ``bootstrap``;
``statsmodels.stats.contingency_tables``); this module chooses and documents their settings.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.contingency_tables import SquareTable, mcnemar

from linkeval.instruments import INSTRUMENTS, band_labels, cronbach_alpha, score_names
from linkeval.stats.pairing import reliable_change_index

__all__ = ["paired_change", "band_transitions", "reliable_change", "cronbach_alpha"]

CHANGE_COLUMNS = [
    "instrument", "n", "baseline_mean", "baseline_sd", "followup_mean", "followup_sd",
    "mean_change", "change_sd", "ci_low", "ci_high", "t", "df", "p_value", "wilcoxon_stat",
    "wilcoxon_p", "d_z", "boot_ci_low", "boot_ci_high", "pct_improved_reliably",
    "pct_deteriorated_reliably", "pct_met_mid",
]


def reliable_change(change: pd.Series, baseline_sd: float, reliability: float) -> pd.Series:
    """Jacobson & Truax (1991) reliable change index; see :mod:`linkeval.stats.pairing`."""
    return reliable_change_index(change, baseline_sd, reliability)


def paired_change(
    pairs: pd.DataFrame,
    by: str | list[str] | None = None,
    confidence: float = 0.95,
    window_only: bool = True,
    n_boot: int = 2000,
    seed: int = 0,
) -> pd.DataFrame:
    """Baseline-to-follow-up change per instrument score (and per group of ``by``).

    Uses complete pairs (inside the follow-up window when ``window_only``).

    Columns
    -------
    instrument : score name (e.g. ``swemwbs``, ``ons4_anxious``).
    n : complete pairs.
    baseline_mean, baseline_sd, followup_mean, followup_sd : of the paired people (SD ddof=1).
    mean_change, change_sd : of follow-up minus baseline.
    ci_low, ci_high : t-based confidence interval of the mean change,
        mean +/- t(1 - alpha/2, n - 1) * SD / sqrt(n).
    t, df, p_value : paired t-test, ``scipy.stats.ttest_rel(followup, baseline)``.
    wilcoxon_stat, wilcoxon_p : Wilcoxon signed-rank test of the changes (zero changes dropped,
        normal approximation with continuity correction when there are ties or zeros, as R's
        ``wilcox.test(paired = TRUE)``).
    d_z : mean change / SD of change (Cohen's d for paired data; the same quantity is also
        called the standardised response mean, SRM).
    boot_ci_low, boot_ci_high : bootstrap (BCa) interval of the mean change,
        ``scipy.stats.bootstrap`` with ``n_boot`` resamples and ``seed``.
    pct_improved_reliably, pct_deteriorated_reliably : % of pairs with reliable improvement /
        deterioration (Jacobson & Truax), where the score has a reliability.
    pct_met_mid : % of pairs improving by at least the score's MID, where it has one.

    Direction: ``mean_change`` is follow-up minus baseline on the score's own scale, so for
    PHQ-9, GAD-7, UCLA-3, ONS anxiety and the loneliness question a fall is an improvement.

    Example
    -------
    >>> import pandas as pd
    >>> pairs = pd.DataFrame({"instrument": "swemwbs", "baseline": [20.0, 18.0, 22.0],
    ...                       "followup": [23.0, 19.0, 25.0], "in_window": True})
    >>> round(paired_change(pairs, n_boot=200)["mean_change"].item(), 3)
    2.333
    """
    keys = [] if by is None else [by] if isinstance(by, str) else list(by)
    p = pairs[pairs["followup"].notna() & pairs["baseline"].notna()]
    if window_only and "in_window" in p:
        p = p[p["in_window"].astype(bool)]
    rows = []
    for group, part in p.groupby([*keys, "instrument"], sort=True, observed=True):
        group = group if isinstance(group, tuple) else (group,)
        rows.append({**dict(zip([*keys, "instrument"], group, strict=True)),
                     **_change_row(part, confidence, n_boot, seed)})
    columns = [*keys, *CHANGE_COLUMNS]
    return pd.DataFrame(rows, columns=columns)


def _pct(flags: pd.Series | None) -> float:
    if flags is None:
        return np.nan
    known = flags.dropna()
    return 100 * float(known.astype(bool).mean()) if len(known) else np.nan


def _change_row(part: pd.DataFrame, confidence: float, n_boot: int, seed: int) -> dict:
    base = part["baseline"].to_numpy(dtype=float)
    follow = part["followup"].to_numpy(dtype=float)
    diff = follow - base
    n = len(diff)
    row = {"n": n, "baseline_mean": base.mean(), "followup_mean": follow.mean(),
           "mean_change": diff.mean(),
           "baseline_sd": base.std(ddof=1) if n > 1 else np.nan,
           "followup_sd": follow.std(ddof=1) if n > 1 else np.nan,
           "change_sd": diff.std(ddof=1) if n > 1 else np.nan}
    nan_keys = ("ci_low", "ci_high", "t", "df", "p_value", "wilcoxon_stat", "wilcoxon_p",
                "d_z", "boot_ci_low", "boot_ci_high")
    row.update(dict.fromkeys(nan_keys, np.nan))
    if n >= 2:
        test = stats.ttest_rel(follow, base)
        ci = test.confidence_interval(confidence_level=confidence)
        row.update(t=float(test.statistic), df=int(test.df), p_value=float(test.pvalue),
                   ci_low=float(ci.low), ci_high=float(ci.high))
        if row["change_sd"] > 0:
            row["d_z"] = row["mean_change"] / row["change_sd"]
        nonzero = diff[diff != 0]
        if len(nonzero):
            # As R: the exact distribution for fewer than 50 changes without ties or zeros,
            # otherwise the normal approximation with continuity correction.
            ties = len(np.unique(np.abs(nonzero))) < len(nonzero)
            exact = len(nonzero) < 50 and not ties and len(nonzero) == n
            w = stats.wilcoxon(diff, zero_method="wilcox", correction=True,
                               method="exact" if exact else "approx")
            row.update(wilcoxon_stat=float(w.statistic), wilcoxon_p=float(w.pvalue))
        if n_boot and np.ptp(diff) > 0:
            boot = stats.bootstrap((diff,), np.mean, n_resamples=n_boot,
                                   confidence_level=confidence, method="BCa",
                                   random_state=np.random.default_rng(seed))
            row.update(boot_ci_low=float(boot.confidence_interval.low),
                       boot_ci_high=float(boot.confidence_interval.high))
    row["pct_improved_reliably"] = _pct(part.get("improved_reliably"))
    row["pct_deteriorated_reliably"] = _pct(part.get("deteriorated_reliably"))
    row["pct_met_mid"] = _pct(part.get("met_mid_improvement"))
    return row


def band_transitions(pairs: pd.DataFrame, instrument: str, window_only: bool = True
                     ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Baseline band x follow-up band counts, with a test of symmetry.

    Returns ``(table, test)``. ``table`` is long and tidy: ``baseline_band``,
    ``followup_band``, ``n`` (every combination, zeros included, bands in their natural
    order). ``test`` has one row: ``test`` ("McNemar" for two bands, with continuity
    correction; "Bowker" for more, ``SquareTable.symmetry``), ``statistic``, ``df``,
    ``p_value``. A symmetric table means as many people moved up as down between each pair
    of bands.
    """
    spec = INSTRUMENTS[score_names()[instrument]].score(instrument)
    levels = band_labels(spec)
    p = pairs[(pairs["instrument"] == instrument) & pairs["followup"].notna()]
    if window_only and "in_window" in p:
        p = p[p["in_window"].astype(bool)]
    counts = pd.crosstab(pd.Categorical(p["baseline_band"], categories=levels),
                         pd.Categorical(p["followup_band"], categories=levels), dropna=False)
    counts = counts.reindex(index=levels, columns=levels, fill_value=0)
    table = (counts.rename_axis(index="baseline_band", columns="followup_band")
             .stack().rename("n").reset_index())
    matrix = counts.to_numpy()
    if len(levels) == 2:
        result = mcnemar(matrix, exact=False, correction=True)
        test = {"test": "McNemar", "statistic": float(result.statistic), "df": 1,
                "p_value": float(result.pvalue)}
    elif len(levels) > 2:
        result = SquareTable(matrix, shift_zeros=False).symmetry(method="bowker")
        test = {"test": "Bowker", "statistic": float(result.statistic), "df": int(result.df),
                "p_value": float(result.pvalue)}
    else:
        test = {"test": "none (score has no bands)", "statistic": np.nan, "df": np.nan,
                "p_value": np.nan}
    return table, pd.DataFrame([{"instrument": instrument, "n": int(matrix.sum()), **test}])
