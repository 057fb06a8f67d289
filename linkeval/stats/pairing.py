"""Baseline and follow-up pairs and reliable change (docs/design.md, 'Pairing and change').

Statistics only: these functions take and return DataFrames and touch no files.

Pairing rule, per person and score (or, with ``pairing="per_episode"``, per person, referral
and score): the baseline is the earliest scored baseline; the follow-up
is the first scored follow-up whose distance from the baseline is inside the follow-up window
(default 270-365 days), or else the first later follow-up outside it (kept with
``in_window = False`` for sensitivity analyses). Follow-ups dated before the baseline are
excluded and reported.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from linkeval.instruments import (
    INSTRUMENTS,
    Settings,
    direction,
    score_names,
)

KEYS = ["site", "person_id", "instrument"]
# What a pair is unique on, per pairing mode (the config's `pairing`).
PAIRING_KEYS = {
    "per_person": KEYS,
    "per_episode": ["site", "person_id", "referral_id", "instrument"],
}
PAIR_COLUMNS = [
    "site",
    "person_id",
    "referral_id",
    "instrument",
    "baseline",
    "followup",
    "change",
    "baseline_date",
    "followup_date",
    "days_between",
    "in_window",
    "improved_reliably",
    "deteriorated_reliably",
    "met_mid_improvement",
    "baseline_band",
    "followup_band",
]
CHANGE_INDICATORS = ["improved_reliably", "deteriorated_reliably", "met_mid_improvement"]
RC_CRITICAL = 1.96  # two-sided 5% (Jacobson & Truax 1991)


def pair_scores(
    scores: pd.DataFrame, window: tuple[int, int] = (270, 365), pairing: str = "per_person"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Pair each person's baseline and follow-up score, per score (or per episode and score).

    Parameters
    ----------
    scores : DataFrame
        Canonical ``scores`` table (site, person_id, referral_id, timepoint,
        completed_date, instrument, score, band, scored, ...). Only rows with ``scored``
        True are used. Extra columns are carried to ``excluded`` so callers can trace rows
        back to their source.
    window : tuple of (int, int), default (270, 365)
        Earliest and latest follow-up, in days after the baseline (inclusive).
    pairing : {"per_person", "per_episode"}, default "per_person"
        ``"per_person"``: one pair per person and score, whichever referral
        the forms belong to; ``referral_id`` is the baseline's. ``"per_episode"``: one pair per
        person, referral (``referral_id``) and score, so a person referred twice can have two
        pairs, and a follow-up pairs only with a baseline of the same referral.

    Returns
    -------
    pairs : DataFrame
        One row per (site, person_id, instrument), or per (site, person_id, referral_id,
        instrument) with ``per_episode``, with a scored baseline. Columns:

        site, person_id, referral_id, instrument : the keys (``referral_id`` is the
            baseline's; ``instrument`` is the score name).
        baseline, followup : Float64, the two scores (followup missing when there is none).
        change : Float64, followup - baseline, rounded to 6 decimals.
        baseline_date, followup_date : datetime, the completion dates.
        days_between : Int64, followup_date - baseline_date in days.
        in_window : bool, ``days_between`` inside ``window`` (False without a follow-up).
        improved_reliably, deteriorated_reliably, met_mid_improvement : boolean, all
            missing here; filled by :func:`add_change_indicators`.
        baseline_band, followup_band : the score's band at each time (e.g. ``mild``).
    excluded : DataFrame
        Follow-up rows not used, with their columns plus ``baseline_date``,
        ``days_between`` and ``reason``: ``no_baseline`` (no scored baseline for the key) or
        ``followup_before_baseline``.

    Raises
    ------
    ValueError
        When ``pairing`` is not one of the two modes.

    Notes
    -----
    The baseline is the earliest scored baseline (ties: first in the table). The follow-up is
    the earliest one with ``window[0] <= days_between <= window[1]``; without one, the earliest
    later follow-up outside the window, kept with ``in_window`` False for sensitivity
    analyses. A person with a baseline and no follow-up keeps a row (attrition needs it).

    References
    ----------
    docs/design.md, 'Pairing and change'.

    Examples
    --------
    >>> scores = pd.DataFrame({
    ...     "site": "A", "person_id": ["p1", "p1", "p1", "p2", "p3", "p4", "p4"],
    ...     "referral_id": ["r1", "r1", "r1", "r2", "r3", "r4", "r4"],
    ...     "timepoint": ["baseline", "followup", "followup", "baseline", "followup",
    ...                   "baseline", "followup"],
    ...     "completed_date": pd.to_datetime(["2024-01-01", "2024-03-01", "2024-10-15",
    ...         "2024-02-01", "2024-05-01", "2024-06-01", "2024-04-01"]),
    ...     "instrument": "swemwbs", "score": [20.5, 21.0, 24.0, 18.0, 22.0, 19.0, 23.0],
    ...     "band": None, "scored": True})
    >>> pairs, excluded = pair_scores(scores)
    >>> pairs[["person_id", "baseline", "followup", "change", "days_between", "in_window"]]
      person_id  baseline  followup  change  days_between  in_window
    0        p1      20.5      24.0     3.5           288       True
    1        p2      18.0      <NA>    <NA>          <NA>      False
    2        p4      19.0      <NA>    <NA>          <NA>      False
    >>> excluded[["person_id", "reason"]]
      person_id                    reason
    0        p3               no_baseline
    1        p4  followup_before_baseline

    The follow-up at 60 days lies outside the 270-365 day window, so person p1 is paired with
    the one at 288 days.
    """
    if pairing not in PAIRING_KEYS:
        raise ValueError(f"pairing must be one of {', '.join(PAIRING_KEYS)}, not {pairing!r}")
    unused = ["n_items", "n_missing", "scored", "not_scored_reason"]
    s = scores.loc[
        scores["scored"].fillna(False).astype(bool).to_numpy(),
        [c for c in scores.columns if c not in unused],
    ]
    s = s.assign(
        completed_date=pd.to_datetime(s["completed_date"]),
        __key__=_key_codes(s, PAIRING_KEYS[pairing], sort=True),
    )
    # Sorted by the pairing keys (site, person_id[, referral_id], instrument) then date, ties
    # in their original order.
    s = s.iloc[np.lexsort((s["completed_date"].to_numpy(), s["__key__"].to_numpy()))]
    base = s[(s["timepoint"] == "baseline").to_numpy()].drop_duplicates("__key__", keep="first")
    follow = s[(s["timepoint"] == "followup").to_numpy()]

    keyed = follow.merge(
        base[["__key__", "completed_date"]].rename(columns={"completed_date": "baseline_date"}),
        on="__key__",
        how="left",
    )
    keyed["days_between"] = (keyed["completed_date"] - keyed["baseline_date"]).dt.days
    no_base = keyed["baseline_date"].isna()
    before = keyed["days_between"] < 0
    excluded = pd.concat(
        [
            keyed[no_base].assign(reason="no_baseline"),
            keyed[before.fillna(False)].assign(reason="followup_before_baseline"),
        ],
        ignore_index=True,
    )
    usable = keyed[~no_base & ~before.fillna(False)]
    lo, hi = window
    # assign, not a column set on a slice: pandas 2 without copy-on-write warns at that.
    usable = usable.assign(in_window=usable["days_between"].between(lo, hi))
    # In-window follow-ups first, each group by date: the first row per person is the one.
    usable = usable.sort_values(
        ["__key__", "in_window", "completed_date"], ascending=[True, False, True], kind="stable"
    )
    chosen = usable.drop_duplicates("__key__", keep="first")

    pairs = base.rename(
        columns={"score": "baseline", "completed_date": "baseline_date", "band": "baseline_band"}
    )[["__key__", *KEYS, "referral_id", "baseline", "baseline_date", "baseline_band"]]
    chosen = chosen.rename(
        columns={"score": "followup", "completed_date": "followup_date", "band": "followup_band"}
    )[["__key__", "followup", "followup_date", "followup_band", "days_between", "in_window"]]
    pairs = pairs.merge(chosen, on="__key__", how="left")
    pairs["baseline"] = pairs["baseline"].astype("Float64")
    pairs["followup"] = pairs["followup"].astype("Float64")
    # Scores have at most two decimals; rounding drops floating-point noise (22.35 - 24.9).
    pairs["change"] = (pairs["followup"] - pairs["baseline"]).round(6)
    pairs["days_between"] = pairs["days_between"].astype("Int64")
    pairs["in_window"] = pairs["in_window"].astype("boolean").fillna(False).astype(bool)
    for col in CHANGE_INDICATORS:
        pairs[col] = pd.Series(pd.NA, index=pairs.index, dtype="boolean")
    return pairs[PAIR_COLUMNS].reset_index(drop=True), excluded.drop(columns="__key__")


def _key_codes(frame: pd.DataFrame, columns: list[str], sort: bool = False) -> np.ndarray:
    """One integer per combination of ``columns`` (with ``sort``, in the order of the sorted
    combinations): grouping by integers is fast where grouping by long text is not."""
    key = np.zeros(len(frame), dtype=np.int64)
    for col in columns:
        values = frame[col]
        if sort and isinstance(values.dtype, pd.CategoricalDtype):
            # factorize sorts a categorical by its categories' order: sort those by value.
            values = values.cat.reorder_categories(values.cat.categories.sort_values())
        codes, uniques = pd.factorize(values, sort=sort)  # missing: -1, kept apart by + 1
        key = key * (len(uniques) + 1) + codes + 1
    return key


def reliabilities(responses: pd.DataFrame) -> dict[str, float]:
    """Cronbach's alpha of each multi-item score, from the study's baseline item responses.

    Parameters
    ----------
    responses : DataFrame
        Canonical ``responses`` table, long: one row per item answer with ``site``,
        ``person_id``, ``completed_date``, ``timepoint``, ``instrument``, ``item`` and
        ``value``. One completion is one (site, person_id, completed_date, instrument) at the
        baseline timepoint; follow-ups are ignored.

    Returns
    -------
    dict of str to float
        Score name -> Cronbach's alpha, for each multi-item score (e.g. ``swemwbs``,
        ``phq9``, ``ucla3``) whose items all appear in the baseline responses. Single-item
        scores are left out; a score with fewer than two complete completions gets NaN.

    Notes
    -----
    alpha = k / (k - 1) * (1 - sum of item variances / variance of the total), over the
    completions that answered every item of the score, variances with ddof = 1
    (:func:`linkeval.instruments.cronbach_alpha`). Where a completion answers an item twice,
    the first non-missing answer is used. The alphas are the default reliabilities of the
    reliable change index (:func:`reliable_change_index`).

    References
    ----------
    Cronbach LJ (1951) Coefficient alpha and the internal structure of tests. Psychometrika
    16:297-334. docs/design.md, 'Pairing and change'.

    Examples
    --------
    >>> answers = {"p1": [1, 1, 2], "p2": [2, 3, 3], "p3": [3, 3, 2], "p4": [1, 2, 1]}
    >>> responses = pd.DataFrame([
    ...     {"site": "A", "person_id": person, "completed_date": pd.Timestamp("2024-01-10"),
    ...      "timepoint": "baseline", "instrument": "ucla3", "item": item, "value": value}
    ...     for person, values in answers.items()
    ...     for item, value in zip(["lack_companionship", "left_out", "isolated"], values)])
    >>> {name: round(alpha, 4) for name, alpha in reliabilities(responses).items()}
    {'ucla3': 0.7969}

    The same by the formula, with NumPy:

    >>> x = np.array(list(answers.values()), dtype=float)
    >>> k = x.shape[1]
    >>> alpha = k / (k - 1) * (1 - x.var(axis=0, ddof=1).sum() / x.sum(axis=1).var(ddof=1))
    >>> round(float(alpha), 4)
    0.7969
    """
    return alpha_from_sums(alpha_sums(responses))


ALPHA_SUMS = ["score", "item", "n", "sum", "sum_sq"]
TOTAL = ""  # the item name of a score's total in alpha_sums


def alpha_sums(responses: pd.DataFrame, first: np.ndarray | None = None) -> pd.DataFrame:
    """What Cronbach's alpha needs of the baseline responses, as sums that add up across
    sets of responses (the study's sites): :func:`alpha_from_sums` of the sums of every site
    is :func:`reliabilities` of the whole study.

    One row per multi-item score and item, and one for the score's total (``item`` ""), with
    ``n`` (completions that answered every item of the score), ``sum`` and ``sum_sq`` (of the
    item's values, or of the totals, over those completions). A completion never spans two
    sets: it is one (site, person_id, completed_date, instrument). Where it answers an item
    twice, the first answer counts: first in the rows' order, or, with ``first`` (a number
    per row), the answer with the smallest.
    """
    # The baseline rows' columns only, then integer codes instead of copies of the (large)
    # table: one per completion, and one per item of each instrument (a completion by item
    # array of one instrument's items, not of every item of every instrument).
    baseline = (responses["timepoint"] == "baseline").to_numpy(dtype=bool, na_value=False)
    columns = ["site", "person_id", "completed_date", "instrument", "item", "value"]
    responses = responses[columns].iloc[np.flatnonzero(baseline)]
    first = np.arange(len(responses)) if first is None else np.asarray(first)[baseline]
    completion = _key_codes(responses, ["site", "person_id", "completed_date"])
    values = responses["value"].to_numpy(dtype=float, na_value=np.nan)
    parts = [pd.DataFrame(columns=ALPHA_SUMS)]
    for name, inst in INSTRUMENTS.items():
        rows = np.flatnonzero(
            (responses["instrument"] == name).to_numpy(dtype=bool, na_value=False)
        )
        if not len(rows):
            continue
        item, item_names = pd.factorize(responses["item"].iloc[rows])
        wide = _completions_wide(completion[rows], item, item_names, values[rows], first[rows])
        for spec in inst.scores:
            if len(spec.items) > 1 and set(spec.items) <= set(wide.columns):
                complete = wide[list(spec.items)].dropna().to_numpy()
                x = np.column_stack([complete, complete.sum(axis=1)])
                part = {"score": spec.name, "item": [*spec.items, TOTAL], "n": len(x)}
                parts.append(pd.DataFrame(part | {"sum": x.sum(0), "sum_sq": (x**2).sum(0)}))
    return pd.concat(parts, ignore_index=True).astype({"n": "int64", "sum": float, "sum_sq": float})


def alpha_from_sums(sums: pd.DataFrame) -> dict[str, float]:
    """Cronbach's alpha of each score in :func:`alpha_sums` (of one set of responses, or of
    several one below the other): NaN with fewer than two complete completions.

    Each variance is (sum_sq - sum^2 / n) / (n - 1); alpha = k / (k - 1) * (1 - sum of the
    k item variances / variance of the total), as :func:`linkeval.instruments.cronbach_alpha`.
    """
    added = sums.groupby(["score", "item"], sort=False)[["n", "sum", "sum_sq"]].sum()
    out: dict[str, float] = {}
    for score, part in added.groupby(level="score", sort=False):
        n = part["n"].to_numpy(dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            var = (part["sum_sq"].to_numpy() - part["sum"].to_numpy() ** 2 / n) / (n - 1)
        total = part.index.get_level_values("item") == TOTAL
        k = int((~total).sum())
        total_var = float(var[total][0])
        # No spread in the totals: exactly 0 with whole-number answers; rounding may leave a
        # trace of the mean square with fractional ones.
        flat = 1e-12 * float(part["sum_sq"].to_numpy()[total][0]) / max(n[0], 1)
        if n[0] < 2 or not total_var > flat:
            out[str(score)] = float("nan")
        else:
            out[str(score)] = float(k / (k - 1) * (1 - var[~total].sum() / total_var))
    return out


def _completions_wide(
    completion: np.ndarray, item: np.ndarray, item_names, values: np.ndarray, first: np.ndarray
) -> pd.DataFrame:
    """One row per completion, one column per item: the first non-missing answer (the one
    with the smallest ``first``), as a pivot table by integer codes, fast on millions of
    rows."""
    row, _ = pd.factorize(completion)
    answered = np.flatnonzero(~np.isnan(values))
    cell = row[answered] * len(item_names) + item[answered]
    if len(cell) and np.bincount(cell).max() > 1:  # an item answered twice: the first wins
        # Written last to first (by ``first``, then by row), so that the first is kept.
        answered = answered[np.lexsort((answered, first[answered]))[::-1]]
    wide = np.full((row.max() + 1 if len(row) else 0, len(item_names)), np.nan)
    wide[row[answered], item[answered]] = values[answered]
    return pd.DataFrame(wide, columns=list(item_names))


def reliable_change_index(change: pd.Series, baseline_sd: float, reliability: float) -> pd.Series:
    """Jacobson & Truax (1991) reliable change index of each change.

    Parameters
    ----------
    change : Series
        Follow-up minus baseline, one value per pair (missing stays missing).
    baseline_sd : float
        s1, the SD of the baseline scores (study-wide, ddof=1, in the pipeline).
    reliability : float
        r, the score's reliability (0 < r < 1): the configured one or Cronbach's alpha.

    Returns
    -------
    Series
        Float64, the reliable change index RC of each change, same index as ``change``.
        Its sign is that of the change, so for a lower-is-better score a negative RC is an
        improvement.

    Notes
    -----
    RC = (x2 - x1) / S_diff, with S_diff = sqrt(2 * SE^2) and SE = s1 * sqrt(1 - r), where s1
    is the SD of baseline scores and r the reliability. |RC| > 1.96 is reliable change
    (two-sided 5%).

    References
    ----------
    Jacobson NS, Truax P (1991) Clinical significance: a statistical approach to defining
    meaningful change in psychotherapy research. J Consult Clin Psychol 59:12-19.
    docs/design.md, 'Pairing and change'.

    Examples
    --------
    >>> rc = reliable_change_index(pd.Series([4.0, -1.0, None]), baseline_sd=4.0,
    ...                            reliability=0.84)
    >>> rc.round(3).tolist()
    [1.768, -0.442, <NA>]

    By hand: SE = 4 * sqrt(1 - 0.84) = 1.6 and S_diff = sqrt(2) * 1.6, so

    >>> round(float(4.0 / (np.sqrt(2) * 1.6)), 3)
    1.768
    """
    se = baseline_sd * np.sqrt(1 - reliability)
    s_diff = np.sqrt(2 * se**2)
    return change.astype("Float64") / s_diff


def add_change_indicators(
    pairs: pd.DataFrame,
    reliability: dict[str, float],
    settings: dict[str, Settings] | None = None,
    baseline_sd: dict[str, float] | None = None,
) -> pd.DataFrame:
    """Fill improved_reliably, deteriorated_reliably and met_mid_improvement per score.

    Direction follows each score: for a higher-is-better score an improvement is a positive
    change, for PHQ-9, GAD-7, UCLA-3, ONS anxiety and the loneliness question a negative one.
    The reliability is the configured one, else ``reliability[score]`` (Cronbach's alpha);
    the baseline SD is ``baseline_sd[score]``, by default the SD of all baseline scores in
    ``pairs`` (:func:`baseline_sds`: pass the whole study's when ``pairs`` is a part of it).
    Without a reliability (single-item scores) reliable change is missing; without an MID,
    so is MID improvement.
    """
    out = pairs.copy()
    names = score_names()
    settings = settings or {}
    sds = baseline_sds([pairs]) if baseline_sd is None else baseline_sd
    change = out["change"].astype("Float64")
    filled = {
        c: (out[c] if c in out else pd.Series(pd.NA, index=out.index))
        .astype("boolean")
        .array.copy()
        for c in CHANGE_INDICATORS
    }
    for score_name, rows in _score_rows(out).items():
        instrument = INSTRUMENTS[names[score_name]]
        cfg = settings.get(instrument.name, Settings())
        sign = direction(score_name)
        r = cfg.reliability if cfg.reliability is not None else reliability.get(score_name)
        sd = sds.get(score_name, np.nan)
        if r is not None and np.isfinite(r) and 0 < r < 1 and np.isfinite(sd) and sd > 0:
            rc = reliable_change_index(change.iloc[rows], sd, r) * sign
            filled["improved_reliably"][rows] = (rc > RC_CRITICAL).array
            filled["deteriorated_reliably"][rows] = (rc < -RC_CRITICAL).array
        mid = cfg.mid if cfg.mid is not None else instrument.score(score_name).mid
        if mid is not None:
            filled["met_mid_improvement"][rows] = (change.iloc[rows] * sign >= mid).array
    return out.assign(**filled)


def baseline_sds(parts: list[pd.DataFrame]) -> dict[str, float]:
    """Each score's SD (ddof=1) of the baseline scores of all ``parts`` of a pairs table,
    as of the joined table; NaN for a score with one baseline."""
    values: dict[str, list[np.ndarray]] = {}
    for part in parts:
        baseline = part["baseline"].astype(float).to_numpy(na_value=np.nan)
        for score_name, rows in _score_rows(part).items():
            values.setdefault(score_name, []).append(baseline[rows])
    return {
        name: float(pd.Series(np.concatenate(arrays)).std(ddof=1))
        for name, arrays in values.items()
    }


def _score_rows(pairs: pd.DataFrame) -> dict[str, np.ndarray]:
    """The positions of each score's rows, in table order."""
    groups = pairs.groupby("instrument", observed=True, sort=False).indices
    return {str(name): rows for name, rows in groups.items()}


def pair_keys(pairs: pd.DataFrame) -> list[str]:
    """The columns that identify one pair's person (or episode) across scores.

    Per-person pairs (the default) have one pair per person and score, so site and person_id
    join one score's pair to another's; per-episode pairs may have several per person, so the
    referral_id is needed too, or a join would repeat people.

    >>> pairs = pd.DataFrame({"site": "A", "person_id": ["p", "p"], "referral_id": ["1", "2"],
    ...                       "instrument": "swemwbs"})
    >>> pair_keys(pairs), pair_keys(pairs.iloc[:1])
    (['site', 'person_id', 'referral_id'], ['site', 'person_id'])
    """
    several = pairs.duplicated(["site", "person_id", "instrument"]).any()
    return ["site", "person_id", "referral_id"] if several else ["site", "person_id"]
