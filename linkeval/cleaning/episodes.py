"""People seen more than once: duplicate cases flagged by a documented rule (docs/design.md,
'Cleaning log and row accounting', rule ``duplicate_case``).

A re-referral is a new episode and is kept as it is. A *duplicate case* is a second case
opened for the same person while their first is still new: the same person_id at the same site
with an earlier kept referral dated at most ``DUPLICATE_CASE_DAYS`` days before it (for example
a self-referral opening a second case a week after the GP's referral). The later referral is
flagged, not rejected: whether to merge is the site's call, and both stay in the tables.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from linkeval.cleaning.context import Context
from linkeval.cleaning.log import scrub

DUPLICATE_CASE_DAYS = 28


def flag_duplicate_cases(ctx: Context, frame: pd.DataFrame) -> pd.DataFrame:
    """Flag referrals opened within DUPLICATE_CASE_DAYS of the same person's previous one."""
    if frame.empty or "referral_date" not in frame:
        return frame
    # Each person's referrals by date, people numbered as they come: sorting the pseudonyms
    # themselves (64 characters, a million of them) took most of the time.
    person = pd.factorize(frame["person_id"])[0]
    # In seconds (as dates are parsed): any year fits, where nanoseconds stop at 2262.
    dates = pd.to_datetime(frame["referral_date"]).to_numpy().astype("datetime64[s]")
    undated = np.isnat(dates)
    sec = np.where(undated, np.iinfo(np.int64).max, dates.view(np.int64))  # undated last
    order = np.lexsort((sec, person))  # stable: equal rows keep the frame's order
    person, dates, sec, undated = person[order], dates[order], sec[order], undated[order]
    gap = (sec[1:] - sec[:-1]) // (24 * 3600)  # whole days, as Timedelta.days
    duplicate = (
        (person[1:] == person[:-1])
        & (person[1:] >= 0)  # a missing person_id is no one's
        & ~undated[1:]
        & ~undated[:-1]
        & (gap <= DUPLICATE_CASE_DAYS)
    )
    later, earlier = order[1:][duplicate], order[:-1][duplicate]
    if len(later):
        # Logged by person_id and date, as a sort on them lists them.
        found = pd.DataFrame(
            {
                "person_id": frame["person_id"].to_numpy()[later],
                "date": dates[1:][duplicate],
                "row": later,
                "previous": frame["referral_id"].to_numpy()[earlier],
                "days": gap[duplicate],
            }
        ).sort_values(["person_id", "date", "row"], kind="stable")
        rows = frame.iloc[found["row"].to_numpy()]
        prev = scrub(pd.Series(found["previous"].to_numpy(), index=rows.index))
        days = pd.Series(found["days"].to_numpy(), index=rows.index).astype(str)
        ctx.log.flag(
            rows,
            "referrals",
            "referral_id",
            "duplicate_case",
            "same person as referral "
            + prev  # an ID may be an NHS number: scrubbed, not quoted raw
            + ", opened "
            + days
            + f" days earlier (within {DUPLICATE_CASE_DAYS}); possible duplicate case",
        )
    return frame
