"""Pages from executed notebooks: self-contained, no code, navigation, print rules; numbers."""

from __future__ import annotations

import base64
import re

import nbformat
import numpy as np
import pytest

from linkeval.report.formats import fmt, fmt_p, long_date, month_range
from linkeval.report.render import STYLE, PageContext, html_page, render_html

PNG = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
    )
).decode()


def executed_notebook(path, header: bool = False):
    """A small notebook as papermill leaves it: parameters, code, outputs of every kind."""
    v4 = nbformat.v4
    params = v4.new_code_cell('config = "secret/path.yaml"\nsite = "A"')
    params.metadata["tags"] = ["parameters"]
    injected = v4.new_code_cell('# Parameters\nconfig = "/data/study.yaml"\nsite = "B"')
    injected.metadata["tags"] = ["injected-parameters"]
    injected.metadata["papermill"] = {"status": "completed"}
    first = v4.new_code_cell(
        "from linkeval.report.notebook import Report\nreport = Report(config)", execution_count=3
    )
    if header:
        first.outputs = [
            v4.new_output(
                "display_data",
                data={
                    "text/html": (
                        f'{STYLE}<div class="le-demo">DEMO</div><div class="le-header"><div class="le-study">'
                        'Study</div><h1>Notebook title</h1><div class="le-meta"></div></div>'
                    )
                },
            )
        ]
    table = v4.new_code_cell(
        "report.headline()",
        execution_count=4,
        outputs=[
            v4.new_output(
                "display_data",
                data={
                    "text/html": '<table class="le-table"><tr><td class="num">405</td></tr></table>',
                    "text/plain": "<IPython.core.display.HTML object>",
                },
            ),
            v4.new_output(
                "display_data",
                data={
                    "text/markdown": "This report covers **405** referrals & <script>alert(1)</script>",
                    "text/plain": "<IPython.core.display.Markdown object>",
                },
            ),
            v4.new_output("display_data", data={"application/vnd.linkeval.output-checks+json": []}),
            v4.new_output("stream", name="stderr", text="UserWarning: something noisy\n"),
            v4.new_output(
                "execute_result",
                data={"text/plain": "Section(name='headline', ...)"},
                execution_count=4,
            ),
        ],
    )
    figure = v4.new_code_cell(
        "report.figure()",
        outputs=[
            v4.new_output("display_data", data={"image/png": PNG, "text/plain": "<Figure>"}),
            v4.new_output(
                "display_data",
                data={
                    "text/html": (
                        '<img class="le-figure" alt="Referrals per month" '
                        f'src="data:image/png;base64,{PNG}"><script src="https://cdn.example/x.js"></script>'
                    )
                },
            ),
        ],
    )
    broken = v4.new_code_cell(
        "1/0",
        outputs=[
            v4.new_output(
                "error",
                ename="ZeroDivisionError",
                evalue="division by zero",
                traceback=["Traceback (most recent call last)", "ZeroDivisionError"],
            )
        ],
    )
    printed = v4.new_code_cell(
        "print('hello')",
        outputs=[v4.new_output("stream", name="stdout", text="hello from stdout\n")],
    )
    nb = v4.new_notebook(
        cells=[
            v4.new_markdown_cell("A note with *emphasis*."),
            params,
            injected,
            first,
            v4.new_markdown_cell("## Headline figures"),
            table,
            v4.new_markdown_cell("## Referrals over time\n\nSome | table\n--- | ---\n1 | 2"),
            figure,
            v4.new_markdown_cell("## Data quality"),
            broken,
            printed,
        ]
    )
    nb.metadata["papermill"] = {"parameters": {"config": "/data/study.yaml"}}
    nbformat.write(nb, path)
    return path


def context(**kw) -> PageContext:
    nav = [
        ("Reports index", "../../index.html", False),
        ("Riverside PCN (A):", "", False),
        ("Who is referred", "site_descriptive.html", True),
        ("Change in wellbeing", "site_change.html", False),
        ("All sites compared", "../../cross_site/cross_site.html", False),
        ("Methods and glossary", "../../methods.html", False),
    ]
    values = dict(
        study="Link worker evaluation",
        site="Riverside PCN (A)",
        period="January 2023 to December 2024",
        extracted="25 November 2026",
        report_date="26 November 2026",
        config_hash="a" * 64,
        data_hash="b" * 64,
        rule="Small numbers are hidden.",
        demo=True,
        nav=nav,
        methods_href="../../methods.html",
    )
    return PageContext(**(values | kw))


@pytest.fixture
def page(tmp_path):
    return render_html(executed_notebook(tmp_path / "nb.ipynb"), "Who is referred", context())


def external_urls(page: str) -> list[str]:
    return [
        u
        for u in re.findall(r"""(?:src|href)\s*=\s*["']?([^"'\s>]+)""", page, re.I)
        if re.match(r"(https?:)?//", u)
    ]


def test_page_is_self_contained(page):
    assert "<script" not in page.lower()
    assert external_urls(page) == []
    assert "@import" not in page and "url(http" not in page
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")


def test_no_code_parameters_tracebacks_or_metadata(page):
    for forbidden in (
        "from linkeval",
        "report.headline",
        "Report(config)",
        "secret/path.yaml",
        "/data/study.yaml",
        "Parameters",
        "papermill",
        "Traceback",
        "ZeroDivisionError",
        "UserWarning",
        "Section(name=",
        "execution_count",
        "IPython.core.display",
        "output-checks",
    ):
        assert forbidden not in page, forbidden


def test_outputs_and_markdown_rendered(page):
    assert '<td class="num">405</td>' in page
    assert "<em>emphasis</em>" in page
    assert '<h2 id="headline-figures">Headline figures</h2>' in page
    assert "<table>" in page  # a markdown table in a markdown cell
    # Markdown a notebook displays is rendered with any HTML in it escaped
    assert "<strong>405</strong>" in page and "&lt;script&gt;" in page
    assert page.count('src="data:image/png;base64,') == 2
    assert 'alt="Referrals per month"' in page
    assert "hello from stdout" not in page  # printed text is debugging, not report


def test_navigation_links(page):
    nav = re.search(r'<nav class="le-nav".*?</nav>', page, re.S).group(0)
    for href in (
        "../../index.html",
        "site_descriptive.html",
        "site_change.html",
        "../../cross_site/cross_site.html",
        "../../methods.html",
    ):
        assert f'href="{href}"' in nav
    assert 'aria-current="page">Who is referred<' in nav
    assert 'href="#headline-figures"' in page  # on-this-page contents


def test_standard_header_and_footer_when_the_notebook_has_none(page):
    header = re.search(r'<header class="le-header">.*?</header>', page, re.S).group(0)
    for text in (
        "Link worker evaluation",
        "<h1>Who is referred</h1>",
        "Riverside PCN (A)",
        "January 2023 to December 2024",
        "25 November 2026",
        "26 November 2026",
        "Small numbers are hidden.",
    ):
        assert text in header
    footer = re.search(r'<footer class="le-footer">.*?</footer>', page, re.S).group(0)
    for text in (
        "January 2023 to December 2024",
        "Data extracted:",
        "linkeval version:",
        "a" * 12,
        "b" * 12,
        'href="../../methods.html"',
    ):
        assert text in footer
    assert "a" * 13 not in footer
    assert page.count('class="le-demo"') == 1
    assert "<title>Who is referred - Riverside PCN (A) - Link worker evaluation</title>" in page


def test_notebook_header_is_kept_not_doubled(tmp_path):
    nb = executed_notebook(tmp_path / "nb.ipynb", header=True)
    page = render_html(nb, "Who is referred", context())
    assert page.count('class="le-header"') == 1 and "<h1>Notebook title</h1>" in page
    assert page.count('class="le-demo"') == 1  # the notebook's banner, not a second one
    assert page.count(STYLE) == 0  # the page's own CSS is in <head> once
    toc = page.index('class="le-toc"')
    assert page.index('class="le-header"') < toc < page.index('id="headline-figures"')


def test_print_rules(page):
    css = page[page.index("<style>") : page.index("</style>")]
    assert "@media print" in css and "size:A4" in css
    assert re.search(r"h1,h2,h3[^{]*\{[^}]*break-after:avoid", css)
    assert re.search(r"table,img[^{]*\{[^}]*break-inside:avoid", css)
    assert re.search(r"\.le-nav[^{]*\{display:none", css)
    assert "overflow:visible" in css
    assert 'content:"DEMO - SYNTHETIC DATA"' in css  # on every printed page of a demo
    assert "DEMO - SYNTHETIC DATA" not in html_page("t", "", context(demo=False))


def test_render_without_context_still_makes_a_page(tmp_path):
    page = render_html(executed_notebook(tmp_path / "nb.ipynb"), "floor")
    assert "<h1>floor</h1>" in page and "<nav" not in page.split("<main>")[0]
    assert "DEMO" not in page


@pytest.mark.parametrize(
    "value, decimals, shown",
    [
        (-0.04, 1, "0.0"),
        (-0.0, 1, "0.0"),
        (np.float64(-0.0), 1, "0.0"),
        (-0.4, 0, "0"),
        (-1e-9, 2, "0.00"),
        (-0.0, 0, "0"),
        (-0.06, 1, "-0.1"),
        (-1.5, 1, "-1.5"),
        (1234.5, 1, "1,234.5"),
        (-1234.0, 0, "-1,234"),
        ("*", 1, "*"),
        (np.nan, 1, "-"),
        (12, 1, "12"),
        (True, 1, "yes"),
    ],
)
def test_fmt(value, decimals, shown):
    assert fmt(value, decimals) == shown


def test_fmt_p():
    assert fmt_p(0.0004) == "<0.001"
    assert fmt_p(0.0123) == "0.012"
    assert fmt_p("*") == "*"
    assert fmt_p(np.nan) == "-"


def test_dates():
    assert long_date("2026-11-05T21:54:57+00:00") == "5 November 2026"
    assert long_date("2026-11-25") == "25 November 2026"
    assert long_date("") == "-"
    assert month_range("2023-01-05", "2024-12-30") == "January 2023 to December 2024"
    assert month_range("2024-03-01", "2024-03-30") == "March 2024"
    assert month_range(None, None) == "no referrals"
