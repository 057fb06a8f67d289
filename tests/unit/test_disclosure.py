"""Disclosure control (docs/design.md, 'Disclosure control'): the rules and suppress()."""

from __future__ import annotations

import pandas as pd
import pytest

from linkeval.errors import LinkevalError
from linkeval.report.disclosure import describe_rule, suppress, suppress_count


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (0, 0),
        (1, "*"),
        (5, "*"),
        (7, "*"),
        (8, 10),
        (10, 10),
        (12, 10),
        (13, 15),
        (17, 15),
        (18, 20),
        (22, 20),
        (23, 25),
        (102, 100),
        (103, 105),
    ],
)
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
    table = pd.DataFrame(
        {
            "reason": ["a", "b", "c", "d"],
            "n": [52, 23, 5, 0],
            "denominator": [80, 80, 80, 80],
            "pct": [65.0, 28.75, 6.25, 0.0],
        }
    )
    out = suppress(table, counts=["n", "denominator"], percentages={"pct": ("n", "denominator")})
    assert out["n"].tolist() == [50, 25, "*", 0]
    assert out["denominator"].tolist() == [80, 80, 80, 80]
    assert out["pct"].tolist() == [50 / 80 * 100, 25 / 80 * 100, "*", 0.0]
    assert "nearest 5" in out.attrs["disclosure"]


def test_group_total_denominator():
    table = pd.DataFrame(
        {"site": ["A", "A", "B", "B"], "x": ["y", "n", "y", "n"], "n": [12, 11, 40, 3]}
    )
    out = suppress(table, counts=["n"], percentages={"pct": ("n", None)}, by="site")
    # site A: 10 of round(23) = 25 -> 40%; site B total 43 -> 45; 40/45
    assert out["pct"].tolist()[:3] == [
        pytest.approx(40.0),
        pytest.approx(40.0),
        pytest.approx(40 / 45 * 100),
    ]
    assert out["pct"].iloc[3] == "*"


def test_statistics_from_fewer_than_eight_people_are_hidden():
    table = pd.DataFrame(
        {
            "instrument": ["a", "b", "c"],
            "n": [7, 8, 0],
            "mean_change": [1.2, 2.5, float("nan")],
            "ci_low": [0.1, 0.5, None],
        }
    )
    out = suppress(table, counts=["n"], statistics=["mean_change", "ci_low"], n="n")
    assert out["mean_change"].tolist()[:2] == ["*", 2.5]
    assert out["ci_low"].tolist()[:2] == ["*", 0.5]
    assert out["n"].tolist() == ["*", 10, 0]
    assert table["n"].tolist() == [7, 8, 0]  # the input is not changed
    out = suppress(
        table, counts=["n"], statistics=["mean_change"], n="n", rule="threshold", min_count=10
    )
    assert out["mean_change"].tolist()[:2] == ["*", "*"]


def test_rule_none_is_unchanged_and_says_so():
    table = pd.DataFrame({"n": [1, 2]})
    out = suppress(table, rule="none")
    assert out["n"].tolist() == [1, 2]
    assert "analysts only" in describe_rule("none")


def test_report_tables_run_largest_first_and_keep_suppressed_rows_in_their_usual_order():
    from linkeval.report.sections import by_size

    safe = pd.DataFrame({"reason": ["a", "b", "c", "d", "e", "f"], "n": [10, "*", 40, 0, "*", 10]})
    ordered = by_size(safe)
    # Largest first, ties as they were; zero rows dropped; "*" rows last, b then e as given
    # (never by their hidden size).
    assert ordered["reason"].tolist() == ["c", "a", "f", "b", "e"]


def test_a_statistic_needs_every_contributing_group_to_meet_the_rule():
    table = pd.DataFrame(
        {"level": ["a", "b"], "n_level": [40, 5], "n_reference": [30, 30], "estimate": [1.5, 2.0]}
    )
    out = suppress(table, counts=[], statistics=["estimate"], n=["n_level", "n_reference"])
    assert out["estimate"].tolist() == [1.5, "*"]
    out = suppress(
        table.assign(n_reference=[9, 9]),
        counts=[],
        statistics=["estimate"],
        n=["n_level", "n_reference"],
        rule="threshold",
        min_count=10,
    )
    assert out["estimate"].tolist() == ["*", "*"]


def test_a_zero_beside_a_hidden_count_is_hidden_with_its_percentage():
    # Sex "other": 3 followed up, 0 not: showing the 0 says everyone in the group was followed.
    table = pd.DataFrame(
        {"level": ["female", "male", "other"], "followed": [60, 52, 3], "not_followed": [40, 33, 0]}
    )
    out = suppress(
        table,
        counts=["followed", "not_followed"],
        percentages={"pct_not": ("not_followed", None)},
        complements=["followed", "not_followed"],
    )
    assert out.loc[2, "followed"] == "*"
    assert out.loc[2, "not_followed"] == "*"
    assert out.loc[2, "pct_not"] == "*"
    assert out.loc[0, "not_followed"] == 40


def test_a_lone_hidden_cell_is_not_recoverable_from_the_total_under_an_exact_rule():
    table = pd.DataFrame({"g": ["x"] * 4, "level": list("abcd"), "n": [50, 12, 4, 30]})
    out = suppress(table, counts=["n"], by="g", totals=True, rule="threshold", min_count=10)
    assert out["n"].tolist() == [50, "*", "*", 30]  # 12, the next smallest, goes too
    rounded = suppress(table, counts=["n"], by="g", totals=True)
    assert rounded["n"].tolist() == [50, 10, "*", 30]  # rounding already protects it


def test_table_tests_are_shown_only_when_no_cell_is_hidden():
    from linkeval.report.disclosure import Rule

    rule = Rule()
    assert rule.table_test(0.114, [8, 2, 30, 40]) == "*"  # the 2 would be recoverable
    assert rule.table_test(0.114, [8, 0, 30, 40]) == 0.114
    assert Rule("threshold", 10).table_test(0.2, [9, 20]) == "*"
    assert Rule("none").table_test(0.2, [1]) == 0.2


def test_min_count_must_be_a_whole_number_not_true():
    from linkeval.report.disclosure import Rule

    with pytest.raises(LinkevalError):
        Rule("threshold", True)
    assert Rule("threshold", 10).minimum == 10
    assert Rule().minimum == 8
