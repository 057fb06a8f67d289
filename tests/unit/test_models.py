"""Cross-site models (issues 4 and 12): recovery of the synthetic truth, the fits that used to
fail silently, clear errors, and reproducible multiple imputation."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from linkeval.stats import models


@pytest.fixture(scope="module")
def demo(demo_clean):
    tables = demo_clean.tables
    frame = models.analysis_frame(
        tables["pairs"], tables["referrals"], "swemwbs", tables["referral_reasons"]
    )
    return tables, frame


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
    frame = pd.DataFrame({"site": np.repeat(list("ABCD"), 15), "baseline": rng.normal(20, 3, 60)})
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


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda f: models.multilevel_model(f, covariates=["sexx"]), "'sexx'.*did you mean \"sex\""),
        (
            lambda f: models.multilevel_model(f.assign(one=1.0), covariates=["one"]),
            "covariate 'one' takes one value",
        ),
        (lambda f: models.moderator_analysis(f, "lonely_baselin"), "'lonely_baselin'"),
        (
            lambda f: models.moderator_analysis(f.assign(k=True), "k"),
            "moderator 'k' takes one value",
        ),
        (
            lambda f: models.moderator_analysis(f, "lonely_baseline", reference="maybe"),
            "reference 'maybe'",
        ),
    ],
)
def test_clear_errors_name_the_column(demo, call, message):
    _, frame = demo
    with pytest.raises(ValueError, match=message):
        call(frame)


def test_unknown_instrument_is_named(demo):
    tables, _ = demo
    with pytest.raises(ValueError, match="unknown instrument score 'swembws'.*\"swemwbs\""):
        models.analysis_frame(tables["pairs"], tables["referrals"], "swembws")


def test_lonely_threshold_is_a_plain_argument(demo):
    tables, _ = demo
    low = models.analysis_frame(tables["pairs"], tables["referrals"], "swemwbs", lonely_threshold=4)
    high = models.analysis_frame(
        tables["pairs"], tables["referrals"], "swemwbs", lonely_threshold=9
    )
    assert low["lonely_baseline"].sum() > high["lonely_baseline"].sum()


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


def test_per_episode_pairs_are_not_repeated_by_the_loneliness_join():
    # One person referred twice (two episodes, each paired on both scores) and one referred once.
    pairs = pd.DataFrame(
        {
            "site": "A",
            "person_id": ["p", "p", "q"] * 2,
            "referral_id": ["1", "2", "3"] * 2,
            "instrument": ["swemwbs"] * 3 + ["ucla3"] * 3,
            "baseline": [20.0, 21, 22, 5, 8, 7],
            "followup": [22.0, 23, 24, 4, 5, 6],
            "change": [2.0, 2, 2, -1, -3, -1],
            "in_window": True,
        }
    )
    referrals = pd.DataFrame(
        {
            "site": "A",
            "referral_id": ["1", "2", "3"],
            "age_band": "25-34",
            "age_at_referral": 30,
            "sex": "female",
            "imd_decile": 3,
            "n_attended": 2,
        }
    )
    frame = models.analysis_frame(pairs, referrals, "swemwbs")
    assert len(frame) == 3
    # Each episode carries its own loneliness at the start: 5 (not lonely), 8 (lonely).
    assert frame.set_index("referral_id")["lonely_baseline"].to_dict() == {
        "1": False,
        "2": True,
        "3": True,
    }
