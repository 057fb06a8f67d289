"""Do two runs give the same results? Processed tables and the numbers on the report pages.

    python benchmarks/compare_runs.py PROCESSED_A PROCESSED_B [REPORTS_A REPORTS_B]

Processed tables are compared as read back (same rows, columns, dtypes and values; manifest
timestamps are not data). Report pages are compared as the text a reader sees, with the run
metadata (dates, hashes, version) taken out. ``--ignore TEXT`` leaves out page lines that
contain TEXT (for example a row known to differ between the two runs). Exit 0 when everything
agrees, 1 with a list of differences otherwise.

Used to check that a refactor changes nothing and that two report runs on the same data give
the same pages.
"""

from __future__ import annotations

import argparse
import html
import re
import sys
from pathlib import Path

import pandas as pd

META = re.compile(
    r"(Report date|Run|Data cleaned|Config|Data|linkeval version|linkeval)\b[^<]*?\d[^<]*"
)
TAG = re.compile(r"<[^>]+>")
STYLE_OR_SCRIPT = re.compile(r"<(style|script)\b.*?</\1>", re.S | re.I)
IMAGE = re.compile(r'src="data:image/[^"]+"')


def compare_processed(a: Path, b: Path) -> list[str]:
    problems = []
    names = sorted(
        {p.relative_to(a).as_posix() for p in a.rglob("*.parquet")}
        | {p.relative_to(b).as_posix() for p in b.rglob("*.parquet")}
    )
    for name in names:
        if not (a / name).is_file() or not (b / name).is_file():
            problems.append(f"{name}: only in one run")
            continue
        left, right = pd.read_parquet(a / name), pd.read_parquet(b / name)
        try:
            pd.testing.assert_frame_equal(left, right, check_exact=True)
        except AssertionError as exc:
            problems.append(f"{name}: {str(exc).splitlines()[0]} {str(exc)[:300]!r}")
    return problems


def page_text(path: Path, ignore: list[str]) -> list[str]:
    text = STYLE_OR_SCRIPT.sub("", path.read_text(encoding="utf-8"))
    text = IMAGE.sub("", text)
    text = re.sub(r"<(br|/p|/tr|/div|/h\d|/li|/caption|/table)\b[^>]*>", "\n", text)
    text = re.sub(r"</t[dh]>", " | ", text)
    lines = [html.unescape(TAG.sub("", line)).strip() for line in text.splitlines()]
    lines = [META.sub("", line).strip() for line in lines]
    return [line for line in lines if line and not any(i in line for i in ignore)]


def compare_reports(a: Path, b: Path, ignore: list[str]) -> list[str]:
    problems = []
    pages = sorted(
        {p.relative_to(a).as_posix() for p in a.rglob("*.html")}
        | {p.relative_to(b).as_posix() for p in b.rglob("*.html")}
    )
    for name in pages:
        if not (a / name).is_file() or not (b / name).is_file():
            problems.append(f"{name}: only in one run")
            continue
        left, right = page_text(a / name, ignore), page_text(b / name, ignore)
        if left != right:
            diff = [f"  - {x}\n  + {y}" for x, y in zip(left, right, strict=False) if x != y]
            extra = abs(len(left) - len(right))
            problems.append(
                f"{name}: {len(diff)} lines differ"
                + (f", {extra} more lines in one run" if extra else "")
                + "\n"
                + "\n".join(diff[:5])
            )
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("processed", nargs=2, type=Path)
    parser.add_argument("reports", nargs="*", type=Path)
    parser.add_argument("--ignore", action="append", default=[])
    args = parser.parse_args(argv)
    problems = compare_processed(*args.processed)
    if len(args.reports) == 2:
        problems += compare_reports(*args.reports, args.ignore)
    for p in problems:
        print(p)
    print("same" if not problems else f"{len(problems)} differences")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
