"""Hostile or unlucky inputs: one clear line and exit 2, or a clean run that says what it did,
never a traceback (issue 13, items 5, 11, 12, 13 and 15)."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from linkeval import io
from linkeval.cli import main
from tests.helpers import write_study

KEY_ENV = "LINKEVAL_TEST_KEY"
ITEMS = [f"SW{i}" for i in range(1, 8)]
Q_HEADER = "Ref,Stage,Done," + ",".join(ITEMS) + "\n"


@pytest.fixture(autouse=True)
def keyed(monkeypatch):
    monkeypatch.setenv(KEY_ENV, "cli-test-key-0123456789")


def run(args, capsys):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err: str) -> str:
    assert err.count("\n") == 1 and err.startswith("linkeval: error: "), err
    assert "Traceback" not in err
    return err


def with_questionnaires(tmp_path: Path, text: str, **kwargs) -> Path:
    path = write_study(tmp_path, **kwargs)
    (tmp_path / "raw" / "x" / "q.csv").write_text(text, encoding="utf-8")
    cfg = yaml.safe_load(path.read_text())
    cfg["sites"]["X"]["sources"].append(
        {
            "table": "questionnaires",
            "path": "x/q.csv",
            "columns": {"referral_id": "Ref", "timepoint": "Stage", "completed_date": "Done"},
            "items": {"swemwbs": ITEMS},
        }
    )
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def processed(tmp_path: Path, table: str) -> pd.DataFrame:
    return pd.read_parquet(tmp_path / "processed" / f"{table}.parquet")


# -- empty tables (item 11) ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("questionnaires", "why"),
    [
        (Q_HEADER, "no data rows"),
        (
            Q_HEADER + "R9,T0,01/04/2024,1,2,3,4,5,1,2\nR2,T0,01/04/2024,1,2,3,4,5,1,2\n",
            "all 2 rows were rejected",
        ),
    ],
)
def test_questionnaires_with_no_rows_kept_clean_to_zero_rows(tmp_path, capsys, questionnaires, why):
    code, out, err = run(
        ["clean", "--config", with_questionnaires(tmp_path, questionnaires)], capsys
    )
    assert code == 0, err
    assert "note: site X questionnaires: no rows kept" in out and why in out
    for table in ("responses", "scores", "pairs"):
        assert processed(tmp_path, table).empty
    assert len(processed(tmp_path, "referrals")) == 2


@pytest.mark.parametrize(
    ("referrals", "why"),
    [
        ("Ref,NHS,Referred,DOB,Source,Why\n", "no data rows"),
        (
            "Ref,NHS,Referred,DOB,Source,Why\nR1,943 476 5918,05/03/2024,01/02/1950,GP,\n",
            "all 1 rows were rejected",
        ),
    ],
)
def test_referrals_with_no_rows_kept_clean_to_zero_rows(tmp_path, capsys, referrals, why):
    path = with_questionnaires(
        tmp_path, Q_HEADER + "R1,T0,01/04/2024,1,2,3,4,5,1,2\n", referrals=referrals
    )
    code, out, err = run(["clean", "--config", path], capsys)
    assert code == 0, err
    assert "note: site X referrals: no rows kept" in out and why in out
    summary = pd.read_csv(tmp_path / "processed" / "qa" / "summary.csv")
    assert (summary["rows_read"] == summary["rows_kept"] + summary["rows_rejected"]).all()


# -- two sheets of one workbook (item 12) ----------------------------------------------------


def test_two_sheets_of_one_workbook_feeding_one_table(tmp_path, capsys):
    path = write_study(tmp_path, contacts=None)
    columns = ["Ref", "NHS", "Referred", "DOB", "Source", "Why"]
    jan = [
        ["R1", "943 476 5919", "05/03/2024", "01/02/1950", "GP", ""],
        ["R2", "943 476 5918", "06/03/2024", "01/02/1950", "GP", ""],
    ]
    feb = [
        ["R3", "943 476 5919", "05/04/2024", "01/02/1950", "GP", ""],
        ["R4", "943 476 5918", "06/04/2024", "01/02/1950", "GP", ""],
    ]
    with pd.ExcelWriter(tmp_path / "raw" / "x" / "book.xlsx") as writer:
        pd.DataFrame(jan, columns=columns).to_excel(writer, sheet_name="Jan", index=False)
        pd.DataFrame(feb, columns=columns).to_excel(writer, sheet_name="Feb", index=False)
    cfg = yaml.safe_load(path.read_text())
    first = cfg["sites"]["X"]["sources"][0]
    first.update(path="x/book.xlsx", sheet="Jan")
    cfg["sites"]["X"]["sources"].append(dict(first, sheet="Feb"))
    path.write_text(yaml.safe_dump(cfg))
    code, _, err = run(["clean", "--config", path], capsys)
    assert code == 0, err
    log = pd.read_csv(tmp_path / "processed" / "qa" / "cleaning_log.csv")
    rejected = log[log["rule"] == "invalid_nhs_number"]
    assert sorted(rejected["source_file"]) == ["x/book.xlsx (sheet Feb)", "x/book.xlsx (sheet Jan)"]
    assert set(rejected["source_row"]) == {2}
    summary = pd.read_csv(tmp_path / "processed" / "qa" / "summary.csv").iloc[0]
    assert (summary["rows_read"], summary["rows_kept"], summary["rows_rejected"]) == (4, 2, 2)


# -- unreadable files and folders (item 13) --------------------------------------------------


def test_an_unreadable_raw_file(tmp_path, capsys, monkeypatch):
    path = write_study(tmp_path)
    real = Path.read_bytes

    def denied(self):
        if self.name == "referrals.csv":
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", denied)
    code, _, err = run(["clean", "--config", path], capsys)
    assert code == 2
    assert "referrals.csv: cannot read the file (Permission denied)" in one_line(err)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file")
def test_an_unreadable_raw_file_for_real(tmp_path, capsys):
    path = write_study(tmp_path)
    (tmp_path / "raw" / "x" / "referrals.csv").chmod(0)
    code, _, err = run(["clean", "--config", path], capsys)
    assert code == 2 and "cannot read the file" in one_line(err)


def test_skip_rows_beyond_the_file(tmp_path, capsys):
    path = write_study(tmp_path, contacts=None, extra=None)
    cfg = yaml.safe_load(path.read_text())
    cfg["sites"]["X"]["sources"][0]["skip_rows"] = 900
    path.write_text(yaml.safe_dump(cfg))
    code, _, err = run(["clean", "--config", path], capsys)
    assert code == 2 and "no header row after skipping 900 lines" in one_line(err)


def test_a_full_disk_leaves_the_previous_version(tmp_path, capsys, monkeypatch):
    path = write_study(tmp_path)
    assert run(["clean", "--config", path], capsys)[0] == 0
    folder = tmp_path / "processed"
    before = {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    real = io._write_one

    def full(target, suffix, content):
        if target.name == "contacts.parquet":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(target, suffix, content)

    monkeypatch.setattr(io, "_write_one", full)
    code, _, err = run(["clean", "--config", path], capsys)
    assert code == 2
    line = one_line(err)
    assert "No space left on device" in line and "free some disk space" in line
    assert "previous version is unchanged" in line
    after = {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    assert after == before
    state = tmp_path / ".linkeval" / "processed"
    assert sorted(p.name for p in state.iterdir() if not p.name.startswith("v-")) == ["lock"]


def test_a_read_only_data_area(tmp_path, capsys, monkeypatch):
    path = write_study(tmp_path)

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(io.tempfile, "mkdtemp", read_only)
    code, _, err = run(["clean", "--config", path], capsys)
    assert code == 2
    assert "Read-only file system" in one_line(err) and "make" in err and "writable" in err


def test_a_read_only_reports_folder(tmp_path, capsys, monkeypatch):
    path = write_study(tmp_path)
    assert run(["clean", "--config", path], capsys)[0] == 0
    real = Path.mkdir

    def read_only(self, *args, **kwargs):
        if "reports" in self.parts:
            raise OSError(errno.EROFS, "Read-only file system", str(self))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", read_only)
    code, _, err = run(["report", "--config", path], capsys)
    assert code == 2
    line = one_line(err)
    assert "reports/latest" in line and "Read-only file system" in line and "writable" in line


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_processed_parent_for_real(tmp_path, capsys):
    path = write_study(tmp_path)
    assert run(["clean", "--config", path], capsys)[0] == 0
    tmp_path.chmod(0o555)
    try:
        code, _, err = run(["clean", "--config", path], capsys)
    finally:
        tmp_path.chmod(0o755)
    assert code == 2 and "writable" in one_line(err)


def test_a_corrupt_processed_table_stops_a_partial_clean_and_a_report(tmp_path, capsys):
    path = write_study(tmp_path, sites=("X", "Y"))
    assert run(["clean", "--config", path], capsys)[0] == 0
    (tmp_path / "processed" / "contacts.parquet").write_bytes(b"PAR1 this is not parquet")
    code, _, err = run(["clean", "--config", path, "--site", "Y"], capsys)
    assert code == 2
    assert "contacts.parquet: cannot read processed data" in one_line(err)
    assert "run linkeval clean for all sites" in err
    code, _, err = run(["report", "--config", path], capsys)
    assert code == 2 and "contacts.parquet: cannot read processed data" in one_line(err)
    # A full clean writes it again.
    assert run(["clean", "--config", path], capsys)[0] == 0
    assert len(processed(tmp_path, "contacts")) == 4


def test_a_binary_key_file_is_one_line_that_never_quotes_it(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv(KEY_ENV)
    path = write_study(
        tmp_path, extra={"pseudonymisation": {"key_env": KEY_ENV, "key_file": "study.key"}}
    )
    secret = b"\xff\xfe\x00secret-binary-key-material\x9c"
    (tmp_path / "study.key").write_bytes(secret)
    code, _, err = run(["clean", "--config", path], capsys)
    assert code == 2 and "not a text key" in one_line(err)
    assert "key-material" not in err


# -- delimiters and links (item 15) ----------------------------------------------------------


@pytest.mark.parametrize(("sep", "shown"), [(";", '";"'), ("\t", '"\\t"'), ("|", '"|"')])
def test_a_file_with_another_delimiter_says_how_to_set_it(tmp_path, capsys, sep, shown):
    text = (
        "Ref,NHS,Referred,DOB,Source,Why\nR1,943 476 5919,05/03/2024,01/02/1950,GP,Debt\n"
    ).replace(",", sep)
    code, _, err = run(
        ["clean", "--config", write_study(tmp_path, referrals=text, contacts=None)], capsys
    )
    assert code == 2
    line = one_line(err)
    assert f"separated by {sep!r}" in line and f"set delimiter: {shown}" in line


def test_a_symlink_loop_is_named_as_one(tmp_path, capsys):
    path = write_study(tmp_path, contacts=None)
    target = tmp_path / "raw" / "x" / "referrals.csv"
    target.unlink()
    os.symlink(target, target)
    code, _, err = run(["clean", "--config", path], capsys)
    assert code == 2 and "symbolic link loop" in one_line(err)
    assert "no file matches" not in err


def test_a_broken_symlink_is_named_as_one(tmp_path, capsys):
    path = write_study(tmp_path, contacts=None)
    target = tmp_path / "raw" / "x" / "referrals.csv"
    target.unlink()
    os.symlink(tmp_path / "gone.csv", target)
    code, _, err = run(["clean", "--config", path], capsys)
    assert code == 2 and "symbolic link to a file that does not exist" in one_line(err)


def test_a_link_out_of_raw_dir_to_the_key_is_refused_unread(tmp_path, capsys, monkeypatch):
    secret = "the-study-key-must-never-be-printed"
    monkeypatch.delenv(KEY_ENV)
    path = write_study(
        tmp_path, extra={"pseudonymisation": {"key_env": KEY_ENV, "key_file": "secrets/study.key"}}
    )
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "study.key").write_text(secret)
    target = tmp_path / "raw" / "x" / "referrals.csv"
    target.unlink()
    os.symlink(tmp_path / "secrets" / "study.key", target)
    code, _, err = run(["clean", "--config", path], capsys)
    assert code == 2 and "leads outside raw_dir" in one_line(err)
    assert secret not in err


# -- one bad site does not block the others (item 5) -----------------------------------------


def test_a_broken_site_is_named_and_the_good_one_written(tmp_path, capsys):
    path = write_study(tmp_path, sites=("X", "Y"))
    (tmp_path / "raw" / "y" / "referrals.csv").write_bytes(b"\x00\x01binary")
    code, out, err = run(["clean", "--config", path], capsys)
    assert code == 1
    assert "linkeval: error: site Y: " in err and "looks binary" in err
    assert "1 site(s) failed: Y; the other sites were cleaned" in err
    assert "Traceback" not in err
    assert set(processed(tmp_path, "referrals")["site"]) == {"X"}


def test_a_broken_site_keeps_its_previous_rows(tmp_path, capsys):
    path = write_study(tmp_path, sites=("X", "Y"))
    assert run(["clean", "--config", path], capsys)[0] == 0
    before = processed(tmp_path, "referrals")
    shutil.copy(tmp_path / "raw" / "x" / "referrals.csv", tmp_path / "x.csv")
    (tmp_path / "raw" / "y" / "referrals.csv").write_text("Nothing,like,the,export\n1,2,3,4\n")
    code, _, err = run(["clean", "--config", path, "--jobs", "2"], capsys)
    assert code == 1 and "site Y: " in err and "its previous rows are kept" in err
    after = processed(tmp_path, "referrals")
    pd.testing.assert_frame_equal(
        after[after["site"] == "Y"].reset_index(drop=True),
        before[before["site"] == "Y"].reset_index(drop=True),
    )
    summary = pd.read_csv(tmp_path / "processed" / "qa" / "summary.csv")
    assert sorted(summary["site"].unique()) == ["X", "Y"]


def test_every_site_broken_is_exit_2_one_line_per_site(tmp_path, capsys):
    path = write_study(tmp_path, sites=("X", "Y"))
    for code in ("x", "y"):
        (tmp_path / "raw" / code / "referrals.csv").write_bytes(b"")
    code, _, err = run(["clean", "--config", path], capsys)
    assert code == 2
    lines = err.splitlines()
    assert [line.split(":")[2].strip() for line in lines] == ["site X", "site Y"]
    assert all("file is empty" in line for line in lines)
    assert not (tmp_path / "processed").exists()


def test_check_names_a_broken_site_and_exits_1(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv(KEY_ENV)
    path = write_study(tmp_path, sites=("X", "Y"))
    (tmp_path / "raw" / "y" / "referrals.csv").write_bytes(b"")
    code, out, err = run(["check", "--config", path], capsys)
    assert code == 1 and "site Y: " in err and "config OK" in out


def test_no_traceback_in_a_subprocess_for_a_broken_site(tmp_path):
    path = write_study(tmp_path, sites=("X", "Y"))
    (tmp_path / "raw" / "y" / "referrals.csv").write_bytes(b"PK\x03\x04zip")
    env = dict(os.environ, **{KEY_ENV: "cli-test-key-0123456789"})
    proc = subprocess.run(
        [sys.executable, "-m", "linkeval.cli", "clean", "--config", str(path)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "site Y" in proc.stderr and "Excel workbook" in proc.stderr
