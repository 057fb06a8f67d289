"""Statistical disclosure control: the one gate every number on a steering-group page passes.

Rule ``nhs_digital`` (NHS Digital HES/ECDS guidance, also applied by OpenSAFELY): a count of 0
stays 0; 1-7 becomes "*"; any other count is rounded to the nearest 5. Percentages are
worked out from the rounded counts; a mean, median, SD, CI, p-value, coefficient or
standardised difference is shown only where every group or cell it rests on has at least 8
people. Rule ``threshold``: counts below ``min_count`` become "*", and statistics need
``min_count`` people in every contributing group. Rule ``none``: unchanged, for analysts only.

Beyond the primary rule, :func:`suppress` prevents the two secondary disclosures that an
auditor finds first:

- *complementary cells* (``complements``): where a row splits one group into parts (followed up
  / not followed up), a 0 beside a hidden count says that everyone in a small group shared
  the outcome, so the 0 (and the percentages it feeds) is hidden too;
- *recoverable cells* (``totals``): where the counts of a group add up to a released total and
  the rule does not round, one hidden cell could be recovered by subtraction, so the next
  smallest cell of the group is hidden as well.

Every controlled table carries what was done in ``table.attrs``: the rule's footnote, the
smallest count it rests on and how many cells were hidden, from which the report layer writes
the output-check log a data custodian signs off.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from linkeval.config import DISCLOSURE_RULES as RULES
from linkeval.errors import LinkevalError
from linkeval.stats.describe import group_keys

SUPPRESSED = "*"
NHS_DIGITAL_MIN = 8  # counts 1-7 are suppressed, so statistics need at least 8 people


@dataclass(frozen=True)
class Rule:
    """A disclosure rule: ``name`` (nhs_digital, threshold or none) and its ``min_count``."""

    name: str = "nhs_digital"
    min_count: int | None = None

    def __post_init__(self) -> None:
        _check(self.name, self.min_count)

    @classmethod
    def from_config(cls, disclosure: dict) -> Rule:
        return cls(disclosure.get("rule", "nhs_digital"), disclosure.get("min_count"))

    @property
    def minimum(self) -> int:
        """The fewest people a released statistic may rest on."""
        return _minimum(self.name, self.min_count)

    @property
    def rounds(self) -> bool:
        return self.name == "nhs_digital"

    def hidden(self, n) -> bool:
        """Would the count ``n`` be shown as "*"?"""
        return suppress_count(n, self.name, self.min_count) == SUPPRESSED

    def count(self, n):
        return suppress_count(n, self.name, self.min_count)

    def enough(self, *counts) -> bool:
        """Do all the counts a statistic rests on meet the minimum?"""
        values = [c for c in counts if c is not None]
        return bool(values) and all(pd.notna(c) and c >= self.minimum for c in values)

    def statistic(self, value, *counts):
        """``value`` if every contributing count meets the minimum, else "*"."""
        return value if self.enough(*counts) else SUPPRESSED

    def table_test(self, value, cells: Iterable):
        """A test statistic or p-value from a table: shown only if no cell of it is hidden."""
        cells = [int(c) for c in cells]
        if self.name == "none":
            return value
        if not cells or any(self.hidden(c) for c in cells):
            return SUPPRESSED
        return value

    @property
    def footnote(self) -> str:
        return describe_rule(self.name, self.min_count)

    @property
    def short_footnote(self) -> str:
        """One line under a figure."""
        if self.name == "nhs_digital":
            return "* = 1 to 7 people, hidden; other counts rounded to the nearest 5"
        if self.name == "threshold":
            return f"* = fewer than {self.min_count} people, hidden"
        return "No disclosure control: for analysts only"

    def suppress(self, table: pd.DataFrame, **kwargs) -> pd.DataFrame:
        return suppress(table, rule=self.name, min_count=self.min_count, **kwargs)


def as_numbers(values: pd.Series) -> pd.Series:
    """Disclosure-controlled values as numbers, suppressed cells ("*") as missing: for
    charts, sorting and headlines built from an already controlled table."""
    return pd.to_numeric(values.where(values.astype(str) != SUPPRESSED), errors="coerce")


def describe_rule(rule: str = "nhs_digital", min_count: int | None = None) -> str:
    """A plain-English footnote for reports."""
    if rule == "nhs_digital":
        return (
            "Small numbers are hidden to protect confidentiality: counts of 1 to 7 are "
            "shown as *, other counts are rounded to the nearest 5, percentages are "
            "worked out from the rounded counts, and averages, ranges, tests and other "
            "results that rest on fewer than 8 people in any group are shown as * "
            "(NHS Digital rule)."
        )
    if rule == "threshold":
        return (
            f"Small numbers are hidden to protect confidentiality: counts below {min_count} "
            f"and averages, tests and other results resting on fewer than {min_count} "
            "people in any group are shown as *."
        )
    return "No disclosure control applied: for analysts only, not for circulation."


def _check(rule: str, min_count) -> None:
    if rule not in RULES:
        raise LinkevalError(f"unknown disclosure rule {rule!r}; use one of {', '.join(RULES)}")
    if rule == "threshold" and (
        isinstance(min_count, bool) or not isinstance(min_count, int) or min_count < 1
    ):
        raise LinkevalError("disclosure rule threshold needs min_count (a positive whole number)")


def suppress_count(n, rule: str = "nhs_digital", min_count: int | None = None):
    """Apply the rule to one count or a Series of counts.

    >>> [suppress_count(n) for n in (0, 1, 7, 8, 12, 13, 102)]
    [0, '*', '*', 10, 10, 15, 100]
    >>> [suppress_count(n, "threshold", 10) for n in (0, 9, 10)]
    ['*', '*', 10]
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
    return (
        NHS_DIGITAL_MIN if rule == "nhs_digital" else (min_count or 0) if rule == "threshold" else 0
    )


def suppress(
    table: pd.DataFrame,
    counts: Iterable[str] = ("n",),
    percentages: dict[str, tuple[str, str | None]] | None = None,
    statistics: Iterable[str] = (),
    n: str | list[str] | None = None,
    by: str | list[str] | None = None,
    rule: str = "nhs_digital",
    min_count: int | None = None,
    complements: Iterable[str] = (),
    totals: bool = False,
) -> pd.DataFrame:
    """Disclosure-control a tidy table for publication.

    Parameters
    ----------
    table : pandas.DataFrame
        The table to publish (not changed).
    counts : list of str
        Count columns; each is suppressed or rounded.
    percentages : dict
        ``{pct_column: (count_column, denominator)}``. The percentage is recomputed from the
        rounded count; the denominator is a column of ``table`` (rounded the same way) or
        ``None`` for the group total of ``count_column`` (summed, then rounded). A percentage
        of a hidden count, or over a hidden denominator, is hidden.
    statistics : list of str
        Columns holding means, SDs, medians, CIs, p-values, coefficients or standardised
        differences; each row's value is hidden unless every column named in ``n`` meets the
        rule's minimum in that row.
    n : str or list of str
        The column(s) with the number of people in each group the row's statistics rest on
        (required with ``statistics``).
    by : str or list of str
        Grouping columns, for group-total denominators and for ``totals``.
    rule, min_count : str, int
        The disclosure rule (see the module docstring).
    complements : list of str
        Count columns that split one group (per row) into parts: where one is hidden, zeros
        among the others are hidden too, with their percentages.
    totals : bool
        The counts of each ``by`` group add up to a total the reader can see: under a rule
        that does not round, a lone hidden cell in a group takes the group's next smallest
        non-zero cell with it.

    Returns
    -------
    pandas.DataFrame
        A copy in which hidden cells hold "*" (so such columns are object dtype).
        ``attrs["disclosure"]`` is the rule's footnote, ``attrs["smallest_count"]`` the
        smallest non-zero count (or group size) the released numbers rest on and
        ``attrs["n_suppressed"]`` how many cells were hidden.

    Examples
    --------
    >>> t = pd.DataFrame({"level": ["a", "b"], "n": [52, 5], "mean": [3.1, 2.0]})
    >>> suppress(t, counts=["n"], statistics=["mean"], n="n")[["n", "mean"]].values.tolist()
    [[50, 3.1], ['*', '*']]
    """
    _check(rule, min_count)
    out = table.copy()
    out.attrs["disclosure"] = describe_rule(rule, min_count)
    counts, statistics, complements = list(counts), list(statistics), list(complements)
    people = [n] if isinstance(n, str) else list(n or [])
    out.attrs["smallest_count"] = _smallest(table, counts + people)
    # What each released column is, so that pages can mark their cells for an auditor.
    out.attrs["kinds"] = {
        **{c: "count" for c in counts},
        **{c: "pct" for c in percentages or {}},
        **{c: "statistic" for c in statistics},
    }
    out.attrs["denominators"] = {}
    if rule == "none":
        out.attrs["n_suppressed"] = 0
        return out
    if statistics and not people:
        raise ValueError(
            "suppress(): give n= (the column or columns with the number of "
            "people) to control statistics"
        )
    keys = group_keys(by)
    hide = {c: pd.Series(False, index=table.index) for c in counts}
    for col in counts:
        values = pd.to_numeric(table[col], errors="coerce")
        hide[col] = suppress_count(values, rule, min_count).astype(str).eq(SUPPRESSED)
    if complements:
        any_hidden = pd.concat([hide[c] for c in complements], axis=1).any(axis=1)
        for col in complements:
            zero = pd.to_numeric(table[col], errors="coerce").eq(0)
            hide[col] = hide[col] | (any_hidden & zero)
    if totals and rule != "nhs_digital":
        for col in counts:
            hide[col] = _secondary(table, col, hide[col], keys)
    for pct, (count_col, denominator) in (percentages or {}).items():
        num = pd.to_numeric(table[count_col], errors="coerce")
        if denominator is None:
            den = (
                num.groupby([table[k] for k in keys]).transform("sum")
                if keys
                else pd.Series(num.sum(), index=table.index)
            )
        else:
            den = pd.to_numeric(table[denominator], errors="coerce")
        num_r = suppress_count(num, rule, min_count).mask(hide.get(count_col, False), SUPPRESSED)
        den_r = suppress_count(den, rule, min_count)
        if denominator in hide:
            den_r = den_r.mask(hide[denominator], SUPPRESSED)
        usable = (num_r != SUPPRESSED) & (den_r != SUPPRESSED) & num_r.notna() & den_r.notna()
        value = pd.Series(SUPPRESSED, index=out.index, dtype=object)
        ok_den = pd.to_numeric(den_r.where(usable), errors="coerce")
        ok_num = pd.to_numeric(num_r.where(usable), errors="coerce")
        value[usable] = (100 * ok_num / ok_den.replace(0, np.nan))[usable]
        out[pct] = value
        out.attrs["denominators"][pct] = dict(zip(out.index, den_r.astype(object), strict=True))
    hidden_cells = 0
    for col in counts:
        shown = suppress_count(pd.to_numeric(table[col], errors="coerce"), rule, min_count)
        out[col] = shown.mask(hide[col], SUPPRESSED)
        hidden_cells += int(out[col].astype(str).eq(SUPPRESSED).sum())
    if statistics:
        sizes = pd.concat([pd.to_numeric(table[c], errors="coerce") for c in people], axis=1)
        few = (sizes < _minimum(rule, min_count)).any(axis=1) | sizes.isna().any(axis=1)
        for col in statistics:
            col_values = out[col].astype(object)
            col_values[few.to_numpy()] = SUPPRESSED
            out[col] = col_values
            hidden_cells += int(few.sum())
    out.attrs["n_suppressed"] = hidden_cells
    return out


def _smallest(table: pd.DataFrame, columns: list[str]) -> float:
    values = (
        pd.concat(
            [pd.to_numeric(table[c], errors="coerce") for c in columns if c in table],
            ignore_index=True,
        )
        if columns
        else pd.Series(dtype=float)
    )
    values = values[values > 0]
    return float(values.min()) if len(values) else np.nan


def _secondary(table: pd.DataFrame, col: str, hidden: pd.Series, keys: list[str]) -> pd.Series:
    """Hide the next smallest non-zero cell of any group with exactly one hidden cell."""
    hidden = hidden.to_numpy(copy=True)
    values = pd.to_numeric(table[col], errors="coerce").to_numpy(dtype=float)
    groups = table.groupby(keys, sort=False).indices.values() if keys else [np.arange(len(table))]
    for rows in groups:
        if hidden[rows].sum() != 1:
            continue
        candidates = rows[~hidden[rows] & (values[rows] > 0)]
        if len(candidates):
            hidden[candidates[np.argmin(values[candidates])]] = True
    return pd.Series(hidden, index=table.index)
