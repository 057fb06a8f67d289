"""Cleaning one site end to end: referrals, then the events and questionnaires that hang off them.

Referrals come first because every other table is linked to them: an event or questionnaire
of a rejected referral is rejected too. The result holds the site's canonical tables (without
the study-wide change indicators, which clean_study adds once all sites are in).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
import pyarrow as pa

from linkeval import schema
from linkeval.cleaning import routine
from linkeval.cleaning.context import Context
from linkeval.cleaning.log import FILE, ROW, CleaningLog
from linkeval.cleaning.lookup import known_ids
from linkeval.cleaning.questionnaires import clean_questionnaires
from linkeval.config import TABLES, Source, StudyConfig
from linkeval.vocab import BLANK_CODE


@dataclass
class CleanResult:
    """Canonical tables for the cleaned sites, the cleaning log and the row accounting."""

    tables: dict[str, pd.DataFrame]
    log: pd.DataFrame
    summary: pd.DataFrame
    unmapped: pd.DataFrame
    files: pd.DataFrame = field(default_factory=pd.DataFrame)


def clean_site(cfg: StudyConfig, code: str, key: bytes, today: pd.Timestamp) -> CleanResult:
    """One site's canonical tables, cleaning log, row accounting and files read."""
    site = cfg.site(code)
    code = site.code
    ctx = Context(cfg=cfg, site=site, key=key, today=today, log=CleaningLog(code))
    sources = {t: [s for s in site.sources if s.table == t] for t in TABLES}

    referrals, exported = _referrals(ctx, sources["referrals"])
    reasons = routine.reasons(ctx, referrals)
    contacts = _events(ctx, sources["contacts"], "contact_date", referrals, exported)
    onward = _events(ctx, sources["onward_referrals"], "onward_date", referrals, exported)
    # Counts and first contact come from the events when the site exports them.
    referrals = routine.derive(ctx, referrals, contacts if sources["contacts"] else None,
                               onward if sources["onward_referrals"] else None)
    responses, scores, pairs, n_completions = clean_questionnaires(
        ctx, sources["questionnaires"], referrals, exported)

    n_kept = {"referrals": len(referrals), "contacts": len(contacts),
              "onward_referrals": len(onward), "questionnaires": n_completions}
    tables = {
        "responses": _select(responses, "responses", code),
        "scores": _select(scores, "scores", code),
        "pairs": _select(pairs, "pairs", code),
        "referrals": _select(referrals, "referrals", code),
        "referral_reasons": _select(reasons, "referral_reasons", code),
        "contacts": _select(contacts, "contacts", code),
        "onward_referrals": _select(onward, "onward_referrals", code),
    }
    log = ctx.log.rows()
    # The accounting covers the tables this site exports.
    kept = {t: n for t, n in n_kept.items() if sources[t]}
    return CleanResult(tables=tables, log=log, summary=ctx.log.summary(log, kept),
                       unmapped=ctx.log.unmapped_counts(), files=ctx.log.files())


def _referrals(ctx: Context, sources: list[Source]) -> tuple[pd.DataFrame, pa.Array]:
    """The site's kept referrals, and every referral_id its exports had."""
    frames, exported = [], []
    for source in sources:
        frame, ids = routine.referrals_from(ctx, source)
        frames.append(frame)
        exported.append(ids)
    return routine.finish_referrals(ctx, _concat_raw(frames)), known_ids(exported)


def _events(ctx: Context, sources: list[Source], date_field: str, referrals: pd.DataFrame,
            exported: pa.Array) -> pd.DataFrame:
    """A site's kept contacts (or onward referrals), each linked to a kept referral."""
    events = _concat_raw([routine.events_from(ctx, s, date_field) for s in sources])
    if not sources:
        return events
    return routine.link(ctx, events, referrals, exported, date_field, sources[0].table)


def _concat_raw(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Raw frames of several sources as one (an empty one with the linking columns if none)."""
    if not frames:
        return pd.DataFrame({FILE: pd.Series(dtype=str), ROW: pd.Series(dtype="int64"),
                             "referral_id": pd.Series(dtype=str)})
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def _select(frame: pd.DataFrame, table: str, site: str) -> pd.DataFrame:
    """Keep only the canonical columns (identifiers and raw columns are dropped here)."""
    columns = list(schema.SCHEMAS[table].columns)
    out = pd.DataFrame(index=frame.index)
    for col in columns:
        if col == "site":
            out[col] = site
        elif col in frame:
            out[col] = frame[col]
        else:  # not exported by this site: `unknown` where the vocabulary has it
            out[col] = BLANK_CODE.get(col, pd.NA)
    return schema.validate(table, out.reset_index(drop=True))
