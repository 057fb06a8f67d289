"""Study config validation: one clear line per problem, with the key path and a suggestion."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from linkeval.config import load_config
from linkeval.errors import LinkevalError
from linkeval.synthetic import config_text, generate_study
from tests.helpers import write_study

ROOT = Path(__file__).resolve().parents[2]


def edit(path: Path, change) -> Path:
    cfg = yaml.safe_load(path.read_text())
    change(cfg)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def error_of(path: Path) -> str:
    with pytest.raises(LinkevalError) as info:
        load_config(path)
    message = str(info.value)
    assert "\n" not in message
    assert str(path) in message
    return message


def test_valid_config_resolves_paths_against_its_folder(tmp_path):
    cfg = load_config(write_study(tmp_path))
    assert cfg.raw_dir == (tmp_path / "raw").resolve()
    assert cfg.followup_window_days == (270, 365)
    assert cfg.disclosure == {"rule": "nhs_digital"}
    assert len(cfg.sha256) == 64


def test_unknown_top_level_key_suggests_the_nearest(tmp_path):
    path = edit(write_study(tmp_path), lambda c: c.update(procesed_dir="x"))
    assert "procesed_dir" in error_of(path) and 'did you mean "processed_dir"' in error_of(path)


def test_misspelt_canonical_field_names_key_path(tmp_path):
    def change(c):
        cols = c["sites"]["X"]["sources"][0]["columns"]
        cols["referal_date"] = cols.pop("referral_date")

    message = error_of(edit(write_study(tmp_path), change))
    assert "sites.X.sources[0].columns.referal_date" in message
    assert 'did you mean "referral_date"' in message


def test_unknown_table(tmp_path):
    def change(c):
        c["sites"]["X"]["sources"][1]["table"] = "contact"

    message = error_of(edit(write_study(tmp_path), change))
    assert "sites.X.sources[1].table" in message and 'did you mean "contacts"' in message


def test_required_field_and_identifier(tmp_path):
    def no_date(c):
        del c["sites"]["X"]["sources"][0]["columns"]["referral_date"]

    assert "needs the field 'referral_date'" in error_of(edit(write_study(tmp_path), no_date))

    def no_id(c):
        del c["sites"]["X"]["sources"][0]["columns"]["nhs_number"]

    assert "person identifier" in error_of(edit(write_study(tmp_path / "b"), no_id))


def test_value_mapping_to_an_unknown_code(tmp_path):
    def change(c):
        c["sites"]["X"]["sources"][0]["values"] = {"referral_source": {"Dr": "gpp"}}

    message = error_of(edit(write_study(tmp_path), change))
    assert "values.referral_source.Dr" in message and 'did you mean "gp"' in message


def test_bad_disclosure_rule_and_window(tmp_path):
    path = edit(write_study(tmp_path), lambda c: c.update(disclosure={"rule": "nhs-digital"}))
    assert 'did you mean "nhs_digital"' in error_of(path)
    path = edit(write_study(tmp_path / "w"), lambda c: c.update(followup_window_days=[365, 270]))
    assert "followup_window_days" in error_of(path)


def test_yaml_syntax_error_gives_the_line(tmp_path):
    path = tmp_path / "study.yaml"
    path.write_text("study: x\nsites:\n  A: [unclosed\n")
    assert "line" in error_of(path) and "YAML syntax error" in error_of(path)


def test_missing_config_file(tmp_path):
    assert "config file not found" in error_of(tmp_path / "nope.yaml")


def test_example_config_is_valid():
    cfg = load_config(ROOT / "config" / "study.example.yaml")
    assert set(cfg.sites) == {"A", "B"}
    assert not cfg.demo


def test_committed_demo_config_is_what_the_generator_writes(tmp_path):
    study = generate_study(
        tmp_path,
        seed=0,
        raw_dir=tmp_path / "data" / "raw" / "demo",
        config_path=tmp_path / "config" / "demo.yaml",
        processed_dir=tmp_path / "data" / "processed" / "demo",
        reports_dir=tmp_path / "reports" / "demo",
    )
    committed = (ROOT / "config" / "demo.yaml").read_text(encoding="utf-8")
    assert committed == config_text(study.config), "run `linkeval demo` and commit config/demo.yaml"
    assert load_config(ROOT / "config" / "demo.yaml").demo


def _with_questionnaire(tmp_path, source_update):
    def change(c):
        source = {
            "table": "questionnaires",
            "path": "x/q.csv",
            "columns": {"referral_id": "Ref", "timepoint": "Stage", "completed_date": "Done"},
            "items": {"swemwbs": [f"SW{i}" for i in range(1, 8)]},
        }
        source_update(source)
        c["sites"]["X"]["sources"].append(source)

    return edit(write_study(tmp_path), change)


def test_questionnaire_items_are_checked(tmp_path):
    msg = error_of(
        _with_questionnaire(tmp_path / "a", lambda s: s["items"].update(swemwbs=["SW1", "SW2"]))
    )
    assert "items.swemwbs" in msg and "7 items" in msg
    msg = error_of(_with_questionnaire(tmp_path / "b", lambda s: s["items"].update(swembws=["x"])))
    assert 'did you mean "swemwbs"' in msg
    msg = error_of(
        _with_questionnaire(
            tmp_path / "c",
            lambda s: s.update(
                items={"ons4": {"life_satisfaction": "A", "worthwhile": "B", "happy": "C"}}
            ),
        )
    )
    assert "missing item(s) anxious" in msg


def test_questionnaire_timepoint_by_date_or_mapped(tmp_path):
    def by_date(s):
        del s["columns"]["timepoint"]
        s["timepoint"] = "by_date"

    cfg = load_config(_with_questionnaire(tmp_path / "a", by_date))
    assert cfg.sites["X"].sources[-1].timepoint == "by_date"
    msg = error_of(_with_questionnaire(tmp_path / "b", lambda s: s["columns"].pop("timepoint")))
    assert "set timepoint: by_date" in msg


def test_instrument_settings_are_validated(tmp_path):
    path = edit(write_study(tmp_path), lambda c: c.update(instruments={"ucla3": {"lonely": 7}}))
    assert 'did you mean "lonely_threshold"' in error_of(path)
