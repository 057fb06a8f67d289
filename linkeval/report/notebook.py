"""What a report notebook holds: the config, its site's tables, the rule, and what it released.

The notebooks are thin: a heading, then ``report.show(...)`` of one section. :class:`Report`
reads only the tables its sections ask for, and only the page's site (parquet filters at read
time), passes the config's disclosure
rule to every section, displays the released blocks, and keeps the output-check rows, which
it also emits as a machine-readable output of the notebook for the batch to collect into
``output_checks.csv``.
"""

from __future__ import annotations

import json
from datetime import date
from html import escape
from pathlib import Path

import mistune
import nbformat
import pandas as pd
from IPython.display import HTML, Markdown, display

from linkeval._version import __version__
from linkeval.config import load_config
from linkeval.io import ProcessedTables, read_parquet
from linkeval.report import sections
from linkeval.report.blocks import (
    CHECK_COLUMNS,
    Figure,
    Section,
    Table,
    Text,
    figure_html,
    table_html,
)
from linkeval.report.disclosure import Rule
from linkeval.report.formats import long_date
from linkeval.report.plots import FOREST_MAX_ROWS
from linkeval.report.render import STYLE

CHECKS_MIME = "application/vnd.linkeval.output-checks+json"


# The cross-site page does not read the columns none of its sections uses (a programme-theory
# context may be `baseline_band:<score>`, so that band is read), and reads person_id (64
# characters on each of a million pairs: 0.1 GB) as a dictionary, a pandas categorical of the
# same strings; it only joins a person's scores with it.
CROSS_SITE_UNUSED = {
    "pairs": ("baseline_date", "followup_date", "days_between", "followup_band"),
    "referrals": ("person_id",),
}
CROSS_SITE_CATEGORIES = {"pairs": ("person_id",)}


class Report:
    """Everything a report notebook needs: config, processed tables, the disclosure rule.

    Each table is read (for ``site`` only) when a section first asks for it. ``lean=True``, as
    the cross-site notebook asks, reads only what the cross-site sections use
    (``CROSS_SITE_UNUSED``, ``CROSS_SITE_CATEGORIES``); by default the tables are whole.
    """

    def __init__(
        self, config: str | Path, site: str | None = None, page: str = "", lean: bool = False
    ) -> None:
        self.cfg = load_config(config)
        self.site_code = site
        if site is not None:
            self.cfg.site(site)
        self.page = page or ("cross_site" if site is None else f"site {site}")
        self.tables = ProcessedTables(
            self.cfg.processed_dir,
            site=site,
            unused=CROSS_SITE_UNUSED if lean else None,
            categories=CROSS_SITE_CATEGORIES if lean else None,
        )
        manifest_path = self.cfg.processed_dir / "manifest.json"
        self.manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
        self.rule = Rule.from_config(self.cfg.disclosure)
        self.checks: list[dict] = []
        self.site_names = {code: f"{s.name} ({code})" for code, s in self.cfg.sites.items()}

    @property
    def site_name(self) -> str:
        return self.cfg.sites[self.site_code].name if self.site_code else "All sites"

    @property
    def lonely_threshold(self) -> int:
        return self.cfg.instrument_settings("ucla3").lonely_threshold

    @property
    def period(self) -> str:
        """First to last referral month of the page's data."""
        dates = pd.to_datetime(self.tables["referrals"]["referral_date"])
        if dates.empty:
            return "no referrals"
        return f"{dates.min():%B %Y} to {dates.max():%B %Y}"

    def scores(self) -> list[str]:
        """The scores this page has pairs for: the instrument sections follow the data."""
        return sections.scores_present(self.tables["pairs"])

    # -- display ---------------------------------------------------------------------------
    def show(self, section: Section) -> None:
        """Display a section's released blocks and record its output checks."""
        parts = []
        for block in section.blocks:
            if isinstance(block, Table):
                parts.append(table_html(block))
            elif isinstance(block, Figure):
                parts.append(figure_html(block))
            elif isinstance(block, Text):
                parts.append(_markdown(block.markdown))
        rows = [{"page": self.page, **check} for check in section.checks]
        self.checks.extend(rows)
        _display_html("\n".join(parts))
        _display_checks(rows)

    def header(self, title: str) -> None:
        """The page banner: study, page, site, period, extract date, run metadata, rule."""
        self.page = f"{title} ({self.site_code or 'all sites'})"
        demo = (
            (
                '<div class="le-demo">DEMO - SYNTHETIC DATA: every person in this report is '
                "made up</div>"
            )
            if self.cfg.demo
            else ""
        )
        extracted = str(self.manifest.get("cleaned_at", ""))[:10]
        meta = [
            ("Site", self.site_name + (f" ({self.site_code})" if self.site_code else "")),
            ("Period covered", self.period),
            ("Data extracted", long_date(extracted)),
            ("Report date", long_date(date.today().isoformat())),
            ("linkeval version", __version__),
            ("Config", self.cfg.sha256[:12]),
            ("Data", str(self.manifest.get("data_sha256", ""))[:12]),
        ]
        cells = "".join(f"<span><b>{escape(k)}:</b> {escape(v)}</span>" for k, v in meta)
        _display_html(f"""{STYLE}{demo}<div class="le-header"><div class="le-study">
{escape(self.cfg.study)}</div><h1>{escape(title)}</h1>
<div class="le-meta">{cells}</div>
<div class="le-rule">{escape(self.rule.footnote)}</div></div>""")

    def output_checks(self) -> pd.DataFrame:
        return pd.DataFrame(self.checks, columns=CHECK_COLUMNS)

    # -- the sections, with this page's data ---------------------------------------------------
    def headline(self) -> None:
        self.show(sections.headline(self.tables, self.rule))

    def referrals_over_time(self) -> None:
        self.show(sections.referrals_over_time(self.tables, self.rule))

    def sources(self) -> None:
        self.show(sections.sources(self.tables, self.rule))

    def reasons(self) -> None:
        self.show(sections.reasons(self.tables, self.rule))

    def outcomes(self) -> None:
        self.show(sections.outcomes(self.tables, self.rule))

    def who(self) -> None:
        self.show(sections.who(self.tables, self.rule))

    def funnel(self) -> None:
        self.show(sections.funnel(self.tables, self.rule))

    def contacts(self) -> None:
        self.show(sections.contacts(self.tables, self.rule))

    def onward(self) -> None:
        self.show(sections.onward(self.tables, self.rule))

    def data_quality(self) -> None:
        summary = read_parquet(self.tables.folder / "qa" / "summary.parquet")
        if self.site_code:
            summary = summary[summary["site"] == self.site_code]
        log = self.tables.get("cleaning_log", pd.DataFrame())
        self.show(sections.data_quality(summary, log, self.rule))

    def change_summary(self) -> None:
        self.show(sections.change_summary(self.tables, self.rule))

    def instrument(self, name: str) -> None:
        _display_markdown(f"### {sections.score_title(name)}")
        self.show(sections.instrument(self.tables, self.rule, name))

    def instruments(self) -> None:
        """One section per score the page's data has."""
        for name in self.scores():
            self.instrument(name)

    def attrition(self) -> None:
        self.show(sections.attrition(self.tables, self.rule))

    @property
    def site_context(self) -> dict[str, dict]:
        """Site code -> the config's ``context:`` attributes (host, rural, deprivation...)."""
        return {code: dict(site.context) for code, site in self.cfg.sites.items()}

    def sites_side_by_side(self) -> None:
        self.show(
            sections.sites_side_by_side(self.tables, self.rule, self.site_names, self.site_context)
        )

    def outcomes_by_site(self) -> None:
        self.show(
            sections.outcomes_by_site(self.tables, self.rule, self.site_names, self.site_context)
        )

    @property
    def headline_score(self) -> str:
        """The score the cross-site models use: the first of the headline scores the data
        has (SWEMWBS, then UCLA-3), else the first score present."""
        present = self.scores()
        return next((n for n in (*sections.HEADLINE_SCORES, *present) if n in present), "swemwbs")

    def changes_by_site(self) -> None:
        """One forest plot per score the study has (the sections follow the data); beyond
        ``FOREST_MAX_ROWS`` sites, the headline score's and a table of every score pooled."""
        names = self.scores()
        if self.tables["pairs"]["site"].nunique() > FOREST_MAX_ROWS:
            names = [self.headline_score]
        for name in names:
            _display_markdown(f"### {sections.score_title(name)}")
            self.change_by_site(name)
        if names != self.scores():
            self.show(sections.pooled_changes(self.tables, self.rule, self.scores()))

    def change_by_site(self, name: str = "swemwbs") -> None:
        self.show(
            sections.change_by_site(
                self.tables, self.rule, name, self.site_names, self.site_context
            )
        )

    def multilevel(self, name: str | None = None) -> None:
        name = name or self.headline_score
        self.show(sections.multilevel(self.tables, self.rule, name))

    def moderators(self, name: str | None = None) -> None:
        name = name or self.headline_score
        self.show(
            sections.moderators(
                self.tables, self.rule, name, lonely_threshold=self.lonely_threshold
            )
        )

    def programme_theory(self) -> None:
        self.show(
            sections.programme_theory(
                self.tables,
                self.rule,
                self.cfg.programme_theory,
                self.site_context,
                lonely_threshold=self.lonely_threshold,
            )
        )

    def sensitivity(self, name: str | None = None) -> None:
        name = name or self.headline_score
        self.show(sections.sensitivity(self.tables, self.rule, name, seed=self.cfg.seed))


def collect_output_checks(executed: list[Path]) -> pd.DataFrame:
    """The output-check rows that executed report notebooks emitted, one table."""
    rows = []
    for path in executed:
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            for output in cell.get("outputs", []):
                data = output.get("data", {})
                if CHECKS_MIME in data:
                    rows.extend(data[CHECKS_MIME])
    return pd.DataFrame(rows, columns=CHECK_COLUMNS)


def _markdown(text: str) -> str:
    return mistune.html(text)


def _display_html(text: str) -> None:
    display(HTML(text))


def _display_markdown(text: str) -> None:
    display(Markdown(text))


def _display_checks(rows: list[dict]) -> None:
    display(
        {
            CHECKS_MIME: json.loads(
                pd.DataFrame(rows, columns=CHECK_COLUMNS).to_json(orient="records")
            )
        },
        raw=True,
    )
