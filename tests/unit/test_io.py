"""Reading raw exports: the fast Arrow reader agrees with pandas' reader, which stays the
judge of malformed files."""

from __future__ import annotations

import pandas as pd
import pytest

from linkeval.config import Source
from linkeval.errors import LinkevalError
from linkeval.io import _read_csv_arrow, detect_encoding, read_raw


def source(**kwargs) -> Source:
    return Source(table="referrals", path="x.csv", columns={"referral_id": "Ref"}, **kwargs)


def pandas_reading(path, encoding, skip_rows=0) -> pd.DataFrame:
    """What pandas makes of the file, every cell text and blanks ''."""
    frame = pd.read_csv(
        path,
        dtype=object,
        keep_default_na=False,
        na_filter=False,
        encoding=encoding,
        skiprows=skip_rows,
        skip_blank_lines=False,
    )
    frame.columns = [c.strip() for c in frame.columns]
    return frame.fillna("").astype(object)


def as_frame(table) -> pd.DataFrame:
    return pd.DataFrame(
        {name: table.column(name).to_pylist() for name in table.column_names}, dtype=object
    )


WELL_FORMED = [
    # quoted separators, quoted newlines, doubled quotes, blanks, spaces kept, header spaces
    (
        'Ref , Name,Notes\nR1,"Smith, J","line one\nline two"\nR2,,"she said ""hi"""\n'
        "R3, padded ,\n",
        "utf-8",
        0,
    ),
    ("Ref,Reason\nR1,Café – connect\nR2,Débt\n", "utf-8-sig", 0),  # written with a BOM
    ("Search: caseload\nRun by: team\n\nRef,Reason\nR1,Café – connect\n", "cp1252", 3),
    ("Ref,Reason\nR1,a\n\nR2,b\n", "utf-8", 0),  # a blank line is a blank row, as in pandas
    ('Ref,Reason\r\nR1,a\r\nR2,"b\r\nc"\r\nR3,d', "cp1252", 0),  # Windows line ends, no last
]


@pytest.mark.parametrize(("text", "encoding", "skip_rows"), WELL_FORMED)
def test_arrow_reader_matches_pandas_on_well_formed_files(tmp_path, text, encoding, skip_rows):
    path = tmp_path / "x.csv"
    path.write_bytes(text.encode(encoding))
    src = source(skip_rows=skip_rows)
    assert _read_csv_arrow(path, src, detect_encoding(path)) is not None  # the fast path was taken
    got = as_frame(read_raw(path, src))
    pd.testing.assert_frame_equal(got, pandas_reading(path, encoding, skip_rows))


@pytest.mark.parametrize(
    "text",
    [
        "Ref,Reason,Extra\nR1,a\nR2,b,c\n",  # a short row: its missing cells are blank
        "Ref,Ref,Reason\nR1,R1,a\n",  # a repeated header: pandas names it Ref.1
        "Ref,,Reason\nR1,x,a\n",  # an unnamed column
    ],
)
def test_files_arrow_cannot_read_alike_fall_back_to_pandas(tmp_path, text):
    path = tmp_path / "x.csv"
    path.write_text(text, encoding="utf-8")
    assert _read_csv_arrow(path, source(), detect_encoding(path)) is None
    got = as_frame(read_raw(path, source()))
    pd.testing.assert_frame_equal(got, pandas_reading(path, "utf-8"))


def test_a_row_with_too_many_fields_is_one_clear_error(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("Ref,Reason\nR1,a\nR2,b,c\n", encoding="utf-8")
    with pytest.raises(LinkevalError, match=r"x\.csv: cannot parse as CSV .*line 3.*delimiter"):
        read_raw(path, source())
