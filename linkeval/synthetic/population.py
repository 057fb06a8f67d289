"""The made-up people and their routine data: referrals, reasons, contacts, onward referrals.

Shape (all per site, from published descriptions of NHS link-worker caseloads): two years of
referrals rising over time; about 55% from GPs; loneliness, mental wellbeing and money the
commonest reasons; an older, more deprived population than the practice list; 0-12 contacts per
referral with about 14% did-not-attend; onward referrals to community assets for most people
who engage.

The people are made up: NHS numbers start with 9 (outside the ranges issued to patients in
England). Everything here is clean and canonical; the site's labels, file shapes and defects are
added when it is exported.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from linkeval.synthetic.styles import SiteStyle

START = pd.Timestamp("2023-01-01")
DAYS = 730

# code -> probability (population-level shape of a link-worker caseload)
P_SOURCE = {
    "gp": 0.55,
    "practice_nurse": 0.08,
    "other_practice_staff": 0.10,
    "self": 0.08,
    "social_care": 0.04,
    "vcse": 0.06,
    "secondary_care": 0.02,
    "pharmacy": 0.01,
    "mental_health": 0.03,
    "housing": 0.02,
    "other": 0.01,
}
P_REASON = {
    "loneliness_isolation": 0.42,
    "mental_wellbeing": 0.45,
    "physical_activity": 0.14,
    "long_term_condition": 0.16,
    "finance_debt_benefits": 0.27,
    "housing": 0.10,
    "employment_education": 0.05,
    "bereavement": 0.08,
    "carer_support": 0.06,
    "substance_use": 0.02,
    "food_insecurity": 0.05,
    "domestic_abuse": 0.01,
    "other": 0.04,
}
P_SEX = {"female": 0.60, "male": 0.385, "other": 0.005, "unknown": 0.01}
P_ETHNICITY = {
    "white": 0.82,
    "asian": 0.08,
    "black": 0.04,
    "mixed": 0.02,
    "other": 0.01,
    "unknown": 0.03,
}
P_OUTCOME = {
    "completed": 0.55,
    "ongoing": 0.10,
    "declined": 0.12,
    "not_contactable": 0.12,
    "inappropriate": 0.06,
    "other": 0.05,
}
P_MODE = {
    "face_to_face": 0.45,
    "telephone": 0.35,
    "video": 0.05,
    "home_visit": 0.08,
    "group": 0.05,
    "message": 0.02,
}
P_ASSET = {
    "physical_activity": 0.12,
    "arts_culture": 0.08,
    "social_groups_befriending": 0.22,
    "advice_finance_benefits": 0.16,
    "housing_support": 0.05,
    "mental_health_support": 0.12,
    "employment_education_volunteering": 0.06,
    "food_support": 0.05,
    "carer_support": 0.03,
    "nature_green": 0.05,
    "health_services": 0.04,
    "other": 0.02,
}
# Outcomes of people who engage with the link worker (the rest rarely have contacts).
ENGAGED_OUTCOMES = ["completed", "ongoing", "other"]


def draw(rng: np.random.Generator, probs: dict[str, float], n: int) -> np.ndarray:
    """``n`` codes drawn independently with the given probabilities."""
    codes = np.array(list(probs))
    p = np.array(list(probs.values()), dtype=float)
    return codes[rng.choice(len(codes), size=n, p=p / p.sum())]


def valid_nhs_numbers(rng: np.random.Generator, n: int, prefix: int) -> np.ndarray:
    """``n`` distinct valid NHS numbers '9<prefix><7 digits><check>' (never issued to patients)."""
    need = int(n * 1.2) + 20  # about 1 in 11 bodies has no valid check digit
    body = rng.choice(10**7, size=min(need, 10**7), replace=False)
    digits9 = np.char.add(f"9{prefix % 10}", np.char.zfill(body.astype(str), 7))
    d = (np.frombuffer("".join(digits9).encode(), dtype=np.uint8) - 48).reshape(-1, 9)
    check = 11 - (d @ np.arange(10, 1, -1)) % 11
    check = np.where(check == 11, 0, check)
    ok = (check != 10) & ~(d == d[:, [0]]).all(axis=1)
    numbers = np.char.add(digits9[ok], check[ok].astype(str))
    if len(numbers) < n:
        raise ValueError("too many people for one site's NHS-number block (max about 9 million)")
    return numbers[:n]


def whole_years(start: pd.Series, end: pd.Series) -> pd.Series:
    """Age in completed years at ``end`` for people born on ``start``."""
    before = (end.dt.month < start.dt.month) | (
        (end.dt.month == start.dt.month) & (end.dt.day < start.dt.day)
    )
    return (end.dt.year - start.dt.year - before.astype(int)).astype("Int64")


def simulate_site(
    rng: np.random.Generator, style: SiteStyle, n: int, site_index: int = 0
) -> dict[str, pd.DataFrame]:
    """Clean canonical data for one site: referrals, reasons, contacts, onward referrals.

    The draws are made in a fixed order, so a seed always gives the same study.
    """
    ref = _referrals(rng, style, n, site_index)
    reasons = _reasons(rng, ref["referral_id"].to_numpy())
    contacts = _contacts(rng, ref)
    _summarise_contacts(rng, ref, contacts)
    onward = _onward_referrals(rng, ref)
    ref["n_onward_referrals"] = (
        ref["referral_id"].map(onward.groupby("referral_id").size()).fillna(0).astype("Int64")
    )
    ref["days_to_first_contact"] = (
        ref["first_contact_date"] - ref["referral_date"]
    ).dt.days.astype("Int64")
    return {"referrals": ref, "reasons": reasons, "contacts": contacts, "onward": onward}


def _referrals(rng: np.random.Generator, style: SiteStyle, n: int, site_index: int) -> pd.DataFrame:
    """One row per referral, with the referred person's attributes."""
    # Referral dates rise over the two years (services grow), sorted as exports are.
    day = np.sort((rng.beta(1.4, 1.0, n) * DAYS).astype(int))
    referral_date = START + pd.to_timedelta(day, unit="D")
    n_people = max(1, int(round(n * style.people_share)))
    person = np.concatenate([np.arange(n_people), rng.integers(0, n_people, n - n_people)])
    person = np.sort(person)  # re-referrals of a person come after the first
    person = rng.permutation(person) if n > 1 else person
    first_date = pd.Series(referral_date).groupby(person).min().reindex(range(n_people))
    people = _people(rng, style, n_people, site_index, first_date.fillna(START).to_numpy())
    ref = pd.DataFrame(
        {
            "referral_id": [f"{style.id_prefix}{i:06d}" for i in range(1, n + 1)],
            "person": person,
            "nhs_number": people["nhs_number"][person],
            "local_id": people["local_id"][person],
            "referral_date": referral_date,
            "date_of_birth": people["date_of_birth"][person],
            "sex": people["sex"][person],
            "ethnicity": people["ethnicity"][person],
            "imd_decile": pd.array(people["imd_decile"][person], dtype="Int64"),
            "referral_source": draw(rng, P_SOURCE, n),
            "outcome": draw(rng, P_OUTCOME, n),
        }
    )
    ref.loc[ref["imd_decile"] == 0, "imd_decile"] = pd.NA
    if style.duplicate_cases:
        _duplicate_cases(rng, ref, style.duplicate_cases)
    ref["age_at_referral"] = whole_years(ref["date_of_birth"], ref["referral_date"])
    return ref


def _duplicate_cases(rng: np.random.Generator, ref: pd.DataFrame, k: int) -> None:
    """Move the second referral of ``k`` re-referred people to 3-20 days after their first: a
    second case opened while the first is new (flagged duplicate_case by the cleaner)."""
    counts = ref["person"].value_counts()
    people = np.sort(counts[counts >= 2].index.to_numpy())
    for person in rng.choice(people, size=min(k, len(people)), replace=False):
        rows = ref.index[ref["person"] == person]
        first, second = ref.loc[rows, "referral_date"].sort_values(kind="stable").index[:2]
        ref.loc[second, "referral_date"] = ref.loc[first, "referral_date"] + pd.Timedelta(
            days=int(rng.integers(3, 21))
        )


def _people(
    rng: np.random.Generator,
    style: SiteStyle,
    n_people: int,
    site_index: int,
    first_date: np.ndarray,
) -> dict[str, np.ndarray | pd.DatetimeIndex]:
    """Attributes of each person (indexed by person number); IMD decile 0 means not recorded."""
    age0 = np.clip(np.round(rng.normal(60, 17, n_people)), 19, 97).astype(int)
    sex = draw(rng, P_SEX, n_people)
    ethnicity = draw(rng, P_ETHNICITY, n_people)
    dec_p = np.exp(-style.deprivation * np.arange(10))
    imd = rng.choice(np.arange(1, 11), size=n_people, p=dec_p / dec_p.sum())
    imd_missing = rng.random(n_people) < 0.03
    nhs = valid_nhs_numbers(rng, n_people, site_index)
    dob = (
        pd.to_datetime(first_date)
        - pd.to_timedelta(age0 * 365.25, unit="D")
        - pd.to_timedelta(rng.integers(0, 365, n_people), unit="D")
    ).normalize()
    local_id = np.char.add("CC-", np.char.zfill(np.arange(1, n_people + 1).astype(str), 6))
    return {
        "nhs_number": nhs,
        "local_id": local_id,
        "date_of_birth": dob,
        "sex": sex,
        "ethnicity": ethnicity,
        "imd_decile": np.where(imd_missing, 0, imd),
    }


def _reasons(rng: np.random.Generator, referral_ids: np.ndarray) -> pd.DataFrame:
    """Reasons for referral (long: one row each): independent draws, one to three each."""
    names = list(P_REASON)
    has = rng.random((len(referral_ids), len(names))) < np.array(list(P_REASON.values()))
    none = ~has.any(axis=1)
    # Nobody is referred for nothing: give them one of the two commonest reasons.
    has[none, rng.choice([0, 1], size=none.sum())] = True
    # At most three reasons each (what the narrowest export, site B, has room for besides an
    # unmapped extra reason added as a defect).
    order = np.argsort(rng.random(has.shape) - has, axis=1)[:, :3]
    capped = np.zeros_like(has)
    np.put_along_axis(capped, order, np.take_along_axis(has, order, axis=1), axis=1)
    rows, cols = np.nonzero(capped)
    return pd.DataFrame({"referral_id": referral_ids[rows], "reason": np.array(names)[cols]})


def _contacts(rng: np.random.Generator, ref: pd.DataFrame) -> pd.DataFrame:
    """Contacts with the link worker: most for people who engage, 0-1 for the rest."""
    n = len(ref)
    engaged = ref["outcome"].isin(ENGAGED_OUTCOMES).to_numpy()
    n_contacts = np.where(engaged, 1 + np.minimum(rng.poisson(3.2, n), 11), rng.integers(0, 2, n))
    idx = np.repeat(np.arange(n), n_contacts)
    seq = pd.Series(idx).groupby(idx).cumcount().to_numpy()
    first_gap = np.ceil(rng.gamma(2.0, 7.0, n)).astype(int) + 1
    gaps = np.where(seq == 0, first_gap[idx], rng.integers(7, 29, len(idx)))
    offset = pd.Series(gaps).groupby(idx).cumsum().to_numpy()
    p_attend = np.where(engaged[idx], 0.88, 0.3)
    referral_date = pd.DatetimeIndex(ref["referral_date"])
    return pd.DataFrame(
        {
            "referral_id": ref["referral_id"].to_numpy()[idx],
            "contact_date": referral_date[idx] + pd.to_timedelta(offset, unit="D"),
            "mode": draw(rng, P_MODE, len(idx)),
            "duration_min": rng.choice([15.0, 20.0, 30.0, 45.0, 60.0], size=len(idx)),
            "attended": rng.random(len(idx)) < p_attend,
        }
    )


def _summarise_contacts(
    rng: np.random.Generator, ref: pd.DataFrame, contacts: pd.DataFrame
) -> None:
    """Add contact counts, first attended contact and discharge date to the referrals."""
    g = contacts.groupby("referral_id")
    ref["n_contacts"] = ref["referral_id"].map(g.size()).fillna(0).astype("Int64")
    ref["n_attended"] = ref["referral_id"].map(g["attended"].sum()).fillna(0).astype("Int64")
    first_att = contacts[contacts["attended"]].groupby("referral_id")["contact_date"].min()
    ref["first_contact_date"] = ref["referral_id"].map(first_att)
    last = ref["referral_id"].map(g["contact_date"].max()).fillna(ref["referral_date"])
    closed = ref["outcome"] != "ongoing"
    ref["discharge_date"] = (last + pd.to_timedelta(rng.integers(7, 31, len(ref)), unit="D")).where(
        closed
    )


def _onward_referrals(rng: np.random.Generator, ref: pd.DataFrame) -> pd.DataFrame:
    """Onward referrals to community assets, for people who attended at least one contact."""
    n = len(ref)
    attended_any = (ref["n_attended"] > 0).to_numpy()
    n_onward = np.where(attended_any, np.minimum(rng.poisson(1.3, n), 5), 0)
    idx = np.repeat(np.arange(n), n_onward)
    first_contact = ref["first_contact_date"].to_numpy()[idx]
    return pd.DataFrame(
        {
            "referral_id": ref["referral_id"].to_numpy()[idx],
            "onward_date": pd.to_datetime(first_contact)
            + pd.to_timedelta(rng.integers(0, 60, len(idx)), unit="D"),
            "asset_type": draw(rng, P_ASSET, len(idx)),
        }
    )
