"""The index, the methods note, page navigation, and the batch's folder handling."""

from __future__ import annotations

import os
import re
import signal
import stat
import time

import pytest

from linkeval.report import batch, job
from linkeval.report.index import (
    JobResult,
    headline_figures,
    index_page,
    methods_page,
    page_context,
    run_facts,
)


def results(cfg, cross_ok=True, failed_site=None) -> list[JobResult]:
    out = [
        JobResult(
            "cross_site",
            None,
            cross_ok,
            1.0,
            "" if cross_ok else "cell 9: Boom",
            "cross_site/cross_site.html" if cross_ok else "",
        )
    ]
    for code in cfg.sites:
        for nb in ("site_descriptive", "site_change"):
            ok = not (code == failed_site and nb == "site_change")
            out.append(
                JobResult(
                    nb,
                    code,
                    ok,
                    1.0,
                    "" if ok else "cell 4: KeyError: 'x'",
                    f"sites/{code}/{nb}.html" if ok else "",
                )
            )
    return out


@pytest.fixture(scope="module")
def cfg(demo_config, demo_processed):
    return demo_config


@pytest.fixture(scope="module")
def facts(cfg):
    return run_facts(cfg)


@pytest.fixture(scope="module")
def index(cfg, facts):
    return index_page(cfg, results(cfg), facts)


def test_run_facts(cfg, facts):
    assert re.fullmatch(r"[A-Z][a-z]+ \d{4} to [A-Z][a-z]+ \d{4}", facts.period)
    assert re.fullmatch(r"\d{1,2} [A-Z][a-z]+ \d{4}", facts.extracted)
    assert set(facts.site_periods) == set(cfg.sites)
    assert len(facts.data_hash) == 64


def test_index_links_every_site_page_cross_site_and_methods(cfg, index):
    links = set(re.findall(r"href=['\"]([^'\"#]+)['\"]", index))
    wanted = {
        f"sites/{c}/{nb}.html" for c in cfg.sites for nb in ("site_descriptive", "site_change")
    }
    assert wanted | {"cross_site/cross_site.html", "methods.html"} <= links
    assert all(not re.match(r"(https?:)?//", u) for u in links)
    assert "<script src" not in index


def test_index_summary_period_rule_and_demo(cfg, facts, index):
    assert "DEMO - SYNTHETIC DATA" in index
    assert facts.period in index and facts.extracted in index
    assert "Small numbers are hidden" in index
    assert f"All {2 * len(cfg.sites) + 1} report pages were made in this run." in index
    summary = re.search(r'<section class="le-summary".*?</section>', index, re.S).group(0)
    assert f"All {len(cfg.sites)} sites" in summary
    assert "Change in mental wellbeing (SWEMWBS), 95% CI" in summary
    assert "Across all sites, mental wellbeing (SWEMWBS) changed by" in summary


def test_every_number_on_the_index_is_disclosure_controlled(cfg, index):
    table = re.search(r'<table class="le-table" id="le-sites">.*?</table>', index, re.S).group(0)
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", table.split("<tbody>")[1], re.S)
    assert len(rows) == len(cfg.sites)
    counts = [
        c
        for row in rows
        for c in re.findall(r"<td class='num'[^>]*>([^<]*)</td>", row)
        if "(" not in c
    ]
    assert counts and all(c == "*" or int(c.replace(",", "")) % 5 == 0 for c in counts)
    heads = headline_figures(cfg, change=True).set_index("site")
    for code in cfg.sites:
        for col in ("referred", "engaged", "paired follow-up"):
            value = heads.loc[code, col]
            assert value == "*" or value % 5 == 0


def test_sort_values_come_from_shown_numbers(index):
    for key, shown in re.findall(r"<td class='num' data-sort='([^']*)'>([^<]*)</td>", index):
        if shown == "*":
            assert key == "0.5"
        elif shown == "-":
            assert key == ""
        else:
            assert float(key) == float(shown.split(" ")[0].replace(",", "").lstrip("+"))


def test_index_works_with_scripts_off_and_sorts_with_them_on(index):
    assert re.search(r'<div id="le-filter"[^>]*\bhidden\b', index)  # no dead box without JS
    scripts = re.findall(r"<script\b([^>]*)>", index)
    assert scripts == [""]  # one inline script, nothing loaded
    assert index.index("<script") > index.index('id="le-sites"')


def test_failures_are_shown_and_not_linked(cfg, facts):
    page = index_page(cfg, results(cfg, cross_ok=False, failed_site="B"), facts)
    assert "Cross-site report failed" in page and "cell 9: Boom" in page
    assert "KeyError" in page and "sites/B/site_change.html" not in page
    assert "sites/B/site_descriptive.html" in page
    assert "1 site with a page that could not be made</span>: <a href='#site-B'>" in page
    assert "id='site-B'" in page
    assert "Wellbeing change" not in page  # the change only where the cross-site report ran
    assert "not shown because the cross-site report failed" in page


def test_page_context_navigation(cfg, facts):
    ctx = page_context(cfg, facts, "sites/A/site_change.html", "A")
    hrefs = {label: href for label, href, _ in ctx.nav}
    assert hrefs["Reports index"] == "../../index.html"
    assert hrefs["Who is referred"] == "site_descriptive.html"
    assert hrefs["Change in wellbeing"] == "site_change.html"
    assert hrefs["All sites compared"] == "../../cross_site/cross_site.html"
    assert hrefs["Methods and glossary"] == "../../methods.html"
    assert [label for label, _, current in ctx.nav if current] == ["Change in wellbeing"]
    assert ctx.period == facts.site_periods["A"] and ctx.site.endswith("(A)")
    cross = page_context(cfg, facts, "cross_site/cross_site.html")
    assert {h for _, h, _ in cross.nav} == {"../index.html", "cross_site.html", "../methods.html"}
    assert cross.period == facts.period and cross.site is None


def test_methods_page(cfg, facts):
    page = methods_page(cfg, facts)
    for term in (
        "p-value",
        "95% confidence interval",
        "Standardised change",
        "Reliable change",
        "Minimal important difference",
        "Multilevel model",
        "Reference category",
        "Disclosure control",
        "before-and-after comparison",
        "Regression to the mean",
        "Small numbers are hidden",
    ):
        assert term in page, term
    assert "<script" not in page and 'href="index.html"' in page
    assert 'id="design"' in page  # the index links here


# -- the batch's folder handling ----------------------------------------------------------------
def test_reports_folder_readable_as_umask_allows(tmp_path):
    stage = tmp_path / "stage"
    (stage / "sites" / "A").mkdir(parents=True)
    os.chmod(stage, 0o700)
    (stage / "sites" / "A" / "page.html").write_text("x")
    os.chmod(stage / "sites" / "A" / "page.html", 0o600)
    old = os.umask(0o027)
    try:
        batch._make_readable(stage)
    finally:
        os.umask(old)
    assert stat.S_IMODE(stage.stat().st_mode) == 0o750
    assert stat.S_IMODE((stage / "sites" / "A").stat().st_mode) == 0o750
    assert stat.S_IMODE((stage / "sites" / "A" / "page.html").stat().st_mode) == 0o640


def test_sigterm_guard_raises_then_restores_the_previous_handler():
    def previous(signum, frame):
        pass

    before = signal.signal(signal.SIGTERM, previous)
    try:
        with (
            pytest.raises(batch.Stopped, match="previous reports are unchanged"),
            batch._SigtermGuard(),
        ):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(2)
        assert signal.getsignal(signal.SIGTERM) is previous
        # While the new folder is swapped in, a SIGTERM waits until the swap is done.
        with (
            pytest.raises(batch.Stopped, match="after the new reports were written"),
            batch._SigtermGuard() as guard,
        ):
            guard.disarm()
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.2)
            assert guard.pending
        assert signal.getsignal(signal.SIGTERM) is previous
    finally:
        signal.signal(signal.SIGTERM, before)


def test_failed_page_links_back(cfg, facts):
    notebook = job.Job("site_change", "A", "Change in wellbeing and loneliness")
    page = job.failed_page(notebook, page_context(cfg, facts, notebook.page, "A"))
    assert "could not be made" in page and "href='../../index.html'" in page
    assert 'href="site_descriptive.html"' in page
