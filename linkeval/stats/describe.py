"""Descriptive statistics of the routine data (docs/design.md, 'Analyses').

Every function takes canonical tables and returns a tidy DataFrame; ``by`` (a column name or a
list, usually ``"site"``) repeats the summary per group, ``None`` summarises everything
together. Counts are raw: steering-group outputs pass them through
:func:`linkeval.report.disclosure.suppress` first.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from linkeval.vocab import AGE_BANDS, VOCABULARIES, imd_quintile

By = str | list[str] | None


def group_keys(by: By) -> list[str]:
    """``by`` as a list of column names: None -> [], "site" -> ["site"]."""
    return [] if by is None else [by] if isinstance(by, str) else list(by)


def reason_flags(referral_reasons: pd.DataFrame) -> pd.DataFrame:
    """One row per referral with any reason (index site, referral_id), one True/False column
    per reason.

    >>> r = pd.DataFrame({"site": "A", "referral_id": ["1", "1", "2"],
    ...                   "reason": ["housing", "bereavement", "housing"]})
    >>> reason_flags(r).to_dict(orient="list")
    {'bereavement': [True, False], 'housing': [True, True]}
    """
    # A reason a referral lacks is an empty cell of the pivot: notna() is "has the reason".
    return (
        referral_reasons.assign(v=True)
        .pivot_table(index=["site", "referral_id"], columns="reason", values="v", aggfunc="max")
        .notna()
    )


def _groups(frame: pd.DataFrame, by: By):
    keys = group_keys(by)
    if not keys:
        yield {}, frame
        return
    for values, part in frame.groupby(keys, observed=True, sort=True):
        values = values if isinstance(values, tuple) else (values,)
        yield dict(zip(keys, values, strict=True)), part


def _counts(
    frame: pd.DataFrame, column: str, by: By, order=None, denominator=None, name: str | None = None
) -> pd.DataFrame:
    """n and % per level of ``column`` (levels in ``order``, zeros included)."""
    rows = []
    for keys, part in _groups(frame, by):
        counts = part[column].value_counts(dropna=False)
        levels = list(order) if order is not None else sorted(counts.index.dropna(), key=str)
        if counts.index.isna().any():
            levels.append(None)
        total = len(part) if denominator is None else denominator(part)
        for level in levels:
            n = (
                int(counts[counts.index.isna()].sum())
                if level is None
                else int(counts.get(level, 0))
            )
            rows.append(
                {
                    **keys,
                    name or column: "missing" if level is None else level,
                    "n": n,
                    "denominator": total,
                    "pct": 100 * n / total if total else np.nan,
                }
            )
    return pd.DataFrame(rows)


def summary_stats(values: pd.Series) -> dict[str, float]:
    """n, missing, mean, SD, median, quartiles, min, max of a numeric series."""
    v = pd.to_numeric(values, errors="coerce").astype(float)
    present = v.dropna()
    return {
        "n": int(present.size),
        "missing": int(v.isna().sum()),
        "mean": present.mean(),
        "sd": present.std(ddof=1),
        "median": present.median(),
        "q1": present.quantile(0.25),
        "q3": present.quantile(0.75),
        "min": present.min(),
        "max": present.max(),
    }


def _numeric(frame: pd.DataFrame, column: str, by: By, label: str) -> pd.DataFrame:
    rows = [
        {**keys, "measure": label, **summary_stats(part[column])}
        for keys, part in _groups(frame, by)
    ]
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------


def referrals_per_month(referrals: pd.DataFrame, by: By = None, rolling: int = 3) -> pd.DataFrame:
    """Referrals per calendar month (months with none included) and a rolling mean.

    Columns: [by], ``month`` (first day), ``referrals``, ``rolling_mean`` (mean of this and the
    previous ``rolling - 1`` months).
    """
    frame = referrals.assign(
        month=pd.to_datetime(referrals["referral_date"]).dt.to_period("M").dt.to_timestamp()
    )
    if frame.empty:
        return pd.DataFrame(columns=[*group_keys(by), "month", "referrals", "rolling_mean"])
    months = pd.date_range(frame["month"].min(), frame["month"].max(), freq="MS")
    parts = []
    for keys, part in _groups(frame, by):
        counts = part.groupby("month").size().reindex(months, fill_value=0)
        parts.append(
            pd.DataFrame(
                {
                    **keys,
                    "month": months,
                    "referrals": counts.to_numpy(),
                    "rolling_mean": counts.rolling(rolling, min_periods=1).mean().to_numpy(),
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def referral_sources(referrals: pd.DataFrame, by: By = None) -> pd.DataFrame:
    """Referrals by source: ``referral_source``, ``n``, ``denominator``, ``pct``."""
    return _counts(referrals, "referral_source", by, order=VOCABULARIES["referral_source"])


def referral_reasons(referrals: pd.DataFrame, reasons: pd.DataFrame, by: By = None) -> pd.DataFrame:
    """Reasons for referral, multi-response: % of referrals with each reason.

    Columns: [by], ``reason``, ``n`` (referrals with the reason), ``denominator`` (referrals),
    ``pct``. Percentages add up to more than 100 because a referral can have several reasons.
    """
    keys = group_keys(by)
    rows = []
    merged = reasons.merge(
        referrals[["site", "referral_id", *[k for k in keys if k != "site"]]],
        on=["site", "referral_id"],
        how="inner",
    )
    for group, part in _groups(referrals, by):
        sub = merged
        for k, v in group.items():
            sub = sub[sub[k] == v]
        counts = sub.drop_duplicates(["site", "referral_id", "reason"])["reason"].value_counts()
        total = len(part)
        for reason in VOCABULARIES["reason"]:
            n = int(counts.get(reason, 0))
            rows.append(
                {
                    **group,
                    "reason": reason,
                    "n": n,
                    "denominator": total,
                    "pct": 100 * n / total if total else np.nan,
                }
            )
    return pd.DataFrame(rows)


def table_one(referrals: pd.DataFrame, by: By = None) -> pd.DataFrame:
    """Who is referred: Table 1 of age, sex, ethnicity, deprivation and, where the study
    derives it from postcodes, rural or urban area; missing shown.

    Long format: [by], ``variable``, ``level``, ``statistic`` ("n (%)", "mean (SD)" or
    "median (IQR)"), ``n``, ``pct`` and for numbers ``mean``, ``sd``, ``median``, ``q1``,
    ``q3``, ``missing``.
    """
    frame = referrals.assign(imd_quintile=imd_quintile(referrals["imd_decile"]))
    parts = []
    for keys, part in _groups(frame, by):
        age = summary_stats(part["age_at_referral"])
        parts.append(
            pd.DataFrame(
                [
                    {**keys, "variable": "age", "level": "", "statistic": "mean (SD)", **age},
                    {**keys, "variable": "age", "level": "", "statistic": "median (IQR)", **age},
                ]
            )
        )
    specs = [
        ("age_band", AGE_BANDS),
        ("sex", VOCABULARIES["sex"]),
        ("ethnicity", VOCABULARIES["ethnicity"]),
        ("imd_quintile", [1, 2, 3, 4, 5]),
    ]
    if "rural_urban" in frame and frame["rural_urban"].notna().any():
        specs.append(("rural_urban", ["urban", "rural"]))
    for column, order in specs:
        c = _counts(frame, column, by, order=order, name="level")
        c["level"] = c["level"].astype(str)
        parts.append(c.assign(variable=column, statistic="n (%)"))
    out = pd.concat(parts, ignore_index=True)
    cols = [
        *group_keys(by),
        "variable",
        "level",
        "statistic",
        "n",
        "pct",
        "mean",
        "sd",
        "median",
        "q1",
        "q3",
        "missing",
    ]
    return out.reindex(columns=cols)


FUNNEL_STAGES = (
    "referred",
    "contacted",
    "engaged",
    "onward referral",
    "baseline questionnaire",
    "paired follow-up",
)


def engagement_funnel(
    referrals: pd.DataFrame,
    pairs: pd.DataFrame | None = None,
    by: By = None,
    window_only: bool = True,
) -> pd.DataFrame:
    """Referred -> contacted -> engaged -> onward referral -> baseline -> paired follow-up.

    contacted: at least one contact recorded (attended or not); engaged: at least one attended
    contact; onward referral: at least one onward referral; baseline questionnaire: a scored
    baseline on any instrument; paired follow-up: a follow-up (in the window when
    ``window_only``). Sites that export no contact or onward tables count from their columns;
    where a stage is unknown for a referral it counts as not reached.
    Columns: [by], ``stage``, ``n``, ``pct_of_referred``, ``pct_of_previous``.
    """
    r = referrals.copy()
    flags = {
        "referred": pd.Series(True, index=r.index),
        "contacted": r["n_contacts"].astype("Float64").fillna(0) > 0,
        "engaged": r["n_attended"].astype("Float64").fillna(0) > 0,
        "onward referral": r["n_onward_referrals"].astype("Float64").fillna(0) > 0,
    }
    key = r["site"].astype(str) + "|" + r["referral_id"].astype(str)
    if pairs is not None and len(pairs):
        pk = pairs["site"].astype(str) + "|" + pairs["referral_id"].astype(str)
        followed = pairs["followup"].notna() & (pairs["in_window"] if window_only else True)
        flags["baseline questionnaire"] = key.isin(pk)
        flags["paired follow-up"] = key.isin(pk[followed])
    else:
        flags["baseline questionnaire"] = pd.Series(False, index=r.index)
        flags["paired follow-up"] = pd.Series(False, index=r.index)
    for stage, flag in flags.items():
        r[stage] = flag.to_numpy(dtype=bool)
    rows = []
    for keys, part in _groups(r, by):
        total = len(part)
        previous = total
        for stage in FUNNEL_STAGES:
            n = int(part[stage].sum())
            rows.append(
                {
                    **keys,
                    "stage": stage,
                    "n": n,
                    "pct_of_referred": 100 * n / total if total else np.nan,
                    "pct_of_previous": 100 * n / previous if previous else np.nan,
                }
            )
            previous = n
    return pd.DataFrame(rows)


def contacts_per_referral(referrals: pd.DataFrame, by: By = None) -> pd.DataFrame:
    """Summary of contacts per referral (n, missing, mean, SD, median, IQR, range)."""
    return _numeric(referrals, "n_contacts", by, "contacts per referral")


def days_to_first_contact(referrals: pd.DataFrame, by: By = None) -> pd.DataFrame:
    """Summary of days from referral to the first attended contact."""
    return _numeric(referrals, "days_to_first_contact", by, "days to first contact")


def contact_modes(contacts: pd.DataFrame, by: By = None) -> pd.DataFrame:
    """Contacts by mode: ``mode``, ``n``, ``denominator``, ``pct``."""
    return _counts(contacts, "mode", by, order=VOCABULARIES["mode"])


def dna_rate(contacts: pd.DataFrame, by: By = None) -> pd.DataFrame:
    """Did-not-attend rate: ``contacts`` (with attendance recorded), ``dna``, ``pct_dna``."""
    rows = []
    for keys, part in _groups(contacts, by):
        known = part["attended"].dropna().astype(bool)
        dna = int((~known).sum())
        rows.append(
            {
                **keys,
                "contacts": int(known.size),
                "dna": dna,
                "pct_dna": 100 * dna / known.size if known.size else np.nan,
            }
        )
    return pd.DataFrame(rows)


def onward_by_asset(onward: pd.DataFrame, by: By = None) -> pd.DataFrame:
    """Onward referrals by community asset type: ``asset_type``, ``n``, ``pct``."""
    return _counts(onward, "asset_type", by, order=VOCABULARIES["asset_type"])


def outcomes(referrals: pd.DataFrame, by: By = None) -> pd.DataFrame:
    """Referral outcomes (completed, declined, ...), missing shown."""
    return _counts(referrals, "outcome", by, order=VOCABULARIES["outcome"])
