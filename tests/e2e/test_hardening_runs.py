"""Runs that are killed, overlap or find another run's leftovers (issue 13, items 1-4).

A run's outputs are one unit: a complete new version, made current in one atomic step. These
tests kill ``linkeval clean`` (and a report-like build) with SIGKILL at each step
(``LINKEVAL_FAULT_AT``, io.fault_point), then check that a reader finds one whole, consistent
version, that no worker survives, and that the next run removes what the dead one left.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pandas as pd
import pytest

from benchmarks.fault_injection import minimal_notebooks
from linkeval import io
from linkeval.cli import main
from linkeval.config import load_config
from linkeval.errors import LinkevalError
from linkeval.io import (
    current_version,
    folder_lock,
    load_processed,
    remove_leftovers,
    state_dir,
    write_version,
)
from linkeval.parallel import pid_alive
from linkeval.report import batch, job
from linkeval.schema import SCHEMAS
from tests.helpers import REFERRALS_CSV, write_study

KEY_ENV = "LINKEVAL_TEST_KEY"
ENV = dict(os.environ, **{KEY_ENV: "cli-test-key-0123456789"})
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def keyed(monkeypatch):
    monkeypatch.setenv(KEY_ENV, "cli-test-key-0123456789")


def run(args, capsys):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def cli(*args, env=None, **kwargs) -> subprocess.CompletedProcess:
    # A timeout, so that a bug that leaves workers holding the output pipes fails, not hangs.
    return subprocess.run(
        [sys.executable, "-m", "linkeval.cli", *map(str, args)],
        capture_output=True,
        text=True,
        env=env or ENV,
        cwd=ROOT,
        timeout=120,
        **kwargs,
    )


def consistent_version(processed: Path) -> dict:
    """What a reader finds: every table of one version, agreeing with its manifest."""
    version = current_version(processed)
    manifest = json.loads((version / "manifest.json").read_text())
    tables = load_processed(processed)
    for name in SCHEMAS:
        assert len(tables[name]) == manifest["rows"][name], name
    summary = pd.read_parquet(version / "qa" / "summary.parquet")
    assert sorted(summary["site"].unique()) == manifest["sites"]
    return manifest


def leftovers(tmp_path: Path) -> list[str]:
    """Entries of the processed state directory other than the lock and the current version,
    and temporary files anywhere under the study folder."""
    state = state_dir(tmp_path / "processed")
    current = current_version(tmp_path / "processed")
    extra = [p.name for p in state.iterdir() if p.name != "lock" and p.resolve() != current]
    return extra + [str(p) for p in tmp_path.rglob("*.tmp")]


def study_with_new_export(tmp_path: Path, sites=("X", "Y")) -> Path:
    """A study cleaned once, whose site X export has since gained a referral."""
    path = write_study(tmp_path, sites=sites)
    assert cli("clean", "--config", path).returncode == 0
    (tmp_path / "raw" / "x" / "referrals.csv").write_text(
        REFERRALS_CSV + "R7,943 476 5919,10/03/2024,01/02/1950,GP,Debt\n"
    )
    return path


# -- one version, switched atomically (item 1) -----------------------------------------------

STEPS = ["clean:writing", "clean:written", "clean:staged", "clean:switched"]


@pytest.mark.parametrize("step", STEPS)
def test_a_clean_killed_at_any_step_leaves_one_whole_version(tmp_path, step):
    path = study_with_new_export(tmp_path)
    old = consistent_version(tmp_path / "processed")
    proc = cli("clean", "--config", path, env=dict(ENV, LINKEVAL_FAULT_AT=step))
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    now = consistent_version(tmp_path / "processed")
    # Until the switch the previous version is current; from it, the new one.
    assert (now["rows"]["referrals"] == old["rows"]["referrals"]) == (step != "clean:switched")
    # The next run removes whatever the dead one left, and leaves nothing of its own.
    proc = cli("clean", "--config", path)
    assert proc.returncode == 0, proc.stderr
    assert leftovers(tmp_path) == []
    assert consistent_version(tmp_path / "processed")["rows"]["referrals"] == 5  # X 3, Y 2


def test_a_partial_clean_killed_before_the_switch_changes_nothing(tmp_path):
    path = study_with_new_export(tmp_path)
    folder = tmp_path / "processed"
    before = {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    proc = cli(
        "clean", "--config", path, "--site", "X", env=dict(ENV, LINKEVAL_FAULT_AT="clean:staged")
    )
    assert proc.returncode == -signal.SIGKILL
    after = {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    assert after == before


def test_a_report_build_killed_at_any_step_leaves_a_whole_run(tmp_path):
    final = tmp_path / "reports" / "latest"
    script = textwrap.dedent(f"""
        from pathlib import Path
        from linkeval.io import staged_directory
        with staged_directory(Path({str(final)!r})) as stage:
            for i in range(20):
                (stage / f"page{{i}}.html").write_text("run {{run}}")
    """)
    for run_no, step in enumerate(["", "report:written", "report:staged", "report:switched", ""]):
        env = dict(ENV, LINKEVAL_FAULT_AT=step)
        proc = subprocess.run(
            [sys.executable, "-c", script.replace("{run}", str(run_no))],
            env=env,
            capture_output=True,
            text=True,
        )
        assert proc.returncode == (-signal.SIGKILL if step else 0), proc.stderr
        pages = {p.read_text() for p in final.glob("page*.html")}
        assert len(list(final.glob("page*.html"))) == 20 and len(pages) == 1  # one whole run
        remove_leftovers(final)
    assert {p.name for p in state_dir(final).iterdir()} == {current_version(final).name}
    assert not list(final.parent.glob(".latest.*"))


def test_a_folder_from_before_versions_is_switched_in_one_step(tmp_path, capsys):
    path = write_study(tmp_path)
    assert run(["clean", "--config", path], capsys)[0] == 0
    processed = tmp_path / "processed"
    # The layout of earlier linkeval: a real folder, with a temporary file a crash left.
    real = current_version(processed)
    processed.unlink()
    real.rename(processed)
    (processed / ".referrals.parquet.abc.tmp").write_bytes(b"x" * 1000)
    (tmp_path / ".linkeval-parts-old").mkdir()
    code, out, _ = run(["clean", "--config", path], capsys)
    assert code == 0 and "left by an interrupted run" in out
    assert processed.is_symlink()
    assert leftovers(tmp_path) == [] and not (tmp_path / ".linkeval-parts-old").exists()
    consistent_version(processed)


def test_a_folder_reached_through_a_link_keeps_its_current_version(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    os.symlink(real, tmp_path / "via")
    final = tmp_path / "via" / "processed"
    files = {"a.parquet": pd.DataFrame({"site": ["A"]})}
    write_version(final, files, label="test")
    version = write_version(final, files, label="test")
    assert remove_leftovers(final) == 0  # the current version is not a leftover
    assert current_version(final) == version.resolve() and (final / "a.parquet").is_file()


def test_a_users_own_link_is_refused_not_followed(tmp_path, capsys):
    path = write_study(tmp_path)
    elsewhere = tmp_path / "big-disk" / "processed"
    elsewhere.mkdir(parents=True)
    (elsewhere / "keep.txt").write_text("mine")
    os.symlink(elsewhere, tmp_path / "processed")
    code, _, err = run(["clean", "--config", path], capsys)
    assert code == 2 and "set the folder in the config to where the link points" in err
    assert (elsewhere / "keep.txt").read_text() == "mine"


def test_a_reader_keeps_its_version_while_a_clean_switches(tmp_path, monkeypatch):
    final = tmp_path / "processed"
    frame = pd.DataFrame({"site": ["A"], "n": [1]})
    files = {f"{name}.parquet": frame for name in SCHEMAS}
    first = write_version(final, files, label="test")
    calls = []
    real = io._load_version

    def switch_while_reading(folder, shown, site, tables):
        if not calls:  # a clean finishes while the reader is between two tables
            calls.append(folder)
            write_version(final, {k: frame.assign(n=2) for k in files}, label="test")
            assert not first.exists()
        return real(folder, shown, site, tables)

    monkeypatch.setattr(io, "_load_version", switch_while_reading)
    tables = load_processed(final)
    assert {int(t["n"].iloc[0]) for t in tables.values()} == {2}  # all from the new version


def test_write_version_cleans_up_after_an_error(tmp_path):
    final = tmp_path / "processed"
    with pytest.raises(AttributeError):
        write_version(final, {"a.parquet": object()}, label="test")
    assert [p.name for p in state_dir(final).iterdir()] == []
    assert not os.path.lexists(final)


# -- leftovers and orphan workers (item 2) ---------------------------------------------------


def processes_with(marker: str) -> list[int]:
    """Live processes whose environment holds ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker.encode() in (entry / "environ").read_bytes():
                status = (entry / "status").read_text()
                if "\nState:\tZ" not in status:
                    found.append(int(entry.name))
        except OSError:
            continue
    return found


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc")
def test_workers_die_with_a_killed_clean_and_leave_nothing(tmp_path):
    path = study_with_new_export(tmp_path, sites=("X", "Y", "Z"))
    marker = f"LINKEVAL_TEST_RUN={uuid.uuid4().hex}"
    env = dict(ENV, LINKEVAL_FAULT_AT="clean:workers", LINKEVAL_TEST_RUN=marker.split("=")[1])
    proc = cli("clean", "--config", path, "--jobs", "3", env=env)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    deadline = time.monotonic() + 10
    while processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert processes_with(marker) == []
    assert cli("clean", "--config", path).returncode == 0
    assert leftovers(tmp_path) == []


def test_die_with_parent_kills_an_orphan(tmp_path):
    script = textwrap.dedent("""
        import os, sys, time
        pid = os.fork()
        if pid == 0:
            try:
                from linkeval.parallel import die_with_parent
                die_with_parent()
            except BaseException as exc:  # say so, or the test waits for ever
                os.write(1, f"failed: {exc!r}\\n".encode())
                os._exit(1)
            os.write(1, b"ready\\n")
            time.sleep(30)
            os._exit(0)
        print(pid, flush=True)
        sys.stdin.readline()
    """)
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        child = int(proc.stdout.readline())
        assert proc.stdout.readline().strip() == "ready"
    finally:
        proc.kill()
        proc.wait()
    deadline = time.monotonic() + 5
    while pid_alive(child) and time.monotonic() < deadline:
        with_zombie = Path(f"/proc/{child}/status")
        if with_zombie.exists() and "\nState:\tZ" in with_zombie.read_text():
            break
        time.sleep(0.1)
    status = Path(f"/proc/{child}/status")
    assert not status.exists() or "\nState:\tZ" in status.read_text()


# -- locks (item 3) --------------------------------------------------------------------------

HOLD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from linkeval.io import folder_lock
    with folder_lock(Path(sys.argv[1]), sys.argv[2], exclusive=sys.argv[3] == "x"):
        print("held", flush=True)
        sys.stdin.readline()
""")


class Holder:
    """Another process holding a folder's lock until the test lets go."""

    def __init__(self, folder: Path, command: str, exclusive: bool = True) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", HOLD, str(folder), command, "x" if exclusive else "s"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        assert self.proc.stdout.readline().strip() == "held"

    def __enter__(self) -> Holder:
        return self

    def __exit__(self, *exc) -> None:
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()
        self.proc.wait(10)


def test_a_second_clean_exits_2_naming_the_first(tmp_path, capsys):
    path = write_study(tmp_path)
    with Holder(tmp_path / "processed", "clean --site B") as holder:
        code, _, err = run(["clean", "--config", path, "--site", "X"], capsys)
    assert code == 2 and err.count("\n") == 1
    assert f"in use by linkeval clean --site B (pid {holder.proc.pid}, started " in err
    assert not (tmp_path / "processed").exists()
    assert run(["clean", "--config", path], capsys)[0] == 0  # free again


def test_a_clean_is_refused_while_reports_read_the_data(tmp_path, capsys):
    path = write_study(tmp_path)
    assert run(["clean", "--config", path], capsys)[0] == 0
    with (
        Holder(tmp_path / "processed", "report (latest)", exclusive=False),
        Holder(tmp_path / "processed", "report (other)", exclusive=False),
    ):
        code, _, err = run(["clean", "--config", path], capsys)
    assert code == 2 and "in use by linkeval report (latest)" in err and "report (other)" in err


def test_a_second_report_exits_2(tmp_path, capsys):
    path = write_study(tmp_path)
    assert run(["clean", "--config", path], capsys)[0] == 0
    with Holder(tmp_path / "reports" / "latest", "report (latest)"):
        code, _, err = run(["report", "--config", path], capsys)
    assert code == 2 and "reports/latest: in use by linkeval report (latest)" in err


def test_a_killed_holder_leaves_no_lock(tmp_path, capsys):
    path = write_study(tmp_path)
    holder = Holder(tmp_path / "processed", "clean")
    holder.proc.kill()
    holder.proc.wait()
    assert run(["clean", "--config", path], capsys)[0] == 0


def test_locks_are_reentrant_within_a_process(tmp_path):
    with (
        folder_lock(tmp_path / "p", "clean"),
        folder_lock(tmp_path / "p", "clean"),
        folder_lock(tmp_path / "p", "report", exclusive=False),
    ):
        pass
    with (
        folder_lock(tmp_path / "p", "report", exclusive=False),
        pytest.raises(LinkevalError, match="in use by"),
        folder_lock(tmp_path / "p", "clean"),
    ):
        pass


def test_concurrent_partial_cleans_lose_no_update(tmp_path):
    path = write_study(tmp_path, sites=("B", "D"))
    assert cli("clean", "--config", path).returncode == 0
    for code in ("b", "d"):
        (tmp_path / "raw" / code / "referrals.csv").write_text(
            REFERRALS_CSV + f"{code.upper()}9,943 476 5919,10/03/2024,01/02/1950,GP,\n"
        )
    procs = {
        code: subprocess.Popen(
            [sys.executable, "-m", "linkeval.cli", "clean", "--config", str(path), "--site", code],
            env=ENV,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for code in ("B", "D")
    }
    results = {code: (p.wait(60), p.stderr.read()) for code, p in procs.items()}
    refs = pd.read_parquet(tmp_path / "processed" / "referrals.parquet")
    for code, (status, err) in results.items():
        assert status in (0, 2), err
        if status == 2:
            assert "in use by linkeval clean --site" in err and err.count("\n") == 1
        # Every update that was reported done is in the data.
        assert (f"{code}9" in set(refs["referral_id"])) == (status == 0)
    assert 0 in {status for status, _ in results.values()}


# -- reports from a read-only processed folder (item 13) -------------------------------------


def test_kernel_logs_go_beside_the_data_or_else_to_a_private_place(tmp_path, monkeypatch):
    cfg = load_config(write_study(tmp_path))
    final = cfg.reports_dir / "latest"
    assert batch.log_folder(cfg, final) == state_dir(cfg.processed_dir) / "report_logs"
    real = os.access
    monkeypatch.setattr(
        batch.os,
        "access",
        lambda p, mode: (
            False if str(p).startswith(str(state_dir(cfg.processed_dir))) else real(p, mode)
        ),
    )
    logs = batch.log_folder(cfg, final)
    assert logs == state_dir(final) / "report_logs" and (logs.stat().st_mode & 0o077) == 0
    assert final not in logs.parents


# -- a kernel that does not start ------------------------------------------------------------


def _kernel_that_fails_to_start(home: Path, failures: int) -> Path:
    """A "python3" kernelspec (found first through JUPYTER_PATH) whose first ``failures`` starts
    exit at once, as a kernel that loses a port race does; later starts are a real ipykernel.
    Returns the file that counts the starts."""
    home.mkdir()
    starts = home / "starts"
    launcher = home / "launch.py"
    launcher.write_text(
        textwrap.dedent(f"""
            import os, sys
            starts = {str(starts)!r}
            with open(starts, "a") as f:
                f.write("x")
            if os.path.getsize(starts) <= {failures}:
                sys.exit(1)
            os.execv(sys.executable, [sys.executable, "-m", "ipykernel_launcher", *sys.argv[1:]])
        """)
    )
    spec = home / "kernels" / "python3"
    spec.mkdir(parents=True)
    argv = [sys.executable, str(launcher), "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": "Python 3", "language": "python"})
    )
    return starts


@pytest.mark.parametrize("failures, ok", [(1, True), (job.KERNEL_START_ATTEMPTS, False)])
def test_a_kernel_that_does_not_start_is_started_again(tmp_path, monkeypatch, failures, ok):
    """The CI run of c34d7d3 lost a page to one kernel that died before replying to
    kernel_info, and it was not retried: papermill marks every cell "completed" when it gives
    up, so a start failure looked like a failure while running."""
    starts = _kernel_that_fails_to_start(tmp_path / "jupyter", failures)
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setattr(job, "_quiet", lambda log: None)
    monkeypatch.setattr(job.time, "sleep", lambda seconds: None)
    source = minimal_notebooks(tmp_path / "notebooks")
    notebook = job.Job("site_change", "A", "Change in wellbeing and loneliness")
    result = job.run_job(source, tmp_path / "stage", notebook, "config.yaml", tmp_path)
    assert result.ok == ok
    if ok:
        assert starts.read_text() == "xx"
    else:
        assert starts.read_text() == "x" * job.KERNEL_START_ATTEMPTS
        assert result.error.startswith("kernel did not start: RuntimeError: Kernel died")
        page = (tmp_path / "stage" / "sites" / "A" / "site_change.html").read_text()
        assert "could not be made" in page
