"""Synthetic link-worker exports for the demo, tests and benchmarks.

Six fictional sites export the same kind of routine data in the different shapes real systems
produce (see :data:`SITE_STYLES`): a cp1252 clinical-system search with a preamble, a UTF-8 CSV
with a byte-order mark and ISO dates, an Excel workbook with one sheet per table, a service that
records ages and its own client IDs instead of NHS numbers, one that exports only a number-of-
contacts column, and one whose exports are split into yearly files.

The people are made up: NHS numbers start with 9 (outside the ranges issued to patients in
England), names read "TEST PATIENT n" and postcodes use the ZZ99 pseudo-postcode area.

Defects are injected at the documented rates in :data:`DEFECT_RATES` and every one is recorded in
the ground truth that :func:`generate_study` returns (and writes to ``<out>/truth/``), so the
cleaner can be checked row by row.

Shape (all per site, from published descriptions of NHS link-worker caseloads): two years of
referrals rising over time; about 55% from GPs; loneliness, mental wellbeing and money the
commonest reasons; an older, more deprived population than the practice list; 0-12 contacts per
referral with about 14% did-not-attend; onward referrals to community assets for most people
who engage.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from linkeval.vocab import VOCABULARIES

START = pd.Timestamp("2023-01-01")
DAYS = 730
DEMO_SIZES = {"A": 420, "B": 650, "C": 180, "D": 300, "E": 260, "F": 540}
XLSX_MAX_ROWS = 50_000  # above this the workbook site writes CSV instead

# Rates are per clean row of the table named; injected rows are extra rows.
DEFECT_RATES: dict[str, dict[str, float]] = {
    "referrals": {
        "duplicate_row": 0.02,             # extra exact copy directly after the original
        "missing_required": 0.005,         # referral date blank
        "unparseable_date": 0.005,         # 31 February
        "impossible_date": 0.003,          # 01/01/1900 placeholder date
        "future_date": 0.004,              # year typed 40 years ahead
        "invalid_nhs_number": 0.01,        # check digit wrong (NHS-number sites only)
        "placeholder_nhs_number": 0.004,   # 0000000000 / 9999999999
        "under_18": 0.01,                  # aged 14-17 at referral
        "unmapped_source": 0.02,           # flagged, kept as `other`
        "unmapped_reason": 0.01,           # flagged, kept as `other`
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

UNMAPPED = {
    "referral_source": ["Lunch club organiser", "Church group", "Dentist", "Optician"],
    "reasons": ["Pet care", "Transport", "Digital skills"],
    "mode": ["Doorstep chat", "Walk and talk"],
    "asset_type": ["Men's Shed", "Repair cafe", "Faith group"],
}

# code -> probability (population-level shape of a link-worker caseload)
P_SOURCE = {"gp": 0.55, "practice_nurse": 0.08, "other_practice_staff": 0.10, "self": 0.08,
            "social_care": 0.04, "vcse": 0.06, "secondary_care": 0.02, "pharmacy": 0.01,
            "mental_health": 0.03, "housing": 0.02, "other": 0.01}
P_REASON = {"loneliness_isolation": 0.42, "mental_wellbeing": 0.45, "physical_activity": 0.14,
            "long_term_condition": 0.16, "finance_debt_benefits": 0.27, "housing": 0.10,
            "employment_education": 0.05, "bereavement": 0.08, "carer_support": 0.06,
            "substance_use": 0.02, "food_insecurity": 0.05, "domestic_abuse": 0.01,
            "other": 0.04}
P_SEX = {"female": 0.60, "male": 0.385, "other": 0.005, "unknown": 0.01}
P_ETHNICITY = {"white": 0.82, "asian": 0.08, "black": 0.04, "mixed": 0.02, "other": 0.01,
               "unknown": 0.03}
P_OUTCOME = {"completed": 0.55, "ongoing": 0.10, "declined": 0.12, "not_contactable": 0.12,
             "inappropriate": 0.06, "other": 0.05}
P_MODE = {"face_to_face": 0.45, "telephone": 0.35, "video": 0.05, "home_visit": 0.08,
          "group": 0.05, "message": 0.02}
P_ASSET = {"physical_activity": 0.12, "arts_culture": 0.08, "social_groups_befriending": 0.22,
           "advice_finance_benefits": 0.16, "housing_support": 0.05,
           "mental_health_support": 0.12, "employment_education_volunteering": 0.06,
           "food_support": 0.05, "carer_support": 0.03, "nature_green": 0.05,
           "health_services": 0.04, "other": 0.02}


@dataclass(frozen=True)
class SiteStyle:
    """How one fictional site exports its data (headers, labels, file shapes)."""

    code: str
    name: str
    deprivation: float  # slope of IMD decile probabilities: higher = more deprived caseload
    identity: str  # "nhs" or "local"
    nhs_format: str = "plain"  # plain | spaces | dashes
    dob: bool = True  # date of birth (else age)
    date_format: str = "%d/%m/%Y"
    contacts: bool = True
    onward: bool = True
    host: str = "pcn"  # who employs the link workers: pcn (the practice network) or vcse
    rural: bool = False


SITE_STYLES: dict[str, SiteStyle] = {
    "A": SiteStyle("A", "Riverside PCN", 0.30, "nhs", "spaces", host="vcse"),
    "B": SiteStyle("B", "Hillside PCN", 0.10, "nhs", "dashes", date_format="%Y-%m-%d"),
    "C": SiteStyle("C", "Northgate Practice", 0.20, "nhs", "spaces", rural=True),
    "D": SiteStyle("D", "Coastal Communities PCN", 0.25, "local", dob=False, host="vcse",
                   rural=True),
    "E": SiteStyle("E", "Valley Wellbeing Hub", 0.05, "nhs", date_format="%d-%b-%Y",
                   contacts=False, onward=False, host="vcse"),
    "F": SiteStyle("F", "Eastfield PCN", 0.15, "nhs"),
}

# Site label tables: code -> the labels that site's system writes (one chosen per row).
# Labels not covered by the built-in synonyms are declared in that site's config `values`.
LABELS: dict[str, dict[str, dict[str, list[str]]]] = {
    "A": {
        "referral_source": {"gp": ["GP", "Dr"], "practice_nurse": ["Practice Nurse"],
                            "other_practice_staff": ["Care Coordinator", "Receptionist"],
                            "self": ["Self referral"], "social_care": ["Adult Social Care"],
                            "vcse": ["Café Connect (VCSE)", "Citizens Advice – Riverside"],
                            "secondary_care": ["Hospital"], "pharmacy": ["Pharmacy"],
                            "mental_health": ["Talking Therapies"], "housing": ["Housing"],
                            "other": ["Other"]},
        "sex": {"female": ["Female"], "male": ["Male"], "other": ["Other"],
                "unknown": ["Not known"]},
        "ethnicity": {"white": ["White – British", "White – Irish", "White – Other"],
                      "asian": ["Asian or Asian British – Indian", "Asian – Pakistani"],
                      "black": ["Black – Caribbean", "Black – African"],
                      "mixed": ["Mixed – White and Asian"], "other": ["Other – Arab"],
                      "unknown": ["Not stated"]},
        "outcome": {"completed": ["Discharged – goals met"], "ongoing": ["Open"],
                    "declined": ["Declined"], "not_contactable": ["Unable to contact"],
                    "inappropriate": ["Inappropriate referral"], "other": ["Other"]},
        "reason": {"loneliness_isolation": ["Loneliness"], "mental_wellbeing": ["Low mood"],
                   "physical_activity": ["Exercise"], "long_term_condition": ["LTC"],
                   "finance_debt_benefits": ["Money worries"], "housing": ["Housing"],
                   "employment_education": ["Employment"], "bereavement": ["Bereavement"],
                   "carer_support": ["Carer"], "substance_use": ["Alcohol"],
                   "food_insecurity": ["Food"], "domestic_abuse": ["Domestic abuse"],
                   "other": ["Other"]},
        "mode": {"face_to_face": ["Face to face"], "telephone": ["Telephone"],
                 "video": ["Video"], "home_visit": ["Home visit"], "group": ["Group"],
                 "message": ["Text message"]},
        "attended": {"true": ["Attended"], "false": ["DNA"]},
        "asset_type": {"physical_activity": ["Walking group"], "arts_culture": ["Arts"],
                       "social_groups_befriending": ["Befriending", "Lunch club"],
                       "advice_finance_benefits": ["Citizens Advice"],
                       "housing_support": ["Housing advice"],
                       "mental_health_support": ["Counselling"],
                       "employment_education_volunteering": ["Volunteering"],
                       "food_support": ["Food bank"], "carer_support": ["Carers centre"],
                       "nature_green": ["Gardening"], "health_services": ["Stop smoking"],
                       "other": ["Other"]},
    },
}
LABELS["B"] = {
    "referral_source": {"gp": ["GP", "General Practitioner"], "practice_nurse": ["Nurse"],
                        "other_practice_staff": ["Health and Wellbeing Coach"],
                        "self": ["Self-referral"], "social_care": ["Social Services"],
                        "vcse": ["Voluntary sector"], "secondary_care": ["Acute Trust"],
                        "pharmacy": ["Community Pharmacy"], "mental_health": ["CMHT"],
                        "housing": ["Housing Association"], "other": ["Other"]},
    "sex": {"female": ["F"], "male": ["M"], "other": ["I"], "unknown": ["U"]},
    "ethnicity": {"white": ["A", "B", "C"], "mixed": ["D", "G"], "asian": ["H", "J", "R"],
                  "black": ["M", "N"], "other": ["S"], "unknown": ["Z"]},
    "outcome": {"completed": ["closed_completed"], "ongoing": ["active"],
                "declined": ["closed_declined"], "not_contactable": ["closed_no_contact"],
                "inappropriate": ["closed_inappropriate"], "other": ["closed_other"]},
    "reason": {"loneliness_isolation": ["Social isolation"], "mental_wellbeing": ["Anxiety",
               "Stress"], "physical_activity": ["Inactivity"],
               "long_term_condition": ["Long-term condition"],
               "finance_debt_benefits": ["Debt", "Benefits"], "housing": ["Housing"],
               "employment_education": ["Work"], "bereavement": ["Grief"],
               "carer_support": ["Caring responsibilities"], "substance_use": ["Drugs"],
               "food_insecurity": ["Food poverty"], "domestic_abuse": ["Domestic violence"],
               "other": ["Other"]},
    "mode": {"face_to_face": ["F2F"], "telephone": ["Tel"], "video": ["Video call"],
             "home_visit": ["Home"], "group": ["Group session"], "message": ["SMS"]},
    "attended": {"true": ["Attended"], "false": ["DNA", "Cancelled"]},
    "asset_type": {"physical_activity": ["Sport"], "arts_culture": ["Creative"],
                   "social_groups_befriending": ["Social group"],
                   "advice_finance_benefits": ["Welfare rights"],
                   "housing_support": ["Housing"], "mental_health_support": ["Peer support"],
                   "employment_education_volunteering": ["Adult learning"],
                   "food_support": ["Community pantry"], "carer_support": ["Carers"],
                   "nature_green": ["Allotment"], "health_services": ["NHS"],
                   "other": ["Other"]},
}
LABELS["C"] = {**LABELS["A"], "sex": {"female": ["Woman"], "male": ["Man"],
                                      "other": ["Non-binary"], "unknown": ["Prefer not to say"]},
               "ethnicity": {"white": ["White British"], "mixed": ["Mixed"],
                             "asian": ["Asian British"], "black": ["Black British"],
                             "other": ["Any other ethnic group"], "unknown": ["Not known"]},
               "outcome": {"completed": ["Completed"], "ongoing": ["Ongoing"],
                           "declined": ["Patient declined"], "not_contactable": ["No contact"],
                           "inappropriate": ["Not eligible"], "other": ["Other"]}}
LABELS["D"] = {**LABELS["B"], "sex": {"female": ["female"], "male": ["male"],
                                      "other": ["other"], "unknown": ["unknown"]},
               "ethnicity": {c: [c.title()] for c in VOCABULARIES["ethnicity"]},
               "outcome": {c: [c.replace("_", " ").title()] for c in VOCABULARIES["outcome"]},
               "attended": {"true": ["Y"], "false": ["N"]}}
LABELS["E"] = {**LABELS["A"], "referral_source": {**LABELS["A"]["referral_source"],
                                                  "gp": ["GP Practice"], "vcse": ["Charity"]}}
LABELS["F"] = {**LABELS["B"], "outcome": LABELS["C"]["outcome"],
               "sex": LABELS["A"]["sex"], "ethnicity": LABELS["C"]["ethnicity"]}

# Labels the built-in synonyms do not know, declared in the site's config.
SITE_VALUES: dict[str, dict[str, dict[str, str]]] = {
    "A": {"referral_source": {"Café Connect (VCSE)": "vcse", "Citizens Advice – Riverside": "vcse"}},
    "B": {"outcome": {"closed_completed": "completed", "closed_declined": "declined",
                      "closed_no_contact": "not_contactable",
                      "closed_inappropriate": "inappropriate", "closed_other": "other"},
          "sex": {"I": "other"}},
}
SITE_VALUES["C"] = SITE_VALUES["A"]


# Five CMOCs drawn from the realist literature on link workers (e.g. Husk et al. 2019, Tierney
# et al. 2020, Wildman et al. 2019), each with a quantitative test.
DEMO_CMOCS: list[dict[str, Any]] = [
    {"id": "CMO1-loneliness",
     "context": "People who are lonely when they are first referred",
     "mechanism": "feel listened to and are connected with social groups and befriending",
     "outcome": "their mental wellbeing improves more than other people's",
     "test": {"outcome": "swemwbs", "context": {"variable": "lonely_baseline",
                                                "label": "Lonely at first meeting"},
              "expected": "more_improvement"}},
    {"id": "CMO2-buy-in",
     "context": "People who keep coming back to see the link worker (six or more contacts)",
     "mechanism": "build trust and take up the activities they are connected with",
     "outcome": "their mental wellbeing improves more",
     "test": {"outcome": "swemwbs", "context": {"variable": "n_attended", "at_least": 6,
                                                "label": "Six or more attended contacts"},
              "expected": "more_improvement"}},
    {"id": "CMO3-deprivation",
     "context": "People living in the most deprived areas (IMD decile 1)",
     "mechanism": "meet barriers (cost, transport, fewer local groups) to using community assets",
     "outcome": "their mental wellbeing improves less",
     "test": {"outcome": "swemwbs", "context": {"variable": "imd_decile", "equals": 1,
                                                "label": "Most deprived tenth of areas"},
              "expected": "less_improvement"}},
    {"id": "CMO4-practical-needs",
     "context": "People referred with practical needs (money, debt, benefits or housing)",
     "mechanism": "get those needs sorted through advice services, which relieves stress",
     "outcome": "their mental wellbeing improves more",
     "test": {"outcome": "swemwbs", "context": {"variable": "reason:finance_debt_benefits",
                                                "label": "Referred for money, debt or benefits"},
              "expected": "more_improvement"}},
    {"id": "CMO5-vcse-host",
     "context": "Link workers hosted by a voluntary-sector organisation rather than the PCN",
     "mechanism": "know and are trusted by local community groups",
     "outcome": "people's mental wellbeing improves more",
     "test": {"outcome": "swemwbs", "context": {"variable": "site:host", "equals": "vcse",
                                                "label": "VCSE-hosted link workers"},
              "expected": "more_improvement"}},
]


@dataclass
class SyntheticStudy:
    """What :func:`generate_study` wrote: the config path, the config and the ground truth."""

    config_path: Path
    config: dict[str, Any]
    truth: dict[str, pd.DataFrame]


# --------------------------------------------------------------------------------------------
# Public entry points


def generate_study(
    out: str | Path,
    n_referrals: int | None = None,
    n_sites: int = 6,
    seed: int = 0,
    *,
    raw_dir: str | Path | None = None,
    config_path: str | Path | None = None,
    processed_dir: str | Path | None = None,
    reports_dir: str | Path | None = None,
    study: str = "Link worker evaluation (synthetic demo)",
) -> SyntheticStudy:
    """Write synthetic raw exports for ``n_sites`` sites plus a matching study config.

    By default everything goes under ``out``: ``raw/``, ``study.yaml``, ``truth/``, and the
    config points its processed and reports folders at ``out/processed`` and ``out/reports``.
    ``n_referrals`` (clean referrals in total) defaults to the demo sizes (150-700 per site);
    otherwise it is split across sites in the demo proportions. Deterministic for a seed.
    """
    if not 1 <= n_sites <= len(SITE_STYLES):
        raise ValueError(f"n_sites must be 1-{len(SITE_STYLES)}")
    out = Path(out)
    raw_dir = Path(raw_dir) if raw_dir else out / "raw"
    config_path = Path(config_path) if config_path else out / "study.yaml"
    processed_dir = Path(processed_dir) if processed_dir else out / "processed"
    reports_dir = Path(reports_dir) if reports_dir else out / "reports"
    codes = list(SITE_STYLES)[:n_sites]
    sizes = _site_sizes(codes, n_referrals)
    sites_cfg: dict[str, Any] = {}
    truth_parts: dict[str, list[pd.DataFrame]] = {}
    for i, code in enumerate(codes):
        rng = np.random.default_rng([seed, i])
        style = SITE_STYLES[code]
        core = simulate_site(rng, style, sizes[code], site_index=i)
        site_cfg, truth = _render_site(rng, style, core, raw_dir, large=sizes[code] > XLSX_MAX_ROWS)
        sites_cfg[code] = site_cfg
        for name, frame in truth.items():
            truth_parts.setdefault(name, []).append(frame)
    truth = {name: pd.concat(parts, ignore_index=True) for name, parts in truth_parts.items()}
    anchor = config_path.parent.resolve()
    config = {
        "study": study,
        "demo": True,
        "raw_dir": _relpath(raw_dir, anchor),
        "processed_dir": _relpath(processed_dir, anchor),
        "reports_dir": _relpath(reports_dir, anchor),
        "pseudonymisation": {"key_env": "LINKEVAL_KEY"},
        "followup_window_days": [270, 365],
        "disclosure": {"rule": "nhs_digital"},
        "programme_theory": DEMO_CMOCS,
        "sites": sites_cfg,
    }
    config_path.parent.mkdir(parents=True, exist_ok=True)
    config_path.write_text(config_text(config), encoding="utf-8")
    truth_dir = raw_dir / "truth"
    truth_dir.mkdir(exist_ok=True)
    for name, frame in truth.items():
        frame.to_parquet(truth_dir / f"{name}.parquet", index=False)
    (truth_dir / "README.md").write_text(
        "Ground truth kept by the synthetic generator (linkeval.synthetic.generate): the expected fate of\n"
        "every raw row and the clean values of every kept referral. For testing only.\n",
        encoding="utf-8")
    (truth_dir / "defect_rates.json").write_text(json.dumps(DEFECT_RATES, indent=2))
    return SyntheticStudy(config_path=config_path, config=config, truth=truth)


def config_text(config: dict[str, Any]) -> str:
    """The YAML text of a synthetic study config, with a header saying what it is."""
    header = ("# Synthetic study written by linkeval (demo / synth): every person in it is made up.\n"
              "# demo: true -> the published demo key is used and reports carry a DEMO banner.\n"
              "# Regenerated by `linkeval demo`; copy study.example.yaml for a real study.\n")
    return header + yaml.safe_dump(config, sort_keys=False, allow_unicode=True, width=100)


def _relpath(path: Path, anchor: Path) -> str:
    import os

    return Path(os.path.relpath(Path(path).resolve(), anchor)).as_posix()


def _site_sizes(codes: list[str], n_referrals: int | None) -> dict[str, int]:
    if n_referrals is None:
        return {c: DEMO_SIZES[c] for c in codes}
    weights = np.array([DEMO_SIZES[c] for c in codes], dtype=float)
    sizes = np.floor(weights / weights.sum() * n_referrals).astype(int)
    sizes[0] += n_referrals - sizes.sum()
    return dict(zip(codes, np.maximum(sizes, 1).tolist(), strict=True))


# --------------------------------------------------------------------------------------------
# Simulation of clean, canonical data


def _draw(rng: np.random.Generator, probs: dict[str, float], n: int) -> np.ndarray:
    codes = np.array(list(probs))
    p = np.array(list(probs.values()), dtype=float)
    return codes[rng.choice(len(codes), size=n, p=p / p.sum())]


def valid_nhs_numbers(rng: np.random.Generator, n: int, prefix: int) -> np.ndarray:
    """``n`` distinct valid NHS numbers '9<prefix><7 digits><check>' (never issued to patients)."""
    need = int(n * 1.2) + 20
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


def simulate_site(rng: np.random.Generator, style: SiteStyle, n: int, site_index: int = 0
                  ) -> dict[str, pd.DataFrame]:
    """Clean canonical data for one site: referrals, reasons, contacts, onward referrals."""
    # Referral dates rise over the two years (services grow), sorted as exports are.
    day = np.sort((rng.beta(1.4, 1.0, n) * DAYS).astype(int))
    referral_date = START + pd.to_timedelta(day, unit="D")
    n_people = max(1, int(round(n * 0.93)))
    person = np.concatenate([np.arange(n_people), rng.integers(0, n_people, n - n_people)])
    person = np.sort(person)  # re-referrals of a person come after the first
    person = rng.permutation(person) if n > 1 else person
    # Person attributes.
    age0 = np.clip(np.round(rng.normal(60, 17, n_people)), 19, 97).astype(int)
    sex = _draw(rng, P_SEX, n_people)
    eth = _draw(rng, P_ETHNICITY, n_people)
    dec_p = np.exp(-style.deprivation * np.arange(10))
    imd = rng.choice(np.arange(1, 11), size=n_people, p=dec_p / dec_p.sum())
    imd_missing = rng.random(n_people) < 0.03
    nhs = valid_nhs_numbers(rng, n_people, site_index)
    first_date = pd.Series(referral_date).groupby(person).min().reindex(range(n_people))
    first_date = first_date.fillna(START).to_numpy()
    dob = (pd.to_datetime(first_date) - pd.to_timedelta(age0 * 365.25, unit="D")
           - pd.to_timedelta(rng.integers(0, 365, n_people), unit="D")).normalize()
    local_id = np.char.add("CC-", np.char.zfill(np.arange(1, n_people + 1).astype(str), 6))

    ref = pd.DataFrame({
        "referral_id": [f"{style.code}{i:06d}" for i in range(1, n + 1)],
        "person": person,
        "nhs_number": nhs[person],
        "local_id": local_id[person],
        "referral_date": referral_date,
        "date_of_birth": dob[person],
        "sex": sex[person],
        "ethnicity": eth[person],
        "imd_decile": pd.array(np.where(imd_missing, 0, imd)[person], dtype="Int64"),
        "referral_source": _draw(rng, P_SOURCE, n),
        "outcome": _draw(rng, P_OUTCOME, n),
    })
    ref.loc[ref["imd_decile"] == 0, "imd_decile"] = pd.NA
    ref["age_at_referral"] = _whole_years(ref["date_of_birth"], ref["referral_date"])

    # Reasons: independent draws, at least one each.
    names = list(P_REASON)
    has = rng.random((n, len(names))) < np.array(list(P_REASON.values()))
    none = ~has.any(axis=1)
    has[none, rng.choice([0, 1], size=none.sum())] = True
    # At most three reasons each (what the narrowest export, site B, has room for).
    order = np.argsort(rng.random(has.shape) - has, axis=1)[:, :3]
    capped = np.zeros_like(has)
    np.put_along_axis(capped, order, np.take_along_axis(has, order, axis=1), axis=1)
    has = capped
    rows, cols = np.nonzero(has)
    reasons = pd.DataFrame({"referral_id": ref["referral_id"].to_numpy()[rows],
                            "reason": np.array(names)[cols]})

    # Contacts.
    engaged_outcome = ref["outcome"].isin(["completed", "ongoing", "other"]).to_numpy()
    n_contacts = np.where(engaged_outcome, 1 + np.minimum(rng.poisson(3.2, n), 11),
                          rng.integers(0, 2, n))
    idx = np.repeat(np.arange(n), n_contacts)
    seq = pd.Series(idx).groupby(idx).cumcount().to_numpy()
    first_gap = np.ceil(rng.gamma(2.0, 7.0, n)).astype(int) + 1
    gaps = np.where(seq == 0, first_gap[idx], rng.integers(7, 29, len(idx)))
    offset = pd.Series(gaps).groupby(idx).cumsum().to_numpy()
    p_attend = np.where(engaged_outcome[idx], 0.88, 0.3)
    contacts = pd.DataFrame({
        "referral_id": ref["referral_id"].to_numpy()[idx],
        "contact_date": referral_date[idx] + pd.to_timedelta(offset, unit="D"),
        "mode": _draw(rng, P_MODE, len(idx)),
        "duration_min": rng.choice([15.0, 20.0, 30.0, 45.0, 60.0], size=len(idx)),
        "attended": rng.random(len(idx)) < p_attend,
    })
    g = contacts.groupby("referral_id")
    ref["n_contacts"] = ref["referral_id"].map(g.size()).fillna(0).astype("Int64")
    ref["n_attended"] = ref["referral_id"].map(g["attended"].sum()).fillna(0).astype("Int64")
    first_att = contacts[contacts["attended"]].groupby("referral_id")["contact_date"].min()
    ref["first_contact_date"] = ref["referral_id"].map(first_att)
    last = ref["referral_id"].map(g["contact_date"].max()).fillna(ref["referral_date"])
    closed = ref["outcome"] != "ongoing"
    ref["discharge_date"] = (last + pd.to_timedelta(rng.integers(7, 31, n), unit="D")).where(closed)

    # Onward referrals for people who engaged.
    attended_any = (ref["n_attended"] > 0).to_numpy()
    n_onward = np.where(attended_any, np.minimum(rng.poisson(1.3, n), 5), 0)
    oidx = np.repeat(np.arange(n), n_onward)
    base = ref["first_contact_date"].to_numpy()[oidx]
    onward = pd.DataFrame({
        "referral_id": ref["referral_id"].to_numpy()[oidx],
        "onward_date": pd.to_datetime(base) + pd.to_timedelta(rng.integers(0, 60, len(oidx)), unit="D"),
        "asset_type": _draw(rng, P_ASSET, len(oidx)),
    })
    ref["n_onward_referrals"] = ref["referral_id"].map(onward.groupby("referral_id").size()) \
        .fillna(0).astype("Int64")
    ref["days_to_first_contact"] = (ref["first_contact_date"] - ref["referral_date"]).dt.days \
        .astype("Int64")
    return {"referrals": ref, "reasons": reasons, "contacts": contacts, "onward": onward}


def _whole_years(start: pd.Series, end: pd.Series) -> pd.Series:
    before = (end.dt.month < start.dt.month) | ((end.dt.month == start.dt.month)
                                               & (end.dt.day < start.dt.day))
    return (end.dt.year - start.dt.year - before.astype(int)).astype("Int64")


# --------------------------------------------------------------------------------------------
# Rendering one site's exports, with defects


class _Renderer:
    def __init__(self, rng: np.random.Generator, style: SiteStyle) -> None:
        self.rng, self.style = rng, style
        self.labels = LABELS[style.code]

    def label(self, field: str, codes: pd.Series) -> np.ndarray:
        """Each code written as one of the site's labels for it (chosen at random per row)."""
        table = self.labels[field]
        out = np.empty(len(codes), dtype=object)
        values = codes.to_numpy()
        for code, options in table.items():
            hit = values == code
            if hit.any():
                out[hit] = np.array(options, dtype=object)[self.rng.integers(0, len(options), hit.sum())]
        return out

    def date(self, values: pd.Series, fmt: str | None = None) -> np.ndarray:
        text = pd.Series(pd.to_datetime(values)).dt.strftime(fmt or self.style.date_format)
        return text.fillna("").to_numpy(dtype=object)

    def pick(self, pool: np.ndarray, rate: float) -> np.ndarray:
        k = int(round(rate * len(pool)))
        return pool[:k], pool[k:]


def _render_site(rng: np.random.Generator, style: SiteStyle, core: dict[str, pd.DataFrame],
                 raw_dir: Path, large: bool) -> tuple[dict[str, Any], dict[str, pd.DataFrame]]:
    r = _Renderer(rng, style)
    ref = core["referrals"].copy()
    n = len(ref)
    rates = DEFECT_RATES["referrals"]
    expect_rule = np.full(n, None, dtype=object)
    flags: list[pd.DataFrame] = []

    # Disjoint random rows for each defect.
    pool = rng.permutation(n)
    chosen: dict[str, np.ndarray] = {}
    for rule in ("missing_required", "unparseable_date", "impossible_date", "future_date",
                 "invalid_nhs_number", "placeholder_nhs_number", "under_18"):
        if rule.endswith("nhs_number") and style.identity != "nhs":
            chosen[rule] = np.array([], dtype=int)
            continue
        chosen[rule], pool = r.pick(pool, rates[rule])
        expect_rule[chosen[rule]] = rule
    unmapped_source, pool = r.pick(pool, rates["unmapped_source"])
    unmapped_reason, pool = r.pick(pool, rates["unmapped_reason"])

    # Under-18s: move the date of birth so they are 14-17 at referral.
    u = chosen["under_18"]
    young = rng.integers(14, 18, len(u))
    ref.loc[ref.index[u], "date_of_birth"] = (
        ref["referral_date"].iloc[u] - pd.to_timedelta(young * 365.25 + 100, unit="D")).dt.normalize().to_numpy()
    ref.loc[ref.index[u], "age_at_referral"] = _whole_years(
        ref["date_of_birth"].iloc[u], ref["referral_date"].iloc[u]).to_numpy()

    raw = pd.DataFrame({"referral_id": ref["referral_id"]})
    fmt = style.date_format
    raw["referral_date"] = r.date(ref["referral_date"])
    rd = raw["referral_date"].to_numpy(dtype=object)
    rd[chosen["missing_required"]] = ""
    feb31 = "31/02/2024" if fmt == "%d/%m/%Y" else pd.Timestamp("2024-02-01").strftime(fmt).replace("01", "31", 1)
    rd[chosen["unparseable_date"]] = feb31
    rd[chosen["impossible_date"]] = pd.Timestamp("1900-01-01").strftime(fmt)
    fut = ref["referral_date"].iloc[chosen["future_date"]] + pd.DateOffset(years=40)
    rd[chosen["future_date"]] = r.date(fut)
    raw["referral_date"] = rd

    if style.identity == "nhs":
        nhs = ref["nhs_number"].to_numpy(dtype=object).copy()
        bad = chosen["invalid_nhs_number"]
        nhs[bad] = [s[:9] + str((int(s[9]) + 1 + k % 8) % 10) for k, s in enumerate(nhs[bad])]
        placeholders = np.array(["0000000000", "9999999999", "1111111111"], dtype=object)
        nhs[chosen["placeholder_nhs_number"]] = placeholders[
            rng.integers(0, 3, len(chosen["placeholder_nhs_number"]))]
        if style.nhs_format == "spaces":
            nhs = np.array([f"{s[:3]} {s[3:6]} {s[6:]}" for s in nhs], dtype=object)
        elif style.nhs_format == "dashes":
            nhs = np.array([f"{s[:3]}-{s[3:6]}-{s[6:]}" for s in nhs], dtype=object)
        raw["nhs_number"] = nhs
    else:
        raw["local_id"] = ref["local_id"].to_numpy()
    if style.dob:
        raw["date_of_birth"] = r.date(ref["date_of_birth"])
    else:
        raw["age"] = ref["age_at_referral"].astype(str).to_numpy()

    raw["sex"] = r.label("sex", ref["sex"])
    raw["ethnicity"] = r.label("ethnicity", ref["ethnicity"])
    src = r.label("referral_source", ref["referral_source"])
    src[unmapped_source] = np.array(UNMAPPED["referral_source"], dtype=object)[
        rng.integers(0, len(UNMAPPED["referral_source"]), len(unmapped_source))]
    ref.loc[ref.index[unmapped_source], "referral_source"] = "other"
    raw["referral_source"] = src
    raw["imd_decile"] = ref["imd_decile"].astype(str).replace("<NA>", "").to_numpy()
    raw["outcome"] = r.label("outcome", ref["outcome"])
    raw["discharge_date"] = r.date(ref["discharge_date"])

    # Reasons: site labels, plus an unmapped extra reason on some referrals.
    reasons = core["reasons"].copy()
    reasons["label"] = r.label("reason", reasons["reason"])
    extra = pd.DataFrame({
        "referral_id": ref["referral_id"].to_numpy()[unmapped_reason],
        "reason": "other",
        "label": np.array(UNMAPPED["reasons"], dtype=object)[
            rng.integers(0, len(UNMAPPED["reasons"]), len(unmapped_reason))],
    })
    reasons = pd.concat([reasons, extra], ignore_index=True)
    reasons_truth = reasons.drop_duplicates(["referral_id", "reason"])[["referral_id", "reason"]]

    # Fictional identifiers and free text that the cleaner must drop.
    raw["patient_name"] = "TEST PATIENT " + pd.Series(np.arange(1, n + 1)).astype(str)
    raw["postcode"] = "ZZ99 " + pd.Series(rng.integers(1, 10, n)).astype(str) + "AA"
    raw["notes"] = np.array(["Lives alone; daughter visits weekly", "Keen on gardening",
                             "Prefers phone calls", ""], dtype=object)[rng.integers(0, 4, n)]

    contacts_raw, contacts_truth, c_flags = _render_events(
        r, core["contacts"], ref, expect_rule, "contacts") if style.contacts else (None, None, [])
    onward_raw, onward_truth, o_flags = _render_events(
        r, core["onward"], ref, expect_rule, "onward_referrals") if style.onward else (None, None, [])

    if not style.contacts:
        raw["n_contacts"] = ref["n_contacts"].astype(str).to_numpy()
        raw["n_attended"] = ref["n_attended"].astype(str).to_numpy()
        raw["first_contact_date"] = r.date(ref["first_contact_date"])
    if not style.onward:
        raw["n_onward_referrals"] = ref["n_onward_referrals"].astype(str).to_numpy()

    # Exact duplicate rows, each directly after its original.
    clean_rows = np.flatnonzero(pd.isna(expect_rule))
    dups = np.sort(rng.choice(clean_rows, size=int(round(rates["duplicate_row"] * n)), replace=False))
    raw["_pos"] = np.arange(n, dtype=float)
    raw["_rule"] = expect_rule
    raw["_reasons"] = raw["referral_id"].map(
        reasons.groupby("referral_id")["label"].agg(list))
    copies = raw.iloc[dups].copy()
    copies["_pos"] += 0.5
    copies["_rule"] = "duplicate_row"
    raw = pd.concat([raw, copies]).sort_values("_pos", kind="stable").reset_index(drop=True)

    flag_refs = set(ref["referral_id"].to_numpy()[unmapped_source])
    site_cfg, files = _write_site(style, raw, contacts_raw, onward_raw, raw_dir, large, rng)

    truth_rows = _row_truth(raw, files["referrals"], style.code, "referrals")
    truth_rows["flag_source"] = raw["referral_id"].isin(flag_refs).to_numpy() & (
        raw["_rule"].isna().to_numpy())
    truth_rows["flag_reason"] = raw["referral_id"].isin(
        set(extra["referral_id"])).to_numpy() & raw["_rule"].isna().to_numpy()
    kept_ids = set(raw.loc[raw["_rule"].isna(), "referral_id"])
    clean = ref[ref["referral_id"].isin(kept_ids)].copy()
    if not style.dob:
        clean["date_of_birth"] = pd.NaT
    if style.identity != "nhs":
        clean["nhs_number"] = None
    else:
        clean["local_id"] = None
    clean.insert(0, "site", style.code)
    truth = {"referral_rows": truth_rows, "referrals": clean.drop(columns=["person"]),
             "referral_reasons": reasons_truth[reasons_truth["referral_id"].isin(kept_ids)]
             .assign(site=style.code)}
    if contacts_raw is not None:
        truth["contact_rows"] = _row_truth(contacts_raw, files["contacts"], style.code, "contacts")
        truth["contacts"] = contacts_truth[contacts_truth["referral_id"].isin(kept_ids)] \
            .assign(site=style.code)
    if onward_raw is not None:
        truth["onward_rows"] = _row_truth(onward_raw, files["onward_referrals"], style.code,
                                          "onward_referrals")
        truth["onward_referrals"] = onward_truth[onward_truth["referral_id"].isin(kept_ids)] \
            .assign(site=style.code)
    del flags, c_flags, o_flags
    q = simulate_questionnaires(rng, style.code, ref, core["reasons"], kept_ids)
    folder = raw_dir / f"site_{style.code.lower()}"
    q_source, q_truth = _render_questionnaires(rng, style.code, q, ref, folder, large)
    site_cfg["sources"].append(q_source)
    truth.update(q_truth)
    return site_cfg, truth


def _render_events(r: _Renderer, events: pd.DataFrame, ref: pd.DataFrame, ref_rule: np.ndarray,
                   table: str) -> tuple[pd.DataFrame, pd.DataFrame, list]:
    """Contacts or onward referrals as raw rows, with injected defect rows appended."""
    rng, rates = r.rng, DEFECT_RATES[table]
    date_col = "contact_date" if table == "contacts" else "onward_date"
    ev = events.copy().reset_index(drop=True)
    n = len(ev)
    raw = pd.DataFrame({"referral_id": ev["referral_id"], date_col: r.date(ev[date_col])})
    rule_of_ref = pd.Series(ref_rule, index=ref["referral_id"])
    raw["_rule"] = ev["referral_id"].map(rule_of_ref).notna().map({True: "referral_rejected",
                                                                   False: None})
    if table == "contacts":
        raw["mode"] = r.label("mode", ev["mode"])
        raw["duration_min"] = ev["duration_min"].map("{:g}".format)
        raw["attended"] = r.label("attended", ev["attended"].map({True: "true", False: "false"}))
        unm, _ = r.pick(rng.permutation(n), rates["unmapped_mode"])
        mode = raw["mode"].to_numpy(dtype=object)
        mode[unm] = np.array(UNMAPPED["mode"], dtype=object)[rng.integers(0, 2, len(unm))]
        raw["mode"] = mode
        ev.loc[unm, "mode"] = "other"
        raw["_flag"] = False
        raw.loc[unm, "_flag"] = True
    else:
        raw["asset_type"] = r.label("asset_type", ev["asset_type"])
        unm, _ = r.pick(rng.permutation(n), rates["unmapped_asset"])
        asset = raw["asset_type"].to_numpy(dtype=object)
        asset[unm] = np.array(UNMAPPED["asset_type"], dtype=object)[rng.integers(0, 3, len(unm))]
        raw["asset_type"] = asset
        ev.loc[unm, "asset_type"] = "other"
        raw["_flag"] = False
        raw.loc[unm, "_flag"] = True
    raw["_pos"] = np.arange(n, dtype=float)

    clean_refs = ref[pd.isna(ref_rule)]
    extra = []
    k = lambda rule: int(round(rates.get(rule, 0) * max(n, 1)))  # noqa: E731
    ok_rows = np.flatnonzero(raw["_rule"].isna().to_numpy() & ~raw["_flag"].to_numpy())
    if len(ok_rows):
        d = raw.iloc[np.sort(rng.choice(ok_rows, size=min(k("duplicate_row"), len(ok_rows)),
                                        replace=False))].copy()
        d["_pos"] += 0.5
        d["_rule"] = "duplicate_row"
        extra.append(d)
    if len(clean_refs):
        plain = np.flatnonzero(~raw["_flag"].to_numpy()) if n else np.array([], dtype=int)

        def injected(rule: str, count: int) -> pd.DataFrame:
            base = raw.iloc[rng.choice(plain, count)].copy() if len(plain) else raw.head(0)
            base["_pos"] = rng.uniform(0, max(n, 1), count)
            base["_rule"] = rule
            base["_flag"] = False
            return base
        u = injected("unknown_referral", k("unknown_referral"))
        u["referral_id"] = [f"{r.style.code}9{i:05d}X" for i in range(len(u))]
        extra.append(u)
        b = injected("before_referral", k("before_referral"))
        pick = clean_refs.sample(len(b), random_state=int(rng.integers(2**31)), replace=True)
        b["referral_id"] = pick["referral_id"].to_numpy()
        b[date_col] = r.date(pick["referral_date"] - pd.to_timedelta(
            rng.integers(3, 60, len(b)), unit="D"))
        extra.append(b)
        if table == "contacts":
            p = injected("unparseable_date", k("unparseable_date"))
            p[date_col] = "99/99/9999"
            extra.append(p)
            m = injected("missing_required", k("missing_required"))
            m[date_col] = ""
            extra.append(m)
    raw = pd.concat([raw, *extra]).sort_values("_pos", kind="stable").reset_index(drop=True)
    return raw, ev, []


def _row_truth(raw: pd.DataFrame, files: list[tuple[str, np.ndarray]], site: str,
               table: str) -> pd.DataFrame:
    parts = []
    for name, rows in files:
        sub = raw.iloc[rows]
        parts.append(pd.DataFrame({
            "site": site, "table": table, "source_file": name,
            "source_row": np.arange(1, len(rows) + 1),
            "referral_id": sub["referral_id"].to_numpy(),
            "expected_rule": sub["_rule"].to_numpy(),
            "flagged": sub["_flag"].to_numpy() if "_flag" in sub else False,
        }))
    out = pd.concat(parts, ignore_index=True)
    out["expected_action"] = np.where(out["expected_rule"].isna(), "kept", "rejected")
    return out


# --------------------------------------------------------------------------------------------
# Writing files in each site's shape


def _write_site(style: SiteStyle, ref: pd.DataFrame, contacts: pd.DataFrame | None,
                onward: pd.DataFrame | None, raw_dir: Path, large: bool,
                rng: np.random.Generator) -> tuple[dict[str, Any], dict[str, list]]:
    writer = {"A": _site_a, "B": _site_b, "C": _site_c, "D": _site_d, "E": _site_e,
              "F": _site_f}[style.code]
    folder = raw_dir / f"site_{style.code.lower()}"
    folder.mkdir(parents=True, exist_ok=True)
    sources, files = writer(style, ref, contacts, onward, folder, large)
    values = SITE_VALUES.get(style.code, {})
    for source in sources:
        if source["table"] == "referrals":
            for fld in ("referral_source", "sex", "outcome"):
                if values.get(fld):
                    source.setdefault("values", {})[fld] = dict(values[fld])
    context = {"host": style.host, "rural": style.rural}
    return {"name": style.name, "context": context, "sources": sources}, files


def _export(frame: pd.DataFrame, headers: dict[str, str]) -> pd.DataFrame:
    return frame[list(headers)].rename(columns=headers)


def _reasons_text(ref: pd.DataFrame, sep: str) -> pd.Series:
    return ref["_reasons"].map(lambda labels: sep.join(labels) if isinstance(labels, list) else "")


def _reason_columns(ref: pd.DataFrame, k: int) -> pd.DataFrame:
    lists = ref["_reasons"].map(lambda labels: labels if isinstance(labels, list) else [])
    return pd.DataFrame({f"reason_{i + 1}": lists.map(lambda labels, i=i: labels[i] if len(labels) > i else "")
                         for i in range(k)})


def _write_csv(frame: pd.DataFrame, path: Path, encoding: str = "utf-8",
               preamble: list[str] | None = None) -> None:
    with path.open("w", encoding=encoding, newline="") as fh:
        for line in preamble or []:
            fh.write(line + "\r\n")
        frame.to_csv(fh, index=False, lineterminator="\r\n")


def _rel(folder: Path, name: str) -> str:
    return f"{folder.name}/{name}"


def _all(frame: pd.DataFrame) -> np.ndarray:
    return np.arange(len(frame))


A_REF = {"referral_id": "Ref No", "nhs_number": "NHS Number", "patient_name": "Patient Name",
         "date_of_birth": "DOB", "postcode": "Postcode", "sex": "Gender",
         "ethnicity": "Ethnic Group", "referral_source": "Referred By",
         "reasons": "Reason(s) for referral", "referral_date": "Date Referred",
         "imd_decile": "IMD Decile", "outcome": "Outcome", "discharge_date": "Discharge Date",
         "notes": "Notes"}


def _mapping(headers: dict[str, str], drop=("patient_name", "postcode", "notes")) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k not in drop}


def _site_a(style, ref, contacts, onward, folder, large):
    """cp1252 clinical-system search export: three preamble lines above the header."""
    pre = ["Search: Social prescribing referrals (link worker caseload)",
           "Run by: Riverside PCN data team – report v2", ""]
    frame = ref.assign(reasons=_reasons_text(ref, "; "))
    _write_csv(_export(frame, A_REF), folder / "referrals.csv", "cp1252", pre)
    c_head = {"referral_id": "Ref No", "contact_date": "Contact Date", "mode": "Contact Type",
              "duration_min": "Duration (mins)", "attended": "Attendance"}
    _write_csv(_export(contacts, c_head), folder / "contacts.csv", "cp1252", pre)
    o = onward.assign(organisation="Café Connect")
    o_head = {"referral_id": "Ref No", "onward_date": "Date Referred On",
              "asset_type": "Service Type", "organisation": "Organisation"}
    _write_csv(_export(o, o_head), folder / "onward.csv", "cp1252", pre)
    common = {"encoding": "cp1252", "skip_rows": 3}
    sources = [
        {"table": "referrals", "path": _rel(folder, "referrals.csv"), **common,
         "multi_value_separator": ";", "columns": _mapping(A_REF)},
        {"table": "contacts", "path": _rel(folder, "contacts.csv"), **common, "columns": c_head},
        {"table": "onward_referrals", "path": _rel(folder, "onward.csv"), **common,
         "columns": {k: v for k, v in o_head.items() if k != "organisation"}},
    ]
    files = {"referrals": [(_rel(folder, "referrals.csv"), _all(ref))],
             "contacts": [(_rel(folder, "contacts.csv"), _all(contacts))],
             "onward_referrals": [(_rel(folder, "onward.csv"), _all(onward))]}
    return sources, files


def _site_b(style, ref, contacts, onward, folder, large):
    """UTF-8 with BOM, ISO dates, snake_case headers, reasons in up to three columns."""
    heads = {"referral_id": "referral_ref", "nhs_number": "nhs_no", "date_of_birth": "dob",
             "postcode": "postcode", "sex": "sex", "ethnicity": "ethnic_category",
             "referral_source": "source", "referral_date": "referral_date",
             "imd_decile": "imd_decile", "outcome": "status", "discharge_date": "closed_date"}
    frame = pd.concat([ref.reset_index(drop=True), _reason_columns(ref.reset_index(drop=True), 4)],
                      axis=1)
    out = _export(frame, {**heads, **{f"reason_{i}": f"reason_{i}" for i in range(1, 5)}})
    _write_csv(out, folder / "referrals.csv", "utf-8-sig")
    c_head = {"referral_id": "referral_ref", "contact_date": "appt_date", "mode": "appt_type",
              "duration_min": "mins", "attended": "appt_status"}
    _write_csv(_export(contacts, c_head), folder / "contacts.csv", "utf-8-sig")
    o_head = {"referral_id": "referral_ref", "onward_date": "onward_referral_date",
              "asset_type": "service_category"}
    _write_csv(_export(onward, o_head), folder / "onward_referrals.csv", "utf-8-sig")
    common = {"encoding": "auto", "date_format": "%Y-%m-%d"}
    columns = _mapping(heads)
    columns["reasons"] = [f"reason_{i}" for i in range(1, 5)]
    sources = [
        {"table": "referrals", "path": _rel(folder, "referrals.csv"), **common,
         "columns": columns},
        {"table": "contacts", "path": _rel(folder, "contacts.csv"), **common,
         "columns": c_head, "values": {"attended": {"Cancelled": "false"}}},
        {"table": "onward_referrals", "path": _rel(folder, "onward_referrals.csv"), **common,
         "columns": o_head},
    ]
    files = {"referrals": [(_rel(folder, "referrals.csv"), _all(ref))],
             "contacts": [(_rel(folder, "contacts.csv"), _all(contacts))],
             "onward_referrals": [(_rel(folder, "onward_referrals.csv"), _all(onward))]}
    return sources, files


C_REF = {"referral_id": "Referral ID", "nhs_number": "NHS No.", "date_of_birth": "Date of Birth",
         "sex": "Sex", "ethnicity": "Ethnicity", "referral_source": "Referral Source",
         "reasons": "Reasons", "referral_date": "Referral Date", "imd_decile": "IMD",
         "outcome": "Status", "discharge_date": "Discharged"}


def _excel_dates(text: pd.Series, fmt: str) -> pd.Series:
    """Dates as real Excel date cells where they parse; anything odd stays as typed text."""
    parsed = pd.to_datetime(text, format=fmt, errors="coerce")
    return parsed.astype(object).where(parsed.notna(), text)


def _site_c(style, ref, contacts, onward, folder, large):
    """One Excel workbook, a sheet per table, dates as Excel dates (CSV files at scale)."""
    frame = ref.assign(reasons=_reasons_text(ref, ", "))
    r_out = _export(frame, C_REF)
    c_head = {"referral_id": "Referral ID", "contact_date": "Date", "mode": "Type",
              "duration_min": "Minutes", "attended": "Attended"}
    o_head = {"referral_id": "Referral ID", "onward_date": "Date", "asset_type": "Asset"}
    c_out, o_out = _export(contacts, c_head), _export(onward, o_head)
    if large:
        _write_csv(r_out, folder / "referrals.csv")
        _write_csv(c_out, folder / "contacts.csv")
        _write_csv(o_out, folder / "onward.csv")
        paths = {"referrals": ("referrals.csv", None), "contacts": ("contacts.csv", None),
                 "onward_referrals": ("onward.csv", None)}
    else:
        for col in ("Date of Birth", "Referral Date", "Discharged"):
            r_out[col] = _excel_dates(r_out[col], style.date_format)
        c_out["Date"] = _excel_dates(c_out["Date"], style.date_format)
        o_out["Date"] = _excel_dates(o_out["Date"], style.date_format)
        with pd.ExcelWriter(folder / "northgate_export.xlsx", engine="openpyxl") as xl:
            r_out.to_excel(xl, sheet_name="Referrals", index=False)
            c_out.to_excel(xl, sheet_name="Contacts", index=False)
            o_out.to_excel(xl, sheet_name="Onward", index=False)
        paths = {"referrals": ("northgate_export.xlsx", "Referrals"),
                 "contacts": ("northgate_export.xlsx", "Contacts"),
                 "onward_referrals": ("northgate_export.xlsx", "Onward")}
    heads = {"referrals": C_REF, "contacts": c_head, "onward_referrals": o_head}
    sources = []
    for table, (name, sheet) in paths.items():
        s = {"table": table, "path": _rel(folder, name)}
        if sheet:
            s["sheet"] = sheet
        if table == "referrals":
            s["multi_value_separator"] = ","
        s["columns"] = heads[table]
        sources.append(s)
    frames = {"referrals": ref, "contacts": contacts, "onward_referrals": onward}
    files = {t: [(_rel(folder, paths[t][0]), _all(frames[t]))] for t in paths}
    return sources, files


def _site_d(style, ref, contacts, onward, folder, large):
    """Own client IDs and ages (no NHS numbers or dates of birth); one reason per row."""
    heads = {"referral_id": "Referral No", "local_id": "Client ID", "age": "Age",
             "sex": "Sex", "ethnicity": "Ethnicity", "referral_source": "Referrer",
             "reasons": "Reasons", "referral_date": "Referral Date", "imd_decile": "IMD decile",
             "outcome": "Outcome", "discharge_date": "End Date", "notes": "Notes"}
    frame = ref.assign(reasons=_reasons_text(ref, " / "))
    _write_csv(_export(frame, heads), folder / "referrals.csv")
    c_head = {"referral_id": "Referral No", "contact_date": "Appointment Date",
              "mode": "Method", "duration_min": "Length", "attended": "Attended?"}
    _write_csv(_export(contacts, c_head), folder / "appointments.csv")
    o_head = {"referral_id": "Referral No", "onward_date": "Signposted On",
              "asset_type": "Signposted To"}
    _write_csv(_export(onward, o_head), folder / "signposting.csv")
    sources = [
        {"table": "referrals", "path": _rel(folder, "referrals.csv"),
         "multi_value_separator": "/", "columns": _mapping(heads)},
        {"table": "contacts", "path": _rel(folder, "appointments.csv"), "columns": c_head},
        {"table": "onward_referrals", "path": _rel(folder, "signposting.csv"),
         "columns": o_head},
    ]
    files = {"referrals": [(_rel(folder, "referrals.csv"), _all(ref))],
             "contacts": [(_rel(folder, "appointments.csv"), _all(contacts))],
             "onward_referrals": [(_rel(folder, "signposting.csv"), _all(onward))]}
    return sources, files


def _site_e(style, ref, contacts, onward, folder, large):
    """No contacts table: counts and first-contact date as columns; '05-Mar-2024' dates."""
    heads = {"referral_id": "Case ID", "nhs_number": "NHS", "date_of_birth": "Birth Date",
             "sex": "Gender", "ethnicity": "Ethnicity", "referral_source": "Referred From",
             "reasons": "Needs", "referral_date": "Received", "imd_decile": "IMD Decile",
             "outcome": "Case Outcome", "discharge_date": "Closed", "n_contacts":
             "No. of contacts", "n_attended": "No. attended", "first_contact_date":
             "First contact", "n_onward_referrals": "No. onward referrals"}
    frame = ref.assign(reasons=_reasons_text(ref, " | "))
    _write_csv(_export(frame, heads), folder / "valley_caseload.csv")
    sources = [{"table": "referrals", "path": _rel(folder, "valley_caseload.csv"),
                "date_format": style.date_format, "multi_value_separator": "|",
                "columns": heads}]
    files = {"referrals": [(_rel(folder, "valley_caseload.csv"), _all(ref))]}
    return sources, files


def _site_f(style, ref, contacts, onward, folder, large):
    """Exports split into one file per year (a glob path reads them all)."""
    heads = {"referral_id": "ReferralID", "nhs_number": "NHSNumber", "date_of_birth": "DateOfBirth",
             "postcode": "PostCode", "sex": "Gender", "ethnicity": "Ethnicity",
             "referral_source": "ReferralSource", "reasons": "ReferralReasons",
             "referral_date": "ReferralDate", "imd_decile": "IMDDecile", "outcome": "Outcome",
             "discharge_date": "DischargeDate"}
    frame = ref.assign(reasons=_reasons_text(ref, ";"))
    out = _export(frame, heads)
    year = pd.to_datetime(ref["referral_date"], format="%d/%m/%Y", errors="coerce").dt.year
    # Rows with unreadable dates go with the row before them (the export is date-ordered).
    year = year.where(year.isin([2023, 2024])).ffill().fillna(2023).astype(int).to_numpy()
    files_ref = []
    for y in (2023, 2024):
        rows = np.flatnonzero(year == y)
        _write_csv(out.iloc[rows], folder / f"referrals_{y}.csv")
        files_ref.append((_rel(folder, f"referrals_{y}.csv"), rows))
    c_head = {"referral_id": "ReferralID", "contact_date": "ContactDate", "mode": "ContactMode",
              "duration_min": "DurationMinutes", "attended": "Outcome"}
    c_year = pd.to_datetime(contacts["contact_date"], format="%d/%m/%Y", errors="coerce").dt.year
    c_year = c_year.where(c_year.notna()).ffill().fillna(2023).astype(int).clip(2023, 2025)
    files_c = []
    c_out = _export(contacts, c_head)
    for y in sorted(c_year.unique()):
        rows = np.flatnonzero(c_year.to_numpy() == y)
        _write_csv(c_out.iloc[rows], folder / f"contacts_{y}.csv")
        files_c.append((_rel(folder, f"contacts_{y}.csv"), rows))
    o_head = {"referral_id": "ReferralID", "onward_date": "OnwardDate", "asset_type": "AssetType"}
    _write_csv(_export(onward, o_head), folder / "onward_referrals.csv")
    sources = [
        {"table": "referrals", "path": _rel(folder, "referrals_*.csv"),
         "multi_value_separator": ";", "columns": _mapping(heads)},
        {"table": "contacts", "path": _rel(folder, "contacts_*.csv"), "columns": c_head},
        {"table": "onward_referrals", "path": _rel(folder, "onward_referrals.csv"),
         "columns": o_head},
    ]
    files = {"referrals": files_ref, "contacts": files_c,
             "onward_referrals": [(_rel(folder, "onward_referrals.csv"), _all(onward))]}
    return sources, files


# --------------------------------------------------------------------------------------------
# Questionnaires: a latent-wellbeing model with a known, context-dependent true change

# True change in latent wellbeing (SD units) for one referral, baseline to follow-up:
#   0.35 + 0.30 * lonely at baseline + 0.06 * (attended contacts - 4)
#        - 0.25 * most deprived decile - 0.25 * referred for money/debt or housing
#        + 0.00 * link worker hosted by the voluntary sector
#        + site effect ~ N(0, 0.12^2) + N(0, 0.5^2) noise.
# Loneliness (latent) falls by half the wellbeing gain. Items are rounded, clipped linear
# functions of the latent traits plus noise. These are what later analyses should recover;
# the demo's programme theory (DEMO_CMOCS) is written so that three CMOCs hold, one runs the
# other way (practical needs) and one has no true effect (VCSE host).
TRUE_CHANGE = {"intercept": 0.35, "lonely_baseline": 0.30, "per_attended_contact": 0.06,
               "most_deprived_decile": -0.25, "practical_need": -0.25, "vcse_host": 0.0,
               "site_sd": 0.12, "individual_sd": 0.5}
P_BASELINE = 0.85          # engaged referrals completing a baseline questionnaire
FOLLOWUP_DAYS = (240, 425)  # 8-14 months: some fall outside the 270-365 day window

QUESTIONNAIRE_DEFECTS = {
    "duplicate_row": 0.01,
    "missing_required": 0.005,       # no referral ID / person identifier
    "unknown_referral": 0.005,
    "missing_timepoint": 0.005,      # label nobody mapped ("T9")
    "missing_item": 0.03,            # one SWEMWBS item blank -> not scored
    "out_of_range_item": 0.01,       # a UCLA-3 answer of 7 -> flagged, not scored
    "followup_before_baseline": 0.01,
}

# site code -> export shape of its questionnaire file
Q_STYLES: dict[str, dict[str, Any]] = {
    "A": {"file": "questionnaires.csv", "link": "referral_id", "id": "Ref No",
          "timepoint": ("Stage", {"baseline": "Baseline", "followup": "Follow-up"}),
          "date": ("Date completed", "%d/%m/%Y"), "labels": True,
          "extra": {}},
    "B": {"file": "questionnaires.csv", "link": "referral_id", "id": "referral_ref",
          "timepoint": ("timepoint", {"baseline": "T0", "followup": "T1"}),
          "date": ("completed", "%Y-%m-%d"), "labels": False,
          "extra": {"phq9": "phq9_{i}", "gad7": "gad7_{i}"}},
    "C": {"file": "northgate_questionnaires.xlsx", "link": "referral_id", "id": "Referral ID",
          "timepoint": ("Stage", {"baseline": "Initial", "followup": "Review"}),
          "date": ("Completed", "%d/%m/%Y"), "labels": False, "extra": {}},
    "D": {"file": "wellbeing.csv", "link": "local_id", "id": "Client ID", "timepoint": None,
          "date": ("Date", "%d/%m/%Y"), "labels": False,
          "extra": {"ons_loneliness": "Lonely"}},
    "E": {"file": "outcomes.csv", "link": "referral_id", "id": "Case ID",
          "timepoint": ("Assessment", {"baseline": "First", "followup": "Final"}),
          "date": ("Date", "%d-%b-%Y"), "labels": False, "extra": {"eq_vas": "EQ VAS"}},
    "F": {"file": "questionnaires.csv", "link": "nhs_number", "id": "NHSNumber",
          "timepoint": ("Timepoint", {"baseline": "Pre", "followup": "Post"}),
          "date": ("Date", "%d/%m/%Y"), "labels": False, "extra": {}},
}
LABEL_TEXT = {
    "swemwbs": {1: "None of the time", 2: "Rarely", 3: "Some of the time", 4: "Often",
                5: "All of the time"},
    "ucla3": {1: "Hardly ever", 2: "Some of the time", 3: "Often"},
}


def _clip_round(x: np.ndarray, low: int, high: int) -> np.ndarray:
    return np.clip(np.round(x), low, high).astype(int)


def _items(rng: np.random.Generator, theta: np.ndarray, lam: np.ndarray,
           instruments: list[str]) -> dict[str, np.ndarray]:
    """Item answers (n x k arrays) for each instrument from latent wellbeing and loneliness."""
    n = len(theta)
    noise = lambda sd, k: rng.normal(0, sd, (n, k))  # noqa: E731
    out = {
        "swemwbs": _clip_round(3.0 + 0.8 * theta[:, None] + noise(0.6, 7), 1, 5),
        "ucla3": _clip_round(1.9 + 0.6 * lam[:, None] + noise(0.45, 3), 1, 3),
        "ons4": np.column_stack([
            _clip_round(6.0 + 1.6 * theta + rng.normal(0, 1, n), 0, 10),
            _clip_round(6.5 + 1.4 * theta + rng.normal(0, 1, n), 0, 10),
            _clip_round(6.0 + 1.6 * theta + rng.normal(0, 1.2, n), 0, 10),
            _clip_round(4.5 - 1.5 * theta + rng.normal(0, 1.5, n), 0, 10)]),
        "phq9": _clip_round(1.1 - 0.6 * theta[:, None] + noise(0.5, 9), 0, 3),
        "gad7": _clip_round(1.0 - 0.6 * theta[:, None] + noise(0.5, 7), 0, 3),
        "ons_loneliness": _clip_round(3.0 + 0.9 * lam + rng.normal(0, 0.6, n), 1, 5)[:, None],
        "eq_vas": _clip_round(62 + 14 * theta + rng.normal(0, 8, n), 0, 100)[:, None],
    }
    return {k: v for k, v in out.items() if k in instruments}


def simulate_questionnaires(rng: np.random.Generator, code: str, ref: pd.DataFrame,
                            reasons: pd.DataFrame, kept_ids: set[str]) -> dict[str, Any]:
    """Baseline and follow-up questionnaires for one site's engaged, kept referrals."""
    style = Q_STYLES[code]
    instruments = ["swemwbs", "ucla3", "ons4", *style["extra"]]
    once = ref.groupby("person")["referral_id"].transform("size") == 1
    eligible = ref[once & ref["referral_id"].isin(kept_ids) & (ref["n_attended"] > 0)
                   & (rng.random(len(ref)) < P_BASELINE)].reset_index(drop=True)
    n = len(eligible)
    lonely_reason = eligible["referral_id"].isin(
        reasons.loc[reasons["reason"] == "loneliness_isolation", "referral_id"]).to_numpy()
    practical = eligible["referral_id"].isin(reasons.loc[reasons["reason"].isin(
        ["finance_debt_benefits", "housing"]), "referral_id"]).to_numpy()
    vcse = SITE_STYLES[code].host == "vcse"
    theta0 = rng.normal(-0.4, 1, n) - 0.3 * lonely_reason
    lam0 = -0.5 * theta0 + rng.normal(0, 0.85, n) + 0.6 * lonely_reason
    site_effect = rng.normal(0, TRUE_CHANGE["site_sd"])
    items0 = _items(rng, theta0, lam0, instruments)
    ucla0 = items0["ucla3"].sum(axis=1)
    lonely0 = (ucla0 >= 6).astype(float)
    attended = eligible["n_attended"].astype(float).to_numpy()
    most_deprived = (eligible["imd_decile"].astype("Float64") == 1).fillna(False).to_numpy(bool)
    delta = (TRUE_CHANGE["intercept"] + TRUE_CHANGE["lonely_baseline"] * lonely0
             + TRUE_CHANGE["per_attended_contact"] * (attended - 4)
             + TRUE_CHANGE["most_deprived_decile"] * most_deprived
             + TRUE_CHANGE["practical_need"] * practical + TRUE_CHANGE["vcse_host"] * vcse
             + site_effect
             + rng.normal(0, TRUE_CHANGE["individual_sd"], n))
    theta1 = theta0 + delta
    lam1 = lam0 - 0.5 * delta + rng.normal(0, 0.3, n)
    items1 = _items(rng, theta1, lam1, instruments)
    # Follow-up: missing at random given deprivation and age.
    age = eligible["age_at_referral"].astype(float).to_numpy()
    logit = 0.55 + 0.4 * (age >= 55) - 0.5 * (eligible["imd_decile"].astype("Float64")
                                              .fillna(5).to_numpy(float) <= 2)
    followed = rng.random(n) < 1 / (1 + np.exp(-logit))
    base_date = pd.to_datetime(eligible["first_contact_date"]).to_numpy()
    gap = rng.integers(FOLLOWUP_DAYS[0], FOLLOWUP_DAYS[1] + 1, n)
    follow_date = base_date + gap.astype("timedelta64[D]")
    people = pd.DataFrame({
        "referral_id": eligible["referral_id"], "local_id": eligible["local_id"],
        "nhs_number": eligible["nhs_number"], "lonely_baseline": lonely0.astype(bool),
        "true_change": delta, "followed_up": followed, "site_effect": site_effect,
    })
    rows = []
    for tp, dates, items, mask in (("baseline", base_date, items0, np.ones(n, bool)),
                                   ("followup", follow_date, items1, followed)):
        frame = pd.DataFrame({"referral_id": eligible["referral_id"].to_numpy()[mask],
                              "timepoint": tp, "completed_date": dates[mask]})
        for name, values in items.items():
            for j in range(values.shape[1]):
                frame[f"{name}:{j}"] = values[mask, j]
        rows.append(frame)
    return {"rows": pd.concat(rows, ignore_index=True), "people": people,
            "instruments": instruments}


Q_HEADERS: dict[str, dict[str, str]] = {
    # site -> instrument -> header template ({i} = 1-based item number)
    "A": {"swemwbs": "SW{i}", "ucla3": "Lonely{i}", "ons4": "ONS{i}"},
    "B": {"swemwbs": "swemwbs_{i}", "ucla3": "ucla_{i}", "ons4": "ons_{i}"},
    "C": {"swemwbs": "Q{i}", "ucla3": "UCLA{i}", "ons4": "ONS4_{i}"},
    "D": {"swemwbs": "WB{i}", "ucla3": "L{i}", "ons4": "ONS{i}"},
    "E": {"swemwbs": "WEMWBS short {i}", "ucla3": "Loneliness {i}", "ons4": "Personal wellbeing {i}"},
    "F": {"swemwbs": "SWEMWBS{i}", "ucla3": "UCLA{i}", "ons4": "ONS{i}"},
}


def _q_headers(code: str, name: str, k: int) -> list[str]:
    template = Q_STYLES[code]["extra"].get(name) or Q_HEADERS[code][name]
    return [template.format(i=i + 1) for i in range(k)] if "{i}" in template else [template]


def _render_questionnaires(rng: np.random.Generator, code: str, q: dict[str, Any],
                           ref: pd.DataFrame, folder: Path, large: bool
                           ) -> tuple[dict[str, Any], dict[str, pd.DataFrame]]:
    style = Q_STYLES[code]
    rows = q["rows"].sort_values("completed_date", kind="stable").reset_index(drop=True)
    rates = QUESTIONNAIRE_DEFECTS
    n = len(rows)
    rows["_rule"] = None
    rows["_flag"] = False
    item_cols = [c for c in rows.columns if ":" in c]

    # Follow-ups dated before the baseline (a mislabelled form), not for date-based sites.
    extra = []
    base = rows[rows["timepoint"] == "baseline"]
    if style["timepoint"] is not None and len(base):
        k = int(round(rates["followup_before_baseline"] * len(base)))
        early = base.sample(k, random_state=int(rng.integers(2**31))).copy()
        early["timepoint"] = "followup"
        early["completed_date"] = early["completed_date"] - pd.to_timedelta(
            rng.integers(20, 60, k), unit="D")
        extra.append(early)
    rows = pd.concat([rows, *extra], ignore_index=True)
    n = len(rows)
    pool = rng.permutation(n)
    missing_item, pool = pool[: int(rates["missing_item"] * n)], pool[int(rates["missing_item"] * n):]
    k_out = int(rates["out_of_range_item"] * n)
    out_range, pool = pool[:k_out], pool[k_out:]
    values = rows[item_cols].astype(object).to_numpy()
    sw = [item_cols.index(c) for c in item_cols if c.startswith("swemwbs:")]
    uc = [item_cols.index(c) for c in item_cols if c.startswith("ucla3:")]
    values[missing_item, rng.choice(sw, len(missing_item))] = ""
    values[out_range, rng.choice(uc, len(out_range))] = 7
    rows[item_cols] = values
    rows.loc[out_range, "_flag"] = True

    # What the cleaner should compute for the rows it keeps.
    expected = _expected_scores(rows, q["instruments"], code)

    # Rendering: identifiers, labels, dates.
    ref_by_id = ref.set_index("referral_id")
    out = pd.DataFrame()
    link = style["link"]
    ident = rows["referral_id"] if link == "referral_id" else rows["referral_id"].map(
        ref_by_id[link])
    out[style["id"]] = ident.to_numpy(dtype=object)
    if style["timepoint"]:
        header, labels = style["timepoint"]
        out[header] = rows["timepoint"].map(labels).to_numpy(dtype=object)
    date_header, fmt = style["date"]
    out[date_header] = pd.to_datetime(rows["completed_date"]).dt.strftime(fmt).to_numpy()
    items_cfg: dict[str, list[str]] = {}
    for name in q["instruments"]:
        cols = [c for c in item_cols if c.split(":")[0] == name]
        headers = _q_headers(code, name, len(cols))
        items_cfg[name] = headers
        for col, header in zip(cols, headers, strict=True):
            cell = rows[col]
            if style["labels"] and name in LABEL_TEXT:
                cell = cell.map(lambda v, m=LABEL_TEXT[name]: m.get(v, v) if v != "" else "")
            out[header] = cell.astype(str).to_numpy(dtype=object)
    out["_rule"] = rows["_rule"].to_numpy(dtype=object)
    out["_flag"] = rows["_flag"].to_numpy()
    out["_key"] = np.arange(len(out))

    # Injected rows: duplicates, no identifier, unknown person, unknown timepoint label.
    clean = np.flatnonzero(~out["_flag"].to_numpy())
    injected = []
    k = lambda rule: int(round(rates[rule] * n))  # noqa: E731
    dup = out.iloc[rng.choice(clean, k("duplicate_row"), replace=False)].copy()
    dup["_rule"], dup["_key"] = "duplicate_row", dup["_key"] + 0.5
    injected.append(dup)
    m = out.iloc[rng.choice(clean, k("missing_required"))].copy()
    m[style["id"]], m["_rule"] = "", "missing_required"
    m["_key"] = rng.uniform(0, n, len(m))
    injected.append(m)
    u = out.iloc[rng.choice(clean, k("unknown_referral"))].copy()
    if link == "referral_id":
        u[style["id"]], u["_rule"] = [f"{code}8{i:05d}Q" for i in range(len(u))], "unknown_referral"
    elif link == "local_id":
        u[style["id"]], u["_rule"] = [f"CC-9{i:05d}" for i in range(len(u))], "no_referral"
    else:
        u[style["id"]] = valid_nhs_numbers(rng, len(u), 9 - SITE_ORDER.index(code))
        u["_rule"] = "no_referral"
    u["_key"] = rng.uniform(0, n, len(u))
    injected.append(u)
    if style["timepoint"]:
        t = out.iloc[rng.choice(clean, k("missing_timepoint"))].copy()
        t[style["timepoint"][0]], t["_rule"] = "T9", "missing_timepoint"
        t["_key"] = rng.uniform(0, n, len(t))
        injected.append(t)
    for frame in injected:
        frame["_flag"] = False
    out = pd.concat([out, *injected]).sort_values("_key", kind="stable").reset_index(drop=True)

    name = style["file"]
    if name.endswith(".xlsx") and large:
        name = name.replace(".xlsx", ".csv")
    data = out.drop(columns=["_rule", "_flag", "_key"])
    if name.endswith(".xlsx"):
        data[date_header] = _excel_dates(data[date_header], fmt)
        with pd.ExcelWriter(folder / name, engine="openpyxl") as xl:
            data.to_excel(xl, sheet_name="Questionnaires", index=False)
    else:
        _write_csv(data, folder / name)
    source: dict[str, Any] = {"table": "questionnaires", "path": _rel(folder, name)}
    if name.endswith(".xlsx"):
        source["sheet"] = "Questionnaires"
    if fmt != "%d/%m/%Y":
        source["date_format"] = fmt
    if style["timepoint"] is None:
        source["timepoint"] = "by_date"
    columns = {link: style["id"], "completed_date": date_header}
    if style["timepoint"]:
        columns["timepoint"] = style["timepoint"][0]
    source["columns"] = columns
    source["items"] = items_cfg
    truth_rows = pd.DataFrame({
        "site": code, "table": "questionnaires", "source_file": _rel(folder, name),
        "source_row": np.arange(1, len(out) + 1), "expected_rule": out["_rule"].to_numpy(),
        "flagged": out["_flag"].to_numpy()})
    truth_rows["expected_action"] = np.where(truth_rows["expected_rule"].isna(), "kept",
                                             "rejected")
    pairs = _expected_pairs(expected)
    return source, {"questionnaire_rows": truth_rows, "scores": expected.assign(site=code),
                    "pairs": pairs.assign(site=code), "people": q["people"].assign(site=code)}


SITE_ORDER = list("ABCDEF")


def _expected_scores(rows: pd.DataFrame, instruments: list[str], code: str) -> pd.DataFrame:
    """Scores by the published rules, computed directly from the generated answers."""
    table = pd.read_csv(Path(__file__).parents[1] / "data" / "swemwbs_metric.csv") \
        .set_index("raw_score")["metric_score"]
    ranges = {"swemwbs": (1, 5), "ucla3": (1, 3), "ons4": (0, 10), "phq9": (0, 3),
              "gad7": (0, 3), "ons_loneliness": (1, 5), "eq_vas": (0, 100)}
    ons = ["life_satisfaction", "worthwhile", "happy", "anxious"]
    parts = []
    for name in instruments:
        cols = [c for c in rows.columns if c.split(":")[0] == name and ":" in c]
        raw = rows[cols].replace("", np.nan).astype(float)
        lo, hi = ranges[name]
        raw = raw.where((raw >= lo) & (raw <= hi))
        if name == "ons4":
            for j, item in enumerate(ons):
                parts.append(_score_frame(rows, f"ons4_{item}", raw.iloc[:, j]))
            continue
        total = raw.sum(axis=1, min_count=len(cols)).where(raw.notna().all(axis=1))
        if name == "swemwbs":
            total = total.map(table)
        parts.append(_score_frame(rows, name, total))
    return pd.concat(parts, ignore_index=True)


def _score_frame(rows: pd.DataFrame, name: str, score: pd.Series) -> pd.DataFrame:
    return pd.DataFrame({"referral_id": rows["referral_id"].to_numpy(),
                         "timepoint": rows["timepoint"].to_numpy(),
                         "completed_date": pd.to_datetime(rows["completed_date"]).to_numpy(),
                         "instrument": name, "score": score.to_numpy(),
                         "scored": score.notna().to_numpy()})


def _expected_pairs(scores: pd.DataFrame) -> pd.DataFrame:
    s = scores[scores["scored"]]
    base = s[s["timepoint"] == "baseline"][["referral_id", "instrument", "score",
                                            "completed_date"]]
    follow = s[s["timepoint"] == "followup"]
    merged = base.merge(follow[["referral_id", "instrument", "score", "completed_date"]],
                        on=["referral_id", "instrument"], how="left", suffixes=("_b", "_f"))
    merged["days"] = (merged["completed_date_f"] - merged["completed_date_b"]).dt.days
    before = merged["days"] < 0  # a follow-up dated before the baseline is not used
    merged.loc[before, ["score_f", "days"]] = np.nan
    merged["in_window"] = merged["days"].between(270, 365)
    keep = merged.sort_values(["in_window", "days"], ascending=[False, True]) \
        .drop_duplicates(["referral_id", "instrument"])
    return pd.DataFrame({"referral_id": keep["referral_id"], "instrument": keep["instrument"],
                         "baseline": keep["score_b"], "followup": keep["score_f"],
                         "days_between": keep["days"],
                         "in_window": keep["days"].between(270, 365)})
