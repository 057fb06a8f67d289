"""Descriptive statistics of the routine data (docs/design.md, 'Analyses').

Every function takes canonical tables and returns a tidy DataFrame; ``by`` (a column name or a
list, usually ``"site"``) repeats the summary per group, ``None`` summarises everything
together. Counts are raw: steering-group outputs pass them through
:func:`linkeval.report.disclosure.suppress` first.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from linkeval.parse import is_in
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

    Parameters
    ----------
    referrals : DataFrame
        Canonical ``referrals`` table: one row per referral with ``referral_date`` and the
        ``by`` columns.
    by : str or list of str, optional
        Grouping columns (e.g. ``"site"``); None (default) counts all referrals together.
    rolling : int, default 3
        Width, in months, of the rolling mean.

    Returns
    -------
    DataFrame
        One row per group and month. Columns (after the ``by`` columns):

        month : Timestamp, the first day of the calendar month.
        referrals : int, referrals dated in that month (0 for a month with none).
        rolling_mean : float, mean of ``referrals`` over this month and the previous
            ``rolling - 1`` months (fewer at the start of the series).

        An empty ``referrals`` gives an empty frame with these columns.

    Notes
    -----
    The months run from the earliest to the latest referral month of the whole table, so every
    group has the same months and a group's quiet months count as 0. For month m,
    rolling_mean(m) = mean(referrals(m - k) for k = 0, ..., rolling - 1), over the months that
    exist (``Series.rolling(rolling, min_periods=1).mean()``).

    References
    ----------
    docs/design.md, 'Analyses' (Descriptive).

    Examples
    --------
    >>> referrals = pd.DataFrame({
    ...     "site": ["A", "A", "A", "B", "B"],
    ...     "referral_date": pd.to_datetime(
    ...         ["2024-01-05", "2024-01-20", "2024-03-02", "2024-01-10", "2024-02-14"]),
    ... })
    >>> referrals_per_month(referrals, by="site").round({"rolling_mean": 3})
      site      month  referrals  rolling_mean
    0    A 2024-01-01          2         2.000
    1    A 2024-02-01          0         1.000
    2    A 2024-03-01          1         1.000
    3    B 2024-01-01          1         1.000
    4    B 2024-02-01          1         1.000
    5    B 2024-03-01          0         0.667
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
    """Referrals by referral source (every source in the vocabulary, and missing), n and %.

    Parameters
    ----------
    referrals : DataFrame
        Canonical ``referrals`` table with ``referral_source`` and the ``by`` columns.
    by : str or list of str, optional
        Grouping columns (e.g. ``"site"``); None (default) summarises all referrals together.

    Returns
    -------
    DataFrame
        One row per group and source. Columns (after the ``by`` columns):

        referral_source : str, a level of the ``referral_source`` vocabulary (gp,
            practice_nurse, ..., unknown; zeros included) and ``"missing"`` when any referral
            has none.
        n : int, referrals from that source.
        denominator : int, referrals in the group (missing included).
        pct : float, 100 * n / denominator.

    Notes
    -----
    Counts are raw; pass them through :func:`linkeval.report.disclosure.suppress` before they
    leave the analysis.

    References
    ----------
    docs/design.md, 'Analyses' (Descriptive) and 'Vocabularies'.

    Examples
    --------
    >>> referrals = pd.DataFrame({"site": ["A", "A", "A", "B"],
    ...                           "referral_source": ["gp", "gp", "self", None]})
    >>> out = referral_sources(referrals)
    >>> out[out["n"] > 0]
       referral_source  n  denominator   pct
    0               gp  2            4  50.0
    3             self  1            4  25.0
    12         missing  1            4  25.0
    """
    return _counts(referrals, "referral_source", by, order=VOCABULARIES["referral_source"])


def referral_reasons(referrals: pd.DataFrame, reasons: pd.DataFrame, by: By = None) -> pd.DataFrame:
    """Reasons for referral, multi-response: % of referrals with each reason.

    Parameters
    ----------
    referrals : DataFrame
        Canonical ``referrals`` table: ``site``, ``referral_id`` and the ``by`` columns. Its
        rows are the denominator.
    reasons : DataFrame
        Canonical ``referral_reasons`` table: one row per (``site``, ``referral_id``,
        ``reason``). Reasons of referrals not in ``referrals`` are ignored; a reason repeated
        for a referral counts once.
    by : str or list of str, optional
        Grouping columns of ``referrals`` (e.g. ``"site"``); None (default) for all together.

    Returns
    -------
    DataFrame
        One row per group and reason of the ``reason`` vocabulary (zeros included). Columns
        (after the ``by`` columns):

        reason : str, the reason (loneliness_isolation, mental_wellbeing, ..., other).
        n : int, referrals with that reason.
        denominator : int, referrals in the group (with or without any reason).
        pct : float, 100 * n / denominator.

    Notes
    -----
    Multi-response: a referral can have several reasons, so the percentages of a group add up
    to more than 100, and a referral with no reason recorded counts in every denominator.

    References
    ----------
    docs/design.md, 'Analyses' (Descriptive).

    Examples
    --------
    >>> referrals = pd.DataFrame({"site": "A", "referral_id": ["r1", "r2", "r3", "r4"]})
    >>> reasons = pd.DataFrame({"site": "A", "referral_id": ["r1", "r1", "r2", "r3"],
    ...     "reason": ["loneliness_isolation", "mental_wellbeing", "loneliness_isolation",
    ...                "housing"]})
    >>> out = referral_reasons(referrals, reasons)
    >>> out[out["n"] > 0]
                     reason  n  denominator   pct
    0  loneliness_isolation  2            4  50.0
    1      mental_wellbeing  1            4  25.0
    5               housing  1            4  25.0
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

    Parameters
    ----------
    referrals : DataFrame
        Canonical ``referrals`` table: ``age_at_referral``, ``age_band``, ``sex``,
        ``ethnicity``, ``imd_decile`` (1 = most deprived), optionally ``rural_urban``, and the
        ``by`` columns.
    by : str or list of str, optional
        Grouping columns (e.g. ``"site"``); None (default) for all referrals together.

    Returns
    -------
    DataFrame
        Long format, one row per group, variable and level. Columns (after the ``by``
        columns):

        variable : str, ``age``, ``age_band``, ``sex``, ``ethnicity``, ``imd_quintile`` or
            (when any referral has it) ``rural_urban``.
        level : str, the level (every vocabulary level, zeros included, and ``"missing"``
            when any value is missing); ``""`` for the two age rows.
        statistic : str, ``"n (%)"`` for a level, ``"mean (SD)"`` or ``"median (IQR)"`` for
            age.
        n : int, referrals at the level; for age, referrals with an age.
        pct : float, 100 * n / referrals in the group (missing included); NaN for age.
        mean, sd : float, mean and SD (ddof=1) of age; NaN for levels.
        median, q1, q3 : float, median and quartiles of age (linear interpolation, as
            ``numpy.percentile``); NaN for levels.
        missing : float, referrals without an age (a count); NaN for levels.

    Notes
    -----
    IMD quintile = (decile + 1) // 2, so deciles 1-2 are quintile 1 (most deprived) and 9-10
    quintile 5 (:func:`linkeval.vocab.imd_quintile`). Both age rows carry every age statistic;
    the ``statistic`` column says which pair a table shows.

    References
    ----------
    docs/design.md, 'Analyses' (Descriptive) and 'Vocabularies'. Ministry of Housing,
    Communities and Local Government (2019) The English Indices of Deprivation 2019.

    Examples
    --------
    >>> referrals = pd.DataFrame({
    ...     "age_at_referral": [30, 42, 67, None],
    ...     "age_band": ["25-34", "35-44", "65-74", None],
    ...     "sex": ["female", "female", "male", "female"],
    ...     "ethnicity": ["white", "asian", "white", "unknown"],
    ...     "imd_decile": [1, 4, 10, 2],
    ... })
    >>> t1 = table_one(referrals)
    >>> t1.loc[t1["variable"] == "age", ["statistic", "n", "mean", "sd", "median", "missing"]]
          statistic  n       mean         sd  median  missing
    0     mean (SD)  3  46.333333  18.876794    42.0      1.0
    1  median (IQR)  3  46.333333  18.876794    42.0      1.0
    >>> t1.loc[(t1["variable"] == "sex") & (t1["n"] > 0), ["level", "n", "pct"]]
         level  n   pct
    11  female  3  75.0
    12    male  1  25.0

    The age statistics are NumPy's:

    >>> age = referrals["age_at_referral"].dropna()
    >>> float(np.std(age, ddof=1)), float(np.percentile(age, 25))
    (18.876793513023692, 36.0)
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

    Parameters
    ----------
    referrals : DataFrame
        Canonical ``referrals`` table: ``site``, ``referral_id``, ``n_contacts``,
        ``n_attended``, ``n_onward_referrals`` and the ``by`` columns.
    pairs : DataFrame, optional
        Canonical ``pairs`` table (``site``, ``referral_id``, ``followup``, ``in_window``).
        None or empty: nobody reaches the two questionnaire stages.
    by : str or list of str, optional
        Grouping columns of ``referrals`` (e.g. ``"site"``); None (default) for all together.
    window_only : bool, default True
        Count a follow-up only when it is inside the follow-up window (``in_window``).

    Returns
    -------
    DataFrame
        Six rows per group, one per stage in funnel order. Columns (after the ``by`` columns):

        stage : str, ``referred``, ``contacted``, ``engaged``, ``onward referral``,
            ``baseline questionnaire`` or ``paired follow-up``.
        n : int, referrals that reached the stage.
        pct_of_referred : float, 100 * n / referrals in the group.
        pct_of_previous : float, 100 * n / n of the previous stage (100 for ``referred``).

    Notes
    -----
    Each stage is judged on its own (an onward referral without a recorded contact still
    counts), so n need not fall from stage to stage and ``pct_of_previous`` can exceed 100.
    A referral reaches ``baseline questionnaire`` when it has a ``pairs`` row (a scored
    baseline on any score) and ``paired follow-up`` when one of its pairs has a follow-up.

    References
    ----------
    docs/design.md, 'Analyses' (Descriptive).

    Examples
    --------
    >>> referrals = pd.DataFrame({"site": "A", "referral_id": ["r1", "r2", "r3", "r4"],
    ...     "n_contacts": [3, 1, 0, None], "n_attended": [2, 0, 0, None],
    ...     "n_onward_referrals": [1, 0, 0, None]})
    >>> pairs = pd.DataFrame({"site": "A", "referral_id": ["r1", "r2"],
    ...     "followup": [25.0, None], "in_window": [True, False]})
    >>> engagement_funnel(referrals, pairs)
                        stage  n  pct_of_referred  pct_of_previous
    0                referred  4            100.0            100.0
    1               contacted  2             50.0             50.0
    2                 engaged  1             25.0             50.0
    3         onward referral  1             25.0            100.0
    4  baseline questionnaire  2             50.0            200.0
    5        paired follow-up  1             25.0             50.0
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
        flags["baseline questionnaire"] = is_in(key, pk)
        flags["paired follow-up"] = is_in(key, pk[followed])
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
    """Summary of contacts per referral (n, missing, mean, SD, median, IQR, range).

    Parameters
    ----------
    referrals : DataFrame
        Canonical ``referrals`` table with ``n_contacts`` (contacts recorded for the referral,
        attended or not; missing when the site does not say) and the ``by`` columns.
    by : str or list of str, optional
        Grouping columns (e.g. ``"site"``); None (default) for all referrals together.

    Returns
    -------
    DataFrame
        One row per group. Columns (after the ``by`` columns):

        measure : str, ``"contacts per referral"``.
        n : int, referrals with a count.
        missing : int, referrals without one.
        mean, sd : float, mean and SD (ddof=1) of the counts.
        median, q1, q3 : float, median and quartiles (linear interpolation, as
            ``numpy.percentile``).
        min, max : float, smallest and largest count.

    References
    ----------
    docs/design.md, 'Analyses' (Descriptive).

    Examples
    --------
    >>> referrals = pd.DataFrame({"site": ["A", "A", "A", "B", "B"],
    ...                           "n_contacts": [1, 2, 6, 0, None]})
    >>> out = contacts_per_referral(referrals, by="site")
    >>> out[["site", "n", "missing", "mean", "median", "q1", "q3", "min", "max"]]
      site  n  missing  mean  median   q1   q3  min  max
    0    A  3        0   3.0     2.0  1.5  4.0  1.0  6.0
    1    B  1        1   0.0     0.0  0.0  0.0  0.0  0.0
    >>> round(float(out["sd"].iloc[0]), 3)
    2.646

    The mean and variance are SciPy's:

    >>> from scipy import stats
    >>> d = stats.describe([1, 2, 6])
    >>> float(d.mean), round(float(np.sqrt(d.variance)), 3)
    (3.0, 2.646)
    """
    return _numeric(referrals, "n_contacts", by, "contacts per referral")


def days_to_first_contact(referrals: pd.DataFrame, by: By = None) -> pd.DataFrame:
    """Summary of days from referral to the first attended contact.

    Parameters
    ----------
    referrals : DataFrame
        Canonical ``referrals`` table with ``days_to_first_contact`` (missing when the
        referral has no attended contact or the date is unknown) and the ``by`` columns.
    by : str or list of str, optional
        Grouping columns (e.g. ``"site"``); None (default) for all referrals together.

    Returns
    -------
    DataFrame
        One row per group. Columns (after the ``by`` columns):

        measure : str, ``"days to first contact"``.
        n : int, referrals with a value.
        missing : int, referrals without one (no attended contact, or unknown).
        mean, sd : float, mean and SD (ddof=1) of the days.
        median, q1, q3 : float, median and quartiles (linear interpolation, as
            ``numpy.percentile``).
        min, max : float, fewest and most days.

    References
    ----------
    docs/design.md, 'Analyses' (Descriptive).

    Examples
    --------
    >>> referrals = pd.DataFrame({"days_to_first_contact": [3, 7, 10, 30, None]})
    >>> out = days_to_first_contact(referrals)
    >>> out[["n", "missing", "median", "q1", "q3", "min", "max"]]
       n  missing  median   q1    q3  min   max
    0  4        1     8.5  6.0  15.0  3.0  30.0

    The quartiles are NumPy's:

    >>> float(np.percentile([3, 7, 10, 30], 25)), float(np.percentile([3, 7, 10, 30], 75))
    (6.0, 15.0)
    """
    return _numeric(referrals, "days_to_first_contact", by, "days to first contact")


def contact_modes(contacts: pd.DataFrame, by: By = None) -> pd.DataFrame:
    """Contacts by mode (every mode in the vocabulary, and missing), n and %.

    Parameters
    ----------
    contacts : DataFrame
        Canonical ``contacts`` table: one row per contact with ``mode`` and the ``by``
        columns.
    by : str or list of str, optional
        Grouping columns (e.g. ``"site"``); None (default) for all contacts together.

    Returns
    -------
    DataFrame
        One row per group and mode. Columns (after the ``by`` columns):

        mode : str, a level of the ``mode`` vocabulary (face_to_face, telephone, video,
            home_visit, group, message, other; zeros included) and ``"missing"`` when any
            contact has none.
        n : int, contacts in that mode.
        denominator : int, contacts in the group (missing included).
        pct : float, 100 * n / denominator.

    References
    ----------
    docs/design.md, 'Analyses' (Descriptive) and 'Vocabularies'.

    Examples
    --------
    >>> contacts = pd.DataFrame({"mode": ["telephone", "telephone", "face_to_face", None]})
    >>> out = contact_modes(contacts)
    >>> out[out["n"] > 0]
               mode  n  denominator   pct
    0  face_to_face  1            4  25.0
    1     telephone  2            4  50.0
    7       missing  1            4  25.0
    """
    return _counts(contacts, "mode", by, order=VOCABULARIES["mode"])


def dna_rate(contacts: pd.DataFrame, by: By = None) -> pd.DataFrame:
    """Did-not-attend (DNA) rate of contacts whose attendance is recorded.

    Parameters
    ----------
    contacts : DataFrame
        Canonical ``contacts`` table with ``attended`` (True, False or missing) and the
        ``by`` columns.
    by : str or list of str, optional
        Grouping columns (e.g. ``"site"``); None (default) for all contacts together.

    Returns
    -------
    DataFrame
        One row per group. Columns (after the ``by`` columns):

        contacts : int, contacts with attendance recorded.
        dna : int, of those, contacts not attended.
        pct_dna : float, 100 * dna / contacts (NaN when no contact has attendance recorded).

    Notes
    -----
    Contacts with ``attended`` missing are left out of both numerator and denominator.

    References
    ----------
    docs/design.md, 'Analyses' (Descriptive).

    Examples
    --------
    >>> contacts = pd.DataFrame({"site": ["A", "A", "A", "A", "B"],
    ...     "attended": pd.array([True, False, True, None, True], dtype="boolean")})
    >>> dna_rate(contacts, by="site").round(2)
      site  contacts  dna  pct_dna
    0    A         3    1    33.33
    1    B         1    0     0.00
    """
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
    """Onward referrals by community asset type (every type, and missing), n and %.

    Parameters
    ----------
    onward : DataFrame
        Canonical ``onward_referrals`` table: one row per onward referral with
        ``asset_type`` and the ``by`` columns.
    by : str or list of str, optional
        Grouping columns (e.g. ``"site"``); None (default) for all onward referrals together.

    Returns
    -------
    DataFrame
        One row per group and asset type. Columns (after the ``by`` columns):

        asset_type : str, a level of the ``asset_type`` vocabulary (physical_activity,
            arts_culture, ..., other; zeros included) and ``"missing"`` when any onward
            referral has none.
        n : int, onward referrals to that type of asset.
        denominator : int, onward referrals in the group (missing included).
        pct : float, 100 * n / denominator.

    References
    ----------
    docs/design.md, 'Analyses' (Descriptive) and 'Vocabularies'.

    Examples
    --------
    >>> onward = pd.DataFrame({"asset_type": ["social_groups_befriending", "physical_activity",
    ...                                       "social_groups_befriending", "other"]})
    >>> out = onward_by_asset(onward)
    >>> out[out["n"] > 0]
                       asset_type  n  denominator   pct
    0           physical_activity  1            4  25.0
    2   social_groups_befriending  2            4  50.0
    11                      other  1            4  25.0
    """
    return _counts(onward, "asset_type", by, order=VOCABULARIES["asset_type"])


def outcomes(referrals: pd.DataFrame, by: By = None) -> pd.DataFrame:
    """Referral outcomes (completed, declined, ...), missing shown.

    Parameters
    ----------
    referrals : DataFrame
        Canonical ``referrals`` table with ``outcome`` and the ``by`` columns.
    by : str or list of str, optional
        Grouping columns (e.g. ``"site"``); None (default) for all referrals together.

    Returns
    -------
    DataFrame
        One row per group and outcome. Columns (after the ``by`` columns):

        outcome : str, a level of the ``outcome`` vocabulary (completed, ongoing, declined,
            not_contactable, inappropriate, other; zeros included) and ``"missing"`` when any
            referral has none.
        n : int, referrals with that outcome.
        denominator : int, referrals in the group (missing included).
        pct : float, 100 * n / denominator.

    References
    ----------
    docs/design.md, 'Analyses' (Descriptive) and 'Vocabularies'.

    Examples
    --------
    >>> referrals = pd.DataFrame({"outcome": ["completed", "completed", "declined", None]})
    >>> outcomes(referrals)
               outcome  n  denominator   pct
    0        completed  2            4  50.0
    1          ongoing  0            4   0.0
    2         declined  1            4  25.0
    3  not_contactable  0            4   0.0
    4    inappropriate  0            4   0.0
    5            other  0            4   0.0
    6          missing  1            4  25.0
    """
    return _counts(referrals, "outcome", by, order=VOCABULARIES["outcome"])
