"""Instrument scoring pinned against the published tables and thresholds."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from linkeval.errors import LinkevalError
from linkeval.instruments import (
    INSTRUMENTS,
    Settings,
    assign_bands,
    cronbach_alpha,
    item_values,
    score_items,
    settings_for,
)

# SWEMWBS raw total -> metric score, as published by Warwick Medical School (Stewart-Brown et
# al. 2009) and reproduced in Ng Fat et al. 2017; typed in here from the published table.
SWEMWBS_PUBLISHED = {
    7: 7.00,
    8: 9.51,
    9: 11.25,
    10: 12.40,
    11: 13.33,
    12: 14.08,
    13: 14.75,
    14: 15.32,
    15: 15.84,
    16: 16.36,
    17: 16.88,
    18: 17.43,
    19: 17.98,
    20: 18.59,
    21: 19.25,
    22: 19.98,
    23: 20.73,
    24: 21.54,
    25: 22.35,
    26: 23.21,
    27: 24.11,
    28: 25.03,
    29: 26.02,
    30: 27.03,
    31: 28.13,
    32: 29.31,
    33: 30.70,
    34: 32.55,
    35: 35.00,
}


def score_one(name: str, answers: list, settings: Settings | None = None) -> pd.DataFrame:
    inst = INSTRUMENTS[name]
    items = pd.DataFrame([answers], columns=list(inst.items), dtype="Float64")
    return score_items(items, inst, settings or Settings())


@pytest.mark.parametrize("raw", list(SWEMWBS_PUBLISHED))
def test_swemwbs_full_conversion_table(raw):
    # Answers summing to `raw`: spread over the seven 1-5 items.
    answers = [1] * 7
    extra = raw - 7
    for i in range(7):
        add = min(4, extra)
        answers[i] += add
        extra -= add
    out = score_one("swemwbs", answers)
    assert out["score"].iloc[0] == pytest.approx(SWEMWBS_PUBLISHED[raw])


def test_swemwbs_german_norm_examples():
    # shared/reference: raw 23 -> 20.73, raw 32 -> 29.31.
    assert score_one("swemwbs", [3, 3, 3, 3, 3, 4, 4])["score"].iloc[0] == pytest.approx(20.73)
    assert score_one("swemwbs", [5, 5, 5, 5, 4, 4, 4])["score"].iloc[0] == pytest.approx(29.31)


@pytest.mark.parametrize(
    ("name", "score_name", "boundaries"),
    [
        (
            "phq9",
            "phq9",
            {
                0: "minimal",
                4: "minimal",
                5: "mild",
                9: "mild",
                10: "moderate",
                14: "moderate",
                15: "moderately severe",
                19: "moderately severe",
                20: "severe",
                27: "severe",
            },
        ),
        (
            "gad7",
            "gad7",
            {
                0: "minimal",
                4: "minimal",
                5: "mild",
                9: "mild",
                10: "moderate",
                14: "moderate",
                15: "severe",
                21: "severe",
            },
        ),
        (
            "ons4",
            "ons4_life_satisfaction",
            {
                0: "low",
                4: "low",
                5: "medium",
                6: "medium",
                7: "high",
                8: "high",
                9: "very high",
                10: "very high",
            },
        ),
        ("ons4", "ons4_worthwhile", {4: "low", 5: "medium", 8: "high", 9: "very high"}),
        ("ons4", "ons4_happy", {4: "low", 5: "medium", 8: "high", 9: "very high"}),
        (
            "ons4",
            "ons4_anxious",
            {
                0: "very low",
                1: "very low",
                2: "low",
                3: "low",
                4: "medium",
                5: "medium",
                6: "high",
                10: "high",
            },
        ),
        ("ucla3", "ucla3", {3: "not lonely", 5: "not lonely", 6: "lonely", 9: "lonely"}),
        (
            "ons_loneliness",
            "ons_loneliness",
            {
                1: "never",
                2: "hardly ever",
                3: "occasionally",
                4: "some of the time",
                5: "often/always",
            },
        ),
    ],
)
def test_every_band_boundary(name, score_name, boundaries):
    spec = INSTRUMENTS[name].score(score_name)
    values = pd.Series(list(boundaries), dtype="Float64")
    assert assign_bands(values, spec, Settings()).tolist() == list(boundaries.values())


def test_ucla3_threshold_is_configurable():
    spec = INSTRUMENTS["ucla3"].score("ucla3")
    bands = assign_bands(
        pd.Series([6.0, 7.0]), spec, settings_for("ucla3", {"lonely_threshold": 7})
    )
    assert bands.tolist() == ["not lonely", "lonely"]


def test_sums_and_directions():
    assert score_one("phq9", [3] * 9)["score"].iloc[0] == 27
    assert score_one("gad7", [0, 1, 2, 3, 0, 1, 2])["score"].iloc[0] == 9
    assert score_one("wemwbs", [5] * 14)["score"].iloc[0] == 70
    assert score_one("ucla3", [1, 2, 3])["score"].iloc[0] == 6
    out = score_one("ons4", [7, 8, 6, 2]).set_index("score_name")["score"]
    assert out.to_dict() == {
        "ons4_life_satisfaction": 7,
        "ons4_worthwhile": 8,
        "ons4_happy": 6,
        "ons4_anxious": 2,
    }
    directions = {s.name: s.higher_is_better for i in INSTRUMENTS.values() for s in i.scores}
    assert not directions["phq9"] and not directions["gad7"] and not directions["ucla3"]
    assert not directions["ons4_anxious"] and directions["ons4_happy"] and directions["swemwbs"]


@pytest.mark.parametrize(
    ("name", "labels"),
    [
        (
            "swemwbs",
            {
                "None of the time": 1,
                "Rarely": 2,
                "Some of the time": 3,
                "Often": 4,
                "All of the time": 5,
            },
        ),
        ("ucla3", {"Hardly ever or never": 1, "Hardly ever": 1, "Some of the time": 2, "Often": 3}),
        (
            "phq9",
            {
                "Not at all": 0,
                "Several days": 1,
                "More than half the days": 2,
                "Nearly every day": 3,
            },
        ),
        ("gad7", {"not at all": 0, "NEARLY EVERY DAY": 3}),
        (
            "ons_loneliness",
            {
                "Never": 1,
                "Hardly ever": 2,
                "Occasionally": 3,
                "Some of the time": 4,
                "Often/always": 5,
            },
        ),
    ],
)
def test_response_label_maps(name, labels):
    values, invalid = item_values(pd.Series(list(labels)), INSTRUMENTS[name])
    assert values.tolist() == list(labels.values())
    assert not invalid.any()


def test_out_of_range_and_unreadable_answers_are_invalid_not_coerced():
    values, invalid = item_values(
        pd.Series(["0", "6", "2.5", "sometimes", "", "3"]), INSTRUMENTS["swemwbs"]
    )
    assert invalid.tolist() == [True, True, True, True, False, False]
    assert values.isna().tolist() == [True, True, True, True, True, False]


def test_reversed_items_are_reversed_before_scoring():
    base = INSTRUMENTS["ucla3"]
    reversed_def = replace(base, reversed_items=("left_out",))
    items = pd.DataFrame([[1, 1, 1]], columns=list(base.items), dtype="Float64")
    assert score_items(items, base, Settings())["score"].iloc[0] == 3
    assert score_items(items, reversed_def, Settings())["score"].iloc[0] == 5  # 1 + 3 + 1


def test_any_missing_item_means_not_scored_with_a_reason():
    out = score_one("swemwbs", [3, 3, None, 3, 3, 3, 3])
    assert not out["scored"].iloc[0] and pd.isna(out["score"].iloc[0])
    assert out["not_scored_reason"].iloc[0] == "1 of 7 items missing (at most 0 allowed)"
    assert out["n_missing"].iloc[0] == 1


def test_scores_text_columns_are_categoricals_of_the_values_they_hold():
    # ONS4: four scores, each with its bands; two completions, one with an item missing.
    items = pd.DataFrame([[7, 8, 6, 2], [9, None, 1, 10]], columns=list(INSTRUMENTS["ons4"].items))
    out = score_items(items.astype("Float64"), INSTRUMENTS["ons4"], Settings())
    for column in ["score_name", "band", "not_scored_reason"]:
        values = out[column]
        assert isinstance(values.dtype, pd.CategoricalDtype)
        assert list(values.cat.categories) == sorted(values.dropna().unique())
    assert out["not_scored_reason"].dropna().tolist() == [
        "1 of 1 items missing (at most 0 allowed)"
    ]
    assert out["band"].isna().tolist() == out["score"].isna().tolist()


def test_wemwbs_person_mean_prorating_when_configured():
    answers = [4] * 12 + [2, None]  # 13 answered, sum 50, mean 50/13
    strict = score_one("wemwbs", answers)
    assert not strict["scored"].iloc[0]
    lenient = score_one("wemwbs", answers, settings_for("wemwbs", {"max_missing": 2}))
    assert lenient["score"].iloc[0] == pytest.approx(50 / 13 * 14)
    too_many = score_one(
        "wemwbs", [4] * 11 + [None] * 3, settings_for("wemwbs", {"max_missing": 2})
    )
    assert not too_many["scored"].iloc[0]


def test_prorating_refused_where_no_rule_is_published():
    with pytest.raises(LinkevalError, match="scored only when every item is answered"):
        settings_for("swemwbs", {"max_missing": 1})
    with pytest.raises(LinkevalError, match='did you mean "max_missing"'):
        settings_for("wemwbs", {"max_mising": 1})


def test_cronbach_alpha_by_hand_and_by_covariances():
    # Items (1,2,3) and (2,3,5): item variances 1 and 7/3, total variance 19/3:
    # alpha = 2 * (1 - (10/3) / (19/3)) = 18/19.
    items = pd.DataFrame({"a": [1, 2, 3], "b": [2, 3, 5]})
    assert cronbach_alpha(items) == pytest.approx(18 / 19)
    # Covariance form, k * mean covariance / (mean variance + (k - 1) * mean covariance),
    # computed independently with numpy on random data.
    rng = np.random.default_rng(3)
    latent = rng.normal(size=200)
    data = pd.DataFrame({f"i{j}": latent + rng.normal(size=200) for j in range(5)})
    cov = np.cov(data.to_numpy(), rowvar=False)
    k = cov.shape[0]
    mean_var = np.trace(cov) / k
    mean_cov = (cov.sum() - np.trace(cov)) / (k * (k - 1))
    assert cronbach_alpha(data) == pytest.approx(k * mean_cov / (mean_var + (k - 1) * mean_cov))


def test_every_instrument_cites_its_source_and_has_a_consistent_definition():
    for inst in INSTRUMENTS.values():
        assert inst.source
        assert inst.item_min < inst.item_max
        for spec in inst.scores:
            assert set(spec.items) <= set(inst.items)
