"""Linear mixed model with a random intercept, fitted by REML, with Satterthwaite df.

statsmodels' ``MixedLM`` gives Wald z intervals (too narrow with six sites), does not say
when the site variance is estimated as zero, and on some data returns a fit with an infinite
log-likelihood flagged as converged. For the one model this project needs,

    y_ij = x_ij' beta + u_j + e_ij,   u_j ~ N(0, sigma_u^2),   e_ij ~ N(0, sigma^2),

the restricted likelihood has a closed form in a handful of group sums, so this module fits
it exactly: a one-dimensional search over theta = sigma_u / sigma (sigma profiled out), the
same parameterisation and criterion as R's ``lme4::lmer``. Fixed-effect tests use t
statistics with Satterthwaite degrees of freedom computed as R's ``lmerTest`` does, with
exact (analytic) derivatives instead of numerical ones. Results equal ``lmerTest`` to 1e-4;
the tests record the R calls.

Statistics only: arrays and DataFrames in, a result object out, no file I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import optimize, stats

__all__ = ["MixedFit", "fit_random_intercept"]

SINGULAR_TOL = 1e-4  # lme4::isSingular's default tolerance on theta
_GRID = np.concatenate([[0.0], np.logspace(-4, 2.5, 53)])


@dataclass
class _Sums:
    """Sufficient statistics of the random-intercept model."""

    xtx: np.ndarray
    xty: np.ndarray
    yty: float
    sx: np.ndarray  # groups x p: column sums of X by group
    sy: np.ndarray  # group sums of y
    nj: np.ndarray  # group sizes
    n: int
    p: int

    @classmethod
    def of(cls, y: np.ndarray, X: np.ndarray, codes: np.ndarray) -> _Sums:
        g = codes.max() + 1
        sx = np.zeros((g, X.shape[1]))
        np.add.at(sx, codes, X)
        return cls(
            xtx=X.T @ X,
            xty=X.T @ y,
            yty=float(y @ y),
            sx=sx,
            sy=np.bincount(codes, weights=y, minlength=g),
            nj=np.bincount(codes, minlength=g).astype(float),
            n=len(y),
            p=X.shape[1],
        )


@dataclass
class _State:
    """Everything at one theta: M = X'H^-1 X, beta, rss and the pieces their derivatives use."""

    theta: float
    a: np.ndarray
    M: np.ndarray
    Minv: np.ndarray
    u: np.ndarray
    beta: np.ndarray
    rss: float
    logdet_m: float


def _state(s: _Sums, theta: float) -> _State:
    gamma = theta * theta
    a = gamma / (1 + s.nj * gamma)
    M = s.xtx - (s.sx * a[:, None]).T @ s.sx
    u = s.xty - (s.sx * a[:, None]).T @ s.sy
    q = s.yty - float(np.sum(a * s.sy**2))
    sign, logdet = np.linalg.slogdet(M)
    if sign <= 0:
        return _State(
            theta, a, M, np.full_like(M, np.nan), u, np.full_like(u, np.nan), np.nan, np.nan
        )
    Minv = np.linalg.inv(M)
    beta = Minv @ u
    rss = q - float(u @ beta)
    return _State(theta, a, M, Minv, u, beta, rss, float(logdet))


def _profiled_deviance(s: _Sums, theta: float) -> float:
    """lme4's REML criterion with sigma profiled out (-2 x the REML log-likelihood)."""
    st = _state(s, theta)
    if not (np.isfinite(st.rss) and st.rss > 0):
        return np.inf
    df = s.n - s.p
    return (
        df * (1 + np.log(2 * np.pi * st.rss / df))
        + float(np.sum(np.log1p(s.nj * theta**2)))
        + st.logdet_m
    )


def _optimise(s: _Sums) -> float:
    values = np.array([_profiled_deviance(s, t) for t in _GRID])
    if not np.isfinite(values).any():
        return np.nan
    i = int(np.nanargmin(values))
    lo, hi = _GRID[max(i - 1, 0)], _GRID[min(i + 1, len(_GRID) - 1)]
    if hi == lo:
        return float(lo)
    res = optimize.minimize_scalar(
        lambda t: _profiled_deviance(s, t),
        bounds=(lo, hi),
        method="bounded",
        options={"xatol": 1e-12},
    )
    best = float(res.x)
    # Polish with Newton steps on the analytic derivative of the profiled criterion.
    for _ in range(20):
        d1, d2 = _profiled_derivatives(s, best)
        if not (np.isfinite(d1) and np.isfinite(d2)) or d2 <= 0:
            break
        step = d1 / d2
        new = max(lo, min(hi, best - step))
        if abs(new - best) < 1e-14:
            best = new
            break
        best = new
    candidates = [best, lo, hi]
    devs = [_profiled_deviance(s, t) for t in candidates]
    best = candidates[int(np.argmin(devs))]
    if _profiled_deviance(s, 0.0) <= _profiled_deviance(s, best) + 1e-12:
        return 0.0
    return best


def _derivs(s: _Sums, st: _State):
    """First and second derivatives of M, log det M and rss with respect to theta."""
    th = st.theta
    den = 1 + s.nj * th * th
    a1 = 2 * th / den**2
    a2 = (2 - 6 * s.nj * th * th) / den**3
    M1 = -(s.sx * a1[:, None]).T @ s.sx
    M2 = -(s.sx * a2[:, None]).T @ s.sx
    u1 = -(s.sx * a1[:, None]).T @ s.sy
    e = s.sy - s.sx @ st.beta  # group sums of residuals
    rss1 = -float(np.sum(a1 * e**2))
    beta1 = st.Minv @ (u1 - M1 @ st.beta)
    e1 = -(s.sx @ beta1)
    rss2 = -float(np.sum(a2 * e**2)) - 2 * float(np.sum(a1 * e * e1))
    mm1 = st.Minv @ M1
    ld1 = float(np.trace(mm1))
    ld2 = float(np.trace(st.Minv @ M2) - np.sum(mm1 * mm1.T))
    lg1 = float(np.sum(2 * s.nj * th / den))
    lg2 = float(np.sum(2 * s.nj * (1 - s.nj * th * th) / den**2))
    return dict(M1=M1, a1=a1, rss1=rss1, rss2=rss2, ld1=ld1, ld2=ld2, lg1=lg1, lg2=lg2)


def _profiled_derivatives(s: _Sums, theta: float) -> tuple[float, float]:
    st = _state(s, theta)
    if not (np.isfinite(st.rss) and st.rss > 0):
        return np.nan, np.nan
    d = _derivs(s, st)
    df = s.n - s.p
    g = d["lg1"] + d["ld1"] + df * d["rss1"] / st.rss
    h = d["lg2"] + d["ld2"] + df * (d["rss2"] / st.rss - (d["rss1"] / st.rss) ** 2)
    return g, h


def _hessian_varpar(s: _Sums, st: _State, sigma: float) -> np.ndarray:
    """Hessian of the REML deviance D(theta, sigma) (lmerTest's ``devfun_vp``), exact.

    D = (n - p) log(2 pi sigma^2) + sum log(1 + n_j theta^2) + log det M(theta)
        + rss(theta) / sigma^2.
    """
    d = _derivs(s, st)
    df = s.n - s.p
    h_tt = d["lg2"] + d["ld2"] + d["rss2"] / sigma**2
    h_ts = -2 * d["rss1"] / sigma**3
    h_ss = -2 * df / sigma**2 + 6 * st.rss / sigma**4
    return np.array([[h_tt, h_ts], [h_ts, h_ss]])


def _jacobian_vcov(s: _Sums, st: _State, sigma: float) -> list[np.ndarray]:
    """d vcov(beta) / d theta and d sigma, vcov(beta) = sigma^2 M(theta)^-1 (exact)."""
    d = _derivs(s, st)
    d_theta = -(sigma**2) * st.Minv @ d["M1"] @ st.Minv
    d_sigma = 2 * sigma * st.Minv
    return [d_theta, d_sigma]


@dataclass
class MixedFit:
    """A random-intercept linear mixed model fitted by REML (see :func:`fit_random_intercept`).

    Attribute names follow statsmodels' ``MixedLMResults`` where they mean the same:
    ``fe_params``, ``bse``, ``tvalues``, ``pvalues``, ``cov_params()``, ``conf_int()``,
    ``cov_re``, ``scale``, ``llf``, ``converged``; ``df`` holds the Satterthwaite degrees
    of freedom of each fixed effect.
    """

    formula: str
    group: str
    fe_params: pd.Series
    vcov: pd.DataFrame
    df: pd.Series
    theta: float
    sigma: float
    llf: float
    nobs: int
    n_groups: int
    singular: bool
    note: str
    vcov_varpar: np.ndarray = field(repr=False)
    jac_vcov: list = field(repr=False)
    data: pd.DataFrame | None = field(default=None, repr=False)
    converged: bool = True

    @property
    def scale(self) -> float:
        """Residual variance sigma^2."""
        return self.sigma**2

    @property
    def group_variance(self) -> float:
        """Between-group (site) variance sigma_u^2 = (theta sigma)^2."""
        return (self.theta * self.sigma) ** 2

    @property
    def cov_re(self) -> pd.DataFrame:
        return pd.DataFrame([[self.group_variance]], index=["Group"], columns=["Group"])

    @property
    def params(self) -> pd.Series:
        return self.fe_params

    @property
    def bse(self) -> pd.Series:
        return pd.Series(np.sqrt(np.diag(self.vcov.to_numpy())), index=self.fe_params.index)

    @property
    def tvalues(self) -> pd.Series:
        return self.fe_params / self.bse

    @property
    def pvalues(self) -> pd.Series:
        return pd.Series(2 * stats.t.sf(np.abs(self.tvalues), self.df), index=self.df.index)

    def cov_params(self) -> pd.DataFrame:
        return self.vcov.copy()

    def conf_int(self, alpha: float = 0.05) -> pd.DataFrame:
        """t-based intervals on the Satterthwaite df (columns 0 and 1, as statsmodels)."""
        crit = stats.t.ppf(1 - alpha / 2, self.df)
        return pd.DataFrame(
            {0: self.fe_params - crit * self.bse, 1: self.fe_params + crit * self.bse}
        )

    def contrast(self, L) -> dict:
        """Estimate, SE, Satterthwaite df, t and p of the contrast L'beta.

        ``L`` is a vector of weights, one per fixed effect (in ``fe_params`` order), or a
        dict term -> weight.
        """
        if isinstance(L, dict):
            unknown = set(L) - set(self.fe_params.index)
            if unknown:
                raise ValueError(
                    f"unknown term(s) {', '.join(map(repr, sorted(unknown)))}; "
                    f"terms: {', '.join(self.fe_params.index)}"
                )
            L = np.array([L.get(t, 0.0) for t in self.fe_params.index])
        L = np.asarray(L, dtype=float)
        C = self.vcov.to_numpy()
        var = float(L @ C @ L)
        g = np.array([float(L @ J @ L) for J in self.jac_vcov])
        denom = float(g @ self.vcov_varpar @ g)
        df = 2 * var**2 / denom if denom > 0 else np.inf
        est = float(L @ self.fe_params.to_numpy())
        se = np.sqrt(var)
        t = est / se
        return {
            "estimate": est,
            "std_error": se,
            "df": df,
            "t": t,
            "p_value": float(2 * stats.t.sf(abs(t), df)),
        }

    def to_statsmodels(self):
        """The same model fitted by statsmodels' ``MixedLM`` (REML), started at this fit.

        For analysts who want statsmodels' own result object (``summary()``, random-effect
        predictions, ...). Its Wald z intervals are too narrow with few sites: use
        :meth:`summary` for inference.
        """
        import statsmodels.formula.api as smf
        from statsmodels.regression.mixed_linear_model import MixedLMParams

        model = smf.mixedlm(self.formula, self.data, groups=self.data[self.group])
        start = MixedLMParams.from_components(
            fe_params=self.fe_params.to_numpy(), cov_re=np.array([[self.theta**2]])
        )
        return model.fit(reml=True, start_params=start)

    def summary(self, confidence: float = 0.95) -> pd.DataFrame:
        """Fixed effects: term, estimate, std_error, df, t, p_value, ci_low, ci_high."""
        ci = self.conf_int(1 - confidence)
        return pd.DataFrame(
            {
                "term": self.fe_params.index,
                "estimate": self.fe_params.to_numpy(),
                "std_error": self.bse.to_numpy(),
                "df": self.df.to_numpy(),
                "t": self.tvalues.to_numpy(),
                "p_value": self.pvalues.to_numpy(),
                "ci_low": ci[0].to_numpy(),
                "ci_high": ci[1].to_numpy(),
            }
        )


def _dependent_columns(X: np.ndarray, names: list[str]) -> list[str]:
    """Columns that are linear combinations of earlier ones."""
    out, kept = [], []
    for j in range(X.shape[1]):
        trial = X[:, [*kept, j]]
        if np.linalg.matrix_rank(trial) < len(kept) + 1:
            out.append(names[j])
        else:
            kept.append(j)
    return out


def fit_random_intercept(formula: str, data: pd.DataFrame, group: str = "site") -> MixedFit:
    """Fit ``formula`` with a random intercept for ``group`` by REML (R: ``lmer(y ~ ... + (1 | group))``).

    Parameters
    ----------
    formula : str
        A model formula for the fixed effects, e.g. ``"followup ~ baseline + C(sex)"``
        (statsmodels' formula syntax; rows with a missing value in a used column are dropped).
    data : DataFrame
    group : str, default "site"
        The grouping column (its groups get the random intercept).

    Returns
    -------
    MixedFit
        ``fe_params``, ``bse``, ``df`` (Satterthwaite), ``pvalues``, ``conf_int()``,
        ``contrast()``, ``summary()``; ``group_variance`` and ``scale`` (REML variance
        components); ``theta`` (= sigma_u / sigma); ``llf`` (REML log-likelihood, as R's
        ``logLik``); ``singular`` (theta < 1e-4, lme4's ``isSingular``) and ``note`` (the
        same, in words); ``to_statsmodels()`` refits it as a statsmodels ``MixedLM``
        result.

    Raises
    ------
    ValueError
        When ``group`` is not a column, there are fewer than 2 groups, terms are collinear
        (a term that is constant, or duplicates another, is named), there are no residual
        degrees of freedom, or the model fits the data exactly (residual variance 0). Such
        fits are refused, never returned as numbers.

    Notes
    -----
    With H = V / sigma^2 = I + theta^2 ZZ' (block-diagonal), M = X'H^-1X,
    beta_hat = M^-1 X'H^-1 y, rss = (y - X beta_hat)' H^-1 (y - X beta_hat), the profiled
    REML criterion is

        d(theta) = (n - p)(1 + log(2 pi rss / (n - p))) + sum_j log(1 + n_j theta^2) + log det M,

    minimised over theta >= 0 (grid, Brent, then Newton steps on its exact derivative);
    sigma^2 = rss / (n - p) and vcov(beta) = sigma^2 M^-1. For the contrast L'beta the
    Satterthwaite df is 2 (L'CL)^2 / (g' A g), with g the gradient of L'C(theta, sigma)L and
    A = 2 H^-1, H the Hessian of the REML deviance in (theta, sigma) (positive eigenvalues
    only, as lmerTest). Sums over groups make each evaluation O(groups x p^2).

    References
    ----------
    Bates D, Maechler M, Bolker B, Walker S (2015) Fitting linear mixed-effects models using
    lme4. J Stat Softw 67(1). Kuznetsova A, Brockhoff PB, Christensen RHB (2017) lmerTest
    package: tests in linear mixed effects models. J Stat Softw 82(13). Satterthwaite FE
    (1946) An approximate distribution of estimates of variance components. Biometrics Bull
    2:110-114. Patterson HD, Thompson R (1971) Biometrika 58:545-554.

    Examples
    --------
    >>> data = pd.DataFrame({"site": list("AAABBBCCCDDD"),
    ...                      "y": [5., 6, 7, 4, 5, 5, 8, 9, 7, 6, 5, 7],
    ...                      "x": [1., 2, 3, 1, 2, 3, 1, 2, 3, 1, 2, 3]})
    >>> fit = fit_random_intercept("y ~ x", data)
    >>> fit.summary().round(4)
            term  estimate  std_error      df       t  p_value  ci_low  ci_high
    0  Intercept    5.4167     0.9317  7.7912  5.8138   0.0004  3.2581   7.5752
    1          x    0.3750     0.3146  7.0000  1.1921   0.2721 -0.3689   1.1189
    >>> round(fit.group_variance, 4), round(fit.scale, 4), fit.singular
    (1.625, 0.7917, False)

    R: ``summary(lmerTest::lmer(y ~ x + (1 | site), data))`` gives the same estimates,
    SEs 0.9316950 and 0.3145764, df 7.791166 and 7.000000, variances 1.625 and 0.79167.
    """
    import statsmodels.formula.api as smf

    if group not in data:
        raise ValueError(f"no column {group!r} to group by")
    model = smf.ols(formula, data)
    rows = model.data.row_labels
    used = data.loc[rows] if rows is not None else data
    if used[group].isna().any():
        used = used[used[group].notna()]
        model = smf.ols(formula, used)
    y = np.asarray(model.endog, dtype=float)
    X = np.asarray(model.exog, dtype=float)
    names = list(model.exog_names)
    codes, levels = pd.factorize(used[group], sort=True)
    n, p = X.shape
    if len(levels) < 2:
        raise ValueError(
            f"a random intercept for {group!r} needs at least 2 groups, found {len(levels)}"
        )
    if np.linalg.matrix_rank(X) < p:
        bad = _dependent_columns(X, names)
        raise ValueError(
            f"term(s) {', '.join(map(repr, bad))} cannot be estimated: constant "
            "or collinear with other terms in these data"
        )
    if n - p < 1:
        raise ValueError(f"{n} rows cannot support {p} fixed effects")
    s = _Sums.of(y, X, codes)
    centred = float(np.sum((y - y.mean()) ** 2))
    if _state(s, 0.0).rss <= 1e-10 * max(centred, 1e-300):
        raise ValueError(
            "the model fits these data exactly (residual variance 0): refusing "
            "to return estimates with no uncertainty"
        )
    theta = _optimise(s)
    if not np.isfinite(theta):
        raise ValueError(
            "the model fits these data exactly (residual variance 0): refusing "
            "to return estimates with no uncertainty"
        )
    st = _state(s, theta)
    if not (np.isfinite(st.rss) and st.rss > 1e-12 * max(1.0, s.yty)):
        raise ValueError(
            "the model fits these data exactly (residual variance 0): refusing "
            "to return estimates with no uncertainty"
        )
    sigma = float(np.sqrt(st.rss / (n - p)))
    deviance = _profiled_deviance(s, theta)
    vcov = sigma**2 * st.Minv
    if not (np.isfinite(deviance) and np.isfinite(vcov).all()):
        raise ValueError("degenerate fit (non-finite likelihood or standard errors)")
    h = _hessian_varpar(s, st, sigma)
    evals, evecs = np.linalg.eigh(h)
    pos = evals > 1e-8
    vcov_varpar = 2 * (evecs[:, pos] / evals[pos]) @ evecs[:, pos].T
    jac = _jacobian_vcov(s, st, sigma)
    singular = theta < SINGULAR_TOL
    notes = []
    if singular:
        notes.append(
            f"singular fit: the {group} variance is estimated as zero (the {group}s "
            f"differ no more than chance would give); intervals for terms that vary "
            f"only between {group}s may be too narrow"
        )
    if not pos.all():
        notes.append(
            "the variance parameters are poorly determined (a non-positive "
            "eigenvalue of the Hessian)"
        )
    fit = MixedFit(
        formula=formula,
        group=group,
        fe_params=pd.Series(st.beta, index=names),
        vcov=pd.DataFrame(vcov, index=names, columns=names),
        df=pd.Series(np.nan, index=names),
        theta=float(theta),
        sigma=sigma,
        llf=-deviance / 2,
        nobs=n,
        n_groups=len(levels),
        singular=bool(singular),
        note="; ".join(notes),
        vcov_varpar=vcov_varpar,
        jac_vcov=jac,
        data=used,
    )
    fit.df = pd.Series([fit.contrast(np.eye(p)[i])["df"] for i in range(p)], index=names)
    return fit
