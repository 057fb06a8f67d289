"""Coded-event exports (a GP clinical-system search, one row per coded event) made into
referrals, with every event row kept or rejected (docs/standard.md, 'Coded-event exports')."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

from linkeval.cleaning import clean_study
from linkeval.cleaning.events import is_snomed_id, normalise_codes
from linkeval.config import load_config
from linkeval.errors import LinkevalError

KEY = b"test-key-for-linkeval-unit-tests"
TODAY = pd.Timestamp("2026-11-24")
P1, P2, P3, P4 = "932 492 2823", "9382294228", "9395046171", "9303485246"
REFERRAL, DECLINED = "871731000000106", "871711000000103"
HEADER = "NHS Number,Date of Birth,Gender,Ethnicity,Event Date,Code,Term,Value\n"
EVENTS = [  # (row, line): row numbers are the data rows of the file
    (1, f"{P1},01/02/1950,F,A - White - British,05/03/2024,422650009,Social isolation,"),
    (2, f"{P1},01/02/1950,F,A - White - British,05/03/2024,{REFERRAL},Referral to SP,"),
    (3, f"{P1},01/02/1950,F,A - White - British,20/03/2024,LW01,Case closed,"),
    (4, f"{P1},01/02/1950,F,A - White - British,10/04/2024,{DECLINED},SP declined,"),
    (5, f"{P1},01/02/1950,F,A - White - British,01/09/2024,{REFERRAL},Referral to SP,"),
    (6, f"{P1},01/02/1950,F,A - White - British,01/09/2024,{REFERRAL},Referral (dup),"),
    (7, f"{P1},01/02/1950,F,A - White - British,02/09/2024,160932005,Financial problem,"),
    (8, f"{P2},03/04/1960,M,H,01/01/2024,48694002,Anxiety,"),
    (9, f"{P2},03/04/1960,M,H,15/01/2024,{REFERRAL},Referral to SP,"),
    (10, f"{P2},03/04/1960,M,H,16/01/2024,163020007,BP reading,128/82"),
    (11, f"{P3},01/01/2012,F,Z,01/02/2024,{REFERRAL},Referral to SP,"),
    (12, f"{P3},01/01/2012,F,Z,01/02/2024,422650009,Social isolation,"),
    (13, ",,,,,,,"),
    (14, f"{P2},03/04/1960,M,H,15/01/2024,{REFERRAL},Referral to SP,"),
    (15, f"9382294229,03/04/1960,M,H,15/01/2024,{REFERRAL},Referral to SP,"),
    (16, f"{P4},05/05/1955,M,C,31/02/2024,{REFERRAL},Referral to SP,"),
    (17, f"{P4},05/05/1955,M,C,01/03/2024,{REFERRAL}.0,Referral to SP,"),
    (18, f"{P4},05/05/1955,M,C,02/03/2024,LW02,Open,"),
]
EXPECTED_REJECTIONS = {
    8: "no_referral",
    10: "unknown_code",
    11: "under_18",
    12: "referral_rejected",
    13: "blank_row",
    14: "duplicate_row",
    15: "invalid_nhs_number",
    16: "unparseable_date",
}
SOURCE = {
    "table": "coded_events",
    "path": "g/search.csv",
    "columns": {
        "nhs_number": "NHS Number",
        "date_of_birth": "Date of Birth",
        "sex": "Gender",
        "ethnicity": "Ethnicity",
        "event_date": "Event Date",
        "code": "Code",
    },
    "events": {"outcome_codes": {"LW01": "completed", "LW02": "ongoing"}},
}


def write(tmp_path, events=EVENTS, source=None, extra=None, questionnaires=None):
    folder = tmp_path / "raw" / "g"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "search.csv").write_text(
        HEADER + "\n".join(line for _, line in events) + "\n", encoding="utf-8"
    )
    sources = [source or SOURCE]
    if questionnaires:
        (folder / "q.csv").write_text(questionnaires, encoding="utf-8")
        sources.append(
            {
                "table": "questionnaires",
                "path": "g/q.csv",
                "columns": {"nhs_number": "NHS", "completed_date": "Date", "timepoint": "Stage"},
                "items": {"ons4": ["O1", "O2", "O3", "O4"]},
            }
        )
    cfg = {
        "study": "Coded events",
        "raw_dir": "raw",
        "processed_dir": "processed",
        "reports_dir": "reports",
        "sites": {"G": {"sources": sources}},
        **(extra or {}),
    }
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    return load_config(path)


@pytest.fixture
def result(tmp_path):
    return clean_study(write(tmp_path), key=KEY, today=TODAY)


def test_events_become_referral_episodes(result):
    ref = result.tables["referrals"].set_index("referral_id")
    assert sorted(ref.index) == [
        "g/search.csv#17",
        "g/search.csv#2",
        "g/search.csv#5",
        "g/search.csv#9",
    ]
    first = ref.loc["g/search.csv#2"]
    # The later outcome wins and its date is the discharge date; same-day reason attaches.
    assert first["outcome"] == "declined"
    assert first["discharge_date"] == pd.Timestamp("2024-04-10")
    assert first["referral_date"] == pd.Timestamp("2024-03-05")
    assert (first["sex"], first["ethnicity"], first["age_at_referral"]) == ("female", "white", 74)
    second = ref.loc["g/search.csv#5"]
    assert pd.isna(second["outcome"]) and pd.isna(second["discharge_date"])
    assert second["person_id"] == first["person_id"]  # a re-referral of the same person
    ongoing = ref.loc["g/search.csv#17"]  # a code stored as 871731000000106.0
    assert ongoing["outcome"] == "ongoing" and pd.isna(ongoing["discharge_date"])
    assert ref.loc["g/search.csv#9", "ethnicity"] == "asian"
    reasons = result.tables["referral_reasons"]
    assert sorted(map(tuple, reasons[["referral_id", "reason"]].to_numpy())) == [
        ("g/search.csv#2", "loneliness_isolation"),
        ("g/search.csv#5", "finance_debt_benefits"),
    ]


def test_every_event_row_is_kept_or_rejected_with_its_rule(result):
    log = result.log
    rejected = log[log["action"] == "rejected"]
    assert set(rejected["table"]) == {"coded_events"}
    got = dict(zip(rejected["source_row"].astype(int), rejected["rule"], strict=True))
    assert got == EXPECTED_REJECTIONS
    summary = result.summary.set_index("table").loc["coded_events"]
    assert summary["rows_read"] == len(EVENTS)
    assert summary["rows_rejected"] == len(EXPECTED_REJECTIONS)
    assert summary["rows_kept"] == len(EVENTS) - len(EXPECTED_REJECTIONS)
    assert list(result.summary["table"]) == ["coded_events"]


def test_merged_events_are_flagged_where_they_need_a_look(result):
    log = result.log
    flags = log[log["action"] == "flagged"]
    by_rule = flags.groupby("rule")["source_row"].agg(lambda s: sorted(s.astype(int))).to_dict()
    assert by_rule["repeated_referral_event"] == [6]
    assert by_rule["superseded_outcome"] == [3]
    assert set(flags["table"]) == {"coded_events"}
    detail = log.loc[log["rule"] == "unknown_code", "detail"].iloc[0]
    assert "code 163020007 is not a referral, outcome or reason code" in detail


def test_duplicate_case_and_area_flags_name_the_coded_event_rows(tmp_path):
    events = [
        (1, f"{P1},01/02/1950,F,A,05/03/2024,{REFERRAL},Referral,"),
        (2, f"{P1},01/02/1950,F,A,12/03/2024,{REFERRAL},Referral again,"),
    ]
    res = clean_study(write(tmp_path, events), key=KEY, today=TODAY)
    dup = res.log[res.log["rule"] == "duplicate_case"]
    assert dup[["table", "source_row"]].values.tolist() == [["coded_events", 2]]
    assert len(res.tables["referrals"]) == 2


def test_unknown_codes_that_are_not_snomed_ids_are_held_back(tmp_path):
    events = [
        (1, f"{P1},01/02/1950,F,A,05/03/2024,{REFERRAL},Referral,"),
        (2, f"{P1},01/02/1950,F,A,06/03/2024,{P2.replace(' ', '')},Typed in,"),
    ]
    res = clean_study(write(tmp_path, events), key=KEY, today=TODAY)
    detail = res.log.loc[res.log["rule"] == "unknown_code", "detail"].iloc[0]
    assert P2 not in detail and "not shown" in detail


def test_codes_and_snomed_ids():
    assert normalise_codes(pd.Series(["871731000000106.0", " LW01 "])).tolist() == [
        REFERRAL,
        "LW01",
    ]
    assert is_snomed_id(REFERRAL) and is_snomed_id(DECLINED) and is_snomed_id("422650009")
    assert not is_snomed_id("9434765919")  # an NHS number
    assert not is_snomed_id("871731000000107")  # check digit wrong


def test_questionnaires_link_by_nhs_number_and_pair_per_episode(tmp_path):
    events = [
        (1, f"{P1},01/02/1950,F,A,05/01/2023,{REFERRAL},Referral,"),
        (2, f"{P1},01/02/1950,F,A,01/03/2024,{REFERRAL},Referral,"),
    ]
    forms = (
        "NHS,Date,Stage,O1,O2,O3,O4\n"
        f"{P1},10/01/2023,Baseline,4,5,4,6\n"
        f"{P1},20/10/2023,Follow-up,6,6,6,4\n"
        f"{P1},05/03/2024,Baseline,3,4,3,7\n"
        f"{P1},01/12/2024,Follow-up,7,7,7,3\n"
    )
    per_person = clean_study(
        write(tmp_path / "a", events, questionnaires=forms), key=KEY, today=TODAY
    ).tables["pairs"]
    per_episode = clean_study(
        write(tmp_path / "b", events, questionnaires=forms, extra={"pairing": "per_episode"}),
        key=KEY,
        today=TODAY,
    ).tables["pairs"]
    life = per_episode[per_episode["instrument"] == "ons4_life_satisfaction"]
    assert life[["referral_id", "baseline", "followup"]].values.tolist() == [
        ["g/search.csv#1", 4.0, 6.0],
        ["g/search.csv#2", 3.0, 7.0],
    ]
    life = per_person[per_person["instrument"] == "ons4_life_satisfaction"]
    assert life[["referral_id", "baseline", "followup"]].values.tolist() == [
        ["g/search.csv#1", 4.0, 6.0]
    ]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"table": "referrals", "events": {"referral_codes": [REFERRAL]}},
            "events belong to table: coded_events",
        ),
        ({"events": {"outcome_codes": {"LW01": "finished"}}}, "'finished' is not a outcome code"),
        (
            {"events": {"referral_codes": ["LW01"], "outcome_codes": {"LW01": "completed"}}},
            "code LW01 is under both referral_codes and outcome_codes",
        ),
        ({"events": {"referal_codes": [REFERRAL]}}, "unknown key 'referal_codes'"),
        (
            {"columns": {"nhs_number": "NHS Number", "code": "Code"}},
            "table coded_events needs the field 'event_date'",
        ),
    ],
)
def test_config_mistakes_are_one_line(tmp_path, change, message):
    source = {**SOURCE, **change}
    if source["table"] == "referrals":
        source["columns"] = {
            "referral_id": "Code",
            "referral_date": "Event Date",
            "nhs_number": "NHS Number",
        }
    with pytest.raises(LinkevalError, match=message):
        write(tmp_path, source=source)
