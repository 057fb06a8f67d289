"""Raw exports -> canonical, pseudonymised tables and a cleaning log, for the whole study.

Sites are cleaned independently (site.py), in parallel when worthwhile, then combined; the
reliable change and MID indicators need the whole study's baselines, so they are added once,
after the merge. Every raw row ends in a canonical table or in the cleaning log as rejected
(log.py), and :func:`clean_study` checks that before returning. See docs/design.md,
'Canonical tables' and 'Identity and pseudonymisation'.
"""

from __future__ import annotations

import glob
import hashlib
import json
import multiprocessing
import os
import pickle
import shutil
import tempfile
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from linkeval import schema
from linkeval._version import __version__
from linkeval.cleaning.log import check_accounting
from linkeval.cleaning.site import CleanResult, clean_site
from linkeval.config import StudyConfig
from linkeval.instruments import INSTRUMENTS
from linkeval.io import write_files_atomic
from linkeval.stats.pairing import add_change_indicators, reliabilities

PARALLEL_MIN_BYTES = 50_000_000

__all__ = ["CleanResult", "clean_study", "write_outputs"]


def clean_study(
    cfg: StudyConfig,
    key: bytes,
    sites: list[str] | None = None,
    today: pd.Timestamp | None = None,
    jobs: int | None = 1,
) -> CleanResult:
    """Clean every site (or the named ones) in memory. Nothing is written.

    Sites are independent, so with ``jobs`` > 1 they are cleaned in parallel worker processes.
    ``jobs=None`` chooses: one process per CPU when the raw files are large enough (over
    50 MB) for that to pay for starting the workers, else one (the CLI's default).
    """
    today = pd.Timestamp(today or pd.Timestamp.today()).normalize()
    codes = sites if sites else list(cfg.sites)
    for code in codes:
        cfg.site(code)
    if jobs is None:
        large = _raw_bytes(cfg, codes) > PARALLEL_MIN_BYTES
        jobs = (os.cpu_count() or 1) if large else 1
    jobs = max(1, min(jobs, len(codes)))
    if jobs == 1:
        results = [clean_site(cfg, code, key, today) for code in codes]
    else:
        results = _clean_in_parallel(cfg, codes, key, today, jobs)
    combined = _combine(results)
    check_accounting(combined.summary)
    combined.tables["pairs"] = _with_change_indicators(cfg, combined.tables)
    return combined


def _clean_in_parallel(cfg: StudyConfig, codes: list[str], key: bytes, today: pd.Timestamp,
                       jobs: int) -> list[CleanResult]:
    """Each site in a worker process; results in the order of ``codes``."""
    # Largest sites first, so that the workers finish together.
    order = sorted(codes, key=lambda c: -_raw_bytes(cfg, [c]))
    context = multiprocessing.get_context("forkserver")
    n = len(codes)
    # Each worker hands its site back as a file: a pipe moves a gigabyte slowly, and a
    # worker stays blocked until its result is read. The files sit beside the processed
    # folder (pseudonymised data stays in the study's data area) and are removed at once.
    parts = Path(tempfile.mkdtemp(prefix=".linkeval-parts-", dir=_parts_parent(cfg)))
    try:
        with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
            files = dict(zip(order, pool.map(_clean_site_to_file, [cfg] * n, order,
                                             [key] * n, [today] * n, [parts] * n),
                             strict=True))
        return [_load_part(files[code]) for code in codes]
    finally:
        shutil.rmtree(parts, ignore_errors=True)


def _combine(results: list[CleanResult]) -> CleanResult:
    # Table by table, letting go of each site's part once it is combined: the peak holds one
    # table twice, not the whole study.
    tables = {t: _concat([r.tables.pop(t) for r in results], t) for t in schema.SCHEMAS}
    return CleanResult(
        tables=tables,
        log=_concat([r.log for r in results], "cleaning_log"),
        summary=pd.concat([r.summary for r in results], ignore_index=True),
        unmapped=pd.concat([r.unmapped for r in results], ignore_index=True),
        files=pd.concat([r.files for r in results], ignore_index=True),
    )


def _with_change_indicators(cfg: StudyConfig, tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Reliable change and MID flags, from the whole study's baseline items and scores."""
    if not len(tables["pairs"]):
        return tables["pairs"]
    settings = {name: cfg.instrument_settings(name) for name in INSTRUMENTS}
    pairs = add_change_indicators(tables["pairs"], reliabilities(tables["responses"]), settings)
    return schema.validate("pairs", pairs)


def _clean_site_to_file(cfg: StudyConfig, code: str, key: bytes, today: pd.Timestamp,
                        folder: Path) -> Path:
    path = folder / f"{code}.pickle"
    with path.open("wb") as fh:
        pickle.dump(clean_site(cfg, code, key, today), fh, protocol=pickle.HIGHEST_PROTOCOL)
    return path


def _load_part(path: Path) -> CleanResult:
    with path.open("rb") as fh:
        result = pickle.load(fh)  # written by this run's own workers a moment ago
    path.unlink()
    return result


def _parts_parent(cfg: StudyConfig) -> Path:
    parent = cfg.processed_dir.parent
    parent.mkdir(parents=True, exist_ok=True)
    return parent


def _raw_bytes(cfg: StudyConfig, codes: list[str]) -> int:
    total = 0
    for code in codes:
        for source in cfg.sites[code].sources:
            paths = map(Path, glob.glob(str(cfg.raw_dir / source.path)))
            total += sum(p.stat().st_size for p in paths if p.is_file())
    return total


def _concat(frames: list[pd.DataFrame], table: str) -> pd.DataFrame:
    frames = [f for f in frames if len(f)]
    if not frames:
        return schema.empty(table)
    return pd.concat(frames, ignore_index=True)  # each part was validated by site._select


# --------------------------------------------------------------------------------------------
# Writing


def write_outputs(cfg: StudyConfig, result: CleanResult, sites: list[str] | None = None) -> Path:
    """Validate and write the canonical tables and QA files atomically.

    With ``sites``, only those sites' rows are replaced and the other sites' rows are kept.
    All tables are computed and validated before the first file is replaced.
    """
    out = cfg.processed_dir
    tables = dict(result.tables)
    log, summary, unmapped = result.log, result.summary, result.unmapped
    if sites:
        tables = {t: _merge_existing(out / f"{t}.parquet", f, sites) for t, f in tables.items()}
        # Reliability and baseline SD are study-wide: recompute them on the merged study.
        tables["pairs"] = _with_change_indicators(cfg, tables)
        log = _merge_existing(out / "qa" / "cleaning_log.parquet", log, sites)
        summary = _merge_existing(out / "qa" / "summary.parquet", summary, sites)
        unmapped = _merge_existing(out / "qa" / "unmapped_labels.parquet", unmapped, sites)
    # Tables straight from clean_study were validated site by site; merged ones are re-checked.
    validated = {t: schema.validate(t, f) for t, f in tables.items()} if sites else tables
    log = schema.validate("cleaning_log", log)
    qa = out / "qa"
    files: dict[Path, pd.DataFrame | str] = {out / f"{t}.parquet": f for t, f in validated.items()}
    files.update({
        qa / "cleaning_log.parquet": log, qa / "cleaning_log.csv": log,
        qa / "summary.parquet": summary, qa / "summary.csv": summary,
        qa / "unmapped_labels.parquet": unmapped, qa / "unmapped_labels.csv": unmapped,
        out / "manifest.json": _manifest(cfg, result.files, summary, validated),
    })
    write_files_atomic(files)
    return out


def _manifest(cfg: StudyConfig, raw_files: pd.DataFrame, summary: pd.DataFrame,
              tables: dict[str, pd.DataFrame]) -> str:
    """What was cleaned, from which files, by which version and config (as JSON)."""
    manifest = {
        "package": "linkeval",
        "version": __version__,
        "cleaned_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "config": str(cfg.path),
        "config_sha256": cfg.sha256,
        "demo": cfg.demo,
        "sites": sorted(summary["site"].unique().tolist()),
        "raw_files": raw_files.to_dict(orient="records"),
        "data_sha256": _data_hash(raw_files),
        "rows": {t: len(f) for t, f in tables.items()},
    }
    return json.dumps(manifest, indent=2, default=str)


def _merge_existing(path: Path, new: pd.DataFrame, sites: list[str]) -> pd.DataFrame:
    """``new`` plus the rows of other sites already in ``path`` (a partial re-clean)."""
    if not path.is_file():
        return new
    old = pd.read_parquet(path)
    old = old[~old["site"].isin(sites)]
    return pd.concat([old, new], ignore_index=True) if len(old) else new


def _data_hash(files: pd.DataFrame) -> str:
    if files.empty:
        return ""
    text = "\n".join(sorted(f"{r.site}|{r.file}|{r.sha256}" for r in files.itertuples()))
    return hashlib.sha256(text.encode()).hexdigest()
