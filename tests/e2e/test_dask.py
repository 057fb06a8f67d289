"""--scheduler: clean and reports as tasks on a Dask cluster (docs/design.md, 'Runs and atomic
writes'). A two-worker LocalCluster of real processes stands in for the cluster; the report
batch runs small stand-in notebooks (real kernels, a few cells) so the machinery is tested in
seconds: the real notebooks are run by test_reports.py, and they run the same way here."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import dask
import nbformat
import pandas as pd
import pytest
import yaml
from distributed import LocalCluster

from linkeval import parallel
from linkeval.cleaning import clean_study
from linkeval.cli import main
from linkeval.config import load_config
from linkeval.errors import LinkevalError
from linkeval.io import state_dir
from linkeval.report.batch import run_reports
from linkeval.synthetic import generate_study

KEY = "dask-test-key-0123456789abcdef"
TODAY = pd.Timestamp("2026-11-24")
PROGRESS = re.compile(r"\[(\d+)/(\d+)\] (A|B|all sites) (\w+): (done|FAILED \((.*)\)) in \d+\.\ds")


@pytest.fixture(scope="module")
def cluster():
    """Two single-thread worker processes; the key is in their environment, as it would be on
    a worker started from the shell that ran `linkeval clean`. A task whose worker dies fails
    at once (allowed-failures 0) and each worker holds one task at a time (saturation 1), so
    that killing one worker fails exactly one job."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LINKEVAL_KEY", KEY)
        settings = {
            "distributed.scheduler.allowed-failures": 0,
            "distributed.scheduler.worker-saturation": 1.0,
        }
        with (
            dask.config.set(settings),
            LocalCluster(
                n_workers=2, processes=True, threads_per_worker=1, dashboard_address=":0"
            ) as local,
        ):
            yield local.scheduler_address


@pytest.fixture(scope="module")
def study(cluster, tmp_path_factory):
    """Two small synthetic sites, cleaned through the scheduler by the CLI."""
    study = generate_study(tmp_path_factory.mktemp("dask"), n_referrals=300, n_sites=2, seed=1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LINKEVAL_KEY", KEY)
        assert main(["clean", "--config", str(study.config_path), "--scheduler", cluster]) == 0
    return study


def notebooks(folder, change_cell: str = ""):
    """Stand-ins for the three report notebooks: parameters, then a cell that fails if the key
    reached the kernel or the config is not there (on the shared file system); ``change_cell``
    is added to site_change."""
    folder.mkdir()
    for name, params in (
        ("site_descriptive", 'config = ""\nsite = ""'),
        ("site_change", 'config = ""\nsite = ""'),
        ("cross_site", 'config = ""'),
    ):
        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = {
            "name": "python3",
            "display_name": "Python 3",
            "language": "python",
        }
        first = nbformat.v4.new_code_cell(params)
        first.metadata["tags"] = ["parameters"]
        nb.cells = [
            first,
            nbformat.v4.new_code_cell(
                "import os\n"
                'assert "LINKEVAL_KEY" not in os.environ, "the key reached the kernel"\n'
                "assert os.path.isfile(config)"
            ),
            nbformat.v4.new_markdown_cell(f"# {name}"),
        ]
        if name == "site_change" and change_cell:
            nb.cells.append(nbformat.v4.new_code_cell(change_cell))
        nbformat.write(nb, folder / f"{name}.ipynb")
    return folder


def test_clean_on_the_cluster_gives_the_tables_of_a_local_clean(study, cluster):
    cfg = load_config(study.config_path)
    local = clean_study(cfg, KEY.encode(), today=TODAY)
    remote = clean_study(cfg, KEY.encode(), today=TODAY, scheduler=cluster)
    assert sorted(remote.tables) == sorted(local.tables)
    for name, table in local.tables.items():
        pd.testing.assert_frame_equal(remote.tables[name], table, obj=name)
    for part in ("log", "summary", "unmapped", "files"):
        pd.testing.assert_frame_equal(getattr(remote, part), getattr(local, part), obj=part)
    assert remote.failed == {} and remote.key_fingerprint == local.key_fingerprint
    assert not list(state_dir(cfg.processed_dir).glob("parts-*"))  # part files removed


def test_a_failing_site_fails_alone_as_it_does_locally(study, cluster):
    config = yaml.safe_load(study.config_path.read_text())
    config["sites"]["B"]["sources"][0]["columns"]["referral_date"] = "No such column"
    broken = study.config_path.with_name("broken.yaml")
    broken.write_text(yaml.safe_dump(config))
    cfg = load_config(broken)
    local = clean_study(cfg, KEY.encode(), today=TODAY)
    remote = clean_study(cfg, KEY.encode(), today=TODAY, scheduler=cluster)
    assert list(remote.failed) == ["B"] and remote.failed == local.failed
    assert "No such column" in remote.failed["B"]
    assert set(remote.tables["referrals"]["site"]) == {"A"}
    pd.testing.assert_frame_equal(remote.tables["referrals"], local.tables["referrals"])


def _run_json(folder) -> list[tuple]:
    runs = json.loads((folder / "run.json").read_text())
    return sorted((r["site"] or "", r["notebook"], r["ok"], r["error"], r["html"]) for r in runs)


def _files(folder) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def test_reports_on_the_cluster_match_a_local_run(study, cluster, tmp_path, capsys, monkeypatch):
    failing = 'if site == "B":\n    raise ValueError("synthetic failure for the test")'
    monkeypatch.setenv("LINKEVAL_NOTEBOOKS", str(notebooks(tmp_path / "nb", failing)))
    monkeypatch.delenv("LINKEVAL_KEY", raising=False)
    cfg = load_config(study.config_path)
    local_lines: list[str] = []
    local = run_reports(cfg, jobs=2, run="local", progress=local_lines.append)

    code = main(["report", "--config", str(study.config_path), "--scheduler", cluster])
    out, err = capsys.readouterr()
    assert code == 1 and "1 report(s) failed" in err and "Traceback" not in err

    reports = cfg.reports_dir
    assert _files(reports / "latest") == _files(reports / "local")
    assert _run_json(reports / "latest") == _run_json(reports / "local")
    failed = [r[:2] + r[3:] for r in _run_json(reports / "latest") if not r[2]]
    assert failed == [("B", "site_change", failed[0][2], "")]
    assert "ValueError: synthetic failure for the test" in failed[0][2]
    assert len(local.failed) == 1
    checks = "output_checks.csv"
    assert (reports / "latest" / checks).read_text() == (reports / "local" / checks).read_text()
    index = (reports / "latest" / "index.html").read_text()
    assert "synthetic failure for the test" in index
    # The same progress lines: [i/5], in order, each job once, with the same outcome.
    remote_lines = [line for line in out.splitlines() if line.startswith("[")]
    for lines in (local_lines[:-1], remote_lines):
        found = [PROGRESS.fullmatch(line) for line in lines]
        assert all(found), lines
        assert [int(m[1]) for m in found] == [1, 2, 3, 4, 5]
    strip = lambda lines: sorted(PROGRESS.sub(r"\3 \4: \5", line) for line in lines)  # noqa: E731
    assert strip(remote_lines) == strip(local_lines[:-1])
    assert local_lines[-1].startswith("reports written in") and "reports written in" in out
    assert not list(reports.glob(".latest.*")) and not list(reports.glob(".local.*"))


def test_a_lost_worker_fails_its_notebook_and_the_others_finish(
    study, cluster, tmp_path, capsys, monkeypatch
):
    kill = 'if site == "A":\n    import os, signal\n    os.kill(os.getppid(), signal.SIGKILL)'
    monkeypatch.setenv("LINKEVAL_NOTEBOOKS", str(notebooks(tmp_path / "nb", kill)))
    start = time.monotonic()
    code = main(["report", "--config", str(study.config_path), "--scheduler", cluster])
    out, err = capsys.readouterr()
    assert code == 1 and "Traceback" not in err
    assert time.monotonic() - start < 120
    lines = [line for line in out.splitlines() if line.startswith("[")]
    assert len(lines) == 5
    lost = [line for line in lines if "FAILED" in line]
    assert len(lost) == 1, lines
    assert "A site_change: FAILED (the Dask worker running it was lost" in lost[0]
    page = study.config_path.parent / "reports" / "latest" / "sites" / "A" / "site_change.html"
    assert "could not be made" in page.read_text()


def test_a_bad_scheduler_address_is_one_line(study, capsys, monkeypatch):
    monkeypatch.setattr(parallel, "CONNECT_SECONDS", 2)
    monkeypatch.setenv("LINKEVAL_KEY", KEY)
    processed = study.config_path.parent / "processed"
    before = (processed / "manifest.json").read_text()
    for command, address in (
        ("clean", "tcp://127.0.0.1:9"),
        ("report", "tcp://127.0.0.1:9"),
        ("report", "no-port"),
    ):
        start = time.monotonic()
        code = main([command, "--config", str(study.config_path), "--scheduler", address])
        _, err = capsys.readouterr()
        assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
        assert err.startswith(f"linkeval: error: {address}: cannot reach the Dask scheduler (")
        assert err.rstrip().endswith("start one with `dask scheduler` or drop --scheduler")
        assert time.monotonic() - start < 10  # CONNECT_SECONDS (10 by default, 2 here)
    assert (processed / "manifest.json").read_text() == before
    assert not list(state_dir(processed).glob("parts-*"))
    assert not list((study.config_path.parent / "reports").glob(".latest.*"))


def test_a_bad_address_from_the_shell_is_one_line(study):
    done = subprocess.run(
        [sys.executable, "-m", "linkeval.cli", "report", "--config", str(study.config_path)]
        + ["--scheduler", "no-port"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == (
        "linkeval: error: no-port: cannot reach the Dask scheduler (missing port number in "
        "address 'no-port'); start one with `dask scheduler` or drop --scheduler\n"
    )


def test_a_cluster_without_workers_is_one_line(monkeypatch):
    monkeypatch.setattr(parallel, "NO_WORKER_SECONDS", 1)
    with (
        LocalCluster(n_workers=0, processes=False, dashboard_address=":0") as empty,
        pytest.raises(LinkevalError, match="has no workers") as info,
    ):
        parallel.connect(empty.scheduler_address)
    assert f"dask worker {empty.scheduler_address}" in str(info.value)


def test_a_worker_that_cannot_see_a_folder_says_so(cluster, tmp_path):
    with parallel.Cluster(cluster) as pool:
        futures = {pool.submit(parallel.check_shared, tmp_path, tmp_path / "gone"): "job"}
        [(task, future)] = list(parallel.finished(pool, futures))
        with pytest.raises(parallel.NotShared, match="gone: not found on Dask worker"):
            future.result()
