"""An auditor's attack on the demo's pages, from what they show alone.

The demo study is reported under the NHS Digital rule and under ``{rule: threshold,
min_count: 10}``. Every table cell marked as a count must be *, 0 or rounded (or at least the
threshold); every percentage times its released denominator must be a released count; and
what a page shows is checked against the processed data: a band test's p-value only where no
cell of its table is small, a mean change only where enough people answered both times.
Two runs on the same data give the same numbers on every page.
"""

from __future__ import annotations

import html
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from linkeval.cli import main
from linkeval.instruments import score_names, score_title
from linkeval.io import load_processed
from linkeval.report.disclosure import Rule
from linkeval.stats.change import band_transitions

CELL = re.compile(
    r'<td class="[a-z]+" data-kind="([a-z]+)"(?: data-denominator="([^"]*)")?>'
    r"([^<]*)</td>"
)
H3 = re.compile(r"<h3[^>]*>([^<]+)</h3>")
BAND_TEST = re.compile(r"moved up as down between bands \([A-Za-z]+\): p = (\*|&lt;0\.001|[0-9.]+)")


def _run(study_dir: Path, rule: dict, run: str) -> Path:
    config = study_dir / "study.yaml"
    raw = yaml.safe_load(config.read_text())
    raw["disclosure"] = rule
    config.write_text(yaml.safe_dump(raw, sort_keys=False))
    assert main(["report", "--config", str(config), "--jobs", "2"]) == 0
    target = study_dir / "kept" / run  # a copy: the next run may tidy old versions away
    shutil.copytree((study_dir / "reports" / "latest").resolve(), target)
    return target


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    from linkeval.synthetic import generate_study

    out = tmp_path_factory.mktemp("attack")
    study = generate_study(out, seed=7)
    assert main(["clean", "--config", str(study.config_path)]) == 0
    return {
        "nhs": _run(out, {"rule": "nhs_digital"}, "nhs"),
        "nhs_again": _run(out, {"rule": "nhs_digital"}, "nhs_again"),
        "threshold": _run(out, {"rule": "threshold", "min_count": 10}, "threshold"),
        "processed": out / "processed",
        "config": study.config_path,
    }


def _number(text: str) -> float | None:
    text = text.replace(",", "").strip()
    try:
        return float(text)
    except ValueError:
        return None


@pytest.mark.parametrize(("run", "rule"), [("nhs", Rule()), ("threshold", Rule("threshold", 10))])
def test_every_count_and_percentage_on_every_page_is_safe(runs, run, rule):
    pages = sorted(runs[run].rglob("*.html"))
    assert len(pages) >= 13
    counted = 0
    for page in pages:
        for kind, denominator, text in CELL.findall(page.read_text()):
            text = html.unescape(text).strip()
            value = _number(text)
            if value is None:
                assert text in ("*", "-", "") or (kind == "statistic" and text == "<0.001"), (
                    page.name,
                    kind,
                    text,
                )
                continue
            counted += 1
            if kind == "count":
                ok = (value == 0 or value % 5 == 0) if rule.rounds else value >= rule.minimum
                assert ok, (page.name, text)
            if kind == "pct":
                den = _number(html.unescape(denominator))
                assert den is not None, (page.name, text, denominator)
                if rule.rounds:
                    assert den % 5 == 0
                    count = value * den / 100  # the page shows one decimal
                    nearest = 5 * round(count / 5)
                    assert abs(count - nearest) <= den / 1000 + 1e-9, (page.name, text, den)
    assert counted > 200


@pytest.mark.parametrize(("run", "rule"), [("nhs", Rule()), ("threshold", Rule("threshold", 10))])
def test_band_test_p_values_rest_on_no_small_cell(runs, run, rule):
    titles = {score_title(n): n for n in score_names()}
    shown = hidden = 0
    for page in sorted(runs[run].glob("sites/*/site_change.html")):
        site = page.parent.name
        pairs = load_processed(runs["processed"], site=site)["pairs"]
        parts = H3.split(page.read_text())  # [before, title, body, title, body, ...]
        for title, body in zip(parts[1::2], parts[2::2], strict=True):
            found = BAND_TEST.search(body)
            if not found:
                continue
            if found.group(1) == "*":
                hidden += 1
                continue
            shown += 1
            bands, _ = band_transitions(pairs, titles[html.unescape(title).strip()])
            assert not bands["n"].between(1, rule.minimum - 1).any(), (site, title)
    assert hidden > 0
    if run == "nhs":
        assert shown > 0  # the demo's larger sites show some tests


def test_two_runs_give_the_same_numbers_on_every_page(runs):
    from benchmarks.compare_runs import compare_reports

    assert compare_reports(runs["nhs"], runs["nhs_again"], ignore=[]) == []


def test_output_checks_log_every_release(runs):
    checks = pd.read_csv(runs["nhs"] / "output_checks.csv")
    assert {"page", "section", "item", "kind", "rule", "smallest_count", "n_suppressed"} <= set(
        checks.columns
    )
    assert checks["page"].nunique() >= 13
    assert set(checks["rule"].dropna()) == {"nhs_digital"}
