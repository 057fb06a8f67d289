"""One report notebook, run by papermill and rendered to its page: what a worker process does
(docs/design.md, 'Reports').

:mod:`linkeval.report.batch` plans the run and sends each :class:`Job` to a worker, a local
process or a task on a Dask cluster, which calls :func:`run_job`. A worker only drives a kernel
and renders HTML, so this module imports neither pandas nor pyarrow, and a local worker keeps
papermill from importing pyarrow too (:func:`worker_init`): each worker then takes about
0.06 GB in a batch instead of 0.17 GB, beside kernels that take 0.5 GB and more.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from linkeval.parallel import check_shared, die_with_parent
from linkeval.report.render import PageContext, html_page, render_html

KERNEL_START_ATTEMPTS = 3


CROSS_SITE_PAGE = "cross_site/cross_site.html"  # where the pages sit in a run folder


def site_page(code: str, notebook: str) -> str:
    return f"sites/{code}/{notebook}.html"


@dataclass
class Job:
    """A notebook to run, for a site or (``site`` None) for all sites."""

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
class JobResult:
    notebook: str
    site: str | None
    ok: bool
    seconds: float
    error: str = ""
    html: str = ""


def worker_init(key_env: str = "LINKEVAL_KEY", main_pid: int | None = None) -> None:
    """A local worker (and every kernel it starts) runs without the pseudonymisation key, dies
    with the run (so no orphan starts kernels), and stops on SIGTERM through an exception, so
    that papermill shuts its kernel down.

    papermill imports pyarrow (90 MB) for an HDFS reader a worker never uses, and goes on
    without it when the import fails; the worker makes it fail."""
    drop_key(key_env)
    die_with_parent(main_pid)
    signal.signal(signal.SIGTERM, _worker_stop)
    sys.modules.setdefault("pyarrow", None)  # type: ignore[arg-type]


def drop_key(key_env: str) -> None:
    """No kernel started from here on sees the pseudonymisation key."""
    for name in {key_env, "LINKEVAL_KEY"}:
        os.environ.pop(name, None)


def _worker_stop(signum, frame) -> None:
    raise SystemExit(143)


def run_job_on_worker(
    key_env: str,
    source: Path,
    stage: Path,
    job: Job,
    config: str,
    logs: Path,
    context: PageContext | None = None,
) -> JobResult:
    """:func:`run_job` as a task on a Dask worker, which is not this run's: it had no
    :func:`worker_init`. So the key leaves the worker's environment first (a worker started
    from a shell that holds it would pass it to the kernels), the folders must be there (a
    shared file system; a run that has ended has removed its staging folder), and the worker's
    stderr, which :func:`_quiet` sends to the job's log, is given back afterwards. Workers
    should run one task at a time (``--nthreads 1``): stderr belongs to the whole process."""
    drop_key(key_env)
    check_shared(stage, logs, source)
    saved = os.dup(2)
    try:
        return run_job(source, stage, job, config, logs, context)
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _quiet(log: Path) -> None:
    """Send this worker's (and its kernels') stderr to a log file beside the data.

    Kernel messages and tracebacks can quote data, so they go to the data area (see
    :func:`linkeval.report.batch.log_folder`), never to the terminal or the reports.
    """
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(fd, 2)
    os.close(fd)


def run_job(
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
        page.write_text(failed_page(job, context), encoding="utf-8")
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


def lost(stage: Path, job: Job, context: PageContext, message: str, seconds: float) -> JobResult:
    """A notebook whose Dask worker was lost: its page says it could not be made."""
    out_dir = stage / job.folder
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{job.notebook}.html").write_text(failed_page(job, context), encoding="utf-8")
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


def failed_page(job: Job, context: PageContext | None) -> str:
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
