"""The ``linkeval`` command (docs/design.md, 'CLI').

Exit codes: 0 success; 1 some site failed; 2 bad usage, config or input. Problems a user can fix
are printed as one line on stderr, never as a traceback; text that came from the data is printed
with control characters (terminal escapes) made visible.

Each command imports what it uses when it runs: ``linkeval report`` and its worker processes
(which import this module again) then hold no cleaning or statistics code.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

import pandas as pd

from linkeval._version import __version__
from linkeval.config import StudyConfig, load_config
from linkeval.errors import LinkevalError, SitesFailed
from linkeval.io import folder_lock, remove_leftovers
from linkeval.pseudonymise import DEMO_KEY, key_fingerprint, load_key


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        return args.func(args) or 0
    except SitesFailed as exc:
        for code, message in exc.failed.items():
            print(f"linkeval: error: site {code}: {printable(message)}", file=sys.stderr)
        return exc.exit_code
    except LinkevalError as exc:
        print(f"linkeval: error: {printable(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("linkeval: interrupted; previous outputs are unchanged", file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="linkeval",
        description="Clean, score and report routine and questionnaire data from "
        "social-prescribing link-worker services.",
    )
    p.add_argument("--version", action="version", version=f"linkeval {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser("demo", help="synthetic 7-site data -> clean -> reports")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    _workers(demo, "parallel report jobs")
    demo.add_argument(
        "--root",
        type=Path,
        default=Path("."),
        help="project folder that gets config/, data/ and reports/ (default .)",
    )
    demo.set_defaults(func=cmd_demo)

    check = sub.add_parser("check", help="validate config and raw files; list unmapped labels")
    check.add_argument("--config", type=Path, required=True)
    check.add_argument("--site", action="append", help="only this site (repeatable)")
    check.set_defaults(func=cmd_check)

    clean = sub.add_parser("clean", help="raw exports -> processed tables + cleaning log")
    clean.add_argument("--config", type=Path, required=True)
    clean.add_argument("--site", action="append", help="only this site (repeatable)")
    _workers(clean, "sites cleaned in parallel (default: CPU count for large data)")
    clean.set_defaults(func=cmd_clean)

    report = sub.add_parser("report", help="run the report notebooks -> HTML + index.html")
    report.add_argument("--config", type=Path, required=True)
    report.add_argument("--site", action="append", help="only this site (repeatable)")
    _workers(report, "parallel notebooks (default: CPUs)")
    report.set_defaults(func=cmd_report)

    run = sub.add_parser("run", help="clean + report")
    run.add_argument("--config", type=Path, required=True)
    _workers(run, "parallel sites and notebooks (default: as clean and report)")
    run.set_defaults(func=cmd_run)

    synth = sub.add_parser("synth", help="synthetic raw exports (and study.yaml) at any scale")
    synth.add_argument("--out", type=Path, required=True, help="output folder")
    synth.add_argument(
        "--referrals",
        type=int,
        default=None,
        help="clean referrals in total (default: demo sizes, 150-700 per site)",
    )
    synth.add_argument(
        "--sites",
        type=int,
        default=7,
        help="number of sites, 1 or more (default 7; beyond 7 the export styles repeat)",
    )
    synth.add_argument("--seed", type=int, default=0)
    synth.set_defaults(func=cmd_synth)
    return p


def _workers(command: argparse.ArgumentParser, jobs_help: str) -> None:
    """``--jobs N`` (local worker processes) or ``--scheduler ADDRESS`` (a Dask cluster)."""
    where = command.add_mutually_exclusive_group()
    where.add_argument("--jobs", type=int, default=None, help=jobs_help)
    where.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        default=None,
        help="run on the Dask cluster at this scheduler address (tcp://host:8786) instead of "
        "local processes; its workers need linkeval and this machine's file system",
    )


# --------------------------------------------------------------------------------------------


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


CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str, keep_newlines: bool = False) -> str:
    """Text for the terminal: control characters (ANSI escapes) shown as \\xNN, not obeyed.

    >>> printable("label \\x1b[31mred")
    'label \\\\x1b[31mred'
    """
    text = CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", str(text))
    return text if keep_newlines else text.replace("\n", "\\n")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
