"""End to end: report runs killed at every step and mid-notebook, real kernels, the key kept
out of them, a read-only processed folder, and the fault script (issue 13; docs/design.md,
'Runs and atomic writes'). Slow: starts kernels."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
import uuid
from pathlib import Path

import nbformat
import pytest

from benchmarks.fault_injection import (
    MARKER,
    check_processed,
    check_reports,
    lasting_processes,
    leftovers,
    marked_processes,
    minimal_notebooks,
)
from benchmarks.fault_injection import run as fault_script
from linkeval.io import current_version, state_dir
from linkeval.synthetic import generate_study

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """Two small synthetic sites, cleaned; minimal notebooks (kernels start, pages are made)."""
    out = tmp_path_factory.mktemp("faults")
    made = generate_study(out / "study", n_referrals=400, n_sites=2, seed=5)
    notebooks = minimal_notebooks(out / "notebooks")
    env = dict(os.environ, LINKEVAL_NOTEBOOKS=str(notebooks))
    env.pop("LINKEVAL_FAULT_AT", None)
    assert linkeval("clean", made.config_path, env=env).returncode == 0
    return made, out / "study", env


def linkeval(kind: str, config: Path, env: dict, *extra) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "linkeval.cli", kind, "--config", str(config), *extra],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )


def snapshot(folder: Path) -> dict:
    return {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("step", ["report:written", "report:staged", "report:switched"])
def test_a_report_killed_at_each_step_leaves_a_whole_run(study, step):
    made, folder, env = study
    latest = folder / "reports" / "latest"
    assert linkeval("report", made.config_path, env, "--jobs", "2").returncode == 0
    marker = uuid.uuid4().hex
    proc = linkeval(
        "report",
        made.config_path,
        dict(env, LINKEVAL_FAULT_AT=step, **{MARKER: marker}),
        "--jobs",
        "2",
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert check_reports(latest) is None
    assert lasting_processes(marker) == []
    assert linkeval("report", made.config_path, env, "--jobs", "2").returncode == 0
    assert leftovers(folder / "processed", latest) == []


def test_a_report_killed_mid_notebook_leaves_no_worker_or_kernel(study, tmp_path):
    made, folder, env = study
    latest = folder / "reports" / "latest"
    assert linkeval("report", made.config_path, env, "--jobs", "2").returncode == 0
    before = snapshot(latest)
    slow = minimal_notebooks(tmp_path / "slow")
    for path in slow.glob("*.ipynb"):
        nb = nbformat.read(path, as_version=4)
        nb.cells.append(nbformat.v4.new_code_cell("time.sleep(120)"))
        nbformat.write(nb, path)
    marker = uuid.uuid4().hex
    run_env = dict(env, LINKEVAL_NOTEBOOKS=str(slow), **{MARKER: marker})
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "linkeval.cli",
            "report",
            "--config",
            str(made.config_path),
            "--jobs",
            "2",
        ],
        env=run_env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while not any("ipykernel" in p for p in marked_processes(marker)):
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.5)
        time.sleep(3)  # kernels running the notebooks
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert lasting_processes(marker) == []  # workers and their kernels went with the run
    assert snapshot(latest) == before
    assert linkeval("report", made.config_path, env, "--jobs", "2").returncode == 0
    assert leftovers(folder / "processed", latest) == []


def test_kernels_never_see_the_key(study):
    made, folder, env = study
    keyed = dict(env, LINKEVAL_KEY="a-study-key-kernels-must-not-see-0123")
    assert linkeval("report", made.config_path, keyed, "--jobs", "2").returncode == 0
    executed = sorted((folder / "reports" / "latest").rglob("*.ipynb"))
    assert len(executed) == 5
    for path in executed:
        text = path.read_text()
        assert "key in kernel: False" in text and "must-not-see" not in text


def test_reports_run_from_a_read_only_processed_folder(study):
    made, folder, env = study
    version = current_version(folder / "processed")
    before = snapshot(version)
    paths = [version, *version.rglob("*")]
    for path in paths:
        path.chmod(0o555 if path.is_dir() else 0o444)
    try:
        proc = linkeval("report", made.config_path, env, "--jobs", "2")
    finally:
        for path in paths:
            path.chmod(stat.S_IRWXU if path.is_dir() else stat.S_IRUSR | stat.S_IWUSR)
    assert proc.returncode == 0, proc.stderr
    assert snapshot(version) == before and sorted(version.rglob("*")) == sorted(paths[1:])
    assert list((state_dir(folder / "processed") / "report_logs").glob("*.log"))
    assert check_processed(folder / "processed") is None


def test_the_fault_script_kills_clean_and_report_and_finds_one_version(tmp_path):
    outcome = fault_script(kills=6, seed=3, minimal=True, out=tmp_path, progress=lambda m: None)
    assert outcome.reads > 10
    assert outcome.inconsistent == [] and outcome.orphans == []
    assert outcome.leftovers == [] and outcome.failures == []
    assert any(k["result"] == "killed" for k in outcome.kills)
