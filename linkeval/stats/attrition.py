"""Attrition: who was followed up, and how they differ from those who were not.

Statistics only: DataFrames in, tidy DataFrames out.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from linkeval.stats.describe import group_keys, reason_flags
from linkeval.vocab import imd_quintile


def followup_rates(
    pairs: pd.DataFrame, by: str | list[str] = "site", window_only: bool = True
) -> pd.DataFrame:
    """Follow-up rate per score (and group): people with a baseline, with a follow-up, %.

    A person counts as followed up when the pair has a follow-up (inside the window when
    ``window_only``).
    """
    by = group_keys(by)
    p = pairs.assign(followed_up=_followed(pairs, window_only))
    out = (
        p.groupby([*by, "instrument"], observed=True)
        .agg(n_baseline=("person_id", "size"), n_followed_up=("followed_up", "sum"))
        .reset_index()
    )
    out["pct_followed_up"] = 100 * out["n_followed_up"] / out["n_baseline"]
    return out


def _followed(pairs: pd.DataFrame, window_only: bool) -> pd.Series:
    has = pairs["followup"].notna()
    return (has & pairs["in_window"]) if window_only else has


def attrition_table(
    pairs: pd.DataFrame,
    referrals: pd.DataFrame,
    referral_reasons: pd.DataFrame | None = None,
    instrument: str | None = None,
    window_only: bool = True,
) -> pd.DataFrame:
    """Baseline characteristics of people with vs without follow-up, with SMDs.

    One row per characteristic level (age band, sex, IMD quintile, referral reasons, and the
    baseline score of ``instrument``). Columns: ``variable``, ``level``, ``statistic`` ("n (%)"
    or "mean (SD)"), ``followed_up`` and ``not_followed_up`` (counts or means), their
    ``pct_``/``sd_`` companions, and ``smd``, the standardised mean difference
    (followed up minus not): for a mean, (m1 - m0) / sqrt((s1^2 + s0^2) / 2); for a
    proportion, (p1 - p0) / sqrt((p1(1 - p1) + p0(1 - p0)) / 2) (Austin 2009, Stat Med 28:3083).
    |SMD| above 0.1 is conventionally taken as a meaningful imbalance.
    """
    p = pairs if instrument is None else pairs[pairs["instrument"] == instrument]
    if instrument is None:  # one row per person: followed up on any score
        p = (
            p.assign(f=_followed(p, window_only))
            .groupby(["site", "person_id"], as_index=False)
            .agg(referral_id=("referral_id", "first"), followed=("f", "max"))
        )
    else:
        p = p.assign(followed=_followed(p, window_only))
    people = p.merge(
        referrals[["site", "referral_id", "age_band", "sex", "imd_decile"]],
        on=["site", "referral_id"],
        how="left",
    )
    people["imd_quintile"] = imd_quintile(people["imd_decile"])
    rows = []
    for variable in ("age_band", "sex", "imd_quintile"):
        rows += _categorical_rows(people, variable)
    if referral_reasons is not None and len(referral_reasons):
        has = reason_flags(referral_reasons)
        merged = people.merge(has, left_on=["site", "referral_id"], right_index=True, how="left")
        for reason in has.columns:
            merged[reason] = merged[reason].fillna(False).astype(bool)
            rows += _binary_rows(merged, reason, "referral reason", reason)
    if instrument is not None:
        rows.append(
            _mean_row(
                people.assign(baseline=p["baseline"].to_numpy()),
                "baseline",
                f"baseline {instrument}",
            )
        )
    return pd.DataFrame(rows)


def _split(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    followed = frame["followed"].astype(bool)
    return frame[followed], frame[~followed]


def _categorical_rows(people: pd.DataFrame, variable: str) -> list[dict]:
    rows = []
    for level in sorted(people[variable].dropna().unique(), key=str):
        flag = people[variable] == level
        rows += _binary_rows(people.assign(_flag=flag.fillna(False)), "_flag", variable, level)
    return rows


def _binary_rows(frame: pd.DataFrame, column: str, variable: str, level) -> list[dict]:
    yes, no = _split(frame)
    p1 = float(yes[column].mean()) if len(yes) else np.nan
    p0 = float(no[column].mean()) if len(no) else np.nan
    pooled = np.sqrt((p1 * (1 - p1) + p0 * (1 - p0)) / 2)
    smd = (p1 - p0) / pooled if pooled > 0 else 0.0 if p1 == p0 else np.nan
    return [
        {
            "variable": variable,
            "level": str(level),
            "statistic": "n (%)",
            "followed_up": int(yes[column].sum()),
            "pct_followed_up": 100 * p1,
            "not_followed_up": int(no[column].sum()),
            "pct_not_followed_up": 100 * p0,
            "smd": smd,
        }
    ]


def _mean_row(frame: pd.DataFrame, column: str, variable: str) -> dict:
    yes, no = _split(frame)
    m1, m0 = yes[column].astype(float).mean(), no[column].astype(float).mean()
    s1, s0 = yes[column].astype(float).std(ddof=1), no[column].astype(float).std(ddof=1)
    pooled = np.sqrt((s1**2 + s0**2) / 2)
    return {
        "variable": variable,
        "level": "",
        "statistic": "mean (SD)",
        "followed_up": m1,
        "sd_followed_up": s1,
        "not_followed_up": m0,
        "sd_not_followed_up": s0,
        "smd": (m1 - m0) / pooled if pooled > 0 else np.nan,
    }
