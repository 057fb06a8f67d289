"""Multiple imputation by chained equations, seeded; Rubin's rules with Barnard-Rubin df.

statsmodels' ``MICEData`` (0.15) draws from a generator of its own, so seeding numpy's global
generator does not make it reproducible, and ``MICE.fit`` takes every imputation from one
chain. The few variables this project imputes are continuous, so this module does the work
itself with one seeded :class:`numpy.random.Generator` per chain:

- each imputation is the last state of its own chain (as R's ``mice``), chains seeded from
  one ``numpy.random.SeedSequence(seed)``: the same seed gives the same numbers;
- each incomplete variable is drawn from a Bayesian linear regression on all the others
  (Rubin 1987, p. 167; R ``mice.impute.norm``) including the always-observed predictors
  (such as site indicators);
- estimates are pooled by Rubin's rules with the Barnard-Rubin small-sample df.

Statistics only: arrays in, arrays and dicts out, no file I/O.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

__all__ = ["chained_imputations", "rubin_pool"]


def _draw_norm(
    rng: np.random.Generator,
    fixed: _Fixed,
    others: np.ndarray,
    others_new: np.ndarray,
    ridge: float = 1e-5,
) -> np.ndarray:
    """Bayesian linear-regression draws for the missing rows (beta and sigma from their
    posterior), X = [fixed predictors | the other columns' current values].

    X'X and X'y are assembled from blocks: the fixed predictors' own block (with many sites,
    hundreds of indicator columns) and the observed y never change between iterations, so
    they are computed once (:class:`_Fixed`); each draw adds only the other columns' blocks.
    """
    F, y = fixed.observed, fixed.y
    fto = F.T @ others
    xtx = np.block([[fixed.ftf, fto], [fto.T, others.T @ others]])
    xtx = xtx + ridge * np.diag(np.diag(xtx))
    inv = np.linalg.inv(xtx)
    beta = inv @ np.concatenate([fixed.fty, others.T @ y])
    k = F.shape[1]
    resid = y - F @ beta[:k] - others @ beta[k:]
    df = max(len(y) - len(beta), 1)
    sigma = np.sqrt(float(resid @ resid) / rng.chisquare(df))
    chol = np.linalg.cholesky((inv + inv.T) / 2)
    beta_star = beta + sigma * chol @ rng.standard_normal(len(beta))
    fitted = fixed.missing @ beta_star[:k] + others_new @ beta_star[k:]
    return fitted + sigma * rng.standard_normal(len(fitted))


class _Fixed:
    """What one imputed column's model keeps between draws: the fixed predictors on the rows
    where the column is observed and where it is missing, their cross-products, and y."""

    def __init__(self, fixed: np.ndarray, y: np.ndarray, observed: np.ndarray) -> None:
        self.observed, self.missing, self.y = fixed[observed], fixed[~observed], y
        self.ftf = self.observed.T @ self.observed
        self.fty = self.observed.T @ y


def chained_imputations(
    data: pd.DataFrame,
    predictors: pd.DataFrame | None = None,
    n_imputations: int = 20,
    n_iterations: int = 10,
    seed: int | np.random.SeedSequence = 0,
    keep: Sequence[str] | None = None,
) -> list[pd.DataFrame]:
    """Multiply impute the missing values of continuous columns by chained equations.

    Parameters
    ----------
    data : DataFrame
        Numeric columns, some with missing values (those are imputed). A column that is
        entirely missing or constant where observed is passed through unchanged.
    predictors : DataFrame, optional
        Complete numeric columns used as predictors in every imputation model and never
        imputed (e.g. baseline score, 0/1 site indicators). Same index as ``data``.
    n_imputations : int, default 20
        Number of completed data sets; each comes from its own chain.
    n_iterations : int, default 10
        Iterations of each chain (the last state is the imputation).
    seed : int or SeedSequence, default 0
        Seeds the chains (``SeedSequence(seed).spawn(n_imputations)``); the output is a
        function of the data and the seed only.
    keep : sequence of str, optional
        The columns each completed data set keeps (default: all). Every column is still
        imputed and used; the others are left out of the result to save memory (20 copies of
        a large frame add up).

    Returns
    -------
    list of DataFrame
        ``n_imputations`` completed copies of ``data`` (of its ``keep`` columns).

    Raises
    ------
    ValueError
        When a column is not numeric, or ``predictors`` has missing values or another index.

    Notes
    -----
    Each chain starts from random draws of the observed values, then, for each iteration and
    each incomplete column y in turn, fits y ~ (all other columns, current values) +
    predictors on the rows where y is observed, draws sigma*^2 = RSS / chi^2(n_obs - q) and
    beta* ~ N(beta_hat, sigma*^2 (X'X)^-1) and sets the missing y to X beta* + N(0, sigma*^2)
    (with a 1e-5 ridge on X'X, as R's ``mice``).

    References
    ----------
    Rubin DB (1987) Multiple imputation for nonresponse in surveys. Wiley, p. 167.
    van Buuren S, Groothuis-Oudshoorn K (2011) mice: multivariate imputation by chained
    equations in R. J Stat Softw 45(3). van Buuren S (2018) Flexible imputation of missing
    data, 2nd ed., section 3.2.

    Examples
    --------
    >>> data = pd.DataFrame({"y": [1.0, 2.0, np.nan, 4.0, 5.0, np.nan, 7.0, 8.0]})
    >>> x = pd.DataFrame({"x": [1.0, 2, 3, 4, 5, 6, 7, 8]})
    >>> a = chained_imputations(data, x, n_imputations=3, seed=1)
    >>> b = chained_imputations(data, x, n_imputations=3, seed=1)
    >>> len(a), all(u.equals(v) for u, v in zip(a, b)), int(a[0]["y"].isna().sum())
    (3, True, 0)
    >>> two = data.assign(z=[2.0, np.nan, 1.0, 3.0, 2.5, 4.0, np.nan, 5.0])
    >>> full = chained_imputations(two, x, n_imputations=3, seed=1)
    >>> only_y = chained_imputations(two, x, n_imputations=3, seed=1, keep=["y"])
    >>> all(u[["y"]].equals(v) for u, v in zip(full, only_y)), list(only_y[0].columns)
    (True, ['y'])
    """
    frame = data.astype(float)
    for col in data:
        if not pd.api.types.is_numeric_dtype(frame[col]):
            raise ValueError(f"column {col!r} is not numeric")
    fixed = np.ones((len(frame), 1))
    if predictors is not None:
        if not predictors.index.equals(data.index):
            raise ValueError("predictors and data have different rows")
        if predictors.isna().any().any():
            bad = predictors.columns[predictors.isna().any()].tolist()
            raise ValueError(f"predictors must be complete; missing values in {bad}")
        extra = predictors.to_numpy(dtype=float)
        varying = np.ptp(extra, axis=0) > 0 if len(extra) else np.zeros(extra.shape[1], bool)
        fixed = np.column_stack([fixed, extra[:, varying]])
    values = frame.to_numpy(dtype=float)
    missing = np.isnan(values)
    observed_any = (~missing).sum(axis=0) >= 2
    variable = np.array(
        [np.nanstd(values[:, j]) > 0 if observed_any[j] else False for j in range(values.shape[1])]
    )
    active = [j for j in range(values.shape[1]) if missing[:, j].any() and variable[j]]
    usable = [j for j in range(values.shape[1]) if variable[j]]
    kept = list(frame.columns) if keep is None else list(keep)
    unknown = [c for c in kept if c not in frame.columns]
    if unknown:
        raise ValueError(f"keep names columns not in data: {unknown}")
    kept_at = [frame.columns.get_loc(c) for c in kept]
    seq = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    # Each imputed column's fixed part, computed once (its observed values never change).
    blocks = {j: _Fixed(fixed, values[~missing[:, j], j], ~missing[:, j]) for j in active}
    out = []
    for child in seq.spawn(n_imputations):
        rng = np.random.default_rng(child)
        current = values.copy()
        for j in active:
            obs = current[~missing[:, j], j]
            current[missing[:, j], j] = rng.choice(obs, missing[:, j].sum())
        for _ in range(n_iterations if active else 0):
            for j in active:
                others = current[:, [i for i in usable if i != j]]
                obs = ~missing[:, j]
                current[~obs, j] = _draw_norm(rng, blocks[j], others[obs], others[~obs])
        out.append(pd.DataFrame(current[:, kept_at], index=frame.index, columns=kept))
    return out


def rubin_pool(estimates, variances, df_complete: float, confidence: float = 0.95) -> dict:
    """Pool one estimate over imputations by Rubin's rules, Barnard-Rubin df.

    Parameters
    ----------
    estimates, variances : array-like of float
        The m completed-data estimates and their squared standard errors.
    df_complete : float
        Degrees of freedom the analysis would have without missing data (n - 1 for a mean).
    confidence : float, default 0.95

    Returns
    -------
    dict
        ``estimate`` (Q-bar), ``std_error`` (sqrt T), ``df``, ``ci_low``, ``ci_high``,
        ``p_value`` (estimate = 0), ``within`` (U-bar), ``between`` (B), ``fmi`` (fraction of
        missing information, (r + 2/(df + 3)) / (r + 1)), ``m``.

    Notes
    -----
    T = U-bar + (1 + 1/m) B, lambda = (1 + 1/m) B / T, nu_old = (m - 1) / lambda^2,
    nu_obs = (nu_com + 1) / (nu_com + 3) nu_com (1 - lambda), df = nu_old nu_obs /
    (nu_old + nu_obs) (nu_obs when B = 0). As R's ``mice::pool``.

    References
    ----------
    Rubin DB (1987) Multiple imputation for nonresponse in surveys. Wiley. Barnard J, Rubin DB
    (1999) Small-sample degrees of freedom with multiple imputation. Biometrika 86:948-955.

    Examples
    --------
    >>> r = rubin_pool([2.0, 2.4, 1.8, 2.2], [0.25, 0.25, 0.30, 0.20], df_complete=49)
    >>> round(r["estimate"], 3), round(r["std_error"], 4), round(r["df"], 2)
    (2.1, 0.5774, 20.35)
    """
    q = np.asarray(estimates, dtype=float)
    u = np.asarray(variances, dtype=float)
    m = len(q)
    if m < 2:
        raise ValueError("Rubin's rules need at least 2 imputations")
    qbar, ubar = float(q.mean()), float(u.mean())
    b = float(q.var(ddof=1))
    t = ubar + (1 + 1 / m) * b
    lam = (1 + 1 / m) * b / t
    nu_obs = (df_complete + 1) / (df_complete + 3) * df_complete * (1 - lam)
    if lam > 0:
        nu_old = (m - 1) / lam**2
        df = nu_old * nu_obs / (nu_old + nu_obs)
    else:
        df = nu_obs
    se = np.sqrt(t)
    crit = stats.t.ppf(1 - (1 - confidence) / 2, df)
    r = (1 + 1 / m) * b / ubar if ubar > 0 else np.inf
    return {
        "estimate": qbar,
        "std_error": float(se),
        "df": float(df),
        "ci_low": qbar - crit * se,
        "ci_high": qbar + crit * se,
        "p_value": float(2 * stats.t.sf(abs(qbar / se), df)),
        "within": ubar,
        "between": b,
        "fmi": float((r + 2 / (df + 3)) / (r + 1)),
        "m": m,
    }
