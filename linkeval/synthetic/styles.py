"""How each fictional site exports its data: file shapes, headers, date formats and labels.

Six sites export the same kind of routine data in the different shapes real systems produce: a
cp1252 clinical-system search with a preamble (A), a UTF-8 CSV with a byte-order mark and ISO
dates (B), an Excel workbook with one sheet per table (C), a service that records ages and its own
client IDs instead of NHS numbers (D), one that exports only a number-of-contacts column (E),
one whose exports are split into yearly files (F), and a GP clinical-system search with one row
per coded event (G: SNOMED CT and local codes that linkeval groups into referral episodes, with
postcodes and practice codes for the area lookups, and more re-referrals). The writers for each
shape are in :mod:`linkeval.synthetic.writers`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from linkeval.vocab import VOCABULARIES


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
    coded_events: bool = False  # a GP search export: one row per coded event (site G)
    people_share: float = 0.93  # people per referral: the rest are re-referrals
    duplicate_cases: int = 0  # people given a second referral 3-20 days after their first
    # The export shape (A-G) whose writers, labels and questionnaire form the site uses; ""
    # means its own code (sites A-G). Sites after the seventh repeat the shapes (study.py).
    shape: str = ""
    # Coded-event (G-shaped) sites: the practices their people are registered with, all in one
    # PCN of the demo lookup linkeval/data/demo_lookup_practice_pcn.csv.
    practices: tuple[str, ...] = ("Z00005", "Z00006")
    pcn: str = "U00003"

    @property
    def export(self) -> str:
        """The shape (A-G) the site exports in: keys LABELS, SITE_VALUES and the writers."""
        return self.shape or self.code

    @property
    def id_prefix(self) -> str:
        """What the site's referral IDs start with: its code, and an R after a code that ends
        in a digit (S008R000001), so that no ID reads as a long number."""
        return self.code + "R" if self.code[-1].isdigit() else self.code


SITE_STYLES: dict[str, SiteStyle] = {
    "A": SiteStyle("A", "Riverside PCN", 0.30, "nhs", "spaces", host="vcse"),
    "B": SiteStyle("B", "Hillside PCN", 0.10, "nhs", "dashes", date_format="%Y-%m-%d"),
    "C": SiteStyle("C", "Northgate Practice", 0.20, "nhs", "spaces", rural=True),
    "D": SiteStyle(
        "D", "Coastal Communities PCN", 0.25, "local", dob=False, host="vcse", rural=True
    ),
    "E": SiteStyle(
        "E",
        "Valley Wellbeing Hub",
        0.05,
        "nhs",
        date_format="%d-%b-%Y",
        contacts=False,
        onward=False,
        host="vcse",
    ),
    "F": SiteStyle("F", "Eastfield PCN", 0.15, "nhs"),
    "G": SiteStyle(
        "G",
        "Moorside Medical Group",
        0.20,
        "nhs",
        contacts=False,
        onward=False,
        rural=True,
        coded_events=True,
        people_share=0.82,
        duplicate_cases=4,
    ),
}

# Site label tables: code -> the labels that site's system writes (one chosen per row).
# Labels not covered by the built-in synonyms are declared in that site's config `values`.
LABELS: dict[str, dict[str, dict[str, list[str]]]] = {
    "A": {
        "referral_source": {
            "gp": ["GP", "Dr"],
            "practice_nurse": ["Practice Nurse"],
            "other_practice_staff": ["Care Coordinator", "Receptionist"],
            "self": ["Self referral"],
            "social_care": ["Adult Social Care"],
            "vcse": ["Café Connect (VCSE)", "Citizens Advice – Riverside"],
            "secondary_care": ["Hospital"],
            "pharmacy": ["Pharmacy"],
            "mental_health": ["Talking Therapies"],
            "housing": ["Housing"],
            "other": ["Other"],
        },
        "sex": {
            "female": ["Female"],
            "male": ["Male"],
            "other": ["Other"],
            "unknown": ["Not known"],
        },
        "ethnicity": {
            "white": ["White – British", "White – Irish", "White – Other"],
            "asian": ["Asian or Asian British – Indian", "Asian – Pakistani"],
            "black": ["Black – Caribbean", "Black – African"],
            "mixed": ["Mixed – White and Asian"],
            "other": ["Other – Arab"],
            "unknown": ["Not stated"],
        },
        "outcome": {
            "completed": ["Discharged – goals met"],
            "ongoing": ["Open"],
            "declined": ["Declined"],
            "not_contactable": ["Unable to contact"],
            "inappropriate": ["Inappropriate referral"],
            "other": ["Other"],
        },
        "reason": {
            "loneliness_isolation": ["Loneliness"],
            "mental_wellbeing": ["Low mood"],
            "physical_activity": ["Exercise"],
            "long_term_condition": ["LTC"],
            "finance_debt_benefits": ["Money worries"],
            "housing": ["Housing"],
            "employment_education": ["Employment"],
            "bereavement": ["Bereavement"],
            "carer_support": ["Carer"],
            "substance_use": ["Alcohol"],
            "food_insecurity": ["Food"],
            "domestic_abuse": ["Domestic abuse"],
            "other": ["Other"],
        },
        "mode": {
            "face_to_face": ["Face to face"],
            "telephone": ["Telephone"],
            "video": ["Video"],
            "home_visit": ["Home visit"],
            "group": ["Group"],
            "message": ["Text message"],
        },
        "attended": {"true": ["Attended"], "false": ["DNA"]},
        "asset_type": {
            "physical_activity": ["Walking group"],
            "arts_culture": ["Arts"],
            "social_groups_befriending": ["Befriending", "Lunch club"],
            "advice_finance_benefits": ["Citizens Advice"],
            "housing_support": ["Housing advice"],
            "mental_health_support": ["Counselling"],
            "employment_education_volunteering": ["Volunteering"],
            "food_support": ["Food bank"],
            "carer_support": ["Carers centre"],
            "nature_green": ["Gardening"],
            "health_services": ["Stop smoking"],
            "other": ["Other"],
        },
    },
}
LABELS["B"] = {
    "referral_source": {
        "gp": ["GP", "General Practitioner"],
        "practice_nurse": ["Nurse"],
        "other_practice_staff": ["Health and Wellbeing Coach"],
        "self": ["Self-referral"],
        "social_care": ["Social Services"],
        "vcse": ["Voluntary sector"],
        "secondary_care": ["Acute Trust"],
        "pharmacy": ["Community Pharmacy"],
        "mental_health": ["CMHT"],
        "housing": ["Housing Association"],
        "other": ["Other"],
    },
    "sex": {"female": ["F"], "male": ["M"], "other": ["I"], "unknown": ["U"]},
    "ethnicity": {
        "white": ["A", "B", "C"],
        "mixed": ["D", "G"],
        "asian": ["H", "J", "R"],
        "black": ["M", "N"],
        "other": ["S"],
        "unknown": ["Z"],
    },
    "outcome": {
        "completed": ["closed_completed"],
        "ongoing": ["active"],
        "declined": ["closed_declined"],
        "not_contactable": ["closed_no_contact"],
        "inappropriate": ["closed_inappropriate"],
        "other": ["closed_other"],
    },
    "reason": {
        "loneliness_isolation": ["Social isolation"],
        "mental_wellbeing": ["Anxiety", "Stress"],
        "physical_activity": ["Inactivity"],
        "long_term_condition": ["Long-term condition"],
        "finance_debt_benefits": ["Debt", "Benefits"],
        "housing": ["Housing"],
        "employment_education": ["Work"],
        "bereavement": ["Grief"],
        "carer_support": ["Caring responsibilities"],
        "substance_use": ["Drugs"],
        "food_insecurity": ["Food poverty"],
        "domestic_abuse": ["Domestic violence"],
        "other": ["Other"],
    },
    "mode": {
        "face_to_face": ["F2F"],
        "telephone": ["Tel"],
        "video": ["Video call"],
        "home_visit": ["Home"],
        "group": ["Group session"],
        "message": ["SMS"],
    },
    "attended": {"true": ["Attended"], "false": ["DNA", "Cancelled"]},
    "asset_type": {
        "physical_activity": ["Sport"],
        "arts_culture": ["Creative"],
        "social_groups_befriending": ["Social group"],
        "advice_finance_benefits": ["Welfare rights"],
        "housing_support": ["Housing"],
        "mental_health_support": ["Peer support"],
        "employment_education_volunteering": ["Adult learning"],
        "food_support": ["Community pantry"],
        "carer_support": ["Carers"],
        "nature_green": ["Allotment"],
        "health_services": ["NHS"],
        "other": ["Other"],
    },
}
LABELS["C"] = {
    **LABELS["A"],
    "sex": {
        "female": ["Woman"],
        "male": ["Man"],
        "other": ["Non-binary"],
        "unknown": ["Prefer not to say"],
    },
    "ethnicity": {
        "white": ["White British"],
        "mixed": ["Mixed"],
        "asian": ["Asian British"],
        "black": ["Black British"],
        "other": ["Any other ethnic group"],
        "unknown": ["Not known"],
    },
    "outcome": {
        "completed": ["Completed"],
        "ongoing": ["Ongoing"],
        "declined": ["Patient declined"],
        "not_contactable": ["No contact"],
        "inappropriate": ["Not eligible"],
        "other": ["Other"],
    },
}
LABELS["D"] = {
    **LABELS["B"],
    "sex": {"female": ["female"], "male": ["male"], "other": ["other"], "unknown": ["unknown"]},
    "ethnicity": {c: [c.title()] for c in VOCABULARIES["ethnicity"]},
    "outcome": {c: [c.replace("_", " ").title()] for c in VOCABULARIES["outcome"]},
    "attended": {"true": ["Y"], "false": ["N"]},
}
LABELS["E"] = {
    **LABELS["A"],
    "referral_source": {
        **LABELS["A"]["referral_source"],
        "gp": ["GP Practice"],
        "vcse": ["Charity"],
    },
}
LABELS["F"] = {
    **LABELS["B"],
    "outcome": LABELS["C"]["outcome"],
    "sex": LABELS["A"]["sex"],
    "ethnicity": LABELS["C"]["ethnicity"],
}

# Labels the built-in synonyms do not know, declared in the site's config.
SITE_VALUES: dict[str, dict[str, dict[str, str]]] = {
    "A": {
        "referral_source": {"Café Connect (VCSE)": "vcse", "Citizens Advice – Riverside": "vcse"}
    },
    "B": {
        "outcome": {
            "closed_completed": "completed",
            "closed_declined": "declined",
            "closed_no_contact": "not_contactable",
            "closed_inappropriate": "inappropriate",
            "closed_other": "other",
        },
        "sex": {"I": "other"},
    },
}
SITE_VALUES["C"] = SITE_VALUES["A"]
# Site G writes codes, not labels, for referrals, reasons and outcomes (writers.CODED_EVENTS);
# these labels are the SNOMED CT terms. Who recorded the referral stands for its source.
LABELS["G"] = {
    "referral_source": {
        "gp": ["GP"],
        "practice_nurse": ["Practice Nurse"],
        "other_practice_staff": ["Care Coordinator", "Receptionist"],
        "unknown": ["Social Prescribing Link Worker"],
    },
    "sex": {
        "female": ["Female"],
        "male": ["Male"],
        "other": ["Indeterminate"],
        "unknown": ["Unknown"],
    },
    # NHS 2001 categories as GP systems print them, and 2021 census groups for newer records.
    "ethnicity": {
        "white": [
            "White - British",
            "White - Irish",
            "White: English, Welsh, Scottish, Northern Irish or British",
        ],
        "mixed": ["Mixed - White and Asian", "Mixed - Any other mixed background"],
        "asian": [
            "Asian or Asian British - Indian",
            "Other Ethnic Groups - Chinese",
            "Asian, Asian British or Asian Welsh: Pakistani",
        ],
        "black": ["Black or Black British - African", "Black or Black British - Caribbean"],
        "other": ["Other Ethnic Groups - Any other ethnic group"],
        "unknown": ["Ethnic category not stated - 2001 census"],
    },
    "outcome": {c: [c] for c in VOCABULARIES["outcome"]},
    "reason": {
        "loneliness_isolation": ["Social isolation"],
        "mental_wellbeing": ["Anxiety", "Depressed mood"],
        "physical_activity": ["Physically inactive"],
        "long_term_condition": ["Support for long term condition"],
        "finance_debt_benefits": ["Financial problem"],
        "housing": ["Housing problem"],
        "employment_education": ["Unemployed"],
        "bereavement": ["Bereavement"],
        "carer_support": ["Carer strain"],
        "substance_use": ["Alcohol misuse"],
        "food_insecurity": ["Food insecurity"],
        "domestic_abuse": ["Domestic abuse"],
        "other": ["Other social need"],
    },
}
# Referrals the link worker recorded on the practice's behalf say nothing of who referred.
PRACTICE_SOURCES = ("gp", "practice_nurse", "other_practice_staff")
SITE_VALUES["G"] = {"referral_source": {"Social Prescribing Link Worker": "unknown"}}


# The sites in the order generate_study draws them; a site's position also picks its block of
# made-up NHS numbers (see population.valid_nhs_numbers).
SITE_ORDER = list(SITE_STYLES)


@dataclass(frozen=True)
class QuestionnaireStyle:
    """How one site exports its questionnaires (one row per person per completed form)."""

    file: str  # an .xlsx name becomes .csv for studies too large for a workbook
    link: str  # the canonical field rows are linked by: referral_id, local_id or nhs_number
    id_header: str
    # instrument -> header template ({i} = 1-based item number; no {i}: a one-item instrument).
    # The keys are the instruments the site collects, in export order.
    item_headers: dict[str, str]
    date_header: str
    date_format: str = "%d/%m/%Y"
    timepoint_header: str | None = None  # None: no timepoint column, so it is read by date
    timepoint_labels: dict[str, str] = field(default_factory=dict)
    answer_text: bool = False  # SWEMWBS and UCLA-3 answers written as words (ANSWER_TEXT)

    def headers(self, instrument: str, k: int) -> list[str]:
        """The headers of an instrument's ``k`` item columns."""
        template = self.item_headers[instrument]
        return [template.format(i=i + 1) for i in range(k)] if "{i}" in template else [template]


QUESTIONNAIRE_STYLES: dict[str, QuestionnaireStyle] = {
    "A": QuestionnaireStyle(
        "questionnaires.csv",
        "referral_id",
        "Ref No",
        {"swemwbs": "SW{i}", "ucla3": "Lonely{i}", "ons4": "ONS{i}"},
        "Date completed",
        timepoint_header="Stage",
        timepoint_labels={"baseline": "Baseline", "followup": "Follow-up"},
        answer_text=True,
    ),
    "B": QuestionnaireStyle(
        "questionnaires.csv",
        "referral_id",
        "referral_ref",
        {
            "swemwbs": "swemwbs_{i}",
            "ucla3": "ucla_{i}",
            "ons4": "ons_{i}",
            "phq9": "phq9_{i}",
            "gad7": "gad7_{i}",
        },
        "completed",
        "%Y-%m-%d",
        timepoint_header="timepoint",
        timepoint_labels={"baseline": "T0", "followup": "T1"},
    ),
    "C": QuestionnaireStyle(
        "northgate_questionnaires.xlsx",
        "referral_id",
        "Referral ID",
        {"swemwbs": "Q{i}", "ucla3": "UCLA{i}", "ons4": "ONS4_{i}"},
        "Completed",
        timepoint_header="Stage",
        timepoint_labels={"baseline": "Initial", "followup": "Review"},
    ),
    "D": QuestionnaireStyle(
        "wellbeing.csv",
        "local_id",
        "Client ID",
        {"swemwbs": "WB{i}", "ucla3": "L{i}", "ons4": "ONS{i}", "ons_loneliness": "Lonely"},
        "Date",
    ),
    "E": QuestionnaireStyle(
        "outcomes.csv",
        "referral_id",
        "Case ID",
        {
            "swemwbs": "WEMWBS short {i}",
            "ucla3": "Loneliness {i}",
            "ons4": "Personal wellbeing {i}",
            "eq_vas": "EQ VAS",
        },
        "Date",
        "%d-%b-%Y",
        timepoint_header="Assessment",
        timepoint_labels={"baseline": "First", "followup": "Final"},
    ),
    "F": QuestionnaireStyle(
        "questionnaires.csv",
        "nhs_number",
        "NHSNumber",
        {"swemwbs": "SWEMWBS{i}", "ucla3": "UCLA{i}", "ons4": "ONS{i}"},
        "Date",
        timepoint_header="Timepoint",
        timepoint_labels={"baseline": "Pre", "followup": "Post"},
    ),
    # MYCaW and the demo's local instrument (wellbeing.LOCAL_INSTRUMENTS), by NHS number.
    "G": QuestionnaireStyle(
        "outcome_measures.csv",
        "nhs_number",
        "NHS Number",
        {"mycaw": "MYCAW_{i}", "ons4": "ONS{i}", "connect": "Connect {i}"},
        "Date",
        timepoint_header="Stage",
        timepoint_labels={"baseline": "Start", "followup": "End"},
    ),
}

# Answer codes as words, for the sites whose forms export the wording (answer_text).
ANSWER_TEXT = {
    "swemwbs": {
        1: "None of the time",
        2: "Rarely",
        3: "Some of the time",
        4: "Often",
        5: "All of the time",
    },
    "ucla3": {1: "Hardly ever", 2: "Some of the time", 3: "Often"},
}
