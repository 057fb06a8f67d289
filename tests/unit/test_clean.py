"""Cleaning rules on small hand-written exports, with expectations worked out by hand."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pytest
import yaml

from linkeval.cleaning import clean_study
from linkeval.cleaning.read import _exact_duplicates
from linkeval.config import load_config
from linkeval.errors import LinkevalError
from linkeval.pseudonymise import pseudonym
from linkeval.schema import plain
from tests.helpers import REFERRAL_COLUMNS, write_study

KEY = b"unit-test-key-0123456789"
TODAY = pd.Timestamp("2026-11-24")


def clean(tmp_path, **kwargs):
    return clean_study(load_config(write_study(tmp_path, **kwargs)), key=KEY, today=TODAY)


def rules(result, table):
    log = result.log[(result.log["table"] == table)]
    return {(int(r.source_row), r.rule, r.action) for r in log.itertuples()}


def test_referral_rules(tmp_path):
    result = clean(tmp_path)
    assert rules(result, "referrals") == {
        (2, "invalid_nhs_number", "rejected"),
        (3, "placeholder_nhs_number", "rejected"),
        (4, "under_18", "rejected"),
        (5, "unmapped_label", "flagged"),  # Dentist, and reason Pet care
        (6, "duplicate_row", "rejected"),
    }
    ref = result.tables["referrals"].set_index("referral_id")
    assert list(ref.index) == ["R1", "R5"]
    assert ref.loc["R1", "person_id"] == pseudonym(KEY, "9434765919")
    assert ref.loc["R1", "age_at_referral"] == 74  # born 1 Feb 1950, referred 5 Mar 2024
    assert ref.loc["R1", "age_band"] == "65-74"
    assert ref.loc["R5", "referral_source"] == "other"
    reasons = result.tables["referral_reasons"]
    assert sorted(map(tuple, reasons[["referral_id", "reason"]].to_numpy())) == [
        ("R1", "finance_debt_benefits"),
        ("R1", "loneliness_isolation"),
        ("R5", "other"),
    ]


def test_duplicate_detail_names_the_original_row(tmp_path):
    log = clean(tmp_path).log
    assert log.loc[log["rule"] == "duplicate_row", "detail"].item() == "exact copy of row 1"


def test_a_duplicate_in_another_file_of_a_glob_names_that_file(tmp_path):
    config = write_study(tmp_path)
    (tmp_path / "raw" / "x" / "referrals.csv").rename(tmp_path / "raw" / "x" / "referrals_1.csv")
    # A later export repeats R1 (an overlapping date range); it has a Notes column, blank
    # here, as the absent column is in the first file: still an exact copy.
    (tmp_path / "raw" / "x" / "referrals_2.csv").write_text(
        "Ref,NHS,Referred,DOB,Source,Why,Notes\n"
        "R1,943 476 5919,05/03/2024,01/02/1950,GP,Loneliness;Debt,\n",
        encoding="utf-8",
    )
    config.write_text(config.read_text().replace("x/referrals.csv", "x/referrals_*.csv"))
    log = clean_study(load_config(config), key=KEY, today=TODAY).log
    details = log.loc[log["rule"] == "duplicate_row"].set_index("source_file")["detail"]
    assert details.to_dict() == {
        "x/referrals_1.csv": "exact copy of row 1",
        "x/referrals_2.csv": "exact copy of x/referrals_1.csv row 1",
    }


def test_exact_duplicates_compare_every_column_and_point_at_the_first_copy():
    # Rows 0, 2 and 5 agree in every column, missing cells included; row 3 differs from
    # them only in the last column, row 4 only in a missing cell. Row 1 is unique in the
    # first column, so the later columns are looked at for the others only.
    table = pa.table(
        {
            "id": ["R1", "R9", "R1", "R1", "R1", "R1"],
            "date": ["05/03/2024", "", "05/03/2024", "05/03/2024", "05/03/2024", "05/03/2024"],
            "note": [None, "x", None, None, "", None],
            "why": ["Debt", "Debt", "Debt", "Loneliness", "Debt", "Debt"],
        }
    )
    copy, first = _exact_duplicates(table)
    assert copy.tolist() == [False, False, True, False, False, True]
    assert first.tolist() == [0, 1, 0, 3, 4, 0]
    copy, first = _exact_duplicates(pa.Table.from_batches(table.to_batches(max_chunksize=2)))
    assert copy.tolist() == [False, False, True, False, False, True]


def test_contact_rules_and_derived_counts(tmp_path):
    result = clean(tmp_path)
    assert rules(result, "contacts") == {
        (2, "before_referral", "rejected"),
        (3, "referral_rejected", "rejected"),
        (4, "unknown_referral", "rejected"),
        (5, "unmapped_label", "flagged"),
    }
    ref = result.tables["referrals"].set_index("referral_id")
    assert ref.loc["R1", "n_contacts"] == 1 and ref.loc["R1", "n_attended"] == 1
    assert ref.loc["R1", "days_to_first_contact"] == 5
    # R5 had one contact, a did-not-attend: contacted but not seen.
    assert ref.loc["R5", "n_contacts"] == 1 and ref.loc["R5", "n_attended"] == 0
    assert pd.isna(ref.loc["R5", "first_contact_date"])
    mode = result.tables["contacts"].set_index("referral_id").loc["R5", "mode"]
    assert mode == "other"


def test_summary_reconciles(tmp_path):
    s = clean(tmp_path).summary.set_index("table")
    assert s.loc[
        "referrals", ["rows_read", "rows_kept", "rows_rejected", "rows_flagged"]
    ].tolist() == [6, 2, 4, 1]
    assert s.loc["contacts", ["rows_read", "rows_kept", "rows_rejected"]].tolist() == [5, 2, 3]


def test_dates_missing_required_future_and_unparseable(tmp_path):
    csv = (
        "Ref,NHS,Referred,DOB,Source,Why\n"
        ",943 476 5919,05/03/2024,01/02/1950,GP,\n"
        "R2,943 476 5919,,01/02/1950,GP,\n"
        "R3,943 476 5919,31/02/2024,01/02/1950,GP,\n"
        "R4,943 476 5919,05/03/2064,01/02/1950,GP,\n"
        "R5,943 476 5919,01/01/1900,01/02/1950,GP,\n"
        "R6,943 476 5919,05/03/2024,1950-02-30,GP,\n"
        "R7,943 476 5919,05/03/2024,01/02/2025,GP,\n"
        "R8,,05/03/2024,01/02/1950,GP,\n"
        "\n"
        "R9,943 476 5919,05/03/2024,01/02/1950,GP,\n"
    )
    got = rules(clean(tmp_path, referrals=csv, contacts=None), "referrals")
    assert got == {
        (1, "missing_required", "rejected"),
        (2, "missing_required", "rejected"),
        (3, "unparseable_date", "rejected"),
        (4, "future_date", "rejected"),
        (5, "impossible_date", "rejected"),
        (6, "unparseable_date", "rejected"),
        (7, "impossible_date", "rejected"),
        (8, "missing_required", "rejected"),
        (9, "blank_row", "rejected"),
    }


def test_duplicate_referral_id_with_different_content(tmp_path):
    csv = (
        "Ref,NHS,Referred,DOB,Source,Why\n"
        "R1,943 476 5919,05/03/2024,01/02/1950,GP,\n"
        "R1,943 476 5919,06/03/2024,01/02/1950,GP,\n"
    )
    result = clean(tmp_path, referrals=csv, contacts=None)
    assert rules(result, "referrals") == {(2, "duplicate_referral_id", "rejected")}


def test_under_18s_kept_when_the_config_allows(tmp_path):
    result = clean(tmp_path, extra={"allow_under_18": True}, contacts=None)
    ref = result.tables["referrals"].set_index("referral_id")
    assert ref.loc["R4", "age_band"] == "<18"


def test_local_ids_when_there_is_no_nhs_number(tmp_path):
    csv = "Ref,Client,Referred,Age,Source\nR1,C-7,05/03/2024,70,GP\nR2,,05/03/2024,70,GP\n"
    cols = {
        "referral_id": "Ref",
        "local_id": "Client",
        "referral_date": "Referred",
        "age": "Age",
        "referral_source": "Source",
    }
    result = clean(tmp_path, referrals=csv, contacts=None, columns=cols)
    ref = result.tables["referrals"]
    assert ref["person_id"].tolist() == [pseudonym(KEY, "X:C-7")]
    assert ref["age_at_referral"].tolist() == [70]
    assert rules(result, "referrals") == {(2, "missing_required", "rejected")}


def test_only_canonical_columns_survive(tmp_path):
    ref = clean(tmp_path).tables["referrals"]
    assert not {"nhs_number", "date_of_birth", "reasons"} & set(ref.columns)


def test_cp1252_with_preamble(tmp_path):
    csv = "Search: referrals – run 1\n\n" + (
        "Ref,NHS,Referred,DOB,Source,Why\nR1,943 476 5919,05/03/2024,01/02/1950,Café Club,\n"
    )
    path = write_study(tmp_path, referrals=csv, contacts=None, encoding="cp1252")
    import yaml

    cfg = yaml.safe_load(path.read_text())
    cfg["sites"]["X"]["sources"][0].update(
        skip_rows=2, values={"referral_source": {"Café Club": "vcse"}}
    )
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    result = clean_study(load_config(path), key=KEY, today=TODAY)
    assert result.tables["referrals"]["referral_source"].tolist() == ["vcse"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "file is empty"),
        (b"\x00\x01\x02binary", "looks binary"),
        (b"PK\x03\x04zip", "Excel workbook"),
    ],
)
def test_unreadable_files(tmp_path, content, message):
    path = write_study(tmp_path, contacts=None)
    (tmp_path / "raw" / "x" / "referrals.csv").write_bytes(content)
    with pytest.raises(LinkevalError, match=message):
        clean_study(load_config(path), key=KEY)


def test_mapped_header_missing_from_file(tmp_path):
    cols = dict(REFERRAL_COLUMNS, referral_date="Date Referred")
    with pytest.raises(LinkevalError) as info:
        clean(tmp_path, columns=cols)
    message = str(info.value)
    assert "referrals.csv" in message and "'Date Referred'" in message
    assert "sites.X.sources[0].columns.referral_date" in message
    assert 'did you mean "Referred"' in message


def test_no_file_matches(tmp_path):
    path = write_study(tmp_path, contacts=None)
    (tmp_path / "raw" / "x" / "referrals.csv").unlink()
    with pytest.raises(LinkevalError, match="no file matches"):
        clean_study(load_config(path), key=KEY)


def test_an_onward_referral_with_a_blank_asset_type_is_kept_as_other_and_flagged(tmp_path):
    path = write_study(tmp_path, contacts=None)
    (tmp_path / "raw" / "x" / "onward.csv").write_text(
        "Ref,Date,Asset\nR1,12/03/2024,Walking group\nR1,13/03/2024,\n", encoding="utf-8"
    )
    raw = yaml.safe_load(path.read_text())
    raw["sites"]["X"]["sources"].append(
        {
            "table": "onward_referrals",
            "path": "x/onward.csv",
            "columns": {"referral_id": "Ref", "onward_date": "Date", "asset_type": "Asset"},
        }
    )
    path.write_text(yaml.safe_dump(raw))
    result = clean_study(load_config(path), key=b"k" * 32, today=pd.Timestamp("2026-11-24"))
    onward = result.tables["onward_referrals"]
    assert sorted(onward["asset_type"]) == ["other", "physical_activity"]
    flagged = result.log[result.log["rule"] == "missing_asset_type"]
    assert flagged["source_row"].tolist() == [2] and (flagged["action"] == "flagged").all()


def test_sites_keep_the_configs_order_and_questionnaire_tables_go_in_site_order(tmp_path):
    # The routine tables, log and summary list the sites as the config does; the
    # questionnaire tables are in the store's order (site first), so the writer sorts nothing.
    from linkeval.io import _store_order
    from linkeval.synthetic import generate_study

    study = generate_study(tmp_path / "s", n_referrals=300, n_sites=3, seed=4)
    text = yaml.safe_load(study.config_path.read_text(encoding="utf-8"))
    text["sites"] = dict(reversed(list(text["sites"].items())))  # C, B, A
    study.config_path.write_text(yaml.safe_dump(text, sort_keys=False), encoding="utf-8")
    result = clean_study(load_config(study.config_path), key=KEY, today=TODAY)

    def order(frame):
        return list(dict.fromkeys(frame["site"].astype(str)))

    for table in ("referrals", "contacts", "referral_reasons"):
        assert order(result.tables[table]) == ["C", "B", "A"]
    assert order(result.log) == order(result.summary) == ["C", "B", "A"]
    for table in ("responses", "scores", "pairs"):
        assert order(result.tables[table]) == ["A", "B", "C"]
        assert _store_order(result.tables[table]) is None


def _answers() -> list:
    """Two sources' answers as the scorer hands them over: the completions' keys and each
    item's values. Persons p and q complete twice with equal keys (their answers to an item
    go together in the store), the second source has no ucla3, and some answers are missing.
    """
    first = pd.DataFrame(
        {
            "person_id": ["q", "p", "p", "r", "q", "s"],
            "referral_id": ["q2", "p2", "p1", "r1", "q2", "s1"],
            "timepoint": ["baseline"] * 5 + ["followup"],
            "completed_date": pd.to_datetime(["2025-01-02"] * 3 + ["2025-01-03"] * 3),
        }
    ).astype({c: "category" for c in ("person_id", "referral_id", "timepoint")})
    second = first.iloc[[1, 3]].reset_index(drop=True)

    def values(*v):
        return pd.array(v, dtype="Float64")

    return [
        (
            first,
            [
                ("ucla3", "lack_companionship", values(1, 2, 3, 1, 2, None)),
                ("ucla3", "left_out", values(2, 3, 1, 1, None, 3)),
                ("ucla3", "isolated", values(3, 1, 2, 2, 1, 1)),
                ("ons4", "happy", values(7, 8, 9, 10, 0, 5)),
            ],
        ),
        (second, [("ons4", "happy", values(4, 6)), ("ons4", "anxious", values(1, None))]),
    ]


def _in_the_cleaners_order(answers: list) -> pd.DataFrame:
    """The reference: every item over every completion, source by source."""
    rows = [
        plain(who).assign(site="A", instrument=name, item=item, value=v)
        for who, blocks in answers
        for name, item, v in blocks
    ]
    return pd.concat(rows, ignore_index=True)


def test_responses_are_made_in_the_stores_order():
    from linkeval.cleaning.questionnaires import _responses
    from linkeval.io import STORE_ORDER

    responses, cleaners_order = _responses("A", _answers())
    made = _in_the_cleaners_order(_answers())
    expected = made.sort_values(list(STORE_ORDER), kind="stable", na_position="first")
    pd.testing.assert_frame_equal(
        plain(responses)[list(made.columns)], expected.reset_index(drop=True), check_dtype=False
    )
    assert cleaners_order.tolist() == expected.index.tolist()
    assert isinstance(responses["person_id"].dtype, pd.CategoricalDtype)


def test_alpha_counts_the_first_answer_in_the_cleaners_order():
    # p completes ucla3 twice on one day (two referrals): the first answers count, those of
    # referral p2, although p1's come first in the store's order.
    from linkeval.cleaning.questionnaires import _responses
    from linkeval.stats.pairing import alpha_sums

    responses, cleaners_order = _responses("A", _answers())
    expected = alpha_sums(_in_the_cleaners_order(_answers()))
    pd.testing.assert_frame_equal(alpha_sums(responses, first=cleaners_order), expected)
    assert not alpha_sums(responses).equals(expected)  # the store's order alone would differ


def test_validation_checks_a_pseudonyms_length_and_leaves_the_callers_frame_alone():
    from pandera.errors import SchemaErrors

    from linkeval import schema

    frame = pd.DataFrame(
        {
            "site": "A",
            "person_id": ["a" * 64, "b" * 64, "a" * 64],
            "referral_id": ["R1", "R2", "R1"],
            "timepoint": "baseline",
            "completed_date": pd.Timestamp("2025-01-02"),
            "instrument": "ons4",
            "item": ["happy", "happy", "anxious"],
            "value": [1.0, None, 3.0],
        }
    )
    checked = schema.validate("responses", frame)
    assert isinstance(checked["person_id"].dtype, pd.CategoricalDtype)
    assert frame["person_id"].dtype == "str" and frame["value"].dtype == "float64"
    short = frame.assign(person_id=["a" * 64, "b" * 63, "a" * 64])
    with pytest.raises(SchemaErrors, match="str_length") as caught:
        schema.validate("responses", short)
    assert "b" * 63 in str(caught.value)  # the failing value is named


def test_rules_rejecting_in_turn_log_and_keep_what_one_rule_at_a_time_does():
    from linkeval.cleaning.log import FILE, ROW, CleaningLog

    frame = pd.DataFrame(
        {FILE: "a.csv", ROW: range(1, 7), "x": [1, -1, 5, None, -2, 9]},
        index=[10, 11, 12, 13, 14, 15],  # as left by earlier rules: not 0..n-1
    )
    rules = [
        (frame["x"].isna(), "t", "x", "missing", "x is blank"),
        (frame["x"] < 0, "t", "x", "negative", lambda r: "x is " + r["x"].astype(str)),
        # overlaps the rule before: rows 2 and 5 are logged once, by the first rule
        (frame["x"] < 2, "t", "x", "low", "x is low"),
        # a mask on some of the rows, in another order
        (pd.Series([True, True], index=[15, 11]), "t", "x", "listed", "x was listed"),
    ]
    one_at_a_time, in_turn = CleaningLog("A"), CleaningLog("A")
    kept = frame
    for mask, *rule in rules:
        kept = one_at_a_time.reject(kept, mask, *rule)
    together = in_turn.reject_in_turn(frame, rules)

    pd.testing.assert_frame_equal(together, kept)
    assert together[ROW].tolist() == [3]
    pd.testing.assert_frame_equal(in_turn.rows(), one_at_a_time.rows())
    log = in_turn.rows()
    assert log[["source_row", "rule"]].values.tolist() == [
        [4, "missing"],
        [2, "negative"],
        [5, "negative"],
        [1, "low"],
        [6, "listed"],
    ]
    assert log["detail"].tolist()[1:3] == ["x is -1.0", "x is -2.0"]
