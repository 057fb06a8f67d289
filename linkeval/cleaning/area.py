"""Area and practice context, derived during cleaning and then dropped (docs/standard.md).

Before the postcode leaves the referrals frame: postcode -> LSOA (2011 or 2021, from the ONS
Postcode Directory or NSPL) -> IMD decile (IoD 2019 on LSOA 2011, or IoD 2025 on LSOA 2021,
through the ONS LSOA 2011 -> 2021 lookup where the vintages differ) and Rural-Urban
Classification 2021 (LSOA 2021); practice ODS code -> PCN from the NHS practice-to-PCN file.
Lookups are files the study downloads once and names under ``context_lookups:``; nothing is
fetched from the web. Only the derived fields are kept (imd_decile, imd_quintile, rural_urban,
pcn_code): the postcode, the LSOA and the practice code are dropped here, and the cleaning log
never repeats a postcode.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pandas as pd

from linkeval.cleaning.context import Context
from linkeval.errors import LinkevalError
from linkeval.parse import blank
from linkeval.vocab import imd_quintile

TABLE = "referrals"
# Raw identifying fields this step reads and always drops.
DROPPED = ("postcode", "practice_code")


def normalise_postcode(values: pd.Series) -> pd.Series:
    """Upper case without spaces, so 'zz99 1aa' and 'ZZ991AA' match.

    >>> normalise_postcode(pd.Series([" zz99 1aa", "ZZ991AA"])).tolist()
    ['ZZ991AA', 'ZZ991AA']
    """
    return values.astype(str).str.upper().str.replace(r"\s+", "", regex=True)


@cache
def _table(path: str, columns: tuple[str, ...], mtime: float) -> pd.DataFrame:
    """A lookup file's named columns as text (cached per file version)."""
    try:
        frame = pd.read_csv(path, dtype=str, usecols=list(columns), encoding="utf-8-sig")
    except ValueError as exc:
        raise LinkevalError(
            f"{path}: lookup file lacks a column ({exc}); name its columns under context_lookups"
        ) from None
    except OSError as exc:
        raise LinkevalError(f"{path}: cannot read the lookup file ({exc.strerror})") from None
    return frame.dropna()


def lookup(
    spec: dict, keys: pd.Series, key_col: str, value_col: str, normalise=lambda s: s.str.strip()
) -> pd.Series:
    """Values of ``value_col`` for ``keys``, from the lookup file ``spec['path']``."""
    path = Path(spec["path"])
    cols = (spec[key_col], spec[value_col])
    table = _table(str(path), cols, path.stat().st_mtime)
    mapping = pd.Series(table[cols[1]].to_numpy(), index=normalise(table[cols[0]]).to_numpy())
    mapping = mapping[~mapping.index.duplicated()]
    return normalise(keys.fillna("").astype(str)).map(mapping)


def derive_area(ctx: Context, frame: pd.DataFrame) -> pd.DataFrame:
    """Add imd_decile, imd_quintile, rural_urban and pcn_code; drop postcode and practice.

    A derived IMD decile replaces the exported one where the postcode is found; elsewhere the
    exported decile stays. Postcodes or practices not in the lookups are flagged (the value
    is not logged).
    """
    lookups = ctx.cfg.context_lookups
    frame = frame.copy()
    if "postcode" in frame and lookups:
        frame = _from_postcode(ctx, frame, lookups)
    if "practice_code" in frame and lookups.get("practice_pcn"):
        spec = lookups["practice_pcn"]
        pcn = lookup(
            spec, frame["practice_code"], "practice", "pcn", lambda s: s.str.strip().str.upper()
        )
        missing = pcn.isna() & ~blank(frame["practice_code"])
        ctx.log.flag(
            frame[missing],
            TABLE,
            "practice_code",
            "unknown_practice",
            "practice code not in the practice-to-PCN lookup; pcn_code missing",
        )
        frame["pcn_code"] = pcn.astype(object)
    if "imd_decile" in frame:
        frame["imd_quintile"] = imd_quintile(frame["imd_decile"])
    return frame.drop(columns=[c for c in DROPPED if c in frame])


def _from_postcode(ctx: Context, frame: pd.DataFrame, lookups: dict) -> pd.DataFrame:
    postcodes = lookups.get("postcodes")
    if not postcodes:
        return frame
    lsoa = lookup(postcodes, frame["postcode"], "postcode", "lsoa", normalise_postcode)
    missing = lsoa.isna() & ~blank(frame["postcode"])
    ctx.log.flag(
        frame[missing],
        TABLE,
        "postcode",
        "unknown_postcode",
        "postcode not in the postcode lookup (value not logged); area fields missing",
    )
    vintage = int(postcodes.get("lsoa_year", 2021))
    imd = lookups.get("imd")
    if imd:
        key = _lsoa_for(lsoa, vintage, int(imd.get("lsoa_year", 2011)), lookups)
        decile = pd.to_numeric(lookup(imd, key, "lsoa", "decile"), errors="coerce")
        derived = decile.astype("Float64").astype("Int64")
        exported = (
            frame["imd_decile"]
            if "imd_decile" in frame
            else pd.Series(pd.NA, index=frame.index, dtype="Int64")
        )
        frame["imd_decile"] = derived.fillna(exported.astype("Int64"))
    ruc = lookups.get("rural_urban")
    if ruc:
        key = _lsoa_for(lsoa, vintage, int(ruc.get("lsoa_year", 2021)), lookups)
        label = lookup(ruc, key, "lsoa", "classification")
        # RUC 2021 classes start "Urban: ..." or "Larger rural: ..." / "Smaller rural: ...".
        frame["rural_urban"] = (
            label.str.lower()
            .str.strip()
            .map(lambda v: v if pd.isna(v) else ("urban" if v.startswith("urban") else "rural"))
        )
    return frame


def _lsoa_for(lsoa: pd.Series, have: int, want: int, lookups: dict) -> pd.Series:
    """LSOA codes in the vintage a lookup is keyed on (ONS LSOA 2011 -> 2021 best fit)."""
    if have == want:
        return lsoa
    spec = lookups.get("lsoa_2011_2021")
    if not spec:
        raise LinkevalError(
            f"context_lookups: the postcode file gives {have} LSOAs but a lookup "
            f"is keyed on {want} LSOAs; add lsoa_2011_2021 (the ONS lookup)"
        )
    if have == 2011:
        return lookup(spec, lsoa, "lsoa11", "lsoa21")
    # 2021 -> 2011: the first 2011 LSOA of each 2021 LSOA (splits and merges are rare).
    return lookup(spec, lsoa, "lsoa21", "lsoa11")
