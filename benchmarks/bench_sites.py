"""Benchmark: the report batch as the number of sites grows, locally and on a Dask cluster.

For each N in --sites: a synthetic study of N sites x --referrals-per-site referrals, cleaned,
then the whole report batch (2 N + 1 notebooks) in the local pool (jobs = CPU count) and the
same batch through a two-worker Dask LocalCluster (single-thread worker processes, as
`linkeval report --scheduler` would use a real cluster). Per-notebook time is the batch wall
time x jobs / notebooks (what one notebook adds to the batch) and, beside it, the mean of the
notebooks' own times from the results. Its ratio to the first N's figure says whether a
notebook costs more as the study grows: a site page reads only its own site, the cross-site
page reads them all.

    python benchmarks/bench_sites.py --sites 2 3                  # a quick check (minutes)
    python benchmarks/bench_sites.py                              # 6 24 96 200: hours on 2 cores
    python benchmarks/bench_sites.py --skip-cluster --referrals-per-site 500
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from linkeval.cleaning import clean_study, write_outputs
from linkeval.config import load_config
from linkeval.pseudonymise import DEMO_KEY
from linkeval.report.batch import run_reports
from linkeval.synthetic import generate_study

CLUSTER_WORKERS = 2


def one_study(folder: Path, n_sites: int, per_site: int, seed: int, cluster: str | None) -> dict:
    """Generate, clean and report one study; the timings of its row."""
    start = time.perf_counter()
    study = generate_study(folder, n_referrals=n_sites * per_site, n_sites=n_sites, seed=seed)
    cfg = load_config(study.config_path)
    generated = time.perf_counter() - start
    start = time.perf_counter()
    write_outputs(cfg, clean_study(cfg, key=DEMO_KEY, jobs=None))
    cleaned = time.perf_counter() - start
    jobs = os.cpu_count() or 1
    row = {"sites": n_sites, "generate s": generated, "clean s": cleaned, "jobs": jobs}

    start = time.perf_counter()
    local = run_reports(cfg, jobs=jobs, run="local", progress=lambda _: None)
    row["local batch s"] = time.perf_counter() - start
    row["notebooks"] = len(local.results)
    row["per notebook s"] = row["local batch s"] * jobs / row["notebooks"]
    row["mean notebook s"] = statistics.fmean(r.seconds for r in local.results)
    row["failed"] = len(local.failed)
    if cluster:
        start = time.perf_counter()
        remote = run_reports(cfg, scheduler=cluster, run="cluster", progress=lambda _: None)
        row["cluster batch s"] = time.perf_counter() - start
        row["failed"] += len(remote.failed)
    for outcome in (local, *([remote] if cluster else [])):
        for r in outcome.failed:
            print(f"  failed: {r.site or 'all sites'} {r.notebook}: {r.error}")
    return row


def table(rows: list[dict]) -> str:
    first = rows[0]["per notebook s"]
    header = (
        f"{'sites':>6} {'notebooks':>9} {'clean s':>8} {'local batch s':>13} "
        f"{'per notebook s':>14} {'mean notebook s':>15} {'ratio to ' + str(rows[0]['sites']):>11} "
        f"{'LocalCluster batch s':>20} {'cluster/local':>13} {'failed':>6}"
    )
    lines = [header, "-" * len(header)]
    for r in rows:
        cluster, local = r.get("cluster batch s"), r["local batch s"]
        batch = f"{cluster:.1f}" if cluster else "-"
        ratio = f"{cluster / local:.2f}" if cluster else "-"
        lines.append(
            f"{r['sites']:>6} {r['notebooks']:>9} {r['clean s']:>8.1f} {local:>13.1f} "
            f"{r['per notebook s']:>14.1f} {r['mean notebook s']:>15.1f} "
            f"{r['per notebook s'] / first:>11.2f} {batch:>20} {ratio:>13} {r['failed']:>6}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, nargs="+", default=[6, 24, 96, 200])
    parser.add_argument("--referrals-per-site", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--skip-cluster", action="store_true", help="local pool only (no Dask LocalCluster)"
    )
    args = parser.parse_args()
    cluster = None
    if not args.skip_cluster:
        from distributed import LocalCluster

        cluster = LocalCluster(
            n_workers=CLUSTER_WORKERS,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
        )
    rows = []
    try:
        for n in args.sites:
            with tempfile.TemporaryDirectory(prefix=f"bench-sites-{n}-") as tmp:
                row = one_study(
                    Path(tmp),
                    n,
                    args.referrals_per_site,
                    args.seed,
                    cluster.scheduler_address if cluster else None,
                )
            rows.append(row)
            print(
                f"{n} sites: generated in {row['generate s']:.1f}s, cleaned in "
                f"{row['clean s']:.1f}s, local batch {row['local batch s']:.1f}s"
                + (f", cluster batch {row['cluster batch s']:.1f}s" if cluster else ""),
                flush=True,
            )
    finally:
        if cluster:
            cluster.close()
    print(
        f"\n{args.referrals_per_site:,} referrals a site; local pool: {rows[0]['jobs']} jobs "
        f"(CPU count); LocalCluster: {CLUSTER_WORKERS} single-thread worker processes\n"
    )
    print(table(rows))


if __name__ == "__main__":
    main()
