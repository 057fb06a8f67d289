"""Benchmark: the whole demo report batch against its floor.

Floor: papermill + nbconvert on a notebook that only imports the same libraries,
times the number of notebooks, divided by the number of parallel jobs. Target: the real batch
within 2x that floor.

    python benchmarks/bench_reports.py            # jobs = CPU count
    python benchmarks/bench_reports.py --jobs 1
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import nbformat

from linkeval.cleaning import clean_study, write_outputs
from linkeval.config import load_config
from linkeval.pseudonymise import DEMO_KEY
from linkeval.report.batch import CROSS_SITE, SITE_NOTEBOOKS, render_html, run_reports
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
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
