"""Raw exports -> canonical, pseudonymised tables and a cleaning log (DESIGN sections 4 and 6).

Every raw data row ends in exactly one of two places: a canonical table, or the cleaning log as
``rejected`` with the rule that caught it. Rows that are kept but were changed or need a look
(unmapped labels, unreadable optional values) get ``flagged`` log rows. Per site and table,
rows read = rows kept + rows rejected, and :func:`clean_study` checks that before returning.

Checks run in a fixed order and a row is rejected by the first rule it fails:
blank_row, duplicate_row, missing_required, unparseable_date / impossible_date / future_date,
invalid_nhs_number / placeholder_nhs_number, under_18, duplicate_referral_id; and for contacts
and onward referrals after their own checks: unknown_referral, referral_rejected,
before_referral.
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
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from linkeval import __version__, schema
from linkeval.config import IDENTITY_FIELDS, TABLES, Site, Source, StudyConfig
from linkeval.errors import LinkevalError, did_you_mean
from linkeval.instruments import INSTRUMENTS, item_values, score_items
from linkeval.io import read_raw, source_files, write_files_atomic
from linkeval.parse import (
    as_text,
    blank,
    parse_dates,
    parse_numbers,
    parse_whole_numbers,
    whole_years_between,
)
from linkeval.pseudonymise import (
    nhs_number_status,
    normalise_nhs_number,
    pseudonymise,
)
from linkeval.stats.pairing import add_change_indicators, pair_scores, reliabilities
from linkeval.vocab import BLANK_CODE, age_band, map_labels

FILE, ROW, SRC = "__file__", "__row__", "__source__"
EARLIEST_EVENT = pd.Timestamp("2000-01-01")
EARLIEST_BIRTH = pd.Timestamp("1900-01-01")
MAX_AGE = 115
REASON_SEP = "\x1f"
ITEM_SEP = "::"  # internal column name of an item: "<instrument>::<item>"
PARALLEL_MIN_BYTES = 50_000_000


@dataclass
class CleanResult:
    """Canonical tables for the cleaned sites, the cleaning log and the row accounting."""

    tables: dict[str, pd.DataFrame]
    log: pd.DataFrame
    summary: pd.DataFrame
    unmapped: pd.DataFrame
    files: pd.DataFrame = field(default_factory=pd.DataFrame)


# --------------------------------------------------------------------------------------------
# Public entry points


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
        results = [_clean_site(cfg, code, key, today) for code in codes]
    else:
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
            results = [_load_part(files[code]) for code in codes]
        finally:
            shutil.rmtree(parts, ignore_errors=True)
    # Table by table, letting go of each site's part once it is combined: the peak holds one
    # table twice, not the whole study.
    tables = {t: _concat([r.tables.pop(t) for r in results], t) for t in schema.SCHEMAS}
    combined = CleanResult(
        tables=tables,
        log=_concat([r.log for r in results], "cleaning_log"),
        summary=pd.concat([r.summary for r in results], ignore_index=True),
        unmapped=pd.concat([r.unmapped for r in results], ignore_index=True),
        files=pd.concat([r.files for r in results], ignore_index=True),
    )
    _check_accounting(combined.summary)
    combined.tables["pairs"] = _with_change_indicators(cfg, combined.tables)
    return combined


def _with_change_indicators(cfg: StudyConfig, tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Reliable change and MID flags, from the whole study's baseline items and scores."""
    if not len(tables["pairs"]):
        return tables["pairs"]
    settings = {name: cfg.instrument_settings(name) for name in INSTRUMENTS}
    pairs = add_change_indicators(tables["pairs"], reliabilities(tables["responses"]), settings)
    return schema.validate("pairs", pairs)


def _clean_site(cfg: StudyConfig, code: str, key: bytes, today: pd.Timestamp) -> CleanResult:
    return _SiteCleaner(cfg, cfg.site(code), key, today).run()


def _clean_site_to_file(cfg: StudyConfig, code: str, key: bytes, today: pd.Timestamp,
                        folder: Path) -> Path:
    path = folder / f"{code}.pickle"
    with path.open("wb") as fh:
        pickle.dump(_clean_site(cfg, code, key, today), fh, protocol=pickle.HIGHEST_PROTOCOL)
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
    manifest = {
        "package": "linkeval",
        "version": __version__,
        "cleaned_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "config": str(cfg.path),
        "config_sha256": cfg.sha256,
        "demo": cfg.demo,
        "sites": sorted(summary["site"].unique().tolist()),
        "raw_files": result.files.to_dict(orient="records"),
        "data_sha256": _data_hash(result.files),
        "rows": {t: len(f) for t, f in validated.items()},
    }
    qa = out / "qa"
    files: dict[Path, pd.DataFrame | str] = {out / f"{t}.parquet": f for t, f in validated.items()}
    files.update({
        qa / "cleaning_log.parquet": log, qa / "cleaning_log.csv": log,
        qa / "summary.parquet": summary, qa / "summary.csv": summary,
        qa / "unmapped_labels.parquet": unmapped, qa / "unmapped_labels.csv": unmapped,
        out / "manifest.json": json.dumps(manifest, indent=2, default=str),
    })
    write_files_atomic(files)
    return out


# --------------------------------------------------------------------------------------------
# One site


class _SiteCleaner:
    def __init__(self, cfg: StudyConfig, site: Site, key: bytes, today: pd.Timestamp) -> None:
        self.cfg, self.site, self.key, self.today = cfg, site, key, today
        self.log_parts: list[pd.DataFrame] = []
        self.unmapped_parts: list[pd.DataFrame] = []
        self.read_counts: dict[str, int] = {t: 0 for t in TABLES}
        self.file_rows: list[dict] = []

    # -- logging ------------------------------------------------------------------------------
    def log(self, rows: pd.DataFrame, table: str, fld: str | None, rule: str, action: str,
            detail) -> None:
        if len(rows) == 0:
            return
        if callable(detail):  # built only for the rows logged, not the whole table
            detail = detail(rows)
        detail_values = detail.to_numpy(dtype=object) if isinstance(detail, pd.Series) else detail
        self.log_parts.append(pd.DataFrame({
            "site": self.site.code, "table": table, "source_file": rows[FILE].to_numpy(),
            "source_row": rows[ROW].to_numpy(), "field": fld, "rule": rule, "action": action,
            "detail": detail_values,
        }))

    def reject(self, frame: pd.DataFrame, mask: pd.Series, table: str, fld: str | None,
               rule: str, detail) -> pd.DataFrame:
        """Log the rows under ``mask`` as rejected and return the others.

        ``detail`` is text, a Series aligned with ``frame``, or a function of the rejected rows.
        """
        mask = mask.fillna(False).astype(bool)
        if not mask.index.equals(frame.index):
            mask = mask.reindex(frame.index, fill_value=False)
        if mask.any():
            self.log(frame[mask], table, fld, rule, "rejected",
                     detail[mask] if isinstance(detail, pd.Series) else detail)
            return frame[~mask]
        return frame

    # -- reading ------------------------------------------------------------------------------
    def read(self, source: Source) -> pd.DataFrame:
        """All files of a source, with mapped columns renamed to canonical fields."""
        tables, files, rows = [], [], []
        for path in source_files(self.cfg.raw_dir, source):
            raw = read_raw(path, source)
            _require_headers(path, raw.column_names, source)
            rel = _relative(path, self.cfg.raw_dir)
            files.append(np.full(raw.num_rows, rel, dtype=object))
            rows.append(np.arange(1, raw.num_rows + 1))
            self.file_rows.append({"site": self.site.code, "table": source.table, "file": rel,
                                   "rows": raw.num_rows, "sha256": _file_hash(path)})
            tables.append(raw)
        table = tables[0]
        if len(tables) > 1:  # files of one glob may differ in columns: absent cells are blank
            table = pa.concat_tables(tables, promote_options="default")
            table = pa.Table.from_arrays([pc.fill_null(c, "") for c in table.columns],
                                         names=table.column_names)
        self.read_counts[source.table] += table.num_rows
        frame_file, frame_row = np.concatenate(files), np.concatenate(rows)

        stripped = {c: pc.utf8_trim_whitespace(table[c]) for c in _mapped_headers(source)}
        # A row is blank only if every raw column is; checking the mapped ones first keeps this
        # cheap on wide exports.
        all_blank = np.ones(table.num_rows, dtype=bool)
        for values in stripped.values():
            all_blank &= pc.equal(values, "").to_numpy(zero_copy_only=False)
        others = [c for c in table.column_names if c not in stripped]
        if all_blank.any() and others:
            candidates = np.flatnonzero(all_blank)
            rest = table.select(others).take(candidates)  # few rows
            for values in rest.columns:
                all_blank[candidates] &= pc.equal(pc.utf8_trim_whitespace(values), "") \
                    .to_numpy(zero_copy_only=False)
        dup, first_pos = _exact_duplicates(table)
        dup &= ~all_blank

        def copy_of(rows: pd.DataFrame) -> pd.Series:
            """Where each duplicate's first copy is (the file too, when it is another file)."""
            pos, first = rows.index.to_numpy(), first_pos[rows.index.to_numpy()]
            other_file = np.where(frame_file[first] == frame_file[pos], "", frame_file[first] + " ")
            return ("exact copy of " + pd.Series(other_file, index=rows.index, dtype=object)
                    + "row " + pd.Series(frame_row[first], index=rows.index).astype(str))

        canon = pd.DataFrame({FILE: frame_file, ROW: frame_row,
                              SRC: self.site.sources.index(source)})
        for fld, header in source.columns.items():
            if fld == "reasons" and isinstance(header, list):
                values = pc.binary_join_element_wise(*[stripped[h] for h in header], REASON_SEP)
            elif fld == "reasons" and source.multi_value_separator:
                values = pc.replace_substring(stripped[header], source.multi_value_separator,
                                              REASON_SEP)
            else:
                values = stripped[header]
            canon[fld] = as_text(values)
        for instrument, items in source.items.items():
            for item, header in items.items():
                canon[f"{instrument}{ITEM_SEP}{item}"] = as_text(stripped[header])
        canon = self.reject(canon, pd.Series(all_blank), source.table, None, "blank_row",
                            "row is empty")
        return self.reject(canon, pd.Series(dup).reindex(canon.index), source.table, None,
                           "duplicate_row", copy_of)

    # -- shared checks ------------------------------------------------------------------------
    def require(self, frame: pd.DataFrame, table: str, fields: tuple[str, ...]) -> pd.DataFrame:
        for fld in fields:
            if fld in frame:
                frame = self.reject(frame, blank(frame[fld]), table, fld, "missing_required",
                                    f"{fld} is blank")
        return frame

    def event_date(self, frame: pd.DataFrame, table: str, fld: str, source: Source,
                   required: bool = True) -> pd.DataFrame:
        """Parse an event date; reject unreadable, impossible (before 2000) and future dates."""
        dates, bad = parse_dates(frame[fld], source.date_format)
        expect = f"expected {source.date_format}" if source.date_format else "expected day-first"
        if required:
            frame = frame.assign(__parsed__=dates)
            frame = self.reject(frame, bad, table, fld, "unparseable_date",
                                lambda r: f"cannot read {fld} " + _quoted(r[fld]) + f" ({expect})")
            frame = self.reject(frame, frame["__parsed__"] < EARLIEST_EVENT, table, fld,
                                "impossible_date", lambda r: f"{fld} before "
                                f"{EARLIEST_EVENT.date()}: " + _quoted(r[fld]))
            frame = self.reject(frame, frame["__parsed__"] > self.today, table, fld,
                                "future_date", lambda r: f"{fld} after the run date "
                                f"{self.today.date()}: " + _quoted(r[fld]))
            frame[fld] = frame.pop("__parsed__")
            return frame
        # Optional dates: keep the row, flag the value and set it missing.
        wrong = bad | (dates < EARLIEST_EVENT) | (dates > self.today)
        self.log(frame[wrong], table, fld, "invalid_date", "flagged",
                 lambda r: f"{fld} " + _quoted(r[fld]) + " unreadable, before 2000 or in the "
                 "future; set to missing")
        frame = frame.copy()
        frame[fld] = dates.mask(wrong)
        return frame

    def labels(self, frame: pd.DataFrame, table: str, fld: str, source: Source) -> pd.DataFrame:
        """Map raw labels to codes; unmapped labels are flagged (DESIGN section 4)."""
        if fld not in frame:
            return frame
        codes, unmapped = map_labels(frame[fld], fld, source.values.get(fld))
        self._flag_unmapped(frame[unmapped], frame[fld][unmapped], table, fld, codes[unmapped])
        frame = frame.copy()
        frame[fld] = codes
        return frame

    def _flag_unmapped(self, rows: pd.DataFrame, raw: pd.Series, table: str, fld: str,
                       codes: pd.Series) -> None:
        if len(rows) == 0:
            return
        target = codes.fillna("missing").astype(object)
        detail = ("label " + _quoted(raw) + " is not a known " + fld + " label; recorded as "
                  + target + "; add it under values." + fld)
        self.log(rows, table, fld, "unmapped_label", "flagged", detail)
        counts = raw.value_counts().rename_axis("label").reset_index(name="rows")
        counts.insert(0, "field", fld)
        counts.insert(0, "table", table)
        counts.insert(0, "site", self.site.code)
        self.unmapped_parts.append(counts)

    def numbers(self, frame: pd.DataFrame, table: str, fld: str, whole: bool = True,
                low: float | None = None, high: float | None = None) -> pd.DataFrame:
        """Parse an optional number; unreadable or out-of-range values are flagged, set missing."""
        if fld not in frame:
            return frame
        values, bad = parse_whole_numbers(frame[fld]) if whole else parse_numbers(frame[fld])
        out_of_range = pd.Series(False, index=frame.index)
        if low is not None:
            out_of_range |= (values < low).fillna(False)
        if high is not None:
            out_of_range |= (values > high).fillna(False)
        wrong = bad | out_of_range
        rng = f" (allowed {low:g}-{high:g})" if low is not None and high is not None else ""
        self.log(frame[wrong], table, fld, "invalid_value", "flagged",
                 lambda r: f"{fld} " + _quoted(r[fld]) + f" is not a valid number{rng}; "
                 "set to missing")
        frame = frame.copy()
        frame[fld] = values.mask(wrong)
        return frame

    # -- referrals ----------------------------------------------------------------------------
    def referrals_from(self, source: Source) -> pd.DataFrame:
        t = "referrals"
        frame = self.read(source)
        self.raw_referral_ids.append(_large_text(frame["referral_id"]))
        frame = self.require(frame, t, ("referral_id", "referral_date"))
        frame = self._require_identity(frame, t)
        frame = self.event_date(frame, t, "referral_date", source)
        frame = self._check_nhs_numbers(frame, t)
        frame = self._age(frame, source)
        if not self.cfg.allow_under_18:
            under = (frame["age_at_referral"] < 18).fillna(False)
            frame = self.reject(frame, under, t, "age_at_referral", "under_18",
                                lambda r: "aged " + r["age_at_referral"].astype(str) +
                                " at referral; set allow_under_18: true to include children")
        for fld in ("referral_source", "sex", "ethnicity", "outcome"):
            frame = self.labels(frame, t, fld, source)
        frame = self.numbers(frame, t, "imd_decile", low=1, high=10)
        for fld in ("n_contacts", "n_attended", "n_onward_referrals"):
            frame = self.numbers(frame, t, fld, low=0, high=10_000)
        for fld in ("discharge_date", "first_contact_date"):
            if fld in frame:
                frame = self.event_date(frame, t, fld, source, required=False)
        return frame

    def _require_identity(self, frame: pd.DataFrame, table: str) -> pd.DataFrame:
        present = [f for f in IDENTITY_FIELDS if f in frame]
        has_id = pd.Series(False, index=frame.index)
        for fld in present:
            has_id |= ~blank(frame[fld])
        return self.reject(frame, ~has_id, table, present[0], "missing_required",
                           f"no person identifier ({' / '.join(present)} blank)")

    def _check_nhs_numbers(self, frame: pd.DataFrame, table: str) -> pd.DataFrame:
        if "nhs_number" not in frame:
            return frame
        frame = frame.assign(nhs_number=normalise_nhs_number(frame["nhs_number"]))
        status = nhs_number_status(frame["nhs_number"])
        frame = self.reject(frame, status == "invalid", table, "nhs_number", "invalid_nhs_number",
                            "not 10 digits or fails the Modulus 11 check (value not logged)")
        return self.reject(frame, status.reindex(frame.index) == "placeholder", table,
                           "nhs_number", "placeholder_nhs_number",
                           "ten identical digits (a placeholder)")

    def _age(self, frame: pd.DataFrame, source: Source) -> pd.DataFrame:
        t = "referrals"
        if "date_of_birth" in frame:
            dob, bad = parse_dates(frame["date_of_birth"], source.date_format)
            age = whole_years_between(dob, frame["referral_date"])
            frame = frame.assign(date_of_birth=dob, age_at_referral=age)
            # Dates of birth are identifiers: the log never repeats them.
            frame = self.reject(frame, bad, t, "date_of_birth", "unparseable_date",
                                "cannot read date_of_birth (value not logged)")
            dob, age = frame["date_of_birth"], frame["age_at_referral"]
            impossible = (dob < EARLIEST_BIRTH) | (dob > frame["referral_date"]) | (age > MAX_AGE)
            frame = self.reject(frame, impossible, t, "date_of_birth", "impossible_date",
                                "date_of_birth after the referral or over 115 years before it "
                                "(value not logged)")
        elif "age" in frame:
            frame = self.numbers(frame, t, "age", low=0, high=MAX_AGE)
            frame["age_at_referral"] = frame["age"]
        else:
            frame = frame.copy()
            frame["age_at_referral"] = pd.Series(pd.NA, index=frame.index, dtype="Int64")
        return frame

    def finish_referrals(self, frame: pd.DataFrame) -> pd.DataFrame:
        t = "referrals"
        frame = frame.sort_values([FILE, ROW], kind="stable")
        dup_id = frame["referral_id"].duplicated(keep="first")
        if dup_id.any():
            first = frame.drop_duplicates("referral_id").set_index("referral_id")
            first_at = first[FILE] + " row " + first[ROW].astype(str)
            frame = self.reject(frame, dup_id, t, "referral_id", "duplicate_referral_id",
                                lambda r: "referral_id already used by "
                                + r["referral_id"].map(first_at).astype(str))
        frame = frame.copy()
        frame["person_id"] = self._person_ids(frame)
        return frame

    def _person_ids(self, frame: pd.DataFrame) -> pd.Series:
        """HMAC of the NHS number, else of '<site>:<local id>'; hex study IDs pass through."""
        message = pd.Series(pd.NA, index=frame.index, dtype="object")
        given = pd.Series(pd.NA, index=frame.index, dtype="object")
        if "local_id" in frame:
            local = frame["local_id"].mask(blank(frame["local_id"]))
            message = message.fillna(f"{self.site.code}:" + local)
        if "person_id" in frame:
            pid = frame["person_id"].mask(blank(frame["person_id"])).str.lower()
            hex_ok = pid.str.fullmatch(r"[0-9a-f]{64}").fillna(False).astype(bool)
            given = pid.where(hex_ok).astype(object)
            other = pid.mask(hex_ok | blank(pid))
            message = message.fillna(f"{self.site.code}:" + other)
        if "nhs_number" in frame:
            message = frame["nhs_number"].astype(object).where(frame["nhs_number"].notna(), message)
        hashed = pseudonymise(self.key, message.where(given.isna()))
        return given.fillna(hashed)

    # -- contacts and onward referrals --------------------------------------------------------
    def events_from(self, source: Source, date_field: str) -> pd.DataFrame:
        t = source.table
        frame = self.read(source)
        frame = self.require(frame, t, ("referral_id", date_field))
        frame = self.event_date(frame, t, date_field, source)
        if t == "contacts":
            frame = self.labels(frame, t, "mode", source)
            frame = self.labels(frame, t, "attended", source)
            if "attended" in frame:
                frame["attended"] = frame["attended"].map({"true": True, "false": False}) \
                    .astype("boolean")
            frame = self.numbers(frame, t, "duration_min", whole=False, low=0, high=24 * 60)
        else:
            frame = self.labels(frame, t, "asset_type", source)
        return frame

    def link(self, frame: pd.DataFrame, referrals: pd.DataFrame, date_field: str,
             table: str) -> pd.DataFrame:
        """Reject events of unknown or rejected referrals, and events before their referral."""
        position = _positions(frame["referral_id"], referrals["referral_id"])
        kept = pd.Series(position >= 0, index=frame.index)
        known = kept.copy()
        if not kept.all():
            known[~kept] = _positions(frame["referral_id"][~kept], self.raw_ids) >= 0
        nat = np.datetime64("NaT", "s")
        ref_dates = referrals["referral_date"].to_numpy(dtype="datetime64[s]")
        ref_date = ref_dates[np.where(kept, position, 0)] if len(ref_dates) else \
            np.full(len(frame), nat)
        frame = frame.assign(__referral_date__=np.where(kept, ref_date, nat))
        frame = self.reject(frame, ~known, table, "referral_id", "unknown_referral",
                            lambda r: "referral_id " + _quoted(r["referral_id"]) +
                            " is not in any referrals export")
        frame = self.reject(frame, ~kept.reindex(frame.index), table, "referral_id",
                            "referral_rejected", "its referral was rejected (see the referrals rows)")
        before = frame[date_field] < frame["__referral_date__"]
        frame = self.reject(frame, before, table, date_field, "before_referral",
                            f"{date_field} is before the referral date")
        return frame.drop(columns="__referral_date__")

    # -- questionnaires ------------------------------------------------------------------------
    def questionnaires(self, sources: list[Source], referrals: pd.DataFrame
                       ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, int]:
        """Clean, score and pair a site's questionnaires: (responses, scores, pairs, rows kept)."""
        if not sources:
            empty = pd.DataFrame({FILE: pd.Series(dtype=object), ROW: pd.Series(dtype="int64")})
            return empty, empty, empty, 0
        completions = pd.concat([self.completions_from(s, referrals) for s in sources],
                                ignore_index=True)
        completions = self._timepoints_by_date(completions, sources)
        responses, scores = [], []
        for src, part in completions.groupby(SRC, sort=False):
            r, s = self._score(part, self.site.sources[src])
            responses.append(r)
            scores.append(s)
        responses = pd.concat(responses, ignore_index=True)
        scores = pd.concat(scores, ignore_index=True)
        pairs, excluded = pair_scores(scores, self.cfg.followup_window_days)
        # One log row per questionnaire row, naming the scores concerned.
        excluded = (excluded.groupby(["reason", FILE, ROW], as_index=False, sort=False)
                    ["instrument"].agg(", ".join))
        before = excluded[excluded["reason"] == "followup_before_baseline"]
        self.log(before, "pairs", "completed_date", "followup_before_baseline", "rejected",
                 lambda r: "follow-up (" + r["instrument"] + ") dated before the baseline; "
                 "not paired (check the timepoint label)")
        lone = excluded[excluded["reason"] == "no_baseline"]
        self.log(lone, "pairs", "timepoint", "no_baseline", "flagged",
                 lambda r: "follow-up (" + r["instrument"] + ") without a scored baseline; "
                 "not paired")
        return responses, scores, pairs, len(completions)

    def completions_from(self, source: Source, referrals: pd.DataFrame) -> pd.DataFrame:
        """One row per questionnaire completion, linked to a person and a timepoint."""
        t = "questionnaires"
        frame = self.read(source)
        ident = [f for f in ("referral_id", *IDENTITY_FIELDS) if f in frame]
        has_id = pd.Series(False, index=frame.index)
        for fld in ident:
            has_id |= ~blank(frame[fld])
        frame = self.reject(frame, ~has_id, t, ident[0], "missing_required",
                            f"no person: {' / '.join(ident)} blank")
        frame = self.require(frame, t, ("completed_date",))
        frame = self.event_date(frame, t, "completed_date", source)
        frame = self._check_nhs_numbers(frame, t)
        if source.timepoint != "by_date":
            codes, _ = map_labels(frame["timepoint"], "timepoint", source.values.get("timepoint"))
            frame = frame.assign(__timepoint__=codes)
            frame = self.reject(frame, frame["__timepoint__"].isna(), t, "timepoint",
                                "missing_timepoint", lambda r: "timepoint " + _quoted(r["timepoint"])
                                + " is blank or not a known label; add it under values.timepoint")
            frame["timepoint"] = frame.pop("__timepoint__")
        return self._link_person(frame, referrals, t).assign(site=self.site.code)

    def _link_person(self, frame: pd.DataFrame, referrals: pd.DataFrame, t: str) -> pd.DataFrame:
        """person_id and referral_id: from the referral when one is given, else from the
        person's identifier and their latest referral on or before the completion date (or
        their next referral, for a form completed before any)."""
        frame = frame.copy()
        if "referral_id" in frame:
            frame["__pos__"] = _positions(frame["referral_id"], referrals["referral_id"])
            given = ~blank(frame["referral_id"])
            known = _positions(frame["referral_id"], self.raw_ids) >= 0
            frame = self.reject(frame, given & ~known, t, "referral_id", "unknown_referral",
                                lambda r: "referral_id " + _quoted(r["referral_id"]) +
                                " is not in any referrals export")
            frame = self.reject(frame, ~blank(frame["referral_id"]) & (frame["__pos__"] < 0), t,
                                "referral_id", "referral_rejected",
                                "its referral was rejected (see the referrals rows)")
            pos = frame.pop("__pos__").to_numpy()
        else:
            frame["referral_id"] = None
            pos = np.full(len(frame), -1)
        linked = pos >= 0
        person = np.full(len(frame), None, dtype=object)
        person[linked] = referrals["person_id"].to_numpy(dtype=object)[pos[linked]]
        frame["person_id"] = person
        rest = pd.Series(~linked, index=frame.index)
        if rest.any():
            frame.loc[rest, "person_id"] = self._person_ids(frame[rest]).to_numpy()
            frame.loc[rest, "referral_id"] = _latest_referral(frame[rest], referrals)
        # Questionnaires belong to a referral in the evaluation: without one (the person was
        # never referred here, or their referral was rejected, e.g. as under 18) they go.
        return self.reject(frame, rest & blank(frame["referral_id"]), t, "referral_id",
                           "no_referral", "no kept referral for this person at this site")

    def _timepoints_by_date(self, frame: pd.DataFrame, sources: list[Source]) -> pd.DataFrame:
        by_date = [self.site.sources.index(s) for s in sources if s.timepoint == "by_date"]
        if not by_date:
            return frame
        rows = frame[SRC].isin(by_date)
        first = frame[rows].groupby("person_id")["completed_date"].transform("min")
        frame = frame.copy()
        frame.loc[rows, "timepoint"] = np.where(frame.loc[rows, "completed_date"] == first,
                                                "baseline", "followup")
        return frame

    def _score(self, frame: pd.DataFrame, source: Source) -> tuple[pd.DataFrame, pd.DataFrame]:
        t = "questionnaires"
        frame = frame.reset_index(drop=True)
        # Arrow-backed text, so that repeating each completion per item copies in Arrow.
        completion = frame[[FILE, ROW, "site", "person_id", "referral_id", "timepoint",
                            "completed_date"]].astype({c: "str" for c in (
                                "site", "person_id", "referral_id", "timepoint")})
        who = completion.drop(columns=[FILE, ROW, "site"])
        responses, scores = [], []
        for name, items in source.items.items():
            instrument = INSTRUMENTS[name]
            values = {}
            for item, header in items.items():
                raw = frame[f"{name}{ITEM_SEP}{item}"]
                values[item], invalid = item_values(raw, instrument)
                self.log(frame[invalid], t, f"{name}.{item}", "invalid_item", "flagged",
                         _invalid_answer(raw, name, header, instrument))
            # Long: every completion's first item, then every completion's second, ...
            responses.append(who.iloc[np.tile(np.arange(len(frame)), len(values))].assign(
                site=self.site.code, instrument=name,
                item=as_text(pa.array(list(values), pa.large_string()).take(
                    np.repeat(np.arange(len(values)), len(frame)))).array,
                value=pd.concat(values.values(), ignore_index=True).array))
            scored = score_items(pd.DataFrame(values), instrument,
                                 self.cfg.instrument_settings(name))
            scores.append(completion.iloc[scored["row"].to_numpy()].reset_index(drop=True).assign(
                instrument=scored["score_name"].to_numpy(),
                **{c: v.array for c, v in scored.drop(columns=["row", "score_name"]).items()}))
        return pd.concat(responses, ignore_index=True), pd.concat(scores, ignore_index=True)

    # -- the whole site -----------------------------------------------------------------------
    def run(self) -> CleanResult:
        code = self.site.code
        self.raw_referral_ids: list[pa.Array] = []
        by_table: dict[str, list[Source]] = {t: [] for t in TABLES}
        for source in self.site.sources:
            by_table[source.table].append(source)

        referrals = _concat_raw([self.referrals_from(s) for s in by_table["referrals"]])
        self.raw_ids = _known_ids(self.raw_referral_ids)
        referrals = self.finish_referrals(referrals)
        reasons = self._reasons(referrals)

        contacts = _concat_raw([self.events_from(s, "contact_date") for s in by_table["contacts"]])
        if by_table["contacts"]:
            contacts = self.link(contacts, referrals, "contact_date", "contacts")
        onward = _concat_raw([self.events_from(s, "onward_date")
                              for s in by_table["onward_referrals"]])
        if by_table["onward_referrals"]:
            onward = self.link(onward, referrals, "onward_date", "onward_referrals")

        referrals = self._derive(referrals, contacts if by_table["contacts"] else None,
                                 onward if by_table["onward_referrals"] else None)
        responses, scores, pairs, n_completions = self.questionnaires(
            by_table["questionnaires"], referrals)
        kept = {"referrals": len(referrals), "contacts": len(contacts),
                "onward_referrals": len(onward), "questionnaires": n_completions}
        tables = {
            "responses": _select(responses, "responses", code),
            "scores": _select(scores, "scores", code),
            "pairs": _select(pairs, "pairs", code),
            "referrals": _select(referrals, "referrals", code),
            "referral_reasons": _select(reasons, "referral_reasons", code),
            "contacts": _select(contacts, "contacts", code),
            "onward_referrals": _select(onward, "onward_referrals", code),
        }
        log = (pd.concat(self.log_parts, ignore_index=True) if self.log_parts
               else schema.empty("cleaning_log"))
        unmapped = (pd.concat(self.unmapped_parts, ignore_index=True)
                    .groupby(["site", "table", "field", "label"], as_index=False)["rows"].sum()
                    if self.unmapped_parts else
                    pd.DataFrame(columns=["site", "table", "field", "label", "rows"]))
        return CleanResult(tables=tables, log=log, summary=self._summary(log, kept),
                           unmapped=unmapped, files=pd.DataFrame(self.file_rows))

    def _reasons(self, referrals: pd.DataFrame) -> pd.DataFrame:
        if "reasons" not in referrals or referrals.empty:
            return pd.DataFrame(columns=["referral_id", "reason"])
        # One row per reason, split and trimmed in Arrow.
        lists = pc.split_pattern(_large_text(referrals["reasons"]), REASON_SEP)
        reason = pc.utf8_trim_whitespace(pc.list_flatten(lists))
        present = pc.fill_null(pc.not_equal(reason, ""), False)
        parent = pc.list_parent_indices(lists).filter(present).to_numpy()
        long = referrals[[FILE, ROW, SRC, "referral_id"]].iloc[parent].reset_index(drop=True)
        long["reason_raw"] = as_text(reason.filter(present))
        parts = []
        for src, part in long.groupby(SRC, sort=False):
            overrides = self.site.sources[src].values.get("reasons")
            codes, unmapped = map_labels(part["reason_raw"], "reasons", overrides)
            self._flag_unmapped(part[unmapped], part["reason_raw"][unmapped], "referrals",
                                "reasons", codes[unmapped])
            parts.append(part.assign(reason=codes))
        if not parts:
            return pd.DataFrame(columns=["referral_id", "reason"])
        return pd.concat(parts).drop_duplicates(["referral_id", "reason"])

    def _derive(self, referrals: pd.DataFrame, contacts: pd.DataFrame | None,
                onward: pd.DataFrame | None) -> pd.DataFrame:
        r = referrals.copy()
        n = len(r)
        if contacts is not None:
            # Every kept contact belongs to a kept referral (link() saw to that).
            pos = _positions(contacts["referral_id"], r["referral_id"])
            r["n_contacts"] = pd.array(np.bincount(pos, minlength=n), dtype="Int64")
            if "attended" in contacts:
                attended = contacts["attended"].astype("boolean").fillna(False).to_numpy(bool)
                r["n_attended"] = pd.array(np.bincount(pos[attended], minlength=n), dtype="Int64")
            else:  # the export does not say who attended: count unknown, all contacts count
                attended = np.ones(len(contacts), dtype=bool)
                r["n_attended"] = pd.array([pd.NA] * n, dtype="Int64")
            # First contact = first attended contact (a did-not-attend is not a contact).
            days = contacts["contact_date"].to_numpy(dtype="datetime64[s]").astype(np.int64)
            first = np.full(n, np.iinfo(np.int64).max)
            np.minimum.at(first, pos[attended], days[attended])
            first_date = first.astype("datetime64[s]")
            first_date[first == np.iinfo(np.int64).max] = np.datetime64("NaT")
            r["first_contact_date"] = first_date
        else:
            for fld in ("n_contacts", "n_attended"):
                r[fld] = r[fld] if fld in r else pd.Series(pd.NA, index=r.index, dtype="Int64")
            if "first_contact_date" in r:
                early = r["first_contact_date"] < r["referral_date"]
                self.log(r[early.fillna(False)], "referrals", "first_contact_date",
                         "before_referral", "flagged",
                         "first_contact_date before the referral date; set to missing")
                r["first_contact_date"] = r["first_contact_date"].mask(early)
            else:
                r["first_contact_date"] = pd.NaT
        if onward is not None:
            pos = _positions(onward["referral_id"], r["referral_id"])
            r["n_onward_referrals"] = pd.array(np.bincount(pos, minlength=n), dtype="Int64")
        elif "n_onward_referrals" not in r:
            r["n_onward_referrals"] = pd.Series(pd.NA, index=r.index, dtype="Int64")
        first_contact = pd.to_datetime(r["first_contact_date"])
        r["days_to_first_contact"] = (first_contact - r["referral_date"]).dt.days.astype("Int64")
        r["age_band"] = age_band(r["age_at_referral"])
        if "discharge_date" in r:
            early = (r["discharge_date"] < r["referral_date"]).fillna(False)
            self.log(r[early], "referrals", "discharge_date", "before_referral", "flagged",
                     "discharge_date before the referral date; set to missing")
            r["discharge_date"] = r["discharge_date"].mask(early)
        return r

    def _summary(self, log: pd.DataFrame, kept: dict[str, int]) -> pd.DataFrame:
        rows = []
        exported = {s.table for s in self.site.sources}
        for table, n_read in self.read_counts.items():
            if table not in exported:
                continue
            t_log = log[log["table"] == table]
            rejected = t_log[t_log["action"] == "rejected"][["source_file", "source_row"]]
            flagged = t_log[t_log["action"] == "flagged"][["source_file", "source_row"]]
            rows.append({
                "site": self.site.code, "table": table, "rows_read": n_read,
                "rows_kept": kept[table],
                "rows_rejected": len(rejected.drop_duplicates()),
                "rows_flagged": len(flagged.drop_duplicates()),
            })
        return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# Helpers


def _require_headers(path: Path, headers: list[str], source: Source) -> None:
    wanted = [(f"columns.{fld}", h) for fld, header in source.columns.items()
              for h in (header if isinstance(header, list) else [header])]
    wanted += [(f"items.{name}", h) for name, items in source.items.items() for h in items.values()]
    for key, h in wanted:
        if h not in headers:
            shown = ", ".join(map(repr, headers[:15]))
            raise LinkevalError(
                f"{path}: column {h!r} ({source.key_path}.{key}) not found"
                f"{did_you_mean(h, headers)}; the file's headers are: {shown}"
                + ("" if source.skip_rows else "; if the export has lines above the header, "
                   "set skip_rows")
            )


def _mapped_headers(source: Source) -> list[str]:
    headers: list[str] = []
    for header in source.columns.values():
        headers.extend(header if isinstance(header, list) else [header])
    for items in source.items.values():
        headers.extend(items.values())
    return list(dict.fromkeys(headers))


def _positions(values, lookup) -> np.ndarray:
    """Position of each value in ``lookup`` (its first occurrence); -1 where absent or missing.

    A hash lookup in Arrow: no Python object per value.
    """
    found = pc.index_in(_large_text(values), value_set=_large_text(lookup))
    return pc.fill_null(found, -1).to_numpy(zero_copy_only=False).astype(np.int64)


def _known_ids(parts: list[pa.Array]) -> pa.Array:
    """Every non-blank referral_id of the referrals exports, kept or rejected, once each."""
    if not parts:
        return pa.array([], type=pa.large_string())
    ids = pa.concat_arrays(parts).unique()
    return ids.filter(pc.not_equal(pc.utf8_trim_whitespace(ids), ""))


def _large_text(values) -> pa.Array:
    if not isinstance(values, pa.Array | pa.ChunkedArray):
        values = pa.array(values, from_pandas=True, type=None if len(values) else pa.string())
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if values.type == pa.null():
        values = values.cast(pa.string())
    return values.cast(pa.large_string())


def _exact_duplicates(table: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """Rows identical to an earlier row in every column, and that earlier row's position.

    Each column is dictionary-encoded (exact, no hashing of whole rows), and the codes are
    combined column by column into one whole-row code, renumbered whenever the next column
    could overflow 64 bits.
    """
    n = table.num_rows
    key = np.zeros(n, dtype=np.int64)
    n_keys = 1
    for values in table.columns:
        encoded = pc.dictionary_encode(values)
        codes = np.concatenate([c.indices.to_numpy(zero_copy_only=False)
                                for c in encoded.chunks]) if encoded.num_chunks else key
        n_codes = max(len(encoded.chunks[0].dictionary), 1) if encoded.num_chunks else 1
        if n_keys * n_codes >= 2**62:
            key, uniques = pd.factorize(key)
            n_keys = len(uniques)
        key = key * n_codes + codes.astype(np.int64)
        n_keys *= n_codes
    codes, uniques = pd.factorize(key)
    first_pos = np.empty(len(uniques), dtype=np.int64)
    first_pos[codes[::-1]] = np.arange(n)[::-1]  # earliest position wins
    first = first_pos[codes]
    return first != np.arange(n), first


def _quoted(values: pd.Series) -> pd.Series:
    return "'" + values.astype(object).astype(str).str.slice(0, 60) + "'"


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)


def _file_hash(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _data_hash(files: pd.DataFrame) -> str:
    if files.empty:
        return ""
    text = "\n".join(sorted(f"{r.site}|{r.file}|{r.sha256}" for r in files.itertuples()))
    return hashlib.sha256(text.encode()).hexdigest()


def _invalid_answer(raw: pd.Series, name: str, header: str, instrument):
    def detail(rows: pd.DataFrame) -> pd.Series:
        return ("answer " + _quoted(raw[rows.index]) + f" to {name} ({header}) is not a response "
                f"label nor a whole number {instrument.item_min}-{instrument.item_max}; "
                "set to missing")
    return detail


def _latest_referral(frame: pd.DataFrame, referrals: pd.DataFrame) -> np.ndarray:
    """The person's latest referral on or before each completion date, else their next one."""
    if referrals.empty or frame.empty:
        return np.full(len(frame), None, dtype=object)
    left = pd.DataFrame({"person_id": frame["person_id"].to_numpy(),
                         "date": pd.to_datetime(frame["completed_date"]).to_numpy(),
                         "order": np.arange(len(frame))}).sort_values("date")
    right = pd.DataFrame({"person_id": referrals["person_id"].to_numpy(),
                          "date": pd.to_datetime(referrals["referral_date"]).to_numpy(),
                          "referral_id": referrals["referral_id"].to_numpy()}).sort_values("date")
    left["date"] = left["date"].astype("datetime64[ns]")
    right["date"] = right["date"].astype("datetime64[ns]")
    merged = pd.merge_asof(left, right, on="date", by="person_id", direction="backward")
    # A form completed before any referral (e.g. at the GP) goes with the next referral.
    later = pd.merge_asof(left, right, on="date", by="person_id", direction="forward")
    merged["referral_id"] = merged["referral_id"].fillna(later["referral_id"])
    return merged.sort_values("order")["referral_id"].to_numpy(dtype=object)


def _concat_raw(frames: list[pd.DataFrame]) -> pd.DataFrame:
    frames = [f for f in frames if f is not None]
    if not frames:
        return pd.DataFrame({FILE: pd.Series(dtype=str), ROW: pd.Series(dtype="int64"),
                             "referral_id": pd.Series(dtype=str)})
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def _select(frame: pd.DataFrame, table: str, site: str) -> pd.DataFrame:
    """Keep only the canonical columns (identifiers and raw columns are dropped here)."""
    columns = list(schema.SCHEMAS[table].columns)
    out = pd.DataFrame(index=frame.index)
    for col in columns:
        if col == "site":
            out[col] = site
        elif col in frame:
            out[col] = frame[col]
        else:  # not exported by this site: `unknown` where the vocabulary has it
            out[col] = BLANK_CODE.get(col, pd.NA)
    return schema.validate(table, out.reset_index(drop=True))


def _concat(frames: list[pd.DataFrame], table: str) -> pd.DataFrame:
    frames = [f for f in frames if len(f)]
    if not frames:
        return schema.empty(table)
    return pd.concat(frames, ignore_index=True)  # each part was validated by _select


def _merge_existing(path: Path, new: pd.DataFrame, sites: list[str]) -> pd.DataFrame:
    if not path.is_file():
        return new
    old = pd.read_parquet(path)
    old = old[~old["site"].isin(sites)]
    return pd.concat([old, new], ignore_index=True) if len(old) else new


def _check_accounting(summary: pd.DataFrame) -> None:
    broken = summary[summary["rows_read"] != summary["rows_kept"] + summary["rows_rejected"]]
    if len(broken):
        raise AssertionError(
            "row accounting does not reconcile (a linkeval bug, please report it):\n"
            + broken.to_string(index=False)
        )
