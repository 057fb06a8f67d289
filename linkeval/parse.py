"""Vectorised parsing of raw text values (dates, whole numbers) with a mask of what failed.

UK exports write dates day first. Without an explicit ``date_format`` each value is tried against
the formats below in turn (one vectorised pass per format over the values still unparsed), so a
file that mixes ``05/03/2024`` and ``2024-03-05 00:00:00`` (as Excel-to-CSV round trips do) is
read correctly, and ``03/05/2024`` is always 3 May, never 5 March.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

DAY_FIRST_FORMATS: tuple[str, ...] = (
    "%d/%m/%Y",
    "%Y-%m-%d",
    "%Y-%m-%d %H:%M:%S",
    "%d/%m/%Y %H:%M",
    "%d/%m/%Y %H:%M:%S",
    "%Y-%m-%dT%H:%M:%S",
    "%d-%m-%Y",
    "%d.%m.%Y",
    "%d-%b-%Y",
    "%d %b %Y",
    "%d %B %Y",
    "%d-%b-%y",
    "%Y%m%d",
)


def as_text(values: pa.Array | pa.ChunkedArray, index: pd.Index | None = None) -> pd.Series:
    """Arrow text as a pandas ``str`` column: Arrow-backed, so no Python object per cell."""
    return pd.Series(
        pd.array(values, dtype=pd.StringDtype("pyarrow", na_value=np.nan)), index=index
    )


def is_in(values: pd.Series, of: pd.Series) -> pd.Series:
    """Which of ``values`` are among ``of`` (missing never is): pandas' ``isin`` on text
    turns ``of`` into Python strings one by one, which takes minutes at a million rows.

    >>> is_in(pd.Series(["a", "b", None]), pd.Series(["b", "c"])).tolist()
    [False, True, False]
    """
    found = pc.is_in(
        pa.array(values.astype("str"), from_pandas=True),
        value_set=pa.array(of.astype("str").dropna().unique(), from_pandas=True),
    )
    return pd.Series(pc.fill_null(found, False).to_numpy(zero_copy_only=False), index=values.index)


def distinct(values: pd.Series) -> tuple[pd.Index | np.ndarray, np.ndarray]:
    """The distinct non-missing values, and each row's slot among them.

    For work done once per distinct value (a million rows usually hold a few dozen labels):
    compute one result per distinct value plus one trailing result for missing values (slot
    ``len(uniques)``), then index that array by the slots.
    """
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    return uniques, np.where(codes < 0, len(uniques), codes)


def blank(values: pd.Series) -> pd.Series:
    """True where a value is missing or empty. Expects text already stripped (see :func:`strip`)."""
    return (values.isna() | (values == "")).astype(bool)


def parse_dates(values: pd.Series, date_format: str | None = None) -> tuple[pd.Series, pd.Series]:
    """Parse stripped raw text to dates (time of day dropped).

    Returns ``(dates, bad)``: ``dates`` is ``datetime64[s]`` with NaT for blanks and failures;
    ``bad`` is True where a non-blank value could not be read (including impossible calendar
    dates such as 31/02/2024).

    Each distinct value is parsed once (a million rows hold a few thousand dates).

    >>> dates, bad = parse_dates(pd.Series(["05/03/2024", "2024-03-05 10:00:00", "", "31/02/2024"]))
    >>> dates.dt.strftime("%Y-%m-%d").tolist(), bad.tolist()
    (['2024-03-05', '2024-03-05', nan, nan], [False, False, False, True])
    """
    uniques, slots = distinct(values)
    text = pd.Series(np.asarray(uniques, dtype=object))
    out = pd.Series(pd.NaT, index=text.index, dtype="datetime64[s]")
    todo = ~blank(text)
    for fmt in (date_format,) if date_format else DAY_FIRST_FORMATS:
        if not todo.any():
            break
        parsed = pd.to_datetime(text[todo], format=fmt, errors="coerce")
        ok = parsed.notna()
        if ok.any():
            out.loc[ok[ok].index] = parsed[ok].dt.floor("D").astype("datetime64[s]")
            todo.loc[ok[ok].index] = False
    # One trailing slot for missing values: no date, not bad.
    dates = np.append(out.to_numpy(), np.datetime64("NaT", "s"))[slots]
    bad = np.append(todo.to_numpy(dtype=bool), False)[slots]
    return pd.Series(dates, index=values.index), pd.Series(bad, index=values.index)


def parse_whole_numbers(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Parse raw text to nullable integers ('12', '12.0' and ' 12 ' are 12).

    Returns ``(numbers, bad)`` with ``bad`` True where a non-blank value is not a whole number.

    >>> numbers, bad = parse_whole_numbers(pd.Series(["12", "12.0", " 3 ", "1.5", "x", None]))
    >>> numbers.tolist(), bad.tolist()
    ([12, 12, 3, <NA>, <NA>, <NA>], [False, False, False, True, True, False])
    """
    numeric, bad = _numbers(values)
    whole = numeric.notna() & np.isfinite(numeric) & (numeric == np.floor(numeric))
    numbers = numeric.where(whole).astype("Float64").round().astype("Int64")
    return numbers, bad | (numeric.notna() & ~whole)


def parse_numbers(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Parse raw text to nullable floats; ``bad`` marks non-blank values that are not numbers.

    >>> numbers, bad = parse_numbers(pd.Series(["1.5", " 2", "", "x"]))
    >>> numbers.tolist(), bad.tolist()
    ([1.5, 2.0, <NA>, <NA>], [False, False, False, True])
    """
    numeric, bad = _numbers(values)
    return numeric.astype("Float64"), bad


def _numbers(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Raw text as floats (NaN where blank, missing or not a number), and which are bad
    (not blank, not a number); each distinct value is parsed once."""
    uniques, slots = distinct(values)
    text = pd.Series(np.asarray(uniques, dtype=object))
    is_blank = blank(text)
    numeric = pd.to_numeric(text.mask(is_blank), errors="coerce").astype(float)
    bad = ~is_blank & numeric.isna()
    # One trailing slot for missing values: no number, not bad.
    return (
        pd.Series(np.append(numeric.to_numpy(), np.nan)[slots], index=values.index),
        pd.Series(np.append(bad.to_numpy(dtype=bool), False)[slots], index=values.index),
    )


def whole_years_between(start: pd.Series, end: pd.Series) -> pd.Series:
    """Completed years from ``start`` to ``end`` (age on a date), as nullable integers."""
    years = end.dt.year - start.dt.year
    before_birthday = (end.dt.month < start.dt.month) | (
        (end.dt.month == start.dt.month) & (end.dt.day < start.dt.day)
    )
    return (years - before_birthday.astype(int)).astype("Int64")
