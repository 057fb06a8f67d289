"""Programme-theory readings on the larger synthetic study match the generator's truth."""

from __future__ import annotations

import numpy as np
import yaml

from linkeval.config import load_config
from linkeval.stats.realist import assess_programme_theory
from linkeval.synthetic import DEMO_CMOCS, TRUE_CHANGE


def _assess(cfg, tables, **kw):
    """The plain-argument call a report makes from a config."""
    return assess_programme_theory(
        cfg.programme_theory,
        tables,
        site_context={code: site.context for code, site in cfg.sites.items()},
        lonely_threshold=cfg.instrument_settings("ucla3").lonely_threshold,
        **kw,
    )


def test_readings_match_the_synthetic_truth(large_study):
    cfg, tables = large_study
    result = _assess(cfg, tables)
    out = result.set_index("id")
    # Truth (linkeval.synthetic.generate.TRUE_CHANGE): loneliness +, attended contacts +, most deprived
    # -, practical needs - (the CMOC expects +), VCSE host 0.
    assert TRUE_CHANGE["practical_need"] < 0 and TRUE_CHANGE["vcse_host"] == 0
    assert out["reading"].to_dict() == {
        "CMO1-loneliness": "consistent",
        "CMO2-buy-in": "consistent",
        "CMO3-deprivation": "consistent",
        "CMO4-practical-needs": "not consistent",
        "CMO5-vcse-host": "inconclusive",
    }
    # Estimates are differences in improvement: positive = the context group improved more.
    assert out.loc["CMO1-loneliness", "estimate"] > 0
    assert out.loc["CMO3-deprivation", "estimate"] < 0
    assert "A: " in out.loc["CMO5-vcse-host", "n_by_site"]
    assert "not mechanism" in result.attrs["caveat"]
    # The host is a site-level context: read from the meta-regression of the six site means,
    # on k - 2 = 4 df, with a precision that says more sites (not people) would help.
    host = out.loc["CMO5-vcse-host"]
    assert host["level"] == "site" and host["df"] == 4
    assert "meta-regression" in host["model"]
    assert "more sites" in host["precision"]
    assert (out.drop(index="CMO5-vcse-host")["level"] == "person").all()
    # Holm beside the unadjusted p: never smaller, and here the readings agree.
    assert (out["p_holm"] >= out["p_value"] - 1e-15).all()
    assert out["reading_holm"].to_dict() == out["reading"].to_dict()
    assert np.isfinite(out["mde"]).all() and (out["mde"] > 0).all()


def test_holm_and_precision_on_a_small_theory(large_study):
    cfg, tables = large_study
    theory = [c for c in cfg.programme_theory if c.id in ("CMO1-loneliness", "CMO5-vcse-host")]
    out = _assess(cfg, tables).set_index("id").loc[[c.id for c in theory]]
    two = _assess(cfg, tables).set_index("id")
    assert len(out) == 2 and len(two) == 5
    # With fewer CMOCs the Holm adjustment is milder.
    small = assess_programme_theory(theory, tables, {k: s.context for k, s in cfg.sites.items()})
    small = small.set_index("id")
    assert small.loc["CMO5-vcse-host", "p_holm"] <= two.loc["CMO5-vcse-host", "p_holm"]
    assert "80% power to detect a difference of" in small.loc["CMO1-loneliness", "precision"]


def test_direction_is_respected_for_lower_is_better_scores(large_study):
    cfg, tables = large_study
    loneliness = dict(
        DEMO_CMOCS[0],
        id="ucla",
        test={
            "outcome": "ucla3",
            "context": {"variable": "n_attended", "at_least": 6},
            "expected": "more_improvement",
        },
    )
    raw = yaml.safe_load(cfg.path.read_text())
    raw["programme_theory"] = [loneliness]
    cfg.path.with_name("ucla.yaml").write_text(yaml.safe_dump(raw))
    out = _assess(load_config(cfg.path.with_name("ucla.yaml")), tables)
    # More attended contacts -> loneliness falls further -> a positive improvement difference.
    assert out["estimate"].item() > 0
