"""Batch reports: every site's notebooks run by papermill, rendered to HTML (docs/design.md, 'Reports').

``run_reports`` runs ``site_descriptive`` and ``site_change`` for each site and ``cross_site``
once, in parallel worker processes, then renders each executed notebook to one self-contained
HTML page (no code, no parameters cell, no papermill metadata, no printed output, nothing loaded
from the internet) and writes ``index.html`` and ``methods.html``. Every page links to the
index, its site's other page, the cross-site page and the methods note. The whole run is built
in a staging folder and made current as ``<reports_dir>/<run>/`` in one atomic step at the end
(io.staged_directory), readable as the process umask allows, so an interrupted run (Ctrl-C,
SIGTERM or kill -9) leaves the previous reports as they were; the next run removes what a killed
run left. A run holds the reports folder's lock, and a shared lock on the processed folder (a
clean waits for the reports to finish); the processed folder may be read-only. Worker processes
never receive the pseudonymisation key and die with the run. A failing notebook does not stop
the others: its row in the index shows the cell and the error, its page says it could not be
made, and the run reports failure. With a scheduler address the notebooks run as tasks on a
Dask cluster instead of local processes (linkeval.parallel); everything else is the same.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from linkeval.config import StudyConfig
from linkeval.errors import LinkevalError
from linkeval.io import (
    check_processed,
    folder_lock,
    remove_leftovers,
    staged_directory,
    state_dir,
    write_files_atomic,
)
from linkeval.parallel import Cluster, JobLost, finished
from linkeval.report.index import (
    CROSS_SITE_TITLE,
    INDEX,
    METHODS,
    SITE_NOTEBOOKS,
    index_page,
    methods_page,
    page_context,
    run_facts,
)
from linkeval.report.job import Job, JobResult, lost, run_job, run_job_on_worker, worker_init

CROSS_SITE = "cross_site"
PARAMETERS = {
    "site_descriptive": {"config", "site"},
    "site_change": {"config", "site"},
    CROSS_SITE: {"config"},
}


def notebooks_dir() -> Path:
    """The report notebooks: $LINKEVAL_NOTEBOOKS, else the project's ``notebooks/``."""
    env = os.environ.get("LINKEVAL_NOTEBOOKS")
    folder = Path(env) if env else Path(__file__).resolve().parents[2] / "notebooks"
    if not (folder / "site_descriptive.ipynb").is_file():
        raise LinkevalError(
            f"{folder}: report notebooks not found; run from the linkeval "
            "project or set LINKEVAL_NOTEBOOKS to its notebooks/ folder"
        )
    return folder


@dataclass
class ReportRun:
    folder: Path
    results: list[JobResult] = field(default_factory=list)

    @property
    def failed(self) -> list[JobResult]:
        return [r for r in self.results if not r.ok]


def check_parameters(folder: Path) -> None:
    """Refuse to start when a notebook lacks the parameters papermill will inject."""
    import papermill as pm

    for name, wanted in PARAMETERS.items():
        path = folder / f"{name}.ipynb"
        if not path.is_file():
            raise LinkevalError(f"{path}: report notebook missing")
        found = set(pm.inspect_notebook(str(path)))
        if not wanted <= found:
            raise LinkevalError(
                f"{path}: the cell tagged 'parameters' must define {', '.join(sorted(wanted))} "
                f"(found: {', '.join(sorted(found)) or 'no parameters cell'})"
            )


class Stopped(LinkevalError):
    """The run was stopped by SIGTERM."""

    exit_code = 143


def run_reports(
    cfg: StudyConfig,
    sites: list[str] | None = None,
    jobs: int | None = None,
    run: str = "latest",
    progress=print,
    scheduler: str | None = None,
) -> ReportRun:
    """Run and render every report; returns what happened to each notebook.

    The notebooks run in ``jobs`` local worker processes (default: one per CPU), or, with
    ``scheduler`` (a Dask scheduler's address, such as ``tcp://host:8786``), as tasks on that
    cluster, whose workers share this machine's file system; ``jobs`` is then not used.
    """
    source = notebooks_dir()
    check_parameters(source)
    codes = sites or list(cfg.sites)
    for code in codes:
        cfg.site(code)
    if not (cfg.processed_dir / "referrals.parquet").is_file():
        raise LinkevalError(f"{cfg.processed_dir}: no processed data; run linkeval clean first")
    check_processed(cfg.processed_dir)
    final = cfg.reports_dir / run
    with (
        folder_lock(final, f"report ({run})"),
        folder_lock(cfg.processed_dir, f"report ({run})", exclusive=False),
    ):
        remove_leftovers(final, keep=(LOGS,))
        return _run(cfg, codes, jobs, final, source, progress, scheduler)


def _run(
    cfg: StudyConfig,
    codes: list[str],
    jobs: int | None,
    final: Path,
    source: Path,
    progress,
    scheduler: str | None = None,
) -> ReportRun:
    """The run itself, holding the locks."""
    # Longest first (the cross-site models), so no worker idles at the end of the run.
    todo = [Job(CROSS_SITE, None, CROSS_SITE_TITLE)]
    todo += [Job(nb, code, title) for code in codes for nb, title in SITE_NOTEBOOKS.items()]
    jobs = max(1, min(jobs or os.cpu_count() or 1, len(todo)))
    previous = _previous_results(final)
    outcome = ReportRun(folder=final)
    facts = run_facts(cfg)
    with _SigtermGuard() as guard, staged_directory(final) as stage:
        _keep_other_sites(final, stage, codes)
        started = time.perf_counter()
        logs = log_folder(cfg, final)
        pool, task = _pool(cfg, jobs, scheduler)
        try:
            contexts = [page_context(cfg, facts, job.page, job.site) for job in todo]
            futures = {
                pool.submit(task, source, stage, job, str(cfg.path), logs, context): (job, context)
                for job, context in zip(todo, contexts, strict=True)
            }
            for i, ((job, context), future) in enumerate(finished(pool, futures), 1):
                try:
                    result = future.result()
                except JobLost as exc:  # on a Dask cluster only
                    result = lost(stage, job, context, str(exc), time.perf_counter() - started)
                outcome.results.append(result)
                status = "done" if result.ok else f"FAILED ({result.error})"
                progress(
                    f"[{i}/{len(todo)}] {result.site or 'all sites'} {result.notebook}: "
                    f"{status} in {result.seconds:.1f}s"
                )
        except BaseException:
            _stop_workers(pool)  # before the staging folder is removed: they write into it
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        results = [r for r in previous if r.site not in codes and r.site is not None]
        results += outcome.results
        (stage / "run.json").write_text(
            json.dumps([r.__dict__ for r in results], indent=2), encoding="utf-8"
        )
        (stage / INDEX).write_text(index_page(cfg, results, facts), encoding="utf-8")
        (stage / METHODS).write_text(methods_page(cfg, facts), encoding="utf-8")
        # The data custodian's sign-off sheet: every released table, figure and sentence.
        from linkeval.report.notebook import collect_output_checks  # (imports the sections)

        checks = collect_output_checks(sorted(stage.rglob("*.ipynb")))
        write_files_atomic({stage / "output_checks.csv": checks})
        _make_readable(stage)
        guard.disarm()  # the swap into place is not interrupted half way
    progress(f"reports written in {time.perf_counter() - started:.1f}s")
    return outcome


class _SigtermGuard:
    """While a run is in progress, SIGTERM raises :class:`Stopped` (so the staging folder is
    removed and the previous reports stay); the previous handler is restored afterwards."""

    def __init__(self) -> None:
        self.armed = True
        self.pending = False
        self.previous = None

    def _handler(self, signum, frame) -> None:
        if self.armed:
            raise Stopped("stopped by SIGTERM; the previous reports are unchanged")
        self.pending = True

    def disarm(self) -> None:
        self.armed = False

    def __enter__(self) -> _SigtermGuard:
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGTERM, self._handler)
        return self

    def __exit__(self, kind, exc, tb) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)
        if self.pending and kind is None:
            raise Stopped("stopped by SIGTERM after the new reports were written")


def _pool(cfg: StudyConfig, jobs: int, scheduler: str | None):
    """Where the notebooks run, and the function each job calls there: local worker processes
    that never see the key (the default), or a Dask cluster (see
    :func:`linkeval.report.job.run_job_on_worker`)."""
    if scheduler:
        return Cluster(scheduler), partial(run_job_on_worker, cfg.key_env)
    pool = ProcessPoolExecutor(
        max_workers=jobs,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=worker_init,
        initargs=(cfg.key_env, os.getpid()),
    )
    return pool, run_job


LOGS = "report_logs"


def log_folder(cfg: StudyConfig, final: Path) -> Path:
    """Where kernel logs go: beside the processed data (``.linkeval/<name>/report_logs``, not
    inside a processed version, which may be read-only and is replaced by the next clean); if
    the data area is read-only, the reports folder's private state directory. Never into the
    reports themselves."""
    for folder in (state_dir(cfg.processed_dir) / LOGS, state_dir(final) / LOGS):
        try:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError:
            continue
        if os.access(folder, os.W_OK | os.X_OK):
            return folder
    raise LinkevalError(
        f"{state_dir(cfg.processed_dir) / LOGS}: cannot write kernel logs "
        f"there or in {state_dir(final) / LOGS}; make one of them writable"
    )


def _stop_workers(pool: ProcessPoolExecutor | Cluster, grace: float = 15.0) -> None:
    """Stop the worker processes (and so their kernels) of an interrupted run, and wait.

    A Dask cluster's workers are not ours to stop: its shutdown cancels the jobs not started.
    """
    processes = list((getattr(pool, "_processes", None) or {}).values())
    for p in processes:
        if p.is_alive():
            p.terminate()
    deadline = time.monotonic() + grace
    for p in processes:
        p.join(max(0.1, deadline - time.monotonic()))
        if p.is_alive():
            p.kill()
            p.join(5)


def _make_readable(folder: Path) -> None:
    """The staging folder is private (mkdtemp); the reports are for the study group: folders
    and files get the permissions the process umask gives new ones (755/644 with umask 022)."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(folder, 0o777 & ~mask)
    for root, dirs, files in os.walk(folder):
        for name in dirs:
            os.chmod(os.path.join(root, name), 0o777 & ~mask)
        for name in files:
            os.chmod(os.path.join(root, name), 0o666 & ~mask)


def _previous_results(final: Path) -> list[JobResult]:
    path = final / "run.json"
    if not path.is_file():
        return []
    return [JobResult(**r) for r in json.loads(path.read_text(encoding="utf-8"))]


def _keep_other_sites(final: Path, stage: Path, codes: list[str]) -> None:
    """Re-running some sites keeps the other sites' pages from the previous run."""
    if not (final / "sites").is_dir():
        return
    for folder in (final / "sites").iterdir():
        if folder.is_dir() and folder.name not in codes:
            shutil.copytree(folder, stage / "sites" / folder.name)
