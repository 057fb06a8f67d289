"""Configs that must be refused with one clear line (issue 13, items 13 and 14).

Each was once accepted and went wrong later: a site silently dropped, reports written outside
reports_dir, every date rejected, a traceback or a minute of parsing.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from linkeval.config import load_config
from linkeval.errors import LinkevalError
from tests.helpers import write_study


def refused(path: Path) -> str:
    """The one-line error for a config, without its path (which every message starts with)."""
    with pytest.raises(LinkevalError) as info:
        load_config(path)
    message = str(info.value)
    assert "\n" not in message and message.startswith(str(path)), message
    return message[len(str(path)) :]


def edited(tmp_path: Path, change) -> Path:
    path = write_study(tmp_path)
    cfg = yaml.safe_load(path.read_text())
    change(cfg)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def source(cfg: dict, **update) -> None:
    cfg["sites"]["X"]["sources"][0].update(update)


def test_a_duplicate_key_is_refused_not_silently_dropped(tmp_path):
    path = write_study(tmp_path, sites=("X", "Y"))
    text = path.read_text()
    # The second site block pasted under the first site's code: YAML keeps only the last.
    path.write_text(text.replace("  Y:\n", "  X:\n"))
    message = refused(path)
    assert "duplicate key 'X'" in message and "line" in message


def test_a_duplicate_key_inside_a_source_is_refused(tmp_path):
    path = write_study(tmp_path)
    path.write_text(
        path.read_text().replace(
            "    - table: referrals\n", "    - table: referrals\n      table: contacts\n"
        )
    )
    assert "duplicate key 'table'" in refused(path)


@pytest.mark.parametrize("codes", [(1, "1"), ("X", "x")])
def test_two_sites_with_one_code(tmp_path, codes):
    def change(cfg):
        site = cfg["sites"].pop("X")
        cfg["sites"] = {codes[0]: site, codes[1]: site}

    assert "two sites have the code" in refused(edited(tmp_path, change))


@pytest.mark.parametrize(
    "code", ["../../..", "a/b", "..", "North site", "Zürich", "-x", ".hidden", "x" * 33]
)
def test_site_codes_that_would_name_folders_badly(tmp_path, code):
    def change(cfg):
        cfg["sites"] = {code: cfg["sites"]["X"]}

    assert "must be 1-32 letters, digits, - or _" in refused(edited(tmp_path, change))


def test_a_site_code_yaml_reads_as_a_boolean(tmp_path):
    path = write_study(tmp_path)
    path.write_text(path.read_text().replace("\n  X:\n", "\n  NO:\n"))
    assert "put it in quotes" in refused(path)


def test_min_count_true_is_refused(tmp_path):
    path = edited(tmp_path, lambda c: c.update(disclosure={"rule": "threshold", "min_count": True}))
    assert "min_count" in refused(path)


def test_sheet_on_a_csv(tmp_path):
    assert "only Excel workbooks" in refused(edited(tmp_path, lambda c: source(c, sheet="S1")))


@pytest.mark.parametrize(
    ("key", "value", "other"),
    [
        ("processed_dir", "raw/processed", "raw_dir"),
        ("processed_dir", "raw", "raw_dir"),
        ("reports_dir", "raw/reports", "raw_dir"),
        ("processed_dir", "reports/data", "reports_dir"),
    ],
)
def test_folders_inside_each_other(tmp_path, key, value, other):
    message = refused(edited(tmp_path, lambda c: c.update({key: value})))
    assert message.startswith(f": {key}:") and f"inside {other}" in message


def test_the_key_file_inside_raw_dir(tmp_path):
    path = edited(tmp_path, lambda c: c.update(pseudonymisation={"key_file": "raw/study.key"}))
    assert "keep the key apart from the data" in refused(path)


@pytest.mark.parametrize(
    ("fmt", "words"),
    [
        ("%d/%m/%Q", "bad directive"),
        ("%d/%m/%Y %", "not a valid date format"),
        ("dd/mm/yyyy", "not a date format"),
        (20240301, "not a date format"),
    ],
)
def test_bad_date_formats(tmp_path, fmt, words):
    assert words in refused(edited(tmp_path, lambda c: source(c, date_format=fmt)))


@pytest.mark.parametrize("delimiter", [";;", "", "\n", '"', 5])
def test_delimiters_that_are_not_one_character(tmp_path, delimiter):
    message = refused(edited(tmp_path, lambda c: source(c, delimiter=delimiter)))
    assert "delimiter" in message and "one character" in message


@pytest.mark.parametrize("written", ["\t", "\\t", "tab"])
def test_a_tab_delimiter_may_be_written_three_ways(tmp_path, written):
    cfg = load_config(edited(tmp_path, lambda c: source(c, delimiter=written)))
    assert cfg.sites["X"].sources[0].delimiter == "\t"


def test_skip_rows_beyond_reason(tmp_path):
    start = time.perf_counter()
    message = refused(edited(tmp_path, lambda c: source(c, skip_rows=10**12)))
    assert "skip_rows" in message and "at most 1,000" in message
    assert time.perf_counter() - start < 2


def test_an_empty_multi_value_separator(tmp_path):
    assert "multi_value_separator" in refused(
        edited(tmp_path, lambda c: source(c, multi_value_separator=""))
    )


@pytest.mark.parametrize(
    "raw_path", ["../study.yaml", "x/../../secret.csv", "/etc/passwd", "~/exports/x.csv"]
)
def test_raw_paths_stay_inside_raw_dir(tmp_path, raw_path):
    assert "must stay inside raw_dir" in refused(
        edited(tmp_path, lambda c: source(c, path=raw_path))
    )


def test_one_file_read_twice_for_a_table(tmp_path):
    def change(cfg):
        cfg["sites"]["X"]["sources"].append(dict(cfg["sites"]["X"]["sources"][0]))

    assert "reads the same file for table referrals" in refused(edited(tmp_path, change))


def test_a_yaml_alias_bomb_is_refused_at_once(tmp_path):
    path = write_study(tmp_path)
    bomb = "lol0: &l0 [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"lol{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]\n" for i in range(1, 10)
    )
    path.write_text(bomb + path.read_text())
    start = time.perf_counter()
    assert "anchors and aliases" in refused(path)
    assert time.perf_counter() - start < 2


def test_a_self_referring_alias_is_refused(tmp_path):
    path = tmp_path / "study.yaml"
    path.write_text("study: x\nloop: &a [1, *a]\nsites: {}\n")
    assert "refers to itself" in refused(path)


def test_ordinary_anchors_still_work(tmp_path):
    path = write_study(tmp_path, sites=("X", "Y"))
    text = path.read_text().replace("  X:\n    name: Site X\n", "  X: &site\n    name: Site X\n")
    cfg = yaml.safe_load(text)
    assert cfg["sites"]["X"]["name"] == "Site X"
    path.write_text(text)
    assert set(load_config(path).sites) == {"X", "Y"}


def test_a_huge_file_is_not_a_config(tmp_path):
    path = tmp_path / "study.yaml"
    path.write_bytes(b"# " + b"x" * 6_000_000 + b"\n")
    assert "not a study config" in refused(path)
