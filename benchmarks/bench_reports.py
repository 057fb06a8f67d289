"""Benchmark: the report batch against its floor, and as the study grows.

Floor: papermill + nbconvert on a notebook that only imports the same libraries,
times the number of notebooks, divided by the number of parallel jobs. Target: the real batch
within 2x that floor.

Scale (``--referrals-per-site 1000 50000``): the same six-site study at each size, cleaned,
then the whole batch; wall time and the peak memory of the batch (the memory of every
process under this one, `linkeval report`, its workers and kernels, summed and sampled every
0.2 s: resident (RSS) and proportional (PSS), see TreeMemory). Target:
6 x 50,000 within 2x the time of 6 x 1,000, peak under 2 GB.

    python benchmarks/bench_reports.py            # jobs = CPU count
    python benchmarks/bench_reports.py --jobs 1
    python benchmarks/bench_reports.py --referrals-per-site 1000 50000
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import nbformat
import psutil

from linkeval.cleaning import clean_study, write_outputs
from linkeval.config import load_config
from linkeval.pseudonymise import DEMO_KEY
from linkeval.report.batch import CROSS_SITE, SITE_NOTEBOOKS, run_reports
from linkeval.report.render import render_html
from linkeval.synthetic import generate_study


def import_only_notebook(path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('config = ""\nsite = ""')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell("import linkeval.report.sections  # noqa: F401")]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, path)


def floor_one(folder: Path, repeats: int = 3) -> float:
    import papermill as pm

    source = folder / "imports.ipynb"
    import_only_notebook(source)
    times = []
    for i in range(repeats):
        start = time.perf_counter()
        out = folder / f"imports_run{i}.ipynb"
        pm.execute_notebook(
            str(source),
            str(out),
            parameters={"config": "x", "site": "A"},
            kernel_name="python3",
            progress_bar=False,
            log_output=False,
        )
        render_html(out, "floor")
        times.append(time.perf_counter() - start)
    return statistics.median(times)


class TreeMemory:
    """The peak, over time, of the summed memory of this process's descendants (the
    ``linkeval report`` process, its pool workers and Jupyter kernels), sampled in a thread.

    Two sums: resident memory (RSS), which counts the pages every process shares (the Python
    interpreter, NumPy, pandas and Arrow libraries) once per process; and proportional memory
    (PSS, from /proc/PID/smaps), which divides each shared page among the processes that map
    it, so that the sum is the physical memory the batch takes."""

    def __init__(self, interval: float = 0.2) -> None:
        self.interval, self.peak, self._stop = interval, 0, threading.Event()
        self.peak_pss = 0
        self.largest = 0  # the largest single process (a kernel, usually the cross-site one)
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            rss = pss = 0
            for proc in me.children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    memory = proc.memory_full_info()
                    rss, pss = rss + memory.rss, pss + memory.pss
                    self.largest = max(self.largest, memory.rss)
            self.peak, self.peak_pss = max(self.peak, rss), max(self.peak_pss, pss)
            self._stop.wait(self.interval)

    def __enter__(self) -> TreeMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def scale(sizes: list[int], n_sites: int, jobs: int, seed: int) -> None:
    """The batch at each size of the same n_sites-site study: time and peak memory."""
    rows = []
    for per_site in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            study = generate_study(tmp, n_referrals=per_site * n_sites, n_sites=n_sites, seed=seed)
            cfg = load_config(study.config_path)
            write_outputs(cfg, clean_study(cfg, key=DEMO_KEY, jobs=None))
            store = sum(p.stat().st_size for p in cfg.processed_dir.resolve().rglob("*.parquet"))
            # `linkeval report` in its own process, as a user runs it: its memory is its own.
            command = [sys.executable, "-m", "linkeval.cli", "report"]
            command += ["--config", str(study.config_path), "--jobs", str(jobs)]
            with TreeMemory() as memory:
                start = time.perf_counter()
                subprocess.run(command, check=True, capture_output=True)
                batch = time.perf_counter() - start
            results = json.loads((cfg.reports_dir / "latest" / "run.json").read_text())
            slowest: dict[str, float] = {}
            for r in results:
                key = r["notebook"] if r["site"] else "cross_site"
                slowest[key] = max(slowest.get(key, 0.0), r["seconds"])
            rows.append((per_site, len(results), store, batch, memory, slowest))
            print(
                f"{n_sites} x {per_site:,}: batch {batch:.1f}s, peak {memory.peak / 1e9:.2f} GB "
                f"RSS, {memory.peak_pss / 1e9:.2f} GB PSS "
                f"(largest process {memory.largest / 1e9:.2f} GB), "
                f"store {store / 1e6:.1f} MB, slowest notebook of each kind (s): "
                + ", ".join(f"{k} {v:.1f}" for k, v in slowest.items()),
                flush=True,
            )
    base = rows[0][3]
    header = f"{'referrals':>10} {'notebooks':>9} {'batch s':>8} {'x first':>8}"
    print(f"\n{header} {'peak GB RSS':>11} {'peak GB PSS':>11} {'largest process GB':>19}")
    for per_site, n, _, batch, memory, _ in rows:
        print(
            f"{per_site * n_sites:>10,} {n:>9} {batch:>8.1f} {batch / base:>8.2f} "
            f"{memory.peak / 1e9:>11.2f} {memory.peak_pss / 1e9:>11.2f} "
            f"{memory.largest / 1e9:>19.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--referrals-per-site", type=int, nargs="+", default=None)
    parser.add_argument("--sites", type=int, default=6, help="sites in the scale runs")
    args = parser.parse_args()
    if args.referrals_per_site:
        scale(args.referrals_per_site, args.sites, args.jobs, args.seed)
        return
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        study = generate_study(tmp, seed=args.seed)
        cfg = load_config(study.config_path)
        write_outputs(cfg, clean_study(cfg, key=DEMO_KEY))
        n_notebooks = len(cfg.sites) * len(SITE_NOTEBOOKS) + 1  # + CROSS_SITE
        assert CROSS_SITE
        one = floor_one(tmp)
        floor = one * n_notebooks / args.jobs
        start = time.perf_counter()
        outcome = run_reports(cfg, jobs=args.jobs, progress=lambda _: None)
        batch = time.perf_counter() - start
    assert not outcome.failed, outcome.failed
    print(f"notebooks: {n_notebooks}, jobs: {args.jobs}")
    print(f"floor: import-only notebook {one:.1f}s x {n_notebooks} / {args.jobs} = {floor:.1f}s")
    print(f"demo batch (run_reports): {batch:.1f}s")
    print(f"ratio to floor: {batch / floor:.2f}x (target <= 2x)")


if __name__ == "__main__":
    main()
