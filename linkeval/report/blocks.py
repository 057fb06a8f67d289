"""What a report section releases: tables, figures and sentences, and their HTML.

A section (see :mod:`linkeval.report.sections`) is a pure function that returns a
:class:`Section`: a list of blocks whose numbers have all been through the disclosure gate,
plus one output-check row per released block. This module turns blocks into HTML; it computes
nothing.
"""

from __future__ import annotations

import base64
import html
import io
import re
from dataclasses import dataclass, field

import matplotlib.pyplot as plt
import pandas as pd

from linkeval.report.disclosure import SUPPRESSED
from linkeval.report.formats import fmt, fmt_p
from linkeval.vocab import plain

CHECK_COLUMNS = [
    "page",
    "section",
    "item",
    "kind",
    "rule",
    "smallest_count",
    "n_suppressed",
    "note",
]
_NUMERIC = re.compile(r"[-+<*]?[\d,]*\.?\d*%?|\*|-")


@dataclass
class Table:
    """A disclosure-controlled table: ``columns`` maps columns to headings."""

    frame: pd.DataFrame
    columns: dict[str, str]
    decimals: dict[str, int] = field(default_factory=dict)
    caption: str = ""
    codes: tuple[str, ...] = ()
    group: str | None = None


@dataclass
class Figure:
    """A chart drawn from released numbers only, with the table behind it."""

    figure: plt.Figure
    data: Table | None = None


@dataclass
class Text:
    """One plain-English sentence or paragraph (Markdown)."""

    markdown: str


@dataclass
class Section:
    """A section's released blocks and the output-check rows that record each release."""

    name: str
    blocks: list = field(default_factory=list)
    checks: list[dict] = field(default_factory=list)

    def release(
        self,
        item: str,
        kind: str,
        safe: pd.DataFrame | None = None,
        rule: str = "",
        note: str = "",
        smallest=None,
        n_suppressed=None,
    ) -> None:
        attrs = safe.attrs if safe is not None else {}
        self.checks.append(
            {
                "section": self.name,
                "item": item,
                "kind": kind,
                "rule": rule,
                "smallest_count": attrs.get("smallest_count", smallest),
                "n_suppressed": attrs.get("n_suppressed", n_suppressed or 0),
                "note": note,
            }
        )

    def add(self, *blocks) -> None:
        self.blocks.extend(blocks)


def table_html(table: Table) -> str:
    """Selected columns under plain headings, numbers formatted, '*' explained."""
    frame = table.frame.copy()
    for col in table.codes:
        frame[col] = frame[col].map(plain)
    if table.group:
        frame[table.group] = frame[table.group].where(
            frame[table.group] != frame[table.group].shift(), ""
        )
    head = "".join(f"<th scope='col'>{html.escape(label)}</th>" for label in table.columns.values())
    kinds = table.frame.attrs.get("kinds", {})
    denominators = table.frame.attrs.get("denominators", {})
    rows, suppressed = [], False
    for i, record in zip(
        frame.index, frame[list(table.columns)].itertuples(index=False), strict=True
    ):
        cells = []
        for raw, value in zip(table.columns, record, strict=True):
            d = table.decimals.get(
                raw, 0 if raw == "n" or raw.startswith("n_") or raw == "denominator" else 1
            )
            text = fmt_p(value) if raw.startswith("p_value") else fmt(value, d)
            suppressed |= text == SUPPRESSED
            numeric = bool(_NUMERIC.fullmatch(text))
            mark = _audit_marks(kinds.get(raw), denominators.get(raw), i)
            cells.append(
                f'<td class="{"num" if numeric else "txt"}"{mark}>{html.escape(text)}</td>'
            )
        rows.append("<tr>" + "".join(cells) + "</tr>")
    note = (
        '<div class="le-note">* hidden to protect confidentiality (small numbers)</div>'
        if suppressed
        else ""
    )
    cap = f"<caption>{html.escape(table.caption)}</caption>" if table.caption else ""
    return (
        f'<table class="le-table">{cap}<thead><tr>{head}</tr></thead><tbody>'
        f"{''.join(rows)}</tbody></table>{note}"
    )


def _audit_marks(kind: str | None, denominators: dict | None, row) -> str:
    """data- attributes saying what a cell is (count, percentage of which released
    denominator, statistic), so that a disclosure audit can check a page from what it shows."""
    if kind is None:
        return ""
    mark = f' data-kind="{kind}"'
    if kind == "pct" and denominators is not None and row in denominators:
        mark += f' data-denominator="{html.escape(str(denominators[row]))}"'
    return mark


def figure_html(figure: Figure) -> str:
    """A figure as an embedded PNG with its title as alt text, and its table underneath."""
    fig = figure.figure
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    alt = titles[0] if titles else "Chart"
    buffer = io.BytesIO()
    fig.savefig(
        buffer,
        format="png",
        dpi=110,
        bbox_inches="tight",
        metadata={"Software": None},
        pil_kwargs={"optimize": True},
    )
    plt.close(fig)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    img = f'<img class="le-figure" alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'
    if figure.data is None:
        return img
    return f'{img}<div class="le-data">{table_html(figure.data)}</div>'
