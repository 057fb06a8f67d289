"""End to end: synthetic study -> clean -> reports (issue 5). Slow: runs real notebooks."""

from __future__ import annotations

import re
import shutil
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


def test_index_and_every_linked_page(small_run):
    study, folder, code = small_run
    assert code == 0
    index = (folder / "index.html").read_text()
    assert "DEMO - SYNTHETIC DATA" in index
    links = re.findall(r"href='([^']+\.html)'", index)
    assert len(links) == 2 * 2 + 1  # two pages per site and the cross-site page
    for link in links:
        page = (folder / link).read_text()
        assert "DEMO - SYNTHETIC DATA" in page
        assert "Small numbers are hidden" in page
        # no code, no tracebacks, no parameters, no papermill metadata
        for forbidden in ("Traceback", "from linkeval", "report = Report", "papermill",
                          "injected-parameters", "Warning", '<div class="highlight'):
            assert forbidden not in page, (link, forbidden)
        code_cells = re.findall(r'class="jp-Cell jp-CodeCell[^"]*"', page)
        assert code_cells and all("jp-mod-noInput" in c for c in code_cells)
        images = re.findall(r"<img [^>]*>", page)
        assert images and all('src="data:image/png;base64,' in i and 'alt="' in i
                              for i in images)  # figures embedded, with alt text
        assert "No description has been provided" not in page


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
    nb.cells.insert(2, nbformat.v4.new_code_cell(
        'if site == "B":\n    raise ValueError("synthetic failure for the test")'))
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
    assert isinstance(pd.read_json(study.config_path.parent / "reports" / "latest" / "run.json"),
                      pd.DataFrame)


def test_explore_notebook_runs_unchanged_on_a_cleaned_study(small_run, tmp_path):
    import papermill as pm

    study, _, _ = small_run
    out = tmp_path / "explore.ipynb"
    pm.execute_notebook(ROOT / "notebooks" / "explore.ipynb", out, cwd=str(ROOT / "notebooks"),
                        parameters={"config": str(study.config_path)}, progress_bar=False)
    nb = nbformat.read(out, as_version=4)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
              if o.output_type == "error"]
    assert errors == []
    assert any(c.outputs for c in nb.cells if c.cell_type == "code")
