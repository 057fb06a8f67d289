"""Notebooks are committed without outputs and declare the parameters papermill injects."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from linkeval.report.batch import PARAMETERS, check_parameters

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))


def test_the_four_notebooks_exist():
    assert {p.stem for p in NOTEBOOKS} == {
        "site_descriptive",
        "site_change",
        "cross_site",
        "explore",
    }


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name}: clear outputs before committing"
            assert cell.execution_count is None, f"{path.name}: clear execution counts"
    assert "papermill" not in nb.metadata


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_one_tagged_parameters_cell_first(path):
    nb = nbformat.read(path, as_version=4)
    tagged = [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    assert all(c.cell_type == "markdown" for c in nb.cells[: tagged[0]])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebooks_stay_thin(path):
    # Logic lives in linkeval: report cells are one or two calls, not analyses.
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            lines = [ln for ln in cell.source.splitlines() if ln.strip() and not ln.startswith("#")]
            assert len(lines) <= 8, f"{path.name}: move this cell's logic into linkeval"


def test_parameter_names_match_what_the_runner_injects():
    check_parameters(NOTEBOOKS[0].parent)
    assert PARAMETERS["site_change"] == {"config", "site"}
