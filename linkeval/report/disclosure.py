"""Statistical disclosure control for steering-group outputs (DESIGN section 9).

Rule ``nhs_digital`` (NHS Digital HES/ECDS guidance, also applied by OpenSAFELY): a count of 0
stays 0; 1-7 becomes "*"; any other count is rounded to the nearest 5. Percentages are
recomputed from the rounded counts; a mean, median, SD or CI based on fewer than 8 people
becomes "*". Rule ``threshold``: counts below ``min_count`` become "*" (and statistics based
on fewer than ``min_count`` people). Rule ``none``: unchanged, for analysts only.

One function, :func:`suppress`, serves every table and every chart's data, so the rule is
applied the same way everywhere.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from linkeval.config import DISCLOSURE_RULES as RULES
from linkeval.errors import LinkevalError

SUPPRESSED = "*"
NHS_DIGITAL_MIN = 8  # counts 1-7 are suppressed, so statistics need at least 8 people


def as_numbers(values: pd.Series) -> pd.Series:
    """Disclosure-controlled values as numbers, suppressed cells ("*") as missing: for
    charts, sorting and headlines built from an already controlled table."""
    return pd.to_numeric(values.where(values.astype(str) != SUPPRESSED), errors="coerce")


def describe_rule(rule: str = "nhs_digital", min_count: int | None = None) -> str:
    """A plain-English footnote for reports."""
    if rule == "nhs_digital":
        return ("Small numbers are hidden to protect confidentiality: counts of 1 to 7 are "
                "shown as *, other counts are rounded to the nearest 5, percentages are "
                "worked out from the rounded counts, and averages or ranges based on fewer "
                "than 8 people are shown as * (NHS Digital rule).")
    if rule == "threshold":
        return (f"Small numbers are hidden to protect confidentiality: counts below {min_count} "
                f"and averages based on fewer than {min_count} people are shown as *.")
    return "No disclosure control applied: for analysts only, not for circulation."


def _check(rule: str, min_count: int | None) -> None:
    if rule not in RULES:
        raise LinkevalError(f"unknown disclosure rule {rule!r}; use one of {', '.join(RULES)}")
    if rule == "threshold" and (min_count is None or min_count < 1):
        raise LinkevalError("disclosure rule threshold needs min_count (a positive whole number)")


def suppress_count(n, rule: str = "nhs_digital", min_count: int | None = None):
    """Apply the rule to one count or a Series of counts.

    >>> [suppress_count(n) for n in (0, 1, 7, 8, 12, 13, 102)]
    [0, '*', '*', 10, 10, 15, 100]
    """
    _check(rule, min_count)
    if isinstance(n, pd.Series):
        return n.map(lambda v: suppress_count(v, rule, min_count)).astype(object)
    if n is None or (isinstance(n, float) and np.isnan(n)) or n is pd.NA:
        return n
    n = int(n)
    if rule == "none":
        return n
    if rule == "threshold":
        return SUPPRESSED if n < min_count else n
    if n == 0:
        return 0
    if n <= 7:
        return SUPPRESSED
    return int(5 * np.floor(n / 5 + 0.5))  # round half up, as NHS Digital tables do


def _minimum(rule: str, min_count: int | None) -> int:
    return NHS_DIGITAL_MIN if rule == "nhs_digital" else (min_count or 0) if rule == "threshold" else 0


def suppress(
    table: pd.DataFrame,
    counts: Iterable[str] = ("n",),
    percentages: dict[str, tuple[str, str | None]] | None = None,
    statistics: Iterable[str] = (),
    n: str | None = None,
    by: str | list[str] | None = None,
    rule: str = "nhs_digital",
    min_count: int | None = None,
) -> pd.DataFrame:
    """Disclosure-control a tidy table for publication.

    Parameters
    ----------
    table : the table to publish (not changed).
    counts : count columns; each is suppressed or rounded.
    percentages : ``{pct_column: (count_column, denominator)}``. The percentage is recomputed
        from the rounded count; the denominator is a column of ``table`` (rounded the same way)
        or ``None`` for the group total of ``count_column`` (summed, then rounded). A
        percentage of a suppressed count, or over a suppressed denominator, is suppressed.
    statistics : columns holding means, SDs, medians, CIs or other values computed from
        people; they become "*" where the row's ``n`` column is below the rule's minimum
        (8 for nhs_digital, ``min_count`` for threshold).
    n : the column with the number of people behind the statistics (required with
        ``statistics``).
    by : grouping columns for denominators computed from group totals.
    rule, min_count : the disclosure rule (see module docstring).

    Returns a copy: suppressed cells hold "*", so columns that contain any are object dtype.
    ``result.attrs["disclosure"]`` holds the footnote for the rule.
    """
    _check(rule, min_count)
    out = table.copy()
    out.attrs["disclosure"] = describe_rule(rule, min_count)
    if rule == "none":
        return out
    counts = list(counts)
    statistics = list(statistics)
    if statistics and n is None:
        raise ValueError("suppress(): give n= (the column with the number of people) "
                         "to control statistics")
    keys = [] if by is None else [by] if isinstance(by, str) else list(by)
    raw = table  # percentages need the unrounded group totals
    for pct, (count_col, denominator) in (percentages or {}).items():
        num = pd.to_numeric(raw[count_col], errors="coerce")
        if denominator is None:
            den = num.groupby([raw[k] for k in keys]).transform("sum") if keys else \
                pd.Series(num.sum(), index=raw.index)
        else:
            den = pd.to_numeric(raw[denominator], errors="coerce")
        num_r = suppress_count(num, rule, min_count)
        den_r = suppress_count(den, rule, min_count)
        usable = (num_r != SUPPRESSED) & (den_r != SUPPRESSED) & num_r.notna() & den_r.notna()
        value = pd.Series(SUPPRESSED, index=out.index, dtype=object)
        ok_den = pd.to_numeric(den_r.where(usable), errors="coerce")
        ok_num = pd.to_numeric(num_r.where(usable), errors="coerce")
        value[usable] = (100 * ok_num / ok_den.replace(0, np.nan))[usable]
        out[pct] = value
    for col in counts:
        out[col] = suppress_count(pd.to_numeric(table[col], errors="coerce"), rule, min_count)
    if statistics:
        people = pd.to_numeric(table[n], errors="coerce")
        few = people < _minimum(rule, min_count)
        for col in statistics:
            col_values = out[col].astype(object)
            col_values[few.fillna(True).to_numpy()] = SUPPRESSED
            out[col] = col_values
    return out
