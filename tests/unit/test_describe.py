"""Descriptive tables on small hand-made data."""

from __future__ import annotations

import pandas as pd
import pytest

from linkeval.stats import describe


@pytest.fixture
def referrals():
    return pd.DataFrame(
        {
            "site": ["A", "A", "A", "B"],
            "referral_id": ["1", "2", "3", "4"],
            "referral_date": pd.to_datetime(
                ["2024-01-05", "2024-01-20", "2024-03-02", "2024-02-01"]
            ),
            "referral_source": ["gp", "gp", "self", "vcse"],
            "age_at_referral": [30, 70, 80, None],
            "age_band": ["25-34", "65-74", "75-84", None],
            "sex": ["female", "male", "female", "unknown"],
            "ethnicity": ["white", "asian", "white", "unknown"],
            "imd_decile": [1, 2, 10, None],
            "n_contacts": [3, 0, 1, None],
            "n_attended": [2, 0, 0, 4],
            "n_onward_referrals": [1, 0, 0, None],
            "days_to_first_contact": [7, None, None, 10],
            "outcome": ["completed", "declined", "ongoing", None],
        }
    )


def test_referrals_per_month_fills_empty_months(referrals):
    out = describe.referrals_per_month(referrals[referrals["site"] == "A"], rolling=2)
    assert out["referrals"].tolist() == [2, 0, 1]
    assert out["rolling_mean"].tolist() == [2.0, 1.0, 0.5]
    by_site = describe.referrals_per_month(referrals, by="site")
    assert by_site.groupby("site")["referrals"].sum().to_dict() == {"A": 3, "B": 1}


def test_sources_include_zero_levels_and_percentages(referrals):
    out = describe.referral_sources(referrals).set_index("referral_source")
    assert out.loc["gp", "n"] == 2 and out.loc["gp", "pct"] == 50.0
    assert out.loc["pharmacy", "n"] == 0


def test_reasons_are_multi_response(referrals):
    reasons = pd.DataFrame(
        {
            "site": ["A", "A", "A", "B"],
            "referral_id": ["1", "1", "2", "4"],
            "reason": ["loneliness_isolation", "housing", "loneliness_isolation", "housing"],
        }
    )
    out = describe.referral_reasons(referrals, reasons, by="site").set_index(["site", "reason"])
    assert out.loc[("A", "loneliness_isolation"), "pct"] == pytest.approx(200 / 3)
    assert out.loc[("A", "housing"), "n"] == 1 and out.loc[("B", "housing"), "pct"] == 100


def test_table_one_shows_missing(referrals):
    out = describe.table_one(referrals)
    age = out[(out["variable"] == "age") & (out["statistic"] == "mean (SD)")].iloc[0]
    assert age["mean"] == pytest.approx(60) and age["missing"] == 1
    bands = out[out["variable"] == "age_band"].set_index("level")
    assert bands.loc["missing", "n"] == 1
    quint = out[out["variable"] == "imd_quintile"].set_index("level")
    assert quint.loc["1", "n"] == 2 and quint.loc["5", "n"] == 1


def test_engagement_funnel(referrals):
    pairs = pd.DataFrame(
        {
            "site": ["A", "B"],
            "referral_id": ["1", "4"],
            "followup": [20.0, None],
            "in_window": [True, False],
        }
    )
    out = describe.engagement_funnel(referrals, pairs).set_index("stage")
    assert out["n"].tolist() == [4, 2, 2, 1, 2, 1]
    assert out.loc["engaged", "pct_of_referred"] == 50
    assert out.loc["paired follow-up", "pct_of_previous"] == 50


def test_contact_summaries_and_dna_rate(referrals):
    s = describe.contacts_per_referral(referrals).iloc[0]
    assert (s["n"], s["missing"], s["median"]) == (3, 1, 1)
    contacts = pd.DataFrame(
        {
            "site": "A",
            "mode": ["telephone", "telephone", "group", "video"],
            "attended": pd.array([True, False, None, True], dtype="boolean"),
        }
    )
    dna = describe.dna_rate(contacts).iloc[0]
    assert (dna["contacts"], dna["dna"]) == (3, 1)
    modes = describe.contact_modes(contacts).set_index("mode")
    assert modes.loc["telephone", "pct"] == 50


def test_table_one_shows_rural_or_urban_area_only_where_the_study_derives_it():
    from linkeval.stats.describe import table_one

    referrals = pd.DataFrame(
        {
            "age_at_referral": [30, 40, 50],
            "age_band": ["25-34", "35-44", "45-54"],
            "sex": ["female", "male", "female"],
            "ethnicity": ["white", "asian", "white"],
            "imd_decile": [1, 5, 9],
        }
    )
    assert "rural_urban" not in set(table_one(referrals)["variable"])
    with_area = table_one(referrals.assign(rural_urban=["urban", "rural", None]))
    rows = with_area[with_area["variable"] == "rural_urban"].set_index("level")["n"]
    assert rows.to_dict() == {"urban": 1, "rural": 1, "missing": 1}
