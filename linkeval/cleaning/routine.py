"""Row rules for the routine data: referrals, contacts and onward referrals.

A row is rejected by the first rule it fails, in this order: missing_required,
unparseable_date / impossible_date / future_date, invalid_nhs_number / placeholder_nhs_number,
under_18, duplicate_referral_id; and for contacts and onward referrals, after their own checks:
unknown_referral, referral_rejected, before_referral. Optional values that cannot be read are
flagged and set missing, and the row is kept. The full rule table is in docs/design.md,
'Cleaning log and row accounting'.

The field rules here (required fields, dates, NHS numbers, labels, numbers, person IDs) serve the
questionnaires too.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from linkeval.cleaning.area import derive_area
from linkeval.cleaning.context import Context
from linkeval.cleaning.episodes import flag_duplicate_cases
from linkeval.cleaning.log import FILE, ROW, quoted
from linkeval.cleaning.lookup import large_text, positions
from linkeval.cleaning.read import REASON_SEP, SRC
from linkeval.config import IDENTITY_FIELDS, Source
from linkeval.parse import (
    as_text,
    blank,
    parse_dates,
    parse_numbers,
    parse_whole_numbers,
    whole_years_between,
)
from linkeval.pseudonymise import nhs_number_status, normalise_nhs_number, pseudonymise
from linkeval.vocab import age_band, map_labels

# Set by link() on each kept contact or onward referral: its referral's row in the site's
# referrals, which derive() counts by (an internal column: not in the canonical tables).
REFERRAL_ROW = "__referral_row__"
EARLIEST_EVENT = pd.Timestamp("2000-01-01")
EARLIEST_BIRTH = pd.Timestamp("1900-01-01")
MAX_AGE = 115


# --------------------------------------------------------------------------------------------
# Field rules


def require(ctx: Context, frame: pd.DataFrame, table: str, fields: tuple[str, ...]) -> pd.DataFrame:
    """Reject rows where a required field the source maps is blank."""
    rules = [
        (blank(frame[fld]), table, fld, "missing_required", f"{fld} is blank")
        for fld in fields
        if fld in frame
    ]
    return ctx.log.reject_in_turn(frame, rules)


def event_date(
    ctx: Context, frame: pd.DataFrame, table: str, fld: str, source: Source, required: bool = True
) -> pd.DataFrame:
    """Parse an event date; reject unreadable, impossible (before 2000) and future dates.

    An optional date that is wrong in any of those ways is flagged and set missing instead.
    """
    dates, bad = parse_dates(frame[fld], source.date_format)
    if required:
        return _required_date(ctx, frame, table, fld, source, dates, bad)
    wrong = bad | (dates < EARLIEST_EVENT) | (dates > ctx.today)
    ctx.log.flag(
        frame[wrong],
        table,
        fld,
        "invalid_date",
        lambda r: (
            f"{fld} " + quoted(r[fld]) + " unreadable, before 2000 or in the future; set to missing"
        ),
    )
    return frame.assign(**{fld: dates.mask(wrong)})


def _required_date(
    ctx: Context,
    frame: pd.DataFrame,
    table: str,
    fld: str,
    source: Source,
    dates: pd.Series,
    bad: pd.Series,
) -> pd.DataFrame:
    expect = f"expected {source.date_format}" if source.date_format else "expected day-first"
    log, today = ctx.log, ctx.today
    # The raw text stays in place until the end, for the log details.
    frame = frame.assign(__parsed__=dates)
    frame = log.reject_in_turn(
        frame,
        [
            (
                bad,
                table,
                fld,
                "unparseable_date",
                lambda r: f"cannot read {fld} " + quoted(r[fld]) + f" ({expect})",
            ),
            (
                dates < EARLIEST_EVENT,
                table,
                fld,
                "impossible_date",
                lambda r: f"{fld} before {EARLIEST_EVENT.date()}: " + quoted(r[fld]),
            ),
            (
                dates > today,
                table,
                fld,
                "future_date",
                lambda r: f"{fld} after the run date {today.date()}: " + quoted(r[fld]),
            ),
        ],
    )
    frame[fld] = frame.pop("__parsed__")
    return frame


def check_nhs_numbers(ctx: Context, frame: pd.DataFrame, table: str) -> pd.DataFrame:
    """Normalise NHS numbers; reject invalid ones and placeholders (the value is not logged)."""
    if "nhs_number" not in frame:
        return frame
    frame = frame.assign(nhs_number=normalise_nhs_number(frame["nhs_number"]))
    status = nhs_number_status(frame["nhs_number"])
    return ctx.log.reject_in_turn(
        frame,
        [
            (
                status == "invalid",
                table,
                "nhs_number",
                "invalid_nhs_number",
                "not 10 digits or fails the Modulus 11 check (value not logged)",
            ),
            (
                status == "placeholder",
                table,
                "nhs_number",
                "placeholder_nhs_number",
                "ten identical digits (a placeholder)",
            ),
        ],
    )


def labels(ctx: Context, frame: pd.DataFrame, table: str, fld: str, source: Source) -> pd.DataFrame:
    """Map raw labels to codes; unmapped labels are flagged (docs/design.md, 'Vocabularies')."""
    if fld not in frame:
        return frame
    codes, unmapped = map_labels(frame[fld], fld, source.values.get(fld))
    ctx.log.unmapped(frame[unmapped], frame[fld][unmapped], table, fld, codes[unmapped])
    return frame.assign(**{fld: codes})


def numbers(
    ctx: Context,
    frame: pd.DataFrame,
    table: str,
    fld: str,
    whole: bool = True,
    low: float | None = None,
    high: float | None = None,
) -> pd.DataFrame:
    """Parse an optional number; unreadable or out-of-range values are flagged, set missing."""
    if fld not in frame:
        return frame
    values, bad = parse_whole_numbers(frame[fld]) if whole else parse_numbers(frame[fld])
    out_of_range = pd.Series(False, index=frame.index)
    if low is not None:
        out_of_range |= (values < low).fillna(False)
    if high is not None:
        out_of_range |= (values > high).fillna(False)
    wrong = bad | out_of_range
    rng = f" (allowed {low:g}-{high:g})" if low is not None and high is not None else ""
    ctx.log.flag(
        frame[wrong],
        table,
        fld,
        "invalid_value",
        lambda r: f"{fld} " + quoted(r[fld]) + f" is not a valid number{rng}; set to missing",
    )
    return frame.assign(**{fld: values.mask(wrong)})


def person_ids(ctx: Context, frame: pd.DataFrame) -> pd.Series:
    """HMAC of the NHS number, else of '<site>:<local id>'; hex study IDs pass through."""
    code = ctx.site.code
    message = pd.Series(pd.NA, index=frame.index, dtype="object")
    given = pd.Series(pd.NA, index=frame.index, dtype="object")
    if "local_id" in frame:
        local = frame["local_id"].mask(blank(frame["local_id"]))
        message = message.fillna(f"{code}:" + local)
    if "person_id" in frame:
        pid = frame["person_id"].mask(blank(frame["person_id"])).str.lower()
        hex_ok = pid.str.fullmatch(r"[0-9a-f]{64}").fillna(False).astype(bool)
        given = pid.where(hex_ok).astype(object)
        other = pid.mask(hex_ok | blank(pid))
        message = message.fillna(f"{code}:" + other)
    if "nhs_number" in frame:
        message = frame["nhs_number"].astype(object).where(frame["nhs_number"].notna(), message)
    hashed = pseudonymise(ctx.key, message.where(given.isna()))
    return given.fillna(hashed)


# --------------------------------------------------------------------------------------------
# Referrals


def referrals_from(ctx: Context, source: Source) -> tuple[pd.DataFrame, pa.Array]:
    """One referrals source, checked row by row; and every referral_id it exported.

    The exported IDs (of rejected rows too) tell an event of a rejected referral from an
    event of a referral that was never exported.
    """
    frame = ctx.read(source)
    exported = large_text(frame["referral_id"])
    return check_referrals(ctx, frame, source), exported


def check_referrals(ctx: Context, frame: pd.DataFrame, source: Source) -> pd.DataFrame:
    """The referral row rules on a raw frame: a referrals export, or the referrals made from
    a coded-event export (cleaning/events.py)."""
    t = "referrals"
    frame = require(ctx, frame, t, ("referral_id", "referral_date"))
    frame = _require_identity(ctx, frame, t)
    frame = event_date(ctx, frame, t, "referral_date", source)
    frame = check_nhs_numbers(ctx, frame, t)
    frame = _age(ctx, frame, source)
    if not ctx.cfg.allow_under_18:
        under = (frame["age_at_referral"] < 18).fillna(False)
        frame = ctx.log.reject(
            frame,
            under,
            t,
            "age_at_referral",
            "under_18",
            lambda r: (
                "aged "
                + r["age_at_referral"].astype(str)
                + " at referral; set allow_under_18: true to include children"
            ),
        )
    for fld in ("referral_source", "sex", "ethnicity", "outcome"):
        frame = labels(ctx, frame, t, fld, source)
    frame = numbers(ctx, frame, t, "imd_decile", low=1, high=10)
    # Area and practice context, before the postcode is dropped (docs/standard.md).
    frame = derive_area(ctx, frame)
    for fld in ("n_contacts", "n_attended", "n_onward_referrals"):
        frame = numbers(ctx, frame, t, fld, low=0, high=10_000)
    for fld in ("discharge_date", "first_contact_date"):
        if fld in frame:
            frame = event_date(ctx, frame, t, fld, source, required=False)
    return frame


def _require_identity(ctx: Context, frame: pd.DataFrame, table: str) -> pd.DataFrame:
    present = [f for f in IDENTITY_FIELDS if f in frame]
    has_id = pd.Series(False, index=frame.index)
    for fld in present:
        has_id |= ~blank(frame[fld])
    return ctx.log.reject(
        frame,
        ~has_id,
        table,
        present[0],
        "missing_required",
        f"no person identifier ({' / '.join(present)} blank)",
    )


def _age(ctx: Context, frame: pd.DataFrame, source: Source) -> pd.DataFrame:
    """age_at_referral, from the date of birth when exported, else from an age column."""
    t = "referrals"
    if "date_of_birth" in frame:
        dob, bad = parse_dates(frame["date_of_birth"], source.date_format)
        age = whole_years_between(dob, frame["referral_date"])
        frame = frame.assign(date_of_birth=dob, age_at_referral=age)
        impossible = (dob < EARLIEST_BIRTH) | (dob > frame["referral_date"]) | (age > MAX_AGE)
        # Dates of birth are identifiers: the log never repeats them.
        frame = ctx.log.reject_in_turn(
            frame,
            [
                (
                    bad,
                    t,
                    "date_of_birth",
                    "unparseable_date",
                    "cannot read date_of_birth (value not logged)",
                ),
                (
                    impossible,
                    t,
                    "date_of_birth",
                    "impossible_date",
                    "date_of_birth after the referral or over 115 years before it "
                    "(value not logged)",
                ),
            ],
        )
    elif "age" in frame:
        frame = numbers(ctx, frame, t, "age", low=0, high=MAX_AGE)
        frame["age_at_referral"] = frame["age"]
    else:
        frame = frame.assign(age_at_referral=pd.Series(pd.NA, index=frame.index, dtype="Int64"))
    return frame


def finish_referrals(ctx: Context, frame: pd.DataFrame) -> pd.DataFrame:
    """Across a site's referrals sources: the first use of a referral_id wins; person IDs."""
    frame = frame.sort_values([FILE, ROW], kind="stable")
    dup_id = frame["referral_id"].duplicated(keep="first")
    if dup_id.any():
        first = frame.drop_duplicates("referral_id").set_index("referral_id")
        first_at = first[FILE].astype(str) + " row " + first[ROW].astype(str)
        frame = ctx.log.reject(
            frame,
            dup_id,
            "referrals",
            "referral_id",
            "duplicate_referral_id",
            lambda r: "referral_id already used by " + r["referral_id"].map(first_at).astype(str),
        )
    frame = frame.assign(person_id=person_ids(ctx, frame))
    return flag_duplicate_cases(ctx, frame)


def reasons(ctx: Context, referrals: pd.DataFrame) -> pd.DataFrame:
    """One row per referral and reason code (a referral's repeated reasons count once)."""
    if "reasons" not in referrals or referrals.empty:
        return pd.DataFrame(columns=["referral_id", "reason"])
    # One row per reason, split and trimmed in Arrow.
    lists = pc.split_pattern(large_text(referrals["reasons"]), REASON_SEP)
    reason = pc.utf8_trim_whitespace(pc.list_flatten(lists))
    present = pc.fill_null(pc.not_equal(reason, ""), False)
    parent = pc.list_parent_indices(lists).filter(present).to_numpy()
    long = referrals[[FILE, ROW, SRC, "referral_id"]].iloc[parent].reset_index(drop=True)
    long["reason_raw"] = as_text(reason.filter(present))
    parts = []
    # Label overrides are per source.
    for src, part in long.groupby(SRC, sort=False):
        overrides = ctx.site.sources[src].values.get("reasons")
        codes, unmapped = map_labels(part["reason_raw"], "reasons", overrides)
        ctx.log.unmapped(
            part[unmapped], part["reason_raw"][unmapped], "referrals", "reasons", codes[unmapped]
        )
        parts.append(part.assign(reason=codes))
    if not parts:
        return pd.DataFrame(columns=["referral_id", "reason"])
    return pd.concat(parts).drop_duplicates(["referral_id", "reason"])


# --------------------------------------------------------------------------------------------
# Contacts and onward referrals


def events_from(ctx: Context, source: Source, date_field: str) -> pd.DataFrame:
    """One contacts or onward referrals source, checked row by row (not yet linked)."""
    t = source.table
    frame = ctx.read(source)
    frame = require(ctx, frame, t, ("referral_id", date_field))
    frame = event_date(ctx, frame, t, date_field, source)
    if t == "contacts":
        frame = labels(ctx, frame, t, "mode", source)
        frame = labels(ctx, frame, t, "attended", source)
        if "attended" in frame:
            frame["attended"] = (
                frame["attended"].map({"true": True, "false": False}).astype("boolean")
            )
        frame = numbers(ctx, frame, t, "duration_min", whole=False, low=0, high=24 * 60)
    else:
        frame = labels(ctx, frame, t, "asset_type", source)
        # An onward referral with no asset type still happened: keep it as `other` and say so.
        if "asset_type" in frame:
            missing = frame["asset_type"].isna()
            ctx.log.flag(
                frame[missing],
                t,
                "asset_type",
                "missing_asset_type",
                "asset_type blank; recorded as other",
            )
            frame.loc[missing, "asset_type"] = "other"
    return frame


def reject_unlinked(
    ctx: Context, frame: pd.DataFrame, unknown: pd.Series, rejected: pd.Series, table: str
) -> pd.DataFrame:
    """Reject rows whose referral_id no referrals export has (``unknown``), then rows whose
    referral was itself rejected (``rejected``), each with its own logged rule."""
    return ctx.log.reject_in_turn(frame, _unlinked(unknown, rejected, table))


def _unlinked(unknown: pd.Series, rejected: pd.Series, table: str) -> list[tuple]:
    """:func:`reject_unlinked`'s rules, for :meth:`CleaningLog.reject_in_turn`."""
    return [
        (
            unknown,
            table,
            "referral_id",
            "unknown_referral",
            lambda r: "referral_id " + quoted(r["referral_id"]) + " is not in any referrals export",
        ),
        (
            rejected,
            table,
            "referral_id",
            "referral_rejected",
            "its referral was rejected (see the referrals rows)",
        ),
    ]


def was_exported(ids: pd.Series, kept: pd.Series, exported: pa.Array) -> pd.Series:
    """Whether each referral ID is among ``exported``: a kept one is, so only the others
    are looked up."""
    known = kept.copy()
    if not kept.all():
        known[~kept] = positions(ids[~kept], exported) >= 0
    return known


def link(
    ctx: Context,
    frame: pd.DataFrame,
    referrals: pd.DataFrame,
    exported: pa.Array,
    date_field: str,
    table: str,
) -> pd.DataFrame:
    """Reject events of unknown or rejected referrals, and events before their referral.

    ``exported`` holds every referral_id the referrals exports had, kept or rejected. Each
    kept event gets its referral's row in ``referrals`` (column :data:`REFERRAL_ROW`).
    """
    position = positions(frame["referral_id"], referrals["referral_id"])
    kept = pd.Series(position >= 0, index=frame.index)
    known = was_exported(frame["referral_id"], kept, exported)
    nat = np.datetime64("NaT", "s")
    ref_dates = referrals["referral_date"].to_numpy(dtype="datetime64[s]")
    ref_date = (
        ref_dates[np.where(kept, position, 0)] if len(ref_dates) else np.full(len(frame), nat)
    )
    frame = frame.assign(
        __referral_date__=np.where(kept, ref_date, nat), **{REFERRAL_ROW: position}
    )
    before = frame[date_field] < frame["__referral_date__"]  # never for an unlinked row
    rules = _unlinked(~known, ~kept, table)
    rules.append(
        (before, table, date_field, "before_referral", f"{date_field} is before the referral date")
    )
    return ctx.log.reject_in_turn(frame, rules).drop(columns="__referral_date__")


# --------------------------------------------------------------------------------------------
# Derived referral fields


def derive(
    ctx: Context,
    referrals: pd.DataFrame,
    contacts: pd.DataFrame | None,
    onward: pd.DataFrame | None,
) -> pd.DataFrame:
    """Contact and onward referral counts, first contact, waiting days and age band.

    ``contacts`` / ``onward`` are the events :func:`link` kept against these ``referrals``,
    or None when the site does not export them: then counts and dates the referrals export
    gives are used as they are.
    """
    r = referrals.copy()
    if contacts is not None:
        _count_contacts(r, contacts)
    else:
        _given_contacts(ctx, r)
    if onward is not None:
        pos = onward[REFERRAL_ROW].to_numpy()
        r["n_onward_referrals"] = pd.array(np.bincount(pos, minlength=len(r)), dtype="Int64")
    elif "n_onward_referrals" not in r:
        r["n_onward_referrals"] = pd.Series(pd.NA, index=r.index, dtype="Int64")
    first_contact = pd.to_datetime(r["first_contact_date"])
    r["days_to_first_contact"] = (first_contact - r["referral_date"]).dt.days.astype("Int64")
    r["age_band"] = age_band(r["age_at_referral"])
    if "discharge_date" in r:
        early = (r["discharge_date"] < r["referral_date"]).fillna(False)
        ctx.log.flag(
            r[early],
            "referrals",
            "discharge_date",
            "before_referral",
            "discharge_date before the referral date; set to missing",
        )
        r["discharge_date"] = r["discharge_date"].mask(early)
    return r


def _count_contacts(r: pd.DataFrame, contacts: pd.DataFrame) -> None:
    """n_contacts, n_attended and first_contact_date of each referral, from its contacts."""
    n = len(r)
    # Every kept contact belongs to a kept referral, whose row link() found.
    pos = contacts[REFERRAL_ROW].to_numpy()
    r["n_contacts"] = pd.array(np.bincount(pos, minlength=n), dtype="Int64")
    if "attended" in contacts:
        attended = contacts["attended"].astype("boolean").fillna(False).to_numpy(bool)
        r["n_attended"] = pd.array(np.bincount(pos[attended], minlength=n), dtype="Int64")
    else:  # the export does not say who attended: count unknown, all contacts count
        attended = np.ones(len(contacts), dtype=bool)
        r["n_attended"] = pd.array([pd.NA] * n, dtype="Int64")
    # First contact = first attended contact (a did-not-attend is not a contact).
    days = contacts["contact_date"].to_numpy(dtype="datetime64[s]").astype(np.int64)
    first = np.full(n, np.iinfo(np.int64).max)
    np.minimum.at(first, pos[attended], days[attended])
    first_date = first.astype("datetime64[s]")
    first_date[first == np.iinfo(np.int64).max] = np.datetime64("NaT")
    r["first_contact_date"] = first_date


def _given_contacts(ctx: Context, r: pd.DataFrame) -> None:
    """Without a contacts export: the referrals export's own counts and first contact date."""
    for fld in ("n_contacts", "n_attended"):
        r[fld] = r[fld] if fld in r else pd.Series(pd.NA, index=r.index, dtype="Int64")
    if "first_contact_date" in r:
        early = r["first_contact_date"] < r["referral_date"]
        ctx.log.flag(
            r[early.fillna(False)],
            "referrals",
            "first_contact_date",
            "before_referral",
            "first_contact_date before the referral date; set to missing",
        )
        r["first_contact_date"] = r["first_contact_date"].mask(early)
    else:
        r["first_contact_date"] = pd.NaT
