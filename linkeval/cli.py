"""The ``linkeval`` command (docs/design.md, 'CLI').

Exit codes: 0 success; 1 some site failed; 2 bad usage, config or input. Problems a user can fix
are printed as one line on stderr, never as a traceback; text that came from the data is printed
with control characters (terminal escapes) made visible.

This module is the parser and nothing more: it imports no pandas, so the worker processes of
``linkeval report``, which import the main module again (multiprocessing's spawn), stay light.
What each command does is in :mod:`linkeval.commands`, imported when a command runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from linkeval._version import __version__
from linkeval.errors import LinkevalError, SitesFailed, printable


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        import linkeval.commands as commands

        return getattr(commands, args.func)(args) or 0
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
    demo.set_defaults(func="cmd_demo")

    check = sub.add_parser("check", help="validate config and raw files; list unmapped labels")
    check.add_argument("--config", type=Path, required=True)
    check.add_argument("--site", action="append", help="only this site (repeatable)")
    check.set_defaults(func="cmd_check")

    clean = sub.add_parser("clean", help="raw exports -> processed tables + cleaning log")
    clean.add_argument("--config", type=Path, required=True)
    clean.add_argument("--site", action="append", help="only this site (repeatable)")
    _workers(clean, "sites cleaned in parallel (default: CPU count for large data)")
    clean.set_defaults(func="cmd_clean")

    report = sub.add_parser("report", help="run the report notebooks -> HTML + index.html")
    report.add_argument("--config", type=Path, required=True)
    report.add_argument("--site", action="append", help="only this site (repeatable)")
    _workers(report, "parallel notebooks (default: CPUs)")
    report.set_defaults(func="cmd_report")

    run = sub.add_parser("run", help="clean + report")
    run.add_argument("--config", type=Path, required=True)
    _workers(run, "parallel sites and notebooks (default: as clean and report)")
    run.set_defaults(func="cmd_run")

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
    synth.set_defaults(func="cmd_synth")
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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
