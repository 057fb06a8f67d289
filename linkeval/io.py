"""Reading raw exports and writing outputs atomically.

Raw files are read as text, every column a string and every blank a blank, so that nothing is
converted before the cleaner has looked at it (leading zeros, odd dates and placeholder values
survive to be judged and logged). Only this module, ``cleaning``, ``report.batch`` and ``cli``
touch the file system.
"""

from __future__ import annotations

import codecs
import contextlib
import glob
import os
import shutil
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from linkeval.config import Source
from linkeval.errors import LinkevalError, did_you_mean
from linkeval.schema import SCHEMAS

ZIP_MAGIC = b"PK\x03\x04"


def source_files(raw_dir: Path, source: Source) -> list[Path]:
    """The files a source's path (a glob, relative to raw_dir) matches, sorted by name."""
    pattern = str(raw_dir / source.path)
    paths = sorted(Path(p) for p in glob.glob(pattern) if Path(p).is_file())
    if not paths:
        raise LinkevalError(
            f"{pattern}: no file matches {source.key_path}.path; check raw_dir and the file name"
        )
    return paths


def detect_encoding(path: Path, encoding: str = "auto") -> str:
    """Check a text export can be decoded, and choose utf-8-sig, utf-8 or cp1252 when 'auto'."""
    data = path.read_bytes()
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
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        frame = _read_xlsx(path, source)
    else:
        encoding = detect_encoding(path, source.encoding)
        table = _read_csv_arrow(path, source, encoding)
        if table is not None:
            return table.rename_columns([c.strip() for c in table.column_names])
        frame = _read_csv_pandas(path, source, encoding)
    arrays = [pc.fill_null(pa.array(frame[c].to_numpy(dtype=object), type=pa.string(),
                                    from_pandas=True), "") for c in frame.columns]
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
                skip_rows=source.skip_rows, use_threads=True),
            parse_options=pacsv.ParseOptions(delimiter=source.delimiter,
                                             newlines_in_values=True, ignore_empty_lines=False),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(names, pa.string()),
                strings_can_be_null=False, quoted_strings_can_be_null=False),
        )
    except (pa.ArrowInvalid, UnicodeDecodeError):
        return None
    if table.column_names != names:
        return None
    return table


def _read_csv_pandas(path: Path, source: Source, encoding: str,
                     nrows: int | None = None) -> pd.DataFrame:
    try:
        return pd.read_csv(
            path, dtype=object, keep_default_na=False, na_filter=False, encoding=encoding,
            skiprows=source.skip_rows, sep=source.delimiter, skip_blank_lines=False, nrows=nrows,
        )
    except pd.errors.EmptyDataError:
        raise LinkevalError(
            f"{path}: no header row after skipping {source.skip_rows} lines; check skip_rows"
        ) from None
    except pd.errors.ParserError as exc:
        raise LinkevalError(
            f"{path}: cannot parse as CSV ({str(exc).strip()}); check skip_rows and delimiter"
        ) from None


def _read_xlsx(path: Path, source: Source) -> pd.DataFrame:
    with path.open("rb") as fh:
        if fh.read(4) != ZIP_MAGIC:
            raise LinkevalError(f"{path}: not a valid .xlsx workbook; re-save it from Excel")
    try:
        sheets = pd.ExcelFile(path, engine="openpyxl")
    except Exception as exc:  # openpyxl raises many types for damaged files
        raise LinkevalError(f"{path}: cannot open workbook ({exc}); re-save it from Excel") from None
    with sheets:
        sheet = source.sheet if source.sheet is not None else sheets.sheet_names[0]
        if sheet not in sheets.sheet_names:
            raise LinkevalError(
                f"{path}: no sheet {sheet!r} ({source.key_path}.sheet)"
                f"{did_you_mean(sheet, sheets.sheet_names)}; sheets: {', '.join(sheets.sheet_names)}"
            )
        frame = pd.read_excel(sheets, sheet_name=sheet, dtype=str, keep_default_na=False,
                              na_filter=False, skiprows=source.skip_rows)
        return frame.astype(object)


def write_files_atomic(files: dict[Path, pd.DataFrame | str]) -> None:
    """Write several outputs so that a failure leaves every previous output untouched.

    Each frame (``.parquet`` or ``.csv``, by suffix) or text is first written to a temporary
    file beside its target (in parallel threads: Arrow's writers release the GIL); only when
    all are written are they renamed into place.
    """
    staged: list[tuple[str, Path]] = []
    try:
        for path in files:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            os.close(fd)
            staged.append((tmp, path))
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            written = [pool.submit(_write_one, Path(tmp), path.suffix, files[path])
                       for tmp, path in staged]
            for future in written:
                future.result()
    except BaseException:
        for tmp, _ in staged:
            with contextlib.suppress(FileNotFoundError):
                os.remove(tmp)
        raise
    for tmp, path in staged:
        os.replace(tmp, path)


def _write_one(tmp: Path, suffix: str, content: pd.DataFrame | str) -> None:
    if isinstance(content, str):
        tmp.write_text(content, encoding="utf-8")
    elif suffix == ".csv":
        # UTF-8 with a byte-order mark, so that Excel shows accented labels correctly.
        table = pa.Table.from_pandas(content, preserve_index=False)
        with tmp.open("wb") as fh:
            fh.write(codecs.BOM_UTF8)
            pacsv.write_csv(table, fh, pacsv.WriteOptions(quoting_style="needed"))
    else:
        content.to_parquet(tmp, index=False)


@contextlib.contextmanager
def staged_directory(final: Path) -> Iterator[Path]:
    """Build a directory's new contents in a sibling staging folder, then swap it in.

    If the block raises (or the process dies) the previous ``final`` folder is untouched; the
    swap itself is two renames.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{final.name}.staging-", dir=final.parent))
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    old = final.with_name(f".{final.name}.old-{os.getpid()}")
    if final.exists():
        os.replace(final, old)
    os.replace(staging, final)
    shutil.rmtree(old, ignore_errors=True)


def load_processed(processed_dir: Path | str, site: str | None = None,
                   tables: list[str] | None = None) -> dict[str, pd.DataFrame]:
    """Read the canonical tables (and the cleaning log) from a processed folder.

    With ``site``, only that site's rows are read (a parquet filter, applied while reading);
    with ``tables``, only those tables.
    """
    processed_dir = Path(processed_dir)
    names = list(tables or SCHEMAS)
    missing = [n for n in names if not (processed_dir / f"{n}.parquet").is_file()]
    if missing:
        raise LinkevalError(
            f"{processed_dir}: no processed {', '.join(missing)}; run linkeval clean first"
        )
    filters = [("site", "==", site)] if site is not None else None
    out = {n: pd.read_parquet(processed_dir / f"{n}.parquet", filters=filters) for n in names}
    log_path = processed_dir / "qa" / "cleaning_log.parquet"
    if tables is None and log_path.is_file():
        out["cleaning_log"] = pd.read_parquet(log_path, filters=filters)
    return out
