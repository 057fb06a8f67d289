"""Reading a source's files into one raw frame, with blank rows and exact duplicates rejected.

The raw frame has one text column per canonical field the source maps (named by the field,
trimmed, blank as ""), one per questionnaire item (``<instrument>::<item>``), and where each
row came from: file, row number (from 1, below the header) and the source's position in the
site's config.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from linkeval.cleaning.log import FILE, ROW, CleaningLog
from linkeval.config import Site, Source
from linkeval.errors import LinkevalError, did_you_mean
from linkeval.io import read_raw, source_files
from linkeval.parse import as_text

SRC = "__source__"
# Several reason columns, or a multi-value cell, become one text joined by a character no
# export contains; the referral rules split it again.
REASON_SEP = "\x1f"
ITEM_SEP = "::"  # internal column name of an item: "<instrument>::<item>"


def read_source(raw_dir: Path, site: Site, source: Source, log: CleaningLog) -> pd.DataFrame:
    """All files of a source, with mapped columns renamed to canonical fields."""
    table, files, rows = _read_files(raw_dir, source, log, _sheet_label(site, source))
    stripped = {c: pc.utf8_trim_whitespace(table[c]) for c in _mapped_headers(source)}
    blank_rows = _blank_rows(table, stripped)
    dup, first_pos = _exact_duplicates(table)
    dup &= ~blank_rows
    frame = _canonical(stripped, source, files, rows, site.sources.index(source))
    frame = log.reject(
        frame, pd.Series(blank_rows), source.table, None, "blank_row", "row is empty"
    )
    return log.reject(
        frame,
        pd.Series(dup).reindex(frame.index),
        source.table,
        None,
        "duplicate_row",
        _copy_of(files, rows, first_pos),
    )


def _sheet_label(site: Site, source: Source) -> str:
    """' (sheet X)' when several sheets of one workbook feed the same table of a site: the
    log then names the sheet, and rows of different sheets are told apart."""
    shared = [s for s in site.sources if s.table == source.table and s.path == source.path]
    if len(shared) < 2:
        return ""
    return f" (sheet {source.sheet})" if source.sheet is not None else " (first sheet)"


def _read_files(
    raw_dir: Path, source: Source, log: CleaningLog, sheet: str = ""
) -> tuple[pa.Table, pd.Categorical, np.ndarray]:
    """The source's files as one Arrow table of text, and each row's file (a categorical of
    the file names, in sorted order) and row number."""
    tables, names, rows = [], [], []
    for path in source_files(raw_dir, source):
        raw = read_raw(path, source)
        _require_headers(path, raw.column_names, source)
        rel = _relative(path, raw_dir) + sheet
        names.append(rel)
        rows.append(np.arange(1, raw.num_rows + 1))
        log.file_read(source.table, rel, raw.num_rows, _file_hash(path))
        tables.append(raw)
    table = tables[0]
    if len(tables) > 1:  # files of one glob may differ in columns: absent cells are blank
        table = pa.concat_tables(tables, promote_options="default")
        table = pa.Table.from_arrays(
            [pc.fill_null(c, "") for c in table.columns], names=table.column_names
        )
    # A file's name once, and a small code per row (not a million references to it).
    categories, codes = np.unique(np.array(names, dtype=object), return_inverse=True)
    files = pd.Categorical.from_codes(
        np.repeat(codes.astype(np.int32), [len(r) for r in rows]), categories=categories
    )
    return table, files, np.concatenate(rows)


def _blank_rows(table: pa.Table, stripped: dict[str, pa.ChunkedArray]) -> np.ndarray:
    """Rows where every raw column is blank, mapped or not."""
    # Checking the mapped columns first keeps this cheap on wide exports: only rows blank in
    # all of them are looked up in the others.
    all_blank = np.ones(table.num_rows, dtype=bool)
    for values in stripped.values():
        all_blank &= pc.equal(values, "").to_numpy(zero_copy_only=False)
    others = [c for c in table.column_names if c not in stripped]
    if all_blank.any() and others:
        candidates = np.flatnonzero(all_blank)
        rest = table.select(others).take(candidates)  # few rows
        for values in rest.columns:
            all_blank[candidates] &= pc.equal(pc.utf8_trim_whitespace(values), "").to_numpy(
                zero_copy_only=False
            )
    return all_blank


def _exact_duplicates(table: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """Rows identical to an earlier row in every column, and that earlier row's position.

    Column by column, each candidate row's values so far become one code (dictionary codes,
    exact: no hashing of whole rows). A row whose code no other candidate shares is a copy of
    nothing and drops out, so after an ID column few rows are left to encode.
    """
    n = table.num_rows
    rows = np.arange(n)  # the candidates, in file order
    key = None  # each candidate's code for its values so far
    for values in table.columns:
        if not len(rows):
            break
        codes, n_codes = _column_codes(values if len(rows) == n else values.take(rows))
        # key < len(rows) and n_codes <= len(rows) + 1: no overflow below 2**31 rows. The
        # first column's codes are a key as they are (no need to number them again).
        key = codes if key is None else pd.factorize(key * n_codes + codes)[0]
        shared = np.bincount(key)[key] > 1
        rows, key = rows[shared], key[shared]
    if key is None:  # no columns: every row is alike
        key = np.zeros(len(rows), dtype=np.int64)
    first = np.arange(n)
    if len(rows):
        codes, uniques = pd.factorize(key)
        first_pos = np.empty(len(uniques), dtype=np.int64)
        first_pos[codes[::-1]] = rows[::-1]  # the earliest position wins
        first[rows] = first_pos[codes]
    return first != np.arange(n), first


def _column_codes(values: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, int]:
    """Each value's dictionary code (one dictionary for all chunks; a missing value has the
    code after the dictionary's), and how many codes."""
    encoded = pc.dictionary_encode(values)
    chunks = encoded.chunks if isinstance(encoded, pa.ChunkedArray) else [encoded]
    if not chunks:
        return np.zeros(0, dtype=np.int64), 1
    size = len(chunks[0].dictionary)
    codes = [pc.fill_null(c.indices, size).to_numpy(zero_copy_only=False) for c in chunks]
    return np.concatenate(codes).astype(np.int64), size + 1


def _copy_of(
    files: pd.Categorical, rows: np.ndarray, first_pos: np.ndarray
) -> Callable[[pd.DataFrame], pd.Series]:
    """Log detail for duplicates: where each one's first copy is (the file too, when another)."""

    def detail(duplicates: pd.DataFrame) -> pd.Series:
        pos = duplicates.index.to_numpy()
        first = first_pos[pos]
        names = np.asarray(files.categories, dtype=object)[files.codes[first]]
        other_file = np.where(files.codes[first] == files.codes[pos], "", names + " ")
        return (
            "exact copy of "
            + pd.Series(other_file, index=duplicates.index, dtype=object)
            + "row "
            + pd.Series(rows[first], index=duplicates.index).astype(str)
        )

    return detail


def _canonical(
    stripped: dict[str, pa.ChunkedArray],
    source: Source,
    files: pd.Categorical,
    rows: np.ndarray,
    src: int,
) -> pd.DataFrame:
    """The raw frame: provenance, then mapped fields and items under their canonical names."""
    frame = pd.DataFrame({FILE: files, ROW: rows, SRC: src})
    for fld, header in source.columns.items():
        if fld == "reasons" and isinstance(header, list):
            values = pc.binary_join_element_wise(*[stripped[h] for h in header], REASON_SEP)
        elif fld == "reasons" and source.multi_value_separator:
            values = pc.replace_substring(
                stripped[header], source.multi_value_separator, REASON_SEP
            )
        else:
            values = stripped[header]
        frame[fld] = as_text(values)
    for instrument, items in source.items.items():
        for item, header in items.items():
            frame[f"{instrument}{ITEM_SEP}{item}"] = as_text(stripped[header])
    return frame


def _require_headers(path: Path, headers: list[str], source: Source) -> None:
    wanted = [
        (f"columns.{fld}", h)
        for fld, header in source.columns.items()
        for h in (header if isinstance(header, list) else [header])
    ]
    wanted += [(f"items.{name}", h) for name, items in source.items.items() for h in items.values()]
    for key, h in wanted:
        if h not in headers:
            seen = _other_delimiter(headers, source)
            if seen:
                raise LinkevalError(
                    f"{path}: column {h!r} ({source.key_path}.{key}) not found: the header "
                    f"line is separated by {seen!r}, not {source.delimiter!r}; set delimiter: "
                    + ('"\\t"' if seen == "\t" else f'"{seen}"')
                    + f" in {source.key_path}"
                )
            shown = ", ".join(repr(_short(x)) for x in headers[:15])
            raise LinkevalError(
                f"{path}: column {h!r} ({source.key_path}.{key}) not found"
                f"{did_you_mean(h, headers)}; the file's headers are: {shown}"
                + (
                    ""
                    if source.skip_rows
                    else "; if the export has lines above the header, set skip_rows"
                )
            )


def _other_delimiter(headers: list[str], source: Source) -> str | None:
    """The delimiter a CSV's header line really uses, when it is not the configured one."""
    if source.sheet is not None or len(headers) > 2:
        return None
    line = source.delimiter.join(headers)
    counts = {d: line.count(d) for d in (";", "\t", "|", ",") if d != source.delimiter}
    best = max(counts, key=counts.get)
    return best if counts[best] >= 1 else None


def _short(header: str) -> str:
    """A header as an error message shows it: printable and short."""
    text = "".join(c if c.isprintable() else "?" for c in str(header))
    return text if len(text) <= 40 else text[:39] + "…"


def _mapped_headers(source: Source) -> list[str]:
    headers: list[str] = []
    for header in source.columns.values():
        headers.extend(header if isinstance(header, list) else [header])
    for items in source.items.values():
        headers.extend(items.values())
    return list(dict.fromkeys(headers))


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)


def _file_hash(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()
