"""Effect sizes and small tests for paired change, each with its interval.

- :func:`dz_interval`: confidence interval of d_z (standardised mean change) by inverting the
  noncentral t distribution;
- :func:`hedges_g_av`: Hedges' g_av, the mean change over the average of the two SDs, with
  the small-sample correction;
- :func:`wilcoxon_v`: R's V, the sum of the ranks of the positive changes;
- :func:`hodges_lehmann`: the Hodges-Lehmann estimate (median of the Walsh averages);
- :func:`bowker_test`: Bowker's test of symmetry, df from the non-empty pairs of cells;
- :func:`cronbach_alpha_ci`: Cronbach's alpha with Feldt's interval.

Statistics only: arrays in, numbers out.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import optimize, special, stats

from linkeval.instruments import cronbach_alpha

__all__ = [
    "bowker_test",
    "cronbach_alpha_ci",
    "dz_interval",
    "hedges_g_av",
    "hodges_lehmann",
    "wilcoxon_v",
]


def dz_interval(t: float, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Confidence interval of d_z = t / sqrt(n) from the noncentral t distribution.

    Parameters
    ----------
    t : float
        Paired t statistic, mean change / (SD / sqrt(n)).
    n : int
        Number of pairs (df = n - 1).
    confidence : float, default 0.95

    Returns
    -------
    (float, float)
        Lower and upper limits of d_z (NaN when t is not finite or n < 2).

    Notes
    -----
    The limits are delta / sqrt(n), where delta solves P(T <= t | df = n - 1, ncp = delta)
    = 1 - alpha/2 (lower) and = alpha/2 (upper), T noncentral t. Exact under normality.

    References
    ----------
    Steiger JH, Fouladi RT (1997) Noncentrality interval estimation and the evaluation of
    statistical models. In: What if there were no significance tests? Erlbaum, 221-257.
    Cumming G, Finch S (2001) A primer on the understanding, use, and calculation of
    confidence intervals that are based on central and noncentral distributions. Educ
    Psychol Meas 61:532-574.

    Examples
    --------
    >>> low, high = dz_interval(4.062128, 10)
    >>> round(float(low), 4), round(float(high), 4)
    (0.4146, 2.118)

    R: ``uniroot(function(d) pt(4.062128, 9, ncp = d) - 0.975, c(-5, 20))$root / sqrt(10)``
    gives 0.4146278 (and 2.1180166 with 0.025).
    """
    if n < 2 or not np.isfinite(t):
        return np.nan, np.nan
    df = n - 1
    alpha = 1 - confidence

    def cdf(ncp: float) -> float:
        value = stats.nct.cdf(t, df, ncp)
        if not np.isfinite(value):  # far tails: SciPy returns NaN where the cdf is ~0 or ~1
            value = 1 - stats.nct.sf(t, df, ncp)
        if not np.isfinite(value):
            value = 1.0 if ncp < t else 0.0
        return float(value)

    def solve(target: float) -> float:
        f = lambda ncp: cdf(ncp) - target  # noqa: E731
        step = 1.0 + abs(t) / np.sqrt(df)
        lo, hi = t - step, t + step
        while f(lo) < 0:
            lo -= step
        while f(hi) > 0:
            hi += step
        return optimize.brentq(f, lo, hi, xtol=1e-12)

    return solve(1 - alpha / 2) / np.sqrt(n), solve(alpha / 2) / np.sqrt(n)


def hedges_g_av(mean_change: float, sd_baseline: float, sd_followup: float, n: int) -> float:
    """Hedges' g_av: mean change / mean of the two SDs, times the small-sample correction.

    Parameters
    ----------
    mean_change : float
    sd_baseline, sd_followup : float
        SDs (ddof=1) of the baseline and follow-up scores of the pairs.
    n : int
        Number of pairs.

    Returns
    -------
    float
        NaN when n < 3 or both SDs are 0.

    Notes
    -----
    d_av = mean change / ((SD_1 + SD_2) / 2); g_av = J(n - 1) d_av with Hedges' exact
    J(m) = Gamma(m/2) / (sqrt(m/2) Gamma((m - 1)/2)) (about 1 - 3 / (4m - 1)). Unlike d_z
    it does not depend on the correlation between the two times, so it compares with
    between-group effect sizes.

    References
    ----------
    Lakens D (2013) Calculating and reporting effect sizes to facilitate cumulative science:
    a practical primer for t-tests and ANOVAs. Front Psychol 4:863. Hedges LV (1981)
    Distribution theory for Glass's estimator of effect size and related estimators.
    J Educ Stat 6:107-128. Cumming G (2012) Understanding the new statistics. Routledge.

    Examples
    --------
    >>> round(hedges_g_av(1.58, 1.789010, 2.002249, 10), 4)
    0.7617
    """
    denom = (sd_baseline + sd_followup) / 2
    if n < 3 or not np.isfinite(denom) or denom <= 0:
        return np.nan
    m = n - 1
    j = np.exp(special.gammaln(m / 2) - special.gammaln((m - 1) / 2)) / np.sqrt(m / 2)
    return float(j * mean_change / denom)


def wilcoxon_v(diff) -> float:
    """R's V: the sum of the ranks of the positive changes (zeros dropped, ties averaged).

    Parameters
    ----------
    diff : array-like of float
        Changes (follow-up minus baseline).

    Returns
    -------
    float
        V as ``wilcox.test(followup, baseline, paired = TRUE)`` reports it; NaN when every
        change is 0.

    Notes
    -----
    V = sum over d_i > 0 of rank(|d_i|), ranks among the non-zero |d_i|. SciPy's
    ``wilcoxon`` reports min(V, n(n + 1)/2 - V) instead.

    References
    ----------
    Wilcoxon F (1945) Individual comparisons by ranking methods. Biometrics Bull 1:80-83.
    Hollander M, Wolfe DA (1973) Nonparametric statistical methods. Wiley, pp. 27-33.

    Examples
    --------
    >>> wilcoxon_v([1.0, -2.0, 3.0, 0.0, 4.0])
    8.0
    """
    d = np.asarray(diff, dtype=float)
    d = d[d != 0]
    if not len(d):
        return np.nan
    ranks = stats.rankdata(np.abs(d))
    return float(ranks[d > 0].sum())


def hodges_lehmann(diff) -> float:
    """Hodges-Lehmann estimate of the centre of the changes: median of the Walsh averages.

    Parameters
    ----------
    diff : array-like of float

    Returns
    -------
    float
        median over i <= j of (d_i + d_j) / 2 (NaN for no data).

    Notes
    -----
    The estimate that goes with the Wilcoxon signed-rank test (the "(pseudo)median" of R's
    ``wilcox.test(..., conf.int = TRUE)`` when R uses the exact distribution; with ties or
    zeros R solves the normal-approximation score equation instead, which can differ
    slightly). Computed over the distinct values with their counts, so scores with few
    distinct changes need little memory.

    References
    ----------
    Hodges JL, Lehmann EL (1963) Estimates of location based on rank tests. Ann Math Stat
    34:598-611. Hollander M, Wolfe DA (1973) Nonparametric statistical methods, section 3.2.

    Examples
    --------
    >>> hodges_lehmann([1.83, 0.50, 1.62, 2.48, 1.68, 1.88, 1.55, 3.06, 1.30])
    1.725

    R: ``wilcox.test(x, conf.int = TRUE)$estimate`` gives the (pseudo)median 1.725.
    """
    d = np.asarray(diff, dtype=float)
    d = d[np.isfinite(d)]
    if not len(d):
        return np.nan
    values, counts = np.unique(d, return_counts=True)
    i, j = np.triu_indices(len(values))
    walsh = (values[i] + values[j]) / 2
    weight = np.where(i == j, counts[i] * (counts[i] + 1) / 2, counts[i] * counts[j])
    order = np.argsort(walsh, kind="stable")
    walsh, cum = walsh[order], np.cumsum(weight[order])
    total = cum[-1]
    lo = walsh[np.searchsorted(cum, (total + 1) // 2)]
    hi = walsh[np.searchsorted(cum, total // 2 + 1)]
    return float((lo + hi) / 2)


def bowker_test(table) -> dict:
    """Bowker's test of symmetry of a square table, df from the non-empty pairs of cells.

    Parameters
    ----------
    table : array-like, k x k
        Counts: rows baseline band, columns follow-up band.

    Returns
    -------
    dict
        ``statistic``, ``df`` (pairs of off-diagonal cells with any count), ``p_value`` and
        ``note``; statistic and p are NaN when the table is empty or nobody changed band.

    Notes
    -----
    X^2 = sum over i < j with n_ij + n_ji > 0 of (n_ij - n_ji)^2 / (n_ij + n_ji), chi^2 on
    as many df as such pairs. An empty pair carries no information, so it adds no df
    (statsmodels' ``SquareTable.symmetry`` counts every pair, which inflates the df and the
    p-value when some bands are never visited).

    References
    ----------
    Bowker AH (1948) A test for symmetry in contingency tables. J Am Stat Assoc 43:572-574.
    Agresti A (2013) Categorical data analysis, 3rd ed., section 11.4.

    Examples
    --------
    >>> r = bowker_test([[10, 5, 0], [2, 8, 3], [0, 1, 4]])
    >>> round(r["statistic"], 6), r["df"], round(r["p_value"], 6)
    (2.285714, 2, 0.318907)
    """
    m = np.asarray(table, dtype=float)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError("Bowker's test needs a square table")
    i, j = np.triu_indices(len(m), k=1)
    upper, lower = m[i, j], m[j, i]
    total = upper + lower
    used = total > 0
    if m.sum() == 0:
        return {"statistic": np.nan, "df": 0, "p_value": np.nan, "note": "no data"}
    if not used.any():
        return {
            "statistic": np.nan,
            "df": 0,
            "p_value": np.nan,
            "note": "nobody changed band: symmetry cannot be tested",
        }
    stat = float(np.sum((upper[used] - lower[used]) ** 2 / total[used]))
    df = int(used.sum())
    return {"statistic": stat, "df": df, "p_value": float(stats.chi2.sf(stat, df)), "note": ""}


def cronbach_alpha_ci(items: pd.DataFrame, confidence: float = 0.95) -> dict:
    """Cronbach's alpha with Feldt's confidence interval.

    Parameters
    ----------
    items : DataFrame
        One column per item, one row per completion (complete rows are used).
    confidence : float, default 0.95

    Returns
    -------
    dict
        ``alpha``, ``ci_low``, ``ci_high``, ``n`` (complete rows), ``k`` (items); NaN
        alpha and limits with fewer than 2 items or 3 rows.

    Notes
    -----
    alpha = k / (k - 1) (1 - sum of item variances / variance of the total)
    (:func:`linkeval.instruments.cronbach_alpha`). Feldt: (1 - alpha) / (1 - alpha_hat) ~
    F(n - 1, (n - 1)(k - 1)), so the limits are 1 - (1 - alpha_hat) F(1 - a/2) and
    1 - (1 - alpha_hat) F(a/2), F quantiles on those df.

    References
    ----------
    Cronbach LJ (1951) Psychometrika 16:297-334. Feldt LS (1965) The approximate sampling
    distribution of Kuder-Richardson reliability coefficient twenty. Psychometrika
    30:357-370. Feldt LS, Woodruff DJ, Salih FA (1987) Statistical inference for coefficient
    alpha. Appl Psychol Meas 11:93-103.

    Examples
    --------
    >>> items = pd.DataFrame({"a": [1, 2, 3, 4, 5, 2], "b": [2, 2, 3, 5, 4, 1],
    ...                       "c": [1, 3, 3, 4, 5, 2]})
    >>> r = cronbach_alpha_ci(items)
    >>> round(r["alpha"], 4), round(r["ci_low"], 4), round(r["ci_high"], 4)
    (0.9434, 0.7601, 0.9914)

    R (Feldt's formula): ``a <- 0.94335938; 1 - (1 - a) * qf(c(0.975, 0.025), 5, 10)`` gives
    0.7600655 and 0.9914429.
    """
    complete = items.dropna()
    n, k = complete.shape
    alpha = cronbach_alpha(complete)
    out = {"alpha": alpha, "ci_low": np.nan, "ci_high": np.nan, "n": n, "k": k}
    if k < 2 or n < 3 or not np.isfinite(alpha):
        return out
    a = 1 - confidence
    df1, df2 = n - 1, (n - 1) * (k - 1)
    out["ci_low"] = float(1 - (1 - alpha) * stats.f.ppf(1 - a / 2, df1, df2))
    out["ci_high"] = float(1 - (1 - alpha) * stats.f.ppf(a / 2, df1, df2))
    return out
