"""Pairing rules, Jacobson-Truax reliable change, MID and attrition."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from linkeval.instruments import INSTRUMENTS, Settings, cronbach_alpha
from linkeval.schema import plain
from linkeval.stats.attrition import attrition_table, followup_rates
from linkeval.stats.pairing import (
    add_change_indicators,
    alpha_from_sums,
    alpha_sums,
    baseline_sds,
    pair_scores,
    reliabilities,
    reliable_change_index,
)


def scores(rows):
    """rows: (person, timepoint, date, score[, scored]) for SWEMWBS at site S."""
    out = pd.DataFrame(
        rows,
        columns=["person_id", "timepoint", "completed_date", "score", "scored"][: len(rows[0])],
    )
    if "scored" not in out:
        out["scored"] = True
    out["site"], out["instrument"], out["referral_id"], out["band"] = "S", "swemwbs", "R", None
    out["completed_date"] = pd.to_datetime(out["completed_date"])
    out["score"] = out["score"].astype("Float64")
    return out


def test_earliest_baseline_and_first_in_window_followup():
    pairs, excluded = pair_scores(
        scores(
            [
                ("p", "baseline", "2024-01-10", 20.0),
                ("p", "baseline", "2024-01-03", 18.0),  # several baselines: earliest wins
                ("p", "followup", "2024-08-01", 30.0),  # 211 days: too early
                ("p", "followup", "2024-10-30", 24.0),  # 301 days: first in window
                ("p", "followup", "2024-12-01", 26.0),  # 333 days: in window but later
            ]
        )
    )
    row = pairs.iloc[0]
    assert (row["baseline"], row["followup"], row["change"]) == (18.0, 24.0, 6.0)
    assert row["days_between"] == 301 and row["in_window"]
    assert excluded.empty


def test_out_of_window_followup_is_kept_and_marked():
    pairs, _ = pair_scores(
        scores([("p", "baseline", "2024-01-01", 20.0), ("p", "followup", "2025-03-01", 25.0)])
    )  # 425 days
    assert pairs["followup"].iloc[0] == 25.0 and not pairs["in_window"].iloc[0]


def test_window_is_configurable():
    pairs, _ = pair_scores(
        scores([("p", "baseline", "2024-01-01", 20.0), ("p", "followup", "2025-03-01", 25.0)]),
        window=(180, 450),
    )
    assert pairs["in_window"].iloc[0]


def test_followup_first_is_excluded_and_reported():
    pairs, excluded = pair_scores(
        scores([("p", "followup", "2023-12-01", 30.0), ("p", "baseline", "2024-01-01", 20.0)])
    )
    assert pd.isna(pairs["followup"].iloc[0]) and not pairs["in_window"].iloc[0]
    assert excluded["reason"].tolist() == ["followup_before_baseline"]


def test_followup_without_baseline_and_unscored_baseline():
    pairs, excluded = pair_scores(
        scores(
            [
                ("q", "followup", "2024-12-01", 30.0, True),
                ("r", "baseline", "2024-01-01", None, False),
                ("r", "followup", "2024-11-01", 22.0, True),
            ]
        )
    )
    assert pairs.empty
    assert sorted(excluded["reason"]) == ["no_baseline", "no_baseline"]


def test_reliable_change_index_by_hand():
    # s1 = 5, r = 0.84: SE = 5 * 0.4 = 2, S_diff = sqrt(2 * 4) = 2.828427; change 6 -> 2.1213.
    rc = reliable_change_index(pd.Series([6.0, -6.0, 5.0]), baseline_sd=5.0, reliability=0.84)
    assert rc.tolist() == pytest.approx([6 / np.sqrt(8), -6 / np.sqrt(8), 5 / np.sqrt(8)])


def _pairs(instrument, baseline, change):
    b = np.asarray(baseline, dtype=float)
    c = np.asarray(change, dtype=float)
    return pd.DataFrame(
        {
            "site": "S",
            "person_id": [f"p{i}" for i in range(len(b))],
            "instrument": instrument,
            "baseline": pd.array(b, dtype="Float64"),
            "followup": pd.array(b + c, dtype="Float64"),
            "change": pd.array(c, dtype="Float64"),
            "improved_reliably": pd.NA,
            "deteriorated_reliably": pd.NA,
            "met_mid_improvement": pd.NA,
        }
    )


def test_reliable_change_respects_direction_and_mid():
    # Baselines 10, 20 -> SD 7.0711; r = 0.92 -> SE = 2.0, S_diff = 2.8284, threshold 5.54.
    up = add_change_indicators(_pairs("swemwbs", [10, 20], [6, -6]), {"swemwbs": 0.92})
    assert up["improved_reliably"].tolist() == [True, False]
    assert up["deteriorated_reliably"].tolist() == [False, True]
    assert up["met_mid_improvement"].tolist() == [True, False]  # MID 3
    down = add_change_indicators(_pairs("phq9", [10, 20], [6, -6]), {"phq9": 0.92})
    assert down["improved_reliably"].tolist() == [False, True]  # lower PHQ-9 is better
    assert down["met_mid_improvement"].tolist() == [False, True]  # MID 5


def test_configured_reliability_and_mid_win():
    p = add_change_indicators(
        _pairs("swemwbs", [10, 20], [2, 1]),
        {"swemwbs": 0.92},
        {"swemwbs": Settings(reliability=0.999, mid=1.5)},
    )
    assert p["improved_reliably"].tolist() == [True, True]
    assert p["met_mid_improvement"].tolist() == [True, False]


def test_single_item_scores_have_no_reliable_change_without_configured_reliability():
    p = add_change_indicators(_pairs("ons4_happy", [4, 6], [3, 1]), {})
    assert p["improved_reliably"].isna().all() and p["met_mid_improvement"].isna().all()


def test_a_part_of_the_study_is_flagged_with_the_whole_studys_baseline_sd():
    # The study: baselines 10, 20 (site A) and 30, 40 (site B), SD 12.91; r = 0.92 gives
    # S_diff = 12.91 x sqrt(0.08) x sqrt(2) = 5.164 and a threshold of 10.12. Site A alone has
    # SD 7.07 and a threshold of 5.54, which a change of 8 would pass.
    a = _pairs("swemwbs", [10, 20], [8, -11])
    b = _pairs("swemwbs", [30, 40], [1, 2]).assign(site="B")
    sds = baseline_sds([a, b])
    assert sds["swemwbs"] == pytest.approx(12.909944, abs=1e-6)  # sd(c(10, 20, 30, 40)) in R
    flagged = add_change_indicators(a, {"swemwbs": 0.92}, baseline_sd=sds)
    assert flagged["improved_reliably"].tolist() == [False, False]
    assert flagged["deteriorated_reliably"].tolist() == [False, True]
    whole = add_change_indicators(pd.concat([a, b], ignore_index=True), {"swemwbs": 0.92})
    pd.testing.assert_frame_equal(flagged, whole.iloc[:2])
    alone = add_change_indicators(a, {"swemwbs": 0.92})
    assert alone["improved_reliably"].tolist() == [True, False]


def test_attrition_table_and_followup_rates():
    pairs = pd.DataFrame(
        {
            "site": "S",
            "person_id": ["a", "b", "c", "d"],
            "referral_id": ["1", "2", "3", "4"],
            "instrument": "swemwbs",
            "baseline": [20.0, 22.0, 18.0, 24.0],
            "followup": [21.0, None, 19.0, None],
            "in_window": [True, False, True, False],
        }
    )
    referrals = pd.DataFrame(
        {
            "site": "S",
            "referral_id": ["1", "2", "3", "4"],
            "age_band": ["65-74", "65-74", "25-34", "25-34"],
            "sex": ["female", "male", "female", "female"],
            "imd_decile": [1, 2, 9, 10],
        }
    )
    rates = followup_rates(pairs)
    assert rates[["n_baseline", "n_followed_up", "pct_followed_up"]].iloc[0].tolist() == [
        4,
        2,
        50.0,
    ]
    table = attrition_table(pairs, referrals, instrument="swemwbs").set_index(["variable", "level"])
    female = table.loc[("sex", "female")]
    # followed up: 2 of 2 female; not followed up: 1 of 2 -> p1 = 1, p0 = 0.5
    assert (female["followed_up"], female["not_followed_up"]) == (2, 1)
    assert female["smd"] == pytest.approx((1 - 0.5) / np.sqrt((0 + 0.25) / 2))
    base = table.loc[("baseline swemwbs", "")]
    # means 19 vs 23, SDs 1.4142 and 1.4142 -> SMD = -4 / 1.4142
    assert base["smd"] == pytest.approx(-4 / np.sqrt(2))


def test_reliabilities_from_long_baseline_responses():
    # UCLA-3 at baseline for three people: (1,2,3), (2,3,3) and (1,1,1).
    # Alpha by hand: item variances 1/3, 1 and 4/3 (sum 8/3); totals 6, 8 and 3 with
    # variance 19/3; alpha = 3/2 * (1 - (8/3) / (19/3)) = 3/2 * 11/19 = 33/38.
    items = ("lack_companionship", "left_out", "isolated")
    wide = {"p1": (1, 2, 3), "p2": (2, 3, 3), "p3": (1, 1, 1)}
    rows = [
        ("S", p, "2024-01-01", "baseline", item, v)
        for p, values in wide.items()
        for item, v in zip(items, values, strict=True)
    ]
    rows += [
        ("S", "p1", "2024-01-01", "baseline", items[0], 3),  # a repeat: the first wins
        ("S", "p4", "2024-01-01", "baseline", items[0], 2),  # incomplete: left out
        ("S", "p4", "2024-01-01", "baseline", items[1], None),
        ("S", "p4", "2024-01-01", "baseline", items[2], 2),
        ("S", "p1", "2024-12-01", "followup", items[0], 3),
    ]  # follow-ups are not used
    responses = pd.DataFrame(
        rows, columns=["site", "person_id", "completed_date", "timepoint", "item", "value"]
    ).assign(instrument="ucla3")
    responses["value"] = responses["value"].astype("Float64")
    responses["completed_date"] = pd.to_datetime(responses["completed_date"])
    assert reliabilities(responses) == {"ucla3": pytest.approx(33 / 38)}


# -- per person or per episode (the config's `pairing`) ---------------------------------------


def two_episodes():
    """One person referred twice: a baseline and follow-up in each referral."""
    s = scores(
        [
            ("p", "baseline", "2023-01-10", 18.0),
            ("p", "followup", "2023-11-01", 22.0),
            ("p", "baseline", "2024-03-01", 16.0),
            ("p", "followup", "2024-12-20", 25.0),
            ("q", "followup", "2024-12-01", 30.0),
        ]
    )
    s["referral_id"] = ["R1", "R1", "R2", "R2", "R3"]
    return s


def test_per_person_pairs_the_earliest_baseline_whatever_the_referral():
    pairs, excluded = pair_scores(two_episodes())
    assert len(pairs) == 1
    row = pairs.iloc[0]
    assert (row["referral_id"], row["baseline"], row["followup"]) == ("R1", 18.0, 22.0)
    assert excluded["reason"].tolist() == ["no_baseline"]  # q's follow-up


def test_per_episode_pairs_each_referral_with_its_own_forms():
    pairs, excluded = pair_scores(two_episodes(), pairing="per_episode")
    assert pairs[["referral_id", "baseline", "followup", "days_between"]].values.tolist() == [
        ["R1", 18.0, 22.0, 295],
        ["R2", 16.0, 25.0, 294],
    ]
    assert pairs["in_window"].all()
    assert excluded["reason"].tolist() == ["no_baseline"]


def test_per_episode_does_not_pair_a_followup_with_another_referrals_baseline():
    s = scores([("p", "baseline", "2023-01-10", 18.0), ("p", "followup", "2023-11-01", 22.0)])
    s["referral_id"] = ["R1", "R2"]  # the follow-up belongs to the next referral
    per_person, _ = pair_scores(s)
    per_episode, excluded = pair_scores(s, pairing="per_episode")
    assert per_person["followup"].tolist() == [22.0]
    assert per_episode["referral_id"].tolist() == ["R1"]
    assert per_episode["followup"].isna().all()
    assert excluded["referral_id"].tolist() == ["R2"]
    assert excluded["reason"].tolist() == ["no_baseline"]


def test_one_person_one_episode_pairs_the_same_either_way():
    s = scores(
        [
            ("p", "baseline", "2024-01-03", 18.0),
            ("p", "followup", "2024-10-30", 24.0),
            ("r", "baseline", "2024-02-01", 20.0),
        ]
    )
    a, _ = pair_scores(s)
    b, _ = pair_scores(s, pairing="per_episode")
    pd.testing.assert_frame_equal(a, b)


def test_unknown_pairing_is_refused():
    with pytest.raises(ValueError, match="per_person, per_episode"):
        pair_scores(two_episodes(), pairing="per_referral")


def test_config_pairing_defaults_to_per_person_and_refuses_others(tmp_path):
    from linkeval.config import parse_config
    from linkeval.errors import LinkevalError

    raw = {
        "study": "S",
        "raw_dir": "raw",
        "processed_dir": "out",
        "reports_dir": "rep",
        "sites": {
            "X": {
                "sources": [
                    {
                        "table": "referrals",
                        "path": "x/r.csv",
                        "columns": {
                            "referral_id": "Ref",
                            "referral_date": "Date",
                            "nhs_number": "NHS",
                        },
                    }
                ]
            }
        },
    }
    assert parse_config(raw, tmp_path / "s.yaml").pairing == "per_person"
    assert (
        parse_config({**raw, "pairing": "per_episode"}, tmp_path / "s.yaml").pairing
        == "per_episode"
    )
    with pytest.raises(LinkevalError, match='pairing: .*did you mean "per_episode"'):
        parse_config({**raw, "pairing": "per_epsiode"}, tmp_path / "s.yaml")


def test_alpha_added_up_from_the_sites_is_alpha_of_the_whole_study():
    # Three sites' PHQ-9 baselines, with missing answers (incomplete completions are left
    # out) and one site too small to have an alpha of its own.
    rng = np.random.default_rng(5)
    items = INSTRUMENTS["phq9"].scores[0].items
    parts, wides = [], []
    for site, n in (("A", 400), ("B", 250), ("C", 1)):
        trait = rng.normal(size=(n, 1))
        values = np.clip(np.round(1.2 + trait + rng.normal(size=(n, len(items)))), 0, 3)
        values[rng.random(values.shape) < 0.03] = np.nan
        wide = pd.DataFrame(values, columns=list(items))
        wides.append(wide)
        long = wide.rename_axis("person_id").reset_index().melt("person_id", var_name="item")
        parts.append(
            long.assign(
                site=site,
                completed_date=pd.Timestamp("2024-01-01"),
                timepoint="baseline",
                instrument="phq9",
                value=long["value"].astype("Float64"),
            )
        )
    expected = cronbach_alpha(pd.concat(wides, ignore_index=True))  # pandas variances
    added = alpha_from_sums(pd.concat([alpha_sums(p) for p in parts], ignore_index=True))
    assert added["phq9"] == pytest.approx(expected, rel=1e-12)
    assert reliabilities(pd.concat(parts, ignore_index=True))["phq9"] == pytest.approx(expected)
    assert np.isnan(alpha_from_sums(alpha_sums(parts[2]))["phq9"])  # one completion: no alpha


def test_categorical_scores_pair_and_log_as_text_does():
    # The cleaner pairs categoricals, whose categories come in first-seen order: pairs and
    # exclusions follow the values' order, as with text.
    rng = np.random.default_rng(2)
    n = 400
    text = pd.DataFrame(
        {
            "site": "S",
            "person_id": rng.choice(["p9", "p1", "p5", "p3", "p7"], n),
            "referral_id": rng.choice(["r2", "r1", None], n),
            "timepoint": rng.choice(["followup", "baseline"], n),
            "completed_date": pd.Timestamp("2024-01-01")
            + pd.to_timedelta(rng.integers(0, 700, n), "D"),
            "instrument": rng.choice(["ucla3", "swemwbs", "gad7"], n),
            "score": rng.integers(3, 20, n).astype(float),
            "band": None,
            "scored": True,
        }
    )
    coded = text.astype({c: "category" for c in ("person_id", "referral_id", "instrument")})
    for c in ("person_id", "instrument"):  # first-seen order, not sorted
        coded[c] = coded[c].cat.reorder_categories(list(dict.fromkeys(text[c])))
    for pairing in ("per_person", "per_episode"):
        pairs, excluded = pair_scores(text, pairing=pairing)
        coded_pairs, coded_excluded = pair_scores(coded, pairing=pairing)
        pd.testing.assert_frame_equal(plain(coded_pairs), pairs, check_dtype=False)
        pd.testing.assert_frame_equal(plain(coded_excluded), excluded, check_dtype=False)


def test_alpha_from_sums_is_missing_when_the_totals_do_not_vary():
    # Fractional answers whose totals are all equal: rounding leaves a variance of 2e-16
    # (not 0) in the sums' formula, which must not become an alpha.
    x = np.column_stack([np.full(5, 0.5), np.full(5, 0.6)])
    x = np.column_stack([x, x.sum(axis=1)])
    sums = pd.DataFrame(
        {"score": "s", "item": ["a", "b", ""], "n": 5, "sum": x.sum(0), "sum_sq": (x**2).sum(0)}
    )
    total = sums.iloc[2]
    assert (total["sum_sq"] - total["sum"] ** 2 / 5) / 4 > 0  # the trace of rounding
    assert np.isnan(alpha_from_sums(sums)["s"])
