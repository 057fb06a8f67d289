"""Random-intercept REML fits with Satterthwaite df, against R's lmerTest (issue 12).

The R values were computed with R 4.2.2, lme4 1.1.31, lmerTest 3.1.3; every R call is written
above the values it produced.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from linkeval.stats import lmm
from linkeval.stats.lmm import fit_random_intercept

# Dataset 1: 30 people in 6 sites (R code below builds the same data frame).
# d <- data.frame(site = strsplit("AAAABBBBBCCCCCCDDDDDEEEEEEFFFF", "")[[1]],
#   baseline = c(17, 15, 20, 24, 20, 22, 12, 21, 16, 27, 24, 24, 20, 22, 23, 19, 18, 20, 18, 18,
#                19, 17, 23, 14, 23, 17, 18, 15, 19, 19),
#   followup = c(19, 17, 18, 19, 21, 23, 16, 23, 21, 27, 25, 22, 19, 23, 24, 23, 22, 22, 21, 16,
#                20, 21, 25, 15, 27, 19, 17, 15, 19, 15),
#   lonely = c(1, 0, 1, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,
#              0, 0, 0))
# d$vcse <- as.integer(d$site %in% c("A", "D", "E")); d$change <- d$followup - d$baseline
D1 = pd.DataFrame(
    {
        "site": list("AAAABBBBBCCCCCCDDDDDEEEEEEFFFF"),
        "baseline": [
            17,
            15,
            20,
            24,
            20,
            22,
            12,
            21,
            16,
            27,
            24,
            24,
            20,
            22,
            23,
            19,
            18,
            20,
            18,
            18,
            19,
            17,
            23,
            14,
            23,
            17,
            18,
            15,
            19,
            19,
        ],
        "followup": [
            19,
            17,
            18,
            19,
            21,
            23,
            16,
            23,
            21,
            27,
            25,
            22,
            19,
            23,
            24,
            23,
            22,
            22,
            21,
            16,
            20,
            21,
            25,
            15,
            27,
            19,
            17,
            15,
            19,
            15,
        ],
        "lonely": [
            1,
            0,
            1,
            0,
            0,
            1,
            1,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            1,
            1,
            0,
            0,
            0,
            0,
            0,
            0,
            1,
            0,
            0,
            0,
            0,
            0,
            0,
        ],
    }
)
D1["vcse"] = D1["site"].isin(list("ADE")).astype(int)
D1["change"] = D1["followup"] - D1["baseline"]

# Dataset 2: 27 rows in 5 sites whose fit is singular (site variance 0).
# d2 <- data.frame(site = strsplit("PPPPPQQQQQQRRRRRSSSSSSTTTTT", "")[[1]],
#   x = c(-0.8, -1.3, -0.2, 0.4, 1.1, 0.1, -0.6, -0.8, 0.7, 1.6, 0.3, -1.2, -1.0, 1.6, 0.2, -1.7,
#         -0.1, -1.2, -0.6, -0.5, -0.7, 0.6, -0.1, -0.6, 0.4, 0.8, -1.6),
#   y = c(1.3, 0.4, 1.7, 0.9, 2.6, 2.0, 1.4, 0.6, 2.0, 1.7, 0.8, 1.6, 0.4, 4.0, 2.8, -0.8, 2.2,
#         0.3, 1.7, 1.8, -0.3, 2.1, 1.7, 2.7, 1.0, 3.1, 0.1))
D2 = pd.DataFrame(
    {
        "site": list("PPPPPQQQQQQRRRRRSSSSSSTTTTT"),
        "x": [
            -0.8,
            -1.3,
            -0.2,
            0.4,
            1.1,
            0.1,
            -0.6,
            -0.8,
            0.7,
            1.6,
            0.3,
            -1.2,
            -1.0,
            1.6,
            0.2,
            -1.7,
            -0.1,
            -1.2,
            -0.6,
            -0.5,
            -0.7,
            0.6,
            -0.1,
            -0.6,
            0.4,
            0.8,
            -1.6,
        ],
        "y": [
            1.3,
            0.4,
            1.7,
            0.9,
            2.6,
            2.0,
            1.4,
            0.6,
            2.0,
            1.7,
            0.8,
            1.6,
            0.4,
            4.0,
            2.8,
            -0.8,
            2.2,
            0.3,
            1.7,
            1.8,
            -0.3,
            2.1,
            1.7,
            2.7,
            1.0,
            3.1,
            0.1,
        ],
    }
)

# Each case: formula, data, R's summary(m)$coefficients (estimate, SE, df, p) per term,
# VarCorr (site, residual), isSingular.
CASES = {
    # m1 <- lmer(followup ~ baseline + lonely + (1 | site), data = d); summary(m1)
    "person-level ANCOVA": (
        "followup ~ baseline + lonely",
        D1,
        {
            "Intercept": (5.2052378696, 2.6766227524, 26.96002045, 6.231111966e-02),
            "baseline": (0.7712335762, 0.1299526298, 26.27165195, 2.797134867e-06),
            "lonely": (0.4994325849, 0.9640995276, 24.63693623, 6.090583769e-01),
        },
        (1.938255392, 3.887213213),
        False,
        -64.92342282,
    ),
    # m2 <- lmer(change ~ vcse + (1 | site), data = d); summary(m2)
    "site-level change score": (
        "change ~ vcse",
        D1,
        {
            "Intercept": (0.4775912397, 1.049538762, 3.815949216, 0.6737541730),
            "vcse": (0.8401705509, 1.484271951, 3.815949216, 0.6029815467),
        },
        (2.444227485, 4.215910998),
        False,
        None,
    ),
    # m3 <- lmer(followup ~ baseline + vcse + (1 | site), data = d); summary(m3)
    "site-level ANCOVA": (
        "followup ~ baseline + vcse",
        D1,
        {
            "Intercept": (5.3557788754, 2.684200903, 25.548186532, 5.677845019e-02),
            "baseline": (0.7539823718, 0.124223866, 26.368822799, 1.941935679e-06),
            "vcse": (0.5816944528, 1.508224129, 3.829089856, 7.201958378e-01),
        },
        (2.622405258, 3.744689016),
        False,
        None,
    ),
    # m4 <- lmer(y ~ x + (1 | site), data = d2); summary(m4)  # boundary (singular) fit
    "singular": (
        "y ~ x",
        D2,
        {
            "Intercept": (1.6367496289, 0.1562377246, 25, 1.244104347e-10),
            "x": (0.8446615347, 0.1713021885, 25, 4.457876598e-05),
        },
        (0.0, 0.6296882046),
        True,
        None,
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_matches_lmertest(name):
    formula, data, coefs, (site_var, resid_var), singular, loglik = CASES[name]
    fit = fit_random_intercept(formula, data)
    table = fit.summary().set_index("term")
    for term, (est, se, df, p) in coefs.items():
        assert table.loc[term, "estimate"] == pytest.approx(est, abs=1e-4)
        assert table.loc[term, "std_error"] == pytest.approx(se, abs=1e-4)
        assert table.loc[term, "df"] == pytest.approx(df, abs=1e-4)
        assert table.loc[term, "p_value"] == pytest.approx(p, abs=1e-4)
    assert fit.group_variance == pytest.approx(site_var, abs=1e-4)
    assert fit.scale == pytest.approx(resid_var, abs=1e-4)
    assert fit.singular is singular
    assert ("estimated as zero" in fit.note) is singular
    if loglik is not None:
        # logLik(m1) -> 'log Lik.' -64.92342282 (df=5)
        assert fit.llf == pytest.approx(loglik, abs=1e-4)


def test_the_statsmodels_result_is_available_and_agrees():
    fit = fit_random_intercept("followup ~ baseline + lonely", D1)
    sm = fit.to_statsmodels()
    np.testing.assert_allclose(sm.fe_params.to_numpy(), fit.fe_params.to_numpy(), atol=1e-5)
    assert sm.llf == pytest.approx(fit.llf, abs=1e-5)
    assert sm.cov_re.iloc[0, 0] == pytest.approx(fit.group_variance, abs=1e-4)


def test_interval_is_t_on_satterthwaite_df():
    from scipy import stats

    fit = fit_random_intercept("change ~ vcse", D1)
    row = fit.summary(0.95).set_index("term").loc["vcse"]
    half = stats.t.ppf(0.975, row["df"]) * row["std_error"]
    assert row["ci_high"] - row["estimate"] == pytest.approx(half)
    assert fit.contrast({"vcse": 1})["df"] == pytest.approx(row["df"])


def test_exact_derivatives_agree_with_finite_differences():
    fit = fit_random_intercept("followup ~ baseline + lonely", D1)
    import statsmodels.formula.api as smf

    model = smf.ols("followup ~ baseline + lonely", D1)
    codes, _ = pd.factorize(D1["site"], sort=True)
    sums = lmm._Sums.of(np.asarray(model.endog, float), np.asarray(model.exog, float), codes)

    def deviance(theta, sigma):
        st = lmm._state(sums, theta)
        return (
            (sums.n - sums.p) * np.log(2 * np.pi * sigma**2)
            + np.sum(np.log1p(sums.nj * theta**2))
            + st.logdet_m
            + st.rss / sigma**2
        )

    x0, h = np.array([fit.theta, fit.sigma]), 1e-4
    numeric = np.zeros((2, 2))
    for i in range(2):
        for j in range(2):
            ei, ej = np.eye(2)[i] * h, np.eye(2)[j] * h
            numeric[i, j] = (
                deviance(*(x0 + ei + ej))
                - deviance(*(x0 + ei - ej))
                - deviance(*(x0 - ei + ej))
                + deviance(*(x0 - ei - ej))
            ) / (4 * h * h)
    exact = lmm._hessian_varpar(sums, lmm._state(sums, fit.theta), fit.sigma)
    np.testing.assert_allclose(exact, numeric, rtol=1e-5)
    # The profiled criterion is at its minimum: zero derivative.
    assert abs(lmm._profiled_derivatives(sums, fit.theta)[0]) < 1e-6


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (D1.assign(k=1.0), "'k'"),  # constant: collinear with the intercept
        (D1.assign(k=D1["baseline"] * 2), "'k'"),  # a copy of another term
    ],
)
def test_collinear_terms_are_refused_by_name(data, message):
    with pytest.raises(ValueError, match=message):
        fit_random_intercept("followup ~ baseline + k", data)


def test_an_exact_fit_is_refused():
    data = D1.assign(exact=D1["baseline"] * 2 + 1)
    with pytest.raises(ValueError, match="residual variance 0"):
        fit_random_intercept("exact ~ baseline", data)


def test_one_group_is_refused():
    with pytest.raises(ValueError, match="at least 2 groups"):
        fit_random_intercept("followup ~ baseline", D1.assign(site="A"))
