"""Cross-site models (issues 4 and 12): recovery of the synthetic truth, the fits that used to
fail silently, clear errors, and reproducible multiple imputation."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from linkeval.stats import models
from linkeval.stats.lmm import MixedFit
from linkeval.synthetic import TRUE_CHANGE


@pytest.fixture(scope="module")
def large(large_study):
    """About 3,000 SWEMWBS pairs from the larger synthetic study (conftest.py)."""
    _, tables = large_study
    frame = models.analysis_frame(tables["pairs"], tables["referrals"], "swemwbs",
                                  tables["referral_reasons"])
    return tables, frame


@pytest.fixture(scope="module")
def demo(demo_clean):
    tables = demo_clean.tables
    frame = models.analysis_frame(tables["pairs"], tables["referrals"], "swemwbs",
                                  tables["referral_reasons"])
    return tables, frame


def test_moderators_recover_the_synthetic_context_effects(large):
    _, frame = large
    assert len(frame) > 2000
    lonely = models.moderator_analysis(frame, "lonely_baseline").iloc[0]
    attended = models.moderator_analysis(frame, "n_attended").iloc[0]
    deprived = models.moderator_analysis(frame, "most_deprived").iloc[0]
    assert TRUE_CHANGE["lonely_baseline"] > 0 and lonely["ci_low"] > 0
    assert TRUE_CHANGE["per_attended_contact"] > 0 and attended["ci_low"] > 0
    assert TRUE_CHANGE["most_deprived_decile"] < 0 and deprived["ci_high"] < 0
    assert "mixed model" in lonely["model"] and "Satterthwaite" in lonely["model"]
    assert lonely["n_level"] + lonely["n_reference"] == lonely["n"]
    assert lonely["context_level"] == "person"
    # The change-score interaction points the same way; the MDE is finite and positive.
    assert lonely["change_estimate"] > 0 and 0 < lonely["mde"] < lonely["estimate"]


def test_a_context_without_a_true_effect_is_not_found(large):
    _, frame = large
    # Sex plays no part in the synthetic change model.
    sex = models.moderator_analysis(frame[frame["sex"] != "other or unknown"], "sex").iloc[0]
    assert sex["ci_low"] < 0 < sex["ci_high"]


def test_multilevel_model_table(large):
    _, frame = large
    table = models.multilevel_model(frame)
    assert isinstance(table.attrs["fit"], MixedFit)
    table = table.set_index("term")
    assert table.loc["baseline", "estimate"] > 0.5
    assert table.loc["n_attended", "ci_low"] > 0
    assert table.loc["site variance (random intercept)", "estimate"] >= 0
    assert (table["n_sites"] == 6).all()
    assert table.loc["baseline", "df"] > 100  # a person-level term: many df


def test_fallback_to_fixed_site_effects_with_two_sites(large):
    _, frame = large
    two = frame[frame["site"].isin(["A", "B"])]
    table = models.multilevel_model(two)
    assert (table["model"] == "ols (fixed site effects)").all()
    assert table["term"].str.contains("C\\(site\\)").any()


def test_site_as_moderator_uses_fixed_effects(large):
    _, frame = large
    out = models.moderator_analysis(frame, "site")
    assert len(out) == 5 and (out["reference"] == "A").all()
    assert isinstance(out, pd.DataFrame)


def test_a_site_level_moderator_is_estimated_not_degenerate(demo):
    # Issue 12: statsmodels returned estimate -2e-16 with NaN SE/CI/p (log-likelihood +inf,
    # "converged"). The REML fit with Satterthwaite df must give finite numbers whose df
    # reflect the six sites, and say that the context is site-level.
    _, frame = demo
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing is hidden
        out = models.moderator_analysis(frame.assign(ctx=frame.site.eq("F")), "ctx").iloc[0]
    values = out[["estimate", "std_error", "df", "ci_low", "ci_high", "p_value", "mde"]]
    assert np.isfinite(values.astype(float)).all()
    assert abs(out["estimate"]) > 1e-6 and out["std_error"] > 0.1
    assert 1 < out["df"] < 6
    assert out["context_level"] == "site" and "context_meta_regression" in out["note"]


def test_singular_fits_are_reported_in_words():
    # Sites with identical true means: REML puts the site variance at zero.
    rng = np.random.default_rng(8)
    frame = pd.DataFrame({"site": np.repeat(list("ABCD"), 15),
                          "baseline": rng.normal(20, 3, 60)})
    frame["followup"] = frame["baseline"] + rng.normal(1, 2, 60)
    frame["x"] = rng.random(60) < 0.5
    found = False
    for seed in range(10):
        rng = np.random.default_rng(seed)
        frame["followup"] = frame["baseline"] + rng.normal(1, 2, 60)
        table = models.multilevel_model(frame, covariates="x")
        if table["singular"].all():
            found = True
            break
    assert found
    assert "site variance is estimated as zero" in table["note"].iloc[0]
    assert table.set_index("term").loc["site variance (random intercept)", "estimate"] == 0


def test_covariates_given_as_one_string_are_one_covariate(large):
    _, frame = large
    table = models.multilevel_model(frame, covariates="sex")
    assert set(table["term"]) == {"Intercept", "baseline", "C(sex)[T.male]",
                                  "C(sex)[T.other or unknown]",
                                  "site variance (random intercept)"}


@pytest.mark.parametrize(("call", "message"), [
    (lambda f: models.multilevel_model(f, covariates=["sexx"]), "'sexx'.*did you mean \"sex\""),
    (lambda f: models.multilevel_model(f.assign(one=1.0), covariates=["one"]),
     "covariate 'one' takes one value"),
    (lambda f: models.moderator_analysis(f, "lonely_baselin"), "'lonely_baselin'"),
    (lambda f: models.moderator_analysis(f.assign(k=True), "k"), "moderator 'k' takes one value"),
    (lambda f: models.moderator_analysis(f, "lonely_baseline", reference="maybe"),
     "reference 'maybe'"),
])
def test_clear_errors_name_the_column(demo, call, message):
    _, frame = demo
    with pytest.raises(ValueError, match=message):
        call(frame)


def test_unknown_instrument_is_named(demo):
    tables, _ = demo
    with pytest.raises(ValueError, match='unknown instrument score \'swembws\'.*"swemwbs"'):
        models.analysis_frame(tables["pairs"], tables["referrals"], "swembws")


def test_lonely_threshold_is_a_plain_argument(demo):
    tables, _ = demo
    low = models.analysis_frame(tables["pairs"], tables["referrals"], "swemwbs",
                                lonely_threshold=4)
    high = models.analysis_frame(tables["pairs"], tables["referrals"], "swemwbs",
                                 lonely_threshold=9)
    assert low["lonely_baseline"].sum() > high["lonely_baseline"].sum()


def test_regression_to_the_mean_check(large):
    _, frame = large
    out = models.moderator_analysis(frame, "lonely_baseline", reliability=0.85).iloc[0]
    # Lonely people start lower on wellbeing, so regression to the mean alone would raise
    # their change: rtm_expected = -(1 - 0.85) x baseline difference > 0.
    assert out["baseline_difference"] < 0
    assert out["rtm_expected"] == pytest.approx(-0.15 * out["baseline_difference"])
    assert np.isnan(models.moderator_analysis(frame, "lonely_baseline")["rtm_expected"].item())


def test_sensitivity_analyses_side_by_side(large):
    t, _ = large
    out = models.sensitivity_analyses(t["pairs"], t["referrals"], "swemwbs", n_imputations=5)
    assert out["analysis"].tolist()[0] == "complete cases, in window"
    mi = out.iloc[2]
    assert mi["analysis"].startswith("multiple imputation (5 imputations")
    assert mi["n"] > mi["n_observed"]
    assert mi["ci_low"] < mi["mean_change"] < mi["ci_high"]
    assert 4 < mi["df"] < mi["n"]  # Barnard-Rubin df
    # All agree on the direction of the synthetic improvement under missing at random.
    assert (out["mean_change"].iloc[:3] > 0).all()
    # Delta adjustment: missing follow-ups assumed worse (SWEMWBS: lower) pull the mean down.
    mnar = out[out["analysis"].str.startswith("not at random")]
    assert len(mnar) == 2 and (mnar["delta"] < 0).all()
    assert (mnar["mean_change"] < mi["mean_change"]).all()
    tip = out.attrs["tipping_point"]
    assert tip < 0
    last = out.iloc[-1]
    assert last["analysis"].startswith("tipping point") and abs(last["ci_low"]) < 1e-6


def test_sensitivity_analyses_are_reproducible_from_the_seed(demo):
    tables, _ = demo
    args = (tables["pairs"], tables["referrals"], "swemwbs")
    a = models.sensitivity_analyses(*args, n_imputations=10, seed=4)
    b = models.sensitivity_analyses(*args, n_imputations=10, seed=4)
    c = models.sensitivity_analyses(*args, n_imputations=10, seed=5)
    pd.testing.assert_frame_equal(a, b)
    assert a.attrs["tipping_point"] == b.attrs["tipping_point"]
    assert a.iloc[2]["mean_change"] != c.iloc[2]["mean_change"]


def test_minimum_detectable_difference():
    # With df = inf and 80% power: (1.959964 + 0.841621) SE.
    assert models.minimum_detectable(1.0) == pytest.approx(2.801585, abs=1e-6)
    assert models.minimum_detectable(1.0, df=4) > models.minimum_detectable(1.0, df=400)
