"""Benchmark: clean N synthetic referrals (with their contacts) against the I/O floor.

Two runs on the same raw files: the routine data alone (referrals, contacts, onward
referrals: the workload of the cleaning target) and the whole study with its questionnaires.

The floor is what any cleaner has to pay: read the same raw files with pandas (as the config
describes them) and write them as parquet. The target is a cleaning time within 3x
the floor and a peak memory under 8 GB on a 2-core, 24 GB machine.

    python benchmarks/bench_clean.py                      # 1,000,000 referrals
    python benchmarks/bench_clean.py --referrals 100000   # quicker
    python benchmarks/bench_clean.py --data /tmp/big      # reuse data written by linkeval synth
    python benchmarks/bench_clean.py --data /tmp/big --repeat 3   # medians of 3 runs each

On a shared machine one run's times can vary by 10-20%: with --repeat the floor and the clean
run in turn, N times each, and the medians (and the range) are reported.

Each phase runs in its own process so that its peak resident memory is its own.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

KEY = "benchmark-key-not-secret-0123456789"


def _peak_mb() -> float:
    """Peak resident memory of this process or its largest worker (Linux reports kB)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, workers) / 1024


def phase_floor(config: str) -> dict:
    import pandas as pd

    from linkeval.config import load_config
    from linkeval.io import detect_encoding, source_files

    cfg = load_config(config)
    start = time.perf_counter()
    rows = 0
    with tempfile.TemporaryDirectory() as tmp:
        for site in cfg.sites.values():
            for i, source in enumerate(site.sources):
                for path in source_files(cfg.raw_dir, source):
                    if path.suffix == ".xlsx":
                        frame = pd.read_excel(path, sheet_name=source.sheet, dtype=str)
                    else:
                        frame = pd.read_csv(
                            path,
                            dtype=str,
                            skiprows=source.skip_rows,
                            encoding=detect_encoding(path, source.encoding),
                            sep=source.delimiter,
                        )
                    rows += len(frame)
                    frame.to_parquet(Path(tmp) / f"{site.code}_{i}_{path.stem}.parquet")
    return {"seconds": time.perf_counter() - start, "rows": rows, "peak_mb": _peak_mb()}


def phase_clean(config: str) -> dict:
    from linkeval.cleaning import clean_study, write_outputs
    from linkeval.config import load_config

    cfg = load_config(config)
    start = time.perf_counter()
    result = clean_study(cfg, key=KEY.encode(), jobs=None)  # as `linkeval clean` does
    write_outputs(cfg, result)
    seconds = time.perf_counter() - start
    s = result.summary
    return {
        "seconds": seconds,
        "rows": int(s["rows_read"].sum()),
        "referrals_read": int(s.loc[s["table"] == "referrals", "rows_read"].sum()),
        "contacts_read": int(s.loc[s["table"] == "contacts", "rows_read"].sum()),
        "peak_mb": _peak_mb(),
    }


def _run_phase(name: str, config: Path) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--phase", name, "--config", str(config)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--referrals", type=int, default=1_000_000)
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help="folder from `linkeval synth` to reuse (default: a temporary one)",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs of each phase, in turn (medians reported)"
    )
    parser.add_argument("--phase", choices=["floor", "clean"], help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        result = phase_floor(args.config) if args.phase == "floor" else phase_clean(args.config)
        print(json.dumps(result))
        return

    with tempfile.TemporaryDirectory() as tmp:
        data = args.data or Path(tmp)
        config = data / "study.yaml"
        if not config.is_file():
            from linkeval.synthetic import generate_study

            t = time.perf_counter()
            generate_study(data, n_referrals=args.referrals, seed=args.seed)
            print(f"generated {args.referrals:,} referrals in {time.perf_counter() - t:.1f}s")
        # Issue 2's target is for routine data (referrals with their contacts and onward
        # referrals); the same study with its questionnaires is measured alongside.
        routine = _without_questionnaires(config)
        for label, cfg in (("routine data", routine), ("with questionnaires", config)):
            floors, cleans = [], []
            for _ in range(max(args.repeat, 1)):
                floors.append(_run_phase("floor", cfg))
                cleans.append(_run_phase("clean", cfg))
            _report(label, _median(floors), _median(cleans))
            if len(cleans) > 1:
                ratios = sorted(
                    c["seconds"] / f["seconds"] for f, c in zip(floors, cleans, strict=True)
                )
                print(
                    f"{len(cleans)} runs: floor {_range(floors)}, clean {_range(cleans)}; "
                    f"ratio of each pair {ratios[0]:.2f}-{ratios[-1]:.2f}x"
                )


def _without_questionnaires(config: Path) -> Path:
    import yaml

    study = yaml.safe_load(config.read_text(encoding="utf-8"))
    for site in study["sites"].values():
        site["sources"] = [s for s in site["sources"] if s["table"] != "questionnaires"]
    study["processed_dir"] = "processed_routine"
    out = config.with_name("study_routine.yaml")
    out.write_text(yaml.safe_dump(study, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return out


def _median(runs: list[dict]) -> dict:
    """The run with the median time (of an even number, the faster of the middle two)."""
    return sorted(runs, key=lambda r: r["seconds"])[(len(runs) - 1) // 2]


def _range(runs: list[dict]) -> str:
    times = sorted(r["seconds"] for r in runs)
    return f"{times[0]:.1f}-{times[-1]:.1f}s"


def _report(label: str, floor: dict, clean: dict) -> None:
    ratio = clean["seconds"] / floor["seconds"]
    print(f"\n{label}")
    print(
        f"raw rows (all tables):   {clean['rows']:,} "
        f"({clean['referrals_read']:,} referrals, {clean['contacts_read']:,} contacts)"
    )
    print(
        f"floor (read CSV + write parquet): {floor['seconds']:.1f}s, "
        f"peak {floor['peak_mb']:,.0f} MB"
    )
    print(
        f"linkeval clean:                   {clean['seconds']:.1f}s, "
        f"{clean['rows'] / clean['seconds']:,.0f} rows/s, peak {clean['peak_mb']:,.0f} MB"
    )
    print(f"ratio to floor: {ratio:.2f}x (target <= 3x); peak memory target < 8,000 MB")


if __name__ == "__main__":
    main()
