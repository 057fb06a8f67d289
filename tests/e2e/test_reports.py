"""End to end: synthetic study -> clean -> reports (issue 5). Slow: runs real notebooks."""

from __future__ import annotations

import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from linkeval.cli import main
from linkeval.synthetic import generate_study

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """Two small synthetic sites, cleaned and reported with the real notebooks."""
    out = tmp_path_factory.mktemp("e2e")
    study = generate_study(out, n_referrals=500, n_sites=2, seed=5)
    assert main(["clean", "--config", str(study.config_path)]) == 0
    code = main(["report", "--config", str(study.config_path), "--jobs", "2"])
    return study, out / "reports" / "latest", code


HREF = re.compile(r"""<a\b[^>]*\bhref\s*=\s*["']([^"']+)["']""", re.I)
RESOURCE = re.compile(r"""\b(?:src|href|action|srcset|poster|data)\s*=\s*["']?([^"'\s>]+)""", re.I)


def test_index_and_every_linked_page(small_run):
    study, folder, code = small_run
    assert code == 0
    index = (folder / "index.html").read_text()
    assert "DEMO - SYNTHETIC DATA" in index
    links = {h.split("#")[0] for h in HREF.findall(index) if not h.startswith("#")}
    pages = {
        f"sites/{s}/{nb}.html" for s in ("A", "B") for nb in ("site_descriptive", "site_change")
    }
    assert pages | {"cross_site/cross_site.html", "methods.html"} <= links
    for link in pages | {"cross_site/cross_site.html"}:
        page = (folder / link).read_text()
        assert "DEMO - SYNTHETIC DATA" in page
        assert "Small numbers are hidden" in page
        # no code, no tracebacks, no parameters, no papermill metadata, no notebook chrome
        for forbidden in (
            "Traceback",
            "from linkeval",
            "report = Report",
            "papermill",
            "injected-parameters",
            "Warning",
            '<div class="highlight',
            "jp-Cell",
            "Section(",
            "<script",
        ):
            assert forbidden not in page, (link, forbidden)
        images = re.findall(r"<img [^>]*>", page)
        assert images and all(
            'src="data:image/png;base64,' in i and 'alt="' in i for i in images
        )  # figures embedded, with alt text
        assert "No description has been provided" not in page
        assert "Period covered" in page and "Data extracted" in page


def test_pages_are_self_contained_and_every_link_resolves(small_run):
    _, folder, _ = small_run
    pages = sorted(folder.rglob("*.html"))
    assert len(pages) == 2 * 2 + 1 + 2  # site pages, cross-site, index, methods
    ids = {p.resolve(): set(re.findall(r"""\bid=["']([^"']+)["']""", p.read_text())) for p in pages}
    for page in pages:
        text = page.read_text()
        name = page.relative_to(folder).as_posix()
        for url in RESOURCE.findall(text):
            assert not re.match(r"(?i)(https?:|ftp:|//|file:)", url), (name, url)
        assert "@import" not in text and not re.search(r"url\(\s*['\"]?(https?:)?//", text)
        assert not re.search(r"<script[^>]*\bsrc", text, re.I)
        for href in HREF.findall(text):
            target, _, anchor = href.partition("#")
            resolved = (page.parent / target).resolve() if target else page.resolve()
            assert resolved.is_file(), (name, href)
            assert folder.resolve() in resolved.parents, (name, href)
            if anchor:
                assert anchor in ids[resolved], (name, href)
        # every page leads back to the index, the cross-site page and the methods note
        hrefs = {
            (page.parent / h.split("#")[0]).resolve()
            for h in HREF.findall(text)
            if not h.startswith("#")
        }
        for target in ("index.html", "cross_site/cross_site.html", "methods.html"):
            assert (folder / target).resolve() in hrefs | {page.resolve()}, (name, target)
        if name.startswith("sites/"):
            other = "site_change.html" if "descriptive" in name else "site_descriptive.html"
            assert (page.parent / other).resolve() in hrefs, name
        # one file that weighs little: the page without its figures is small
        assert len(re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", text)) < 60_000, name


def test_reports_are_readable_by_the_study_group(small_run):
    _, folder, _ = small_run
    mask = os.umask(0)
    os.umask(mask)
    for path in [folder, *folder.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o777 if path.is_dir() else 0o666) & ~mask, (path, oct(mode))


def test_executed_notebooks_kept_for_analysts(small_run):
    _, folder, _ = small_run
    executed = sorted(folder.rglob("*.ipynb"))
    assert len(executed) == 5
    nb = nbformat.read(executed[0], as_version=4)
    assert any(c.get("outputs") for c in nb.cells if c.cell_type == "code")


def test_no_identifiers_in_reports(small_run):
    study, folder, _ = small_run
    text = "\n".join(p.read_text() for p in folder.rglob("*.html"))
    text = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", text)  # images are pixels
    digits = set(re.findall(r"\d{10}", re.sub(r"[ \-]", "", text)))
    assert not digits & set(study.truth["referrals"]["nhs_number"].dropna())
    assert "TEST PATIENT" not in text
    assert "ZZ99" not in text


def test_small_counts_are_suppressed(small_run):
    _, folder, _ = small_run
    page = (folder / "sites" / "A" / "site_descriptive.html").read_text()
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", page)
    numbers = [int(c.replace(",", "")) for c in cells if re.fullmatch(r"[\d,]+", c)]
    # Counts above 7 are rounded to the nearest 5 (small labels such as IMD quintiles 1-5
    # are also whole numbers, so only larger cells are checked); '*' marks hidden ones.
    counts = [n for n in numbers if n > 10]
    assert counts and all(n % 5 == 0 for n in counts)
    assert "*" in cells


def test_a_failing_site_is_reported_and_the_others_finish(tmp_path, small_run, monkeypatch):
    study, _, _ = small_run
    broken = tmp_path / "notebooks"
    shutil.copytree(ROOT / "notebooks", broken)
    nb = nbformat.read(broken / "site_change.ipynb", as_version=4)
    nb.cells.insert(
        2,
        nbformat.v4.new_code_cell(
            'if site == "B":\n    raise ValueError("synthetic failure for the test")'
        ),
    )
    nbformat.write(nb, broken / "site_change.ipynb")
    monkeypatch.setenv("LINKEVAL_NOTEBOOKS", str(broken))
    before = (study.config_path.parent / "reports" / "latest" / "index.html").read_text()
    code = main(["report", "--config", str(study.config_path), "--site", "B", "--jobs", "2"])
    assert code == 1
    index = (study.config_path.parent / "reports" / "latest" / "index.html").read_text()
    assert "failed" in index and "synthetic failure for the test" in index
    assert "site_descriptive.html" in index and "sites/A/site_change.html" in index
    assert before != index
    monkeypatch.delenv("LINKEVAL_NOTEBOOKS")
    # Rebuild site B so the module's other tests see a healthy run.
    assert main(["report", "--config", str(study.config_path), "--site", "B", "--jobs", "2"]) == 0
    assert isinstance(
        pd.read_json(study.config_path.parent / "reports" / "latest" / "run.json"), pd.DataFrame
    )


def test_explore_notebook_runs_unchanged_on_a_cleaned_study(small_run, tmp_path):
    import papermill as pm

    study, _, _ = small_run
    out = tmp_path / "explore.ipynb"
    pm.execute_notebook(
        ROOT / "notebooks" / "explore.ipynb",
        out,
        cwd=str(ROOT / "notebooks"),
        parameters={"config": str(study.config_path)},
        progress_bar=False,
    )
    nb = nbformat.read(out, as_version=4)
    errors = [
        o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"
    ]
    assert errors == []
    assert any(c.outputs for c in nb.cells if c.cell_type == "code")


def test_sigterm_leaves_no_staging_folder_and_the_previous_reports(small_run):
    study, folder, _ = small_run
    before = {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "linkeval.cli",
            "report",
            "--config",
            str(study.config_path),
            "--jobs",
            "2",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not list(folder.parent.glob(".latest.staging-*")):
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        time.sleep(4)  # workers running notebooks, writing into the staging folder
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, err
    assert "SIGTERM" in err and "Traceback" not in err
    assert not list(folder.parent.glob(".latest.*"))
    after = {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    assert after == before


def test_a_dead_kernel_is_reported_as_died_and_not_retried(small_run, tmp_path, monkeypatch):
    import papermill

    from linkeval.report import job

    study, _, _ = small_run
    source = tmp_path / "notebooks"
    shutil.copytree(ROOT / "notebooks", source)
    nb = nbformat.read(source / "site_change.ipynb", as_version=4)
    nb.cells.insert(
        1, nbformat.v4.new_code_cell("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)")
    )
    nbformat.write(nb, source / "site_change.ipynb")
    calls = []
    real = papermill.execute_notebook
    monkeypatch.setattr(
        papermill, "execute_notebook", lambda *a, **k: calls.append(1) or real(*a, **k)
    )
    monkeypatch.setattr(job, "_quiet", lambda log: None)
    stage = tmp_path / "stage"
    notebook = job.Job("site_change", "A", "Change in wellbeing and loneliness")
    result = job.run_job(source, stage, notebook, str(study.config_path), tmp_path)
    assert not result.ok and "kernel died" in result.error
    assert len(calls) == 1
    assert "could not be made" in (stage / "sites" / "A" / "site_change.html").read_text()
