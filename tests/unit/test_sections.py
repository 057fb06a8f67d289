"""Report sections are pure functions whose every released number passes the gate.

An auditor's attack on what the sections release, under the NHS Digital rule and under a
threshold rule: counts are *, 0 or rounded; percentages are worked out from released counts;
statistics, tests and coefficients rest only on groups that meet the rule.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import pandas as pd
import pytest

from linkeval.io import load_processed
from linkeval.report import sections as S
from linkeval.report.blocks import Figure, Table, Text
from linkeval.report.disclosure import SUPPRESSED, Rule
from linkeval.stats.change import band_transitions

SITE_SECTIONS = (
    S.headline,
    S.referrals_over_time,
    S.sources,
    S.reasons,
    S.outcomes,
    S.who,
    S.funnel,
    S.contacts,
    S.onward,
    S.change_summary,
    S.attrition,
)
RULES = (Rule(), Rule("threshold", 10))


def released_tables(section):
    for block in section.blocks:
        if isinstance(block, Table):
            yield block.frame
        elif isinstance(block, Figure) and block.data is not None:
            yield block.data.frame


def check_counts_and_percentages(frame: pd.DataFrame, rule: Rule) -> None:
    kinds = frame.attrs.get("kinds", {})
    for col, kind in kinds.items():
        if col not in frame:
            continue
        for index, value in frame[col].items():
            if (
                value == SUPPRESSED
                or value is None
                or (isinstance(value, float) and math.isnan(value))
            ):
                continue
            if kind == "count":
                if rule.rounds:
                    assert value == 0 or value % 5 == 0, (col, value)
                else:
                    assert value >= rule.minimum, (col, value)
            if kind == "pct":
                den = frame.attrs["denominators"][col][index]
                assert den != SUPPRESSED
                if rule.rounds:
                    assert float(den) % 5 == 0
                    count = value * float(den) / 100
                    assert abs(count - round(count)) < 1e-6 and round(count) % 5 == 0, (
                        col,
                        value,
                        den,
                    )


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def site_tables(demo_processed):
    """The demo's smallest site (C, many cells hidden) and its largest (B)."""
    return {code: load_processed(demo_processed, site=code) for code in ("B", "C")}


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.name)
def test_every_count_and_percentage_released_by_a_site_section_is_safe(site_tables, rule):
    for tables in site_tables.values():
        for section in SITE_SECTIONS:
            result = section(tables, rule)
            assert result.checks, section.__name__
            for frame in released_tables(result):
                check_counts_and_percentages(frame, rule)


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.name)
def test_band_tests_are_shown_only_when_no_cell_of_the_table_is_small(site_tables, rule):
    shown = hidden = 0
    for tables in site_tables.values():
        for name in S.scores_present(tables["pairs"]):
            result = S.instrument(tables, rule, name)
            texts = [
                b.markdown
                for b in result.blocks
                if isinstance(b, Text) and b.markdown.startswith("Test that")
            ]
            if not texts:
                continue
            bands, _ = band_transitions(tables["pairs"], name)
            small = bands["n"].between(1, rule.minimum - 1).any()
            if "p = *" in texts[0]:
                hidden += 1
            else:
                shown += 1
                assert not small, (name, bands["n"].tolist())
    assert hidden > 0  # the demo's small sites do hide some


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.name)
def test_change_statistics_rest_on_enough_pairs(site_tables, rule):
    for tables in site_tables.values():
        result = S.change_summary(tables, rule)
        for frame in released_tables(result):
            if "mean_change" not in frame:
                continue
            pairs = tables["pairs"]
            complete = pairs[pairs["followup"].notna() & pairs["in_window"].astype(bool)]
            n = complete.groupby("instrument").size()
            for _, row in frame.iterrows():
                if row["mean_change"] != SUPPRESSED:
                    assert n[row["instrument"]] >= rule.minimum


def test_sections_read_no_files_and_say_which_rule(site_tables):
    result = S.headline(site_tables["B"], Rule("threshold", 10))
    assert {c["rule"] for c in result.checks} == {"threshold"}
    assert all(c["section"] == "headline" for c in result.checks)


def test_months_are_grouped_into_quarters_when_most_would_be_hidden():
    dates = pd.to_datetime(
        ["2024-01-15", "2024-02-10", "2024-03-03", "2024-04-20", "2024-05-05", "2024-06-07"] * 3
    )
    referrals = pd.DataFrame({"referral_date": dates})
    safe, label = S.per_period(referrals, Rule())
    assert label == "Quarter"
    assert safe["referrals"].tolist() == [10, 10]  # 9 a quarter, rounded; months of 3 hidden
    # With enough referrals every month is shown, and a hidden month is never averaged away.
    many = pd.DataFrame(
        {
            "referral_date": pd.to_datetime(
                [f"2024-{m:02d}-01" for m in range(1, 13) for _ in range(20 if m != 5 else 3)]
            )
        }
    )
    safe, label = S.per_period(many, Rule())
    assert label == "Month"
    assert safe.loc[4, "referrals"] == "*"
    assert safe.loc[4:6, "rolling_mean"].tolist() == ["-", "-", "-"]
    assert "mean" not in safe  # control limits need every month shown


def test_small_age_bands_are_merged_with_a_neighbour():
    frame = pd.DataFrame(
        {"age_band": ["18-24"] * 3 + ["25-34"] * 20 + ["85+"] * 2 + ["75-84"] * 30}
    )
    out, merged = S.collapse_small_levels(frame, "age_band", 8, ["18-24", "25-34", "75-84", "85+"])
    assert out["age_band"].value_counts().min() >= 8
    assert set(out["age_band"]) == {"18-24 to 25-34", "75-84 to 85+"}
    assert merged == ["18-24 with 25-34", "85+ with 75-84"]
