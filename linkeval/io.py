"""Reading raw exports, and writing outputs as whole versions under a lock.

Raw files are read as text, every column a string and every blank a blank, so that nothing is
converted before the cleaner has looked at it (leading zeros, odd dates and placeholder values
survive to be judged and logged). Only this module, ``cleaning``, ``report.batch``,
``report.job`` and ``commands`` touch the file system.

An output folder (the processed folder, a reports run) is a symbolic link to a complete version
kept in ``.linkeval/<name>/`` beside it. A run writes a new version in full, then switches the
link in one atomic rename and removes the previous version, so a reader always finds one whole,
consistent version. A lock file in the same place stops two runs writing at once, and the next
run removes whatever a killed run left there (docs/design.md, 'Runs and atomic writes').
"""

from __future__ import annotations

import codecs
import contextlib
import ctypes
import errno
import fcntl
import glob
import itertools
import json
import os
import shutil
import signal
import stat
import tempfile
import threading
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from linkeval.config import Source
from linkeval.errors import LinkevalError, did_you_mean
from linkeval.parallel import pid_alive
from linkeval.schema import SCHEMAS, concat

ZIP_MAGIC = b"PK\x03\x04"
# Spreadsheets read with calamine, and how each file starts (.xls: an OLE2 compound file).
SPREADSHEETS = {
    ".xlsx": ZIP_MAGIC,
    ".xlsm": ZIP_MAGIC,
    ".ods": ZIP_MAGIC,
    ".xls": b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1",
}


def source_files(raw_dir: Path, source: Source) -> list[Path]:
    """The files a source's path (a glob, relative to raw_dir) matches, sorted by name.

    Every match must be a readable file inside ``raw_dir`` once symbolic links are followed:
    a link out of it (to a key file, say) is refused before anything is read.
    """
    pattern = str(raw_dir / source.path)
    root = Path(raw_dir).resolve()
    paths = []
    for match in sorted(glob.glob(pattern)):
        path = Path(match)
        real = _resolved(path, source)
        if real != root and root not in real.parents:
            raise LinkevalError(
                f"{path}: leads outside raw_dir {root} ({source.key_path}.path); raw files "
                "must be inside raw_dir: copy the export there"
            )
        if real.is_file():
            paths.append(path)
    if not paths:
        raise LinkevalError(
            f"{pattern}: no file matches {source.key_path}.path; check raw_dir and the file name"
        )
    return paths


def _resolved(path: Path, source: Source) -> Path:
    """Where a matched path really is; a broken link or a link loop is one clear error."""
    try:
        return path.resolve(strict=True)
    except FileNotFoundError:
        raise LinkevalError(
            f"{path}: a symbolic link to a file that does not exist ({source.key_path}.path); "
            "point it at the export or copy the export there"
        ) from None
    except (RuntimeError, OSError) as exc:  # ELOOP: RuntimeError before Python 3.13
        if isinstance(exc, OSError) and exc.errno != errno.ELOOP:
            raise LinkevalError(
                f"{path}: cannot open ({exc.strerror}); check the path and its permissions"
            ) from None
        raise LinkevalError(
            f"{path}: symbolic link loop ({source.key_path}.path); replace the link with the "
            "export itself"
        ) from None


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise LinkevalError(
            f"{path}: cannot read the file ({exc.strerror}); check that it "
            "exists and that you may read it"
        ) from None


def detect_encoding(path: Path, encoding: str = "auto") -> str:
    """Check a text export can be decoded, and choose utf-8-sig, utf-8 or cp1252 when 'auto'."""
    data = _read_bytes(path)
    if not data.strip():
        raise LinkevalError(f"{path}: file is empty; re-export it from the source system")
    if data.startswith(ZIP_MAGIC):
        raise LinkevalError(
            f"{path}: this is an Excel workbook, not a CSV; name it .xlsx and give its sheet:"
        )
    if b"\x00" in data[:8192]:
        raise LinkevalError(
            f"{path}: file looks binary (contains NUL bytes); export it as CSV (or UTF-16 "
            "re-saved as UTF-8)"
        )
    candidates = ["utf-8-sig", "utf-8", "cp1252"] if encoding == "auto" else [encoding]
    if encoding == "auto" and not data.startswith(b"\xef\xbb\xbf"):
        candidates.remove("utf-8-sig")
    for candidate in candidates:
        try:
            data.decode(candidate)
        except UnicodeDecodeError as exc:
            if encoding != "auto":
                line = data[: exc.start].count(b"\n") + 1
                raise LinkevalError(
                    f"{path}: line {line}: byte 0x{data[exc.start]:02x} is not valid {encoding}; "
                    "set encoding: auto (or cp1252 for Windows exports)"
                ) from None
            continue
        return candidate
    raise LinkevalError(
        f"{path}: text is neither UTF-8 nor Windows-1252; re-export it as UTF-8 CSV"
    )


def read_raw(path: Path, source: Source) -> pa.Table:
    """Read one raw export as an Arrow table of text columns; blank cells are ''.

    Row i of the table is data row i + 1 of the file. Header names are trimmed.
    """
    try:
        return _read_raw(path, source)
    except OSError as exc:  # unreadable mid-way, a vanished file, an I/O error
        raise LinkevalError(
            f"{path}: cannot read the file ({exc.strerror or exc}); check that "
            "it exists and that you may read it"
        ) from None
    except MemoryError:
        raise LinkevalError(
            f"{path}: too large to read in memory; split the export or check skip_rows"
        ) from None


def _read_raw(path: Path, source: Source) -> pa.Table:
    if path.suffix.lower() in SPREADSHEETS:
        frame = _read_spreadsheet(path, source)
    else:
        encoding = detect_encoding(path, source.encoding)
        table = _read_csv_arrow(path, source, encoding)
        if table is not None:
            return table.rename_columns([c.strip() for c in table.column_names])
        frame = _read_csv_pandas(path, source, encoding)
    arrays = [
        pc.fill_null(
            pa.array(frame[c].to_numpy(dtype=object), type=pa.string(), from_pandas=True), ""
        )
        for c in frame.columns
    ]
    return pa.Table.from_arrays(arrays, names=[str(c).strip() for c in frame.columns])


def _read_csv_arrow(path: Path, source: Source, encoding: str) -> pa.Table | None:
    """The fast reader, for well-formed files (a blank line is read as a blank row, as pandas
    does). None when a file needs pandas' reader: rows with too few or too many fields, or
    unnamed or repeated headers (pandas names those the way analysts know, and its messages
    for malformed files are the ones we show).
    """
    names = list(_read_csv_pandas(path, source, encoding, nrows=0).columns)
    try:
        table = pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(
                encoding="utf8" if encoding.startswith("utf-8") else encoding,
                skip_rows=source.skip_rows,
                use_threads=True,
            ),
            parse_options=pacsv.ParseOptions(
                delimiter=source.delimiter, newlines_in_values=True, ignore_empty_lines=False
            ),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(names, pa.string()),
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except (pa.ArrowInvalid, UnicodeDecodeError):
        return None
    if table.column_names != names:
        return None
    return table


def _read_csv_pandas(
    path: Path, source: Source, encoding: str, nrows: int | None = None
) -> pd.DataFrame:
    try:
        return pd.read_csv(
            path,
            dtype=object,
            keep_default_na=False,
            na_filter=False,
            encoding=encoding,
            skiprows=source.skip_rows,
            sep=source.delimiter,
            skip_blank_lines=False,
            nrows=nrows,
        )
    except pd.errors.EmptyDataError:
        raise LinkevalError(
            f"{path}: no header row after skipping {source.skip_rows} lines; check skip_rows"
        ) from None
    except pd.errors.ParserError as exc:
        raise LinkevalError(
            f"{path}: cannot parse as CSV ({str(exc).strip()}); check skip_rows and delimiter"
        ) from None


def _read_spreadsheet(path: Path, source: Source) -> pd.DataFrame:
    """A worksheet of an .xlsx, .xlsm, .xls or .ods file, read by calamine (Rust) as text."""
    suffix = path.suffix.lower()
    with path.open("rb") as fh:
        if fh.read(8)[: len(SPREADSHEETS[suffix])] != SPREADSHEETS[suffix]:
            raise LinkevalError(
                f"{path}: not a valid {suffix} workbook; re-save it from Excel or LibreOffice"
            )
    try:
        sheets = pd.ExcelFile(path, engine="calamine")
    except Exception as exc:  # calamine raises several types for damaged files
        raise LinkevalError(
            f"{path}: cannot open workbook ({exc}); re-save it from Excel"
        ) from None
    with sheets:
        sheet = source.sheet if source.sheet is not None else sheets.sheet_names[0]
        if sheet not in sheets.sheet_names:
            raise LinkevalError(
                f"{path}: no sheet {sheet!r} ({source.key_path}.sheet)"
                f"{did_you_mean(sheet, sheets.sheet_names)}; sheets: {', '.join(sheets.sheet_names)}"
            )
        frame = pd.read_excel(
            sheets,
            sheet_name=sheet,
            dtype=str,
            keep_default_na=False,
            na_filter=False,
            skiprows=source.skip_rows,
        )
        return frame.astype(object)


# --------------------------------------------------------------------------------------------
# Writing

# A CSV cell starting with one of these is a formula to Excel and LibreOffice (CSV injection).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def write_files_atomic(files: dict[Path, pd.DataFrame | str]) -> None:
    """Write several files so that a failure leaves every previous one untouched.

    Each frame (``.parquet`` or ``.csv``, by suffix) or text is first written to a temporary
    file beside its target (in parallel threads: Arrow's writers release the GIL); only when
    all are written are they renamed into place. For whole output folders use
    :func:`write_version`, which makes them current in one step.
    """
    staged: list[tuple[str, Path]] = []
    try:
        for path in files:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            os.close(fd)
            staged.append((tmp, path))
        _write_all(
            {Path(tmp): files[path] for tmp, path in staged},
            {Path(tmp): path.suffix for tmp, path in staged},
        )
    except BaseException:
        for tmp, _ in staged:
            with contextlib.suppress(FileNotFoundError):
                os.remove(tmp)
        raise
    for tmp, path in staged:
        os.replace(tmp, path)


def _write_all(
    files: dict[Path, pd.DataFrame | list[pd.DataFrame] | str],
    suffixes: dict[Path, str] | None = None,
    label: str = "",
) -> None:
    """Write every file (in parallel threads), each readable by its owner only; the largest
    first, so that the threads finish together."""
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        written = [
            pool.submit(_write_one, path, (suffixes or {}).get(path, path.suffix), content)
            for path, content in sorted(files.items(), key=lambda f: -_cells(f[1]))
        ]
        for i, future in enumerate(written):
            future.result()
            if i == 0 and label:
                fault_point(f"{label}:writing")
    pa.default_memory_pool().release_unused()  # Arrow's allocator keeps freed memory otherwise


def _cells(content: pd.DataFrame | list[pd.DataFrame] | str) -> int:
    """How much there is to write: a table's cells (a text's characters)."""
    if isinstance(content, str):
        return len(content)
    parts = content if isinstance(content, list) else [content]
    return sum(p.size for p in parts)


def _write_one(path: Path, suffix: str, content: pd.DataFrame | list[pd.DataFrame] | str) -> None:
    # Created owner-only before anything is written into it: the tables are row-level data.
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    elif suffix == ".csv":
        content = concat(content) if isinstance(content, list) else content
        # UTF-8 with a byte-order mark, so that Excel shows accented labels correctly.
        table = pa.Table.from_pandas(neutralise_formulas(content), preserve_index=False)
        with path.open("wb") as fh:
            fh.write(codecs.BOM_UTF8)
            pacsv.write_csv(table, fh, pacsv.WriteOptions(quoting_style="needed"))
    else:
        write_parquet(content, path)


# The row order of the questionnaire tables (those with an instrument column, many rows a
# person): a person's rows sit together, so that the repeated pseudonyms, dates and labels
# compress to almost nothing (zstd, parquet dictionary pages). The routine tables, a row or
# a few a referral, keep the cleaner's order (site by site): sorting them buys nothing.
STORE_ORDER = ("site", "person_id", "referral_id", "timepoint", "instrument", "item")
SORTED_IF = "instrument"
ROW_GROUP = 1_000_000
# Columns whose minimum and maximum each row group records: the site, which the pages filter
# on. Text columns' statistics cost a quarter of writing the responses and would let no
# reader skip a group (every group holds every instrument and item, rows sorted by person).
STATISTICS = ("site",)
_ONE_SORT_AT_A_TIME = threading.Lock()


def _plain_text(schema: pa.Schema) -> pa.Schema:
    """The schema with dictionary (categorical) columns as their values, so they read back
    as text; pandas' own metadata (nullable types, units) is kept for the other columns."""
    pandas_meta = json.loads(schema.metadata[b"pandas"]) if schema.metadata else None
    for column in (pandas_meta or {}).get("columns", []):
        if column["pandas_type"] == "categorical":
            column.update(pandas_type="unicode", numpy_type="str", metadata=None)
    fields = [
        f.with_type(f.type.value_type) if pa.types.is_dictionary(f.type) else f for f in schema
    ]
    return pa.schema(fields, metadata={b"pandas": json.dumps(pandas_meta)} if pandas_meta else None)


def _dictionary(column: pa.ChunkedArray) -> pa.Array:
    """A column as one dictionary array (text is dictionary-encoded; others as they are)."""
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        column = pc.dictionary_encode(column)
    return column.combine_chunks()


def _ranks(array: pa.Array) -> tuple[np.ndarray, int]:
    """Each row's rank among the column's distinct values (0 for missing), and how many
    ranks there can be: text is sorted by its value, not by its dictionary code."""
    dictionary = pa.types.is_dictionary(array.type)
    if pa.types.is_null(array.type.value_type if dictionary else array.type) or (
        dictionary and not len(array.dictionary)
    ):  # an all-missing column
        return np.zeros(len(array), dtype=np.int64), 1
    if dictionary:
        # In NumPy, one array of the column's length at a time (Arrow's take, fill and cast
        # would hold three): sorting a 16M-row table stays a few hundred MB. Ranks of text
        # are 32-bit (a dictionary holds fewer than 2**31 values): half the memory to scan.
        codes = pc.fill_null(array.indices, 0).to_numpy(zero_copy_only=False)
        if _ascending(array.dictionary):  # a pandas categorical's categories are, mostly
            rows = codes.astype(np.int32)
            rows += 1
        else:
            ranks = pc.rank(array.dictionary, sort_keys="ascending", tiebreaker="dense")
            rows = ranks.to_numpy().astype(np.int32)[codes]
        if array.null_count:
            rows[array.is_null().to_numpy(zero_copy_only=False)] = 0
        return rows, len(array.dictionary) + 1
    ranks = pc.rank(array, sort_keys="ascending", null_placement="at_start", tiebreaker="dense")
    rows = pc.cast(pc.fill_null(ranks, 0), pa.int64()).to_numpy(zero_copy_only=False, writable=True)
    return rows, len(array) + 1


def _ascending(values: pa.Array) -> bool:
    """Whether the values are in strictly ascending order, none missing: each one's rank
    among them is then its position plus one."""
    if values.null_count:
        return False
    if len(values) < 2:
        return True
    return pc.all(pc.less(values[:-1], values[1:])).as_py()


def _folded_ranks(columns: list[pa.Array]) -> list[np.ndarray]:
    """The columns' ranks folded into as few 64-bit keys as fit, one column at a time
    (sorting one key is much faster than one key after another, and only two rank arrays
    are ever held at once)."""
    folded: list[np.ndarray] = []
    current, size = _ranks(columns[0])
    current = current.astype(np.int64, copy=False)
    for column in columns[1:]:
        ranks, n = _ranks(column)
        if size * n < 2**62:
            current *= n
            current += ranks
            size *= n
        else:
            folded.append(current)
            current, size = ranks.astype(np.int64, copy=False), n
        del ranks
    folded.append(current)
    return folded


def sort_keys(frame: pd.DataFrame, columns: list[str]) -> list[np.ndarray]:
    """Integer keys that order the rows as the store does by ``columns`` (text by its
    value, missing values first), first key first: equal rows have equal keys.

    >>> keys = sort_keys(pd.DataFrame({"person_id": ["q", "p", None, "q"]}), ["person_id"])
    >>> keys[0].tolist()
    [2, 1, 0, 2]
    """
    return _folded_ranks(_key_columns(frame, columns))


def _key_columns(frame: pd.DataFrame, columns: list[str]) -> list[pa.Array]:
    """The frame's ``columns`` as Arrow arrays, text dictionary-encoded (for :func:`_ranks`)."""
    coded = pa.Table.from_pandas(frame[columns], preserve_index=False)
    return [_dictionary(coded[k]) for k in columns]


def _is_sorted(keys: Iterable[np.ndarray]) -> bool:
    """Whether rows are in order by ``keys``, first key first. The keys may come one at a
    time (a generator): the check stops at the first key out of order, or once no two
    neighbouring rows are tied."""
    ties = None  # rows equal to the next one on the keys so far
    for key in keys:
        step = np.diff(key)
        if ((step < 0) if ties is None else (step < 0) & ties).any():
            return False
        ties = (step == 0) if ties is None else ties & (step == 0)
        if not ties.any():
            return True
    return True


def store_order(frame: pd.DataFrame) -> pd.DataFrame:
    """A questionnaire table's rows in the store's order (:data:`STORE_ORDER`), as
    :func:`write_parquet` writes them; other tables as they are.

    The cleaner puts each site's rows in this order (in its worker), so that writing the
    whole study has nothing left to sort.

    >>> frame = pd.DataFrame({"site": "A", "person_id": ["q", "p", "q"], "instrument": "ons4"})
    >>> store_order(frame)["person_id"].tolist()
    ['p', 'q', 'q']
    """
    order = _store_order(frame)
    return frame if order is None else frame.take(order).reset_index(drop=True)


def _store_order(frame: pd.DataFrame) -> np.ndarray | None:
    """The row order (a stable sort) that puts a questionnaire table in the store's order;
    None when its rows are in that order already (as the cleaner leaves them), or it is
    another table."""
    if SORTED_IF not in frame.columns or len(frame) < 2:
        return None
    arrays = _key_columns(frame, [k for k in STORE_ORDER if k in frame.columns])
    # Checked a column at a time, on each one's ranks (no keys folded, no sort).
    if _is_sorted(_ranks(a)[0] for a in arrays):
        return None
    # Sorted on integer keys made from the dictionary codes: the rows move as integers.
    keys = _folded_ranks(arrays)
    return np.lexsort(keys[::-1]) if len(keys) > 1 else np.argsort(keys[0], kind="stable")


class InStoreOrder(list):
    """A table's parts, each in the store's row order already (:func:`store_order`: the
    cleaner puts each site's questionnaire tables in it, in the site's worker).
    :func:`write_parquet` then checks only where one part meets the next, not every row of
    every part again.

    >>> parts = InStoreOrder([pd.DataFrame({"n": [1]}), pd.DataFrame({"n": [2]})])
    >>> isinstance(parts, list), len(parts)
    (True, 2)
    """


def write_parquet(frame: pd.DataFrame | list[pd.DataFrame], path: Path) -> None:
    """A table as a lean parquet file, zstd compressed; a questionnaire table (one with an
    ``instrument`` column) with its rows sorted by :data:`STORE_ORDER`.

    Sorting is stable, so rows equal on those columns keep their order. Repeated text is
    stored in parquet dictionary pages and, with a person's rows together, compresses to
    almost nothing; pandas categorical columns are written as their values. Every column
    reads back with its type, text as text with the same values.

    ``frame`` may also be a list of a table's parts (a site each, as the cleaner hands them
    over): they are written one after another, without being joined first, when that is
    the store's order; else they are joined and sorted. Either way the file reads back as
    the joined table would. Parts given as :class:`InStoreOrder` are taken to be in order
    each; only where they meet is checked.

    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "t.parquet"
    >>> frame = pd.DataFrame({"site": ["B", "A", "A"], "instrument": "ons4", "n": [1, 2, 3]})
    >>> write_parquet(frame.astype({"site": "category"}), path)
    >>> back = pd.read_parquet(path)
    >>> back["site"].tolist(), back["n"].tolist(), back["site"].dtype == frame["site"].dtype
    (['A', 'A', 'B'], [2, 3, 1], True)
    """
    # The whole table is never held as Arrow: only its sort keys, and one row group at a time
    # (a site, or a million rows). At a million referrals that is 1 GB less at the peak.
    parts, orders = _parts_to_write(
        frame if isinstance(frame, list) else [frame], isinstance(frame, InStoreOrder)
    )
    given = _arrow_schema(parts[0])
    schema = _plain_text(given)
    # Categorical text is written as parquet dictionary pages straight from its codes (each
    # row group with the values it uses), not turned into text to be encoded again; the
    # file's schema is then the pandas one alone, which reads it back as text. Durations and
    # time zones only an Arrow schema gives back: such a table is written with one, its
    # categoricals as text (no canonical or QA table has either).
    arrow_only = any(pa.types.is_duration(f.type) or _zoned(f.type) for f in schema)
    coded = (
        schema
        if arrow_only
        else pa.schema(
            [_coded(f, pa.types.is_dictionary(g.type)) for f, g in zip(schema, given, strict=True)],
            metadata=schema.metadata,
        )
    )
    with pq.ParquetWriter(
        path,
        coded,
        compression="zstd",
        store_schema=arrow_only,
        write_statistics=[name for name in coded.names if name in STATISTICS],
    ) as writer:
        for part, order in zip(parts, orders, strict=True):
            _write_row_groups(writer, part, order, coded)
        if schema.metadata and not arrow_only:
            writer.add_key_value_metadata(schema.metadata)


def _parts_to_write(
    parts: list[pd.DataFrame], in_order: bool = False
) -> tuple[list[pd.DataFrame], list[np.ndarray | None]]:
    """The frames to write one after another, each with the row order to write it in (None:
    as it is). Parts are written as they are when each is in store order (or ``in_order``
    says so), each part's last row comes before the next one's first, and their columns
    have the same types; else they are joined, and the whole table sorted."""
    if not parts:
        raise ValueError("write_parquet: no frame to write (an empty list of parts)")
    parts = [p for p in parts if len(p)] or parts[:1]
    # One table at a time (the writer threads of _write_all): a sort holds several arrays of
    # the table's length, and two at once made the peak of a clean.
    with _ONE_SORT_AT_A_TIME:
        orders = [None] * len(parts) if in_order else [_store_order(p) for p in parts]
    if len(parts) == 1 or (
        all(order is None for order in orders)
        and _same_types(parts)
        and all(_store_order(_last_and_first(a, b)) is None for a, b in itertools.pairwise(parts))
    ):
        return parts, orders
    joined = concat(parts)
    with _ONE_SORT_AT_A_TIME:
        return [joined], [_store_order(joined)]


def _last_and_first(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """The last row of ``a`` and the first of ``b`` on the store's order columns, as one
    frame of their values (joining two sites' categories, a million pseudonyms, or turning
    them into text would take longer than the check)."""
    keys = [c for c in STORE_ORDER if c in a.columns]
    return pd.DataFrame({c: [a[c].iloc[-1], b[c].iloc[0]] for c in keys}, dtype=object)


def _same_types(parts: list[pd.DataFrame]) -> bool:
    """Whether the parts' columns are the same, with the same pandas types (a categorical's
    categories may differ) and the same types once written: the file then reads back as
    the joined parts would."""

    def kinds(frame: pd.DataFrame) -> list:
        return [
            "category" if isinstance(t, pd.CategoricalDtype) else t for t in frame.dtypes
        ] + list(frame.columns)

    first, written = kinds(parts[0]), _plain_text(_arrow_schema(parts[0]))
    return all(
        kinds(p) == first and _plain_text(_arrow_schema(p)).equals(written) for p in parts[1:]
    )


def _write_row_groups(
    writer: pq.ParquetWriter, frame: pd.DataFrame, order: np.ndarray | None, coded: pa.Schema
) -> None:
    """A frame's rows (in ``order``, if given) as row groups of ``writer``'s file."""
    site = None  # a code per site (only where it changes matters), in written order
    if "site" in frame.columns:
        site = pd.factorize(frame["site"])[0].astype(np.int32)
        site = site if order is None else site[order]
    for start, stop in _row_groups(len(frame), site):
        rows = frame.iloc[start:stop] if order is None else frame.take(order[start:stop])
        table = pa.Table.from_pandas(rows, preserve_index=False)
        columns = [_compact(table[f.name], f.type) for f in coded]
        writer.write_table(pa.Table.from_arrays(columns, schema=coded), ROW_GROUP)
        del rows, table, columns
        pa.default_memory_pool().release_unused()  # Arrow's allocator keeps freed memory


def _zoned(kind: pa.DataType) -> bool:
    return pa.types.is_timestamp(kind) and kind.tz is not None


def _coded(field: pa.Field, categorical: bool) -> pa.Field:
    """A categorical's text field as Arrow dictionary type (int32 codes); others as they
    are (parquet dictionary-encodes text itself)."""
    text = pa.types.is_string(field.type) or pa.types.is_large_string(field.type)
    return field.with_type(pa.dictionary(pa.int32(), field.type)) if text and categorical else field


def _compact(column: pa.ChunkedArray, target: pa.DataType) -> pa.Array | pa.ChunkedArray:
    """A row group's column as ``target``: a categorical's dictionary cut to the values these
    rows use (a study-wide dictionary of a million pseudonyms would otherwise be written with
    every row group); one without categories as missing values; other columns cast, in the
    chunks they come in (joining a text column's chunks would copy all its text)."""
    if not pa.types.is_dictionary(target):
        return column.cast(target)
    column = column.combine_chunks()
    if not pa.types.is_dictionary(column.type) or not len(column.dictionary):
        return pc.dictionary_encode(column.cast(target.value_type)).cast(target)
    codes = pc.fill_null(column.indices, 0).to_numpy(zero_copy_only=False)
    used = np.bincount(codes, minlength=len(column.dictionary)) > 0
    missing = None
    if column.null_count:
        missing = column.is_null().to_numpy(zero_copy_only=False)
        used[0] = bool((codes[~missing] == 0).any())  # a missing value's 0 is not a use
    dictionary = column.dictionary.cast(target.value_type)
    # The codes index the dictionary (they are a categorical's, or were just renumbered):
    # Arrow's check of every one is skipped.
    if used.all():  # a site's row group usually uses its whole dictionary: nothing to cut
        indices = column.indices.cast(pa.int32())
        return pa.DictionaryArray.from_arrays(indices, dictionary, safe=False)
    renumber = (np.cumsum(used, dtype=np.int32) - 1).astype(np.int32)
    indices = pa.array(renumber[codes], mask=missing)
    return pa.DictionaryArray.from_arrays(indices, dictionary.filter(pa.array(used)), safe=False)


def _arrow_schema(frame: pd.DataFrame) -> pa.Schema:
    """The frame's Arrow schema, from its dtypes; a column of Python objects (whose type only
    its values tell) is converted once to find it."""
    schema = pa.Schema.from_pandas(frame.iloc[:0], preserve_index=False)
    for i, field in enumerate(schema):
        if pa.types.is_null(field.type) and len(frame):
            values = pa.array(frame[field.name], from_pandas=True)
            schema = schema.set(i, field.with_type(values.type))
    return schema


def _row_groups(n: int, site: np.ndarray | None) -> list[tuple[int, int]]:
    """(start, stop) of each row group, in written order: a new group wherever the site
    (its rank, row by row in written order) changes, and at most :data:`ROW_GROUP` rows a group.
    A site's page filters the store by site, and parquet then skips every group of the other
    sites without decoding it."""
    starts = {0}
    if site is not None and n > 1:
        starts.update((np.flatnonzero(site[1:] != site[:-1]) + 1).tolist())
    bounds = sorted(starts) + [max(n, 1)]
    return [
        (begin, min(begin + ROW_GROUP, stop))
        for start, stop in itertools.pairwise(bounds)
        for begin in range(start, stop, ROW_GROUP)
    ]


def neutralise_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """Text cells that a spreadsheet would run as a formula, with a ' in front (OWASP).

    >>> neutralise_formulas(pd.DataFrame({"label": ["=HYPERLINK(1)", "GP", "-2+3"]}))["label"].tolist()
    ["'=HYPERLINK(1)", 'GP', "'-2+3"]
    """
    out = None
    for col in frame.columns:
        values = frame[col]
        if values.dtype != object and not isinstance(values.dtype, pd.StringDtype):
            continue
        text = values.astype("string")
        risky = text.str.startswith(FORMULA_START).fillna(False).astype(bool)
        if risky.any():
            out = frame.copy() if out is None else out
            fixed = values.astype(object).copy()
            fixed[risky] = "'" + values[risky].astype(str)
            out[col] = fixed
    return frame if out is None else out


# --------------------------------------------------------------------------------------------
# Versioned output folders

STATE = ".linkeval"  # beside an output folder: its versions, its lock and its leftovers
LOCK = "lock"
READER = "reader-"
FAULT_ENV = "LINKEVAL_FAULT_AT"
LOG_FILE = "qa/cleaning_log.parquet"  # inside a processed version


def state_dir(final: Path) -> Path:
    """Where an output folder's versions and lock live: ``.linkeval/<name>/`` beside it."""
    final = Path(final)
    return final.parent / STATE / final.name


def current_version(final: Path) -> Path:
    """The folder a reader should read: the version ``final`` points at (once resolved, a
    reader keeps reading the same version even if a run switches ``final`` meanwhile)."""
    final = Path(final)
    return final.resolve() if final.is_symlink() else final


def fault_point(name: str) -> None:
    """A test hook: with ``LINKEVAL_FAULT_AT=<name>`` in the environment the process kills
    itself here with SIGKILL, as ``kill -9`` or a power cut would (tests/e2e/test_faults.py)."""
    if os.environ.get(FAULT_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


def write_version(
    final: Path, files: dict[str, pd.DataFrame | list[pd.DataFrame] | str], label: str
) -> Path:
    """Write ``files`` (paths relative to the folder) as a complete new version of ``final``,
    then make it current in one atomic step and remove the previous version. A parquet file's
    content may be a table's parts (see :func:`write_parquet`).

    Until the switch, readers see the previous version whole; a failure (a full disk, Ctrl-C)
    removes the new one and leaves the previous untouched.
    """
    final = Path(final)
    state = _make_state_dir(final)
    try:
        staging = Path(tempfile.mkdtemp(prefix=f"staging-{os.getpid()}-", dir=state))
    except OSError as exc:
        raise _write_error(final, exc) from None
    try:
        _folder_mode(staging)
        targets = {staging / rel: content for rel, content in files.items()}
        for parent in sorted({p.parent for p in targets}):
            parent.mkdir(parents=True, exist_ok=True)
        _write_all(targets, label=label)
        _sync_tree(staging)
        fault_point(f"{label}:written")
        version = state / _version_name()
        os.rename(staging, version)
    except OSError as exc:
        _remove_tree(staging)
        raise _write_error(final, exc) from None
    except BaseException:
        _remove_tree(staging)
        raise
    fault_point(f"{label}:staged")
    make_current(final, version, label)
    return version


def make_current(final: Path, version: Path, label: str = "") -> None:
    """Point ``final`` at ``version`` with one atomic rename; then remove the previous one."""
    final = Path(final)
    previous = current_version(final) if os.path.lexists(final) else None
    link = state_dir(final) / f"link-{os.getpid()}"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(link)
    try:
        os.symlink(os.path.relpath(version, final.parent), link)
        if final.is_dir() and not final.is_symlink():
            _exchange(link, final)  # a folder written before versions: swapped, not replaced
            previous = link
        else:
            os.replace(link, final)
        _sync_dir(final.parent)
    except OSError as exc:
        _remove_tree(link)
        raise _write_error(final, exc) from None
    fault_point(f"{label}:switched")
    if previous is not None and previous != Path(version).resolve():
        _remove_tree(previous)


@contextlib.contextmanager
def staged_directory(final: Path, label: str = "report") -> Iterator[Path]:
    """Build a folder's new contents in a sibling staging folder, then make it current.

    If the block raises (or the process dies) the previous ``final`` is untouched; the new
    contents become a version (see :func:`make_current`) and ``final`` switches to it in one
    atomic rename.
    """
    final = Path(final)
    state = _make_state_dir(final)
    try:
        staging = Path(tempfile.mkdtemp(prefix=f".{final.name}.staging-", dir=final.parent))
    except OSError as exc:
        raise _write_error(final, exc) from None
    try:
        yield staging
        fault_point(f"{label}:written")
        version = state / _version_name()
        os.rename(staging, version)
    except BaseException:
        _remove_tree(staging)
        raise
    fault_point(f"{label}:staged")
    make_current(final, version, label)


def remove_leftovers(
    final: Path, keep: tuple[str, ...] = (), patterns: tuple[str, ...] = ()
) -> int:
    """Remove what an interrupted run left (call it holding the folder's lock); bytes freed.

    That is every entry of the folder's state directory except the current version, the lock,
    ``keep`` and live readers' marks; staging folders and temporary files of earlier linkeval
    versions beside or inside the folder; and ``patterns`` (globs beside the folder).
    """
    final = Path(final)
    state = state_dir(final)
    current = current_version(final) if os.path.lexists(final) else None
    found: list[Path] = []
    if state.is_dir():
        for entry in state.iterdir():
            # Resolved, like ``current``: the folder's path may pass through a link of its own.
            if entry.name in (LOCK, *keep) or (current is not None and entry.resolve() == current):
                continue
            if pid_alive(_owner(entry)):  # a live run's staging, parts or reader mark
                continue
            found.append(entry)
    beside = glob.escape(str(final.parent))
    for pattern in (f".{final.name}.staging-*", f".{final.name}.old-*", *patterns):
        found += map(Path, glob.glob(os.path.join(beside, pattern)))
    if final.is_dir() and not final.is_symlink():  # temporary files of the old layout
        found += [p for p in final.rglob(".*.tmp") if p.is_file()]
    freed = 0
    for path in found:
        freed += _size(path)
        _remove_tree(path)
    return freed


def _make_state_dir(final: Path) -> Path:
    """The state directory of an output folder that is ours to switch (a real folder, a link
    to one of its versions, or nothing yet); a link of the user's own is refused, so that
    switching it never removes what it points at."""
    state = state_dir(final)
    if final.is_symlink():
        target = Path(os.path.abspath(final.parent / os.readlink(final)))
        if target.parent != state:
            raise LinkevalError(
                f"{final}: is a symbolic link to {target}, not one of linkeval's versions; set "
                "the folder in the config to where the link points"
            )
    try:
        state.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _write_error(final, exc) from None
    return state


def _version_name() -> str:
    return f"v-{datetime.now().strftime('%Y%m%dT%H%M%S%f')}-{os.getpid()}"


def _folder_mode(folder: Path) -> None:
    """A new folder gets the permissions the process umask gives (mkdtemp makes it private)."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(folder, 0o777 & ~mask)


def _exchange(a: Path, b: Path) -> None:
    """Swap two paths in one step (Linux renameat2), else with three renames."""
    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is not None:
        at_fdcwd, rename_exchange = -100, 2
        if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
            return
    aside = a.with_name(a.name + ".aside")
    os.rename(b, aside)
    os.rename(a, b)
    os.rename(aside, a)


def _sync_tree(folder: Path) -> None:
    """Flush a new version to disk before it is made current (a power cut keeps it whole)."""
    for root, _, files in os.walk(folder):
        for name in files:
            fd = os.open(os.path.join(root, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _sync_dir(Path(root))


def _sync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every file system lets a folder be synced
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _remove_tree(path: Path) -> None:
    """Remove a file, link or folder; read-only folders are made writable first."""
    path = Path(path)
    if path.is_symlink() or path.is_file():
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        return

    def writable_then_retry(function, name, exc_info) -> None:
        with contextlib.suppress(OSError):
            parent = os.path.dirname(name)
            os.chmod(parent, os.stat(parent).st_mode | stat.S_IWUSR | stat.S_IXUSR)
            function(name)

    if path.is_dir():
        with contextlib.suppress(OSError):
            os.chmod(path, path.stat().st_mode | stat.S_IWUSR | stat.S_IXUSR | stat.S_IRUSR)
        shutil.rmtree(path, onerror=writable_then_retry)


def _size(path: Path) -> int:
    if path.is_symlink() or not path.exists():
        return 0
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def _write_error(final: Path, exc: OSError) -> LinkevalError:
    reason = exc.strerror or str(exc)
    if exc.errno == errno.ENOSPC:
        fix = "free some disk space and run again"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        fix = f"make {final.parent} writable (or choose another folder in the config)"
    else:
        fix = "check the disk and the folder, and run again"
    return LinkevalError(
        f"{final}: cannot write the new version ({reason}); {fix}; the "
        "previous version is unchanged"
    )


# --------------------------------------------------------------------------------------------
# Locks and worker processes

_HELD: dict[str, bool] = {}  # lock file -> exclusive, for the locks this process holds


@contextlib.contextmanager
def folder_lock(final: Path, command: str, exclusive: bool = True) -> Iterator[None]:
    """Hold an output folder's lock: one writer (``exclusive``) or any number of readers.

    Another run holding it is an error naming it (pid, command, start time). The lock is a
    ``flock`` on ``.linkeval/<name>/lock``, released by the kernel when a process dies, so a
    killed run never leaves a folder locked. Re-entrant within a process. A reader in a
    read-only data area, where no lock file can be made, reads without one.
    """
    state = state_dir(final)
    path = os.path.abspath(state / LOCK)
    if path in _HELD and (_HELD[path] or not exclusive):
        yield
        return
    fd = _open_lock(Path(final), state, exclusive)
    if fd is None:
        yield
        return
    mark = None
    try:
        try:
            fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LinkevalError(
                f"{final}: in use by {_holder(state, fd)}; wait for it to finish (or stop it) "
                "and run again"
            ) from None
        _remove_dead_readers(state)
        info = json.dumps(
            {
                "pid": os.getpid(),
                "command": command,
                "started": datetime.now().isoformat(timespec="seconds"),
            }
        )
        if exclusive:
            os.ftruncate(fd, 0)
            os.pwrite(fd, info.encode(), 0)
        else:
            mark = state / f"{READER}{os.getpid()}"
            with contextlib.suppress(OSError):
                mark.write_text(info, encoding="utf-8")
        _HELD[path] = exclusive
        try:
            yield
        finally:
            del _HELD[path]
            if exclusive:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, 0)
            elif mark is not None:
                with contextlib.suppress(OSError):
                    mark.unlink()
    finally:
        os.close(fd)


def _remove_dead_readers(state: Path) -> None:
    """Readers' marks left by killed runs (a reader cannot tidy the rest of the folder)."""
    for mark in state.glob(f"{READER}*"):
        if not pid_alive(_owner(mark)):
            with contextlib.suppress(OSError):
                mark.unlink()


def _open_lock(final: Path, state: Path, exclusive: bool) -> int | None:
    try:
        state.mkdir(parents=True, exist_ok=True)
        return os.open(state / LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        if exclusive:
            raise _write_error(final, exc) from None
    try:
        return os.open(state / LOCK, os.O_RDONLY)
    except OSError:
        return None


def _holder(state: Path, fd: int) -> str:
    """Who holds a lock, from the writer's note in the lock file or the readers' marks."""
    with contextlib.suppress(OSError, ValueError):
        note = json.loads(os.pread(fd, 4096, 0) or b"{}")
        if note and pid_alive(note.get("pid")):
            return _describe(note)
    readers = []
    for mark in sorted(state.glob(f"{READER}*")):
        with contextlib.suppress(OSError, ValueError):
            note = json.loads(mark.read_text(encoding="utf-8"))
            if pid_alive(note.get("pid")):
                readers.append(_describe(note))
    return " and ".join(readers) or "another linkeval run"


def _describe(note: dict) -> str:
    return (
        f"linkeval {note.get('command', '?')} (pid {note.get('pid')}, started "
        f"{note.get('started', '?')})"
    )


def _owner(entry: Path) -> int | None:
    """The process a state entry belongs to while it works: ``staging-<pid>-*``,
    ``parts-<pid>-*``, ``reader-<pid>``, ``link-<pid>`` (versions belong to nobody)."""
    kind, _, rest = entry.name.partition("-")
    pid = rest.split("-")[0]
    return int(pid) if kind in ("staging", "parts", "reader", "link") and pid.isdigit() else None


# --------------------------------------------------------------------------------------------
# Reading processed data


def load_processed(
    processed_dir: Path | str, site: str | None = None, tables: list[str] | None = None
) -> dict[str, pd.DataFrame]:
    """Read the canonical tables (and the cleaning log) from a processed folder.

    With ``site``, only that site's rows are read (a parquet filter, applied while reading);
    with ``tables``, only those tables. Every table comes from one version, even if a clean
    finishes while they are read.

    Parameters
    ----------
    processed_dir : Path or str
        The processed folder (the config's ``processed_dir``, as written by
        :func:`linkeval.cleaning.write_outputs`).
    site : str, optional
        A site code: read only that site's rows.
    tables : list of str, optional
        Canonical table names to read; None (default): all seven and the cleaning log.

    Returns
    -------
    dict of str to DataFrame
        Table name -> table: ``referrals``, ``referral_reasons``, ``contacts``,
        ``onward_referrals``, ``responses``, ``scores`` and ``pairs`` (or those in
        ``tables``) and, when ``tables`` is None, ``cleaning_log`` (from ``qa/``).

    Raises
    ------
    LinkevalError
        When a table is missing (the message says to run ``linkeval clean``) or a file is
        damaged.

    References
    ----------
    docs/design.md, 'Canonical tables' and 'Runs and atomic writes'.

    Examples
    --------
    >>> import shutil, tempfile
    >>> from linkeval.cleaning import clean_study, write_outputs
    >>> from linkeval.config import load_config
    >>> from linkeval.pseudonymise import DEMO_KEY
    >>> from linkeval.synthetic import generate_study
    >>> folder = tempfile.mkdtemp()
    >>> cfg = load_config(generate_study(folder, n_referrals=200, n_sites=2, seed=1).config_path)
    >>> _ = write_outputs(cfg, clean_study(cfg, DEMO_KEY, today=pd.Timestamp("2025-01-01")))
    >>> data = load_processed(cfg.processed_dir)
    >>> sorted(data)  # doctest: +NORMALIZE_WHITESPACE
    ['cleaning_log', 'contacts', 'onward_referrals', 'pairs', 'referral_reasons', 'referrals',
     'responses', 'scores']
    >>> only_a = load_processed(cfg.processed_dir, site="A", tables=["referrals"])
    >>> sorted(only_a), only_a["referrals"]["site"].unique().tolist()
    (['referrals'], ['A'])
    >>> shutil.rmtree(folder)
    """
    for attempt in (1, 2):
        folder = current_version(Path(processed_dir))
        try:
            return _load_version(folder, Path(processed_dir), site, tables)
        except (FileNotFoundError, LinkevalError):
            # The version was replaced while being read: read the new one.
            if attempt == 2 or current_version(Path(processed_dir)) == folder:
                raise
    raise AssertionError("unreachable")


def _load_version(
    folder: Path, shown: Path, site: str | None, tables: list[str] | None
) -> dict[str, pd.DataFrame]:
    lazy = ProcessedTables(folder, site=site, shown=shown, tables=tables)
    return {name: lazy[name] for name in lazy}


class ProcessedTables(Mapping):
    """The processed tables of one version, each read when first asked for (then kept).

    A report page asks only for the tables its sections use, so item-level ``responses`` and
    ``scores``, which no page shows, are never read for it; with ``site``, every table is
    filtered to that site while it is read. ``unused`` names a table's columns not to read at
    all, and ``categories`` its columns to read as pandas categoricals (the same strings, kept
    once each). The version is fixed when this is made: a clean that finishes meanwhile does not
    mix two versions (a report run holds a shared lock on the processed folder, so no clean
    can replace the version it reads).

    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> pd.DataFrame({"site": ["A", "B"], "n": [1, 2]}).to_parquet(folder / "pairs.parquet")
    >>> tables = ProcessedTables(folder, site="B", tables=["pairs"])
    >>> list(tables), tables.read
    (['pairs'], [])
    >>> tables["pairs"]["n"].tolist(), tables.read
    ([2], ['pairs'])
    """

    def __init__(
        self,
        processed_dir: Path | str,
        site: str | None = None,
        *,
        shown: Path | None = None,
        tables: list[str] | None = None,
        unused: dict[str, tuple[str, ...]] | None = None,
        categories: dict[str, tuple[str, ...]] | None = None,
    ) -> None:
        self.folder = current_version(Path(processed_dir))
        self.shown = Path(shown or processed_dir)
        self.site = site
        self.names = list(tables or SCHEMAS)
        missing = [n for n in self.names if not (self.folder / f"{n}.parquet").is_file()]
        if missing:
            raise LinkevalError(
                f"{self.shown}: no processed {', '.join(missing)}; run linkeval clean first"
            )
        if tables is None and (self.folder / LOG_FILE).is_file():
            self.names.append("cleaning_log")
        self.unused = dict(unused or {})
        self.categories = dict(categories or {})
        self._read: dict[str, pd.DataFrame] = {}

    @property
    def read(self) -> list[str]:
        """The tables read so far (the others have not been touched)."""
        return list(self._read)

    def __getitem__(self, name: str) -> pd.DataFrame:
        if name not in self.names:
            raise KeyError(name)
        if name not in self._read:
            path = self.folder / (LOG_FILE if name == "cleaning_log" else f"{name}.parquet")
            filters = [("site", "==", self.site)] if self.site is not None else None
            try:
                options = self._read_options(name, path)
                self._read[name] = read_parquet(path, filters=filters, **options)
            except FileNotFoundError:
                raise LinkevalError(
                    f"{self.shown}: the processed data was replaced by a new clean while it "
                    "was being read; load it again"
                ) from None
        return self._read[name]

    def _read_options(self, name: str, path: Path) -> dict:
        """The columns to read (all but the ``unused`` ones) and which are categoricals."""
        unused, categories = self.unused.get(name, ()), self.categories.get(name, ())
        if not unused and not categories:
            return {}
        with _readable(path):
            columns = [c for c in pq.read_schema(path).names if c not in unused]
        dictionary = [c for c in categories if c in columns]
        return {"columns": columns, "read_dictionary": dictionary or None}

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)


def check_processed(processed_dir: Path) -> None:
    """Every canonical table of the current version is there and readable (its parquet footer
    is read, not its rows): a damaged file is one clear error before a long run starts."""
    folder = current_version(Path(processed_dir))
    for name in SCHEMAS:
        path = folder / f"{name}.parquet"
        if not path.is_file():
            raise LinkevalError(f"{processed_dir}: no processed {name}; run linkeval clean first")
        try:
            pq.read_metadata(path)
        except (pa.ArrowException, OSError) as exc:
            detail = getattr(exc, "strerror", None) or str(exc).splitlines()[0][:120]
            raise LinkevalError(
                f"{path}: cannot read processed data ({detail}); it is damaged or unreadable: "
                "run linkeval clean for all sites to write it again"
            ) from None


def read_parquet(path: Path, **kwargs) -> pd.DataFrame:
    """A processed parquet file; a damaged or unreadable one is one clear error."""
    with _readable(path):
        return pd.read_parquet(path, **kwargs)


@contextlib.contextmanager
def _readable(path: Path) -> Iterator[None]:
    """Reading ``path``: a damaged or unreadable file is one clear error (a missing one, not:
    the caller knows what that means)."""
    try:
        yield
    except FileNotFoundError:
        raise
    except (pa.ArrowException, OSError, ValueError) as exc:
        detail = getattr(exc, "strerror", None) or str(exc).splitlines()[0][:120]
        raise LinkevalError(
            f"{path}: cannot read processed data ({detail}); it is damaged or unreadable: "
            "run linkeval clean for all sites to write it again"
        ) from None
