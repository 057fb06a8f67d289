"""Canonical vocabularies and the built-in label synonyms (docs/design.md, 'Vocabularies').

Raw exports spell the same thing many ways ("GP", "General Practitioner", "Dr"). Every label is
compared after :func:`normalise_label` (case, whitespace and punctuation folded), so the synonym
lists below are written in plain words and a site config only has to add what is unusual.
"""

from __future__ import annotations

import re
import unicodedata
from importlib import resources

import numpy as np
import pandas as pd
import pyarrow as pa

from linkeval.parse import as_text, distinct

VOCABULARIES: dict[str, tuple[str, ...]] = {
    "referral_source": (
        "gp",
        "practice_nurse",
        "other_practice_staff",
        "self",
        "social_care",
        "vcse",
        "secondary_care",
        "pharmacy",
        "mental_health",
        "housing",
        "other",
        "unknown",
    ),
    "reason": (
        "loneliness_isolation",
        "mental_wellbeing",
        "physical_activity",
        "long_term_condition",
        "finance_debt_benefits",
        "housing",
        "employment_education",
        "bereavement",
        "carer_support",
        "substance_use",
        "food_insecurity",
        "domestic_abuse",
        "other",
    ),
    "sex": ("female", "male", "other", "unknown"),
    "ethnicity": ("white", "mixed", "asian", "black", "other", "unknown"),
    "outcome": ("completed", "ongoing", "declined", "not_contactable", "inappropriate", "other"),
    "mode": (
        "face_to_face",
        "telephone",
        "video",
        "home_visit",
        "group",
        "message",
        "other",
    ),
    "asset_type": (
        "physical_activity",
        "arts_culture",
        "social_groups_befriending",
        "advice_finance_benefits",
        "housing_support",
        "mental_health_support",
        "employment_education_volunteering",
        "food_support",
        "carer_support",
        "nature_green",
        "health_services",
        "other",
    ),
    "timepoint": ("baseline", "followup"),
    "attended": ("true", "false"),
}

AGE_BANDS: tuple[str, ...] = (
    "18-24",
    "25-34",
    "35-44",
    "45-54",
    "55-64",
    "65-74",
    "75-84",
    "85+",
)
AGE_BAND_EDGES: tuple[int, ...] = (18, 25, 35, 45, 55, 65, 75, 85)

# Canonical input field -> the vocabulary its labels map to.
FIELD_VOCABULARY: dict[str, str] = {
    "referral_source": "referral_source",
    "reasons": "reason",
    "sex": "sex",
    "ethnicity": "ethnicity",
    "outcome": "outcome",
    "mode": "mode",
    "asset_type": "asset_type",
    "timepoint": "timepoint",
    "attended": "attended",
}

# What a blank cell means. Fields whose vocabulary has `unknown` take it; the others stay missing.
BLANK_CODE: dict[str, str | None] = {
    "referral_source": "unknown",
    "sex": "unknown",
    "ethnicity": "unknown",
}

# Built-in synonyms: code -> raw labels. Codes themselves (with spaces for underscores) always
# match, so they are not repeated here. NHS Data Dictionary codes are included where systems
# export them (ethnic category letters, person stated gender 1/2/9/X).
SYNONYMS: dict[str, dict[str, tuple[str, ...]]] = {
    "referral_source": {
        "gp": (
            "general practitioner",
            "doctor",
            "dr",
            "gp practice",
            "gp surgery",
            "gp referral",
            "general practice",
            "practice gp",
        ),
        "practice_nurse": ("nurse", "practice nurse referral", "nurse practitioner"),
        "other_practice_staff": (
            "practice staff",
            "receptionist",
            "care navigator",
            "care coordinator",
            "health and wellbeing coach",
            "practice pharmacist",
            "physician associate",
            "first contact physiotherapist",
            "practice manager",
            "paramedic",
        ),
        "self": ("self referral", "self referred", "patient", "walk in"),
        "social_care": ("adult social care", "social services", "social worker", "local authority"),
        "vcse": (
            "voluntary sector",
            "voluntary organisation",
            "charity",
            "community organisation",
            "third sector",
            "voluntary and community sector",
        ),
        "secondary_care": (
            "hospital",
            "acute trust",
            "outpatients",
            "discharge team",
            "hospital discharge",
            "secondary",
        ),
        "pharmacy": ("community pharmacy", "pharmacist"),
        "mental_health": (
            "talking therapies",
            "iapt",
            "community mental health team",
            "cmht",
            "mental health team",
            "mental health services",
        ),
        "housing": ("housing association", "housing officer", "council housing"),
        "unknown": ("not known", "not recorded", "not stated", "n k"),
    },
    "reason": {
        "loneliness_isolation": (
            "loneliness",
            "isolation",
            "social isolation",
            "lonely",
            "loneliness isolation",
            "loneliness and isolation",
            "lonely isolated",
        ),
        "mental_wellbeing": (
            "mental health",
            "low mood",
            "anxiety",
            "stress",
            "wellbeing",
            "emotional wellbeing",
            "mental health and wellbeing",
        ),
        "physical_activity": ("exercise", "inactivity", "being more active", "weight"),
        "long_term_condition": (
            "long term condition",
            "ltc",
            "chronic condition",
            "long term conditions",
            "self management",
        ),
        "finance_debt_benefits": (
            "finance",
            "debt",
            "benefits",
            "money",
            "financial",
            "money worries",
            "debt benefits",
            "welfare benefits",
            "money and debt",
            "financial difficulties",
            "cost of living",
        ),
        "employment_education": ("employment", "education", "work", "training", "unemployment"),
        "bereavement": ("grief", "loss"),
        "carer_support": ("carer", "caring", "caring responsibilities"),
        "substance_use": ("alcohol", "drugs", "substance misuse", "drug and alcohol"),
        "food_insecurity": ("food", "food poverty", "food bank"),
        "domestic_abuse": ("domestic violence",),
    },
    "sex": {
        "female": ("f", "woman", "w", "2"),
        "male": ("m", "man", "1"),
        "other": ("non binary", "nonbinary", "intersex", "indeterminate", "9"),
        "unknown": ("u", "not known", "not stated", "prefer not to say", "x", "0"),
    },
    # Besides these, every NHS 2001 category (letter, label, "<group> - <label>") and every
    # 2021 census group and heading, from data/ethnicity_categories.csv (added below).
    "ethnicity": {
        "white": (
            "white british",
            "white english",
            "white irish",
            "white other",
            "english",
            "british or mixed british",
            "other white background",
        ),
        "mixed": (
            "mixed white and black caribbean",
            "mixed white and asian",
            "mixed white and black african",
            "multiple ethnic groups",
            "mixed multiple",
            "other mixed background",
        ),
        "asian": (
            "asian british",
            "asian indian",
            "asian pakistani",
            "asian bangladeshi",
            "asian chinese",
            "indian or british indian",
            "pakistani or british pakistani",
            "bangladeshi or british bangladeshi",
            "other asian background",
        ),
        "black": (
            "black british",
            "black african",
            "black caribbean",
            "black african caribbean or black british",
            "other black background",
        ),
        "other": ("other arab", "other ethnic groups"),
        "unknown": ("prefer not to say", "declined", "not recorded", "refused"),
    },
    "outcome": {
        "completed": (
            "complete",
            "discharged",
            "discharged goals met",
            "goals met",
            "closed completed",
            "finished",
        ),
        "ongoing": ("open", "active", "in progress", "current"),
        "declined": ("patient declined", "did not want service", "refused", "declined service"),
        "not_contactable": (
            "unable to contact",
            "no contact",
            "lost to contact",
            "uncontactable",
            "could not contact",
            "no response",
        ),
        "inappropriate": (
            "inappropriate referral",
            "not appropriate",
            "not eligible",
            "redirected",
        ),
    },
    "mode": {
        "face_to_face": ("f2f", "in person", "clinic", "surgery", "face to face appointment"),
        "telephone": ("phone", "tel", "telephone call", "phone call", "telephone appointment"),
        "video": ("video call", "virtual", "teams", "zoom", "video consultation"),
        "home_visit": ("home", "home visit appointment", "visit"),
        "group": ("group session", "group activity"),
        "message": ("text", "sms", "email", "text message", "letter"),
    },
    "asset_type": {
        "physical_activity": (
            "exercise",
            "walking group",
            "sport",
            "gym",
            "leisure",
            "walking",
            "exercise class",
        ),
        "arts_culture": (
            "arts",
            "arts and culture",
            "art",
            "music",
            "creative",
            "culture",
            "craft group",
        ),
        "social_groups_befriending": (
            "social group",
            "social groups",
            "befriending",
            "lunch club",
            "community group",
            "friendship group",
            "social",
        ),
        "advice_finance_benefits": (
            "advice",
            "citizens advice",
            "welfare rights",
            "debt advice",
            "benefits advice",
            "financial advice",
            "money advice",
        ),
        "housing_support": ("housing", "housing advice"),
        "mental_health_support": (
            "mental health",
            "talking therapies",
            "counselling",
            "peer support",
            "mental health charity",
        ),
        "employment_education_volunteering": (
            "employment",
            "education",
            "volunteering",
            "adult learning",
            "job centre",
            "skills",
            "employment support",
        ),
        "food_support": ("food bank", "food", "community pantry", "community fridge"),
        "carer_support": ("carers centre", "carers", "carer"),
        "nature_green": (
            "nature",
            "green",
            "gardening",
            "allotment",
            "green space",
            "community garden",
        ),
        "health_services": ("health", "nhs", "stop smoking", "weight management", "health service"),
    },
    "timepoint": {
        "baseline": ("t0", "pre", "first", "initial", "time 1 baseline", "start"),
        "followup": ("follow up", "t1", "post", "final", "review", "end", "follow up 9 12 months"),
    },
    "attended": {
        "true": ("yes", "y", "attended", "1", "seen", "arrived", "completed", "att"),
        "false": (
            "no",
            "n",
            "dna",
            "did not attend",
            "0",
            "not attended",
            "cancelled",
            "cancelled by patient",
            "was not brought",
            "wnb",
        ),
    },
}


def _snomed_labels() -> pd.DataFrame:
    """SNOMED CT concepts that stand for a canonical code (``linkeval/data/snomed_labels.csv``).

    Only concepts whose id and meaning were checked are listed (docs/standard.md, 'SNOMED
    CT'); a site's own codes go under ``values:`` like any other label.
    """
    with (
        resources.files("linkeval.data")
        .joinpath("snomed_labels.csv")
        .open("r", encoding="utf-8") as fh
    ):
        return pd.read_csv(fh, dtype=str)


SNOMED_LABELS = _snomed_labels()
# Concept id -> what a coded event means where it is not a label of a field ("referral").
SNOMED_EVENTS: dict[str, str] = {
    r.concept_id: r.code for r in SNOMED_LABELS.itertuples() if r.field == "event"
}
for _r in SNOMED_LABELS[SNOMED_LABELS["field"] != "event"].itertuples():
    # The concept id and its term (without the semantic tag) both stand for the code.
    _term = re.sub(r"\s*\([^)]*\)$", "", _r.term)
    _vocab = FIELD_VOCABULARY[_r.field]
    SYNONYMS[_vocab][_r.code] = (*SYNONYMS[_vocab].get(_r.code, ()), _r.concept_id, _term)


def _ethnic_categories() -> pd.DataFrame:
    """NHS 2001 (16+1) categories and 2021 census groups with their high-level group
    (``linkeval/data/ethnicity_categories.csv``; docs/standard.md, 'Ethnicity')."""
    with (
        resources.files("linkeval.data")
        .joinpath("ethnicity_categories.csv")
        .open("r", encoding="utf-8") as fh
    ):
        return pd.read_csv(fh, dtype=str, keep_default_na=False)


def _ethnic_labels(row) -> list[str]:
    """The ways an export writes one category: 'Indian', 'Asian or Asian British - Indian',
    'H', 'H - Indian', 'H - Asian or Asian British - Indian'; or a heading alone."""
    if not row.label:
        return [row.group]
    forms = [row.label, f"{row.group} {row.label}"]
    if row.code:
        forms += [row.code, f"{row.code} {row.label}", f"{row.code} {row.group} {row.label}"]
    return forms


ETHNIC_CATEGORIES = _ethnic_categories()
for _r in ETHNIC_CATEGORIES.itertuples():
    SYNONYMS["ethnicity"][_r.ethnicity] = (
        *SYNONYMS["ethnicity"].get(_r.ethnicity, ()),
        *_ethnic_labels(_r),
    )

_NON_ALNUM = re.compile(r"[^0-9a-z]+")
# SNOMED CT ethnicity terms: "Indian or British Indian - ethnic category 2001 census (finding)",
# "Ethnic category not stated - 2001 census": matched on the category words alone.
_ETHNIC_TERM = re.compile(
    r"^(?:ethnic category )?(.*?)(?: ethnic category)?"
    r"(?: (?:2001|2011|2021) census)?(?: finding)?$"
)


def normalise_label(label: str) -> str:
    """Fold a raw label for matching: accents dropped, lower case, punctuation -> one space.

    >>> normalise_label("  Self-Referral ")
    'self referral'
    >>> normalise_label("Café – Connect")
    'cafe connect'
    """
    ascii_text = unicodedata.normalize("NFKD", str(label)).encode("ascii", "ignore").decode()
    return _NON_ALNUM.sub(" ", ascii_text.lower()).strip()


def label_map(vocabulary: str, overrides: dict[str, str] | None = None) -> dict[str, str]:
    """Normalised label -> canonical code for one vocabulary, with a site's overrides on top."""
    codes = VOCABULARIES[vocabulary]
    mapping = {normalise_label(code): code for code in codes}
    for code, labels in SYNONYMS.get(vocabulary, {}).items():
        for label in labels:
            mapping[normalise_label(label)] = code
    for label, code in (overrides or {}).items():
        mapping[normalise_label(label)] = code
    return mapping


def map_labels(
    raw: pd.Series, field: str, overrides: dict[str, str] | None = None
) -> tuple[pd.Series, pd.Series]:
    """Map raw labels of one canonical field to codes.

    Returns ``(codes, unmapped)``: codes as strings (blank -> the field's blank code or missing),
    and a boolean mask of non-blank labels that matched nothing (their code is ``other``, or
    missing when the vocabulary has no ``other``). Work is done on unique labels only.
    """
    vocabulary = FIELD_VOCABULARY[field]
    mapping = label_map(vocabulary, overrides)
    fallback = "other" if "other" in VOCABULARIES[vocabulary] else None
    blank_code = BLANK_CODE.get(field)
    uniques, slots = distinct(raw)
    normalised = [normalise_label(label) for label in uniques]
    if vocabulary == "ethnicity":
        normalised = [n if n in mapping else _ETHNIC_TERM.sub(r"\1", n) for n in normalised]
    unique_codes = np.array(
        [blank_code if norm == "" else mapping.get(norm, fallback) for norm in normalised]
        + [blank_code],
        dtype=object,
    )
    unique_unmapped = np.array(
        [norm != "" and norm not in mapping for norm in normalised] + [False]
    )
    # Arrow-backed text: taking from a few dozen codes makes no Python object per row.
    codes = as_text(pa.array(unique_codes, type=pa.large_string()).take(slots), raw.index)
    unmapped = pd.Series(unique_unmapped[slots], index=raw.index)
    return codes, unmapped


def imd_quintile(decile: pd.Series) -> pd.Series:
    """IMD decile (1 = most deprived) -> quintile: deciles 1-2 -> 1, ..., 9-10 -> 5.

    >>> imd_quintile(pd.Series([1, 2, 3, 10, None])).tolist()
    [1, 1, 2, 5, <NA>]
    """
    return ((decile.astype("Float64") + 1) // 2).astype("Int64")


def age_band(age: pd.Series) -> pd.Series:
    """Age in whole years -> the canonical age bands (under 18 -> '<18', missing stays missing)."""
    edges = [-1, *AGE_BAND_EDGES, 200]
    labels = ["<18", *AGE_BANDS]
    return pd.cut(age.astype("Float64"), bins=edges, labels=labels, right=False).astype(object)


# Plain-English labels for the steering group's pages and figures.
PLAIN = {
    "gp": "GP",
    "vcse": "Voluntary sector (VCSE)",
    "other_practice_staff": "Other practice staff",
    "self": "Self-referral",
    "loneliness_isolation": "Loneliness or isolation",
    "finance_debt_benefits": "Money, debt or benefits",
    "long_term_condition": "Long-term condition",
    "employment_education": "Work or education",
    "food_insecurity": "Food insecurity",
    "face_to_face": "Face to face",
    "home_visit": "Home visit",
    "social_groups_befriending": "Social groups and befriending",
    "advice_finance_benefits": "Advice, money and benefits",
    "arts_culture": "Arts and culture",
    "employment_education_volunteering": "Work, learning and volunteering",
    "nature_green": "Nature and green spaces",
    "mental_health_support": "Mental health support",
    "not_contactable": "Not contactable",
    "onward_referrals": "Onward referrals",
    "questionnaires": "Questionnaires",
}


def plain(code) -> str:
    """A code as words for the steering group; words are left as they are.

    >>> [plain("gp"), plain("home_visit"), plain("Loneliness (UCLA-3)")]
    ['GP', 'Home visit', 'Loneliness (UCLA-3)']
    """
    text = str(code)
    if text in PLAIN:
        return PLAIN[text]
    if text != text.lower() or " " in text:  # already words, e.g. a score's title
        return text
    return text.replace("_", " ").capitalize()
