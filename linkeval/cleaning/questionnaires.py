"""Questionnaires of one site: completions, timepoints, person linking, scoring and pairing.

A completion is rejected when it names no person, its date fails the event date rules, its NHS
number is invalid, its timepoint label is unknown, or it belongs to no kept referral. Answers
that are not valid responses are flagged and set missing; scoring then follows each
instrument's rules for missing items.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pyarrow as pa

from linkeval.cleaning.context import Context
from linkeval.cleaning.log import FILE, ROW, quoted
from linkeval.cleaning.lookup import positions
from linkeval.cleaning.read import ITEM_SEP, SRC
from linkeval.cleaning.routine import (
    check_nhs_numbers,
    event_date,
    person_ids,
    reject_unlinked,
    require,
    was_exported,
)
from linkeval.config import IDENTITY_FIELDS, Source
from linkeval.instruments import INSTRUMENTS, item_values, score_items
from linkeval.io import sort_keys
from linkeval.parse import blank
from linkeval.schema import concat
from linkeval.stats.pairing import pair_scores
from linkeval.vocab import map_labels

TABLE = "questionnaires"


def clean_questionnaires(
    ctx: Context, sources: list[Source], referrals: pd.DataFrame, exported: pa.Array
) -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame, pd.DataFrame, int]:
    """Clean, score and pair a site's questionnaires: (responses, each response's place in
    the cleaner's order, scores, pairs, rows kept).

    ``responses`` come in the store's row order (:func:`_responses`). ``exported`` holds
    every referral_id the referrals exports had, kept or rejected.
    """
    empty = pd.DataFrame({FILE: pd.Series(dtype=object), ROW: pd.Series(dtype="int64")})
    if not sources:
        return empty, np.arange(0), empty, empty, 0
    completions = pd.concat(
        [_completions_from(ctx, s, referrals, exported) for s in sources], ignore_index=True
    )
    if completions.empty:  # header-only exports, or every row rejected: zero rows, no error
        return empty, np.arange(0), empty, empty, 0
    completions = _timepoints_by_date(ctx, completions, sources)
    answers, scores = [], []
    # Item columns and settings are per source.
    for src, part in completions.groupby(SRC, sort=False):
        a, s = _score(ctx, part, ctx.site.sources[src])
        answers.append(a)
        scores.append(s)
    responses, cleaners_order = _responses(ctx.site.code, answers)
    scores = concat(scores, "scores")
    return responses, cleaners_order, scores, _pair(ctx, scores), len(completions)


def _completions_from(
    ctx: Context, source: Source, referrals: pd.DataFrame, exported: pa.Array
) -> pd.DataFrame:
    """One row per questionnaire completion, linked to a person and a timepoint."""
    frame = ctx.read(source)
    # The answers stay apart while the completions are checked: a rule that rejects rows
    # then copies the completions' few columns, not every item; the kept completions'
    # answers are joined back once.
    answers = [c for c in frame.columns if ITEM_SEP in c]
    items, frame = frame[answers], frame.drop(columns=answers)
    ident = [f for f in ("referral_id", *IDENTITY_FIELDS) if f in frame]
    has_id = pd.Series(False, index=frame.index)
    for fld in ident:
        has_id |= ~blank(frame[fld])
    frame = ctx.log.reject(
        frame, ~has_id, TABLE, ident[0], "missing_required", f"no person: {' / '.join(ident)} blank"
    )
    frame = require(ctx, frame, TABLE, ("completed_date",))
    frame = event_date(ctx, frame, TABLE, "completed_date", source)
    frame = check_nhs_numbers(ctx, frame, TABLE)
    if source.timepoint != "by_date":
        frame = _timepoint_labels(ctx, frame, source)
    frame = _link_person(ctx, frame, referrals, exported).assign(site=ctx.site.code)
    return frame.join(items)


def _timepoint_labels(ctx: Context, frame: pd.DataFrame, source: Source) -> pd.DataFrame:
    """Map the timepoint column to codes; a completion without a known timepoint goes."""
    codes, _ = map_labels(frame["timepoint"], "timepoint", source.values.get("timepoint"))
    frame = frame.assign(__timepoint__=codes)
    frame = ctx.log.reject(
        frame,
        frame["__timepoint__"].isna(),
        TABLE,
        "timepoint",
        "missing_timepoint",
        lambda r: (
            "timepoint "
            + quoted(r["timepoint"])
            + " is blank or not a known label; add it under values.timepoint"
        ),
    )
    frame["timepoint"] = frame.pop("__timepoint__")
    return frame


def _link_person(
    ctx: Context, frame: pd.DataFrame, referrals: pd.DataFrame, exported: pa.Array
) -> pd.DataFrame:
    """person_id and referral_id: from the referral when one is given, else from the
    person's identifier and their latest referral on or before the completion date (or
    their next referral, for a form completed before any)."""
    frame = frame.copy()
    if "referral_id" in frame:
        frame, pos = _given_referral(ctx, frame, referrals, exported)
    else:
        frame["referral_id"] = None
        pos = np.full(len(frame), -1)
    linked = pos >= 0
    person = np.full(len(frame), None, dtype=object)
    person[linked] = referrals["person_id"].to_numpy(dtype=object)[pos[linked]]
    frame["person_id"] = person
    rest = pd.Series(~linked, index=frame.index)
    if rest.any():
        frame.loc[rest, "person_id"] = person_ids(ctx, frame[rest]).to_numpy()
        frame.loc[rest, "referral_id"] = _latest_referral(frame[rest], referrals)
    # Questionnaires belong to a referral in the evaluation: without one (the person was
    # never referred here, or their referral was rejected, e.g. as under 18) they go.
    return ctx.log.reject(
        frame,
        rest & blank(frame["referral_id"]),
        TABLE,
        "referral_id",
        "no_referral",
        "no kept referral for this person at this site",
    )


def _given_referral(
    ctx: Context, frame: pd.DataFrame, referrals: pd.DataFrame, exported: pa.Array
) -> tuple[pd.DataFrame, np.ndarray]:
    """Reject completions naming an unknown or rejected referral; the others' positions in
    ``referrals`` (-1 where the referral_id is blank)."""
    frame["__pos__"] = positions(frame["referral_id"], referrals["referral_id"])
    given = ~blank(frame["referral_id"])
    rejected = given & (frame["__pos__"] < 0)
    known = was_exported(frame["referral_id"], ~rejected, exported)
    frame = reject_unlinked(ctx, frame, given & ~known, rejected, TABLE)
    return frame, frame.pop("__pos__").to_numpy()


def _latest_referral(frame: pd.DataFrame, referrals: pd.DataFrame) -> np.ndarray:
    """The person's latest referral on or before each completion date, else their next one."""
    if referrals.empty or frame.empty:
        return np.full(len(frame), None, dtype=object)
    left = pd.DataFrame(
        {
            "person_id": frame["person_id"].to_numpy(),
            "date": pd.to_datetime(frame["completed_date"]).to_numpy(),
            "order": np.arange(len(frame)),
        }
    ).sort_values("date")
    right = pd.DataFrame(
        {
            "person_id": referrals["person_id"].to_numpy(),
            "date": pd.to_datetime(referrals["referral_date"]).to_numpy(),
            "referral_id": referrals["referral_id"].to_numpy(),
        }
    ).sort_values("date")
    left["date"] = left["date"].astype("datetime64[ns]")
    right["date"] = right["date"].astype("datetime64[ns]")
    merged = pd.merge_asof(left, right, on="date", by="person_id", direction="backward")
    # A form completed before any referral (e.g. at the GP) goes with the next referral.
    later = pd.merge_asof(left, right, on="date", by="person_id", direction="forward")
    merged["referral_id"] = merged["referral_id"].fillna(later["referral_id"])
    return merged.sort_values("order")["referral_id"].to_numpy(dtype=object)


def _timepoints_by_date(ctx: Context, frame: pd.DataFrame, sources: list[Source]) -> pd.DataFrame:
    """For sources without a timepoint column: a person's first completion is the baseline."""
    by_date = [ctx.site.sources.index(s) for s in sources if s.timepoint == "by_date"]
    if not by_date:
        return frame
    rows = frame[SRC].isin(by_date)
    first = frame[rows].groupby("person_id")["completed_date"].transform("min")
    frame = frame.copy()
    frame.loc[rows, "timepoint"] = np.where(
        frame.loc[rows, "completed_date"] == first, "baseline", "followup"
    )
    return frame


# A source's answers: its completions' key columns (one row per completion), and each item's
# values over those completions as (instrument, item, values), in the cleaner's order.
Answers = tuple[pd.DataFrame, list[tuple[str, str, pd.api.extensions.ExtensionArray]]]


def _score(ctx: Context, frame: pd.DataFrame, source: Source) -> tuple[Answers, pd.DataFrame]:
    """A source's completions as their item answers (for :func:`_responses`) and instrument
    scores.

    Their text columns are categoricals (schema.TEXT): repeating a completion for each of its
    items copies small integer codes, not the 64-character pseudonym.
    """
    frame = frame.reset_index(drop=True)
    completion = frame[
        [FILE, ROW, "site", "person_id", "referral_id", "timepoint", "completed_date"]
    ].astype({c: "category" for c in ("site", "person_id", "referral_id", "timepoint")})
    answers, scores = [], []
    for name, items in source.items.items():
        instrument = INSTRUMENTS[name]
        values = _item_values(ctx, frame, name, items)
        answers.extend((name, item, v.array) for item, v in values.items())
        scored = score_items(pd.DataFrame(values), instrument, ctx.cfg.instrument_settings(name))
        scores.append(
            completion.iloc[scored["row"].to_numpy()]
            .reset_index(drop=True)
            .assign(  # score_name, band and not_scored_reason come as categoricals
                instrument=scored["score_name"].array,
                **{c: v.array for c, v in scored.drop(columns=["row", "score_name"]).items()},
            )
        )
    who = completion.drop(columns=[FILE, ROW, "site"])
    return (who, answers), concat(scores, "scores")


def _responses(site: str, answers: list[Answers]) -> tuple[pd.DataFrame, np.ndarray]:
    """The sources' item answers as responses (long: a row per completion and item), in the
    store's row order, and each row's place in the cleaner's order.

    The store's order (io.STORE_ORDER) is stable: rows equal on its columns keep the
    cleaner's order, which is source by source, an instrument's items one after another, each
    item over every completion. Sorting is done on the completions, not on their items: each
    completion's rows are laid out in the order of its (instrument, item) values, and only
    rows of completions tied on (person_id, referral_id, timepoint) are sorted among
    themselves.
    """
    blocks = [(name, item, values) for _, part in answers for name, item, values in part]
    if not blocks or not sum(len(who) for who, _ in answers):
        return concat([], "responses"), np.arange(0)
    who = concat([w for w, _ in answers])
    # A block is one item over a source's completions. Each completion's source and its row
    # there; each block's first row in the cleaner's order, and its (instrument, item)'s
    # place among all of them by value (as the store sorts them).
    n_rows = np.array([len(w) for w, _ in answers])
    n_blocks = np.array([len(part) for _, part in answers])
    source = np.repeat(np.arange(len(answers)), n_rows)
    row = np.arange(len(who)) - np.repeat(np.cumsum(n_rows) - n_rows, n_rows)
    block_size = np.repeat(n_rows, n_blocks)
    block_start = np.cumsum(block_size) - block_size
    units = sorted({(name, item) for name, item, _ in blocks})
    unit = np.array([units.index((name, item)) for name, item, _ in blocks])
    # The completions in the store's order (stable), and which are tied with the one before.
    keys = sort_keys(who, ["person_id", "referral_id", "timepoint"])
    completions = np.lexsort(keys[::-1])
    tied = np.ones(len(who) - 1, dtype=bool)
    for key in keys:
        ordered = key[completions]
        tied &= ordered[1:] == ordered[:-1]
    # Each completion's rows one after another, its blocks in (instrument, item) order; a
    # source at a time.
    sources = source[completions]
    n_items = n_blocks[sources]
    start = np.cumsum(n_items) - n_items
    completion = np.empty(n_items.sum(), dtype=np.int64)
    block = np.empty(len(completion), dtype=np.int32)
    cleaners_order = np.empty(len(completion), dtype=np.int64)
    first_block = np.cumsum(n_blocks) - n_blocks
    for s, (first, n) in enumerate(zip(first_block, n_blocks, strict=True)):
        mine = np.flatnonzero(sources == s)
        if not n or not len(mine):
            continue
        own = first + np.argsort(unit[first : first + n], kind="stable")
        at = (
            slice(None)
            if len(mine) == len(completions)
            else (start[mine][:, None] + np.arange(n)).ravel()
        )
        taken = completions[mine]
        completion[at] = np.repeat(taken, n)
        block[at] = np.tile(own, len(mine))
        cleaners_order[at] = (row[taken][:, None] + block_start[own]).ravel()
    if tied.any():  # tied completions' answers to one item go together, in the cleaner's order
        _sort_ties(tied, n_items, unit, completion, block, cleaners_order)
    values = pd.concat([pd.Series(v, copy=False) for _, _, v in blocks], ignore_index=True)
    instruments = list(dict.fromkeys(name for name, _, _ in blocks))
    items = list(dict.fromkeys(item for _, item, _ in blocks))
    responses = who.take(completion).reset_index(drop=True)
    return responses.assign(
        site=_repeated(site, len(responses)),
        instrument=pd.Categorical.from_codes(
            _codes([instruments.index(n) for n, _, _ in blocks]).take(block),
            categories=instruments,
        ),
        item=pd.Categorical.from_codes(
            _codes([items.index(i) for _, i, _ in blocks]).take(block), categories=items
        ),
        value=values.array.take(cleaners_order),
    ), cleaners_order


def _codes(codes: list[int]) -> np.ndarray:
    """Categorical codes in the smallest integer type pandas keeps them in."""
    return np.array(codes, dtype=np.int8 if max(codes) < 127 else np.int32)


def _sort_ties(
    tied: np.ndarray,
    n_items: np.ndarray,
    unit: np.ndarray,
    completion: np.ndarray,
    block: np.ndarray,
    cleaners_order: np.ndarray,
) -> None:
    """Sort, in place, the rows of completions tied with a neighbour (``tied``: with the one
    before, in the store's order) by their tie group, then (instrument, item), stably."""
    group = np.cumsum(np.concatenate([[True], ~tied]))  # of each completion, in order
    in_tie = np.zeros(len(group), dtype=bool)
    in_tie[1:] |= tied
    in_tie[:-1] |= tied
    rows = np.flatnonzero(np.repeat(in_tie, n_items))
    order = rows[np.lexsort((unit[block[rows]], np.repeat(group[in_tie], n_items[in_tie])))]
    for values in (completion, block, cleaners_order):
        values[rows] = values[order]


def _repeated(value: str, n: int) -> pd.Categorical:
    """One text value on n rows, as a categorical (n bytes, not n strings)."""
    return pd.Categorical.from_codes(np.zeros(n, dtype=np.int8), categories=[value])


def _item_values(
    ctx: Context, frame: pd.DataFrame, name: str, items: dict[str, str]
) -> dict[str, pd.Series]:
    """One instrument's answers as item values; invalid answers are flagged and set missing."""
    instrument = INSTRUMENTS[name]
    values = {}
    for item, header in items.items():
        raw = frame[f"{name}{ITEM_SEP}{item}"]
        values[item], invalid = item_values(raw, instrument)
        ctx.log.flag(
            frame[invalid],
            TABLE,
            f"{name}.{item}",
            "invalid_item",
            _invalid_answer(raw, name, header, instrument),
        )
    return values


def _invalid_answer(
    raw: pd.Series, name: str, header: str, instrument
) -> Callable[[pd.DataFrame], pd.Series]:
    def detail(rows: pd.DataFrame) -> pd.Series:
        return (
            "answer " + quoted(raw[rows.index]) + f" to {name} ({header}) is not a response "
            f"label nor a whole number {instrument.item_min}-{instrument.item_max}; "
            "set to missing"
        )

    return detail


def _pair(ctx: Context, scores: pd.DataFrame) -> pd.DataFrame:
    """Baseline and follow-up pairs; follow-ups that cannot be paired are logged."""
    pairs, excluded = pair_scores(scores, ctx.cfg.followup_window_days, ctx.cfg.pairing)
    # One log row per questionnaire row, naming the scores concerned.
    excluded = (
        excluded.astype({"instrument": str})
        .groupby(["reason", FILE, ROW], as_index=False, sort=False, observed=True)["instrument"]
        .agg(", ".join)
    )
    # Rejected from the pairs only: the completion itself stays in responses and scores.
    before = excluded[excluded["reason"] == "followup_before_baseline"]
    ctx.log.record(
        before,
        "pairs",
        "completed_date",
        "followup_before_baseline",
        "rejected",
        lambda r: (
            "follow-up (" + r["instrument"] + ") dated before the baseline; "
            "not paired (check the timepoint label)"
        ),
    )
    lone = excluded[excluded["reason"] == "no_baseline"]
    ctx.log.flag(
        lone,
        "pairs",
        "timepoint",
        "no_baseline",
        lambda r: "follow-up (" + r["instrument"] + ") without a scored baseline; not paired",
    )
    return pairs
