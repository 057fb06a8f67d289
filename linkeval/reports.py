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

import html
import json
import multiprocessing
import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pandas as pd

from linkeval import __version__
from linkeval.config import StudyConfig
from linkeval.errors import LinkevalError
from linkeval.io import staged_directory

SITE_NOTEBOOKS = {"site_descriptive": "Who is referred, and what happens next",
                  "site_change": "Change in wellbeing and loneliness"}
CROSS_SITE = "cross_site"
PARAMETERS = {"site_descriptive": {"config", "site"}, "site_change": {"config", "site"},
              CROSS_SITE: {"config"}}
KERNEL_START_ATTEMPTS = 3


def notebooks_dir() -> Path:
    """The report notebooks: $LINKEVAL_NOTEBOOKS, else the project's ``notebooks/``."""
    env = os.environ.get("LINKEVAL_NOTEBOOKS")
    folder = Path(env) if env else Path(__file__).resolve().parents[1] / "notebooks"
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
class JobResult:
    notebook: str
    site: str | None
    ok: bool
    seconds: float
    error: str = ""
    html: str = ""


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


def render_html(executed: Path, title: str) -> str:
    """An executed notebook as one self-contained page for the steering group.

    Code cells' inputs, the parameters and injected-parameters cells, stderr streams,
    execution counts and papermill metadata are removed; figures are embedded.
    """
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(executed, as_version=4)
    hidden = {"parameters", "injected-parameters"}
    nb.cells = [c for c in nb.cells if not hidden & set(c.metadata.get("tags", []))]
    for cell in nb.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.outputs
                            if not (o.output_type == "stream" and o.get("name") == "stderr")
                            and o.output_type != "error"]
            cell.execution_count = None
    nb.metadata.pop("papermill", None)
    nb.metadata["title"] = title
    exporter = HTMLExporter(template_name="lab")
    exporter.exclude_input = True
    exporter.exclude_input_prompt = True
    exporter.exclude_output_prompt = True
    body, _ = exporter.from_notebook_node(nb)
    return body


def headline_figures(cfg: StudyConfig) -> pd.DataFrame:
    """Referrals, engaged and paired follow-ups per site, disclosure-controlled."""
    from linkeval.clean import load_processed
    from linkeval.describe import engagement_funnel
    from linkeval.disclosure import suppress

    t = load_processed(cfg.processed_dir)
    funnel = engagement_funnel(t["referrals"], t["pairs"], by="site")
    wide = funnel.pivot(index="site", columns="stage", values="n").reset_index()
    wide = wide[["site", "referred", "engaged", "paired follow-up"]]
    return suppress(wide, counts=["referred", "engaged", "paired follow-up"],
                    rule=cfg.disclosure.get("rule", "nhs_digital"),
                    min_count=cfg.disclosure.get("min_count"))


def index_page(cfg: StudyConfig, results: list[JobResult]) -> str:
    """The run's front page: one row per site with status, links and headline figures."""
    from linkeval.disclosure import describe_rule
    from linkeval.reporting import STYLE, fmt

    try:
        heads = headline_figures(cfg).set_index("site")
    except Exception:  # the index must still be written when the data cannot be summarised
        heads = pd.DataFrame()
    manifest_path = cfg.processed_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    by_site: dict[str | None, list[JobResult]] = {}
    for r in results:
        by_site.setdefault(r.site, []).append(r)
    rows = []
    for code, site in cfg.sites.items():
        mine = by_site.get(code, [])
        if not mine:
            continue
        failed = [r for r in mine if not r.ok]
        status = ("<span class='le-bad'>failed</span><br>" + "<br>".join(
            html.escape(f"{r.notebook}: {r.error}") for r in failed)) if failed else "ok"
        links = " &middot; ".join(
            f"<a href='{html.escape(r.html)}'>{html.escape(SITE_NOTEBOOKS[r.notebook])}</a>"
            for r in sorted(mine, key=lambda r: r.notebook, reverse=True) if r.ok)
        h = heads.loc[code] if code in heads.index else {}
        figures = "".join(f"<td>{fmt(h.get(k, '-'), 0) if len(h) else '-'}</td>"
                          for k in ("referred", "engaged", "paired follow-up"))
        rows.append(f"<tr><td>{html.escape(site.name)} ({html.escape(code)})</td>"
                    f"<td>{status}</td><td>{links}</td>{figures}</tr>")
    cross = by_site.get(None, [])
    cross_link = ("<a href='cross_site/cross_site.html'>All sites: what works, for whom, in "
                  "what circumstances</a>" if cross and cross[0].ok else
                  "<span class='le-bad'>cross-site report failed</span>: "
                  + html.escape(cross[0].error if cross else "not run"))
    demo = ("<div class='le-demo'>DEMO - SYNTHETIC DATA: every person in these reports is made "
            "up</div>") if cfg.demo else ""
    rule = describe_rule(cfg.disclosure.get("rule", "nhs_digital"), cfg.disclosure.get("min_count"))
    meta = (f"Run {datetime.now():%d %B %Y %H:%M} &middot; linkeval {__version__} &middot; "
            f"config {cfg.sha256[:12]} &middot; data {str(manifest.get('data_sha256', ''))[:12]}")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport"
content="width=device-width, initial-scale=1"><title>{html.escape(cfg.study)}: reports</title>
{STYLE}<style>body{{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
margin:2em auto;max-width:70em;padding:0 1em;color:#222}} .le-bad{{color:#b00020;font-weight:700}}
table.le-table td{{vertical-align:top}}</style></head><body>
{demo}<div class="le-header"><div class="le-study">{html.escape(cfg.study)}</div>
<h1>Link worker evaluation reports</h1><div class="le-meta"><span>{meta}</span></div>
<div class="le-rule">{html.escape(rule)}</div></div>
<p>{cross_link}</p>
<table class="le-table"><thead><tr><th>Site</th><th>Status</th><th>Reports</th>
<th>Referrals</th><th>Engaged</th><th>Paired follow-ups</th></tr></thead><tbody>
{''.join(rows)}</tbody></table>
<p class="le-note">Engaged: at least one attended contact. Paired follow-ups: people who
answered the questionnaires at the first meeting and again 9-12 months later.</p>
</body></html>"""
