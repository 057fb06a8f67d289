"""Numbers and dates as the pages print them: thousands separated, no "-0.0", p-values to three
places, "25 November 2026". The disclosure gate decides what is shown; these only format it."""

from __future__ import annotations

import numpy as np
import pandas as pd


def fmt(value, decimals: int = 1) -> str:
    """A number for people: '*' stays '*', thousands separated, sensible decimals.

    A value that rounds to zero prints without a minus sign ("0.0", never "-0.0").
    """
    if isinstance(value, str):
        return value
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return "-"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)) or (float(value).is_integer() and decimals == 0):
        return f"{int(value):,}"
    return _no_negative_zero(f"{float(value):,.{decimals}f}")


def fmt_p(p) -> str:
    if isinstance(p, str) or p is None or (isinstance(p, float) and np.isnan(p)):
        return fmt(p)
    return "<0.001" if p < 0.001 else _no_negative_zero(f"{p:.3f}")


def _no_negative_zero(text: str) -> str:
    if text.startswith("-") and not any(c in "123456789" for c in text):
        return text[1:]
    return text


def long_date(value) -> str:
    """'2026-11-25', a date or a timestamp -> '25 November 2026' ('-' when unknown)."""
    if value is None or value == "":
        return "-"
    try:
        stamp = pd.Timestamp(value)
    except (ValueError, TypeError):
        return str(value)
    if pd.isna(stamp):
        return "-"
    return f"{stamp.day} {stamp:%B %Y}"


def month_range(first, last) -> str:
    """First to last month covered: 'January 2023 to December 2024'."""
    if first is None or last is None or pd.isna(first) or pd.isna(last):
        return "no referrals"
    first, last = pd.Timestamp(first), pd.Timestamp(last)
    if (first.year, first.month) == (last.year, last.month):
        return f"{first:%B %Y}"
    return f"{first:%B %Y} to {last:%B %Y}"
