"""Defects injected into the raw exports at documented rates, as real exports have them.

Every defect is recorded: a rejected row carries the rule the cleaner should reject it by
(``_rule``) and a kept-but-flagged row carries ``_flag``, so the ground truth can say what should
happen to every raw row. Rows are chosen from the site's random stream, in a fixed order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from linkeval.synthetic.population import valid_nhs_numbers, whole_years
from linkeval.synthetic.styles import QuestionnaireStyle, SiteStyle
from linkeval.synthetic.writers import date_text

# Rates are per clean row of the table named; injected rows are extra rows. Each referral
# defect is drawn from the rows no earlier defect took, at its rate of those rows.
DEFECT_RATES: dict[str, dict[str, float]] = {
    "referrals": {
        "duplicate_row": 0.02,  # extra exact copy directly after the original
        "missing_required": 0.005,  # referral date blank
        "unparseable_date": 0.005,  # 31 February
        "impossible_date": 0.003,  # 01/01/1900 placeholder date
        "future_date": 0.004,  # year typed 40 years ahead
        "invalid_nhs_number": 0.01,  # check digit wrong (NHS-number sites only)
        "placeholder_nhs_number": 0.004,  # 0000000000, 9999999999 or 1111111111
        "under_18": 0.01,  # aged 14-17 at referral
        "unmapped_source": 0.02,  # flagged, kept as `other`
        "unmapped_reason": 0.01,  # flagged, kept as `other`
    },
    "contacts": {
        "duplicate_row": 0.01,
        "unknown_referral": 0.005,
        "before_referral": 0.005,
        "unparseable_date": 0.002,
        "missing_required": 0.002,
        "unmapped_mode": 0.01,
    },
    "onward_referrals": {
        "duplicate_row": 0.01,
        "unknown_referral": 0.01,
        "before_referral": 0.005,
        "unmapped_asset": 0.02,
    },
}

# Labels nobody mapped, written instead of a site label: flagged, and `other` when clean.
UNMAPPED = {
    "referral_source": ["Lunch club organiser", "Church group", "Dentist", "Optician"],
    "reason": ["Pet care", "Transport", "Digital skills"],
    "mode": ["Doorstep chat", "Walk and talk"],
    "asset_type": ["Men's Shed", "Repair cafe", "Faith group"],
}

QUESTIONNAIRE_DEFECTS = {
    "duplicate_row": 0.01,
    "missing_required": 0.005,  # no referral ID / person identifier
    "unknown_referral": 0.005,
    "missing_timepoint": 0.005,  # label nobody mapped ("T9")
    "missing_item": 0.03,  # one SWEMWBS item blank -> not scored (G: a local item)
    "out_of_range_item": 0.01,  # a UCLA-3 answer of 7 -> flagged, not scored (G: local)
    "followup_before_baseline": 0.01,
}

# Referral defects that make the cleaner reject the row, in the order rows are drawn for them.
REJECTING = (
    "missing_required",
    "unparseable_date",
    "impossible_date",
    "future_date",
    "invalid_nhs_number",
    "placeholder_nhs_number",
    "under_18",
)
PLACEHOLDER_NHS_NUMBERS = np.array(["0000000000", "9999999999", "1111111111"], dtype=object)


def take(pool: np.ndarray, rate: float) -> tuple[np.ndarray, np.ndarray]:
    """The first ``round(rate * len(pool))`` of a shuffled pool, and the rest."""
    k = int(round(rate * len(pool)))
    return pool[:k], pool[k:]


def unmapped_labels(rng: np.random.Generator, field: str, k: int) -> np.ndarray:
    """``k`` labels for ``field`` that no config or built-in synonym maps."""
    options = np.array(UNMAPPED[field], dtype=object)
    return options[rng.integers(0, len(options), k)]


# --------------------------------------------------------------------------------------------
# Referrals


@dataclass
class ReferralDefects:
    """Which referrals get which defect (no referral gets two)."""

    rows: dict[str, np.ndarray]  # defect -> positions of the referrals given it
    rule: np.ndarray  # per referral: the rule the cleaner should reject it by, or None


def choose_referral_defects(rng: np.random.Generator, style: SiteStyle, n: int) -> ReferralDefects:
    """Disjoint random referrals for each defect; NHS-number defects only where there are any."""
    rates = DEFECT_RATES["referrals"]
    rule = np.full(n, None, dtype=object)
    rows: dict[str, np.ndarray] = {}
    pool = rng.permutation(n)
    for name in REJECTING:
        if name.endswith("nhs_number") and style.identity != "nhs":
            rows[name] = np.array([], dtype=int)
            continue
        rows[name], pool = take(pool, rates[name])
        rule[rows[name]] = name
    for name in ("unmapped_source", "unmapped_reason"):  # flagged, not rejected
        rows[name], pool = take(pool, rates[name])
    return ReferralDefects(rows=rows, rule=rule)


def make_under_18(rng: np.random.Generator, ref: pd.DataFrame, rows: np.ndarray) -> None:
    """Move these referrals' dates of birth so the people are 14-17 at referral."""
    young = rng.integers(14, 18, len(rows))
    at = ref.index[rows]
    ref.loc[at, "date_of_birth"] = (
        (ref["referral_date"].iloc[rows] - pd.to_timedelta(young * 365.25 + 100, unit="D"))
        .dt.normalize()
        .to_numpy()
    )
    ref.loc[at, "age_at_referral"] = whole_years(
        ref["date_of_birth"].iloc[rows], ref["referral_date"].iloc[rows]
    ).to_numpy()


def spoil_referral_dates(
    text: np.ndarray, dates: pd.Series, rows: dict[str, np.ndarray], fmt: str
) -> np.ndarray:
    """Referral dates (as text in ``fmt``) blank, 31 February, 1900 or 40 years ahead."""
    text[rows["missing_required"]] = ""
    text[rows["unparseable_date"]] = pd.Timestamp("2024-02-01").strftime(fmt).replace("01", "31", 1)
    text[rows["impossible_date"]] = pd.Timestamp("1900-01-01").strftime(fmt)
    future = rows["future_date"]
    text[future] = date_text(dates.iloc[future] + pd.DateOffset(years=40), fmt)
    return text


def spoil_nhs_numbers(
    rng: np.random.Generator, numbers: np.ndarray, rows: dict[str, np.ndarray]
) -> np.ndarray:
    """NHS numbers with a wrong check digit or a placeholder in place of the number."""
    numbers = numbers.copy()
    bad = rows["invalid_nhs_number"]
    # Shift the check digit by 1-8: always a different digit, so always invalid.
    numbers[bad] = [s[:9] + str((int(s[9]) + 1 + k % 8) % 10) for k, s in enumerate(numbers[bad])]
    placeholder = rows["placeholder_nhs_number"]
    numbers[placeholder] = PLACEHOLDER_NHS_NUMBERS[rng.integers(0, 3, len(placeholder))]
    return numbers


def duplicate_referrals(rng: np.random.Generator, raw: pd.DataFrame) -> pd.DataFrame:
    """Exact copies of some kept referral rows, each directly after its original.

    ``raw`` has ``_rule`` (None for rows the cleaner keeps) and ``_pos`` (export order).
    """
    clean_rows = np.flatnonzero(pd.isna(raw["_rule"].to_numpy()))
    k = int(round(DEFECT_RATES["referrals"]["duplicate_row"] * len(raw)))
    copies = _copies_after(raw, np.sort(rng.choice(clean_rows, size=k, replace=False)))
    return pd.concat([raw, copies]).sort_values("_pos", kind="stable").reset_index(drop=True)


def _copies_after(raw: pd.DataFrame, rows: np.ndarray) -> pd.DataFrame:
    copies = raw.iloc[rows].copy()
    copies["_pos"] += 0.5
    copies["_rule"] = "duplicate_row"
    return copies


# --------------------------------------------------------------------------------------------
# Contacts and onward referrals


def unmapped_events(
    rng: np.random.Generator, raw: pd.DataFrame, events: pd.DataFrame, field: str, rate: float
) -> None:
    """Replace some labels of ``field`` by unmapped ones: flagged in ``raw``, other in ``events``."""
    rows, _ = take(rng.permutation(len(events)), rate)
    labels = raw[field].to_numpy(dtype=object, copy=True)  # an empty column is a read-only view
    labels[rows] = unmapped_labels(rng, field, len(rows))
    raw[field] = labels
    events.loc[rows, field] = "other"
    raw["_flag"] = False
    raw.loc[rows, "_flag"] = True


def inject_event_rows(
    rng: np.random.Generator,
    raw: pd.DataFrame,
    clean_refs: pd.DataFrame,
    table: str,
    date_col: str,
    style: SiteStyle,
) -> pd.DataFrame:
    """Contacts or onward referrals with injected rows the cleaner must reject.

    Duplicates follow their original; rows for an unknown referral, dated before their
    (kept) referral or with a bad date land anywhere. ``raw`` has ``_rule``, ``_flag``, ``_pos``.
    """
    rates = DEFECT_RATES[table]
    n = len(raw)
    k = lambda rule: int(round(rates.get(rule, 0) * max(n, 1)))  # noqa: E731
    extra = []
    ok_rows = np.flatnonzero(raw["_rule"].isna().to_numpy() & ~raw["_flag"].to_numpy())
    if len(ok_rows):
        dups = rng.choice(ok_rows, size=min(k("duplicate_row"), len(ok_rows)), replace=False)
        extra.append(_copies_after(raw, np.sort(dups)))
    if len(clean_refs):
        plain = np.flatnonzero(~raw["_flag"].to_numpy()) if n else np.array([], dtype=int)
        u = _copies_anywhere(rng, raw, plain, "unknown_referral", k("unknown_referral"))
        u["referral_id"] = [f"{style.id_prefix}9{i:05d}X" for i in range(len(u))]
        extra.append(u)
        b = _copies_anywhere(rng, raw, plain, "before_referral", k("before_referral"))
        pick = clean_refs.sample(len(b), random_state=int(rng.integers(2**31)), replace=True)
        b["referral_id"] = pick["referral_id"].to_numpy()
        b[date_col] = date_text(
            pick["referral_date"] - pd.to_timedelta(rng.integers(3, 60, len(b)), unit="D"),
            style.date_format,
        )
        extra.append(b)
        for rule, bad_date in (("unparseable_date", "99/99/9999"), ("missing_required", "")):
            if rule in rates:
                bad = _copies_anywhere(rng, raw, plain, rule, k(rule))
                bad[date_col] = bad_date
                extra.append(bad)
    return pd.concat([raw, *extra]).sort_values("_pos", kind="stable").reset_index(drop=True)


def _copies_anywhere(
    rng: np.random.Generator, raw: pd.DataFrame, plain: np.ndarray, rule: str, count: int
) -> pd.DataFrame:
    """``count`` copies of random unflagged rows, to be altered, placed at random positions."""
    base = raw.iloc[rng.choice(plain, count)].copy() if len(plain) else raw.head(0)
    base["_pos"] = rng.uniform(0, max(len(raw), 1), count)
    base["_rule"] = rule
    base["_flag"] = False
    return base


# --------------------------------------------------------------------------------------------
# Questionnaires


def spoil_answers(
    rng: np.random.Generator, rows: pd.DataFrame, has_timepoint: bool
) -> pd.DataFrame:
    """Forms with a blank SWEMWBS item, an out-of-range UCLA-3 answer or a misdated follow-up.

    Adds ``_rule`` (all None: these rows are kept, though some cannot be scored) and ``_flag``
    (an out-of-range answer).
    """
    rates = QUESTIONNAIRE_DEFECTS
    rows["_rule"] = None
    rows["_flag"] = False
    item_cols = [c for c in rows.columns if ":" in c]
    # Sites without a timepoint column have it read by date, so no form can be mislabelled.
    early = _early_followups(rng, rows) if has_timepoint else []
    rows = pd.concat([rows, *early], ignore_index=True)
    n = len(rows)
    pool = rng.permutation(n)
    k_missing, k_out = int(rates["missing_item"] * n), int(rates["out_of_range_item"] * n)
    missing_item, out_range = pool[:k_missing], pool[k_missing : k_missing + k_out]
    values = rows[item_cols].astype(object).to_numpy()
    # A blank SWEMWBS item and an out-of-range UCLA-3 answer; at a site collecting neither
    # (G), both in its local instrument (prorated when one item is missing).
    present = {c.split(":")[0] for c in item_cols}
    blanked = "swemwbs" if "swemwbs" in present else "connect"
    spoiled = "ucla3" if "ucla3" in present else "connect"
    sw = [j for j, c in enumerate(item_cols) if c.startswith(f"{blanked}:")]
    uc = [j for j, c in enumerate(item_cols) if c.startswith(f"{spoiled}:")]
    values[missing_item, rng.choice(sw, len(missing_item))] = ""
    values[out_range, rng.choice(uc, len(out_range))] = 7
    rows[item_cols] = values
    rows.loc[out_range, "_flag"] = True
    return rows


def _early_followups(rng: np.random.Generator, rows: pd.DataFrame) -> list[pd.DataFrame]:
    """Copies of some baseline forms labelled follow-up and dated before the baseline."""
    base = rows[rows["timepoint"] == "baseline"]
    if not len(base):
        return []
    k = int(round(QUESTIONNAIRE_DEFECTS["followup_before_baseline"] * len(base)))
    early = base.sample(k, random_state=int(rng.integers(2**31))).copy()
    early["timepoint"] = "followup"
    early["completed_date"] = early["completed_date"] - pd.to_timedelta(
        rng.integers(20, 60, k), unit="D"
    )
    return [early]


def inject_questionnaire_rows(
    rng: np.random.Generator,
    out: pd.DataFrame,
    style: QuestionnaireStyle,
    site: SiteStyle,
    site_index: int,
) -> pd.DataFrame:
    """Exported forms plus duplicates and forms with no, an unknown or an unmapped identifier.

    ``out`` is the export (see writers.questionnaire_table), with ``_rule``, ``_flag`` and
    ``_key`` (its order); the result is in export order. ``site_index`` is the site's position
    in the study (its block of NHS numbers, population.valid_nhs_numbers).
    """
    n = len(out)
    k = lambda rule: int(round(QUESTIONNAIRE_DEFECTS[rule] * n))  # noqa: E731
    clean = np.flatnonzero(~out["_flag"].to_numpy())
    dup = out.iloc[rng.choice(clean, k("duplicate_row"), replace=False)].copy()
    dup["_rule"], dup["_key"] = "duplicate_row", dup["_key"] + 0.5
    injected = [dup]
    m = out.iloc[rng.choice(clean, k("missing_required"))].copy()
    m[style.id_header], m["_rule"] = "", "missing_required"
    m["_key"] = rng.uniform(0, n, len(m))
    injected.append(m)
    u = out.iloc[rng.choice(clean, k("unknown_referral"))].copy()
    u[style.id_header], u["_rule"] = _unknown_ids(rng, style, site.id_prefix, site_index, len(u))
    u["_key"] = rng.uniform(0, n, len(u))
    injected.append(u)
    if style.timepoint_header:
        t = out.iloc[rng.choice(clean, k("missing_timepoint"))].copy()
        t[style.timepoint_header], t["_rule"] = "T9", "missing_timepoint"
        t["_key"] = rng.uniform(0, n, len(t))
        injected.append(t)
    for frame in injected:
        frame["_flag"] = False
    return pd.concat([out, *injected]).sort_values("_key", kind="stable").reset_index(drop=True)


def _unknown_ids(
    rng: np.random.Generator, style: QuestionnaireStyle, prefix: str, site_index: int, k: int
) -> tuple[list[str] | np.ndarray, str]:
    """Identifiers that match no referral, and the rule that rejects them.

    A referral ID matching nothing is an unknown referral; a person identifier matching nobody
    is a form with no referral to link it to.
    """
    if style.link == "referral_id":
        return [f"{prefix}8{i:05d}Q" for i in range(k)], "unknown_referral"
    if style.link == "local_id":
        return [f"CC-9{i:05d}" for i in range(k)], "no_referral"
    # A block no person at this site is drawn from: 9 - position never equals the position
    # (mod 10, as valid_nhs_numbers takes it).
    return valid_nhs_numbers(rng, k, 9 - site_index % 10), "no_referral"
