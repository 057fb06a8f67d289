"""Coded-event exports made into referrals (docs/standard.md, 'Coded-event exports').

A GP clinical-system search (EMIS Web, SystmOne) exports one row per coded event: the patient's
NHS number (and, repeated on each row, date of birth, sex, ethnicity, postcode, practice), the
event date, the SNOMED CT (or local) code, its term and a value. A ``table: coded_events``
source names the columns and, under ``events:``, what each code means. Each person's events
are grouped into referral episodes:

- a **referral** event opens an episode (its referral_id is ``<file>#<row>``, the event's place
  in the export, which has no referral reference of its own); a second referral event for the
  same person on the same day joins that day's episode (flagged ``repeated_referral_event``);
  a later one opens a new episode (a re-referral; ``duplicate_case`` applies as to any referral);
- **outcome** and **reason** events attach to the person's latest referral on or before their
  date (same-day events to that day's referral). The episode's outcome is its last outcome
  event (earlier ones are flagged ``superseded_outcome``) and, unless it is ``ongoing``, its date
  is the discharge date; its reasons are all its reason events' codes.

Row accounting (table ``coded_events``): every event row ends kept or rejected. Kept rows are
the referral events of kept referrals and the events merged into them. Rejected, in order:
blank_row, duplicate_row, missing_required (no person, date or code), unparseable_date,
impossible_date, future_date, invalid_nhs_number, placeholder_nhs_number, ``unknown_code`` (a
code the config and linkeval's SNOMED list do not name), ``no_referral`` (an outcome or reason
with no referral event for the person on or before it); then the referral rules on each
episode's referral event (under_18, ...; logged on that row), and ``referral_rejected`` for the
events merged into a rejected referral.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pyarrow as pa

from linkeval.cleaning.context import Context
from linkeval.cleaning.log import FILE, MIN_LABEL_ROWS, ROW, scrub
from linkeval.cleaning.log import TABLE as TABLE_COLUMN
from linkeval.cleaning.lookup import large_text, positions
from linkeval.cleaning.read import REASON_SEP, SRC
from linkeval.cleaning.routine import check_nhs_numbers, event_date, person_ids, require
from linkeval.config import EVENT_PERSON_FIELDS, IDENTITY_FIELDS, Source
from linkeval.parse import blank
from linkeval.pseudonymise import nhs_number_status
from linkeval.vocab import SNOMED_EVENTS, SNOMED_LABELS

TABLE = "coded_events"
# Referral rows made here carry their raw table (TABLE_COLUMN): the referral rules then log an
# episode's referral event under coded_events, where its row is accounted for (cleaning/log.py).
REFERRAL, OUTCOME, REASON = "referral", "outcome", "reason"


def code_meanings(source: Source) -> dict[str, tuple[str, str | None]]:
    """Code -> (kind, canonical code): the SNOMED CT concepts linkeval knows
    (``data/snomed_labels.csv``), with the source's ``events:`` on top."""
    meanings: dict[str, tuple[str, str | None]] = {
        c: (REFERRAL, None) for c, m in SNOMED_EVENTS.items() if m == "referral"
    }
    for row in SNOMED_LABELS.itertuples():
        if row.field in ("outcome", "reasons"):
            meanings[row.concept_id] = (OUTCOME if row.field == "outcome" else REASON, row.code)
    events = source.events
    meanings.update({c: (REFERRAL, None) for c in events.get("referral_codes", ())})
    meanings.update({c: (OUTCOME, v) for c, v in events.get("outcome_codes", {}).items()})
    meanings.update({c: (REASON, v) for c, v in events.get("reason_codes", {}).items()})
    return meanings


def normalise_codes(values: pd.Series) -> pd.Series:
    """Codes as text: trimmed, and a number a spreadsheet stored as '871731000000106.0' whole.

    >>> normalise_codes(pd.Series([" 871731000000106 ", "871731000000106.0", "Y1234"])).tolist()
    ['871731000000106', '871731000000106', 'Y1234']
    """
    text = values.astype(str).str.strip()
    return text.str.replace(r"^(\d+)\.0+$", r"\1", regex=True)


def referrals_from_events(
    ctx: Context, source: Source
) -> tuple[pd.DataFrame, pa.Array, pd.DataFrame]:
    """One coded_events source as referral rows (raw text, one per episode, ready for the
    referral rules), every referral_id made, and the event rows merged into each episode."""
    frame = ctx.read(source)
    frame = _check_rows(ctx, frame, source)
    frame = _episodes(ctx, frame)
    opening = frame["__opens__"].to_numpy(dtype=bool)
    referrals = _referral_rows(frame, opening)
    merged = frame.loc[~opening, [FILE, ROW, "referral_id", "__kind__", "event_date"]].reset_index(
        drop=True
    )
    return referrals, large_text(referrals["referral_id"]), merged


def _check_rows(ctx: Context, frame: pd.DataFrame, source: Source) -> pd.DataFrame:
    """Event rows with a person, a good date, a valid NHS number and a known code."""
    present = [f for f in IDENTITY_FIELDS if f in frame]
    has_id = pd.Series(False, index=frame.index)
    for fld in present:
        has_id |= ~blank(frame[fld])
    frame = ctx.log.reject(
        frame,
        ~has_id,
        TABLE,
        present[0],
        "missing_required",
        f"no person identifier ({' / '.join(present)} blank)",
    )
    frame = require(ctx, frame, TABLE, ("event_date", "code"))
    frame = frame.assign(__event_text__=frame["event_date"])  # the referral rules read it
    frame = event_date(ctx, frame, TABLE, "event_date", source)
    frame = check_nhs_numbers(ctx, frame, TABLE)
    meanings = code_meanings(source)
    codes = normalise_codes(frame["code"])
    kind = codes.map(lambda c: meanings.get(c, (None, None))[0])
    frame = ctx.log.reject(
        frame,
        kind.isna(),
        TABLE,
        "code",
        "unknown_code",
        lambda r: _unknown_code_detail(codes[r.index], codes),
    )
    codes = codes[frame.index]
    return frame.assign(
        __kind__=codes.map(lambda c: meanings[c][0]),
        __meaning__=codes.map(lambda c: meanings[c][1]),
        person_id=person_ids(ctx, frame),
    )


def _unknown_code_detail(rejected: pd.Series, every: pd.Series) -> pd.Series:
    """'code 12345 is not ...': shown when it is a SNOMED CT concept id (never an NHS number)
    or a code the site uses at least MIN_LABEL_ROWS times; otherwise held back."""
    counts = every.map(every.value_counts())[rejected.index]
    shown = rejected.map(lambda c: c if is_snomed_id(c) else None)
    common = scrub(rejected).where(counts >= MIN_LABEL_ROWS)
    code = shown.fillna(common).fillna(f"(seen fewer than {MIN_LABEL_ROWS} times: not shown)")
    return (
        "code " + code.astype(str) + " is not a referral, outcome or reason code; add it "
        "under events (referral_codes, outcome_codes or reason_codes) if it is one"
    )


_D = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9),
    (1, 2, 3, 4, 0, 6, 7, 8, 9, 5),
    (2, 3, 4, 0, 1, 7, 8, 9, 5, 6),
    (3, 4, 0, 1, 2, 8, 9, 5, 6, 7),
    (4, 0, 1, 2, 3, 9, 5, 6, 7, 8),
    (5, 9, 8, 7, 6, 0, 4, 3, 2, 1),
    (6, 5, 9, 8, 7, 1, 0, 4, 3, 2),
    (7, 6, 5, 9, 8, 2, 1, 0, 4, 3),
    (8, 7, 6, 5, 9, 3, 2, 1, 0, 4),
    (9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
)
_P = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9),
    (1, 5, 7, 6, 2, 8, 3, 0, 9, 4),
    (5, 8, 0, 3, 7, 9, 6, 1, 4, 2),
    (8, 9, 1, 6, 0, 4, 3, 5, 2, 7),
    (9, 4, 5, 3, 1, 2, 6, 8, 7, 0),
    (4, 2, 8, 6, 5, 7, 3, 9, 0, 1),
    (2, 7, 9, 3, 8, 0, 6, 4, 1, 5),
    (7, 0, 4, 6, 9, 1, 3, 2, 5, 8),
)
_SNOMED_ID = re.compile(r"[1-9]\d{5,17}")


def is_snomed_id(code: str) -> bool:
    """A SNOMED CT concept id: 6-18 digits, a concept partition (00 or 10) and a valid
    Verhoeff check digit, and not a valid NHS number.

    >>> [is_snomed_id(c) for c in ("871731000000106", "422650009", "9434765919", "123456")]
    [True, True, False, False]
    """
    if not _SNOMED_ID.fullmatch(code) or code[-3:-1] not in ("00", "10"):
        return False
    check = 0
    for i, digit in enumerate(reversed(code)):
        check = _D[check][_P[i % 8][int(digit)]]
    return check == 0 and nhs_number_status(pd.Series([code])).iloc[0] != "valid"


def _episodes(ctx: Context, frame: pd.DataFrame) -> pd.DataFrame:
    """Each event row's episode (the row that opened it), in the person's date order; events
    with no referral on or before them are rejected."""
    is_ref = (frame["__kind__"] == REFERRAL).to_numpy()
    frame = frame.assign(__order__=np.where(is_ref, 0, 1))
    frame = frame.sort_values(["person_id", "event_date", "__order__", FILE, ROW], kind="stable")
    person = frame["person_id"].to_numpy(dtype=object)
    date = frame["event_date"].to_numpy()
    is_ref = (frame["__kind__"] == REFERRAL).to_numpy()
    # Referral events in order; one on the same day as the person's previous one joins it.
    ref_pos = np.flatnonzero(is_ref)
    same_day = np.zeros(len(frame), dtype=bool)
    if len(ref_pos) > 1:
        same_day[ref_pos[1:]] = (person[ref_pos[1:]] == person[ref_pos[:-1]]) & (
            date[ref_pos[1:]] == date[ref_pos[:-1]]
        )
    opens = is_ref & ~same_day
    # The last opening row at or before each row (sorted), if it is the same person's.
    last_open = np.maximum.accumulate(np.where(opens, np.arange(len(frame)), -1))
    has = last_open >= 0
    has[has] = person[last_open[has]] == person[has]
    ids = (frame[FILE].astype(str) + "#" + frame[ROW].astype(str)).to_numpy(dtype=object)
    referral_id = np.where(has, ids[np.maximum(last_open, 0)], None)
    frame = frame.assign(referral_id=referral_id, __opens__=opens)
    return ctx.log.reject(
        frame,
        pd.Series(~has, index=frame.index),
        TABLE,
        "event_date",
        "no_referral",
        "no referral event for this person on or before this "
        "event (was the referral before the search's date range?)",
    )


def _referral_rows(frame: pd.DataFrame, opening: np.ndarray) -> pd.DataFrame:
    """One raw referral row per episode: the referral event's fields, reasons and outcome."""
    ref = frame[opening]
    out = pd.DataFrame(
        {
            FILE: ref[FILE].to_numpy(),
            ROW: ref[ROW].to_numpy(),
            SRC: ref[SRC].to_numpy(),
            TABLE_COLUMN: TABLE,
            "referral_id": ref["referral_id"].to_numpy(dtype=object),
            "referral_date": ref["__event_text__"].to_numpy(dtype=object),
        }
    )
    for fld in EVENT_PERSON_FIELDS:
        if fld in ref:
            out[fld] = ref[fld].to_numpy(dtype=object)
    reasons = frame[(frame["__kind__"] == REASON).to_numpy()]
    joined = (
        reasons.drop_duplicates(["referral_id", "__meaning__"])
        .groupby("referral_id", sort=False)["__meaning__"]
        .agg(REASON_SEP.join)
    )
    out["reasons"] = out["referral_id"].map(joined).astype(object).fillna("")
    outcome, discharge = _outcomes(frame)
    out["outcome"] = out["referral_id"].map(outcome).astype(object).fillna("")
    out["discharge_date"] = out["referral_id"].map(discharge).astype(object).fillna("")
    return out


def _outcomes(frame: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """Each episode's last outcome (by date, then export order) and its date as exported."""
    rows = frame[(frame["__kind__"] == OUTCOME).to_numpy()]
    rows = rows.sort_values(["referral_id", "event_date", FILE, ROW], kind="stable")
    last = rows.drop_duplicates("referral_id", keep="last").set_index("referral_id")
    ended = last["__meaning__"] != "ongoing"
    return last["__meaning__"], last["__event_text__"].where(ended, "")


def _flag_merged(ctx: Context, merged: pd.DataFrame) -> None:
    """Kept merged events worth a look: a referral coded twice on one day, and outcomes that a
    later outcome of the same referral replaced."""
    repeated = merged[(merged["__kind__"] == REFERRAL).to_numpy()]
    ctx.log.flag(
        repeated,
        TABLE,
        "code",
        "repeated_referral_event",
        lambda r: (
            "a second referral event on the same day; merged into referral "
            + r["referral_id"].astype(str)
        ),
    )
    rows = merged[(merged["__kind__"] == OUTCOME).to_numpy()]
    rows = rows.sort_values(["referral_id", "event_date", FILE, ROW], kind="stable")
    earlier = rows[rows["referral_id"].duplicated(keep="last")]
    ctx.log.flag(
        earlier,
        TABLE,
        "code",
        "superseded_outcome",
        "a later outcome event of the same referral replaced this one",
    )


def settle(ctx: Context, merged: pd.DataFrame, referrals: pd.DataFrame) -> int:
    """Reject the events merged into referrals that were rejected; event rows kept.

    ``referrals`` are the site's kept referrals (every source); the count is their referral
    events plus the events merged into them.
    """
    if TABLE_COLUMN in referrals:
        n_referral_events = int((referrals[TABLE_COLUMN] == TABLE).sum())
    else:
        n_referral_events = 0
    if merged.empty:
        return n_referral_events
    kept = pd.Series(
        positions(merged["referral_id"], referrals["referral_id"]) >= 0, index=merged.index
    )
    merged = ctx.log.reject(
        merged,
        ~kept,
        TABLE,
        "referral_id",
        "referral_rejected",
        lambda r: (
            "merged into referral "
            + r["referral_id"].astype(str)
            + ", which was rejected (see the row of its referral event)"
        ),
    )
    _flag_merged(ctx, merged)
    return n_referral_events + len(merged)
