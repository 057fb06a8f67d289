"""The cleaning log of one site: every rejected or flagged row, and the row accounting.

Every raw data row ends in exactly one of two places: a canonical table, or this log as
``rejected`` with the rule that caught it. Rows that are kept but were changed or need a look
(unmapped labels, unreadable optional values) get ``flagged`` rows. So per site and table,
rows read = rows kept + rows rejected, which :func:`check_accounting` asserts
(docs/design.md, 'Cleaning log and row accounting').
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from linkeval import schema
from linkeval.parse import distinct

# Every raw frame carries the file and row number each row came from (read.py fills them):
# the log names rows by them.
FILE, ROW = "__file__", "__row__"
# A frame whose rows come from another raw table than the one a rule names carries it here.
TABLE = "__table__"

# QA files never carry raw values that may identify someone (docs/design.md, 'Cleaning log
# and row accounting'): quoted values are scrubbed and cut short, and an unmapped label is
# shown only when it occurs at least MIN_LABEL_ROWS times (free text with a name in it rarely
# does; a label a site uses does).
MAX_QUOTED = 40
MIN_LABEL_ROWS = 3
_MONTH = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?"
SCRUB = (
    (re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"), "[email]"),
    (re.compile(r"(?<!\d)\d{1,4}[/.\-]\d{1,2}[/.\-]\d{1,4}(?!\d)"), "[date]"),
    (
        re.compile(
            rf"(?i)(?<!\d)\d{{1,2}}(?:st|nd|rd|th)?[ \-/.]*{_MONTH}[ \-/.,]*\d{{2,4}}(?!\d)"
        ),
        "[date]",
    ),
    (
        re.compile(rf"(?i)\b{_MONTH}[ \-/.]*\d{{1,2}}(?:st|nd|rd|th)?,?[ \-/.]+\d{{2,4}}(?!\d)"),
        "[date]",
    ),
    (re.compile(r"(?i)\b[A-Z]{1,2}\d[A-Z\d]?\s*\d[A-Z]{2}\b"), "[postcode]"),
    # NHS numbers, phone numbers, dates without separators: 8 or more digits in a run.
    (re.compile(r"\d(?:[ \-.]?\d){7,}"), "[number]"),
    (re.compile(r"[\x00-\x1f\x7f-\x9f]"), "?"),  # control characters (terminal escapes)
)


class CleaningLog:
    """Log rows, unmapped-label counts and the files read, for one site."""

    def __init__(self, site: str) -> None:
        self.site = site
        self._parts: list[pd.DataFrame] = []
        self._unmapped: list[pd.DataFrame] = []
        self._files: list[dict] = []

    # -- recording ----------------------------------------------------------------------------
    def file_read(self, table: str, file: str, rows: int, sha256: str) -> None:
        """Count a raw file's rows as read (and keep its hash for the manifest)."""
        self._files.append(
            {"site": self.site, "table": table, "file": file, "rows": rows, "sha256": sha256}
        )

    def record(
        self, rows: pd.DataFrame, table: str, fld: str | None, rule: str, action: str, detail
    ) -> None:
        """Log ``rows`` (raw rows, with their file and row number) under one rule.

        ``detail`` is text, a Series aligned with ``rows``, or a function of ``rows``.
        """
        if len(rows) == 0:
            return
        if callable(detail):  # built only for the rows logged, not the whole table
            detail = detail(rows)
        detail_values = detail.to_numpy(dtype=object) if isinstance(detail, pd.Series) else detail
        self._parts.append(
            pd.DataFrame(
                {
                    "site": self.site,
                    "table": _tables(rows, table),
                    "source_file": rows[FILE].to_numpy(),
                    "source_row": rows[ROW].to_numpy(),
                    "field": fld,
                    "rule": rule,
                    "action": action,
                    "detail": detail_values,
                }
            )
        )

    def flag(self, rows: pd.DataFrame, table: str, fld: str | None, rule: str, detail) -> None:
        """Log kept rows that were changed or need a look."""
        self.record(rows, table, fld, rule, "flagged", detail)

    def reject(
        self, frame: pd.DataFrame, mask: pd.Series, table: str, fld: str | None, rule: str, detail
    ) -> pd.DataFrame:
        """Log the rows under ``mask`` as rejected and return the others.

        ``detail`` is text, a Series aligned with ``frame``, or a function of the rejected rows.
        """
        return self.reject_in_turn(frame, [(mask, table, fld, rule, detail)])

    def reject_in_turn(
        self, frame: pd.DataFrame, rules: list[tuple[pd.Series, str, str | None, str, object]]
    ) -> pd.DataFrame:
        """:meth:`reject` for several rules, each ``(mask, table, field, rule, detail)``,
        in turn: a rule logs the rows under its mask that no earlier rule caught.

        The frame is copied once, not once per rule; the log and the rows kept are those of
        calling :meth:`reject` rule by rule. So each mask must depend on its row alone (a
        date out of range, not a duplicate of another row), as then it is the same whether
        the earlier rules' rows are still there or not.
        """
        caught = np.zeros(len(frame), dtype=bool)
        for mask, table, fld, rule, detail in rules:
            if not mask.index.equals(frame.index):
                mask = mask.reindex(frame.index)
            mask = mask.to_numpy(dtype=bool, na_value=False) & ~caught
            if mask.any():
                self.record(
                    frame[mask],
                    table,
                    fld,
                    rule,
                    "rejected",
                    detail[mask] if isinstance(detail, pd.Series) else detail,
                )
                caught |= mask
        return frame[~caught] if caught.any() else frame

    def unmapped(
        self, rows: pd.DataFrame, raw: pd.Series, table: str, fld: str, codes: pd.Series
    ) -> None:
        """Flag rows whose ``fld`` label is not in the vocabulary, and count each label.

        The counts are what the user acts on: one line per label to add under ``values``.
        """
        if len(rows) == 0:
            return
        target = codes.fillna("missing").astype(object)
        rare = raw.map(raw.value_counts()) < MIN_LABEL_ROWS
        shown = quoted(raw).where(~rare, f"(seen fewer than {MIN_LABEL_ROWS} times: not shown)")
        detail = (
            "label "
            + shown
            + " is not a known "
            + fld
            + " label; recorded as "
            + target
            + "; add it under values."
            + fld
        )
        self.flag(rows, table, fld, "unmapped_label", detail)
        counts = scrub(raw).value_counts().rename_axis("label").reset_index(name="rows")
        counts.insert(0, "field", fld)
        counts.insert(0, "table", table)
        counts.insert(0, "site", self.site)
        self._unmapped.append(counts)

    # -- results ------------------------------------------------------------------------------
    def rows(self) -> pd.DataFrame:
        """The log, in the order the rules ran."""
        if not self._parts:
            return schema.empty("cleaning_log")
        return pd.concat(self._parts, ignore_index=True)

    def unmapped_counts(self) -> pd.DataFrame:
        if not self._unmapped:
            return pd.DataFrame(columns=["site", "table", "field", "label", "rows"])
        return (
            pd.concat(self._unmapped, ignore_index=True)
            .groupby(["site", "table", "field", "label"], as_index=False)["rows"]
            .sum()
        )

    def files(self) -> pd.DataFrame:
        return pd.DataFrame(self._files)

    def summary(self, log: pd.DataFrame, kept: dict[str, int]) -> pd.DataFrame:
        """Rows read, kept, rejected and flagged per table, in the order of ``kept``.

        ``log`` is :meth:`rows` (passed in so that the log is built once). A row caught by two
        flag rules counts once.
        """
        rows = []
        for table, n_kept in kept.items():
            t_log = log[log["table"] == table]
            rejected = t_log[t_log["action"] == "rejected"][["source_file", "source_row"]]
            flagged = t_log[t_log["action"] == "flagged"][["source_file", "source_row"]]
            rows.append(
                {
                    "site": self.site,
                    "table": table,
                    "rows_read": self._rows_read(table),
                    "rows_kept": n_kept,
                    "rows_rejected": len(rejected.drop_duplicates()),
                    "rows_flagged": len(flagged.drop_duplicates()),
                }
            )
        return pd.DataFrame(rows)

    def _rows_read(self, table: str) -> int:
        return sum(f["rows"] for f in self._files if f["table"] == table)


def _tables(rows: pd.DataFrame, table: str):
    """The raw table each row was read for: ``table``, unless the frame says (referrals made
    from coded events are logged under coded_events, where their rows are accounted for)."""
    if TABLE not in rows:
        return table
    return rows[TABLE].fillna(table).to_numpy(dtype=object)


def check_accounting(summary: pd.DataFrame) -> None:
    """Rows read = kept + rejected for every site and table, else a bug in the cleaning."""
    broken = summary[summary["rows_read"] != summary["rows_kept"] + summary["rows_rejected"]]
    if len(broken):
        raise AssertionError(
            "row accounting does not reconcile (a linkeval bug, please report it):\n"
            + broken.to_string(index=False)
        )


def quoted(values: pd.Series) -> pd.Series:
    """Raw values as they appear in log details: scrubbed (see :func:`scrub`) and quoted."""
    return "'" + scrub(values) + "'"


def scrub(values: pd.Series) -> pd.Series:
    """Raw values made safe for QA files: e-mail addresses, dates, postcodes and runs of 8 or
    more digits (NHS and phone numbers) replaced by a placeholder, control characters by ?,
    and cut at 40 characters. Worked out once per distinct value.

    >>> scrub(pd.Series(["Dr Khan re 943 476 5919 ZZ99 3AA", "born 01/02/1950", "GP"])).tolist()
    ['Dr Khan re [number] [postcode]', 'born [date]', 'GP']
    """
    uniques, slots = distinct(values.astype(object))
    clean = []
    for value in map(str, uniques):
        for pattern, placeholder in SCRUB:
            value = pattern.sub(placeholder, value)
        clean.append(value if len(value) <= MAX_QUOTED else value[: MAX_QUOTED - 1] + "…")
    out = np.array([*clean, ""], dtype=object)[slots]
    return pd.Series(out, index=values.index, dtype=object)


def hold_back_rare_labels(unmapped: pd.DataFrame) -> pd.DataFrame:
    """Unmapped-label counts for QA files: labels seen fewer than MIN_LABEL_ROWS times at a
    site are held back, and one line per site and field says how many (and how many rows).
    """
    if unmapped.empty:
        return unmapped
    rare = unmapped["rows"] < MIN_LABEL_ROWS
    held = (
        unmapped[rare]
        .groupby(["site", "table", "field"], as_index=False, sort=False)
        .agg(n=("label", "size"), rows=("rows", "sum"))
    )
    held["label"] = (
        "(" + held["n"].astype(str) + " rare label(s) held back: each seen "
        f"fewer than {MIN_LABEL_ROWS} times)"
    )
    out = pd.concat(
        [unmapped[~rare], held[["site", "table", "field", "label", "rows"]]], ignore_index=True
    )
    return out.sort_values(["site", "table", "field"], kind="stable").reset_index(drop=True)
