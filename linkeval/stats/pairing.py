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
    cronbach_alpha,
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
RC_CRITICAL = 1.96  # two-sided 5% (Jacobson & Truax 1991)


def pair_scores(
    scores: pd.DataFrame, window: tuple[int, int] = (270, 365), pairing: str = "per_person"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Pair each person's baseline and follow-up score, per score (or per episode and score).

    Parameters
    ----------
    scores : canonical ``scores`` table (site, person_id, referral_id, timepoint,
        completed_date, instrument, score, band, scored, ...). Extra columns are carried to
        ``excluded`` so callers can trace rows back to their source.
    window : earliest and latest follow-up, in days after the baseline.
    pairing : ``"per_person"`` (default): one pair per person and score, whichever referral
        the forms belong to; ``referral_id`` is the baseline's. ``"per_episode"``: one pair per
        person, referral (``referral_id``) and score, so a person referred twice can have two
        pairs, and a follow-up pairs only with a baseline of the same referral.

    Returns
    -------
    pairs : one row per (site, person_id, instrument), or per (site, person_id, referral_id,
        instrument) with ``per_episode``, with a scored baseline: baseline,
        followup (missing when there is none), change = followup - baseline,
        baseline_date, followup_date, days_between, in_window, baseline_band, followup_band.
        Reliable-change and MID columns are added by :func:`add_change_indicators`.
    excluded : follow-up rows not used, with ``reason`` ``followup_before_baseline`` or
        ``no_baseline``.
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
    usable = keyed[~no_base & ~before.fillna(False)].copy()
    lo, hi = window
    usable["in_window"] = usable["days_between"].between(lo, hi)
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
    for col in ("improved_reliably", "deteriorated_reliably", "met_mid_improvement"):
        pairs[col] = pd.Series(pd.NA, index=pairs.index, dtype="boolean")
    return pairs[PAIR_COLUMNS].reset_index(drop=True), excluded.drop(columns="__key__")


def _key_codes(frame: pd.DataFrame, columns: list[str], sort: bool = False) -> np.ndarray:
    """One integer per combination of ``columns`` (with ``sort``, in the order of the sorted
    combinations): grouping by integers is fast where grouping by long text is not."""
    key = np.zeros(len(frame), dtype=np.int64)
    for col in columns:
        codes, uniques = pd.factorize(frame[col], sort=sort)  # missing: -1, kept apart by + 1
        key = key * (len(uniques) + 1) + codes + 1
    return key


def reliabilities(responses: pd.DataFrame) -> dict[str, float]:
    """Cronbach's alpha of each multi-item score, from the study's baseline item responses.

    ``responses`` is the canonical long table; one completion is one
    (site, person_id, completed_date, instrument) at the baseline timepoint.
    """
    # Integer codes instead of copies of the (large) table: one per completion and per item.
    baseline = (responses["timepoint"] == "baseline").to_numpy(dtype=bool, na_value=False)
    completion = _key_codes(responses, ["site", "person_id", "completed_date"])
    item, item_names = pd.factorize(responses["item"])
    values = responses["value"].to_numpy(dtype=float, na_value=np.nan)
    out: dict[str, float] = {}
    for name, inst in INSTRUMENTS.items():
        rows = np.flatnonzero(
            baseline & (responses["instrument"] == name).to_numpy(dtype=bool, na_value=False)
        )
        if not len(rows):
            continue
        wide = _completions_wide(completion[rows], item[rows], item_names, values[rows])
        for spec in inst.scores:
            if len(spec.items) > 1 and set(spec.items) <= set(wide.columns):
                out[spec.name] = cronbach_alpha(wide[list(spec.items)])
    return out


def _completions_wide(
    completion: np.ndarray, item: np.ndarray, item_names, values: np.ndarray
) -> pd.DataFrame:
    """One row per completion, one column per item: the first non-missing answer (a pivot
    table by integer codes, fast on millions of rows)."""
    row, _ = pd.factorize(completion)
    answered = np.flatnonzero(~np.isnan(values))[::-1]  # written last to first: first wins
    wide = np.full((row.max() + 1 if len(row) else 0, len(item_names)), np.nan)
    wide[row[answered], item[answered]] = values[answered]
    return pd.DataFrame(wide, columns=list(item_names))


def reliable_change_index(change: pd.Series, baseline_sd: float, reliability: float) -> pd.Series:
    """Jacobson & Truax (1991) reliable change index.

    RC = (x2 - x1) / S_diff, with S_diff = sqrt(2 * SE^2) and SE = s1 * sqrt(1 - r), where s1
    is the SD of baseline scores and r the reliability. |RC| > 1.96 is reliable change.
    """
    se = baseline_sd * np.sqrt(1 - reliability)
    s_diff = np.sqrt(2 * se**2)
    return change.astype("Float64") / s_diff


def add_change_indicators(
    pairs: pd.DataFrame,
    reliability: dict[str, float],
    settings: dict[str, Settings] | None = None,
) -> pd.DataFrame:
    """Fill improved_reliably, deteriorated_reliably and met_mid_improvement per score.

    Direction follows each score: for a higher-is-better score an improvement is a positive
    change, for PHQ-9, GAD-7, UCLA-3, ONS anxiety and the loneliness question a negative one.
    The reliability is the configured one, else ``reliability[score]`` (Cronbach's alpha);
    the baseline SD is the SD of all baseline scores in ``pairs``. Without a reliability
    (single-item scores) reliable change is missing; without an MID, so is MID improvement.
    """
    out = pairs.copy()
    names = score_names()
    settings = settings or {}
    for score_name, idx in out.groupby("instrument").groups.items():
        instrument = INSTRUMENTS[names[score_name]]
        spec = instrument.score(score_name)
        cfg = settings.get(instrument.name, Settings())
        sign = direction(score_name)
        rows = out.loc[idx]
        change = rows["change"]
        r = cfg.reliability if cfg.reliability is not None else reliability.get(score_name)
        sd = float(rows["baseline"].astype(float).std(ddof=1))
        if r is not None and np.isfinite(r) and 0 < r < 1 and np.isfinite(sd) and sd > 0:
            rc = reliable_change_index(change, sd, r) * sign
            out.loc[idx, "improved_reliably"] = (rc > RC_CRITICAL).astype("boolean")
            out.loc[idx, "deteriorated_reliably"] = (rc < -RC_CRITICAL).astype("boolean")
        mid = cfg.mid if cfg.mid is not None else spec.mid
        if mid is not None:
            out.loc[idx, "met_mid_improvement"] = (change * sign >= mid).astype("boolean")
    return out


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
