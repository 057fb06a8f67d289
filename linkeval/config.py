"""Load and validate a study config (docs/design.md, 'Study config').

The config is the single control panel of a run. Every problem is reported as one line that
names the file and the key path (``sites.A.sources[0].columns.referal_date``), says what is
wrong and suggests the nearest valid name.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from linkeval.errors import LinkevalError, did_you_mean
from linkeval.instruments import (
    INSTRUMENTS,
    SETTINGS,
    Instrument,
    Settings,
    define,
    register,
    score_names,
    settings_for,
)
from linkeval.vocab import FIELD_VOCABULARY, VOCABULARIES

# coded_events: a GP clinical-system search, one row per coded event, made into referrals
# (cleaning/events.py); it feeds the referrals table and is accounted for as its own table.
TABLES = ("referrals", "contacts", "onward_referrals", "questionnaires", "coded_events")

IDENTITY_FIELDS = ("nhs_number", "person_id", "local_id")

# Canonical input fields a source may map, per table (docs/design.md, 'Study config').
# A coded-event row's person fields: a referral event's become its referral's (cleaning/events.py).
EVENT_PERSON_FIELDS = (
    *IDENTITY_FIELDS,
    "date_of_birth",
    "age",
    "sex",
    "ethnicity",
    "imd_decile",
    "referral_source",
    "postcode",
    "practice_code",
)
INPUT_FIELDS: dict[str, tuple[str, ...]] = {
    "referrals": (
        "referral_id",
        *IDENTITY_FIELDS,
        "referral_date",
        "date_of_birth",
        "age",
        "sex",
        "ethnicity",
        "imd_decile",
        "referral_source",
        "reasons",
        "first_contact_date",
        "discharge_date",
        "outcome",
        "n_contacts",
        "n_attended",
        "n_onward_referrals",
        "postcode",
        "practice_code",  # read for area context, then dropped (cleaning/area.py)
    ),
    "contacts": ("referral_id", "contact_date", "mode", "duration_min", "attended"),
    "onward_referrals": ("referral_id", "onward_date", "asset_type"),
    "questionnaires": ("referral_id", *IDENTITY_FIELDS, "timepoint", "completed_date"),
    "coded_events": ("event_date", "code", *EVENT_PERSON_FIELDS),
}

REQUIRED_FIELDS: dict[str, tuple[str, ...]] = {
    "referrals": ("referral_id", "referral_date"),
    "contacts": ("referral_id", "contact_date"),
    "onward_referrals": ("referral_id", "onward_date", "asset_type"),
    "questionnaires": ("completed_date",),
    "coded_events": ("event_date", "code"),
}
# events: of a coded_events source: which codes open a referral, end it or give its reasons.
EVENT_KEYS = ("referral_codes", "outcome_codes", "reason_codes")

ENCODINGS = ("auto", "utf-8", "utf-8-sig", "cp1252")
DISCLOSURE_RULES = ("nhs_digital", "threshold", "none")
PAIRINGS = ("per_person", "per_episode")

TOP_KEYS = (
    "study",
    "raw_dir",
    "processed_dir",
    "reports_dir",
    "demo",
    "pseudonymisation",
    "followup_window_days",
    "disclosure",
    "instruments",
    "sites",
    "allow_under_18",
    "programme_theory",
    "seed",
    "context_lookups",
    "pairing",
)
# context_lookups: lookup -> its column names' defaults (the published files' headers).
LOOKUP_COLUMNS: dict[str, dict[str, Any]] = {
    "postcodes": {"postcode": "pcds", "lsoa": "lsoa21", "lsoa_year": 2021},
    "lsoa_2011_2021": {"lsoa11": "LSOA11CD", "lsoa21": "LSOA21CD"},
    "imd": {
        "lsoa": "LSOA code (2011)",
        "lsoa_year": 2011,
        "decile": "Index of Multiple Deprivation (IMD) Decile (where 1 is most deprived "
        "10% of LSOAs)",
    },
    "rural_urban": {"lsoa": "LSOA21CD", "classification": "RUC21NM", "lsoa_year": 2021},
    "practice_pcn": {"practice": "Partner Organisation Code", "pcn": "PCN Code"},
}
PACKAGE_DATA = "linkeval:"  # a context_lookups path naming a file in linkeval/data
CMOC_KEYS = ("id", "context", "mechanism", "outcome", "test")
CMOC_TEST_KEYS = ("outcome", "context", "expected")
CMOC_CONTEXT_KEYS = ("variable", "equals", "in", "at_least", "at_most", "label")
EXPECTED = ("more_improvement", "less_improvement")
# Context variables a CMOC can test (besides reason:<code>, baseline_band:<score>,
# site:<attribute>): yes/no ones need no condition, the others take one.
CONTEXT_FLAGS = ("lonely_baseline", "most_deprived")
CONTEXT_VALUES = (
    "imd_decile",
    "imd_quintile",
    "age_band",
    "age",
    "sex",
    "ethnicity",
    "referral_source",
    "n_attended",
    "n_contacts",
    "days_to_first_contact",
    "site",
)
SITE_KEYS = ("name", "sources", "context")
SOURCE_KEYS = (
    "table",
    "path",
    "encoding",
    "sheet",
    "skip_rows",
    "date_format",
    "multi_value_separator",
    "delimiter",
    "columns",
    "values",
    "items",
    "timepoint",
    "events",
)
PSEUDONYMISATION_KEYS = ("key_env", "key_file")
DISCLOSURE_KEYS = ("rule", "min_count")


@dataclass(frozen=True)
class Source:
    """One raw export (or a glob of like exports) feeding one canonical table."""

    table: str
    path: str
    columns: dict[str, Any]
    values: dict[str, dict[str, str]] = field(default_factory=dict)
    encoding: str = "auto"
    sheet: str | None = None
    skip_rows: int = 0
    date_format: str | None = None
    multi_value_separator: str | None = None
    delimiter: str = ","
    items: dict[str, dict[str, str]] = field(default_factory=dict)  # instrument: {item: header}
    timepoint: str | None = None  # "by_date": earliest completion is the baseline
    key_path: str = ""
    # coded_events only: {referral_codes: (code, ...), outcome_codes: {code: outcome},
    # reason_codes: {code: reason}}, on top of the SNOMED CT codes linkeval knows
    events: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Site:
    code: str
    name: str
    sources: tuple[Source, ...]
    context: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CMOC:
    """A context-mechanism-outcome configuration and its quantitative test."""

    id: str
    context: str
    mechanism: str
    outcome: str
    score: str  # the outcome score tested, e.g. swemwbs
    variable: str  # context variable, e.g. lonely_baseline, reason:housing, site:host
    condition: tuple[str, Any] | None  # ("equals", x) | ("in", [..]) | ("at_least", k) | ...
    expected: str  # more_improvement | less_improvement
    label: str = ""  # plain words for the context group


@dataclass(frozen=True)
class StudyConfig:
    """A validated study config. Paths are absolute (resolved against the config's folder)."""

    path: Path
    study: str
    raw_dir: Path
    processed_dir: Path
    reports_dir: Path
    sites: dict[str, Site]
    demo: bool = False
    key_env: str = "LINKEVAL_KEY"
    key_file: Path | None = None
    followup_window_days: tuple[int, int] = (270, 365)
    disclosure: dict[str, Any] = field(default_factory=lambda: {"rule": "nhs_digital"})
    instruments: dict[str, dict[str, Any]] = field(default_factory=dict)
    allow_under_18: bool = False
    programme_theory: tuple[CMOC, ...] = ()
    seed: int = 0  # every random step (bootstrap, imputation) starts from it
    pairing: str = "per_person"  # or "per_episode": pairs per referral (stats/pairing.py)
    sha256: str = ""
    # Instruments the config defines itself (instruments.<name> with items): registered in
    # linkeval.instruments when the config is loaded, and again when it is unpickled in a
    # worker process, so that scoring, stats and reports find them by name.
    local_instruments: tuple[Instrument, ...] = ()
    # lookup -> {path (absolute), column names, lsoa_year}: see cleaning/area.py
    context_lookups: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        for instrument in self.local_instruments:
            register(instrument)

    def instrument_settings(self, name: str) -> Settings:
        """An instrument's settings: its defaults with this study's overrides."""
        return settings_for(name, self.instruments.get(name))

    def site(self, code: str) -> Site:
        if code not in self.sites:
            raise LinkevalError(
                f"{self.path}: site {code!r} is not in the config{did_you_mean(code, self.sites)}; "
                f"sites are: {', '.join(self.sites)}"
            )
        return self.sites[code]


def load_config(path: str | os.PathLike) -> StudyConfig:
    """Read and validate a study config file; raise :class:`LinkevalError` on any problem.

    Parameters
    ----------
    path : str or path-like
        The study config, a UTF-8 YAML file (a few KB) with at least ``study`` and ``sites``.

    Returns
    -------
    StudyConfig
        The validated config (frozen): ``study`` (title), ``raw_dir``, ``processed_dir`` and
        ``reports_dir`` (absolute paths), ``sites`` (site code -> :class:`Site` with its
        sources), ``demo``, ``key_env`` and ``key_file`` (where the pseudonymisation key is),
        ``followup_window_days``, ``pairing``, ``disclosure``, ``instruments``,
        ``programme_theory``, ``context_lookups``, ``seed``, ``allow_under_18``, ``path``
        and ``sha256`` (of the file's bytes, for the manifest).

    Raises
    ------
    LinkevalError
        When the file is missing, too large, not UTF-8, not valid YAML, or fails validation
        (unknown or missing keys, bad values); the message names the file, the key and the fix.

    Notes
    -----
    Relative paths are resolved against the config file's folder, not the working directory.
    Instruments the config defines itself are registered when it is loaded.

    References
    ----------
    docs/design.md, 'Study config'.

    Examples
    --------
    >>> import shutil, tempfile
    >>> from pathlib import Path
    >>> from linkeval.synthetic import generate_study
    >>> folder = tempfile.mkdtemp()
    >>> study = generate_study(folder, n_referrals=200, n_sites=2, seed=1)
    >>> cfg = load_config(study.config_path)
    >>> cfg.study, sorted(cfg.sites), cfg.demo, cfg.followup_window_days
    ('Link worker evaluation (synthetic demo)', ['A', 'B'], True, (270, 365))
    >>> cfg.processed_dir == Path(folder).resolve() / "processed"
    True
    >>> load_config(Path(folder) / "missing.yaml")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    linkeval.errors.LinkevalError: ...missing.yaml: config file not found; check the --config path
    >>> shutil.rmtree(folder)
    """
    path = Path(path).resolve()
    if not path.is_file():
        raise LinkevalError(f"{path}: config file not found; check the --config path")
    text = path.read_bytes()
    if len(text) > MAX_CONFIG_BYTES:
        raise LinkevalError(
            f"{path}: {len(text):,} bytes is not a study config (a few KB); check the --config path"
        )
    try:
        raw = _load_yaml(text.decode("utf-8"), path)
    except UnicodeDecodeError as exc:
        raise LinkevalError(
            f"{path}: not a UTF-8 text file ({exc.reason}); save it as UTF-8"
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise LinkevalError(
            f"{path}:{where}: YAML syntax error: {problem}; check indentation and quoting"
        ) from None
    return parse_config(raw, path, sha256=hashlib.sha256(text).hexdigest())


def parse_config(raw: Any, path: Path, sha256: str = "") -> StudyConfig:
    """Validate an already-parsed YAML document (``path`` anchors relative paths and messages)."""
    v = _Validator(path)
    v.mapping(raw, "", TOP_KEYS, required=("study", "sites"))
    base = path.parent
    local_instruments, instruments = _parse_instruments(v, raw.get("instruments") or {}, base)
    sites_raw = raw["sites"]
    v.mapping(sites_raw, "sites", None)
    if not sites_raw:
        v.fail("sites", "no sites defined; add at least one site with its sources")
    sites = {
        str(code): _parse_site(v, str(code), spec)
        for code, spec in sites_raw.items()
        if _site_code(v, code, sites_raw)
    }

    pseudo = raw.get("pseudonymisation") or {}
    v.mapping(pseudo, "pseudonymisation", PSEUDONYMISATION_KEYS)
    key_file = pseudo.get("key_file")

    window = raw.get("followup_window_days", [270, 365])
    if (
        not isinstance(window, list)
        or len(window) != 2
        or not all(isinstance(d, int) and not isinstance(d, bool) for d in window)
        or not 0 < window[0] <= window[1]
    ):
        v.fail(
            "followup_window_days",
            "must be two whole numbers of days [earliest, latest], e.g. [270, 365]",
        )

    disclosure = raw.get("disclosure") or {"rule": "nhs_digital"}
    v.mapping(disclosure, "disclosure", DISCLOSURE_KEYS)
    rule = disclosure.get("rule", "nhs_digital")
    if rule not in DISCLOSURE_RULES:
        v.fail(
            "disclosure.rule",
            f"unknown rule {rule!r}{did_you_mean(rule, DISCLOSURE_RULES)}; "
            f"use one of {', '.join(DISCLOSURE_RULES)}",
        )
    min_count = disclosure.get("min_count")
    if rule == "threshold" and (
        isinstance(min_count, bool) or not isinstance(min_count, int) or min_count < 1
    ):
        v.fail("disclosure.min_count", "rule threshold needs a positive whole min_count, e.g. 10")

    pairing = raw.get("pairing", "per_person")
    if pairing not in PAIRINGS:
        v.fail(
            "pairing",
            f"{pairing!r}{did_you_mean(str(pairing), PAIRINGS)}; use per_person "
            "(one pair per person and score) or per_episode (one per referral and score)",
        )
    seed = raw.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        v.fail("seed", "must be a whole number of 0 or more, e.g. 2026")
    for flag in ("demo", "allow_under_18"):
        if flag in raw and not isinstance(raw[flag], bool):
            v.fail(flag, "must be true or false")

    _check_folders(v, base, raw, key_file)
    programme_theory = _parse_programme_theory(v, raw.get("programme_theory") or [], sites)
    return StudyConfig(
        path=path,
        study=str(raw["study"]),
        raw_dir=(base / raw.get("raw_dir", "../data/raw")).resolve(),
        processed_dir=output_folder(base, raw.get("processed_dir", "../data/processed")),
        reports_dir=output_folder(base, raw.get("reports_dir", "../reports")),
        sites=sites,
        demo=bool(raw.get("demo", False)),
        key_env=str(pseudo.get("key_env", "LINKEVAL_KEY")),
        key_file=(base / key_file).resolve() if key_file else None,
        followup_window_days=(int(window[0]), int(window[1])),
        disclosure=dict(disclosure),
        instruments=instruments,
        allow_under_18=bool(raw.get("allow_under_18", False)),
        programme_theory=programme_theory,
        seed=int(seed) if isinstance(seed, int) else 0,
        pairing=str(pairing),
        sha256=sha256,
        local_instruments=local_instruments,
        context_lookups=_parse_lookups(v, raw.get("context_lookups") or {}, base),
    )


def _parse_lookups(v: _Validator, lookups: Any, base: Path) -> dict[str, dict[str, Any]]:
    """context_lookups: each a file path, or {path, column names, lsoa_year}; files must exist."""
    v.mapping(lookups, "context_lookups", list(LOOKUP_COLUMNS), what="lookup")
    out = {}
    for name, spec in lookups.items():
        where = f"context_lookups.{name}"
        spec = {"path": spec} if isinstance(spec, str) else spec
        v.mapping(spec, where, ["path", *LOOKUP_COLUMNS[name]], required=("path",))
        path = _lookup_path(base, str(spec["path"]))
        if not path.is_file():
            v.fail(f"{where}.path", f"{path} not found; download the file once and name it here")
        year = spec.get("lsoa_year", LOOKUP_COLUMNS[name].get("lsoa_year"))
        if "lsoa_year" in LOOKUP_COLUMNS[name] and year not in (2011, 2021):
            v.fail(f"{where}.lsoa_year", "must be 2011 or 2021")
        out[name] = {**LOOKUP_COLUMNS[name], **spec, "path": str(path)}
    if ("imd" in out or "rural_urban" in out) and "postcodes" not in out:
        v.fail(
            "context_lookups",
            "imd and rural_urban need the postcodes lookup (ONSPD or "
            "NSPL) to find each postcode's LSOA",
        )
    return out


def _lookup_path(base: Path, path: str) -> Path:
    """A lookup file relative to the config, or ``linkeval:<file>``: one of the package's data
    files (the demo's synthetic ZZ99 lookups, linkeval/data/demo_lookup_*.csv)."""
    if path.startswith(PACKAGE_DATA):
        return Path(str(resources.files("linkeval.data").joinpath(path[len(PACKAGE_DATA) :])))
    return (base / path).resolve()


def _parse_instruments(
    v: _Validator, instruments: Any, base: Path
) -> tuple[tuple[Instrument, ...], dict[str, dict[str, Any]]]:
    """Local instrument definitions (registered at once) and every instrument's settings.

    A name that is not built in and has ``items`` is a local definition (docs/design.md,
    'Instruments'); its settings keys (mid, reliability, max_missing) apply as for a built-in.
    """
    v.mapping(instruments, "instruments", None)
    local, settings = [], {}
    for name, spec in instruments.items():
        name = str(name)
        spec = spec or {}
        v.mapping(spec, f"instruments.{name}", None)
        try:
            if name not in INSTRUMENTS or (isinstance(spec, dict) and "items" in spec):
                if "items" not in spec:
                    known = [n for n, i in INSTRUMENTS.items() if not i.local]
                    v.fail(
                        f"instruments.{name}",
                        f"unknown instrument{did_you_mean(name, known)}"
                        f"; known: {', '.join(known)}; to define a local one give title, "
                        "source, items, range and higher_is_better",
                    )
                instrument = define(name, spec, base)
                register(instrument)
                local.append(instrument)
            overrides = {k: val for k, val in spec.items() if k in SETTINGS}
            if len(overrides) < len(spec) and not (name in INSTRUMENTS and INSTRUMENTS[name].local):
                extra = next(k for k in spec if k not in SETTINGS)
                v.fail(
                    f"instruments.{name}.{extra}",
                    f"unknown setting"
                    f"{did_you_mean(str(extra), SETTINGS)}; valid: {', '.join(sorted(SETTINGS))}",
                )
            settings_for(name, overrides)
        except LinkevalError as exc:
            if str(exc).startswith(str(v.path)):
                raise
            v.fail("", str(exc))
        settings[name] = overrides
    return tuple(local), settings


def _parse_site(v: _Validator, code: str, spec: Any) -> Site:
    where = f"sites.{code}"
    v.mapping(spec, where, SITE_KEYS, required=("sources",))
    sources_raw = spec["sources"]
    if not isinstance(sources_raw, list) or not sources_raw:
        v.fail(f"{where}.sources", "must be a list of sources (each with table, path, columns)")
    sources = tuple(_parse_source(v, f"{where}.sources[{i}]", s) for i, s in enumerate(sources_raw))
    _one_reading_per_file(v, sources)
    tables = [s.table for s in sources]
    if "referrals" not in tables and "coded_events" not in tables:
        v.fail(f"{where}.sources", "a site needs a source with table: referrals (or coded_events)")
    context = spec.get("context") or {}
    v.mapping(context, f"{where}.context", None)
    return Site(code=code, name=str(spec.get("name", code)), sources=sources, context=dict(context))


def _parse_source(v: _Validator, where: str, spec: Any) -> Source:
    v.mapping(spec, where, SOURCE_KEYS, required=("table", "path", "columns"))
    table = spec["table"]
    if table not in TABLES:
        v.fail(
            f"{where}.table",
            f"unknown table {table!r}{did_you_mean(table, TABLES)}; use one of {', '.join(TABLES)}",
        )
    columns = spec["columns"]
    v.mapping(
        columns, f"{where}.columns", INPUT_FIELDS[table], what=f"canonical field for table {table}"
    )
    for fld, header in columns.items():
        ok = isinstance(header, str) or (
            fld == "reasons"
            and isinstance(header, list)
            and all(isinstance(h, str) for h in header)
        )
        if not ok:
            v.fail(
                f"{where}.columns.{fld}",
                "must be the raw column header as text"
                + (" (or a list of headers for reasons)" if fld == "reasons" else ""),
            )
    for required in REQUIRED_FIELDS[table]:
        if required not in columns:
            v.fail(
                f"{where}.columns",
                f"table {table} needs the field {required!r}; map it to the raw column header",
            )
    if table in ("referrals", "coded_events") and not any(f in columns for f in IDENTITY_FIELDS):
        v.fail(
            f"{where}.columns",
            f"table {table} needs a person identifier: map one of {', '.join(IDENTITY_FIELDS)}",
        )
    if table == "questionnaires" and not any(
        f in columns for f in ("referral_id", *IDENTITY_FIELDS)
    ):
        v.fail(
            f"{where}.columns",
            "questionnaires need referral_id or a person identifier: map "
            f"one of referral_id, {', '.join(IDENTITY_FIELDS)}",
        )
    timepoint = spec.get("timepoint")
    if timepoint not in (None, "by_date"):
        v.fail(
            f"{where}.timepoint",
            f"{timepoint!r}: the only option is by_date (earliest "
            "completion = baseline); otherwise map the timepoint column under columns",
        )
    if timepoint and table != "questionnaires":
        v.fail(f"{where}.timepoint", "only questionnaires sources have a timepoint")
    if table == "questionnaires" and "timepoint" not in columns and timepoint != "by_date":
        v.fail(
            f"{where}.columns",
            "questionnaires need a timepoint: map the column that says "
            "baseline/follow-up, or set timepoint: by_date",
        )
    values = spec.get("values") or {}
    mappable = [f for f in INPUT_FIELDS[table] if f in FIELD_VOCABULARY]
    v.mapping(values, f"{where}.values", mappable, what=f"field with labels in table {table}")
    for fld, labels in values.items():
        v.mapping(labels, f"{where}.values.{fld}", None)
        codes = VOCABULARIES[FIELD_VOCABULARY[fld]]
        for label, code in labels.items():
            if str(code).lower() not in codes:
                v.fail(
                    f"{where}.values.{fld}.{label}",
                    f"{code!r} is not a {fld} code"
                    f"{did_you_mean(code, codes)}; codes are: {', '.join(codes)}",
                )

    encoding = spec.get("encoding", "auto")
    if encoding not in ENCODINGS:
        v.fail(
            f"{where}.encoding",
            f"unknown encoding {encoding!r}"
            f"{did_you_mean(encoding, ENCODINGS)}; use one of {', '.join(ENCODINGS)}",
        )
    skip_rows = spec.get("skip_rows", 0)
    if not isinstance(skip_rows, int) or isinstance(skip_rows, bool) or skip_rows < 0:
        v.fail(f"{where}.skip_rows", "must be a whole number of lines (0 or more)")
    if skip_rows > MAX_SKIP_ROWS:
        v.fail(
            f"{where}.skip_rows",
            f"{skip_rows:,} lines above the header is more than any "
            f"export has (at most {MAX_SKIP_ROWS:,}); count the lines above the header row",
        )
    _check_file_options(v, where, spec)
    items = _parse_items(v, where, spec.get("items") or {})
    if items and table != "questionnaires":
        v.fail(f"{where}.items", "items belong to table: questionnaires sources only")
    if table == "questionnaires" and not items:
        v.fail(
            f"{where}.items",
            "list the item columns of at least one instrument, e.g. "
            "swemwbs: [SW1, SW2, SW3, SW4, SW5, SW6, SW7]",
        )
    return Source(
        table=table,
        path=str(spec["path"]),
        columns={str(k): val for k, val in columns.items()},
        values={
            str(f): {str(lab): str(code).lower() for lab, code in labels.items()}
            for f, labels in values.items()
        },
        encoding=encoding,
        sheet=spec.get("sheet"),
        skip_rows=skip_rows,
        date_format=spec.get("date_format"),
        multi_value_separator=spec.get("multi_value_separator"),
        delimiter=_delimiter(spec.get("delimiter", ",")),
        items=items,
        timepoint=timepoint,
        key_path=where,
        events=_parse_events(v, where, table, spec.get("events")),
    )


def _parse_events(v: _Validator, where: str, table: str, events: Any) -> dict[str, Any]:
    """events: of a coded_events source (docs/standard.md, 'Coded-event exports'): codes as
    text, each with one meaning; outcomes and reasons must be canonical codes."""
    if events is None:
        return {}
    if table != "coded_events":
        v.fail(f"{where}.events", "events belong to table: coded_events sources only")
    v.mapping(events, f"{where}.events", EVENT_KEYS)
    referral = events.get("referral_codes") or []
    if not isinstance(referral, list):
        v.fail(f"{where}.events.referral_codes", "must be a list of codes, e.g. [871731000000106]")
    out: dict[str, Any] = {"referral_codes": tuple(str(c).strip() for c in referral)}
    meaning = {c: "referral_codes" for c in out["referral_codes"]}
    for key, vocabulary in (("outcome_codes", "outcome"), ("reason_codes", "reason")):
        codes = events.get(key) or {}
        v.mapping(codes, f"{where}.events.{key}", None)
        out[key] = {}
        for code, value in codes.items():
            code, value = str(code).strip(), str(value).lower()
            if value not in VOCABULARIES[vocabulary]:
                v.fail(
                    f"{where}.events.{key}.{code}",
                    f"{value!r} is not a {vocabulary} code"
                    f"{did_you_mean(value, VOCABULARIES[vocabulary])}; codes are: "
                    f"{', '.join(VOCABULARIES[vocabulary])}",
                )
            out[key][code] = value
            meaning.setdefault(code, key)
    for code, key in meaning.items():
        others = [k for k in EVENT_KEYS if k != key and code in out[k]]
        if others:
            v.fail(
                f"{where}.events",
                f"code {code} is under both {key} and {others[0]}; give each code one meaning",
            )
    return out


def _parse_programme_theory(v: _Validator, items: Any, sites: dict[str, Site]) -> tuple[CMOC, ...]:
    if not isinstance(items, list):
        v.fail(
            "programme_theory",
            "must be a list of CMOCs (each with id, context, mechanism, outcome and test)",
        )
    scores = list(score_names())
    attributes = sorted({k for s in sites.values() for k in s.context})
    out, seen = [], set()
    for i, item in enumerate(items):
        where = f"programme_theory[{i}]"
        v.mapping(item, where, CMOC_KEYS, required=CMOC_KEYS)
        cid = str(item["id"])
        if cid in seen:
            v.fail(f"{where}.id", f"duplicate CMOC id {cid!r}")
        seen.add(cid)
        test = item["test"]
        v.mapping(test, f"{where}.test", CMOC_TEST_KEYS, required=CMOC_TEST_KEYS)
        score = str(test["outcome"])
        if score not in scores:
            v.fail(
                f"{where}.test.outcome",
                f"unknown outcome score {score!r}"
                f"{did_you_mean(score, scores)}; scores: {', '.join(scores)}",
            )
        if test["expected"] not in EXPECTED:
            v.fail(
                f"{where}.test.expected",
                f"{test['expected']!r}{did_you_mean(test['expected'], EXPECTED)}"
                f"; use {' or '.join(EXPECTED)}",
            )
        ctx = test["context"]
        if isinstance(ctx, str):
            ctx = {"variable": ctx}
        v.mapping(ctx, f"{where}.test.context", CMOC_CONTEXT_KEYS, required=("variable",))
        variable = str(ctx["variable"])
        kind, _, arg = variable.partition(":")
        known = [
            *CONTEXT_FLAGS,
            *CONTEXT_VALUES,
            "reason:<code>",
            "baseline_band:<score>",
            "site:<attribute>",
        ]
        if kind == "reason":
            if arg not in VOCABULARIES["reason"]:
                v.fail(
                    f"{where}.test.context.variable",
                    f"unknown reason {arg!r}{did_you_mean(arg, VOCABULARIES['reason'])}",
                )
        elif kind == "baseline_band":
            if arg not in scores:
                v.fail(
                    f"{where}.test.context.variable",
                    f"unknown score {arg!r}{did_you_mean(arg, scores)}",
                )
        elif kind == "site" and arg:
            if arg not in attributes:
                v.fail(
                    f"{where}.test.context.variable",
                    f"no site declares the attribute "
                    f"{arg!r}{did_you_mean(arg, attributes)}; add it under sites.<code>."
                    f"context",
                )
        elif variable not in (*CONTEXT_FLAGS, *CONTEXT_VALUES):
            v.fail(
                f"{where}.test.context.variable",
                f"unknown context variable {variable!r}"
                f"{did_you_mean(variable, known)}; use one of {', '.join(known)}",
            )
        conditions = [k for k in ("equals", "in", "at_least", "at_most") if k in ctx]
        if len(conditions) > 1:
            v.fail(f"{where}.test.context", "give one condition: equals, in, at_least or at_most")
        yes_no = (
            variable in CONTEXT_FLAGS
            or kind == "reason"
            or (
                kind == "site"
                and arg
                and all(isinstance(site.context.get(arg), bool) for site in sites.values())
            )
        )
        if not conditions and not yes_no:
            v.fail(
                f"{where}.test.context",
                f"{variable} needs a condition that defines the "
                "context group: equals, in, at_least or at_most",
            )
        condition = (conditions[0], ctx[conditions[0]]) if conditions else None
        out.append(
            CMOC(
                id=cid,
                context=str(item["context"]),
                mechanism=str(item["mechanism"]),
                outcome=str(item["outcome"]),
                score=score,
                variable=variable,
                condition=condition,
                expected=str(test["expected"]),
                label=str(ctx.get("label", "")),
            )
        )
    return tuple(out)


def _parse_items(v: _Validator, where: str, items: Any) -> dict[str, dict[str, str]]:
    """instrument: [headers in item order] or {item: header} -> {instrument: {item: header}}."""
    v.mapping(items, f"{where}.items", list(INSTRUMENTS), what="instrument")
    out: dict[str, dict[str, str]] = {}
    for name, headers in items.items():
        instrument = INSTRUMENTS[name]
        key = f"{where}.items.{name}"
        if isinstance(headers, list):
            if len(headers) != len(instrument.items):
                v.fail(
                    key,
                    f"{instrument.title} has {len(instrument.items)} items "
                    f"({', '.join(instrument.items)}); {len(headers)} columns given",
                )
            out[name] = dict(zip(instrument.items, map(str, headers), strict=True))
        elif isinstance(headers, dict):
            v.mapping(headers, key, instrument.items, what=f"{name} item")
            missing = [i for i in instrument.items if i not in headers]
            if missing:
                v.fail(key, f"missing item(s) {', '.join(missing)}")
            out[name] = {item: str(headers[item]) for item in instrument.items}
        else:
            v.fail(key, "give the item columns as a list in item order, or as {item: column}")
    return out


# --------------------------------------------------------------------------------------------
# Safety checks: the YAML itself, site codes, raw paths and the folders (docs/design.md, 'Study
# config'). Each refuses something that would otherwise be accepted and go wrong later.

MAX_CONFIG_BYTES = 5_000_000
MAX_YAML_NODES = 200_000  # values after anchors and aliases are expanded
MAX_SKIP_ROWS = 1_000
SITE_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}")


class _YamlLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    """PyYAML's safe loader that refuses duplicate keys (the later one would silently win).
    Built on libyaml where PyYAML has it: a 200-site config parses in 0.3 s, not 2.2 s, and
    every notebook of a batch parses the config."""

    def construct_mapping(self, node, deep=False):
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            with contextlib.suppress(TypeError):  # unhashable keys: PyYAML reports them
                if key in seen:
                    raise LinkevalError(
                        f"line {key_node.start_mark.line + 1}: duplicate key {key!r} (also on "
                        f"line {seen[key]}); the later one would silently replace the first: "
                        "remove or rename one"
                    )
                seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def _load_yaml(text: str, path: Path) -> Any:
    """Parse the config, refusing duplicate keys and alias bombs (a few lines of anchors that
    expand to billions of values)."""
    loader = _YamlLoader(text)
    try:
        node = loader.get_single_node()
        if node is not None and _expanded_size(node, {}, set()) > MAX_YAML_NODES:
            raise LinkevalError(
                f"{path}: anchors and aliases (&, *) expand to more than "
                f"{MAX_YAML_NODES:,} values; write the config out in full"
            )
        return loader.construct_document(node) if node is not None else None
    except LinkevalError as exc:
        message = str(exc)
        raise LinkevalError(
            message if message.startswith(str(path)) else f"{path}: {message}"
        ) from None
    finally:
        loader.dispose()


def _expanded_size(node: yaml.Node, sizes: dict[int, int], open_: set[int]) -> int:
    """How many values a YAML node stands for once every alias is expanded (capped)."""
    if id(node) in sizes:
        return sizes[id(node)]
    if id(node) in open_:
        raise LinkevalError(
            f"line {node.start_mark.line + 1}: an alias refers to itself; "
            "write the config out in full"
        )
    open_.add(id(node))
    total = 1
    if isinstance(node, yaml.SequenceNode):
        children = node.value
    elif isinstance(node, yaml.MappingNode):
        children = [n for pair in node.value for n in pair]
    else:
        children = []
    for child in children:
        total += _expanded_size(child, sizes, open_)
        if total > MAX_YAML_NODES:
            break
    open_.discard(id(node))
    sizes[id(node)] = total
    return total


def _site_code(v: _Validator, code: Any, sites_raw: dict) -> bool:
    """Site codes name folders and files: letters, digits, - and _, and one code per site."""
    where = f"sites.{code}"
    if isinstance(code, bool) or not isinstance(code, str | int):
        v.fail(where, f"site code {code!r} is read as {type(code).__name__}; put it in quotes")
    text = str(code)
    if not SITE_CODE.fullmatch(text):
        v.fail(
            where,
            f"site code {text!r} must be 1-32 letters, digits, - or _ (starting with "
            "a letter or digit): it names folders and files",
        )
    same = [c for c in sites_raw if c is not code and str(c).lower() == text.lower()]
    if same:
        v.fail(
            where,
            f"two sites have the code {text!r} (also {same[0]!r}, perhaps in another "
            "case or as a number); give each site its own code",
        )
    return True


def output_folder(base: Path, value: Any) -> Path:
    """An output folder's absolute path, its last part not resolved: the processed folder is a
    link to its current version (io.py), and must be named, not followed."""
    path = Path(os.path.abspath(base / str(value)))
    return path.parent.resolve() / path.name


def _one_reading_per_file(v: _Validator, sources: tuple[Source, ...]) -> None:
    """One file (or workbook sheet) may feed a site's table once: read twice, every row would
    count twice."""
    seen: dict[tuple, str] = {}
    for s in sources:
        key = (s.table, s.path, s.sheet)
        if key in seen:
            v.fail(
                s.key_path,
                f"reads the same file{' and sheet' if s.sheet else ''} for table "
                f"{s.table} as {seen[key]}; list it once",
            )
        seen[key] = s.key_path


def _check_file_options(v: _Validator, where: str, spec: dict) -> None:
    """path, sheet, date_format, delimiter and multi_value_separator of one source."""
    path = spec["path"]
    if not isinstance(path, str) or not path.strip():
        v.fail(f"{where}.path", "must be a file name (or pattern) relative to raw_dir")
    if Path(path).is_absolute() or path.startswith("~") or ".." in Path(path).parts:
        v.fail(
            f"{where}.path",
            f"{path!r} must stay inside raw_dir: give it relative to "
            "raw_dir, without .. (copy the export into raw_dir)",
        )
    sheet = spec.get("sheet")
    if sheet is not None and not path.lower().endswith((".xlsx", ".xlsm", ".xls", ".ods")):
        v.fail(
            f"{where}.sheet",
            "only Excel workbooks (.xlsx, .xlsm, .xls) and .ods files "
            f"have sheets; {path!r} is read "
            "as CSV: remove sheet, or point path at the workbook",
        )
    if sheet is not None and not isinstance(sheet, str):
        v.fail(f"{where}.sheet", "must be the sheet's name as text (in quotes if a number)")
    date_format = spec.get("date_format")
    if date_format is not None:
        _check_date_format(v, f"{where}.date_format", date_format)
    if "delimiter" in spec and _delimiter(spec["delimiter"]) is None:
        v.fail(
            f"{where}.delimiter",
            f"{spec['delimiter']!r} must be one character, e.g. "
            '";" or "\\t" (tab), other than a quote or a line break',
        )
    separator = spec.get("multi_value_separator")
    if separator is not None and (not isinstance(separator, str) or not separator.strip()):
        v.fail(f"{where}.multi_value_separator", 'must be the text between reasons, e.g. ";"')


def _delimiter(value: Any) -> str | None:
    """A CSV delimiter: one character (``\\t`` or ``tab`` for a tab); None if unusable."""
    text = {"\\t": "\t", "tab": "\t"}.get(value, value) if isinstance(value, str) else None
    if text is None or len(text) != 1 or text in '"\r\n':
        return None
    return text


def _check_date_format(v: _Validator, where: str, fmt: Any) -> None:
    """A strptime format with at least one directive that can read back the dates it writes."""
    if not isinstance(fmt, str) or "%" not in fmt:
        v.fail(where, f'{fmt!r} is not a date format; use strptime codes, e.g. "%d/%m/%Y"')
    try:
        datetime.strptime(datetime(2001, 2, 3, 4, 5, 6).strftime(fmt), fmt)
    except ValueError as exc:
        v.fail(
            where,
            f"{fmt!r} is not a valid date format ({exc}); use strptime codes, e.g. "
            '"%d/%m/%Y" or "%Y-%m-%d"',
        )


def _check_folders(v: _Validator, base: Path, raw: dict, key_file: Any) -> None:
    """processed_dir and reports_dir outside raw_dir and apart; the key file outside all."""
    folders = {
        name: (base / str(raw.get(name, default))).resolve()
        for name, default in (
            ("raw_dir", "../data/raw"),
            ("processed_dir", "../data/processed"),
            ("reports_dir", "../reports"),
        )
    }

    def inside(a: Path, b: Path) -> bool:
        return a == b or b in a.parents

    for name, other in (
        ("processed_dir", "raw_dir"),
        ("reports_dir", "raw_dir"),
        ("processed_dir", "reports_dir"),
        ("reports_dir", "processed_dir"),
    ):
        if inside(folders[name], folders[other]):
            v.fail(
                name,
                f"{folders[name]} is inside {other} ({folders[other]}); keep raw data, "
                "processed data and reports in separate folders",
            )
    if key_file and inside((base / str(key_file)).resolve(), folders["raw_dir"]):
        v.fail("pseudonymisation.key_file", "is inside raw_dir; keep the key apart from the data")


class _Validator:
    """Raises one-line errors that carry the config file and the key path."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, key_path: str, message: str) -> None:
        where = f"{key_path}: " if key_path else ""
        raise LinkevalError(f"{self.path}: {where}{message}")

    def mapping(self, value: Any, key_path: str, allowed, required=(), what: str = "key") -> None:
        if not isinstance(value, dict):
            self.fail(key_path or "(top level)", "must be a mapping of key: value")
        if allowed is not None:
            for key in value:
                if key not in allowed:
                    sub = f"{key_path}.{key}" if key_path else str(key)
                    self.fail(
                        sub,
                        f"unknown {what} {key!r}{did_you_mean(key, allowed)}; "
                        f"valid: {', '.join(allowed)}",
                    )
        for key in required:
            if key not in value:
                self.fail(key_path or "(top level)", f"missing required key {key!r}")
