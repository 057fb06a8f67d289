"""Cleaning one site end to end: referrals, then the events and questionnaires that hang off them.

Referrals come first because every other table is linked to them: an event or questionnaire
of a rejected referral is rejected too. The result holds the site's canonical tables (without
the study-wide change indicators, which clean_study adds once all sites are in).
"""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from linkeval import schema
from linkeval.cleaning import events, routine
from linkeval.cleaning.context import Context
from linkeval.cleaning.log import FILE, ROW, SCRUB, CleaningLog
from linkeval.cleaning.lookup import known_ids, large_text
from linkeval.cleaning.questionnaires import clean_questionnaires
from linkeval.config import TABLES, Source, StudyConfig
from linkeval.io import store_order
from linkeval.pseudonymise import nhs_number_status, normalise_nhs_number, pseudonymise
from linkeval.stats.pairing import alpha_sums
from linkeval.vocab import BLANK_CODE

# What makes a local ID identifying: an NHS number, or (in it) a date, a postcode, an e-mail
# address or a run of 10 or more digits (a phone number). Such IDs are pseudonymised.
IDENTIFIER_LIKE = [
    pattern for pattern, placeholder in SCRUB if placeholder in ("[email]", "[date]", "[postcode]")
]
LONG_NUMBER = r"\d(?:[ \-.]?\d){9,}"
# What an ID must contain to match any of those (an NHS number and a long number have 10
# digits; the dates, a digit beside a separator or a month's name; a postcode, a letter and a
# digit, then a digit and two letters; an e-mail address, an @), in Arrow's regular
# expressions, which run over a column at once (Python's, one ID at a time, check only the
# few IDs that match). Digits and letters as Python's \d and (?i)[A-Z] match them: any
# Unicode digit, and the Latin letters with their case variants (dotted and dotless i too).
# Ten digits anywhere is one more alternative of the same expression: one pass over the IDs
# (counting digits with a second expression took twenty times as long).
MAYBE_IDENTIFIER = (
    r"(?s)@|\p{Nd}[/.\-]|(?i:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)"
    r"|(?i:[a-z\x{130}\x{131}]\p{Nd}.*\p{Nd}[a-z\x{130}\x{131}]{2})"
    r"|(?:\p{Nd}\P{Nd}*){10}"
)


@dataclass
class CleanResult:
    """Canonical tables for the cleaned sites, the cleaning log and the row accounting."""

    # Table name -> table; clean_study's holds each as its sites' parts until asked for
    # (study.StudyTables), a site's is a dict.
    tables: MutableMapping[str, pd.DataFrame]
    log: pd.DataFrame
    summary: pd.DataFrame
    unmapped: pd.DataFrame
    files: pd.DataFrame = field(default_factory=pd.DataFrame)
    failed: dict[str, str] = field(default_factory=dict)  # site -> why it was not cleaned
    key_fingerprint: str = ""  # of the key the person_ids were made with (for the manifest)
    kept_previous: list[str] = field(default_factory=list)  # failed sites' old rows kept
    # The baseline responses' sums for Cronbach's alpha (stats.pairing.alpha_sums), so that
    # the study's reliabilities are added up from the sites', not recomputed from every row.
    alpha_sums: pd.DataFrame = field(default_factory=pd.DataFrame)


def clean_site(cfg: StudyConfig, code: str, key: bytes, today: pd.Timestamp) -> CleanResult:
    """One site's canonical tables, cleaning log, row accounting and files read."""
    site = cfg.site(code)
    code = site.code
    ctx = Context(cfg=cfg, site=site, key=key, today=today, log=CleaningLog(code))
    sources = {t: [s for s in site.sources if s.table == t] for t in TABLES}

    referrals, exported, merged = _referrals(ctx, sources["referrals"], sources["coded_events"])
    reasons = routine.reasons(ctx, referrals)
    contacts = _events(ctx, sources["contacts"], "contact_date", referrals, exported)
    onward = _events(ctx, sources["onward_referrals"], "onward_date", referrals, exported)
    # Counts and first contact come from the events when the site exports them.
    referrals = routine.derive(
        ctx,
        referrals,
        contacts if sources["contacts"] else None,
        onward if sources["onward_referrals"] else None,
    )
    responses, cleaners_order, scores, pairs, n_completions = clean_questionnaires(
        ctx, sources["questionnaires"], referrals, exported
    )

    n_kept = {
        "referrals": len(referrals),
        "coded_events": events.settle(ctx, merged, referrals),
        "contacts": len(contacts),
        "onward_referrals": len(onward),
        "questionnaires": n_completions,
    }
    ids = _identifier_like_ids(ctx, referrals)
    responses = _select(responses, "responses", code, ids)
    # Where a completion answers an item twice, the first answer in the cleaner's order
    # counts (the rows are in the store's order).
    sums = alpha_sums(responses, first=cleaners_order)
    # The questionnaire tables in the store's row order here, in the site's worker: the
    # study's writer then has nothing to sort, and checks only where sites meet
    # (io.InStoreOrder). The responses are made in that order (unless identifying referral
    # IDs were just replaced by their pseudonyms); store_order checks it.
    tables = {
        "responses": store_order(responses),
        "scores": store_order(_select(scores, "scores", code, ids)),
        "pairs": store_order(_select(pairs, "pairs", code, ids)),
        "referrals": _select(referrals, "referrals", code, ids),
        "referral_reasons": _select(reasons, "referral_reasons", code, ids),
        "contacts": _select(contacts, "contacts", code, ids),
        "onward_referrals": _select(onward, "onward_referrals", code, ids),
    }
    log = ctx.log.rows()
    # The accounting covers the tables this site exports.
    kept = {t: n for t, n in n_kept.items() if sources[t]}
    return CleanResult(
        tables=tables,
        log=log,
        summary=ctx.log.summary(log, kept),
        unmapped=ctx.log.unmapped_counts(),
        files=ctx.log.files(),
        alpha_sums=sums,
    )


def _referrals(
    ctx: Context, sources: list[Source], event_sources: list[Source]
) -> tuple[pd.DataFrame, pa.Array, pd.DataFrame]:
    """The site's kept referrals, every referral_id its exports had (or that its coded events
    made), and the coded events merged into a referral (cleaning/events.py)."""
    frames, exported, merged = [], [], []
    for source in sources:
        frame, ids = routine.referrals_from(ctx, source)
        frames.append(frame)
        exported.append(ids)
    for source in event_sources:
        frame, ids, into = events.referrals_from_events(ctx, source)
        frames.append(routine.check_referrals(ctx, frame, source))
        exported.append(ids)
        merged.append(into)
    merged = pd.concat(merged, ignore_index=True) if merged else pd.DataFrame()
    return (routine.finish_referrals(ctx, _concat_raw(frames)), known_ids(exported), merged)


def _events(
    ctx: Context,
    sources: list[Source],
    date_field: str,
    referrals: pd.DataFrame,
    exported: pa.Array,
) -> pd.DataFrame:
    """A site's kept contacts (or onward referrals), each linked to a kept referral."""
    events = _concat_raw([routine.events_from(ctx, s, date_field) for s in sources])
    if not sources:
        return events
    return routine.link(ctx, events, referrals, exported, date_field, sources[0].table)


def _concat_raw(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Raw frames of several sources as one (an empty one with the linking columns if none)."""
    if not frames:
        return pd.DataFrame(
            {
                FILE: pd.Series(dtype=str),
                ROW: pd.Series(dtype="int64"),
                "referral_id": pd.Series(dtype=str),
            }
        )
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def _identifier_like_ids(ctx: Context, referrals: pd.DataFrame) -> dict[str, str]:
    """Kept referral IDs that could identify someone, each with its keyed pseudonym.

    A site that uses NHS numbers (or dates of birth, phone numbers, ...) as referral IDs would
    otherwise copy them into every table. The referrals rows are flagged.
    """
    if referrals.empty:
        return {}
    ids = referrals["referral_id"]
    like = _identifier_like(ids)
    if not like.any():
        return {}
    ctx.log.flag(
        referrals[like],
        "referrals",
        "referral_id",
        "identifier_like_id",
        "referral_id looks like an NHS number, date, postcode, phone number or e-mail "
        "address; replaced by a keyed pseudonym in every table",
    )
    unique = pd.Series(ids[like].astype(object).unique(), dtype=object)
    hashed = pseudonymise(ctx.key, "referral_id:" + ctx.site.code + ":" + unique)
    return dict(zip(unique, "id-" + hashed.str.slice(0, 20), strict=True))


def _identifier_like(ids: pd.Series) -> pd.Series:
    """Whether each ID (text) looks like an NHS number, date, postcode, phone number or
    e-mail address; the patterns run only on IDs with :data:`MAYBE_IDENTIFIER`'s parts."""
    maybe = pc.match_substring_regex(large_text(ids), MAYBE_IDENTIFIER)
    like = pd.Series(False, index=ids.index)
    rows = np.flatnonzero(pc.fill_null(maybe, False).to_numpy(zero_copy_only=False))
    if not len(rows):
        return like
    some = ids.iloc[rows].astype(object)  # Python's patterns, on Python's strings
    found = nhs_number_status(normalise_nhs_number(some)) == "valid"
    for pattern in [LONG_NUMBER, *IDENTIFIER_LIKE]:
        found |= some.str.contains(pattern, regex=True).fillna(False).astype(bool)
    like.iloc[rows] = found.to_numpy()
    return like


def _select(
    frame: pd.DataFrame, table: str, site: str, ids: dict[str, str] | None = None
) -> pd.DataFrame:
    """Keep only the canonical columns (identifiers and raw columns are dropped here);
    identifying referral IDs (``ids``) are replaced by their pseudonyms."""
    columns = list(schema.SCHEMAS[table].columns)
    text = schema.text_columns(table)
    out = pd.DataFrame(index=frame.index)
    for col in columns:
        if col == "site" and col in text:  # one value: codes, not a million references to it
            out[col] = pd.Categorical.from_codes(np.zeros(len(out), dtype=np.int8), [site])
        elif col == "site":
            out[col] = site
        elif col == "referral_id" and ids and col in frame:
            values = frame[col].astype(object)
            out[col] = values.where(~values.isin(list(ids)), values.map(ids))
        elif col in frame:
            out[col] = frame[col]
        else:  # not exported by this site: `unknown` where the vocabulary has it
            out[col] = BLANK_CODE.get(col, pd.NA)
    return schema.validate(table, out.reset_index(drop=True))
