"""Rendering: the pages' look, and executed notebooks as HTML (numbers: :mod:`.formats`).

A page is one self-contained HTML file: no script, style sheet, font or image is loaded from
anywhere else (figures are PNG data URIs, the CSS is inline), so a page opens offline, can be
e-mailed, and prints on A4 without stranded headings or cut-off tables.

:func:`render_html` builds a page from an executed report notebook: markdown cells become
HTML, code cells contribute only what they displayed (HTML, else Markdown, else an image, else
plain text); the code, the parameters cells, printed output (stdout and stderr), tracebacks,
the plain-text repr of a cell's last value, execution counts and notebook metadata never reach
the page. :func:`html_page` wraps any body (the index, the methods note)
in the same template: navigation, DEMO banner, header, footer with the run's metadata.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from linkeval._version import __version__

# -- the look -----------------------------------------------------------------------------------
# Components the report sections emit (tables, figures, notes, the header block). Also shown
# inside Jupyter, so it is a <style> block the notebook header can display.
_COMPONENTS = """
.le-demo{background:#b00020;color:#fff;font-weight:700;padding:.6em 1em;border-radius:4px;
 margin:0 0 .8em;letter-spacing:.03em;-webkit-print-color-adjust:exact;print-color-adjust:exact}
.le-header{border-bottom:2px solid #0072B2;margin-bottom:1em;padding-bottom:.6em}
.le-study{color:#555;font-size:.95em}
.le-header h1{margin:.2em 0 .4em 0;font-size:1.7em;line-height:1.2;border:0;padding:0}
.le-meta span{display:inline-block;margin-right:1.2em;font-size:.85em;color:#333}
.le-rule{font-size:.8em;color:#555;margin-top:.5em;max-width:60em}
table.le-table{border-collapse:collapse;margin:.6em 0;font-size:.9em}
table.le-table th{background:#eef3f8;text-align:left!important;padding:.3em .7em;
 border-bottom:1px solid #99a;vertical-align:bottom}
table.le-table td{padding:.25em .7em;border-bottom:1px solid #dde;vertical-align:top}
table.le-table td.num{text-align:right!important;white-space:nowrap}
table.le-table td.txt{text-align:left!important}
table.le-table caption{text-align:left;font-weight:600;padding-bottom:.3em}
.le-note{font-size:.8em;color:#555;margin-bottom:1em}
img.le-figure{max-width:100%;height:auto;display:block;margin:.4em 0}
"""

STYLE = f"<style>{_COMPONENTS}</style>"

# The page around them: layout, navigation, footer, and print.
_PAGE = """
*,*::before,*::after{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{margin:0;font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,
 sans-serif;font-size:16px;line-height:1.5;color:#1f2328;background:#fff}
main{max-width:72rem;margin:0 auto;padding:1.2em 1.5em 1em}
a{color:#0b5cad}
h1,h2,h3,h4{line-height:1.25;font-weight:650}
main>h2,.le-body h2{font-size:1.4em;margin:1.8em 0 .5em;padding-top:.5em;border-top:1px solid #d0d7de}
h3{font-size:1.12em;margin:1.3em 0 .4em}
p,li{max-width:48em}
.le-nav{background:#f3f6f9;border-bottom:1px solid #d0d7de;font-size:.92em}
.le-nav ul{max-width:72rem;margin:0 auto;padding:.55em 1.5em;list-style:none;display:flex;
 flex-wrap:wrap;gap:.25em 1.5em}
.le-nav li{margin:0}
.le-nav a[aria-current]{color:#1f2328;font-weight:700;text-decoration:none}
.le-nav .le-site{color:#57606a}
.le-toc{font-size:.9em;margin:.2em 0 1.2em;color:#57606a}
.le-toc ul{display:inline;margin:0;padding:0;list-style:none}
.le-toc li{display:inline;margin:0}
.le-toc li:not(:last-child)::after{content:"\\00b7";margin:0 .5em;color:#8c959f}
.le-output{max-width:100%;overflow-x:auto}
.le-output>:first-child{margin-top:.3em}
pre.le-text{white-space:pre-wrap;font-size:.85em;background:#f6f8fa;padding:.5em .8em}
table.le-table td.txt{overflow-wrap:break-word;hyphens:auto}
table.dataframe{border-collapse:collapse;font-size:.9em;margin:.6em 0}
table.dataframe th,table.dataframe td{padding:.25em .6em;border-bottom:1px solid #dde;text-align:right}
.le-footer{max-width:72rem;margin:2.5em auto 0;padding:1em 1.5rem 2em;border-top:1px solid #d0d7de;
 font-size:.8em;color:#57606a}
.le-footer p{margin:.3em 0;max-width:none}
.le-footer span{display:inline-block;margin-right:1.2em}
.le-bad{color:#b00020;font-weight:700}
@media (max-width:40em){main,.le-nav ul,.le-footer{padding-left:.8em;padding-right:.8em}}
@media print{
 body{font-size:10pt;line-height:1.35}
 main{max-width:none;padding:0}
 .le-nav,.le-toc,.le-screen{display:none!important}
 a{color:inherit;text-decoration:none}
 h1,h2,h3,h4,caption{break-after:avoid;page-break-after:avoid;break-inside:avoid}
 p,li,dd{break-inside:avoid;orphans:3;widows:3}
 p:has(+ table),p:has(+ .le-output),p:has(+ img){break-after:avoid}
 main>h2,.le-body h2{margin-top:1.2em}
 table,img,figure,figcaption,.le-keep,.le-note{break-inside:avoid;page-break-inside:avoid}
 table.le-long{break-inside:auto;page-break-inside:auto}
 tr{break-inside:avoid}
 thead{display:table-header-group}
 .le-output{overflow:visible!important}
 table.le-table,table.dataframe{font-size:8pt;max-width:100%}
 table.le-table th,table.le-table td{padding:.2em .45em}
 table.le-table th{white-space:normal}
 img.le-figure{max-width:100%!important;max-height:140mm;width:auto}
 .le-footer{max-width:none;margin-top:1em;padding:.4em 0 0;break-inside:avoid;font-size:7.5pt;
  line-height:1.3}
 .le-footer .le-footer-rule{display:none}
 .le-demo{background:#b00020!important;color:#fff!important}
}
"""


@dataclass
class PageContext:
    """What a page says about itself: study, site, period, run metadata, and where it sits.

    ``nav`` is a list of ``(label, href, current)`` with hrefs relative to the page; an empty
    label starts a new group (shown as a gap).
    """

    study: str = ""
    site: str | None = None  # "Riverside PCN (A)"; None for whole-study pages
    period: str = ""  # "January 2023 to December 2024"
    extracted: str = ""  # "25 November 2026"
    report_date: str = field(default_factory=lambda: _long_day(date.today()))
    version: str = __version__
    config_hash: str = ""
    data_hash: str = ""
    rule: str = ""  # the disclosure rule's footnote
    demo: bool = False
    nav: list[tuple[str, str, bool]] = field(default_factory=list)
    methods_href: str = ""


DEMO_BANNER = (
    '<div class="le-demo">DEMO - SYNTHETIC DATA: every person in these reports is made up</div>'
)


def html_page(
    title: str,
    body: str,
    context: PageContext | None = None,
    *,
    header: bool = True,
    toc: bool = False,
    head_extra: str = "",
    tail: str = "",
) -> str:
    """One self-contained page: nav, DEMO banner, header, ``body``, footer with metadata.

    ``header=False`` when the body already starts with its own ``le-header`` block (a report
    notebook's); the DEMO banner is added only when the body has none. ``head_extra`` goes
    at the end of <head> (page-specific CSS), ``tail`` at the end of <body> (an inline script).
    """
    ctx = context or PageContext()
    demo = DEMO_BANNER if ctx.demo and 'class="le-demo"' not in body else ""
    top = _header(title, ctx) if header else ""
    if toc:
        body = _with_toc(body, after_header=not header)
        if header:
            top += _toc(body)
    full_title = " - ".join(x for x in (title, ctx.site, ctx.study) if x)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>{html.escape(full_title)}</title>
<style>{_COMPONENTS}{_PAGE}{_page_rule(title, ctx)}</style>{head_extra}
</head><body>
{_nav(ctx)}<main>
{demo}{top}{body}
</main>
{_footer(title, ctx)}{tail}
</body></html>
"""


def render_html(executed: Path, title: str, context: PageContext | None = None) -> str:
    """An executed notebook as one self-contained page for the steering group.

    Keeps markdown cells (as HTML) and what code cells displayed; drops code, the parameters
    and injected-parameters cells, printed output (stdout, stderr), error outputs, plain-text
    reprs of a cell's last value, execution counts and all metadata. When the notebook displays its own header (a ``le-header`` block) it is kept and
    the page adds none; otherwise the page gets the standard header from ``context``.
    """
    import nbformat

    nb = nbformat.read(executed, as_version=4)
    hidden = {"parameters", "injected-parameters"}
    parts: list[str] = []
    for cell in nb.cells:
        if hidden & set(cell.get("metadata", {}).get("tags", [])):
            continue
        if cell.cell_type == "markdown":
            parts.append(_markdown(cell.source, trusted=True))
        elif cell.cell_type == "code":
            parts.extend(_output_html(o) for o in cell.get("outputs", []))
    body = "\n".join(p for p in parts if p)
    has_header = 'class="le-header"' in body
    return html_page(title, body, context, header=not has_header, toc=True)


# -- pieces ------------------------------------------------------------------------------------
def _markdown(text: str, trusted: bool) -> str:
    """Markdown to HTML; raw HTML is kept in the notebooks' own cells, escaped in outputs."""
    import mistune

    render = mistune.create_markdown(escape=not trusted, plugins=["table", "strikethrough"])
    return render(text).strip()


_SCRIPT = re.compile(r"<script\b.*?</script\s*>", re.S | re.I)


def _output_html(output) -> str:
    kind = output.get("output_type")
    if kind not in ("display_data", "execute_result"):
        # Tracebacks never reach a page, nor printed text (stdout or stderr): a stray print()
        # is debugging, and could show numbers that never passed the disclosure gate.
        return ""
    data = output.get("data", {})
    if "text/html" in data:
        text = mark_long_tables(_SCRIPT.sub("", _joined(data["text/html"])).replace(STYLE, ""))
        if 'class="le-header"' in text or 'class="le-demo"' in text:
            return text.strip()
        return f'<div class="le-output">{text.strip()}</div>'
    if "text/markdown" in data:
        return _markdown(_joined(data["text/markdown"]), trusted=False)
    for mime in ("image/png", "image/jpeg"):
        if mime in data:
            encoded = _joined(data[mime]).replace("\n", "")
            return f'<img class="le-figure" alt="Chart" src="data:{mime};base64,{encoded}">'
    if "text/plain" in data and kind == "display_data":
        # A plain-text execute_result is the repr of a cell's last expression: code, not report.
        return f'<pre class="le-text">{html.escape(_joined(data["text/plain"]))}</pre>'
    return ""


LONG_TABLE_ROWS = 25
_TABLE = re.compile(r"<table\b[^>]*>.*?</table>", re.S | re.I)


def mark_long_tables(text: str) -> str:
    """Class ``le-long`` on tables of more than LONG_TABLE_ROWS rows: in print they may break
    across pages (with the header row repeated) instead of leaving a page half empty."""

    def mark(match: re.Match) -> str:
        table = match.group(0)
        if table.lower().count("<tr") <= LONG_TABLE_ROWS:
            return table
        opening = table[: table.index(">")]
        if 'class="' in opening:
            return table.replace('class="', 'class="le-long ', 1)
        return '<table class="le-long"' + table[len("<table") :]

    return _TABLE.sub(mark, text)


def _joined(value) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def _nav(ctx: PageContext) -> str:
    if not ctx.nav:
        return ""
    items = []
    for label, href, current in ctx.nav:
        if not href:
            items.append(f'<li class="le-site">{html.escape(label)}</li>')
        elif current:
            items.append(
                f'<li><a href="{html.escape(href)}" aria-current="page">'
                f"{html.escape(label)}</a></li>"
            )
        else:
            items.append(f'<li><a href="{html.escape(href)}">{html.escape(label)}</a></li>')
    return f'<nav class="le-nav" aria-label="Reports"><ul>{"".join(items)}</ul></nav>\n'


def _meta(ctx: PageContext, site: bool = True) -> list[tuple[str, str]]:
    rows = [("Site", ctx.site)] if site and ctx.site else []
    rows += [
        ("Period covered", ctx.period),
        ("Data extracted", ctx.extracted),
        ("Report date", ctx.report_date),
    ]
    return [(k, v) for k, v in rows if v]


def _spans(rows: list[tuple[str, str]]) -> str:
    return "".join(f"<span><b>{html.escape(k)}:</b> {html.escape(v)}</span>" for k, v in rows)


def _header(title: str, ctx: PageContext) -> str:
    study = f'<div class="le-study">{html.escape(ctx.study)}</div>' if ctx.study else ""
    rule = f'<div class="le-rule">{html.escape(ctx.rule)}</div>' if ctx.rule else ""
    return (
        f'<header class="le-header">{study}<h1>{html.escape(title)}</h1>'
        f'<div class="le-meta">{_spans(_meta(ctx))}</div>{rule}</header>\n'
    )


def _footer(title: str, ctx: PageContext) -> str:
    run = [
        ("linkeval version", ctx.version),
        ("Config", ctx.config_hash[:12]),
        ("Data", ctx.data_hash[:12]),
    ]
    page = " - ".join(x for x in (ctx.study, title, ctx.site) if x)
    methods = (
        f' <a href="{html.escape(ctx.methods_href)}">What the terms mean: methods and glossary</a>.'
        if ctx.methods_href
        else ""
    )
    rule = (
        f'<p class="le-footer-rule">{html.escape(ctx.rule)}{methods}</p>'
        if ctx.rule or methods
        else ""
    )
    return (
        f'<footer class="le-footer"><p>{html.escape(page)}</p>'
        f"<p>{_spans(_meta(ctx, site=False))}</p>"
        f"<p>{_spans([(k, v) for k, v in run if v])}</p>{rule}</footer>"
    )


def _page_rule(title: str, ctx: PageContext) -> str:
    """A4 pages with the page title and page numbers in the margins (DEMO at the top)."""
    left = " - ".join(x for x in (title, ctx.site) if x)
    demo = (
        (
            '@top-center{content:"DEMO - SYNTHETIC DATA";color:#b00020;font:700 8pt '
            "system-ui,sans-serif}"
        )
        if ctx.demo
        else ""
    )
    return (
        "@page{size:A4;margin:15mm 14mm 16mm 14mm;"
        f'@bottom-left{{content:"{_css_string(left)}";font:8pt system-ui,sans-serif;'
        "color:#57606a}"
        '@bottom-right{content:"Page " counter(page) " of " counter(pages);'
        f"font:8pt system-ui,sans-serif;color:#57606a}}{demo}}}"
    )


def _css_string(text: str) -> str:
    return "".join(c if c.isalnum() or c in " -,.:()'" else f"\\{ord(c):x} " for c in text)


_HEADING = re.compile(r"<h2>(.*?)</h2>", re.S)


def _with_toc(body: str, after_header: bool) -> str:
    """Give each h2 an id and, after the notebook's own header block, an 'On this page' list."""
    used: set[str] = set()

    def anchor(match: re.Match) -> str:
        slug = re.sub(r"[^a-z0-9]+", "-", re.sub(r"<[^>]+>", "", match.group(1)).lower())
        slug = slug.strip("-") or "section"
        base, i = slug, 2
        while slug in used:
            slug, i = f"{base}-{i}", i + 1
        used.add(slug)
        return f'<h2 id="{slug}">{match.group(1)}</h2>'

    body = _HEADING.sub(anchor, body)
    if after_header:
        end = _header_end(body)
        if end is not None:
            body = body[:end] + _toc(body) + body[end:]
    return body


def _header_end(body: str) -> int | None:
    """Where the notebook's le-header block ends (its div closed), or None."""
    start = body.find('class="le-header"')
    if start < 0:
        return None
    start = body.rfind("<", 0, start)
    depth = 0
    for tag in re.finditer(r"<(/?)div\b[^>]*>", body[start:]):
        depth += -1 if tag.group(1) else 1
        if depth == 0:
            return start + tag.end()
    return None


def _toc(body: str) -> str:
    entries = re.findall(r'<h2 id="([^"]+)">(.*?)</h2>', body, re.S)
    if len(entries) < 3:
        return ""
    items = "".join(f'<li><a href="#{i}">{re.sub(r"<[^>]+>", "", t)}</a></li>' for i, t in entries)
    return f'<nav class="le-toc" aria-label="On this page">On this page: <ul>{items}</ul></nav>\n'


def _long_day(day: date) -> str:
    """25 November 2026 (as :func:`linkeval.report.formats.long_date`, without pandas)."""
    return f"{day.day} {day:%B %Y}"
