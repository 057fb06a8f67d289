"""The run's front page, the methods note, and where every page sits.

The index opens with a summary (key figures for all sites together and the headline change in
mental wellbeing), then one row per site with its context, status, links and key figures:
sortable and filterable with a small inline script, and a plain complete table with scripts off.
More than LONG_TABLE_ROWS sites are grouped by their context (the study config's ``context:``),
a heading row per group; with scripts on, groups can be regrouped, folded and unfolded. Every
number passes :func:`linkeval.report.disclosure.suppress` with the study's rule.
"""

from __future__ import annotations

import html
import json
import posixpath
from dataclasses import dataclass, field

import pandas as pd

from linkeval.config import StudyConfig
from linkeval.instruments import score_spec, score_title
from linkeval.io import load_processed
from linkeval.report.disclosure import SUPPRESSED, as_numbers, describe_rule, suppress
from linkeval.report.formats import fmt, long_date, month_range
from linkeval.report.job import CROSS_SITE_PAGE, JobResult, site_page
from linkeval.report.render import LONG_TABLE_ROWS, PageContext, html_page
from linkeval.stats.describe import engagement_funnel
from linkeval.vocab import plain

# The report sections and the change statistics (SciPy, statsmodels, matplotlib) are imported
# by the functions that use them: the batch imports this module for its page names and headers,
# and builds the index itself only after the notebooks have run.

SITE_NOTEBOOKS = {
    "site_descriptive": "Who is referred, and what happens next",
    "site_change": "Change in wellbeing and loneliness",
}
CROSS_SITE_TITLE = "All sites: what works, for whom, in what circumstances"
NAV_LABELS = {"site_descriptive": "Who is referred", "site_change": "Change in wellbeing"}

# Where the pages sit in a run folder (hrefs relative to the folder).
INDEX = "index.html"
METHODS = "methods.html"
HEADLINE_SCORE = "swemwbs"
COUNTS = ["referred", "engaged", "paired follow-up"]
CHANGE = ["mean_change", "ci_low", "ci_high"]
FOLDED_ROWS = 50  # with scripts on, a grouped table of more sites opens with its groups folded
FAILED_NAMED = 10  # failed sites named in the summary (the rest: "and n more")


@dataclass
class RunFacts:
    """What every page of a run says about the data: period covered, extract date, hashes."""

    period: str = ""
    site_periods: dict[str, str] = field(default_factory=dict)
    extracted: str = ""
    data_hash: str = ""


def run_facts(cfg: StudyConfig) -> RunFacts:
    """First and last referral month (in all and per site) and the manifest's dates."""
    manifest_path = cfg.processed_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    facts = RunFacts(
        extracted=long_date(str(manifest.get("cleaned_at", ""))[:10]),
        data_hash=str(manifest.get("data_sha256", "")),
    )
    try:
        refs = pd.read_parquet(
            cfg.processed_dir / "referrals.parquet", columns=["site", "referral_date"]
        )
    except (OSError, ValueError, KeyError):
        return facts
    dates = pd.to_datetime(refs["referral_date"])
    facts.period = month_range(dates.min(), dates.max()) if len(dates) else "no referrals"
    spans = dates.groupby(refs["site"].astype(str)).agg(["min", "max"])
    facts.site_periods = {
        code: month_range(row["min"], row["max"]) for code, row in spans.iterrows()
    }
    return facts


def site_label(cfg: StudyConfig, code: str) -> str:
    site = cfg.sites.get(code)
    return f"{site.name} ({code})" if site else code


def page_context(
    cfg: StudyConfig, facts: RunFacts, here: str, site: str | None = None
) -> PageContext:
    """The header, footer and navigation facts of the page at ``here`` (run-relative path)."""
    folder = posixpath.dirname(here) or "."

    def rel(target: str) -> str:
        return posixpath.relpath(target, folder)

    nav = [("Reports index", rel(INDEX), here == INDEX)]
    if site is not None:
        nav.append((site_label(cfg, site) + ":", "", False))
        nav += [
            (NAV_LABELS[nb], rel(site_page(site, nb)), here == site_page(site, nb))
            for nb in SITE_NOTEBOOKS
        ]
    nav += [
        ("All sites compared", rel(CROSS_SITE_PAGE), here == CROSS_SITE_PAGE),
        ("Methods and glossary", rel(METHODS), here == METHODS),
    ]
    return PageContext(
        study=cfg.study,
        site=site_label(cfg, site) if site else None,
        period=facts.site_periods.get(site, "") if site else facts.period,
        extracted=facts.extracted,
        config_hash=cfg.sha256,
        data_hash=facts.data_hash,
        rule=_rule_text(cfg),
        demo=cfg.demo,
        nav=nav,
        methods_href=rel(METHODS),
    )


def _rule_text(cfg: StudyConfig) -> str:
    return describe_rule(cfg.disclosure.get("rule", "nhs_digital"), cfg.disclosure.get("min_count"))


# -- key figures ------------------------------------------------------------------------------
def headline_figures(cfg: StudyConfig, change: bool = False) -> pd.DataFrame:
    """Referrals, engaged and paired follow-ups per site and for all sites (``site`` "all"),
    with the mean change in mental wellbeing and its 95% CI when ``change``;
    disclosure-controlled with the study's rule."""
    from linkeval.stats.change import paired_change
    from linkeval.stats.pooling import pooled_change

    t = load_processed(cfg.processed_dir, tables=["referrals", "pairs"])
    refs, pairs = t["referrals"], t["pairs"]
    funnel = engagement_funnel(refs, pairs, by="site")
    wide = funnel.pivot(index="site", columns="stage", values="n")
    wide = wide.reindex(columns=COUNTS).fillna(0).astype(int)
    wide.columns.name = None
    wide.loc["all"] = wide.sum()
    if change:
        scored = pairs[pairs["instrument"] == HEADLINE_SCORE]
        site_changes = paired_change(scored, by="site", n_boot=0)
        by_site = site_changes.set_index("site")
        # All sites: the random-effects pooled change (sites differ, so the person-level
        # interval would be too narrow); it rests on every site's pairs.
        pooled = pooled_change(scored, site_changes=site_changes)
        if len(pooled) and "n" in by_site:
            row = pooled.iloc[0]
            by_site.loc["all", ["mean_change", "ci_low", "ci_high", "n"]] = [
                row["estimate"],
                row["ci_low"],
                row["ci_high"],
                row["n"],
            ]
        for col in CHANGE:
            wide[col] = by_site[col].reindex(wide.index) if col in by_site else float("nan")
        wide["n_change"] = by_site["n"].reindex(wide.index).fillna(0) if "n" in by_site else 0
        smallest_site = wide.loc[wide.index != "all", "n_change"]
        wide["n_gate"] = wide["n_change"]
        wide.loc["all", "n_gate"] = (
            smallest_site[smallest_site > 0].min() if (smallest_site > 0).any() else 0
        )
    wide = wide.rename_axis("site").reset_index()
    wide["site"] = wide["site"].astype(str)
    rule = cfg.disclosure.get("rule", "nhs_digital")
    min_count = cfg.disclosure.get("min_count")
    if change:
        safe = suppress(
            wide,
            counts=[*COUNTS, "n_change"],
            statistics=CHANGE,
            n=["n_change", "n_gate"],
            rule=rule,
            min_count=min_count,
        )
    else:
        safe = suppress(wide, counts=COUNTS, rule=rule, min_count=min_count)
    return safe


def _change_text(row) -> str:
    """'+2.9 (2.1 to 3.7)' from a controlled row; '*' when hidden, '-' when not available."""
    values = [row.get(c) for c in CHANGE]
    if any(isinstance(v, str) and v == SUPPRESSED for v in values):
        return SUPPRESSED
    if any(v is None or pd.isna(v) for v in values):
        return "-"
    mean, low, high = (float(v) for v in values)
    sign = "+" if fmt(mean) not in ("0.0",) and mean > 0 else ""
    return f"{sign}{fmt(mean)} ({fmt(low)} to {fmt(high)})"


def _sort_key(text: str) -> str:
    """A sort value from the shown text only: '*' (1 to 7, or below the threshold) sorts
    between 0 and the smallest shown count; '-' sorts last."""
    if text == SUPPRESSED:
        return "0.5"
    value = as_numbers(pd.Series([text.split(" ")[0].replace(",", "").lstrip("+")]))[0]
    return "" if pd.isna(value) else repr(float(value))


# -- the index ---------------------------------------------------------------------------------
_SCRIPT = """<script>
(function(){
var t=document.getElementById("le-sites");if(!t)return;
var rows=Array.prototype.slice.call(t.querySelectorAll("tr[id^='site-']")),
box=document.getElementById("le-filter"),input=box.querySelector("input"),
pick=document.getElementById("le-group"),count=document.getElementById("le-count"),
all=document.getElementById("le-unfold"),cols=t.tHead.rows[0].cells.length,folded={},seen={},buttons={};
box.hidden=false;
function by(){return pick?pick.value:"";}
function group(r,g){return g+"|"+(r.getAttribute("data-"+g)||"");}
function anyFolded(g){return rows.some(function(r){return folded[group(r,g)];});}
function draw(){
 var q=input.value.trim().toLowerCase(),g=by(),groups=[],of={},n=0;
 if(g&&!seen[g]){seen[g]=true;if(rows.length>FOLDED)rows.forEach(function(r){folded[group(r,g)]=true;});}
 rows.forEach(function(r){var k=g?r.getAttribute("data-"+g)||"":"";
  if(!(k in of)){of[k]=[];groups.push(k);}of[k].push(r);});
 if(g)groups.sort();
 Array.prototype.slice.call(t.tBodies).forEach(function(b){t.removeChild(b);});
 groups.forEach(function(k){
  var b=document.createElement("tbody"),shown=0,fold=g&&folded[g+"|"+k]&&!q;
  if(g){var h=b.insertRow(),c=document.createElement("th"),btn=document.createElement("button");
   h.className="le-group";c.colSpan=cols;c.scope="rowgroup";btn.type="button";
   btn.className="le-fold";btn.setAttribute("aria-expanded",fold?"false":"true");
   btn.textContent=k+" ("+of[k].length+" site"+(of[k].length==1?"":"s")+")";
   btn.addEventListener("click",function(){folded[g+"|"+k]=!folded[g+"|"+k];draw();buttons[k].focus();});
   buttons[k]=btn;
   c.appendChild(btn);h.appendChild(c);}
  of[k].forEach(function(r){var show=r.textContent.toLowerCase().indexOf(q)>=0;
   r.hidden=!show;r.classList.toggle("le-folded",!!fold);if(show){shown++;n++;}
   b.appendChild(r);});
  if(g&&!shown)b.rows[0].hidden=true;
  t.appendChild(b);});
 count.textContent=q?n+" of "+rows.length+" sites match":rows.length+" sites";
 if(all){all.hidden=!g;all.textContent=anyFolded(g)?"Unfold all groups":"Fold all groups";}}
input.addEventListener("input",draw);
if(pick)pick.addEventListener("change",draw);
if(all)all.addEventListener("click",function(){var g=by(),fold=!anyFolded(g);
 rows.forEach(function(r){folded[group(r,g)]=fold;});draw();});
function reveal(){var r=location.hash&&document.getElementById(location.hash.slice(1));
 if(!r||rows.indexOf(r)<0)return;folded[group(r,by())]=false;draw();r.scrollIntoView();}
window.addEventListener("hashchange",reveal);
Array.prototype.forEach.call(t.tHead.rows[0].cells,function(th,i){
 var b=document.createElement("button");b.type="button";b.className="le-sort";
 b.setAttribute("aria-label","Sort by "+th.textContent.trim());th.appendChild(b);
 th.style.cursor="pointer";
 th.addEventListener("click",function(){
  var up=th.getAttribute("aria-sort")!=="ascending";
  Array.prototype.forEach.call(t.tHead.rows[0].cells,function(c){c.removeAttribute("aria-sort");});
  th.setAttribute("aria-sort",up?"ascending":"descending");
  function key(r){var c=r.cells[i],k=c.getAttribute("data-sort");return k===null?c.textContent.trim().toLowerCase():k;}
  rows.sort(function(a,b){var x=key(a),y=key(b);
   if(x===""||y==="")return x===y?0:(x===""?1:-1);
   var nx=parseFloat(x),ny=parseFloat(y),r=(!isNaN(nx)&&!isNaN(ny))?nx-ny:(x<y?-1:x>y?1:0);
   return up?r:-r;});
  draw();});});
draw();reveal();
})();
</script>""".replace("FOLDED", str(FOLDED_ROWS))

_INDEX_STYLE = """<style>
.le-summary{border:1px solid #d0d7de;border-radius:6px;padding:.2em 1.2em .8em;margin:1em 0 1.5em;
 background:#fbfcfd}
.le-summary h2{border:0!important;margin-top:.6em!important;padding-top:0!important}
.le-summary table.le-table{font-size:1em}
.le-summary table.le-table th[scope=row]{background:none;font-weight:600}
.le-big{font-size:1.05em}
.le-links{list-style:none;padding:0;display:flex;flex-wrap:wrap;gap:.3em 1.6em}
.le-filter{margin:.5em 0}
.le-filter input{font:inherit;padding:.3em .5em;width:min(28em,100%);border:1px solid #8c959f;
 border-radius:4px}
.le-filter span{margin-left:1em;color:#57606a;font-size:.9em}
#le-sites td.le-pages a{white-space:nowrap}
#le-sites td:first-child{min-width:11em}
#le-sites td.le-ctx{min-width:9.5em}
button.le-sort{font:inherit;background:none;border:0;padding:0 0 0 .2em;cursor:pointer;
 color:#8c959f}
button.le-sort::after{content:"\\2195"}
th[aria-sort=ascending] button.le-sort::after{content:"\\2191";color:#1f2328}
th[aria-sort=descending] button.le-sort::after{content:"\\2193";color:#1f2328}
.le-ok{color:#1a7f37}
.le-filter label+label{margin-left:1em}
.le-filter select,.le-filter button{font:inherit;padding:.2em .4em}
.le-filter button{margin-left:1em}
#le-sites tr.le-group th{background:#f6f8fa;font-weight:650;padding-top:.6em;border-top:1px solid #d0d7de}
button.le-fold{font:inherit;font-weight:650;background:none;border:0;padding:0;cursor:pointer;
 color:#1f2328;text-align:left}
button.le-fold::before{content:"\\25BE  "}
button.le-fold[aria-expanded=false]::before{content:"\\25B8  "}
.le-groups{font-size:.95em}
@media screen{#le-sites tr.le-folded{display:none}}
@media print{.le-summary{break-inside:avoid;background:none}
 .le-filter,button.le-sort,#le-sites .le-pages{display:none!important}
 #le-sites button.le-fold::before{content:none!important}}
</style>"""


def index_page(
    cfg: StudyConfig,
    results: list[JobResult],
    facts: RunFacts | None = None,
    figures: pd.DataFrame | None = None,
) -> str:
    """The run's front page: summary, then one row per site with status, links and figures.

    ``figures`` are the key figures as :func:`headline_figures` returns them (already
    disclosure-controlled); by default they are read from the processed data.
    """
    facts = facts or run_facts(cfg)
    by_site: dict[str | None, list[JobResult]] = {}
    for r in results:
        by_site.setdefault(r.site, []).append(r)
    cross = by_site.get(None, [])
    cross_ok = bool(cross) and cross[0].ok
    try:
        heads = (
            figures if figures is not None else headline_figures(cfg, change=cross_ok)
        ).set_index("site")
    except Exception:  # the index must still be written when the data cannot be summarised
        heads = pd.DataFrame()
    with_change = cross_ok and "mean_change" in heads
    title_score = score_title(HEADLINE_SCORE)

    def shown_figures(code: str) -> list[str]:
        row = heads.loc[code] if code in heads.index else None
        shown = [fmt(row[k], 0) if row is not None else "-" for k in COUNTS]
        if with_change:
            shown.append(_change_text(row) if row is not None else "-")
        return shown

    codes = [code for code in cfg.sites if by_site.get(code)]
    context = {code: dict(cfg.sites[code].context) for code in codes}
    groupings = _groupings(context, codes)
    has_context = any(context.values())
    rows = [
        _site_row(cfg, code, by_site[code], shown_figures(code), groupings, has_context)
        for code in codes
    ]
    n_sites = len(rows)
    failed_sites = [code for code in cfg.sites if any(not r.ok for r in by_site.get(code, []))]
    grouped = groupings[0] if groupings and n_sites > LONG_TABLE_ROWS else None
    sites_table = _sites_table(rows, codes, groupings, grouped, with_change, has_context)
    body = (
        _summary(
            cfg,
            facts,
            heads,
            n_sites,
            cross,
            with_change,
            title_score,
            shown_figures,
            _status(cfg, results, failed_sites),
            _group_line(grouped),
        )
        + f"<h2 id='sites'>Sites</h2>{sites_table}"
        + _notes(with_change, title_score)
    )
    context_page = page_context(cfg, facts, INDEX)
    return html_page(
        "Link worker evaluation reports",
        body,
        context_page,
        head_extra=_INDEX_STYLE,
        tail=_SCRIPT if n_sites > 1 else "",
    )


@dataclass
class _Grouping:
    """One way to group the site table: its key (data-<key> on each row), its name in the
    "Group by" list, and each site's group."""

    key: str
    name: str
    groups: pd.Series


def _groupings(context: dict[str, dict], codes: list[str]) -> list[_Grouping]:
    """The ways to group the sites by their context: all grouping attributes together (as the
    cross-site page groups them), then each one alone."""
    from linkeval.report.sections import context_label, grouping_fields, site_groups

    combined = site_groups(context, codes)
    if combined is None:
        return []
    out = [_Grouping("g0", "Context", combined)]
    fields = grouping_fields(context, codes)
    if len(fields) > 1:
        for k, key in enumerate(fields, start=1):
            labels = [context_label(key, context[c].get(key)) for c in codes]
            series = pd.Series([x[:1].upper() + x[1:] for x in labels], index=codes)
            out.append(_Grouping(f"g{k}", plain(key), series))
    return out


def _context_text(context: dict) -> str:
    """A site's context attributes in words, for its row ("VCSE-hosted, rural")."""
    from linkeval.report.sections import context_label

    words = [
        context_label(k, v)
        for k, v in context.items()
        if v is None or isinstance(v, str | bool | int | float)
    ]
    text = ", ".join(words)
    return text[:1].upper() + text[1:]


def _site_row(
    cfg: StudyConfig,
    code: str,
    mine: list[JobResult],
    shown: list[str],
    groupings: list[_Grouping],
    has_context: bool,
) -> str:
    """One site's row: name, context, status, links and key figures; ``data-g*`` attributes
    carry its group under each grouping (for the script)."""
    failed = [r for r in mine if not r.ok]
    status = (
        (
            "<span class='le-bad'>Failed</span><br>"
            + "<br>".join(
                html.escape(f"{SITE_NOTEBOOKS.get(r.notebook, r.notebook)}: {r.error}")
                for r in failed
            )
        )
        if failed
        else "<span class='le-ok'>Ready</span>"
    )
    links = " &middot; ".join(
        f"<a href='{html.escape(r.html)}' title='{html.escape(SITE_NOTEBOOKS[r.notebook])}'>"
        f"{html.escape(NAV_LABELS[r.notebook])}</a>"
        if r.ok
        else f"{html.escape(NAV_LABELS[r.notebook])} (failed)"
        for r in sorted(mine, key=lambda r: list(SITE_NOTEBOOKS).index(r.notebook))
    )
    cells = "".join(
        f"<td class='num' data-sort='{_sort_key(v)}'>{html.escape(v)}</td>" for v in shown
    )
    data = "".join(
        f" data-{g.key}='{html.escape(str(g.groups[code]), quote=True)}'" for g in groupings
    )
    context_cell = (
        f"<td class='txt le-ctx'>{html.escape(_context_text(cfg.sites[code].context))}</td>"
        if has_context
        else ""
    )
    return (
        f"<tr id='site-{html.escape(code)}'{data}>"
        f"<td class='txt'>{html.escape(site_label(cfg, code))}</td>{context_cell}"
        f"<td class='txt'>{status}</td><td class='txt le-pages'>{links}</td>"
        f"{cells}</tr>"
    )


def _sites_table(
    rows: list[str],
    codes: list[str],
    groupings: list[_Grouping],
    grouped: _Grouping | None,
    with_change: bool,
    has_context: bool,
) -> str:
    """The site table: one <tbody>, or with ``grouped`` one per group under a heading row
    (in order of the group's name), which is how it reads with scripts off."""
    change_head = "<th>Wellbeing change (95% CI)</th>" if with_change else ""
    context_head = "<th>Context</th>" if has_context else ""
    n_cols = 6 + with_change + has_context
    if grouped is None:
        body = f"<tbody>\n{chr(10).join(rows)}\n</tbody>"
    else:
        row_of = dict(zip(codes, rows, strict=True))
        parts = []
        for label, members in grouped.groups.groupby(grouped.groups, sort=True):
            n = len(members)
            head = (
                f"<tr class='le-group'><th colspan='{n_cols}' scope='rowgroup'>"
                f"{html.escape(str(label))} ({n} site{'s' if n != 1 else ''})</th></tr>"
            )
            parts.append(
                "<tbody>" + head + "\n" + "\n".join(row_of[c] for c in members.index) + "</tbody>"
            )
        body = "\n".join(parts)
    options = "".join(
        f"<option value='{g.key}'{' selected' if g is grouped else ''}>"
        f"{html.escape(g.name)}</option>"
        for g in groupings
    )
    group_by = (
        f"<label>Group by: <select id='le-group' aria-controls='le-sites'>"
        f"<option value=''{'' if grouped else ' selected'}>No grouping</option>{options}"
        "</select></label><button type='button' id='le-unfold' hidden></button>"
        if groupings
        else ""
    )
    long = " le-long" if len(rows) > LONG_TABLE_ROWS else ""
    return f"""<div id="le-filter" class="le-filter le-screen" hidden>
<label>Find a site: <input type="search" placeholder="name, code, context or status"
aria-controls="le-sites"></label>{group_by}<span id="le-count" aria-live="polite"></span></div>
<div class="le-output"><table class="le-table{long}" id="le-sites"><thead><tr><th>Site</th>{context_head}<th>Status</th>
<th class="le-pages">Pages</th><th>Referrals</th><th>People engaged</th><th>Paired follow-ups</th>{change_head}
</tr></thead>{body}</table></div>"""


def _group_line(grouped: _Grouping | None) -> str:
    """One line on how many sites each context group has (when the site table is grouped)."""
    if grouped is None:
        return ""
    counts = grouped.groups.value_counts().sort_index()
    parts = [f"{html.escape(str(label))} {n}" for label, n in counts.items()]
    return f"<p class='le-groups'>Sites by context: {' &middot; '.join(parts)}.</p>"


def _summary(
    cfg, facts, heads, n_sites, cross, with_change, title_score, figures, status, groups=""
) -> str:
    all_row = figures("all") if "all" in heads.index else ["-"] * (3 + with_change)
    change_head = (
        f"<th>Change in {html.escape(_lower(title_score))}, 95% CI</th>" if with_change else ""
    )
    cells = "".join(f"<td class='num'>{html.escape(v)}</td>" for v in all_row)
    table = (
        f"<table class='le-table'><thead><tr><th></th><th>Referrals</th>"
        f"<th>People engaged</th><th>Paired follow-ups</th>{change_head}</tr></thead>"
        f"<tbody><tr><th scope='row'>All {n_sites} sites</th>{cells}</tr></tbody></table>"
    )
    if with_change:
        sentence = _headline_sentence(all_row[3], title_score, _mid(cfg, HEADLINE_SCORE))
    elif cross and not cross[0].ok:
        sentence = (
            "<p>The change in mental wellbeing is not shown because the cross-site "
            "report failed.</p>"
        )
    else:
        sentence = (
            "<p>The change in mental wellbeing is shown here once the cross-site report "
            "has run.</p>"
        )
    cross_link = (
        f"<li><a href='{CROSS_SITE_PAGE}'>{html.escape(CROSS_SITE_TITLE)}</a></li>"
        if cross and cross[0].ok
        else "<li><span class='le-bad'>Cross-site report failed</span>: "
        + html.escape(cross[0].error if cross else "not run")
        + "</li>"
    )
    return f"""<section class="le-summary" aria-labelledby="summary"><h2 id="summary">Summary</h2>
<p class="le-big">Referrals to the link worker services at {n_sites} site{"s" if n_sites != 1 else ""}
from {html.escape(facts.period or "-")}; data extracted {html.escape(facts.extracted)}.</p>
{groups}{table}
{sentence}
{status}
<ul class="le-links">{cross_link}<li><a href="#sites">Each site's pages</a></li>
<li><a href="{METHODS}">Methods and glossary: how to read these pages</a></li></ul>
</section>"""


def _mid(cfg: StudyConfig, score: str) -> float | None:
    """The score's minimal important difference: the study's setting, else the published one."""
    try:
        return cfg.instrument_settings(score).mid or score_spec(score).mid
    except Exception:
        return None


def _lower(title: str) -> str:
    return title[:1].lower() + title[1:]


def _status(cfg: StudyConfig, results: list[JobResult], failed_sites: list[str]) -> str:
    """One line on what this run made; failed sites linked to their rows."""
    made = sum(r.ok for r in results)
    if not failed_sites:
        return f"<p class='le-status'>All {made} report pages were made in this run.</p>"
    shown = ", ".join(
        f"<a href='#site-{html.escape(c)}'>{html.escape(site_label(cfg, c))}</a>"
        for c in failed_sites[:FAILED_NAMED]
    )
    more = (
        f" and {len(failed_sites) - FAILED_NAMED} more, marked Failed in the site table"
        if len(failed_sites) > FAILED_NAMED
        else ""
    )
    return (
        f"<p class='le-status'><span class='le-bad'>{len(failed_sites)} "
        f"site{'s' if len(failed_sites) != 1 else ''} with a page that could not be made"
        f"</span>: {shown}{more}.</p>"
    )


def _headline_sentence(text: str, title_score: str, mid: float | None) -> str:
    if text in (SUPPRESSED, "-"):
        return (
            "<p>Too few people have answered the mental wellbeing questionnaire at both "
            "times to show the change yet.</p>"
        )
    mean, ci = text.split(" ", 1)
    important = (
        f"; a change of {fmt(mid, 0)} points or more is thought important for one person"
        if mid
        else ""
    )
    return (
        f"<p>Across all sites, {html.escape(_lower(title_score))} changed by "
        f"<b>{html.escape(mean)}</b> points on average between the first meeting and "
        f"follow-up (95% confidence interval {html.escape(ci.strip('()'))}, allowing for "
        f"differences between sites; a higher score is better{important}). This is a before-and-after comparison: some of the change "
        f"would have happened anyway (see <a href='{METHODS}#design'>what this kind of "
        "study can and cannot show</a>).</p>"
    )


def _notes(with_change: bool, title_score: str) -> str:
    change = (
        f" Wellbeing change: the average change in {html.escape(_lower(title_score))} from the "
        "first meeting to follow-up among people who answered both, with its 95% "
        "confidence interval; for all sites, the sites' changes pooled by a random-effects "
        "meta-analysis, whose interval allows for differences between sites."
        if with_change
        else ""
    )
    return (
        "<p class='le-note'>People engaged: at least one attended contact with a link "
        "worker. Paired follow-ups: people who answered the questionnaires at the first "
        f"meeting and again 9-12 months later.{change} * hidden to protect "
        "confidentiality (small numbers).</p>"
    )


# -- the methods note ---------------------------------------------------------------------------
METHODS_TITLE = "Methods and glossary"

_METHODS_BODY = """
<p>These pages summarise routine data and questionnaires from social-prescribing link worker
services, for the study's steering group. This note explains what the pages show and the
words and numbers they use, in plain English.</p>

<h2 id="pages">What the pages show</h2>
<ul>
<li><b>The index</b> gives key figures for all sites together and for each site, and links to
every page.</li>
<li><b>Who is referred, and what happens next</b> (one page per site): how many people were
referred, by whom and why, who they are, how many met a link worker, how contacts took place,
where people were referred on to, and how complete the data are.</li>
<li><b>Change in wellbeing and loneliness</b> (one page per site): questionnaire scores at the
first meeting and again 9-12 months later, for the people who answered both times, and who
was and was not followed up.</li>
<li><b>All sites compared</b>: the sites side by side, the change in wellbeing and
loneliness at each site, and analyses of what works, for whom and in what circumstances.</li>
</ul>
<p>Each page states the <b>period covered</b> (the months of the first and last referral in
the data), the date the data were <b>extracted</b> (cleaned and checked) and the date the page
was made.</p>

<h2 id="numbers">How to read the numbers</h2>
<dl class="le-glossary">
<dt id="mean-change">Change</dt>
<dd>The score at follow-up minus the score at the first meeting, averaged over the people who
answered both times. For wellbeing and life satisfaction a rise is an improvement; for
loneliness, anxiety and depression scores a fall is an improvement.</dd>
<dt id="ci">95% confidence interval (95% CI)</dt>
<dd>The range of values that is consistent with the data. If we could repeat the study many
times, 95 out of 100 such ranges would contain the true average. A narrow interval means a
precise estimate; an interval that includes 0 means the data are consistent with no change.
</dd>
<dt id="p-value">p-value (p)</dt>
<dd>How surprising the result would be if there were really no change or no difference. A
small p-value (below 0.05 by convention) means the result would be unlikely to arise by chance
alone. It does not say how big or how important a change is, and it does not show that the
service caused it. "&lt;0.001" means less than 1 in 1,000.</dd>
<dt id="dz">Standardised change (effect size, d<sub>z</sub>)</dt>
<dd>The average change divided by how much the changes vary from person to person, so that
scores on different scales can be compared. As a rough guide 0.2 is a small change, 0.5 a
medium one and 0.8 a large one.</dd>
<dt id="reliable-change">Reliable change</dt>
<dd>A change in one person's score that is larger than questionnaire measurement error alone
would produce (the Jacobson and Truax reliable change index). "% reliably improved" is the share
of people whose score improved by at least that much; "% reliably worse" the share whose score
got worse by at least that much. It needs a questionnaire of several questions, so it is not
worked out for single questions.</dd>
<dt id="mid">Minimal important difference (MID)</dt>
<dd>The smallest change in a score that people would notice as making a difference to their
lives, taken from published research on each questionnaire (for example 3 points for the
short Warwick-Edinburgh Mental Wellbeing Scale, SWEMWBS, which is scored from 7 to 35).
"% improved by an important amount" is the share of people whose score improved by at least
the MID.</dd>
<dt id="bands">Bands</dt>
<dd>Score ranges with published labels (for example "lonely" on UCLA-3, or low, medium and
high life satisfaction). The band tables show how many people moved between bands.</dd>
<dt id="multilevel">Multilevel model</dt>
<dd>A regression that estimates the follow-up score from the score at the first meeting and
personal characteristics (such as age, sex and deprivation), while allowing each site to
differ. People at the same site tend to be more alike than people at different sites, and the
model takes that into account, so its confidence intervals are honest about it.</dd>
<dt id="reference">Reference category</dt>
<dd>In a model, a characteristic with several groups (such as age band) is described by
comparing each group with one chosen group, the reference category. A row "Sex: male" with an
estimate of -1.0 means that men scored 1 point lower at follow-up than the reference group
(women), among people with the same score at the first meeting and the same other
characteristics.</dd>
<dt id="moderator">For whom, in what circumstances</dt>
<dd>The pages compare the change of people in one context (for example people who were lonely
at the first meeting) with everyone else, at the same starting score. These are associations
in observational data, not proof of cause.</dd>
<dt id="cmoc">Context-mechanism-outcome configuration (CMOC)</dt>
<dd>In a realist evaluation, a statement of the form "in this context, this mechanism leads to
this outcome", proposed from interviews and other evidence, then held against the data.</dd>
<dt id="sd">Standard deviation (SD), median and quartiles</dt>
<dd>The SD describes how spread out values are around the average. The median is the middle
value; the lower and upper quartiles are the values a quarter and three quarters of the way
up, so half of the people lie between them.</dd>
<dt id="standardised-difference">Standardised difference</dt>
<dd>How different two groups are (for example people who were and were not followed up),
in a form that does not depend on units. A difference beyond about 0.1 either way means the
people followed up may not be typical of everyone referred.</dd>
</dl>

<h2 id="disclosure">Disclosure control: why some numbers are hidden</h2>
<p>RULE_TEXT</p>
<p>A hidden number is shown as <b>*</b>. Percentages, averages and tests are worked out so
that a hidden number cannot be recovered from the others, and charts are drawn from the same
controlled numbers. Because counts are rounded, totals may not add up exactly.</p>

<h2 id="design">What this kind of study can and cannot show</h2>
<p>The change in scores is a <b>before-and-after comparison without a comparison group</b>.
Some change would have happened anyway, without a link worker: people often seek help at a
low point, and many recover with time.</p>
<p><b>Regression to the mean</b>: people who score unusually low on one day tend to score
closer to their usual level the next time they are asked, whatever happens in between. Because
people are often referred at a bad time, part of the improvement seen is likely to be this
statistical effect rather than the service.</p>
<p><b>Who was followed up</b>: not everyone answered the questionnaires again. If the people
who did differ from those who did not (the pages compare them), the results may not apply to
everyone referred. The sensitivity analyses check whether the results hold under different
assumptions about the people who were not followed up.</p>
<p>Differences between sites can reflect who is referred and how data are recorded as well as
how the service works. Read the numbers alongside the qualitative findings.</p>
"""


def methods_page(cfg: StudyConfig, facts: RunFacts | None = None) -> str:
    """The methods note and glossary (static text with the study's disclosure rule)."""
    facts = facts or run_facts(cfg)
    body = _METHODS_BODY.replace("RULE_TEXT", html.escape(_rule_text(cfg)))
    style = "<style>.le-glossary dt{font-weight:700;margin-top:.9em}.le-glossary dd{margin:.2em 0 0 1.5em;max-width:48em}@media print{.le-glossary dt{break-after:avoid}}</style>"
    return html_page(METHODS_TITLE, body, page_context(cfg, facts, METHODS), head_extra=style)
