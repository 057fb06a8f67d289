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
    die_with_parent,
    folder_lock,
    remove_leftovers,
    staged_directory,
    state_dir,
    write_files_atomic,
)
from linkeval.parallel import Cluster, JobLost, check_shared, finished
from linkeval.report.index import (
    CROSS_SITE_PAGE,
    CROSS_SITE_TITLE,
    INDEX,
    METHODS,
    SITE_NOTEBOOKS,
    JobResult,
    index_page,
    methods_page,
    page_context,
    run_facts,
    site_page,
)
from linkeval.report.render import PageContext, html_page, render_html

CROSS_SITE = "cross_site"
PARAMETERS = {
    "site_descriptive": {"config", "site"},
    "site_change": {"config", "site"},
    CROSS_SITE: {"config"},
}
KERNEL_START_ATTEMPTS = 3


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
class Job:
    notebook: str
    site: str | None
    title: str

    @property
    def folder(self) -> str:
        return f"sites/{self.site}" if self.site else "cross_site"

    @property
    def page(self) -> str:
        return site_page(self.site, self.notebook) if self.site else CROSS_SITE_PAGE


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
                    result = _lost(stage, job, context, str(exc), time.perf_counter() - started)
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
    that never see the key (the default), or a Dask cluster (see :func:`_run_job_on_worker`)."""
    if scheduler:
        return Cluster(scheduler), partial(_run_job_on_worker, cfg.key_env)
    pool = ProcessPoolExecutor(
        max_workers=jobs,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_worker_init,
        initargs=(cfg.key_env, os.getpid()),
    )
    return pool, _run_job


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


def _worker_init(key_env: str = "LINKEVAL_KEY", main_pid: int | None = None) -> None:
    """A worker (and every kernel it starts) runs without the pseudonymisation key, dies with
    the run (so no orphan starts kernels), and stops on SIGTERM through an exception, so that
    papermill shuts its kernel down."""
    _drop_key(key_env)
    die_with_parent(main_pid)
    signal.signal(signal.SIGTERM, _worker_stop)


def _drop_key(key_env: str) -> None:
    """No kernel started from here on sees the pseudonymisation key."""
    for name in {key_env, "LINKEVAL_KEY"}:
        os.environ.pop(name, None)


def _worker_stop(signum, frame) -> None:
    raise SystemExit(143)


def _run_job_on_worker(
    key_env: str,
    source: Path,
    stage: Path,
    job: Job,
    config: str,
    logs: Path,
    context: PageContext | None = None,
) -> JobResult:
    """:func:`_run_job` as a task on a Dask worker, which is not this run's: it had no
    :func:`_worker_init`. So the key leaves the worker's environment first (a worker started
    from a shell that holds it would pass it to the kernels), the folders must be there (a
    shared file system; a run that has ended has removed its staging folder), and the worker's
    stderr, which :func:`_quiet` sends to the job's log, is given back afterwards. Workers
    should run one task at a time (``--nthreads 1``): stderr belongs to the whole process."""
    _drop_key(key_env)
    check_shared(stage, logs, source)
    saved = os.dup(2)
    try:
        return _run_job(source, stage, job, config, logs, context)
    finally:
        os.dup2(saved, 2)
        os.close(saved)


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


def _quiet(log: Path) -> None:
    """Send this worker's (and its kernels') stderr to a log file beside the data.

    Kernel messages and tracebacks can quote data, so they go to the data area (see
    :func:`log_folder`), never to the terminal or the reports.
    """
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(fd, 2)
    os.close(fd)


def _run_job(
    source: Path, stage: Path, job: Job, config: str, logs: Path, context: PageContext | None = None
) -> JobResult:
    """Execute one notebook with papermill and render it (runs in a worker process)."""
    _quiet(logs / f"{job.site or 'all'}_{job.notebook}.log")
    import papermill as pm
    from nbclient.exceptions import DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    started = time.perf_counter()
    out_dir = stage / job.folder
    out_dir.mkdir(parents=True, exist_ok=True)
    executed = out_dir / f"{job.notebook}.ipynb"
    page = out_dir / f"{job.notebook}.html"
    parameters = {"config": config} | ({"site": job.site} if job.site else {})

    def failed(message: str) -> JobResult:
        page.write_text(_failed_page(job, context), encoding="utf-8")
        return JobResult(
            job.notebook, job.site, False, time.perf_counter() - started, error=message[:200]
        )

    for attempt in range(1, KERNEL_START_ATTEMPTS + 1):
        try:
            pm.execute_notebook(
                str(source / f"{job.notebook}.ipynb"),
                str(executed),
                parameters=parameters,
                kernel_name="python3",
                progress_bar=False,
                log_output=False,
                cwd=str(source),
                start_timeout=120,
            )
            break
        except PapermillExecutionError as exc:
            return failed(
                f"cell {exc.exec_count}: {exc.ename}: "
                f"{str(exc.evalue).splitlines()[0] if exc.evalue else ''}"
            )
        except DeadKernelError:
            return failed("the kernel died while running the notebook (out of memory?)")
        except Exception as exc:
            if _cells_started(executed):  # not a start failure: do not run it again
                return failed(f"stopped: {type(exc).__name__}: {exc}")
            if attempt == KERNEL_START_ATTEMPTS:
                return failed(f"kernel did not start: {type(exc).__name__}: {exc}")
            time.sleep(attempt)
    page.write_text(render_html(executed, job.title, context), encoding="utf-8")
    return JobResult(job.notebook, job.site, True, time.perf_counter() - started, html=job.page)


def _lost(stage: Path, job: Job, context: PageContext, message: str, seconds: float) -> JobResult:
    """A notebook whose Dask worker was lost: its page says it could not be made."""
    out_dir = stage / job.folder
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{job.notebook}.html").write_text(_failed_page(job, context), encoding="utf-8")
    return JobResult(job.notebook, job.site, False, seconds, error=message[:200])


def _cells_started(executed: Path) -> bool:
    """Did papermill start running any cell (so the kernel had started)?

    A cell's ``start_time`` is set only when it starts. Its ``status`` is no evidence:
    papermill marks every pending cell "completed" when it gives up, kernel start failures
    included."""
    import nbformat

    try:
        nb = nbformat.read(executed, as_version=4)
    except Exception:
        return False
    return any(c.get("metadata", {}).get("papermill", {}).get("start_time") for c in nb.cells)


def _failed_page(job: Job, context: PageContext | None) -> str:
    """What a link to a page that could not be made shows (so no link is broken)."""
    index = next(
        (href for label, href, _ in (context.nav if context else []) if label == "Reports index"),
        "../../index.html",
    )
    body = (
        "<p class='le-bad'>This page could not be made in this run.</p>"
        f"<p>The <a href='{index}'>reports index</a> says what went wrong. The other "
        "pages are not affected.</p>"
    )
    return html_page(job.title, body, context)
