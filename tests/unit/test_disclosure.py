"""Disclosure control (DESIGN section 9): the NHS Digital rule, thresholds, and suppress()."""

from __future__ import annotations

import pandas as pd
import pytest

from linkeval.errors import LinkevalError
from linkeval.report.disclosure import describe_rule, suppress, suppress_count


@pytest.mark.parametrize(("n", "expected"), [
    (0, 0), (1, "*"), (5, "*"), (7, "*"), (8, 10), (10, 10), (12, 10), (13, 15), (17, 15),
    (18, 20), (22, 20), (23, 25), (102, 100), (103, 105),
])
def test_nhs_digital_rule(n, expected):
    assert suppress_count(n) == expected


def test_threshold_and_none_rules():
    assert [suppress_count(n, "threshold", 10) for n in (0, 9, 10, 11)] == ["*", "*", 10, 11]
    assert suppress_count(3, "none") == 3
    with pytest.raises(LinkevalError):
        suppress_count(3, "threshold")
    with pytest.raises(LinkevalError):
        suppress_count(3, "nhs_digtal")


def test_percentages_come_from_rounded_counts():
    table = pd.DataFrame({"reason": ["a", "b", "c", "d"], "n": [52, 23, 5, 0],
                          "denominator": [80, 80, 80, 80], "pct": [65.0, 28.75, 6.25, 0.0]})
    out = suppress(table, counts=["n", "denominator"],
                   percentages={"pct": ("n", "denominator")})
    assert out["n"].tolist() == [50, 25, "*", 0]
    assert out["denominator"].tolist() == [80, 80, 80, 80]
    assert out["pct"].tolist() == [50 / 80 * 100, 25 / 80 * 100, "*", 0.0]
    assert "nearest 5" in out.attrs["disclosure"]


def test_group_total_denominator():
    table = pd.DataFrame({"site": ["A", "A", "B", "B"], "x": ["y", "n", "y", "n"],
                          "n": [12, 11, 40, 3]})
    out = suppress(table, counts=["n"], percentages={"pct": ("n", None)}, by="site")
    # site A: 10 of round(23) = 25 -> 40%; site B total 43 -> 45; 40/45
    assert out["pct"].tolist()[:3] == [pytest.approx(40.0), pytest.approx(40.0),
                                       pytest.approx(40 / 45 * 100)]
    assert out["pct"].iloc[3] == "*"


def test_statistics_from_fewer_than_eight_people_are_hidden():
    table = pd.DataFrame({"instrument": ["a", "b", "c"], "n": [7, 8, 0],
                          "mean_change": [1.2, 2.5, float("nan")], "ci_low": [0.1, 0.5, None]})
    out = suppress(table, counts=["n"], statistics=["mean_change", "ci_low"], n="n")
    assert out["mean_change"].tolist()[:2] == ["*", 2.5]
    assert out["ci_low"].tolist()[:2] == ["*", 0.5]
    assert out["n"].tolist() == ["*", 10, 0]
    assert table["n"].tolist() == [7, 8, 0]  # the input is not changed
    out = suppress(table, counts=["n"], statistics=["mean_change"], n="n", rule="threshold",
                   min_count=10)
    assert out["mean_change"].tolist()[:2] == ["*", "*"]


def test_rule_none_is_unchanged_and_says_so():
    table = pd.DataFrame({"n": [1, 2]})
    out = suppress(table, rule="none")
    assert out["n"].tolist() == [1, 2]
    assert "analysts only" in describe_rule("none")


def test_report_tables_run_largest_first_and_keep_suppressed_rows_in_their_usual_order():
    from linkeval.report.sections import _by_size

    safe = pd.DataFrame({"reason": ["a", "b", "c", "d", "e", "f"],
                         "n": [10, "*", 40, 0, "*", 10]})
    ordered = _by_size(safe)
    # Largest first, ties as they were; zero rows dropped; "*" rows last, b then e as given
    # (never by their hidden size).
    assert ordered["reason"].tolist() == ["c", "a", "f", "b", "e"]
