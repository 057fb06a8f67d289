"""Change statistics against R and published worked examples (issue 4), to 1e-6."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from linkeval.stats.change import band_transitions, cronbach_alpha_ci, paired_change

# Student's sleep data (Cushny & Peebles 1905; R `datasets::sleep`): extra sleep on drug 1 and 2.
DRUG1 = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0]
DRUG2 = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4]


@pytest.fixture
def sleep():
    return pd.DataFrame(
        {"instrument": "swemwbs", "baseline": DRUG1, "followup": DRUG2, "in_window": True}
    )


def test_paired_t_test_matches_r(sleep):
    # R 4.x: t.test(extra ~ group, data = sleep, paired = TRUE) gives
    # t = -4.0621, df = 9, p-value = 0.002833, 95% CI -2.4598858 -0.7001142, mean diff -1.58
    # (group 1 minus group 2; here follow-up minus baseline, so the signs flip).
    r = paired_change(sleep).iloc[0]
    assert r["n"] == 10 and r["df"] == 9
    assert r["mean_change"] == pytest.approx(1.58, abs=1e-9)
    assert r["t"] == pytest.approx(4.062128, abs=1e-6)
    assert r["p_value"] == pytest.approx(0.002832890, abs=1e-6)
    assert r["ci_low"] == pytest.approx(0.7001142, abs=1e-6)
    assert r["ci_high"] == pytest.approx(2.4598858, abs=1e-6)
    assert r["change_sd"] == pytest.approx(1.229995, abs=1e-6)
    assert r["d_z"] == pytest.approx(1.58 / 1.229995, abs=1e-6)


def test_wilcoxon_matches_r(sleep):
    # R: wilcox.test(DRUG2, DRUG1, paired = TRUE) (follow-up first, as paired_change's change
    # is follow-up minus baseline) -> V = 45, p-value = 0.009091 (normal approximation with
    # continuity correction, because of a tie and a zero difference). V is the sum of the
    # ranks of the positive changes, not SciPy's min(V+, V-) (which is 0 here).
    r = paired_change(sleep).iloc[0]
    assert r["wilcoxon_stat"] == 45
    assert r["wilcoxon_p"] == pytest.approx(0.009090698, abs=1e-6)


def test_hodges_lehmann_is_the_median_of_walsh_averages(sleep):
    # R: d <- DRUG2 - DRUG1; w <- outer(d, d, "+") / 2; median(w[upper.tri(w, diag = TRUE)])
    # -> 1.3
    assert paired_change(sleep).iloc[0]["hodges_lehmann"] == pytest.approx(1.3, abs=1e-12)


def test_effect_size_intervals_match_r(sleep):
    # R: t <- 4.062128; uniroot(function(d) pt(t, 9, ncp = d) - 0.975, c(-5, 20),
    # tol = 1e-12)$root / sqrt(10) -> 0.4146278 (0.025 -> 2.1180166): the noncentral-t interval
    # of d_z. g_av: m <- mean(DRUG2 - DRUG1); J <- exp(lgamma(4.5) - lgamma(4)) / sqrt(4.5);
    # J * m / ((sd(DRUG1) + sd(DRUG2)) / 2) -> 0.7617114.
    r = paired_change(sleep).iloc[0]
    assert r["d_z_ci_low"] == pytest.approx(0.4146278253, abs=1e-6)
    assert r["d_z_ci_high"] == pytest.approx(2.1180166452, abs=1e-6)
    assert r["g_av"] == pytest.approx(0.7617113787, abs=1e-8)


def test_wilcoxon_exact_without_ties_matches_r():
    # R: wilcox.test(c(1.83, 0.50, 1.62, 2.48, 1.68, 1.88, 1.55, 3.06, 1.30),
    #                c(0.878, 0.647, 0.598, 2.05, 1.06, 1.29, 1.06, 3.14, 1.29), paired = TRUE)
    # (Hollander & Wolfe 1973, depression scale) -> V = 40, p-value = 0.03906 (exact).
    x = [1.83, 0.50, 1.62, 2.48, 1.68, 1.88, 1.55, 3.06, 1.30]
    y = [0.878, 0.647, 0.598, 2.05, 1.06, 1.29, 1.06, 3.14, 1.29]
    r = paired_change(
        pd.DataFrame({"instrument": "phq9", "baseline": x, "followup": y, "in_window": True})
    ).iloc[0]
    # Here the change is y - x, so R's V is that of wilcox.test(y, x, paired = TRUE): V = 5,
    # p-value = 0.0390625, (pseudo)median -0.46 (exact, so the Hodges-Lehmann estimate).
    assert r["wilcoxon_stat"] == 5
    assert r["wilcoxon_p"] == pytest.approx(0.0390625, abs=1e-6)
    assert r["hodges_lehmann"] == pytest.approx(-0.46, abs=1e-12)


def test_bootstrap_is_seeded_and_sensible(sleep):
    a = paired_change(sleep, seed=1).iloc[0]
    b = paired_change(sleep, seed=1).iloc[0]
    assert (a["boot_ci_low"], a["boot_ci_high"]) == (b["boot_ci_low"], b["boot_ci_high"])
    assert a["boot_ci_low"] < 1.58 < a["boot_ci_high"]


def test_window_groups_and_percentages():
    pairs = pd.DataFrame(
        {
            "site": ["A", "A", "A", "B", "B"],
            "instrument": "swemwbs",
            "baseline": [20.0, 21.0, 22.0, 20.0, 20.0],
            "followup": [23.0, 22.0, 21.0, 25.0, 30.0],
            "in_window": [True, True, True, True, False],
            "improved_reliably": pd.array([True, False, False, True, True], dtype="boolean"),
            "deteriorated_reliably": pd.array([False, False, True, False, False], dtype="boolean"),
            "met_mid_improvement": pd.array([True, False, False, True, True], dtype="boolean"),
        }
    )
    by_site = paired_change(pairs, by="site", n_boot=0).set_index("site")
    assert by_site.loc["A", "n"] == 3 and by_site.loc["B", "n"] == 1
    assert by_site.loc["A", "pct_improved_reliably"] == pytest.approx(100 / 3)
    assert by_site.loc["A", "pct_deteriorated_reliably"] == pytest.approx(100 / 3)
    assert paired_change(pairs, window_only=False, n_boot=0)["n"].item() == 5


def test_mcnemar_matches_r():
    # R: mcnemar.test(matrix(c(794, 86, 150, 570), nrow = 2)) (Agresti, presidential approval)
    # -> McNemar's chi-squared = 16.818, df = 1, p-value = 4.115e-05.
    rows = (
        [("lonely", "lonely")] * 794
        + [("not lonely", "lonely")] * 86
        + [("lonely", "not lonely")] * 150
        + [("not lonely", "not lonely")] * 570
    )
    pairs = pd.DataFrame(rows, columns=["baseline_band", "followup_band"]).assign(
        instrument="ucla3", followup=1.0, in_window=True
    )
    table, test = band_transitions(pairs, "ucla3")
    assert test["test"].item() == "McNemar"
    assert test["statistic"].item() == pytest.approx(16.81780, abs=1e-5)
    assert test["p_value"].item() == pytest.approx(4.114562e-05, rel=1e-5)
    assert table["n"].sum() == 1600


def test_bowker_counts_only_non_empty_pairs():
    # GAD-7 bands (4): off-diagonal pairs (minimal, mild) 5 vs 2 and (mild, moderate) 3 vs 1:
    # Bowker = (5-2)^2/7 + (3-1)^2/4 = 9/7 + 1 = 2.285714 on 2 df (the two pairs of bands
    # anyone moved between; the four empty pairs carry no information).
    # R: mcnemar.test(x) gives NaN here (0/0 for the empty pairs); by hand,
    # i <- upper.tri(x); s <- x[i] + t(x)[i]; st <- sum(((x[i] - t(x)[i])^2 / s)[s > 0]);
    # pchisq(st, sum(s > 0), lower.tail = FALSE) -> 2.285714, 2, 0.3189066.

    cells = {
        ("minimal", "minimal"): 10,
        ("minimal", "mild"): 5,
        ("mild", "minimal"): 2,
        ("mild", "mild"): 8,
        ("mild", "moderate"): 3,
        ("moderate", "mild"): 1,
        ("severe", "severe"): 4,
    }
    rows = [k for k, n in cells.items() for _ in range(n)]
    pairs = pd.DataFrame(rows, columns=["baseline_band", "followup_band"]).assign(
        instrument="gad7", followup=1.0, in_window=True
    )
    table, test = band_transitions(pairs, "gad7")
    assert test["test"].item() == "Bowker"
    assert test["statistic"].item() == pytest.approx(9 / 7 + 1, abs=1e-9)
    assert test["df"].item() == 2
    assert test["p_value"].item() == pytest.approx(0.3189065573, abs=1e-9)
    assert len(table) == 16  # every combination, zeros included


@pytest.mark.parametrize("instrument", ["gad7", "ucla3"])
def test_symmetry_tests_without_data_are_nan(instrument):
    empty = pd.DataFrame(
        {
            "instrument": [],
            "followup": [],
            "baseline_band": [],
            "followup_band": [],
            "in_window": [],
        }
    )
    table, test = band_transitions(empty, instrument)
    assert test["n"].item() == 0 and table["n"].sum() == 0
    assert np.isnan(test["statistic"].item()) and np.isnan(test["p_value"].item())
    assert test["note"].item() == "no data"


def test_bowker_with_nobody_changing_band_is_nan():
    pairs = pd.DataFrame(
        {
            "instrument": "gad7",
            "followup": 1.0,
            "in_window": True,
            "baseline_band": ["mild", "severe"],
            "followup_band": ["mild", "severe"],
        }
    )
    _, test = band_transitions(pairs, "gad7")
    assert np.isnan(test["p_value"].item()) and "nobody changed band" in test["note"].item()


def test_unknown_instrument_and_missing_columns_are_named():
    with pytest.raises(ValueError, match='did you mean "phq9"'):
        band_transitions(pd.DataFrame(), "phq-9")
    with pytest.raises(ValueError, match="'followup'"):
        paired_change(pd.DataFrame({"instrument": ["phq9"], "baseline": [3.0]}))


def test_constant_change_gives_no_test_and_says_why():
    # R: t.test(c(3, 4, 5), c(1, 2, 3), paired = TRUE) stops: "data are essentially constant".
    pairs = pd.DataFrame(
        {"instrument": "swemwbs", "baseline": [1.0, 2.0, 3.0], "followup": [3.0, 4.0, 5.0]}
    )
    r = paired_change(pairs).iloc[0]
    assert r["mean_change"] == 2 and r["n"] == 3
    assert np.isnan([r["t"], r["p_value"], r["ci_low"], r["ci_high"], r["d_z"]]).all()
    assert "every pair changed by 2" in r["note"]


def test_recovered_needs_a_cutoff_and_reliable_improvement():
    pairs = pd.DataFrame(
        {
            "instrument": "phq9",
            "baseline": [15.0, 12.0, 11.0, 4.0, 14.0],
            "followup": [5.0, 9.0, 12.0, 3.0, 8.0],
            "improved_reliably": pd.array([True, False, False, False, True], dtype="boolean"),
        }
    )
    assert np.isnan(paired_change(pairs, n_boot=0).iloc[0]["pct_recovered"])
    r = paired_change(pairs, n_boot=0, cutoffs={"phq9": 10}).iloc[0]
    # Clinical at baseline (>= 10): 4 people; recovered (below 10 and reliably improved): 2.
    assert r["n_clinical_baseline"] == 4
    assert r["pct_recovered"] == pytest.approx(50.0)


def test_cronbach_alpha_feldt_interval():
    # R: a <- 0.94335938 (alpha of the items below); 1 - (1 - a) * qf(c(0.975, 0.025), 5, 10)
    # -> 0.7600655 0.9914429 (Feldt 1965).
    items = pd.DataFrame(
        {"a": [1, 2, 3, 4, 5, 2], "b": [2, 2, 3, 5, 4, 1], "c": [1, 3, 3, 4, 5, 2]}
    )
    r = cronbach_alpha_ci(items)
    assert r["alpha"] == pytest.approx(0.9433593750, abs=1e-9)
    assert r["ci_low"] == pytest.approx(0.7600654602, abs=1e-8)
    assert r["ci_high"] == pytest.approx(0.9914429212, abs=1e-8)
