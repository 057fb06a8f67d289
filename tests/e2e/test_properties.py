"""Property test: for randomly corrupted exports, every raw row is kept or rejected with a log row."""

from __future__ import annotations

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from linkeval.cleaning import clean_study
from linkeval.config import load_config
from tests.helpers import write_study

IDS = ["R1", "R2", "R3", "R4", "", "  ", "R1 "]
NHS = [
    "943 476 5919",
    "401-023-2137",
    "9434765918",
    "0000000000",
    "",
    "94347659",
    "abc",
    "4010232137",
]
DATES = [
    "05/03/2024",
    "2024-03-06",
    "31/02/2024",
    "",
    "01/01/2064",
    "01/01/1900",
    "soon",
    "07-Mar-2024",
    "08/03/2024 10:30",
]
DOBS = ["01/02/1950", "01/02/2012", "", "1950-13-01", "01/02/2030", "15/06/1985"]
LABELS = ["GP", "Dentist", "", "Self referral", "Café", "Nurse"]
REASONS = ["Loneliness;Debt", "", "Pet care", ";;", "Anxiety; anxiety"]
MODES = ["Phone", "Carrier pigeon", "", "F2F"]
ATTENDED = ["Yes", "DNA", "", "maybe"]

referral_row = st.tuples(*(st.sampled_from(v) for v in (IDS, NHS, DATES, DOBS, LABELS, REASONS)))
contact_row = st.tuples(*(st.sampled_from(v) for v in (IDS + ["R9"], DATES, MODES, ATTENDED)))


def _csv(rows, header):
    return pd.DataFrame(rows, columns=header).to_csv(index=False)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    refs=st.lists(referral_row, min_size=0, max_size=25),
    contacts=st.lists(contact_row, min_size=0, max_size=25),
    blank_lines=st.integers(0, 2),
)
def test_rows_read_equal_kept_plus_rejected(tmp_path_factory, refs, contacts, blank_lines):
    tmp = tmp_path_factory.mktemp("prop")
    # pandas writes a bare header for an empty frame, so header-only exports are covered too
    ref_csv = _csv(refs, ["Ref", "NHS", "Referred", "DOB", "Source", "Why"]) + "\n" * blank_lines
    con_csv = _csv(contacts, ["Ref", "Date", "Type", "Attended"])
    cfg = load_config(write_study(tmp, referrals=ref_csv, contacts=con_csv))
    result = clean_study(cfg, key=b"property-test-key-0123", today=pd.Timestamp("2026-11-24"))

    summary = result.summary.set_index("table")
    expected_read = {"referrals": len(refs) + blank_lines, "contacts": len(contacts)}
    log = result.log
    for table, n_read in expected_read.items():
        row = summary.loc[table]
        assert row["rows_read"] == n_read
        assert row["rows_read"] == row["rows_kept"] + row["rows_rejected"]
        rejected = log[(log["table"] == table) & (log["action"] == "rejected")]
        # each rejected row is logged once, and is a real row of the file
        assert not rejected.duplicated(["source_file", "source_row"]).any()
        assert rejected["source_row"].between(1, n_read).all()

    # The rows not rejected are exactly the rows kept.
    rej_rows = set(
        log.loc[(log["table"] == "referrals") & (log["action"] == "rejected"), "source_row"].astype(
            int
        )
    )
    survivors = [refs[i][0].strip() for i in range(len(refs)) if i + 1 not in rej_rows]
    assert sorted(survivors) == sorted(result.tables["referrals"]["referral_id"])
    kept_ids = set(result.tables["referrals"]["referral_id"])
    assert set(result.tables["contacts"]["referral_id"]) <= kept_ids
