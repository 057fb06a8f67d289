"""Label synonyms, age bands and raw-value parsing."""

from __future__ import annotations

import pandas as pd
import pytest

from linkeval.parse import parse_dates, parse_whole_numbers, whole_years_between
from linkeval.vocab import VOCABULARIES, age_band, label_map, map_labels


@pytest.mark.parametrize(
    ("field", "label", "code"),
    [
        # The examples docs/design.md ('Vocabularies') promises work without configuration.
        ("referral_source", "GP", "gp"),
        ("referral_source", "General Practitioner", "gp"),
        ("referral_source", "  self REFERRAL ", "self"),
        ("mode", "Telephone", "telephone"),
        ("mode", "Phone", "telephone"),
        ("attended", "DNA", "false"),
        ("ethnicity", "Z", "unknown"),  # NHS ethnic category Z = not stated
        ("ethnicity", "R", "asian"),  # Chinese is in the Asian group in ONS 2021
        ("ethnicity", "White – British", "white"),
        ("timepoint", "T0", "baseline"),
    ],
)
def test_builtin_synonyms(field, label, code):
    codes, unmapped = map_labels(pd.Series([label]), field)
    assert codes.tolist() == [code]
    assert not unmapped.any()


def test_every_synonym_maps_to_a_code_of_its_vocabulary():
    for vocab, codes in VOCABULARIES.items():
        assert set(label_map(vocab).values()) <= set(codes), vocab


def test_site_override_wins_and_unmapped_becomes_other():
    raw = pd.Series(["Dr", "Café Connect", "Lunch club organiser", ""])
    codes, unmapped = map_labels(
        raw, "referral_source", {"Dr": "other_practice_staff", "cafe connect": "vcse"}
    )
    assert codes.tolist() == ["other_practice_staff", "vcse", "other", "unknown"]
    assert unmapped.tolist() == [False, False, True, False]


def test_unmapped_label_in_a_vocabulary_without_other_is_missing():
    codes, unmapped = map_labels(pd.Series(["Maybe", "Y"]), "attended")
    assert pd.isna(codes[0]) and codes[1] == "true"
    assert unmapped.tolist() == [True, False]


def test_age_band_boundaries():
    ages = pd.Series([17, 18, 24, 25, 34, 35, 64, 65, 74, 75, 84, 85, 104, None], dtype="Int64")
    assert age_band(ages).tolist()[:13] == [
        "<18",
        "18-24",
        "18-24",
        "25-34",
        "25-34",
        "35-44",
        "55-64",
        "65-74",
        "65-74",
        "75-84",
        "75-84",
        "85+",
        "85+",
    ]
    assert pd.isna(age_band(ages).iloc[13])


def test_dates_are_day_first_and_impossible_dates_are_bad():
    dates, bad = parse_dates(
        pd.Series(["03/05/2024", "2024-05-03 00:00:00", "31/02/2024", "", "05-Mar-2024", "soon"])
    )
    assert dates[0] == pd.Timestamp("2024-05-03") == dates[1]
    assert dates[4] == pd.Timestamp("2024-03-05")
    assert bad.tolist() == [False, False, True, False, False, True]


def test_explicit_date_format_is_strict():
    dates, bad = parse_dates(pd.Series(["2024-05-03", "03/05/2024"]), "%Y-%m-%d")
    assert dates[0] == pd.Timestamp("2024-05-03")
    assert bad.tolist() == [False, True]


def test_whole_numbers():
    numbers, bad = parse_whole_numbers(pd.Series(["12", "12.0", " 3 ", "x", "", "1.5"]))
    assert numbers.tolist()[:3] == [12, 12, 3]
    assert bad.tolist() == [False, False, False, True, False, True]


def test_repeated_values_are_read_once_and_land_on_their_rows():
    # Values are parsed once per distinct value and spread back: each row gets its own
    # value's result, whatever its index, blanks and missing values included.
    raw = ["03/05/2024", None, "x", "03/05/2024", "", "2024-01-02", "x", None]
    index = [70, 3, 12, 5, 99, 0, 41, 8]
    dates, bad = parse_dates(pd.Series(raw, index=index, dtype="str"))
    assert dates.index.tolist() == index and dates.dtype == "datetime64[s]"
    assert dates.dt.strftime("%Y-%m-%d").fillna("-").tolist() == [
        "2024-05-03",
        "-",
        "-",
        "2024-05-03",
        "-",
        "2024-01-02",
        "-",
        "-",
    ]
    assert bad.tolist() == [False, False, True, False, False, False, True, False]
    numbers, bad = parse_whole_numbers(
        pd.Series(["7", "x", None, "7.0", "2.5", "7"], index=[9, 8, 7, 6, 5, 4], dtype="str")
    )
    assert numbers.index.tolist() == [9, 8, 7, 6, 5, 4] and numbers.dtype == "Int64"
    assert numbers.tolist() == [7, pd.NA, pd.NA, 7, pd.NA, 7]
    assert bad.tolist() == [False, True, False, False, True, False]


def test_age_in_completed_years():
    dob = pd.Series(pd.to_datetime(["1960-03-01", "1960-03-02", "2000-02-29"]))
    on = pd.Series(pd.to_datetime(["2024-03-01", "2024-03-01", "2018-02-28"]))
    assert whole_years_between(dob, on).tolist() == [64, 63, 17]


@pytest.mark.parametrize(
    ("field", "label", "code"),
    [
        ("outcome", "871711000000103", "declined"),  # Social prescribing declined (situation)
        ("outcome", "Social prescribing declined", "declined"),
        ("reasons", "422650009", "loneliness_isolation"),  # Social isolation (finding)
        ("reasons", "366979004", "mental_wellbeing"),  # Depressed mood (finding)
        ("reasons", "Financial problem", "finance_debt_benefits"),
    ],
)
def test_snomed_concept_ids_and_terms_are_labels(field, label, code):
    codes, unmapped = map_labels(pd.Series([label]), field)
    assert codes.tolist() == [code] and not unmapped.any()


def test_snomed_referral_code_is_an_event_not_a_label():
    from linkeval.vocab import SNOMED_EVENTS, SNOMED_LABELS

    assert SNOMED_EVENTS == {"871731000000106": "referral"}
    assert SNOMED_LABELS["concept_id"].is_unique
    assert SNOMED_LABELS["source"].str.len().gt(0).all()
