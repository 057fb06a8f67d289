"""What each ``linkeval`` command does (docs/design.md, 'CLI'); :mod:`linkeval.cli` parses
the command line and calls these.

Each command imports what it uses when it runs: ``linkeval report`` then holds no cleaning
code, and until the index is built after the notebooks, no statistics.
"""

from __future__ import annotations

import argparse
import sys
import time

import pandas as pd

from linkeval._version import __version__
from linkeval.config import StudyConfig, load_config
from linkeval.errors import LinkevalError, printable
from linkeval.io import folder_lock, remove_leftovers
from linkeval.pseudonymise import DEMO_KEY, key_fingerprint, load_key


def cmd_synth(args: argparse.Namespace) -> int:
    from linkeval.synthetic import generate_study

    if args.referrals is not None and args.referrals < args.sites:
        raise LinkevalError(f"--referrals {args.referrals}: need at least one per site")
    if args.sites < 1:
        raise LinkevalError(f"--sites {args.sites}: choose 1 or more")
    start = time.perf_counter()
    study = generate_study(args.out, n_referrals=args.referrals, n_sites=args.sites, seed=args.seed)
    rows = study.truth["referral_rows"]
    print(
        f"wrote {len(rows):,} raw referral rows for {args.sites} sites to {args.out} "
        f"in {time.perf_counter() - start:.1f}s"
    )
    print(f"config: {study.config_path}")
    print(f"next:   linkeval clean --config {study.config_path}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from linkeval.cleaning import clean_study

    cfg = load_config(args.config)
    # A throwaway key: check never writes, and pseudonyms are not shown.
    result = clean_study(cfg, key=b"linkeval-check-only-key", sites=args.site)
    print(f"config OK: {cfg.path} ({len(cfg.sites)} sites)")
    _print_summary(result)
    if len(result.unmapped):
        print(
            "\nunmapped labels (recorded as `other`; add them under `values:` in the config;"
            "\nthe QA files show only labels seen at least 3 times):"
        )
        print(printable(result.unmapped.to_string(index=False), keep_newlines=True))
    else:
        print("\nno unmapped labels")
    return _failed_sites(result)


def cmd_clean(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    for code in args.site or []:
        cfg.site(code)
    key = load_key(cfg.key_env, cfg.key_file, demo=cfg.demo)
    return _clean(cfg, key, args.site, args.jobs, _command(args), args.scheduler)


def _clean(
    cfg: StudyConfig,
    key: bytes,
    sites: list[str] | None,
    jobs: int | None,
    command: str,
    scheduler: str | None = None,
) -> int:
    """Clean and write under the processed folder's lock; 1 when some site failed."""
    from linkeval.cleaning.study import check_key, clean_study, previous_manifest, write_outputs

    start = time.perf_counter()
    with folder_lock(cfg.processed_dir, command):
        _remove_leftovers(cfg)
        check_key(cfg, key_fingerprint(key), sites)
        old_key = previous_manifest(cfg).get("key_fingerprint")
        result = clean_study(cfg, key=key, sites=sites, jobs=jobs, scheduler=scheduler)
        out = write_outputs(cfg, result, sites=sites)
    _print_summary(result)
    if old_key and old_key != result.key_fingerprint:
        print(
            f"\nnote: the pseudonymisation key has changed since the last clean (fingerprint "
            f"{old_key} -> {result.key_fingerprint}): every person_id is new"
        )
    print(f"\ncleaned in {time.perf_counter() - start:.1f}s -> {out}")
    print(f"cleaning log: {out / 'qa' / 'cleaning_log.csv'}")
    return _failed_sites(result)


def _remove_leftovers(cfg: StudyConfig) -> None:
    freed = remove_leftovers(
        cfg.processed_dir, keep=("report_logs",), patterns=(".linkeval-parts-*",)
    )
    if freed:
        print(f"removed {freed / 1e6:,.1f} MB left by an interrupted run")


def _failed_sites(result) -> int:
    """Name each site that could not be cleaned (one line each); 1 if there was one."""
    for code, message in result.failed.items():
        kept = "; its previous rows are kept" if code in result.kept_previous else ""
        print(f"linkeval: error: site {code}: {printable(message)}{kept}", file=sys.stderr)
    if result.failed:
        print(
            f"{len(result.failed)} site(s) failed: {', '.join(result.failed)}; the other "
            "sites were cleaned",
            file=sys.stderr,
        )
        return 1
    return 0


def _command(args: argparse.Namespace) -> str:
    """The command as the lock's holder is shown to a second run."""
    sites = "".join(f" --site {code}" for code in getattr(args, "site", None) or [])
    return f"{args.command}{sites}"


def cmd_report(args: argparse.Namespace) -> int:
    return _report(load_config(args.config), args.site, args.jobs, args.scheduler)


def cmd_run(args: argparse.Namespace) -> int:
    args.site = None
    cleaned = cmd_clean(args)
    return max(cleaned, cmd_report(args))


def _report(cfg, sites, jobs, scheduler=None) -> int:
    from linkeval.report.batch import run_reports

    outcome = run_reports(cfg, sites=sites, jobs=jobs, scheduler=scheduler)
    index = outcome.folder / "index.html"
    if outcome.failed:
        print(f"\n{len(outcome.failed)} report(s) failed; see {index}", file=sys.stderr)
        return 1
    print(f"\nreports: {index}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from linkeval.synthetic import generate_study

    root = args.root.resolve()
    print(f"linkeval {__version__}: synthetic demo (seed {args.seed}); every person is made up")
    study = generate_study(
        root / "data",
        seed=args.seed,
        raw_dir=root / "data" / "raw" / "demo",
        config_path=root / "config" / "demo.yaml",
        processed_dir=root / "data" / "processed" / "demo",
        reports_dir=root / "reports" / "demo",
    )
    print(f"raw exports:  {root / 'data' / 'raw' / 'demo'}")
    cfg = load_config(study.config_path)
    cleaned = _clean(cfg, DEMO_KEY, None, None, "demo", args.scheduler)
    print(f"\nconfig:       {cfg.path}\n")
    return max(cleaned, _report(cfg, None, args.jobs, args.scheduler))


def _print_summary(result) -> None:
    summary = result.summary.copy()
    with pd.option_context("display.width", 120):
        print("\nrows read / kept / rejected / flagged per site and table:")
        print(summary.to_string(index=False))
        if len(result.log):
            rejected = result.log[result.log["action"] == "rejected"]
            if len(rejected):
                counts = rejected.groupby(["table", "rule"]).size().rename("rows").reset_index()
                print("\nrejected rows by rule (details in the cleaning log):")
                print(counts.to_string(index=False))
    for row in summary[summary["rows_kept"] == 0].itertuples():
        why = (
            "the export has no data rows"
            if row.rows_read == 0
            else f"all {row.rows_read:,} rows were rejected"
        )
        print(f"note: site {row.site} {row.table}: no rows kept ({why})")
