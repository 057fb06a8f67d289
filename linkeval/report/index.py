"""The run's front page: one row per site with status, links and headline figures."""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from datetime import datetime

import pandas as pd

from linkeval import __version__
from linkeval.config import StudyConfig
from linkeval.io import load_processed
from linkeval.report.disclosure import describe_rule, suppress
from linkeval.report.render import STYLE, fmt
from linkeval.stats.describe import engagement_funnel

SITE_NOTEBOOKS = {"site_descriptive": "Who is referred, and what happens next",
                  "site_change": "Change in wellbeing and loneliness"}


@dataclass
class JobResult:
    notebook: str
    site: str | None
    ok: bool
    seconds: float
    error: str = ""
    html: str = ""


def headline_figures(cfg: StudyConfig) -> pd.DataFrame:
    """Referrals, engaged and paired follow-ups per site, disclosure-controlled."""
    t = load_processed(cfg.processed_dir)
    funnel = engagement_funnel(t["referrals"], t["pairs"], by="site")
    wide = funnel.pivot(index="site", columns="stage", values="n").reset_index()
    wide = wide[["site", "referred", "engaged", "paired follow-up"]]
    return suppress(wide, counts=["referred", "engaged", "paired follow-up"],
                    rule=cfg.disclosure.get("rule", "nhs_digital"),
                    min_count=cfg.disclosure.get("min_count"))


def index_page(cfg: StudyConfig, results: list[JobResult]) -> str:
    """The run's front page: one row per site with status, links and headline figures."""
    try:
        heads = headline_figures(cfg).set_index("site")
    except Exception:  # the index must still be written when the data cannot be summarised
        heads = pd.DataFrame()
    manifest_path = cfg.processed_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    by_site: dict[str | None, list[JobResult]] = {}
    for r in results:
        by_site.setdefault(r.site, []).append(r)
    rows = []
    for code, site in cfg.sites.items():
        mine = by_site.get(code, [])
        if not mine:
            continue
        failed = [r for r in mine if not r.ok]
        status = ("<span class='le-bad'>failed</span><br>" + "<br>".join(
            html.escape(f"{r.notebook}: {r.error}") for r in failed)) if failed else "ok"
        links = " &middot; ".join(
            f"<a href='{html.escape(r.html)}'>{html.escape(SITE_NOTEBOOKS[r.notebook])}</a>"
            for r in sorted(mine, key=lambda r: r.notebook, reverse=True) if r.ok)
        h = heads.loc[code] if code in heads.index else {}
        figures = "".join(f"<td>{fmt(h.get(k, '-'), 0) if len(h) else '-'}</td>"
                          for k in ("referred", "engaged", "paired follow-up"))
        rows.append(f"<tr><td>{html.escape(site.name)} ({html.escape(code)})</td>"
                    f"<td>{status}</td><td>{links}</td>{figures}</tr>")
    cross = by_site.get(None, [])
    cross_link = ("<a href='cross_site/cross_site.html'>All sites: what works, for whom, in "
                  "what circumstances</a>" if cross and cross[0].ok else
                  "<span class='le-bad'>cross-site report failed</span>: "
                  + html.escape(cross[0].error if cross else "not run"))
    demo = ("<div class='le-demo'>DEMO - SYNTHETIC DATA: every person in these reports is made "
            "up</div>") if cfg.demo else ""
    rule = describe_rule(cfg.disclosure.get("rule", "nhs_digital"), cfg.disclosure.get("min_count"))
    meta = (f"Run {datetime.now():%d %B %Y %H:%M} &middot; linkeval {__version__} &middot; "
            f"config {cfg.sha256[:12]} &middot; data {str(manifest.get('data_sha256', ''))[:12]}")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport"
content="width=device-width, initial-scale=1"><title>{html.escape(cfg.study)}: reports</title>
{STYLE}<style>body{{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
margin:2em auto;max-width:70em;padding:0 1em;color:#222}} .le-bad{{color:#b00020;font-weight:700}}
table.le-table td{{vertical-align:top}}</style></head><body>
{demo}<div class="le-header"><div class="le-study">{html.escape(cfg.study)}</div>
<h1>Link worker evaluation reports</h1><div class="le-meta"><span>{meta}</span></div>
<div class="le-rule">{html.escape(rule)}</div></div>
<p>{cross_link}</p>
<table class="le-table"><thead><tr><th>Site</th><th>Status</th><th>Reports</th>
<th>Referrals</th><th>Engaged</th><th>Paired follow-ups</th></tr></thead><tbody>
{''.join(rows)}</tbody></table>
<p class="le-note">Engaged: at least one attended contact. Paired follow-ups: people who
answered the questionnaires at the first meeting and again 9-12 months later.</p>
</body></html>"""
