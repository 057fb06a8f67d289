"""Change statistics against R and published worked examples (issue 4), to 1e-6."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from linkeval.stats.change import band_transitions, paired_change

# Student's sleep data (Cushny & Peebles 1905; R `datasets::sleep`): extra sleep on drug 1 and 2.
DRUG1 = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0]
DRUG2 = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4]


@pytest.fixture
def sleep():
    return pd.DataFrame({"instrument": "swemwbs", "baseline": DRUG1, "followup": DRUG2,
                         "in_window": True})


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
    # R: wilcox.test(DRUG1, DRUG2, paired = TRUE) -> V = 0, p-value = 0.009091 (normal
    # approximation with continuity correction, because of a tie and a zero difference).
    r = paired_change(sleep).iloc[0]
    assert r["wilcoxon_stat"] == 0
    assert r["wilcoxon_p"] == pytest.approx(0.009090698, abs=1e-6)


def test_wilcoxon_exact_without_ties_matches_r():
    # R: wilcox.test(c(1.83, 0.50, 1.62, 2.48, 1.68, 1.88, 1.55, 3.06, 1.30),
    #                c(0.878, 0.647, 0.598, 2.05, 1.06, 1.29, 1.06, 3.14, 1.29), paired = TRUE)
    # (Hollander & Wolfe 1973, depression scale) -> V = 40, p-value = 0.03906 (exact).
    x = [1.83, 0.50, 1.62, 2.48, 1.68, 1.88, 1.55, 3.06, 1.30]
    y = [0.878, 0.647, 0.598, 2.05, 1.06, 1.29, 1.06, 3.14, 1.29]
    r = paired_change(pd.DataFrame({"instrument": "phq9", "baseline": x, "followup": y,
                                    "in_window": True})).iloc[0]
    assert r["wilcoxon_stat"] == 5  # min(V+, V-) = 45 - 40
    assert r["wilcoxon_p"] == pytest.approx(0.0390625, abs=1e-6)


def test_bootstrap_is_seeded_and_sensible(sleep):
    a = paired_change(sleep, seed=1).iloc[0]
    b = paired_change(sleep, seed=1).iloc[0]
    assert (a["boot_ci_low"], a["boot_ci_high"]) == (b["boot_ci_low"], b["boot_ci_high"])
    assert a["boot_ci_low"] < 1.58 < a["boot_ci_high"]


def test_window_groups_and_percentages():
    pairs = pd.DataFrame({
        "site": ["A", "A", "A", "B", "B"], "instrument": "swemwbs",
        "baseline": [20.0, 21.0, 22.0, 20.0, 20.0], "followup": [23.0, 22.0, 21.0, 25.0, 30.0],
        "in_window": [True, True, True, True, False],
        "improved_reliably": pd.array([True, False, False, True, True], dtype="boolean"),
        "deteriorated_reliably": pd.array([False, False, True, False, False], dtype="boolean"),
        "met_mid_improvement": pd.array([True, False, False, True, True], dtype="boolean")})
    by_site = paired_change(pairs, by="site", n_boot=0).set_index("site")
    assert by_site.loc["A", "n"] == 3 and by_site.loc["B", "n"] == 1
    assert by_site.loc["A", "pct_improved_reliably"] == pytest.approx(100 / 3)
    assert by_site.loc["A", "pct_deteriorated_reliably"] == pytest.approx(100 / 3)
    assert paired_change(pairs, window_only=False, n_boot=0)["n"].item() == 5


def test_mcnemar_matches_r():
    # R: mcnemar.test(matrix(c(794, 86, 150, 570), nrow = 2)) (Agresti, presidential approval)
    # -> McNemar's chi-squared = 16.818, df = 1, p-value = 4.115e-05.
    rows = ([("lonely", "lonely")] * 794 + [("not lonely", "lonely")] * 86
            + [("lonely", "not lonely")] * 150 + [("not lonely", "not lonely")] * 570)
    pairs = pd.DataFrame(rows, columns=["baseline_band", "followup_band"]).assign(
        instrument="ucla3", followup=1.0, in_window=True)
    table, test = band_transitions(pairs, "ucla3")
    assert test["test"].item() == "McNemar"
    assert test["statistic"].item() == pytest.approx(16.81780, abs=1e-5)
    assert test["p_value"].item() == pytest.approx(4.114562e-05, rel=1e-5)
    assert table["n"].sum() == 1600


def test_bowker_by_hand():
    # GAD-7 bands (4): off-diagonal pairs (minimal, mild) 5 vs 2 and (mild, moderate) 3 vs 1:
    # Bowker = (5-2)^2/7 + (3-1)^2/4 = 9/7 + 1 = 2.285714; df = 4*3/2 = 6 (statsmodels counts
    # every pair of bands), p = P(chi2_6 > 2.285714).
    from scipy.stats import chi2

    cells = {("minimal", "minimal"): 10, ("minimal", "mild"): 5, ("mild", "minimal"): 2,
             ("mild", "mild"): 8, ("mild", "moderate"): 3, ("moderate", "mild"): 1,
             ("severe", "severe"): 4}
    rows = [k for k, n in cells.items() for _ in range(n)]
    pairs = pd.DataFrame(rows, columns=["baseline_band", "followup_band"]).assign(
        instrument="gad7", followup=1.0, in_window=True)
    table, test = band_transitions(pairs, "gad7")
    assert test["test"].item() == "Bowker"
    assert test["statistic"].item() == pytest.approx(9 / 7 + 1, abs=1e-9)
    assert test["df"].item() == 6
    assert test["p_value"].item() == pytest.approx(chi2.sf(9 / 7 + 1, 6), abs=1e-9)
    assert len(table) == 16  # every combination, zeros included


def test_confidence_interval_coverage_simulation():
    # 1,000 synthetic studies of 30 people whose true mean change is 2: the 95% CI of
    # paired_change should cover 2 in 93-97% of them.
    rng = np.random.default_rng(2024)
    covered = 0
    reps = 1000
    for _ in range(reps):
        base = rng.normal(20, 4, 30)
        follow = base + rng.normal(2, 5, 30)
        r = paired_change(pd.DataFrame({"instrument": "swemwbs", "baseline": base,
                                        "followup": follow, "in_window": True}),
                          n_boot=0).iloc[0]
        covered += r["ci_low"] <= 2 <= r["ci_high"]
    assert 0.93 <= covered / reps <= 0.97
