"""The linkeval command: exit codes, one-line errors, atomic and partial writes."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest
import yaml

from linkeval import io
from linkeval.cli import main
from tests.helpers import write_study

KEY_ENV = "LINKEVAL_TEST_KEY"


@pytest.fixture
def keyed(monkeypatch):
    monkeypatch.setenv(KEY_ENV, "cli-test-key-0123456789")


def run(args, capsys):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_clean_writes_tables_log_and_manifest(tmp_path, keyed, capsys):
    code, out, _ = run(["clean", "--config", write_study(tmp_path)], capsys)
    assert code == 0
    processed = tmp_path / "processed"
    for name in ("referrals", "referral_reasons", "contacts", "onward_referrals"):
        assert (processed / f"{name}.parquet").is_file()
    log = pd.read_csv(processed / "qa" / "cleaning_log.csv")
    assert set(log["rule"]) >= {"duplicate_row", "invalid_nhs_number", "unknown_referral"}
    assert "cleaning log" in out
    assert not list(processed.rglob("*.tmp"))


def test_no_key_is_exit_2_with_how_to_fix(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv(KEY_ENV, raising=False)
    code, _, err = run(["clean", "--config", write_study(tmp_path)], capsys)
    assert code == 2
    assert err.count("\n") == 1 and f"export {KEY_ENV}=" in err
    assert not (tmp_path / "processed").exists()


def test_config_error_is_one_line_without_traceback(tmp_path, keyed):
    path = write_study(tmp_path)
    cfg = yaml.safe_load(path.read_text())
    cfg["sites"]["X"]["sources"][0]["columns"]["referal_date"] = "x"
    path.write_text(yaml.safe_dump(cfg))
    proc = subprocess.run(
        [sys.executable, "-m", "linkeval.cli", "clean", "--config", str(path)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0
    assert "referal_date" in proc.stderr and "did you mean" in proc.stderr


def test_bad_usage_is_exit_2(capsys):
    with pytest.raises(SystemExit) as info:
        main(["clean"])
    assert info.value.code == 2


def test_check_reports_unmapped_labels_and_writes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv(KEY_ENV, raising=False)  # check needs no key
    code, out, _ = run(["check", "--config", write_study(tmp_path)], capsys)
    assert code == 0
    assert "Dentist" in out and "Pet care" in out and "Carrier pigeon" in out
    assert not (tmp_path / "processed").exists()


def test_clean_one_site_keeps_the_others(tmp_path, keyed, capsys):
    path = write_study(tmp_path, sites=("X", "Y"))
    assert run(["clean", "--config", path], capsys)[0] == 0
    before = pd.read_parquet(tmp_path / "processed" / "referrals.parquet")
    (tmp_path / "raw" / "y" / "referrals.csv").write_text(
        "Ref,NHS,Referred,DOB,Source,Why\nQ1,943 476 5919,05/03/2024,01/02/1950,GP,\n"
    )
    assert run(["clean", "--config", path, "--site", "Y"], capsys)[0] == 0
    after = pd.read_parquet(tmp_path / "processed" / "referrals.parquet")
    assert (
        after[after["site"] == "X"]
        .reset_index(drop=True)
        .equals(before[before["site"] == "X"].reset_index(drop=True))
    )
    assert after.loc[after["site"] == "Y", "referral_id"].tolist() == ["Q1"]
    summary = pd.read_csv(tmp_path / "processed" / "qa" / "summary.csv")
    assert sorted(summary["site"].unique()) == ["X", "Y"]


def test_unknown_site_is_exit_2(tmp_path, keyed, capsys):
    code, _, err = run(["clean", "--config", write_study(tmp_path), "--site", "Z"], capsys)
    assert code == 2 and "site 'Z' is not in the config" in err


def test_interrupted_write_leaves_previous_outputs_intact(tmp_path, keyed, capsys, monkeypatch):
    path = write_study(tmp_path)
    assert run(["clean", "--config", path], capsys)[0] == 0
    processed = tmp_path / "processed"
    snapshot = {p: p.read_bytes() for p in processed.rglob("*") if p.is_file()}
    calls = {"n": 0}
    real = io.write_parquet

    def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # as if the user pressed Ctrl-C mid-write
        return real(*args, **kwargs)

    monkeypatch.setattr(io, "write_parquet", failing)
    (tmp_path / "raw" / "x" / "referrals.csv").write_text(
        "Ref,NHS,Referred,DOB,Source,Why\nNEW,943 476 5919,05/03/2024,01/02/1950,GP,\n"
    )
    code, _, err = run(["clean", "--config", path], capsys)
    assert code == 130 and "unchanged" in err
    now = {p: p.read_bytes() for p in processed.rglob("*") if p.is_file()}
    assert calls["n"] >= 3 and now == snapshot


def test_synth_writes_a_config_that_cleans(tmp_path, capsys):
    code, out, _ = run(
        ["synth", "--out", tmp_path / "s", "--referrals", "120", "--sites", "2", "--seed", "3"],
        capsys,
    )
    assert code == 0 and "study.yaml" in out
    code, out, _ = run(["check", "--config", tmp_path / "s" / "study.yaml"], capsys)
    assert code == 0


def test_reliable_change_uses_the_whole_study_after_cleaning_one_site(tmp_path, keyed, capsys):
    from linkeval.cleaning import clean_study
    from linkeval.config import load_config
    from linkeval.synthetic import generate_study

    study = generate_study(tmp_path / "s", n_referrals=1200, n_sites=3, seed=2)
    cfg = load_config(study.config_path)
    assert run(["clean", "--config", study.config_path], capsys)[0] == 0
    assert run(["clean", "--config", study.config_path, "--site", "B"], capsys)[0] == 0
    merged = pd.read_parquet(cfg.processed_dir / "pairs.parquet")
    from linkeval.pseudonymise import DEMO_KEY  # the synthetic config says demo: true
    from linkeval.schema import plain

    whole = plain(clean_study(cfg, key=DEMO_KEY).tables["pairs"])  # categoricals in memory
    cols = ["site", "person_id", "instrument", "improved_reliably", "deteriorated_reliably"]
    a = merged[cols].sort_values(cols[:3]).reset_index(drop=True)
    b = whole[cols].sort_values(cols[:3]).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b, check_dtype=False)
