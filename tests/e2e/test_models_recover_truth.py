"""Cross-site models on the larger synthetic study: they recover the generator's true effects."""

from __future__ import annotations

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
    frame = models.analysis_frame(
        tables["pairs"], tables["referrals"], "swemwbs", tables["referral_reasons"]
    )
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


def test_covariates_given_as_one_string_are_one_covariate(large):
    _, frame = large
    table = models.multilevel_model(frame, covariates="sex")
    assert set(table["term"]) == {
        "Intercept",
        "baseline",
        "C(sex)[T.male]",
        "C(sex)[T.other or unknown]",
        "site variance (random intercept)",
    }


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
