"""Programme theory (issues 6 and 12): CMOC config, the cautious reading, the synthetic truth,
site-level contexts read across sites, Holm adjustment and precision."""

from __future__ import annotations

import pytest
import yaml

from linkeval.config import load_config
from linkeval.errors import LinkevalError
from linkeval.stats.realist import describe_contrast, read
from tests.helpers import write_study


@pytest.mark.parametrize(
    ("estimate", "low", "high", "expected", "n", "reading"),
    [
        (1.0, 0.5, 1.5, "more_improvement", 100, "consistent"),
        (1.0, 0.5, 1.5, "less_improvement", 100, "not consistent"),
        (-1.0, -1.5, -0.5, "less_improvement", 100, "consistent"),
        (0.3, -0.2, 0.8, "more_improvement", 100, "inconclusive"),
        (1.0, 0.5, 1.5, "more_improvement", 10, "inconclusive"),  # a group too small
    ],
)
def test_reading_rule(estimate, low, high, expected, n, reading):
    assert read(estimate, low, high, expected, n, 100) == reading


def _with_theory(tmp_path, theory):
    path = write_study(tmp_path, extra={"programme_theory": theory})
    return path


def _cmoc(**test):
    return {
        "id": "C1",
        "context": "c",
        "mechanism": "m",
        "outcome": "o",
        "test": {
            "outcome": "swemwbs",
            "context": {"variable": "lonely_baseline"},
            "expected": "more_improvement",
            **test,
        },
    }


@pytest.mark.parametrize(
    ("test", "message"),
    [
        ({"outcome": "swembws"}, 'did you mean "swemwbs"'),
        ({"context": {"variable": "lonely_basline"}}, 'did you mean "lonely_baseline"'),
        ({"context": {"variable": "reason:housng"}}, 'did you mean "housing"'),
        ({"context": {"variable": "site:hots", "equals": "vcse"}}, "no site declares"),
        ({"context": {"variable": "imd_decile"}}, "needs a condition"),
        ({"expected": "more"}, 'did you mean "more_improvement"'),
    ],
)
def test_cmoc_config_errors(tmp_path, test, message):
    path = _with_theory(tmp_path, [_cmoc(**test)])
    with pytest.raises(LinkevalError, match=message) as info:
        load_config(path)
    assert "programme_theory[0]" in str(info.value)


def test_site_attributes_and_contrast_words(tmp_path):
    path = write_study(
        tmp_path,
        extra={"programme_theory": [_cmoc(context={"variable": "site:host", "equals": "vcse"})]},
    )
    raw = yaml.safe_load(path.read_text())
    raw["sites"]["X"]["context"] = {"host": "vcse"}
    path.write_text(yaml.safe_dump(raw))
    cmoc = load_config(path).programme_theory[0]
    assert cmoc.variable == "site:host" and cmoc.condition == ("equals", "vcse")
    assert describe_contrast(cmoc) == "site host = vcse vs the rest"
