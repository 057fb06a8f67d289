"""Batch reports: every site's notebooks run by papermill, rendered to HTML (DESIGN section 10).

``run_reports`` runs ``site_descriptive`` and ``site_change`` for each site and ``cross_site``
once, in parallel worker processes, then renders each executed notebook to one self-contained
HTML page (no code, no parameters cell, no papermill metadata, no stderr) and writes
``index.html``. The whole run is built in a staging folder and swapped into
``<reports_dir>/<run>/`` at the end, so an interrupted run leaves the previous reports as they
were. A failing notebook does not stop the others: its row in the index shows the cell and
the error, and the run reports failure.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from linkeval.config import StudyConfig
from linkeval.errors import LinkevalError
from linkeval.io import staged_directory
from linkeval.report.index import SITE_NOTEBOOKS, JobResult, index_page
from linkeval.report.render import render_html

CROSS_SITE = "cross_site"
PARAMETERS = {"site_descriptive": {"config", "site"}, "site_change": {"config", "site"},
              CROSS_SITE: {"config"}}
KERNEL_START_ATTEMPTS = 3


def notebooks_dir() -> Path:
    """The report notebooks: $LINKEVAL_NOTEBOOKS, else the project's ``notebooks/``."""
    env = os.environ.get("LINKEVAL_NOTEBOOKS")
    folder = Path(env) if env else Path(__file__).resolve().parents[2] / "notebooks"
    if not (folder / "site_descriptive.ipynb").is_file():
        raise LinkevalError(f"{folder}: report notebooks not found; run from the linkeval "
                            "project or set LINKEVAL_NOTEBOOKS to its notebooks/ folder")
    return folder


@dataclass
class Job:
    notebook: str
    site: str | None
    title: str

    @property
    def folder(self) -> str:
        return f"sites/{self.site}" if self.site else "cross_site"


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
                f"(found: {', '.join(sorted(found)) or 'no parameters cell'})")


def run_reports(cfg: StudyConfig, sites: list[str] | None = None, jobs: int | None = None,
                run: str = "latest", progress=print) -> ReportRun:
    """Run and render every report; returns what happened to each notebook."""
    source = notebooks_dir()
    check_parameters(source)
    codes = sites or list(cfg.sites)
    for code in codes:
        cfg.site(code)
    if not (cfg.processed_dir / "referrals.parquet").is_file():
        raise LinkevalError(f"{cfg.processed_dir}: no processed data; run linkeval clean first")
    # Longest first (the cross-site models), so no worker idles at the end of the run.
    todo = [Job(CROSS_SITE, None, "All sites")]
    todo += [Job(nb, code, title) for code in codes for nb, title in SITE_NOTEBOOKS.items()]
    jobs = max(1, min(jobs or os.cpu_count() or 1, len(todo)))
    final = cfg.reports_dir / run
    previous = _previous_results(final)
    outcome = ReportRun(folder=final)
    with staged_directory(final) as stage:
        _keep_other_sites(final, stage, codes)
        context = multiprocessing.get_context("spawn")
        started = time.perf_counter()
        with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
            logs = cfg.processed_dir / "qa" / "report_logs"
            logs.mkdir(parents=True, exist_ok=True)
            futures = {pool.submit(_run_job, source, stage, job, str(cfg.path), logs): job
                       for job in todo}
            for i, future in enumerate(as_completed(futures), 1):
                result = future.result()
                outcome.results.append(result)
                status = "done" if result.ok else f"FAILED ({result.error})"
                progress(f"[{i}/{len(todo)}] {result.site or 'all sites'} {result.notebook}: "
                         f"{status} in {result.seconds:.1f}s")
        results = [r for r in previous if r.site not in codes and r.site is not None]
        results += outcome.results
        (stage / "run.json").write_text(json.dumps(
            [r.__dict__ for r in results], indent=2), encoding="utf-8")
        (stage / "index.html").write_text(index_page(cfg, results), encoding="utf-8")
        progress(f"reports written in {time.perf_counter() - started:.1f}s")
    return outcome


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

    Kernel messages and tracebacks can quote data, so they go to processed/qa/report_logs,
    never to the terminal or the reports.
    """
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(fd, 2)
    os.close(fd)


def _run_job(source: Path, stage: Path, job: Job, config: str, logs: Path) -> JobResult:
    """Execute one notebook with papermill and render it (runs in a worker process)."""
    _quiet(logs / f"{job.site or 'all'}_{job.notebook}.log")
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    started = time.perf_counter()
    out_dir = stage / job.folder
    out_dir.mkdir(parents=True, exist_ok=True)
    executed = out_dir / f"{job.notebook}.ipynb"
    parameters = {"config": config} | ({"site": job.site} if job.site else {})
    for attempt in range(1, KERNEL_START_ATTEMPTS + 1):
        try:
            pm.execute_notebook(str(source / f"{job.notebook}.ipynb"), str(executed),
                                parameters=parameters, kernel_name="python3",
                                progress_bar=False, log_output=False, cwd=str(source),
                                start_timeout=120)
            break
        except PapermillExecutionError as exc:
            message = f"cell {exc.exec_count}: {exc.ename}: {str(exc.evalue).splitlines()[0][:200]}"
            return JobResult(job.notebook, job.site, False, time.perf_counter() - started,
                             error=message)
        except Exception as exc:  # the kernel did not start: try again, then give up
            if attempt == KERNEL_START_ATTEMPTS:
                return JobResult(job.notebook, job.site, False, time.perf_counter() - started,
                                 error=f"kernel did not start: {type(exc).__name__}: {exc}"[:200])
            time.sleep(attempt)
    page = out_dir / f"{job.notebook}.html"
    title = f"{job.title}" + (f" - site {job.site}" if job.site else "")
    page.write_text(render_html(executed, title), encoding="utf-8")
    return JobResult(job.notebook, job.site, True, time.perf_counter() - started,
                     html=f"{job.folder}/{job.notebook}.html")
