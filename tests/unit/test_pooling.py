"""Pooling across sites (issue 12): meta-analysis and meta-regression against R's metafor.

R values: R 4.2.2, metafor 3.8-1. Each block gives the R call that produced its numbers. The
calls add ``control = list(threshold = 1e-12)`` to ``rma()`` (metafor stops its REML
iterations when tau^2 changes by less than 1e-5, which moves some results by ~1e-5) and
``control = list(tol = 1e-12)`` to ``confint()`` (its root-finding tolerance is 1e-4).
Without them, metafor's defaults agree with these values to 1e-4 except tau^2-derived I^2
for dataset 2 (68.3927 vs 68.3908).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from linkeval.stats.pooling import (
    context_meta_regression,
    meta_analysis,
    meta_regression,
    pooled_change,
)

# Dataset 1: six site mean changes and their squared standard errors.
Y6 = [1.2, 0.4, 2.1, 1.5, 0.9, 1.8]
V6 = [0.10, 0.05, 0.20, 0.08, 0.12, 0.15]
VCSE = [1, 0, 1, 1, 0, 1]

# Dataset 2: BCG vaccine trials (metafor's dat.bcg), log risk ratios rounded to 6 decimals:
# dat <- escalc(measure = "RR", ai = tpos, bi = tneg, ci = cpos, di = cneg, data = dat.bcg)
# yi <- round(dat$yi, 6); vi <- round(dat$vi, 6)
BCG_YI = [
    -0.889311,
    -1.585389,
    -1.348073,
    -1.441551,
    -0.217547,
    -0.786116,
    -1.620898,
    0.011952,
    -0.469418,
    -1.371345,
    -0.339359,
    0.445913,
    -0.017314,
]
BCG_VI = [
    0.325585,
    0.194581,
    0.415368,
    0.020010,
    0.051210,
    0.006906,
    0.223017,
    0.003962,
    0.056434,
    0.073025,
    0.012412,
    0.532506,
    0.071405,
]
BCG_ABLAT = [44, 55, 42, 52, 13, 44, 19, 13, 27, 42, 18, 33, 33]

# Dataset 3: homogeneous estimates (tau^2 = 0 and a Q-profile interval of [0, 0]).
Y3 = [0.50, 0.62, 0.41, 0.55, 0.47, 0.58]
V3 = [0.04, 0.05, 0.03, 0.06, 0.04, 0.05]

TOL = 1e-4


def test_meta_analysis_matches_metafor_six_sites():
    # m <- rma(yi = Y6, vi = V6, method = "REML", test = "knha", control = ctl); confint(m);
    # predict(m)  (ctl <- list(threshold = 1e-12))
    # estimate 1.26038725, se 0.25224276, tval 4.99672323, df 5, pval 0.00411625,
    # ci 0.61197660 1.90879791; tau^2 0.27881213 (CI 0.04798730 2.17930690);
    # I^2 73.51505294 (CI 32.32910747 95.59397821); H^2 3.77572965;
    # Q(df = 5) = 20.5, p 0.00100653; pi -0.24387221 2.76464672
    m = meta_analysis(Y6, V6)
    expected = {
        "estimate": 1.26038725,
        "std_error": 0.25224276,
        "statistic": 4.99672323,
        "df": 5,
        "p_value": 0.00411625,
        "ci_low": 0.61197660,
        "ci_high": 1.90879791,
        "tau2": 0.27881213,
        "tau2_ci_low": 0.04798730,
        "tau2_ci_high": 2.17930690,
        "i2": 73.51505294,
        "i2_ci_low": 32.32910747,
        "i2_ci_high": 95.59397821,
        "h2": 3.77572965,
        "q": 20.5,
        "q_p_value": 0.00100653,
        "pi_low": -0.24387221,
        "pi_high": 2.76464672,
    }
    for key, value in expected.items():
        assert getattr(m, key) == pytest.approx(value, abs=TOL), key
    assert m.k == 6 and "Hartung-Knapp-Sidik-Jonkman t on 5 df" in m.method


def test_meta_analysis_matches_metafor_bcg():
    # m <- rma(yi, vi, method = "REML", test = "knha", control = ctl); confint(m); predict(m)
    # -> estimate -0.714532523698, se 0.180791718701, tval -3.95224144575,
    # pval 0.00192000969457, ci -1.1084438399 -0.320621207495; tau^2 0.313243047521
    # (CI 0.119718203879 1.11147869588); I^2 92.221124003336 (CI 81.92002718826
    # 97.6779933244); H^2 12.855327690387; QE 152.22676645, p 2.00260087876e-26;
    # pi -1.996016608621 0.566951561225
    m = meta_analysis(BCG_YI, BCG_VI)
    expected = {
        "estimate": -0.714532523698,
        "std_error": 0.180791718701,
        "statistic": -3.95224144575,
        "p_value": 0.00192000969457,
        "ci_low": -1.1084438399,
        "ci_high": -0.320621207495,
        "tau2": 0.313243047521,
        "tau2_ci_low": 0.119718203879,
        "tau2_ci_high": 1.11147869588,
        "i2": 92.221124003336,
        "i2_ci_low": 81.92002718826,
        "i2_ci_high": 97.6779933244,
        "h2": 12.855327690387,
        "q": 152.22676645,
        "pi_low": -1.996016608621,
        "pi_high": 0.566951561225,
    }
    for key, value in expected.items():
        assert getattr(m, key) == pytest.approx(value, abs=TOL), key
    assert m.q_p_value == pytest.approx(2.002600879e-26, rel=1e-4)
    assert m.df == 12


def test_meta_analysis_with_no_heterogeneity_matches_metafor():
    # h <- rma(Y3, V3, method = "REML", test = "knha", control = ctl); confint(h); predict(h)
    # -> estimate 0.5077380952, se 0.03255289608, pval 1.96840308e-05,
    # ci 0.4240582119 0.5914179786, tau^2 0 (CI 0 0), I^2 0, QE 0.7417837302, p 0.9805970324,
    # pi = ci (0.4241 0.5914)
    m = meta_analysis(Y3, V3)
    assert m.estimate == pytest.approx(0.5077380952, abs=TOL)
    assert m.std_error == pytest.approx(0.03255289608, abs=TOL)
    assert m.p_value == pytest.approx(1.96840308e-05, abs=TOL)
    assert (m.ci_low, m.ci_high) == pytest.approx((0.4240582119, 0.5914179786), abs=TOL)
    assert m.tau2 == 0 and m.tau2_ci_low == 0 and m.tau2_ci_high == 0 and m.i2 == 0
    assert m.q == pytest.approx(0.7417837302, abs=TOL)
    assert m.q_p_value == pytest.approx(0.9805970324, abs=TOL)
    assert (m.pi_low, m.pi_high) == pytest.approx((m.ci_low, m.ci_high))


def test_meta_regression_matches_metafor_site_level_context():
    # r <- rma(Y6, V6, mods = ~ VCSE, method = "REML", test = "knha", control = ctl); confint(r)
    # intrcpt 0.560885809439 se 0.211533006801 t 2.65152856248 df 4 p 0.0568909261519
    #         ci -0.0264239718806 1.14819559076
    # VCSE    1.005014341444 se 0.281263769647 t 3.57320938529 df 4 p 0.0233087268999
    #         ci 0.2241009249388 1.78592775795
    # tau^2 0.0131886268053 (CI 0 1.05490538522), I^2 10.7152996959, H^2 1.12001271953,
    # R^2 95.2697102849, QE(df = 4) 4.65351506456 p 0.324730582721,
    # F(1, 4) 12.7678253111 p 0.0233087268999
    r = meta_regression(Y6, V6, pd.DataFrame({"vcse": VCSE}))
    c = r.coefficients.set_index("term")
    expected = {
        "intercept": (
            0.560885809439,
            0.211533006801,
            2.65152856248,
            0.0568909261519,
            -0.0264239718806,
            1.14819559076,
        ),
        "vcse": (
            1.005014341444,
            0.281263769647,
            3.57320938529,
            0.0233087268999,
            0.2241009249388,
            1.78592775795,
        ),
    }
    for term, values in expected.items():
        got = c.loc[
            term, ["estimate", "std_error", "statistic", "p_value", "ci_low", "ci_high"]
        ].to_numpy(dtype=float)
        np.testing.assert_allclose(got, values, atol=TOL)
        assert c.loc[term, "df"] == 4
    assert r.tau2 == pytest.approx(0.0131886268053, abs=TOL)
    assert (r.tau2_ci_low, r.tau2_ci_high) == pytest.approx((0.0, 1.05490538522), abs=TOL)
    assert r.i2 == pytest.approx(10.7152996959, abs=TOL)
    assert r.h2 == pytest.approx(1.12001271953, abs=TOL)
    assert r.r2 == pytest.approx(95.2697102849, abs=TOL)
    assert (r.qe, r.qe_p_value) == pytest.approx((4.65351506456, 0.324730582721), abs=TOL)
    assert (r.qm, r.qm_p_value) == pytest.approx((12.7678253111, 0.0233087268999), abs=TOL)
    assert r.qm_df == (1, 4.0)


def test_meta_regression_matches_metafor_bcg_latitude():
    # r <- rma(yi, vi, mods = ~ ablat, method = "REML", test = "knha", control = ctl)
    # (yi, vi the rounded values above; ablat <- dat.bcg$ablat); confint(r)
    # intrcpt  0.2514678377744 se 0.28392490102289 t 0.885684337191 p 0.39473713289001
    #          ci -0.3734466559575 0.876382331506
    # ablat   -0.0291017257924 se 0.00820140781808 t -3.548381745911 p 0.00456501750819
    #          ci -0.0471529026919 -0.011050548893
    # tau^2 0.07634745429804 (CI 0.0166798193524 0.784834792645), I^2 68.39083316739,
    # H^2 3.16363922306, R^2 75.6267681271, QE 30.7328169280 p 0.00121441188451,
    # QM 12.5910130147 p 0.00456501750819
    r = meta_regression(BCG_YI, BCG_VI, pd.DataFrame({"ablat": BCG_ABLAT}))
    c = r.coefficients.set_index("term")
    np.testing.assert_allclose(
        c.loc[
            "intercept", ["estimate", "std_error", "statistic", "p_value", "ci_low", "ci_high"]
        ].to_numpy(dtype=float),
        [
            0.2514678377744,
            0.28392490102289,
            0.885684337191,
            0.39473713289001,
            -0.3734466559575,
            0.876382331506,
        ],
        atol=TOL,
    )
    np.testing.assert_allclose(
        c.loc[
            "ablat", ["estimate", "std_error", "statistic", "p_value", "ci_low", "ci_high"]
        ].to_numpy(dtype=float),
        [
            -0.0291017257924,
            0.00820140781808,
            -3.548381745911,
            0.00456501750819,
            -0.0471529026919,
            -0.011050548893,
        ],
        atol=TOL,
    )
    assert c.loc["ablat", "df"] == 11
    assert r.tau2 == pytest.approx(0.07634745429804, abs=TOL)
    assert (r.tau2_ci_low, r.tau2_ci_high) == pytest.approx(
        (0.0166798193524, 0.784834792645), abs=TOL
    )
    assert r.i2 == pytest.approx(68.39083316739, abs=TOL)
    assert r.h2 == pytest.approx(3.16363922306, abs=TOL)
    assert r.r2 == pytest.approx(75.6267681271, abs=TOL)
    assert (r.qe, r.qe_p_value) == pytest.approx((30.7328169280, 0.00121441188451), abs=TOL)
    assert (r.qm, r.qm_p_value) == pytest.approx((12.5910130147, 0.00456501750819), abs=TOL)


def test_wald_z_option_is_narrower_with_few_sites():
    knha = meta_analysis(Y6, V6)
    z = meta_analysis(Y6, V6, test="z")
    assert z.df == np.inf and z.estimate == pytest.approx(knha.estimate)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (([1.0], [0.1]), "at least 2"),
        (([1.0, 2.0], [0.1, 0.0]), "vi must be > 0"),
        (([1.0, np.nan], [0.1, 0.1]), "finite"),
        (([1.0, 2.0, 3.0], [0.1, 0.1]), "differ in length"),
    ],
)
def test_meta_analysis_errors(args, message):
    with pytest.raises(ValueError, match=message):
        meta_analysis(*args)


def test_meta_regression_errors_name_the_moderator():
    with pytest.raises(ValueError, match="'vcse' takes one value"):
        meta_regression(Y6, V6, pd.DataFrame({"vcse": [1] * 6}))
    with pytest.raises(ValueError, match="more sites than coefficients"):
        meta_regression(Y6[:2], V6[:2], pd.DataFrame({"x": [0, 1]}))


def _pairs(rng, sizes, site_means, sd=3.0):
    rows = []
    for site, (n, mu) in zip("ABCDEF", zip(sizes, site_means, strict=True), strict=False):
        base = rng.normal(20, 4, n).round()
        rows.append(
            pd.DataFrame(
                {
                    "site": site,
                    "instrument": "swemwbs",
                    "baseline": base,
                    "followup": (base + rng.normal(mu, sd, n)).round(),
                    "in_window": True,
                }
            )
        )
    return pd.concat(rows, ignore_index=True)


def test_pooled_change_is_the_meta_analysis_of_site_means():
    rng = np.random.default_rng(1)
    pairs = _pairs(rng, [30, 45, 60, 80, 100, 120], [0.5, 1.0, 2.5, 1.5, 0.8, 2.0])
    row = pooled_change(pairs).iloc[0]
    sites = pairs.assign(change=pairs["followup"] - pairs["baseline"]).groupby("site")["change"]
    m = meta_analysis(sites.mean(), sites.var(ddof=1) / sites.size())
    assert row["k"] == 6 and row["n"] == 435
    assert row["estimate"] == pytest.approx(m.estimate)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((m.ci_low, m.ci_high))
    assert row["tau2"] > 0 and row["pi_low"] < row["ci_low"]
    # The person-level mean is given beside it, clearly labelled, with a narrower interval.
    everyone = (pairs["followup"] - pairs["baseline"]).mean()
    assert row["person_level_estimate"] == pytest.approx(everyone)
    assert row["person_level_ci_high"] - row["person_level_ci_low"] < row["ci_high"] - row["ci_low"]
    assert "REML" in row["method"] and row["note"] == ""


def test_pooled_change_from_site_changes_already_computed_is_the_same():
    from linkeval.stats.change import paired_change

    rng = np.random.default_rng(1)
    pairs = _pairs(rng, [30, 45, 60, 80], [0.5, 1.0, 2.5, 1.5])
    sites = paired_change(pairs, by="site", n_boot=0)
    given = pooled_change(pairs, site_changes=sites)
    pd.testing.assert_frame_equal(given, pooled_change(pairs))
    assert "vi" not in sites  # the caller's table is left as it was


def test_pooled_change_leaves_out_sites_without_a_variance_and_says_so():
    rng = np.random.default_rng(2)
    pairs = _pairs(rng, [30, 40, 50, 60], [1.0, 1.2, 0.8, 1.1])
    pairs = pd.concat(
        [
            pairs,
            pd.DataFrame(
                {
                    "site": "Z",
                    "instrument": "swemwbs",
                    "baseline": [20.0],
                    "followup": [22.0],
                    "in_window": True,
                }
            ),
        ]
    )
    row = pooled_change(pairs).iloc[0]
    assert row["k"] == 4 and "left out" in row["note"] and "Z" in row["note"]
    one = pooled_change(pairs[pairs["site"].isin(["A", "Z"])]).iloc[0]
    assert one["k"] == 1 and np.isnan(one["estimate"]) and "no pooling" in one["note"]


def test_context_meta_regression_reads_a_site_level_context():
    rng = np.random.default_rng(3)
    pairs = _pairs(rng, [30, 45, 60, 80, 100, 120], [2.0, 0.5, 0.7, 2.2, 1.9, 0.4])
    hosts = {"A": True, "B": False, "C": False, "D": True, "E": True, "F": False}
    r = context_meta_regression(pairs, "swemwbs", hosts)
    assert r["k"] == 6 and r["k_context"] == 3 and r["df"] == 4
    assert r["estimate"] > 0 and r["ci_low"] < r["estimate"] < r["ci_high"]
    with pytest.raises(ValueError, match="one value"):
        context_meta_regression(pairs, "swemwbs", dict.fromkeys("ABCDEF", True))
    with pytest.raises(ValueError, match="no site has paired 'phq9'"):
        context_meta_regression(pairs, "phq9", hosts)
    with pytest.raises(ValueError, match='did you mean "swemwbs"'):
        context_meta_regression(pairs, "swembws", hosts)


def test_meta_regression_is_equivariant_to_the_true_effect():
    # Adding b x VCSE to every estimate moves the estimate by exactly b and leaves the interval
    # width, tau^2 and p of the other terms alone: coverage does not depend on the true effect
    # (benchmarks/bench_coverage.py relies on this).
    base = meta_regression(Y6, V6, pd.DataFrame({"vcse": VCSE}))
    moved = meta_regression(np.add(Y6, 0.7 * np.array(VCSE)), V6, pd.DataFrame({"vcse": VCSE}))
    a, b = base.coefficients.set_index("term"), moved.coefficients.set_index("term")
    assert b.loc["vcse", "estimate"] == pytest.approx(a.loc["vcse", "estimate"] + 0.7)
    assert b.loc["vcse", "std_error"] == pytest.approx(a.loc["vcse", "std_error"])
    assert moved.tau2 == pytest.approx(base.tau2, abs=1e-12)
