"""People seen more than once: duplicate cases flagged by a documented rule (docs/design.md,
'Cleaning log and row accounting', rule ``duplicate_case``).

A re-referral is a new episode and is kept as it is. A *duplicate case* is a second case
opened for the same person while their first is still new: the same person_id at the same site
with an earlier kept referral dated at most ``DUPLICATE_CASE_DAYS`` days before it (for example
a self-referral opening a second case a week after the GP's referral). The later referral is
flagged, not rejected: whether to merge is the site's call, and both stay in the tables.
"""

from __future__ import annotations

import pandas as pd

from linkeval.cleaning.context import Context
from linkeval.cleaning.log import scrub

DUPLICATE_CASE_DAYS = 28


def flag_duplicate_cases(ctx: Context, frame: pd.DataFrame) -> pd.DataFrame:
    """Flag referrals opened within DUPLICATE_CASE_DAYS of the same person's previous one."""
    if frame.empty or "referral_date" not in frame:
        return frame
    # Only the three columns the rule reads are sorted, not the whole frame.
    order = (
        frame[["person_id", "referral_date", "referral_id"]]
        .reset_index(drop=True)
        .sort_values(["person_id", "referral_date"], kind="stable")
    )
    dates = pd.to_datetime(order["referral_date"])
    same_person = order["person_id"].eq(order["person_id"].shift())
    gap = (dates - dates.shift()).dt.days
    duplicate = same_person & (gap <= DUPLICATE_CASE_DAYS).fillna(False)
    previous = order["referral_id"].shift()
    rows = frame.iloc[order.index[duplicate.to_numpy(dtype=bool)]]
    if len(rows):
        prev = scrub(previous[duplicate])  # an ID may be an NHS number: not quoted raw
        days = gap[duplicate].astype(int).astype(str)
        ctx.log.flag(
            rows,
            "referrals",
            "referral_id",
            "duplicate_case",
            "same person as referral "
            + prev
            + ", opened "
            + days
            + f" days earlier (within {DUPLICATE_CASE_DAYS}); possible duplicate case",
        )
    return frame
