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

    Parameters
    ----------
    pairs : DataFrame
        Canonical ``pairs`` table: one row per person (or episode) and score with a scored
        baseline; ``instrument``, ``person_id``, ``followup`` (missing without one),
        ``in_window`` and the ``by`` columns.
    by : str or list of str, default "site"
        Grouping columns; None for the whole study.
    window_only : bool, default True
        Count a follow-up only when it is inside the follow-up window (``in_window``).

    Returns
    -------
    DataFrame
        One row per group and score. Columns (after the ``by`` columns):

        instrument : str, the score (e.g. ``swemwbs``, ``ons4_anxious``).
        n_baseline : int, pairs rows, i.e. people (episodes with ``per_episode`` pairing)
            with a scored baseline on the score.
        n_followed_up : int, of those, people with a (window) follow-up.
        pct_followed_up : float, 100 * n_followed_up / n_baseline.

    References
    ----------
    docs/design.md, 'Analyses' (Attrition) and 'Pairing and change'.

    Examples
    --------
    >>> pairs = pd.DataFrame({"site": ["A", "A", "A", "B"],
    ...     "person_id": ["p1", "p2", "p3", "p4"], "instrument": "swemwbs",
    ...     "followup": [24.0, None, 21.0, 19.0], "in_window": [True, False, False, True]})
    >>> followup_rates(pairs).round(1)
      site instrument  n_baseline  n_followed_up  pct_followed_up
    0    A    swemwbs           3              1             33.3
    1    B    swemwbs           1              1            100.0
    >>> followup_rates(pairs, by=None, window_only=False)
      instrument  n_baseline  n_followed_up  pct_followed_up
    0    swemwbs           4              3             75.0
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

    Parameters
    ----------
    pairs : DataFrame
        Canonical ``pairs`` table: ``site``, ``person_id``, ``referral_id``, ``instrument``,
        ``baseline``, ``followup`` (missing without one) and ``in_window``.
    referrals : DataFrame
        Canonical ``referrals`` table: ``site``, ``referral_id``, ``age_band``, ``sex`` and
        ``imd_decile``; joined to ``pairs`` on (site, referral_id).
    referral_reasons : DataFrame, optional
        Canonical ``referral_reasons`` table (``site``, ``referral_id``, ``reason``): adds one
        row per reason present (a person without it counts as not having it).
    instrument : str, optional
        A score (e.g. ``"swemwbs"``): compare the people with a baseline on that score,
        followed up on it or not, and add a row for its baseline score. None (default): one
        row per person, followed up when they have a follow-up on any score.
    window_only : bool, default True
        Count a follow-up only when it is inside the follow-up window (``in_window``).

    Returns
    -------
    DataFrame
        One row per characteristic level: age band, sex and IMD quintile levels present
        (sorted), then each referral reason, then (with ``instrument``) the baseline score.
        Columns:

        variable : str, ``age_band``, ``sex``, ``imd_quintile``, ``referral reason`` or
            ``baseline <instrument>``.
        level : str, the level (the reason for a referral reason; ``""`` for the baseline).
        statistic : str, ``"n (%)"`` for a level, ``"mean (SD)"`` for the baseline score.
        followed_up : number, people followed up who have the level (n (%) rows) or their
            mean baseline score (mean (SD) row).
        pct_followed_up : float, 100 * followed_up / people followed up (n (%) rows only).
        not_followed_up : number, the same for people not followed up.
        pct_not_followed_up : float, 100 * not_followed_up / people not followed up.
        smd : float, standardised mean difference, followed up minus not (see Notes).
        sd_followed_up, sd_not_followed_up : float, SD (ddof=1) of the baseline score in
            each group (mean (SD) row only; present only with ``instrument``).

    Notes
    -----
    For a mean, SMD = (m1 - m0) / sqrt((s1^2 + s0^2) / 2); for a proportion,
    SMD = (p1 - p0) / sqrt((p1(1 - p1) + p0(1 - p0)) / 2), with 1 = followed up and
    0 = not. A level held by everyone or nobody in both groups has SMD 0, one held by
    everyone in one group and nobody in the other NaN. |SMD| above 0.1 is
    conventionally taken as a meaningful imbalance. People whose level is missing count as not
    having any level, so the n (%) rows of a variable may not add up to the group size.

    References
    ----------
    Austin PC (2009) Balance diagnostics for comparing the distribution of baseline covariates
    between treatment groups in propensity-score matched samples. Stat Med 28:3083-3107.
    docs/design.md, 'Analyses' (Attrition).

    Examples
    --------
    >>> pairs = pd.DataFrame({"site": "A", "person_id": ["p1", "p2", "p3", "p4", "p5"],
    ...     "referral_id": ["r1", "r2", "r3", "r4", "r5"], "instrument": "swemwbs",
    ...     "baseline": [20.0, 22.0, 18.0, 25.0, 19.0],
    ...     "followup": [24.0, 23.0, None, None, 20.0], "in_window": True})
    >>> referrals = pd.DataFrame({"site": "A", "referral_id": ["r1", "r2", "r3", "r4", "r5"],
    ...     "age_band": ["25-34", "65-74", "25-34", "65-74", "65-74"],
    ...     "sex": ["female", "female", "male", "female", "male"],
    ...     "imd_decile": [1, 2, 3, 9, 10]})
    >>> t = attrition_table(pairs, referrals, instrument="swemwbs")
    >>> t[["variable", "level", "followed_up", "not_followed_up", "smd"]].round(3)
               variable   level  followed_up  not_followed_up    smd
    0          age_band   25-34        1.000              1.0 -0.343
    1          age_band   65-74        2.000              1.0  0.343
    2               sex  female        2.000              1.0  0.343
    3               sex    male        1.000              1.0 -0.343
    4      imd_quintile       1        2.000              0.0  2.000
    5      imd_quintile       2        0.000              1.0 -1.414
    6      imd_quintile       5        1.000              1.0 -0.343
    7  baseline swemwbs               20.333             21.5 -0.319

    The SMD of ``sex == "female"`` by hand (2 of 3 followed up, 1 of 2 not):

    >>> p1, p0 = 2 / 3, 1 / 2
    >>> round(float((p1 - p0) / np.sqrt((p1 * (1 - p1) + p0 * (1 - p0)) / 2)), 3)
    0.343
    """
    p = pairs if instrument is None else pairs[pairs["instrument"] == instrument]
    if instrument is None:  # one row per person: followed up on any score
        p = (
            p.assign(f=_followed(p, window_only))
            .groupby(["site", "person_id"], as_index=False, observed=True)
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
