"""Questionnaires from a latent-wellbeing model with a known, context-dependent true change.

Each engaged person has a latent wellbeing (theta) and loneliness (lambda); item answers are
rounded, clipped linear functions of them plus noise. Between baseline and follow-up, wellbeing
changes by the :data:`TRUE_CHANGE` model, which later analyses should recover. The demo's
programme theory (:data:`DEMO_CMOCS`) is written against that truth.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from linkeval.synthetic.styles import QUESTIONNAIRE_STYLES, SiteStyle

# True change in latent wellbeing (SD units) for one referral, baseline to follow-up:
#   0.35 + 0.30 * lonely at baseline + 0.06 * (attended contacts - 4)
#        - 0.25 * most deprived decile - 0.25 * referred for money/debt or housing
#        + 0.00 * link worker hosted by the voluntary sector
#        + site effect ~ N(0, 0.12^2) + N(0, 0.5^2) noise.
# Loneliness (latent) falls by half the wellbeing gain. The demo's programme theory (DEMO_CMOCS)
# is written so that three CMOCs hold, one runs the other way (practical needs) and one has no
# true effect (VCSE host).
TRUE_CHANGE = {
    "intercept": 0.35,
    "lonely_baseline": 0.30,
    "per_attended_contact": 0.06,
    "most_deprived_decile": -0.25,
    "practical_need": -0.25,
    "vcse_host": 0.0,
    "site_sd": 0.12,
    "individual_sd": 0.5,
}
P_BASELINE = 0.85  # engaged referrals completing a baseline questionnaire
FOLLOWUP_DAYS = (240, 425)  # 8-14 months: some fall outside the follow-up window
FOLLOWUP_WINDOW = (270, 365)  # days after baseline a follow-up counts (the demo config's)

# A local instrument the demo config declares under `instruments:` (docs/standard.md,
# 'Outcome measures'): site G's community connection scale, with one reversed item.
LOCAL_INSTRUMENTS: dict[str, dict[str, Any]] = {
    "connect": {
        "title": "Community connection scale",
        "source": "in-house (Moorside Medical Group, synthetic demo)",
        "items": ["belong", "trust", "alone", "help"],
        "range": [1, 5],
        "labels": {"Never": 1, "Rarely": 2, "Sometimes": 3, "Often": 4, "Always": 5},
        "reversed": ["alone"],
        "higher_is_better": True,
        "scoring": "sum",
        "bands": {"low": [4, 9], "medium": [10, 15], "high": [16, 20]},
        "mid": 2,
        "max_missing": 1,
    },
}
P_SECOND_CONCERN = 0.7  # MYCaW forms naming a second concern

# Five CMOCs drawn from the realist literature on link workers (e.g. Husk et al. 2019, Tierney
# et al. 2020, Wildman et al. 2019), each with a quantitative test.
DEMO_CMOCS: list[dict[str, Any]] = [
    {
        "id": "CMO1-loneliness",
        "context": "People who are lonely when they are first referred",
        "mechanism": "feel listened to and are connected with social groups and befriending",
        "outcome": "their mental wellbeing improves more than other people's",
        "test": {
            "outcome": "swemwbs",
            "context": {"variable": "lonely_baseline", "label": "Lonely at first meeting"},
            "expected": "more_improvement",
        },
    },
    {
        "id": "CMO2-buy-in",
        "context": "People who keep coming back to see the link worker (six or more contacts)",
        "mechanism": "build trust and take up the activities they are connected with",
        "outcome": "their mental wellbeing improves more",
        "test": {
            "outcome": "swemwbs",
            "context": {
                "variable": "n_attended",
                "at_least": 6,
                "label": "Six or more attended contacts",
            },
            "expected": "more_improvement",
        },
    },
    {
        "id": "CMO3-deprivation",
        "context": "People living in the most deprived areas (IMD decile 1)",
        "mechanism": "meet barriers (cost, transport, fewer local groups) to using community assets",
        "outcome": "their mental wellbeing improves less",
        "test": {
            "outcome": "swemwbs",
            "context": {
                "variable": "imd_decile",
                "equals": 1,
                "label": "Most deprived tenth of areas",
            },
            "expected": "less_improvement",
        },
    },
    {
        "id": "CMO4-practical-needs",
        "context": "People referred with practical needs (money, debt, benefits or housing)",
        "mechanism": "get those needs sorted through advice services, which relieves stress",
        "outcome": "their mental wellbeing improves more",
        "test": {
            "outcome": "swemwbs",
            "context": {
                "variable": "reason:finance_debt_benefits",
                "label": "Referred for money, debt or benefits",
            },
            "expected": "more_improvement",
        },
    },
    {
        "id": "CMO5-vcse-host",
        "context": "Link workers hosted by a voluntary-sector organisation rather than the PCN",
        "mechanism": "know and are trusted by local community groups",
        "outcome": "people's mental wellbeing improves more",
        "test": {
            "outcome": "swemwbs",
            "context": {
                "variable": "site:host",
                "equals": "vcse",
                "label": "VCSE-hosted link workers",
            },
            "expected": "more_improvement",
        },
    },
]


@dataclass
class Questionnaires:
    """One site's simulated questionnaires, before they are exported."""

    rows: pd.DataFrame  # referral_id, timepoint, completed_date, then "<instrument>:<item>" answers
    people: pd.DataFrame  # per person: baseline loneliness, true change, followed up or not
    instruments: list[str]


def simulate_questionnaires(
    rng: np.random.Generator,
    style: SiteStyle,
    ref: pd.DataFrame,
    reasons: pd.DataFrame,
    kept_ids: set[str],
) -> Questionnaires:
    """Baseline and follow-up questionnaires for one site's engaged, kept referrals."""
    instruments = list(QUESTIONNAIRE_STYLES[style.export].item_headers)
    eligible = _baseline_takers(rng, ref, kept_ids)
    n = len(eligible)
    lonely_reason = _referred_for(eligible, reasons, ["loneliness_isolation"])
    practical = _referred_for(eligible, reasons, ["finance_debt_benefits", "housing"])
    theta0 = rng.normal(-0.4, 1, n) - 0.3 * lonely_reason
    lam0 = -0.5 * theta0 + rng.normal(0, 0.85, n) + 0.6 * lonely_reason
    site_effect = rng.normal(0, TRUE_CHANGE["site_sd"])
    items0 = _items(rng, theta0, lam0, instruments)
    # Lonely at baseline by the measured UCLA-3 total, as an analysis would define it (drawn
    # at every site; kept only where collected).
    lonely0 = (items0["ucla3"].sum(axis=1) >= 6).astype(float)
    items0 = {k: v for k, v in items0.items() if k in instruments}
    delta = _true_change(rng, eligible, lonely0, practical, style.host == "vcse", site_effect)
    theta1 = theta0 + delta
    lam1 = lam0 - 0.5 * delta + rng.normal(0, 0.3, n)
    items1 = {k: v for k, v in _items(rng, theta1, lam1, instruments).items() if k in instruments}
    followed, follow_date = _follow_up(rng, eligible)
    base_date = pd.to_datetime(eligible["first_contact_date"]).to_numpy()
    people = pd.DataFrame(
        {
            "referral_id": eligible["referral_id"],
            "local_id": eligible["local_id"],
            "nhs_number": eligible["nhs_number"],
            "lonely_baseline": lonely0.astype(bool),
            "true_change": delta,
            "followed_up": followed,
            "site_effect": site_effect,
        }
    )
    rows = pd.concat(
        [
            _answers(eligible, "baseline", base_date, items0, np.ones(n, bool)),
            _answers(eligible, "followup", follow_date, items1, followed),
        ],
        ignore_index=True,
    )
    return Questionnaires(rows=rows, people=people, instruments=instruments)


def _baseline_takers(
    rng: np.random.Generator, ref: pd.DataFrame, kept_ids: set[str]
) -> pd.DataFrame:
    """Referrals with a baseline form: kept, attended a contact, the person's only referral."""
    once = ref.groupby("person")["referral_id"].transform("size") == 1
    return ref[
        once
        & ref["referral_id"].isin(kept_ids)
        & (ref["n_attended"] > 0)
        & (rng.random(len(ref)) < P_BASELINE)
    ].reset_index(drop=True)


def _referred_for(eligible: pd.DataFrame, reasons: pd.DataFrame, codes: list[str]) -> np.ndarray:
    """Whether each referral was made for any of these reasons."""
    ids = reasons.loc[reasons["reason"].isin(codes), "referral_id"]
    return eligible["referral_id"].isin(ids).to_numpy()


def _true_change(
    rng: np.random.Generator,
    eligible: pd.DataFrame,
    lonely0: np.ndarray,
    practical: np.ndarray,
    vcse: bool,
    site_effect: float,
) -> np.ndarray:
    """Each person's change in latent wellbeing, by the TRUE_CHANGE model."""
    attended = eligible["n_attended"].astype(float).to_numpy()
    most_deprived = (eligible["imd_decile"].astype("Float64") == 1).fillna(False).to_numpy(bool)
    return (
        TRUE_CHANGE["intercept"]
        + TRUE_CHANGE["lonely_baseline"] * lonely0
        + TRUE_CHANGE["per_attended_contact"] * (attended - 4)
        + TRUE_CHANGE["most_deprived_decile"] * most_deprived
        + TRUE_CHANGE["practical_need"] * practical
        + TRUE_CHANGE["vcse_host"] * vcse
        + site_effect
        + rng.normal(0, TRUE_CHANGE["individual_sd"], len(eligible))
    )


def _follow_up(rng: np.random.Generator, eligible: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Who completes a follow-up form, and when (everyone gets a date; only some use it)."""
    n = len(eligible)
    # Missing at random given deprivation and age: people 55 and over respond more, people in
    # the two most deprived deciles less.
    age = eligible["age_at_referral"].astype(float).to_numpy()
    logit = (
        0.55
        + 0.4 * (age >= 55)
        - 0.5 * (eligible["imd_decile"].astype("Float64").fillna(5).to_numpy(float) <= 2)
    )
    followed = rng.random(n) < 1 / (1 + np.exp(-logit))
    base_date = pd.to_datetime(eligible["first_contact_date"]).to_numpy()
    gap = rng.integers(FOLLOWUP_DAYS[0], FOLLOWUP_DAYS[1] + 1, n)
    return followed, base_date + gap.astype("timedelta64[D]")


def _answers(
    eligible: pd.DataFrame,
    timepoint: str,
    dates: np.ndarray,
    items: dict[str, np.ndarray],
    mask: np.ndarray,
) -> pd.DataFrame:
    """The forms completed at one timepoint, one column per item ("<instrument>:<index>")."""
    frame = pd.DataFrame(
        {
            "referral_id": eligible["referral_id"].to_numpy()[mask],
            "timepoint": timepoint,
            "completed_date": dates[mask],
        }
    )
    for name, values in items.items():
        for j in range(values.shape[1]):
            frame[f"{name}:{j}"] = values[mask, j]
    return frame


def _clip_round(x: np.ndarray, low: int, high: int) -> np.ndarray:
    return np.clip(np.round(x), low, high).astype(int)


def _items(
    rng: np.random.Generator, theta: np.ndarray, lam: np.ndarray, instruments: list[str]
) -> dict[str, np.ndarray]:
    """Item answers (n x k arrays) for each instrument from latent wellbeing and loneliness.

    The instruments of sites A-F are drawn whether or not the site collects them, so that the
    random stream (and so each site's other answers) does not depend on which of them a site
    uses; MYCaW and the local instrument, added later, are drawn only where collected (site G),
    so the other sites' data stayed as they were.
    """
    n = len(theta)
    noise = lambda sd, k: rng.normal(0, sd, (n, k))  # noqa: E731
    out = {
        "swemwbs": _clip_round(3.0 + 0.8 * theta[:, None] + noise(0.6, 7), 1, 5),
        "ucla3": _clip_round(1.9 + 0.6 * lam[:, None] + noise(0.45, 3), 1, 3),
        "ons4": np.column_stack(
            [
                _clip_round(6.0 + 1.6 * theta + rng.normal(0, 1, n), 0, 10),
                _clip_round(6.5 + 1.4 * theta + rng.normal(0, 1, n), 0, 10),
                _clip_round(6.0 + 1.6 * theta + rng.normal(0, 1.2, n), 0, 10),
                _clip_round(4.5 - 1.5 * theta + rng.normal(0, 1.5, n), 0, 10),
            ]
        ),
        "phq9": _clip_round(1.1 - 0.6 * theta[:, None] + noise(0.5, 9), 0, 3),
        "gad7": _clip_round(1.0 - 0.6 * theta[:, None] + noise(0.5, 7), 0, 3),
        "ons_loneliness": _clip_round(3.0 + 0.9 * lam + rng.normal(0, 0.6, n), 1, 5)[:, None],
        "eq_vas": _clip_round(62 + 14 * theta + rng.normal(0, 8, n), 0, 100)[:, None],
    }
    # Drawn only where collected (site G), after the others: the other sites' streams stay.
    if "mycaw" in instruments:  # concerns and wellbeing 0-6, lower is better
        concerns = _clip_round(
            3.3 - 1.0 * theta[:, None] + 0.3 * lam[:, None] + noise(0.9, 2), 0, 6
        ).astype(object)
        concerns[rng.random(n) >= P_SECOND_CONCERN, 1] = ""  # no second concern named
        wellbeing = _clip_round(2.8 - 1.1 * theta + rng.normal(0, 0.8, n), 0, 6)
        out["mycaw"] = np.column_stack([concerns, wellbeing.astype(object)])
    if "connect" in instruments:  # belong, trust, alone (negatively worded), help: 1-5
        connect = _clip_round(3.2 + 0.6 * theta[:, None] - 0.4 * lam[:, None] + noise(0.6, 4), 1, 5)
        connect[:, 2] = _clip_round(2.8 + 0.8 * lam + rng.normal(0, 0.6, n), 1, 5)
        out["connect"] = connect
    return out
