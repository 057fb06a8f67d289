"""Spreadsheets (.xlsx, .xlsm, .xls, .ods) are read by calamine as text, like CSV exports, with
the same errors for a missing sheet or a damaged file (docs/design.md, 'Study config': sheet).

pandas cannot write .ods without odfpy (not a dependency), so the .ods test builds a small
OpenDocument spreadsheet by hand (a zip of mimetype, content.xml and the manifest); .xls is
read from a workbook that statsmodels ships, when the installed statsmodels has its tests.
"""

from __future__ import annotations

import datetime as dt
import zipfile
from pathlib import Path
from xml.sax.saxutils import escape

import pandas as pd
import pytest
import statsmodels

from linkeval.config import Source
from linkeval.errors import LinkevalError
from linkeval.io import read_raw

HEADERS = ["Ref No", "NHS Number", "Date Referred", "Visits", "Notes"]
# (type, value): how the cell is stored; the text is what every reader should give back.
ROWS = [
    [
        ("string", "R001"),
        ("string", "9434765919"),
        ("date", dt.date(2024, 1, 5)),
        ("float", 3),
        ("string", "Lives alone"),
    ],
    [
        ("string", "R002"),
        ("string", "0123"),
        ("date", dt.date(2024, 2, 29)),
        ("float", 2.5),
        ("string", ""),
    ],
    [
        ("string", "R003"),
        ("string", ""),
        ("string", "31/02/2024"),
        ("string", ""),
        ("string", "Café – Connect"),
    ],
]
EXPECTED = [
    ["R001", "9434765919", "2024-01-05 00:00:00", "3", "Lives alone"],
    ["R002", "0123", "2024-02-29 00:00:00", "2.5", ""],
    ["R003", "", "31/02/2024", "", "Café – Connect"],
]


def source(path: str, sheet: str | None = None) -> Source:
    return Source(
        table="referrals",
        path=path,
        columns={"referral_id": "Ref No"},
        sheet=sheet,
        key_path="sites.X.sources[0]",
    )


def as_rows(table) -> list[list[str]]:
    return [list(r.values()) for r in table.to_pylist()]


def _ods_cell(kind: str, value) -> str:
    if kind == "date":
        return (
            f'<table:table-cell office:value-type="date" office:date-value='
            f'"{value.isoformat()}"><text:p>{value:%d/%m/%Y}</text:p></table:table-cell>'
        )
    if kind == "float":
        return (
            f'<table:table-cell office:value-type="float" office:value="{value}">'
            f"<text:p>{value}</text:p></table:table-cell>"
        )
    if value == "":
        return "<table:table-cell/>"
    return (
        f'<table:table-cell office:value-type="string"><text:p>{escape(value)}</text:p>'
        "</table:table-cell>"
    )


def write_ods(path: Path, sheets: dict[str, list[list[tuple[str, object]]]]) -> None:
    """A minimal OpenDocument spreadsheet: one table per sheet, the first row the header."""
    tables = []
    for name, rows in sheets.items():
        body = "".join(
            "<table:table-row>" + "".join(_ods_cell(k, v) for k, v in row) + "</table:table-row>"
            for row in rows
        )
        tables.append(f'<table:table table:name="{name}">{body}</table:table>')
    content = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        "<office:document-content "
        'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
        'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
        'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" office:version="1.2">'
        f"<office:body><office:spreadsheet>{''.join(tables)}</office:spreadsheet></office:body>"
        "</office:document-content>"
    )
    manifest = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0"'
        ' manifest:version="1.2">'
        '<manifest:file-entry manifest:full-path="/" manifest:media-type='
        '"application/vnd.oasis.opendocument.spreadsheet"/>'
        '<manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/>'
        "</manifest:manifest>"
    )
    with zipfile.ZipFile(path, "w") as z:
        # The mimetype comes first and uncompressed (OpenDocument 1.2, part 3, 3.3).
        z.writestr(
            "mimetype",
            "application/vnd.oasis.opendocument.spreadsheet",
            compress_type=zipfile.ZIP_STORED,
        )
        z.writestr("content.xml", content, compress_type=zipfile.ZIP_DEFLATED)
        z.writestr("META-INF/manifest.xml", manifest, compress_type=zipfile.ZIP_DEFLATED)


def write_excel(path: Path, sheets: dict[str, list[list[tuple[str, object]]]]) -> None:
    """The same cells in an Excel workbook (dates as date cells, numbers as numbers)."""
    with pd.ExcelWriter(path, engine="openpyxl") as xl:
        for name, rows in sheets.items():
            cells = [[None if v == "" else v for _, v in row] for row in rows]
            pd.DataFrame(cells, columns=HEADERS).to_excel(xl, sheet_name=name, index=False)


def test_ods_is_read_as_text_like_a_csv(tmp_path):
    path = tmp_path / "export.ods"
    header = [("string", h) for h in HEADERS]
    write_ods(path, {"Referrals": [header, *ROWS]})
    table = read_raw(path, source("export.ods"))
    assert table.column_names == HEADERS
    assert as_rows(table) == EXPECTED


@pytest.mark.parametrize("suffix", [".xlsx", ".xlsm"])
def test_excel_workbooks_are_read_by_calamine(tmp_path, suffix):
    path = tmp_path / f"export{suffix}"
    write_excel(path, {"Other": ROWS[:1], "Referrals": ROWS})
    table = read_raw(path, source(path.name, sheet="Referrals"))
    assert table.column_names == HEADERS
    assert as_rows(table) == EXPECTED


def test_the_first_sheet_is_read_when_none_is_named(tmp_path):
    path = tmp_path / "export.ods"
    header = [("string", h) for h in HEADERS]
    write_ods(path, {"First": [header, ROWS[0]], "Second": [header, *ROWS]})
    assert as_rows(read_raw(path, source("export.ods"))) == EXPECTED[:1]


def test_legacy_xls_is_read():
    path = (
        Path(statsmodels.__file__).parent
        / "tsa"
        / "statespace"
        / "tests"
        / "results"
        / "frbny_nowcast"
        / "Nowcasting"
        / "test_spec.xls"
    )
    if not path.is_file():
        pytest.skip("this statsmodels install has no test workbooks")
    table = read_raw(path, source(path.name))
    assert table.column_names[:2] == ["Model", "SeriesID"]
    assert as_rows(table)[0][:2] == ["1", "GDPC1"]


@pytest.mark.parametrize("suffix", [".ods", ".xlsx"])
def test_a_missing_sheet_is_named_with_the_sheets_there(tmp_path, suffix):
    path = tmp_path / f"export{suffix}"
    header = [("string", h) for h in HEADERS]
    (write_ods if suffix == ".ods" else write_excel)(
        path, {"Referrals": [header, *ROWS] if suffix == ".ods" else ROWS}
    )
    with pytest.raises(LinkevalError) as err:
        read_raw(path, source(path.name, sheet="Referals"))
    message = str(err.value)
    assert "no sheet 'Referals' (sites.X.sources[0].sheet)" in message
    assert 'did you mean "Referrals"' in message and "sheets: Referrals" in message


@pytest.mark.parametrize("suffix", [".ods", ".xlsx", ".xlsm", ".xls"])
def test_a_file_that_is_not_a_workbook_is_one_clear_error(tmp_path, suffix):
    path = tmp_path / f"export{suffix}"
    path.write_text("Ref No,Date\nR1,05/01/2024\n", encoding="utf-8")
    with pytest.raises(LinkevalError, match=rf"not a valid \{suffix} workbook"):
        read_raw(path, source(path.name))


def test_a_damaged_workbook_is_one_clear_error(tmp_path):
    path = tmp_path / "export.ods"
    with zipfile.ZipFile(path, "w") as z:  # a zip, but no spreadsheet in it
        z.writestr("mimetype", "application/vnd.oasis.opendocument.spreadsheet")
    with pytest.raises(LinkevalError, match="cannot open workbook"):
        read_raw(path, source("export.ods"))


def test_config_accepts_a_sheet_on_ods_and_xls(tmp_path):
    from linkeval.config import parse_config

    raw = {
        "study": "S",
        "raw_dir": "raw",
        "processed_dir": "out",
        "reports_dir": "rep",
        "sites": {
            "X": {
                "sources": [
                    {
                        "table": "referrals",
                        "path": "x/book.ods",
                        "sheet": "Referrals",
                        "columns": {
                            "referral_id": "Ref",
                            "referral_date": "Date",
                            "nhs_number": "NHS",
                        },
                    }
                ]
            }
        },
    }
    for suffix in (".ods", ".xls"):
        raw["sites"]["X"]["sources"][0]["path"] = f"x/book{suffix}"
        cfg = parse_config(raw, tmp_path / "study.yaml")
        assert cfg.sites["X"].sources[0].sheet == "Referrals"
