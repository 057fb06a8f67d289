"""Raw exports -> canonical, pseudonymised tables and a cleaning log, for the whole study.

Sites are cleaned independently (site.py), in parallel when worthwhile, then combined; the
reliable change and MID indicators need the whole study's baselines, so they are added once,
after the merge. Every raw row ends in a canonical table or in the cleaning log as rejected
(log.py), and :func:`clean_study` checks that before returning. A site whose config or files
are wrong does not stop the others: it is named in ``CleanResult.failed`` and keeps its previous
rows. See docs/design.md, 'Canonical tables', 'Identity and pseudonymisation' and 'Runs and
atomic writes'.
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
from collections.abc import Iterator, Mapping, MutableMapping
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from linkeval import schema
from linkeval._version import __version__
from linkeval.cleaning.log import check_accounting, hold_back_rare_labels
from linkeval.cleaning.site import CleanResult, clean_site
from linkeval.config import StudyConfig
from linkeval.errors import LinkevalError, SitesFailed
from linkeval.instruments import INSTRUMENTS
from linkeval.io import (
    SORTED_IF,
    InStoreOrder,
    current_version,
    fault_point,
    folder_lock,
    read_parquet,
    state_dir,
    write_version,
)
from linkeval.parallel import Cluster, Hidden, NotShared, check_shared, die_with_parent, finished
from linkeval.pseudonymise import key_fingerprint
from linkeval.stats.pairing import (
    CHANGE_INDICATORS,
    add_change_indicators,
    alpha_from_sums,
    alpha_sums,
    baseline_sds,
)

PARALLEL_MIN_BYTES = 50_000_000

__all__ = ["CleanResult", "SitesFailed", "StudyTables", "check_key", "clean_study", "write_outputs"]


def clean_study(
    cfg: StudyConfig,
    key: bytes,
    sites: list[str] | None = None,
    today: pd.Timestamp | None = None,
    jobs: int | None = 1,
    scheduler: str | None = None,
) -> CleanResult:
    """Clean every site (or the named ones) in memory. Nothing is written.

    Sites are independent, so with ``jobs`` > 1 they are cleaned in parallel worker processes.
    ``jobs=None`` chooses: one process per CPU when the raw files are large enough (over
    50 MB) for that to pay for starting the workers, else one (the CLI's default). With
    ``scheduler``, each site is cleaned as a task on that Dask cluster instead (``jobs`` is
    not used).

    A site whose config or files are wrong (a :class:`LinkevalError`) is left out and named,
    with the error, in ``failed``; the others are cleaned. When every site fails, the error
    is raised (:class:`SitesFailed` for several).

    Parameters
    ----------
    cfg : StudyConfig
        The study config (:func:`linkeval.config.load_config`).
    key : bytes
        The pseudonymisation key (:func:`linkeval.pseudonymise.load_key`).
    sites : list of str, optional
        Site codes to clean; None (default) or empty: every site in the config.
    today : Timestamp, optional
        The date the data are judged against (e.g. dates in the future are rejected);
        default today. Pass one for a reproducible clean.
    jobs : int or None, default 1
        Worker processes; None chooses (see above).
    scheduler : str, optional
        A Dask scheduler's address (``tcp://host:8786``), whose workers have linkeval and
        share this machine's file system (the same paths).

    Returns
    -------
    CleanResult
        ``tables`` (canonical table name -> DataFrame: ``referrals``, ``referral_reasons``,
        ``contacts``, ``onward_referrals``, ``responses``, ``scores``, ``pairs``, the last
        with reliable change and MID flags), ``log`` (the cleaning log: one row per rejected
        or flagged row and rule), ``summary`` (rows read, kept, rejected and flagged per site
        and source table), ``unmapped`` (labels no vocabulary mapping covers), ``files`` (raw
        files read, with rows and SHA-256), ``failed`` (site -> error) and
        ``key_fingerprint``.

    Raises
    ------
    LinkevalError
        When a named site is not in the config, or every site fails (:class:`SitesFailed`
        when several do); also when the row accounting does not balance, or ``scheduler``
        cannot be reached or its workers do not share the processed folder.

    Notes
    -----
    Row accounting: for every site and source, rows_read = rows_kept + rows_rejected; it is
    checked before returning. Reliable change uses the whole study's baseline SD and
    Cronbach's alpha, so it is added after the sites are combined.

    References
    ----------
    docs/design.md, 'Canonical tables', 'Cleaning log and row accounting', 'Identity and
    pseudonymisation' and 'Pairing and change'.

    Examples
    --------
    >>> import shutil, tempfile
    >>> from linkeval.config import load_config
    >>> from linkeval.pseudonymise import DEMO_KEY
    >>> from linkeval.synthetic import generate_study
    >>> folder = tempfile.mkdtemp()
    >>> cfg = load_config(generate_study(folder, n_referrals=200, n_sites=2, seed=1).config_path)
    >>> result = clean_study(cfg, DEMO_KEY, today=pd.Timestamp("2025-01-01"))
    >>> sorted(result.tables), result.failed  # doctest: +NORMALIZE_WHITESPACE
    (['contacts', 'onward_referrals', 'pairs', 'referral_reasons', 'referrals', 'responses',
      'scores'], {})
    >>> s = result.summary
    >>> s.columns.tolist()
    ['site', 'table', 'rows_read', 'rows_kept', 'rows_rejected', 'rows_flagged']
    >>> bool((s["rows_read"] == s["rows_kept"] + s["rows_rejected"]).all())
    True
    >>> shutil.rmtree(folder)
    """
    today = pd.Timestamp(today or pd.Timestamp.today()).normalize()
    codes = sites if sites else list(cfg.sites)
    for code in codes:
        cfg.site(code)
    if jobs is None:
        large = _raw_bytes(cfg, codes) > PARALLEL_MIN_BYTES
        jobs = (os.cpu_count() or 1) if large else 1
    jobs = max(1, min(jobs, len(codes)))
    if scheduler:
        results, failed = _clean_in_parallel(cfg, codes, key, today, jobs, scheduler)
    elif jobs == 1:
        results, failed = _clean_serially(cfg, codes, key, today)
    else:
        results, failed = _clean_in_parallel(cfg, codes, key, today, jobs)
    if not results:
        if len(failed) == 1:
            raise LinkevalError(next(iter(failed.values())))
        raise SitesFailed(failed)
    combined = _combine(results, [c for c in codes if c not in failed])
    check_accounting(combined.summary)
    # The flags keep each part's rows where they are: still in the store's order.
    flagged = _with_change_indicators(cfg, combined.tables, alpha_from_sums(combined.alpha_sums))
    combined.tables.set_parts("pairs", InStoreOrder(flagged))
    combined.failed = failed
    combined.key_fingerprint = key_fingerprint(key)
    return combined


def _clean_serially(
    cfg: StudyConfig, codes: list[str], key: bytes, today: pd.Timestamp
) -> tuple[list[CleanResult], dict[str, str]]:
    results, failed = [], {}
    for code in codes:
        try:
            results.append(clean_site(cfg, code, key, today))
        except LinkevalError as exc:
            failed[code] = str(exc)
    return results, failed


def _clean_in_parallel(
    cfg: StudyConfig,
    codes: list[str],
    key: bytes,
    today: pd.Timestamp,
    jobs: int,
    scheduler: str | None = None,
) -> tuple[list[CleanResult], dict[str, str]]:
    """Each site in a worker process, or a task on the Dask cluster at ``scheduler``; results
    in the order of ``codes``, and failed sites (a lost Dask worker fails its site).

    Local workers die with this process (``die_with_parent``): a killed run leaves none behind.
    """
    # Largest sites first, so that the workers finish together.
    order = sorted(codes, key=lambda c: -_raw_bytes(cfg, [c]))
    context = multiprocessing.get_context("forkserver")
    # Each worker hands its site back as a file: a pipe moves a gigabyte slowly, and a
    # worker stays blocked until its result is read. The files sit in the processed folder's
    # state directory (pseudonymised data stays in the study's data area) and are removed at
    # once; a killed run's are removed by the next run. Each is loaded as soon as its worker
    # is done, while the others still work (at the end, with fewer sites left than workers,
    # a core is free for it).
    parts = Path(tempfile.mkdtemp(prefix=f"parts-{os.getpid()}-", dir=_parts_parent(cfg)))
    done, failed = {}, {}
    try:
        with _pool(jobs, context, scheduler) as pool:
            if scheduler:  # the key as a task argument no log shows, never in a file
                task, secret = _clean_site_on_worker, Hidden(key)
            else:
                task, secret = _clean_site_to_file, key
            futures = {pool.submit(task, cfg, code, secret, today, parts): code for code in order}
            for code, future in finished(pool, futures):
                try:
                    done[code] = _load_part(future.result())
                except NotShared:
                    raise
                except LinkevalError as exc:
                    failed[code] = str(exc)
                fault_point("clean:workers")
        results = [done[code] for code in codes if code in done]
        return results, {code: failed[code] for code in codes if code in failed}
    finally:
        shutil.rmtree(parts, ignore_errors=True)


def _pool(jobs: int, context, scheduler: str | None) -> ProcessPoolExecutor | Cluster:
    if scheduler:
        return Cluster(scheduler)
    return ProcessPoolExecutor(
        max_workers=jobs, mp_context=context, initializer=die_with_parent, initargs=(os.getpid(),)
    )


def _combine(results: list[CleanResult], codes: list[str]) -> CleanResult:
    """The sites' results (of the sites ``codes``, in that order) as one."""
    # Each table is kept as its sites' parts (StudyTables): writing them joins nothing, and
    # a table is joined only when asked for. Each part was validated by site._select.
    # The questionnaire tables go in site order: each site's are in the store's row order
    # already (site.py, which checks), so the study's are too, and writing them sorts
    # nothing and checks only where one site's rows meet the next's.
    by_site = sorted(range(len(codes)), key=codes.__getitem__)
    tables = {}
    for t, table_schema in schema.SCHEMAS.items():
        if SORTED_IF in table_schema.columns:
            tables[t] = InStoreOrder(results[i].tables.pop(t) for i in by_site)
        else:
            tables[t] = [results[i].tables.pop(t) for i in range(len(results))]
    return CleanResult(
        tables=StudyTables(tables),
        log=schema.concat([r.log for r in results], "cleaning_log"),
        summary=pd.concat([r.summary for r in results], ignore_index=True),
        unmapped=pd.concat([r.unmapped for r in results], ignore_index=True),
        files=pd.concat([r.files for r in results], ignore_index=True),
        alpha_sums=pd.concat([r.alpha_sums for r in results], ignore_index=True),
    )


class StudyTables(MutableMapping):
    """The study's canonical tables by name, each held as its sites' parts until it is first
    asked for, and then joined once (:func:`linkeval.schema.concat`).

    :func:`write_outputs` writes a table's parts one after another, so a clean that only
    writes never joins the item-level tables (at a million referrals, seconds saved). It
    works as a dict does (``tables["pairs"]``, ``dict(tables)``, ``tables.copy()``,
    ``tables | other``) but is not one: ``isinstance(tables, dict)`` is False.

    >>> tables = StudyTables({"pairs": [pd.DataFrame({"n": [1]}), pd.DataFrame({"n": [2]})]})
    >>> len(tables.parts("pairs")), tables["pairs"]["n"].tolist(), len(tables.parts("pairs"))
    (2, [1, 2], 1)
    """

    def __init__(self, parts: dict[str, list[pd.DataFrame]]) -> None:
        self._tables: dict[str, pd.DataFrame | list[pd.DataFrame]] = dict(parts)

    def parts(self, name: str) -> list[pd.DataFrame]:
        """The table as it is held: its parts (a new list of them, so that changing the list
        does not change the table), or the one frame once it was joined."""
        value = self._tables[name]
        return type(value)(value) if isinstance(value, list) else [value]

    def set_parts(self, name: str, parts: list[pd.DataFrame]) -> None:
        """Hold table ``name`` as ``parts``, joined only when it is asked for (as
        :class:`~linkeval.io.InStoreOrder` when they are that)."""
        self._tables[name] = InStoreOrder(parts) if isinstance(parts, InStoreOrder) else list(parts)

    def __getitem__(self, name: str) -> pd.DataFrame:
        value = self._tables[name]
        if isinstance(value, list):
            value = self._tables[name] = schema.concat(value, name)
        return value

    def __setitem__(self, name: str, frame: pd.DataFrame) -> None:
        self._tables[name] = frame

    def __delitem__(self, name: str) -> None:
        del self._tables[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._tables)

    def __len__(self) -> int:
        return len(self._tables)

    def copy(self) -> dict[str, pd.DataFrame]:
        """The tables as a plain dict (each joined), as ``dict.copy`` gives."""
        return dict(self)

    def __or__(self, other: Mapping[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
        return dict(self) | dict(other)

    def __ror__(self, other: Mapping[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
        return dict(other) | dict(self)

    def __repr__(self) -> str:
        rows = (f"{name}: {sum(map(len, self.parts(name))):,} rows" for name in self)
        return f"StudyTables({', '.join(rows)})"


def _with_change_indicators(
    cfg: StudyConfig, tables: Mapping[str, pd.DataFrame], alpha: dict[str, float]
) -> list[pd.DataFrame]:
    """The pairs table's parts with reliable change and MID flags, from the whole study's
    baseline scores and ``alpha`` (each score's Cronbach's alpha, added up from the sites'
    sums). Each part is flagged as it is, not joined first. Only the flags are checked
    again: the other columns were validated site by site.
    """
    parts = _parts(tables, "pairs")
    settings = {name: cfg.instrument_settings(name) for name in INSTRUMENTS}
    sds = baseline_sds(parts)
    return [
        schema.validate_columns(
            "pairs", add_change_indicators(part, alpha, settings, sds), CHANGE_INDICATORS
        )
        if len(part)
        else part
        for part in parts
    ]


def _clean_site_to_file(
    cfg: StudyConfig, code: str, key: bytes, today: pd.Timestamp, folder: Path
) -> Path:
    path = folder / f"{code}.pickle"
    with path.open("wb") as fh:
        pickle.dump(clean_site(cfg, code, key, today), fh, protocol=pickle.HIGHEST_PROTOCOL)
    return path


def _clean_site_on_worker(
    cfg: StudyConfig, code: str, key: Hidden, today: pd.Timestamp, folder: Path
) -> Path:
    """:func:`_clean_site_to_file` as a task on a Dask worker: the part file goes to the shared
    file system (a worker that cannot see ``folder`` says so), the key arrives hidden."""
    check_shared(folder)
    return _clean_site_to_file(cfg, code, key.value, today, folder)


def _load_part(path: Path) -> CleanResult:
    with path.open("rb") as fh:
        result = pickle.load(fh)  # written by this run's own workers a moment ago
    path.unlink()
    return result


def _parts_parent(cfg: StudyConfig) -> Path:
    parent = state_dir(cfg.processed_dir)
    parent.mkdir(parents=True, exist_ok=True)
    return parent


def _raw_bytes(cfg: StudyConfig, codes: list[str]) -> int:
    total = 0
    for code in codes:
        for source in cfg.sites[code].sources:
            paths = map(Path, glob.glob(str(cfg.raw_dir / source.path)))
            total += sum(p.stat().st_size for p in paths if p.is_file())
    return total


# --------------------------------------------------------------------------------------------
# Writing

QA_TABLES = ("cleaning_log", "summary", "unmapped_labels")


def write_outputs(cfg: StudyConfig, result: CleanResult, sites: list[str] | None = None) -> Path:
    """Validate and write the canonical tables, QA files and manifest as one new version.

    With ``sites``, only those sites' rows are replaced and the other sites' rows are kept; a
    site that failed (``result.failed``) keeps its previous rows too, when they were made
    with the same key. All tables are computed and validated first; then the whole processed
    folder is written as a new version and made current in one step (io.write_version), under
    the processed folder's lock. A partial re-clean under another key is refused.

    Parameters
    ----------
    cfg : StudyConfig
        The study config; the tables go to ``cfg.processed_dir``.
    result : CleanResult
        What :func:`clean_study` returned. Its ``kept_previous`` is set to the failed sites
        whose previous rows were kept.
    sites : list of str, optional
        The sites that were cleaned (a partial re-clean); None (default): the whole study.

    Returns
    -------
    Path
        ``cfg.processed_dir``, which now holds the canonical tables as parquet files
        (``referrals.parquet``, ..., ``pairs.parquet``), ``qa/`` (``cleaning_log``,
        ``summary`` and ``unmapped_labels``, each as parquet and CSV) and ``manifest.json``
        (package version, config
        SHA-256, key fingerprint, sites, raw files with rows and SHA-256, data hash).

    Raises
    ------
    LinkevalError
        When another run holds the folder's lock, or a partial re-clean uses another key than
        the processed data's.
    pandera.errors.SchemaErrors
        When a table fails its schema (a cleaner bug, not a data problem).

    Notes
    -----
    Readers (:func:`linkeval.io.load_processed`) see either the old version or the new one,
    never a mix: the new version is written beside the old one and then made current.

    References
    ----------
    docs/design.md, 'Runs and atomic writes' and 'Cleaning log and row accounting'.

    Examples
    --------
    >>> import os, shutil, tempfile
    >>> from linkeval.config import load_config
    >>> from linkeval.pseudonymise import DEMO_KEY
    >>> from linkeval.synthetic import generate_study
    >>> folder = tempfile.mkdtemp()
    >>> cfg = load_config(generate_study(folder, n_referrals=200, n_sites=2, seed=1).config_path)
    >>> out = write_outputs(cfg, clean_study(cfg, DEMO_KEY, today=pd.Timestamp("2025-01-01")))
    >>> out == cfg.processed_dir
    True
    >>> sorted(os.listdir(out))  # doctest: +NORMALIZE_WHITESPACE
    ['contacts.parquet', 'manifest.json', 'onward_referrals.parquet', 'pairs.parquet', 'qa',
     'referral_reasons.parquet', 'referrals.parquet', 'responses.parquet', 'scores.parquet']
    >>> sorted(os.listdir(out / "qa"))  # doctest: +NORMALIZE_WHITESPACE
    ['cleaning_log.csv', 'cleaning_log.parquet', 'summary.csv', 'summary.parquet',
     'unmapped_labels.csv', 'unmapped_labels.parquet']
    >>> shutil.rmtree(folder)
    """
    out = cfg.processed_dir
    with folder_lock(out, "clean"):
        previous = current_version(out)
        manifest = previous_manifest(cfg)
        if sites:
            check_key(cfg, result.key_fingerprint, sites)
        same_key = bool(manifest) and manifest.get("key_fingerprint") == result.key_fingerprint
        cleaned = set(sites or cfg.sites) - set(result.failed)
        old_sites = set(manifest.get("sites", [])) if manifest else _sites_in(previous)
        keep = (
            (old_sites - cleaned)
            if sites
            else (set(result.failed) & old_sites if same_key else set())
        )
        result.kept_previous = sorted(set(result.failed) & keep)
        files = _output_files(cfg, result, previous, keep, manifest)
        write_version(out, files, label="clean")
    return out


def _output_files(
    cfg: StudyConfig, result: CleanResult, previous: Path, keep: set[str], manifest: dict
) -> dict[str, pd.DataFrame | list[pd.DataFrame] | str]:
    """Every file of the new version, by its path inside the processed folder."""
    qa = {
        "cleaning_log": result.log,
        "summary": result.summary,
        "unmapped_labels": hold_back_rare_labels(result.unmapped),
    }
    if keep:
        merged = {
            t: _merge_existing(previous / f"{t}.parquet", result.tables[t], keep)
            for t in result.tables
        }
        # Reliability and baseline SD are study-wide: recompute them on the merged study
        # (alpha from the kept sites' stored responses and the cleaned sites' own sums).
        responses = merged["responses"]
        kept = responses[responses["site"].isin(keep).to_numpy()]
        sums = pd.concat([alpha_sums(kept), result.alpha_sums], ignore_index=True)
        (merged["pairs"],) = _with_change_indicators(cfg, merged, alpha_from_sums(sums))
        # Merged tables are checked again.
        tables = {t: [schema.validate(t, f)] for t, f in merged.items()}
        qa = {t: _merge_existing(previous / "qa" / f"{t}.parquet", f, keep) for t, f in qa.items()}
    else:  # validated site by site, and written as the parts they are held in
        tables = {t: _parts(result.tables, t) for t in result.tables}
    qa["cleaning_log"] = schema.validate("cleaning_log", qa["cleaning_log"])
    raw_files = result.files
    if keep and manifest.get("raw_files"):
        old = pd.DataFrame(manifest["raw_files"])
        raw_files = pd.concat([old[old["site"].isin(keep)], raw_files], ignore_index=True)
    files: dict[str, pd.DataFrame | list[pd.DataFrame] | str] = {
        f"{t}.parquet": parts for t, parts in tables.items()
    }
    for name, frame in qa.items():
        files[f"qa/{name}.parquet"] = frame
        files[f"qa/{name}.csv"] = frame
    rows = {t: sum(map(len, parts)) for t, parts in tables.items()}
    files["manifest.json"] = _manifest(cfg, raw_files, qa["summary"], rows, result.key_fingerprint)
    return files


def _parts(tables: Mapping[str, pd.DataFrame], name: str) -> list[pd.DataFrame]:
    """A table as the parts it is held in (:class:`StudyTables`), or as one frame."""
    return tables.parts(name) if isinstance(tables, StudyTables) else [tables[name]]


def previous_manifest(cfg: StudyConfig) -> dict:
    """The current processed version's manifest ({} when there is none yet)."""
    path = current_version(cfg.processed_dir) / "manifest.json"
    if not path.is_file():
        return {}
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise LinkevalError(
            f"{path}: damaged or unreadable; run linkeval clean for all sites "
            "(without --site) to write the processed data again"
        ) from None
    return manifest if isinstance(manifest, dict) else {}


def check_key(cfg: StudyConfig, fingerprint: str, sites: list[str] | None) -> None:
    """Refuse a partial re-clean (``sites``) under another key than the processed data's.

    A person would get two person_ids; the manifest's ``key_fingerprint`` (an HMAC of a fixed
    text, not the key) tells the keys apart.
    """
    if not sites:
        return
    manifest = previous_manifest(cfg)
    if not manifest:
        return
    old = manifest.get("key_fingerprint")
    if old is None:
        raise LinkevalError(
            f"{cfg.processed_dir}: its manifest.json records no key fingerprint (cleaned by an "
            "earlier linkeval), so --site cannot check the key; clean all sites once, without "
            "--site"
        )
    if old != fingerprint:
        raise LinkevalError(
            f"{cfg.processed_dir}: cleaned with a different pseudonymisation key (fingerprint "
            f"{old}; this key's is {fingerprint}): --site would give one person two "
            "person_ids; use the study's key, or clean all sites without --site"
        )


def _manifest(
    cfg: StudyConfig,
    raw_files: pd.DataFrame,
    summary: pd.DataFrame,
    rows: dict[str, int],
    fingerprint: str,
) -> str:
    """What was cleaned, from which files, by which version, config and key (as JSON)."""
    manifest = {
        "package": "linkeval",
        "version": __version__,
        "cleaned_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "config": str(cfg.path),
        "config_sha256": cfg.sha256,
        "demo": cfg.demo,
        "key_fingerprint": fingerprint,
        "sites": sorted(summary["site"].unique().tolist()),
        "raw_files": raw_files.to_dict(orient="records"),
        "data_sha256": _data_hash(raw_files),
        "rows": rows,
    }
    return json.dumps(manifest, indent=2, default=str)


def _sites_in(previous: Path) -> set[str]:
    """The sites of a processed folder without a manifest (from its summary)."""
    path = previous / "qa" / "summary.parquet"
    return set(read_parquet(path)["site"].astype(str)) if path.is_file() else set()


def _merge_existing(path: Path, new: pd.DataFrame, keep: set[str]) -> pd.DataFrame:
    """``new`` plus the rows of the ``keep`` sites already in ``path`` (a partial re-clean)."""
    if not path.is_file():
        return new
    old = read_parquet(path)
    old = old[old["site"].isin(keep)]
    if not len(old):
        return new
    return pd.concat([old, new], ignore_index=True) if len(new) else old.reset_index(drop=True)


def _data_hash(files: pd.DataFrame) -> str:
    if files.empty:
        return ""
    text = "\n".join(sorted(f"{r.site}|{r.file}|{r.sha256}" for r in files.itertuples()))
    return hashlib.sha256(text.encode()).hexdigest()
