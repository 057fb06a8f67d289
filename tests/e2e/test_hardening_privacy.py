"""Identifiers never leave the cleaning step, whatever a site types where (issue 13, items 6-10
and 16): QA files carry no raw value that may identify, identifier-like IDs are pseudonymised,
the key reaches no error line and no kernel, CSV cells are never formulas, terminal escapes are
never obeyed, and a $ in a site name is shown as written."""

from __future__ import annotations

import os
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # noqa: E402  (a test process draws off screen)

import matplotlib.pyplot as plt
import pandas as pd
import pytest
import yaml

from linkeval.cleaning import clean_study
from linkeval.cleaning.log import hold_back_rare_labels, scrub
from linkeval.cli import main
from linkeval.config import load_config
from linkeval.io import FORMULA_START, load_processed, neutralise_formulas
from linkeval.pseudonymise import key_fingerprint, pseudonym
from linkeval.report import job
from linkeval.report import sections as S
from linkeval.report.blocks import Figure
from linkeval.report.disclosure import Rule
from tests.helpers import write_study

KEY_ENV = "LINKEVAL_TEST_KEY"
KEY = "cli-test-key-0123456789"
FREE_TEXT = "Dr Khan re Jane Doe 943 476 5919 ZZ99 3AA"
HEADER = "Ref,NHS,Referred,DOB,Source,Why\n"


@pytest.fixture(autouse=True)
def keyed(monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)


def run(args, capsys):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def qa_text(folder: Path) -> str:
    """Every QA file and the manifest, as text (parquet read back)."""
    chunks = []
    for path in sorted((folder / "qa").glob("*")):
        if path.suffix == ".csv":
            chunks.append(path.read_text(encoding="utf-8-sig"))
        elif path.suffix == ".parquet":
            chunks.append(pd.read_parquet(path).astype(str).to_csv(index=False))
    chunks.append((folder / "manifest.json").read_text())
    return "\n".join(chunks)


def referral(
    ref: str,
    source: str = "GP",
    why: str = "",
    nhs: str = "943 476 5919",
    date: str = "05/03/2024",
    dob: str = "01/02/1950",
) -> str:
    return f'{ref},{nhs},{date},{dob},"{source}","{why}"\n'


# -- QA files (item 6) -----------------------------------------------------------------------


def test_free_text_in_label_columns_never_reaches_qa_files(tmp_path, capsys):
    rows = referral("R1", source=FREE_TEXT, why=FREE_TEXT) + "".join(
        referral(f"S{i}", source="Church group", why="Pet care") for i in range(4)
    )
    path = write_study(tmp_path, referrals=HEADER + rows, contacts=None)
    assert run(["clean", "--config", path], capsys)[0] == 0
    text = qa_text(tmp_path / "processed")
    for needle in ("943 476 5919", "9434765919", "ZZ99", "3AA", "Khan", "Jane Doe"):
        assert needle not in text, needle
    unmapped = pd.read_csv(
        tmp_path / "processed" / "qa" / "unmapped_labels.csv", encoding="utf-8-sig"
    )
    shown = dict(zip(unmapped["label"], unmapped["rows"], strict=True))
    assert shown["Church group"] == 4 and shown["Pet care"] == 4
    held = unmapped[unmapped["label"].str.contains("held back")]
    assert set(held["field"]) == {"referral_source", "reasons"}
    assert held["label"].str.startswith("(1 rare label(s) held back").all()
    log = pd.read_csv(tmp_path / "processed" / "qa" / "cleaning_log.csv", encoding="utf-8-sig")
    details = log.loc[log["rule"] == "unmapped_label", "detail"]
    assert details.str.contains("not shown").any() and details.str.contains("Church group").any()


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("Referred", "01/02/1950"),  # a date of birth in the referral date column
        ("Referred", "943 476 5919"),  # an NHS number in a date column
        ("Referred", "2063-03-02"),  # a future date
    ],
)
def test_dates_and_numbers_in_the_wrong_column_are_not_quoted(tmp_path, capsys, column, value):
    rows = referral("R1") + referral("R2", date=value) + referral("R3", date="31/02/2024")
    path = write_study(tmp_path, referrals=HEADER + rows, contacts=None)
    assert run(["clean", "--config", path], capsys)[0] == 0
    text = qa_text(tmp_path / "processed")
    digits = re.sub(r"\D", "", value)
    assert digits not in re.sub(r"[^\d\n]", "", text.replace("2026", ""))
    assert "31/02/2024" not in text


def test_item_answers_and_ids_are_scrubbed_in_details(tmp_path, capsys):
    contacts = "Ref,Date,Type,Attended\n" + "943 476 5919,10/03/2024,Phone,Yes\n"
    path = write_study(tmp_path, contacts=contacts)
    assert run(["clean", "--config", path], capsys)[0] == 0
    log = pd.read_csv(tmp_path / "processed" / "qa" / "cleaning_log.csv", encoding="utf-8-sig")
    detail = log.loc[log["rule"] == "unknown_referral", "detail"].item()
    assert detail == "referral_id '[number]' is not in any referrals export"


def test_scrub_rules():
    got = scrub(
        pd.Series(
            [
                FREE_TEXT,
                "born 1st February 1950",
                "Feb 1, 1950",
                "DOB 1950-02-01",
                "19500201",
                "call 07700 900123",
                "jane.doe@example.org",
                "ok label",
                "x" * 60,
                "\x1b[31mred\x1b[0m",
                None,
            ]
        )
    )
    assert got.tolist() == [
        "Dr Khan re Jane Doe [number] [postcode]",
        "born [date]",
        "[date]",
        "DOB [date]",
        "[number]",
        "call [number]",
        "[email]",
        "ok label",
        "x" * 39 + "…",
        "?[31mred?[0m",
        "",
    ]


def test_hold_back_rare_labels_counts_what_it_holds_back():
    unmapped = pd.DataFrame(
        {
            "site": "A",
            "table": "referrals",
            "field": "reasons",
            "label": ["Pet care", "one", "two"],
            "rows": [5, 1, 2],
        }
    )
    out = hold_back_rare_labels(unmapped)
    assert out["label"].tolist() == [
        "Pet care",
        "(2 rare label(s) held back: each seen fewer than 3 times)",
    ]
    assert out["rows"].tolist() == [5, 3]


# -- identifier-like local IDs (item 7) ------------------------------------------------------


def test_a_referral_id_that_is_an_nhs_number_is_pseudonymised_everywhere(tmp_path, capsys):
    rows = referral("943 476 5919") + referral("R2")
    contacts = (
        "Ref,Date,Type,Attended\n943 476 5919,10/03/2024,Phone,Yes\nR2,10/03/2024,Phone,Yes\n"
    )
    path = write_study(tmp_path, referrals=HEADER + rows, contacts=contacts)
    assert run(["clean", "--config", path], capsys)[0] == 0
    tables = load_processed(tmp_path / "processed")
    expected = "id-" + pseudonym(KEY.encode(), "referral_id:X:943 476 5919")[:20]
    assert sorted(tables["referrals"]["referral_id"]) == ["R2", expected]
    assert sorted(tables["contacts"]["referral_id"]) == ["R2", expected]  # still linked
    log = tables["cleaning_log"]
    flagged = log[log["rule"] == "identifier_like_id"]
    assert flagged[["source_row", "action"]].values.tolist() == [[1, "flagged"]]
    text = "\n".join(f.astype(str).to_csv() for f in tables.values())
    assert "943 476 5919" not in text and "9434765919" not in text


@pytest.mark.parametrize(
    "ref", ["01/02/1950", "REF-1950-02-01", "ZZ99 3AA", "07700900123", "jane@example.org"]
)
def test_other_identifier_like_ids_are_pseudonymised(tmp_path, ref):
    path = write_study(tmp_path, referrals=HEADER + referral(ref) + referral("R2"), contacts=None)
    result = clean_study(load_config(path), key=b"unit-test-key-0123456789")
    ids = result.tables["referrals"]["referral_id"].tolist()
    assert ids[1] == "R2" and ids[0].startswith("id-") and ref not in ids[0]


# -- the key (items 4, 8, 9) -----------------------------------------------------------------


def test_the_manifest_records_a_fingerprint_never_the_key(tmp_path, capsys):
    path = write_study(tmp_path)
    assert run(["clean", "--config", path], capsys)[0] == 0
    manifest = (tmp_path / "processed" / "manifest.json").read_text()
    assert f'"key_fingerprint": "{key_fingerprint(KEY.encode())}"' in manifest
    assert KEY not in manifest and KEY not in qa_text(tmp_path / "processed")


def test_a_partial_clean_under_another_key_is_refused(tmp_path, capsys, monkeypatch):
    path = write_study(tmp_path, sites=("X", "Y"))
    assert run(["clean", "--config", path], capsys)[0] == 0
    before = pd.read_parquet(tmp_path / "processed" / "referrals.parquet")
    monkeypatch.setenv(KEY_ENV, "another-key-0123456789")
    code, _, err = run(["clean", "--config", path, "--site", "Y"], capsys)
    assert code == 2 and err.count("\n") == 1
    assert "cleaned with a different pseudonymisation key" in err and "another-key" not in err
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "processed" / "referrals.parquet"), before
    )
    # A whole re-clean under the new key is allowed, and says every person_id is new.
    code, out, _ = run(["clean", "--config", path], capsys)
    assert code == 0 and "the pseudonymisation key has changed" in out
    code, _, _ = run(["clean", "--config", path, "--site", "Y"], capsys)
    assert code == 0


def test_a_partial_clean_without_a_recorded_fingerprint_is_refused(tmp_path, capsys):
    path = write_study(tmp_path, sites=("X", "Y"))
    assert run(["clean", "--config", path], capsys)[0] == 0
    manifest_path = tmp_path / "processed" / "manifest.json"
    text = re.sub(r'\s*"key_fingerprint": "[0-9a-f]+",', "", manifest_path.read_text())
    manifest_path.write_text(text)
    code, _, err = run(["clean", "--config", path, "--site", "Y"], capsys)
    assert code == 2 and "records no key fingerprint" in err


def test_report_workers_and_their_kernels_never_get_the_key(monkeypatch):
    monkeypatch.setenv("LINKEVAL_KEY", "default-name-key-0123456789")
    monkeypatch.setenv("STUDY_SECRET", "study-key-0123456789")
    monkeypatch.setattr(job, "die_with_parent", lambda main_pid=None: None)
    monkeypatch.setattr(job.signal, "signal", lambda *a: None)
    job.worker_init("STUDY_SECRET", os.getpid())
    assert "STUDY_SECRET" not in os.environ and "LINKEVAL_KEY" not in os.environ


# -- CSV formulas and terminal escapes (items 10, 16) ----------------------------------------

FORMULAS = [
    '=HYPERLINK("http://x.example","click")',
    "+cmd|' /C calc'!A0",
    "@SUM(1+1)",
    "-2+3",
    "\tTab",
    "\rReturn",
]


def test_no_csv_cell_starts_a_formula(tmp_path, capsys):
    rows = pd.DataFrame(
        [
            {
                "Ref": f"{i}{f}",
                "NHS": "943 476 5919",
                "Referred": "05/03/2024",
                "DOB": "01/02/1950",
                "Source": f,
                "Why": f,
            }
            for i, f in enumerate(FORMULAS * 3)
        ]
    )
    path = write_study(tmp_path, referrals=rows.to_csv(index=False), contacts=None)
    assert run(["clean", "--config", path], capsys)[0] == 0
    csvs = sorted((tmp_path / "processed" / "qa").glob("*.csv"))
    assert len(csvs) == 3
    for csv in csvs:
        frame = pd.read_csv(csv, dtype=str, keep_default_na=False, encoding="utf-8-sig")
        for col in frame:
            assert not frame[col].str.startswith(FORMULA_START).any(), (csv.name, col)
    labels = pd.read_csv(
        tmp_path / "processed" / "qa" / "unmapped_labels.csv", dtype=str, encoding="utf-8-sig"
    )["label"]
    assert '\'=HYPERLINK("http://x.example","click")' in set(labels)
    assert "'-2+3" in set(labels) and "'@SUM(1+1)" in set(labels)
    parquet = pd.read_parquet(tmp_path / "processed" / "qa" / "unmapped_labels.parquet")
    assert "-2+3" in set(parquet["label"])  # parquet keeps the value; only CSV cells change


def test_neutralise_formulas_leaves_numbers_and_missing_values():
    frame = pd.DataFrame({"text": ["\tx", "\rx", "ok", None], "n": [-1, 2, 3, 4]})
    out = neutralise_formulas(frame)
    assert out["text"].tolist()[:3] == ["'\tx", "'\rx", "ok"] and pd.isna(out["text"].iloc[3])
    assert out["n"].tolist() == [-1, 2, 3, 4]
    assert frame["text"].tolist()[0] == "\tx"  # the caller's frame is not changed


def test_terminal_escapes_in_labels_are_never_printed(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv(KEY_ENV)
    evil = "\x1b]0;pwned\x07\x1b[2J\x1b[31mGP"
    rows = "".join(referral(f"R{i}", source=evil) for i in range(3))
    path = write_study(tmp_path, referrals=HEADER + rows, contacts=None)
    code, out, err = run(["check", "--config", path], capsys)
    assert code == 0 and "\x1b" not in out + err and "\x07" not in out + err
    assert "?]0;pwned??[2J?[31mGP" in out


def test_terminal_escapes_in_error_lines_are_shown_not_obeyed(tmp_path, capsys):
    text = "Ref\x1b[2J,NHS\nR1,943 476 5919\n"
    code, _, err = run(
        ["clean", "--config", write_study(tmp_path, referrals=text, contacts=None)], capsys
    )
    assert code == 2 and "\x1b" not in err and err.count("\n") == 1


def test_a_dollar_in_a_site_name_is_drawn_as_written(demo_processed, demo_config):
    tables = load_processed(demo_processed)
    names = {code: f"Price ${i}0 PCN ({code})" for i, code in enumerate(demo_config.sites)}
    for section in (
        S.change_by_site(tables, Rule(), "swemwbs", names),
        S.sites_side_by_side(tables, Rule(), names),
    ):
        for block in section.blocks:
            if isinstance(block, Figure):
                block.figure.savefig(os.devnull, format="png")  # mathtext would raise here
                labels = [t.get_text() for ax in block.figure.axes for t in ax.get_yticklabels()]
                assert any("Price $" in label.replace("\\", "") for label in labels)
                plt.close(block.figure)


def test_a_dollar_in_a_site_name_passes_the_config_and_the_index(tmp_path):
    path = write_study(tmp_path)
    cfg = yaml.safe_load(path.read_text())
    cfg["sites"]["X"]["name"] = "Price $5 PCN"
    path.write_text(yaml.safe_dump(cfg))
    assert load_config(path).sites["X"].name == "Price $5 PCN"
