"""Kill `linkeval clean` and `linkeval report` at random moments; check what a reader sees.

    .venv/bin/python benchmarks/fault_injection.py [--kills 20] [--seed 0] [--minimal-notebooks]

A two-site synthetic study is cleaned and reported once (timing each command). Then, kill by
kill, `clean` or `report` (in turn) is started and sent SIGKILL after a random delay between 0
and 1.2 times its usual duration (so some runs finish). All the while a reader thread reads the
processed folder and the reports as a user would, and records every version it sees that is
not whole and consistent: a processed version whose tables disagree with its manifest (row
counts, sites) or miss a file, a reports run whose index, run.json and pages do not match.
After each kill the script waits for the run's worker processes and kernels to go (they carry a
marker in their environment) and counts any that stay. At the end one complete clean and one
complete report must leave no leftovers: only the lock, the current version and the kernel
logs in each `.linkeval/<name>/`, no staging folder, no temporary file.

`--minimal-notebooks` uses three one-cell notebooks (kernels start and stop, pages are made,
nothing is analysed) so that report runs take seconds; the default uses the real notebooks.
The exit code is 0 when every check held. docs/design.md, 'Runs and atomic writes'.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from linkeval.io import current_version, state_dir  # noqa: E402
from linkeval.schema import SCHEMAS  # noqa: E402
from linkeval.synthetic import generate_study  # noqa: E402

MARKER = "LINKEVAL_FAULT_RUN"


@dataclass
class Outcome:
    kills: list[dict] = field(default_factory=list)
    reads: int = 0
    inconsistent: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.inconsistent or self.orphans or self.leftovers or self.failures)


def minimal_notebooks(folder: Path) -> Path:
    """Three notebooks with the parameters the batch injects and one small cell each."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, params in (
        ("site_descriptive", 'config = ""\nsite = "A"'),
        ("site_change", 'config = ""\nsite = "A"'),
        ("cross_site", 'config = ""'),
    ):
        nb = nbformat.v4.new_notebook()
        nb.cells = [
            nbformat.v4.new_code_cell(params, metadata={"tags": ["parameters"]}),
            nbformat.v4.new_code_cell(
                "import os, time\ntime.sleep(1)\n"
                "print('key in kernel:', 'LINKEVAL_KEY' in os.environ)"
            ),
        ]
        nb.metadata["kernelspec"] = {
            "name": "python3",
            "display_name": "Python 3",
            "language": "python",
        }
        nbformat.write(nb, folder / f"{name}.ipynb")
    return folder


# -- what a reader sees ------------------------------------------------------------------------


def check_processed(processed: Path) -> str | None:
    """None if the current processed version is whole and consistent, else what is wrong."""
    for _ in range(3):  # a version replaced while being read: read the new one
        if not os.path.lexists(processed):
            return None  # nothing written yet
        version = current_version(processed)
        try:
            manifest = json.loads((version / "manifest.json").read_text())
            for name in SCHEMAS:
                rows = pq.read_metadata(version / f"{name}.parquet").num_rows
                if rows != manifest["rows"][name]:
                    return (
                        f"{version.name}: {name} has {rows} rows, manifest says "
                        f"{manifest['rows'][name]}"
                    )
            sites = pq.read_table(version / "qa" / "summary.parquet", columns=["site"])
            if sorted(set(sites.column("site").to_pylist())) != manifest["sites"]:
                return f"{version.name}: summary sites differ from the manifest"
            if list(version.rglob("*.tmp")):
                return f"{version.name}: temporary files in a current version"
            return None
        except FileNotFoundError:
            if version.exists() and current_version(processed) == version:
                return f"{version.name}: a file is missing from the current version"
    return "the processed version kept changing under the reader"


def check_reports(latest: Path) -> str | None:
    """None if the current reports run is whole: index, methods and every page it lists."""
    for _ in range(3):
        if not os.path.lexists(latest):
            return None
        version = current_version(latest)
        try:
            results = json.loads((version / "run.json").read_text())
            missing = [
                r["html"] for r in results if r.get("html") and not (version / r["html"]).is_file()
            ]
            for page in ("index.html", "methods.html", "output_checks.csv"):
                if not (version / page).is_file():
                    missing.append(page)
            return f"{version.name}: missing {', '.join(missing)}" if missing else None
        except FileNotFoundError:
            if version.exists() and current_version(latest) == version:
                return f"{version.name}: run.json missing from the current run"
    return "the reports run kept changing under the reader"


class Reader(threading.Thread):
    """Reads the processed folder and the reports every 20 ms while runs come and go."""

    def __init__(self, processed: Path, latest: Path, outcome: Outcome) -> None:
        super().__init__(daemon=True)
        self.processed, self.latest, self.outcome = processed, latest, outcome
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            for problem in (check_processed(self.processed), check_reports(self.latest)):
                if problem and problem not in self.outcome.inconsistent:
                    self.outcome.inconsistent.append(problem)
            self.outcome.reads += 1
            time.sleep(0.02)


# -- runs, kills and what they leave -------------------------------------------------------------


def marked_processes(marker: str) -> list[str]:
    """Live processes (not zombies) whose environment carries ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker.encode() not in (entry / "environ").read_bytes():
                continue
            status = (entry / "status").read_text()
            if "\nState:\tZ" not in status:
                found.append(f"{entry.name} {(entry / 'cmdline').read_bytes()[:80]!r}")
        except OSError:
            continue
    return found


def lasting_processes(marker: str, seconds: float = 15) -> list[str]:
    """The marked processes still there after ``seconds``: a run's helpers (multiprocessing's
    resource tracker and forkserver, kernels) take a moment to notice that it has ended, even
    when it ended normally."""
    deadline = time.monotonic() + seconds
    while marked_processes(marker) and time.monotonic() < deadline:
        time.sleep(0.2)
    return marked_processes(marker)


def command(kind: str, config: Path) -> list[str]:
    extra = ["--jobs", "2"]
    return [sys.executable, "-m", "linkeval.cli", kind, "--config", str(config), *extra]


def start(kind: str, config: Path, env: dict) -> subprocess.Popen:
    # Output to a file, not a pipe: a leftover worker holding a pipe would hang the script.
    with tempfile.TemporaryFile() as log:
        return subprocess.Popen(command(kind, config), env=env, cwd=ROOT, stdout=log, stderr=log)


def leftovers(processed: Path, latest: Path) -> list[str]:
    found = []
    for final, allowed in ((processed, {"lock", "report_logs"}), (latest, {"lock"})):
        state = state_dir(final)
        current = current_version(final) if os.path.lexists(final) else None
        if state.is_dir():
            found += [
                str(p) for p in state.iterdir() if p.name not in allowed and p.resolve() != current
            ]
        found += [str(p) for p in final.parent.glob(f".{final.name}.*")]
        found += [str(p) for p in final.parent.glob(".linkeval-parts-*")]
    found += [str(p) for p in processed.parent.rglob("*.tmp")]
    return found


def run(
    kills: int = 20, seed: int = 0, minimal: bool = False, out: Path | None = None, progress=print
) -> Outcome:
    out = Path(out or tempfile.mkdtemp(prefix="linkeval-faults-"))
    study = generate_study(out / "study", n_referrals=1500, n_sites=2, seed=seed)
    config = study.config_path
    processed, latest = out / "study" / "processed", out / "study" / "reports" / "latest"
    run_id = uuid.uuid4().hex
    env = dict(os.environ, **{MARKER: run_id})
    env.pop("LINKEVAL_FAULT_AT", None)
    if minimal:
        env["LINKEVAL_NOTEBOOKS"] = str(minimal_notebooks(out / "notebooks"))
    outcome = Outcome()
    durations = {}
    for kind in ("clean", "report"):
        started = time.perf_counter()
        proc = start(kind, config, env)
        if proc.wait() != 0:
            outcome.failures.append(f"first {kind} exited {proc.returncode}")
            return outcome
        durations[kind] = time.perf_counter() - started
    progress(f"clean takes {durations['clean']:.1f}s, report {durations['report']:.1f}s")
    rng = random.Random(seed)
    reader = Reader(processed, latest, outcome)
    reader.start()
    try:
        for i in range(kills):
            kind = ("clean", "report")[i % 2]
            delay = rng.uniform(0, 1.2 * durations[kind])
            proc = start(kind, config, env)
            try:
                proc.wait(timeout=delay)
                result = f"finished ({proc.returncode})"
                if proc.returncode not in (0, 1):
                    outcome.failures.append(f"kill {i + 1}: {kind} exited {proc.returncode}")
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                result = "killed"
            stayed = lasting_processes(run_id)
            outcome.orphans += stayed
            outcome.kills.append(
                {
                    "n": i + 1,
                    "command": kind,
                    "after_s": round(delay, 2),
                    "result": result,
                    "orphans": len(stayed),
                }
            )
            progress(
                f"[{i + 1}/{kills}] {kind} after {delay:.1f}s: {result}; "
                f"{len(stayed)} orphan(s); {len(outcome.inconsistent)} inconsistent "
                f"version(s) seen in {outcome.reads} reads"
            )
        for kind in ("clean", "report"):  # the next runs tidy up after the dead ones
            proc = start(kind, config, env)
            if proc.wait() != 0:
                outcome.failures.append(f"final {kind} exited {proc.returncode}")
    finally:
        reader.stop.set()
        reader.join()
    outcome.leftovers = leftovers(processed, latest)
    outcome.orphans += lasting_processes(run_id)
    return outcome


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--minimal-notebooks", action="store_true")
    parser.add_argument("--out", type=Path, default=None, help="work folder (default: a temp)")
    args = parser.parse_args()
    started = time.perf_counter()
    outcome = run(args.kills, args.seed, args.minimal_notebooks, args.out)
    killed = sum(k["result"] == "killed" for k in outcome.kills)
    print(
        f"\n{len(outcome.kills)} runs, {killed} killed, "
        f"{len(outcome.kills) - killed} finished, in {time.perf_counter() - started:.0f}s"
    )
    print(f"reader: {outcome.reads} reads, {len(outcome.inconsistent)} inconsistent versions")
    print(
        f"orphan processes: {len(outcome.orphans)}; leftovers after the next runs: "
        f"{len(outcome.leftovers)}; failures: {len(outcome.failures)}"
    )
    for problem in outcome.inconsistent + outcome.orphans + outcome.leftovers + outcome.failures:
        print("  ", problem)
    print("OK" if outcome.ok else "FAILED")
    return 0 if outcome.ok else 1


if __name__ == "__main__":
    sys.exit(main())
