"""Validated questionnaire instruments, each one declarative definition (docs/design.md, 'Instruments').

An :class:`Instrument` lists its items in order, the item range, the response labels, reversed
items and one or more :class:`Score` specs (ONS4 has four separate scores, the others one). A
score says how it is computed from its items (a sum, optionally converted through a published
table), its direction, bands and minimal important difference (MID). Adding an instrument is
adding a definition to :data:`INSTRUMENTS`; the scoring code is the same for all.

Sources
-------
- SWEMWBS: Stewart-Brown S, et al. Internal construct validity of the Warwick-Edinburgh Mental
  Well-being Scale (WEMWBS): a Rasch analysis using data from the Scottish Health Education
  Population Survey. Health Qual Life Outcomes 2009;7:15 (raw-to-metric table, as distributed
  by Warwick Medical School). MID: Shah N, et al. Health Qual Life Outcomes 2018;16:239 (an
  individual change of 1-3 points is important; 2.77 SEM = 2.87 points; we use 3).
- WEMWBS: Tennant R, et al. Health Qual Life Outcomes 2007;5:63 (14 items, sum 14-70).
  Responsiveness: Maheswaran H, et al. Health Qual Life Outcomes 2012;10:156 (SEM 2.4-3.1;
  important change 3-8 points by method; we use 3). Missing items: the WEMWBS user guide
  allows replacing a few missing items by the person's mean of the answered items.
- ONS4: Office for National Statistics, Personal well-being user guidance (thresholds: life
  satisfaction, worthwhile, happy 0-4 low, 5-6 medium, 7-8 high, 9-10 very high; anxiety 0-1
  very low, 2-3 low, 4-5 medium, 6-10 high).
- UCLA-3: Hughes ME, et al. A short scale for measuring loneliness in large surveys. Res Aging
  2004;26:655-672 (3 items scored 1-3, sum 3-9); ONS recommends 6 or more as "lonely".
- ONS direct loneliness question: ONS, Measuring loneliness: guidance for use of the national
  indicators on surveys (2018): "How often do you feel lonely?" never ... often/always.
- PHQ-9: Kroenke K, Spitzer RL, Williams JBW. J Gen Intern Med 2001;16:606-613 (bands 0-4,
  5-9, 10-14, 15-19, 20-27). MID 5: Löwe B, et al. Med Care 2004;42:1194-1201.
- GAD-7: Spitzer RL, et al. Arch Intern Med 2006;166:1092-1097 (cut points 5, 10, 15).
  MID 4: Toussaint A, et al. J Affect Disord 2020;265:395-401.
- EQ VAS: EuroQol Research Foundation, EQ-5D-5L user guide (0-100 visual analogue scale).

Instruments added through :func:`define` (the same mechanism a study's config uses for its own
local instruments, docs/standard.md, 'Outcome measures'):

- MYCaW: Paterson C, et al. Measure Yourself Concerns and Wellbeing (MYCaW): an individualised
  questionnaire for evaluating outcome in cancer support care that includes complementary
  therapies. Complement Ther Med 2007;15:38-45 (one or two self-nominated concerns and general
  wellbeing, each scored 0-6, 0 = not bothering me at all / as good as it could be, 6 = bothers
  me greatly / as bad as it could be; lower is better; follow-up re-scores the same concerns).
  Profile score: the mean of the available scores, as defined for its parent measure MYMOP
  (Paterson C. BMJ 1996;312:1016-1020). MYCaW is a registered trade mark, used under a free
  licence from Meaningful Measures Ltd; no MID is published for social prescribing, so none
  is set.
- Campaign to End Loneliness Measurement Tool: Campaign to End Loneliness, Measuring your impact
  on loneliness in later life (2015): three positively worded statements, answers scored
  strongly disagree 4, disagree 3, neutral 2, agree 1, strongly agree 0; total 0-12, higher =
  lonelier. The guidance gives no bands, no MID and no rule for missing answers (so any missing
  answer means no score).
- ReQoL-10: Keetharuth AD, et al. Recovering Quality of Life (ReQoL): a new generic
  self-reported outcome measure for use with people experiencing mental health difficulties.
  Br J Psychiatry 2018;212:42-49. Ten items scored 0-4 after reversing the negatively worded
  ones, total 0-40, higher = better; the physical-health item is not part of the total. Item
  wording, the scoring sheet and the ReQoL-UI utility tariff are copyright (University of
  Sheffield; licence via Oxford University Innovation): linkeval takes the item scores as the
  scoring sheet gives them (already turned so that 4 is best) and ships no wording, no
  cut-off and no utility values, which we could not check against the licensed guide here.
- PAM (Patient Activation Measure, Insignia Health; licensed, item scoring not public) and the
  Wellbeing Star (Triangle Consulting Social Enterprise; licensed): pre-scored. linkeval takes
  the total or level the licensed tool produced and analyses its change; it does not score
  items. PAM: activation score 0-100 and level 1-4 (Hibbard JH, et al. Health Serv Res
  2004;39:1005-1026; 2005;40:1918-1930). Wellbeing Star: total of eight outcome-area readings
  of 1-10 (8-80).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from linkeval.errors import LinkevalError, did_you_mean
from linkeval.parse import distinct
from linkeval.vocab import normalise_label


@dataclass(frozen=True)
class Band:
    """A named score range, inclusive at both ends."""

    label: str
    low: float
    high: float


@dataclass(frozen=True)
class Score:
    """One score computed from some of an instrument's items."""

    name: str
    items: tuple[str, ...]
    higher_is_better: bool
    bands: tuple[Band, ...] = ()
    mid: float | None = None
    # A raw-total -> score table: the name of a CSV in package data, or (raw, score) pairs.
    conversion: str | tuple[tuple[float, float], ...] | None = None
    lonely_threshold: bool = False  # bands come from the `lonely_threshold` setting (UCLA-3)
    method: str = "sum"  # "sum" of the items, or "mean" of the answered items
    optional: tuple[str, ...] = ()  # items that may be blank without stopping the score
    title: str = ""  # plain title for reports (default: the instrument's)


@dataclass(frozen=True)
class Instrument:
    """A validated questionnaire: items, response scale, scoring and interpretation."""

    name: str
    title: str
    items: tuple[str, ...]
    item_min: int
    item_max: int
    scores: tuple[Score, ...]
    labels: dict[str, int] = field(default_factory=dict)
    reversed_items: tuple[str, ...] = ()
    allows_prorating: bool = False
    source: str = ""
    max_missing: int = 0  # missing items allowed by the definition (prorated)
    whole_numbers: bool = True  # False for pre-scored totals (e.g. PAM 0-100 with decimals)
    licence: str = ""  # who licenses the measure, where a licence applies
    local: bool = False  # declared in a study config, not built in

    def score(self, name: str) -> Score:
        return next(s for s in self.scores if s.name == name)


WEMWBS_LABELS = {
    "none of the time": 1,
    "rarely": 2,
    "some of the time": 3,
    "often": 4,
    "all of the time": 5,
}
PHQ_LABELS = {
    "not at all": 0,
    "several days": 1,
    "more than half the days": 2,
    "nearly every day": 3,
}
SWEMWBS_ITEMS = (
    "optimistic",
    "useful",
    "relaxed",
    "dealing_with_problems",
    "thinking_clearly",
    "close_to_others",
    "own_mind",
)
WEMWBS_ITEMS = (
    "optimistic",
    "useful",
    "relaxed",
    "interested_in_people",
    "energy",
    "dealing_with_problems",
    "thinking_clearly",
    "good_about_self",
    "close_to_others",
    "confident",
    "own_mind",
    "loved",
    "interested_in_new_things",
    "cheerful",
)
ONS4_BANDS = (Band("low", 0, 4), Band("medium", 5, 6), Band("high", 7, 8), Band("very high", 9, 10))
ONS4_ANXIETY_BANDS = (
    Band("very low", 0, 1),
    Band("low", 2, 3),
    Band("medium", 4, 5),
    Band("high", 6, 10),
)


def _one(name: str, items: tuple[str, ...], higher_is_better: bool, **kw) -> tuple[Score, ...]:
    return (Score(name=name, items=items, higher_is_better=higher_is_better, **kw),)


INSTRUMENTS: dict[str, Instrument] = {
    "swemwbs": Instrument(
        "swemwbs",
        "Short Warwick-Edinburgh Mental Wellbeing Scale",
        SWEMWBS_ITEMS,
        1,
        5,
        _one("swemwbs", SWEMWBS_ITEMS, True, mid=3.0, conversion="swemwbs_metric"),
        labels=WEMWBS_LABELS,
        source="Stewart-Brown 2009; Shah 2018",
    ),
    "wemwbs": Instrument(
        "wemwbs",
        "Warwick-Edinburgh Mental Wellbeing Scale",
        WEMWBS_ITEMS,
        1,
        5,
        _one("wemwbs", WEMWBS_ITEMS, True, mid=3.0),
        labels=WEMWBS_LABELS,
        allows_prorating=True,
        source="Tennant 2007; Maheswaran 2012",
    ),
    "ons4": Instrument(
        "ons4",
        "ONS personal wellbeing (ONS4)",
        ("life_satisfaction", "worthwhile", "happy", "anxious"),
        0,
        10,
        (
            Score("ons4_life_satisfaction", ("life_satisfaction",), True, ONS4_BANDS),
            Score("ons4_worthwhile", ("worthwhile",), True, ONS4_BANDS),
            Score("ons4_happy", ("happy",), True, ONS4_BANDS),
            Score("ons4_anxious", ("anxious",), False, ONS4_ANXIETY_BANDS),
        ),
        labels={"not at all": 0, "completely": 10},
        source="ONS personal wellbeing guidance",
    ),
    "ucla3": Instrument(
        "ucla3",
        "UCLA 3-item loneliness scale",
        ("lack_companionship", "left_out", "isolated"),
        1,
        3,
        _one("ucla3", ("lack_companionship", "left_out", "isolated"), False, lonely_threshold=True),
        labels={
            "hardly ever": 1,
            "hardly ever or never": 1,
            "never": 1,
            "some of the time": 2,
            "often": 3,
        },
        source="Hughes 2004",
    ),
    "ons_loneliness": Instrument(
        "ons_loneliness",
        "ONS direct loneliness question",
        ("how_often_lonely",),
        1,
        5,
        _one(
            "ons_loneliness",
            ("how_often_lonely",),
            False,
            bands=(
                Band("never", 1, 1),
                Band("hardly ever", 2, 2),
                Band("occasionally", 3, 3),
                Band("some of the time", 4, 4),
                Band("often/always", 5, 5),
            ),
        ),
        labels={
            "never": 1,
            "hardly ever": 2,
            "occasionally": 3,
            "some of the time": 4,
            "often always": 5,
            "often": 5,
            "always": 5,
        },
        source="ONS 2018",
    ),
    "phq9": Instrument(
        "phq9",
        "Patient Health Questionnaire (PHQ-9)",
        (
            "interest",
            "down",
            "sleep",
            "tired",
            "appetite",
            "failure",
            "concentration",
            "moving",
            "self_harm",
        ),
        0,
        3,
        _one(
            "phq9",
            (
                "interest",
                "down",
                "sleep",
                "tired",
                "appetite",
                "failure",
                "concentration",
                "moving",
                "self_harm",
            ),
            False,
            mid=5.0,
            bands=(
                Band("minimal", 0, 4),
                Band("mild", 5, 9),
                Band("moderate", 10, 14),
                Band("moderately severe", 15, 19),
                Band("severe", 20, 27),
            ),
        ),
        labels=PHQ_LABELS,
        source="Kroenke 2001; Löwe 2004",
    ),
    "gad7": Instrument(
        "gad7",
        "Generalised Anxiety Disorder scale (GAD-7)",
        (
            "nervous",
            "control_worry",
            "worry_too_much",
            "trouble_relaxing",
            "restless",
            "irritable",
            "afraid",
        ),
        0,
        3,
        _one(
            "gad7",
            (
                "nervous",
                "control_worry",
                "worry_too_much",
                "trouble_relaxing",
                "restless",
                "irritable",
                "afraid",
            ),
            False,
            mid=4.0,
            bands=(
                Band("minimal", 0, 4),
                Band("mild", 5, 9),
                Band("moderate", 10, 14),
                Band("severe", 15, 21),
            ),
        ),
        labels=PHQ_LABELS,
        source="Spitzer 2006; Toussaint 2020",
    ),
    "eq_vas": Instrument(
        "eq_vas",
        "EQ-5D visual analogue scale",
        ("vas",),
        0,
        100,
        _one("eq_vas", ("vas",), True),
        source="EuroQol EQ-5D-5L user guide",
    ),
}

# --------------------------------------------------------------------------------------------
# Declarative definitions: the form a study config uses under `instruments:` for a local
# instrument, and the form the instruments below are written in (docs/standard.md).

SETTINGS = {"max_missing", "lonely_threshold", "mid", "reliability"}
DEFINITION_KEYS = (
    "title",
    "source",
    "licence",
    "items",
    "range",
    "labels",
    "reversed",
    "higher_is_better",
    "scoring",
    "conversion",
    "bands",
    "mid",
    "max_missing",
    "decimals",
    "scores",
)
SCORE_KEYS = (
    "name",
    "title",
    "items",
    "optional",
    "scoring",
    "higher_is_better",
    "bands",
    "mid",
    "conversion",
)
SCORING_METHODS = ("sum", "mean")


def define(
    name: str, spec: dict[str, Any], base: Path | None = None, local: bool = True
) -> Instrument:
    """An :class:`Instrument` from its declarative definition (a config's ``instruments:``).

    Keys: ``title``, ``source`` (the published scoring rules, or "in-house"), ``items`` (names
    in order), ``range`` ([lowest, highest] answer), ``higher_is_better``, and optionally
    ``labels`` ({printed response: value}), ``reversed`` (items turned as low + high - value
    before scoring), ``scoring`` (``sum`` or ``mean``), ``conversion`` ({raw total: score}, or
    a CSV with columns raw_score and score, relative to ``base``), ``bands`` ({label: [low,
    high]}, inclusive), ``mid``, ``max_missing`` (missing items allowed: a sum is prorated as
    the mean of the answered items x the number of items, a mean is the mean of the answered
    ones), ``decimals`` (answers need not be whole numbers: pre-scored totals), ``licence``,
    and ``scores`` (several scores from one form; each with name, items and the score keys).
    Raises LinkevalError naming ``instruments.<name>.<key>``.

    >>> inst = define("calm", {"title": "Calm scale", "source": "in-house", "items": ["a", "b"],
    ...                        "range": [1, 5], "higher_is_better": True, "reversed": ["b"]})
    >>> float(score_items(pd.DataFrame({"a": [5.0], "b": [1.0]}), inst, Settings())["score"][0])
    10.0
    """
    where = f"instruments.{name}"

    def fail(key: str, message: str) -> None:
        raise LinkevalError(f"{where}{'.' + key if key else ''}: {message}")

    if not isinstance(spec, dict):
        fail(
            "",
            "a local instrument is a mapping with title, source, items, range and higher_is_better",
        )
    for key in spec:
        if key not in DEFINITION_KEYS and key not in SETTINGS:
            fail(
                str(key),
                f"unknown key{did_you_mean(str(key), DEFINITION_KEYS)}; valid: "
                f"{', '.join(DEFINITION_KEYS)}",
            )
    for key in ("title", "source", "items", "range"):
        if key not in spec:
            fail(
                "",
                f"missing required key {key!r} (a local instrument needs title, source, "
                "items, range and higher_is_better)",
            )
    items = spec["items"]
    if (
        not isinstance(items, list)
        or not items
        or not all(isinstance(i, str) for i in items)
        or len(set(items)) != len(items)
    ):
        fail("items", "must be a list of distinct item names in the form's order")
    rng = spec["range"]
    if (
        not isinstance(rng, list)
        or len(rng) != 2
        or not all(_is_number(x) for x in rng)
        or not rng[0] < rng[1]
    ):
        fail("range", "must be [lowest, highest] answer, e.g. [1, 5]")
    labels = spec.get("labels") or {}
    if not isinstance(labels, dict) or not all(_is_number(v) for v in labels.values()):
        fail("labels", "must map each printed response to its value, e.g. {Often: 4}")
    for label, value in labels.items():
        if not rng[0] <= value <= rng[1]:
            fail(f"labels.{label}", f"{value} is outside the range {rng[0]}-{rng[1]}")
    reversed_items = spec.get("reversed") or []
    unknown = (
        [i for i in reversed_items if i not in items] if isinstance(reversed_items, list) else ["?"]
    )
    if unknown:
        fail(
            "reversed",
            f"must list items of this instrument; not items: {', '.join(map(str, unknown))}",
        )
    max_missing = spec.get("max_missing", 0)
    if (
        isinstance(max_missing, bool)
        or not isinstance(max_missing, int)
        or not (0 <= max_missing < len(items))
    ):
        fail("max_missing", f"must be a whole number from 0 to {len(items) - 1}")
    decimals = spec.get("decimals", False)
    if not isinstance(decimals, bool):
        fail("decimals", "must be true or false")
    default = {
        k: spec[k]
        for k in ("higher_is_better", "scoring", "conversion", "bands", "mid")
        if k in spec
    }
    scores_raw = spec.get("scores") or [{"name": name, "items": items, **default}]
    if not isinstance(scores_raw, list):
        fail("scores", "must be a list of scores, each with name and items")
    scores = tuple(
        _define_score(
            f"{where}.scores[{i}]" if "scores" in spec else where,
            {**default, **s} if isinstance(s, dict) else s,
            items,
            base,
        )
        for i, s in enumerate(scores_raw)
    )
    names = [s.name for s in scores]
    if len(set(names)) != len(names):
        fail("scores", "score names must be distinct")
    return Instrument(
        name=name,
        title=str(spec["title"]),
        items=tuple(items),
        item_min=rng[0],
        item_max=rng[1],
        scores=scores,
        labels={str(k): v for k, v in labels.items()},
        reversed_items=tuple(reversed_items),
        allows_prorating=max_missing > 0,
        source=str(spec["source"]),
        max_missing=max_missing,
        whole_numbers=not decimals,
        licence=str(spec.get("licence", "")),
        local=local,
    )


def _define_score(where: str, spec: Any, items: list[str], base: Path | None) -> Score:
    def fail(key: str, message: str) -> None:
        raise LinkevalError(f"{where}{'.' + key if key else ''}: {message}")

    if not isinstance(spec, dict):
        fail("", "each score is a mapping with name and items")
    for key in spec:
        if key not in SCORE_KEYS:
            fail(
                str(key),
                f"unknown key{did_you_mean(str(key), SCORE_KEYS)}; valid: {', '.join(SCORE_KEYS)}",
            )
    if "name" not in spec or not str(spec["name"]).isidentifier():
        fail("name", "each score needs a name (letters, digits and _)")
    own = spec.get("items", items)
    if not isinstance(own, list) or not own or any(i not in items for i in own):
        fail("items", f"must list items of the instrument ({', '.join(items)})")
    if not isinstance(spec.get("higher_is_better"), bool):
        fail(
            "higher_is_better",
            "say the score's direction: true if a higher score is better, false if worse",
        )
    method = spec.get("scoring", "sum")
    if method not in SCORING_METHODS:
        fail("scoring", f"{method!r}{did_you_mean(str(method), SCORING_METHODS)}; use sum or mean")
    optional = spec.get("optional") or []
    if (
        not isinstance(optional, list)
        or any(i not in own for i in optional)
        or (len(optional) >= len(own))
    ):
        fail("optional", "must list some (not all) of the score's items")
    bands_raw = spec.get("bands") or {}
    if not isinstance(bands_raw, dict):
        fail("bands", "must map each band label to [low, high], e.g. {low: [0, 4]}")
    bands = []
    for label, edges in bands_raw.items():
        if (
            not isinstance(edges, list)
            or len(edges) != 2
            or not all(_is_number(e) for e in edges)
            or edges[0] > edges[1]
        ):
            fail(f"bands.{label}", "must be [low, high] (inclusive), low <= high")
        bands.append(Band(str(label), float(edges[0]), float(edges[1])))
    mid = spec.get("mid")
    if mid is not None and (not _is_number(mid) or mid <= 0):
        fail("mid", "must be a positive number of points")
    return Score(
        name=str(spec["name"]),
        items=tuple(own),
        higher_is_better=spec["higher_is_better"],
        bands=tuple(bands),
        mid=float(mid) if mid is not None else None,
        conversion=_conversion(where, spec.get("conversion"), base),
        method=method,
        optional=tuple(optional),
        title=str(spec.get("title", "")),
    )


def _conversion(
    where: str, value: Any, base: Path | None
) -> tuple[tuple[float, float], ...] | None:
    """A conversion table as (raw, score) pairs, from a mapping or a CSV file."""
    if value is None:
        return None
    if isinstance(value, str):
        path = (base or Path.cwd()) / value
        try:
            table = pd.read_csv(path)
            pairs = zip(table["raw_score"], table["score"], strict=True)
        except (OSError, KeyError, ValueError) as exc:
            raise LinkevalError(
                f"{where}.conversion: cannot read {path} as a CSV with columns "
                f"raw_score and score ({type(exc).__name__})"
            ) from None
    elif isinstance(value, dict):
        pairs = value.items()
    else:
        raise LinkevalError(f"{where}.conversion: give {{raw total: score}} or a CSV file")
    out = []
    for raw, score in pairs:
        if not _is_number(raw) or not _is_number(score):
            raise LinkevalError(f"{where}.conversion: {raw!r}: {score!r} is not a number pair")
        out.append((float(raw), float(score)))
    return tuple(sorted(out))


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and np.isfinite(value)


MYCAW_LABELS = {
    "not bothering me at all": 0,
    "bothers me greatly": 6,
    "as good as it could be": 0,
    "as bad as it could be": 6,
}
CEL_LABELS = {"strongly disagree": 4, "disagree": 3, "neutral": 2, "agree": 1, "strongly agree": 0}
REQOL_ITEMS = [f"q{i}" for i in range(1, 11)]

# Written in the declarative form, through the same `define` a config's local instruments use.
DEFINED: dict[str, dict[str, Any]] = {
    "mycaw": {
        "title": "Measure Yourself Concerns and Wellbeing (MYCaW)",
        "source": "Paterson 2007 (MYCaW); profile score as MYMOP, Paterson 1996",
        "licence": "MYCaW is a registered trade mark; free licence from Meaningful Measures Ltd",
        "items": ["concern1", "concern2", "wellbeing"],
        "range": [0, 6],
        "labels": MYCAW_LABELS,
        "higher_is_better": False,
        "scores": [
            {"name": "mycaw_concern1", "items": ["concern1"], "title": "First concern (MYCaW)"},
            {"name": "mycaw_concern2", "items": ["concern2"], "title": "Second concern (MYCaW)"},
            {"name": "mycaw_wellbeing", "items": ["wellbeing"], "title": "Wellbeing (MYCaW)"},
            {
                "name": "mycaw",
                "items": ["concern1", "concern2", "wellbeing"],
                "scoring": "mean",
                "optional": ["concern2"],
                "title": "MYCaW profile score",
            },
        ],
    },
    "cel": {
        "title": "Campaign to End Loneliness Measurement Tool",
        "source": "Campaign to End Loneliness, Measuring your impact on loneliness in later "
        "life (2015)",
        "items": [
            "content_with_relationships",
            "people_to_ask_for_help",
            "satisfying_relationships",
        ],
        "range": [0, 4],
        "labels": CEL_LABELS,
        "higher_is_better": False,
    },
    "reqol10": {
        "title": "Recovering Quality of Life (ReQoL-10)",
        "source": "Keetharuth 2018 (Br J Psychiatry 212:42-49); item scores from the ReQoL "
        "scoring sheet",
        "licence": "ReQoL is copyright of the University of Sheffield; licence (free for "
        "non-commercial use) via Oxford University Innovation; item wording and the "
        "ReQoL-UI tariff are not shipped",
        "items": REQOL_ITEMS,
        "range": [0, 4],
        "higher_is_better": True,
    },
    "pam": {
        "title": "Patient Activation Measure (PAM), pre-scored",
        "source": "Hibbard 2004, 2005; score and level as produced by the licensed PAM software",
        "licence": "PAM is licensed by Insignia Health (Phreesia); item scoring is not public",
        "items": ["score", "level"],
        "range": [0, 100],
        "decimals": True,
        "scores": [
            {
                "name": "pam",
                "items": ["score"],
                "higher_is_better": True,
                "title": "Patient activation (PAM score)",
            },
            {
                "name": "pam_level",
                "items": ["level"],
                "higher_is_better": True,
                "title": "Patient activation level (PAM)",
                "bands": {
                    "level 1": [1, 1],
                    "level 2": [2, 2],
                    "level 3": [3, 3],
                    "level 4": [4, 4],
                },
            },
        ],
    },
    "wellbeing_star": {
        "title": "Wellbeing Star, pre-scored total",
        "source": "Triangle Consulting Social Enterprise, Wellbeing Star (eight outcome areas, "
        "readings 1-10)",
        "licence": "The Outcomes Star is licensed by Triangle Consulting Social Enterprise",
        "items": ["total"],
        "range": [8, 80],
        "higher_is_better": True,
    },
}

for _name, _spec in DEFINED.items():
    INSTRUMENTS[_name] = define(_name, _spec, local=False)

BUILTIN = frozenset(INSTRUMENTS)


def register(instrument: Instrument) -> None:
    """Add (or replace) a study's local instrument; a built-in name or score name is refused.

    Instruments live in one registry per process so that stats and reports find a local
    instrument's scores by name (the config registers its own when loaded and unpickled).
    """
    if instrument.name in BUILTIN:
        raise LinkevalError(
            f"instruments.{instrument.name}: is a built-in instrument; give "
            "the local one another name (settings of a built-in take only "
            f"{', '.join(sorted(SETTINGS))})"
        )
    taken = {
        s.name: i.name for i in INSTRUMENTS.values() if i.name != instrument.name for s in i.scores
    }
    for spec in instrument.scores:
        if spec.name in taken:
            raise LinkevalError(
                f"instruments.{instrument.name}: score name {spec.name!r} is "
                f"already a score of {taken[spec.name]}; rename it"
            )
    INSTRUMENTS[instrument.name] = instrument


@dataclass(frozen=True)
class Settings:
    """Per-study overrides of an instrument's defaults (config ``instruments:``)."""

    max_missing: int = 0
    lonely_threshold: float = 6
    mid: float | None = None
    reliability: float | None = None


def settings_for(name: str, overrides: dict[str, Any] | None = None) -> Settings:
    """Validated settings for one instrument; raises LinkevalError naming the bad key."""
    instrument = get(name)
    overrides = dict(overrides or {})
    for key in overrides:
        if key not in SETTINGS:
            raise LinkevalError(
                f"instruments.{name}.{key}: unknown setting"
                f"{did_you_mean(key, SETTINGS)}; valid: {', '.join(sorted(SETTINGS))}"
            )
    max_missing = overrides.get("max_missing", instrument.max_missing)
    if not isinstance(max_missing, int) or max_missing < 0:
        raise LinkevalError(f"instruments.{name}.max_missing: must be a whole number >= 0")
    if max_missing and not instrument.allows_prorating:
        raise LinkevalError(
            f"instruments.{name}.max_missing: {instrument.title} is scored only "
            "when every item is answered (no published prorating rule)"
        )
    if max_missing >= len(instrument.items):
        raise LinkevalError(
            f"instruments.{name}.max_missing: must be below the number of items "
            f"({len(instrument.items)})"
        )
    reliability = overrides.get("reliability")
    if reliability is not None and not 0 < float(reliability) < 1:
        raise LinkevalError(f"instruments.{name}.reliability: must be between 0 and 1")
    return Settings(
        max_missing=max_missing,
        lonely_threshold=float(overrides.get("lonely_threshold", 6)),
        mid=overrides.get("mid"),
        reliability=reliability,
    )


def get(name: str) -> Instrument:
    if name not in INSTRUMENTS:
        raise LinkevalError(
            f"unknown instrument {name!r}{did_you_mean(name, INSTRUMENTS)}; "
            f"known: {', '.join(INSTRUMENTS)}"
        )
    return INSTRUMENTS[name]


def score_names() -> dict[str, str]:
    """Score name -> instrument name, for every score of every instrument."""
    return {s.name: i.name for i in INSTRUMENTS.values() for s in i.scores}


def direction(score_name: str) -> int:
    """+1 when a higher score is better (SWEMWBS), -1 when lower is better (PHQ-9, UCLA-3).

    The one place the better/worse sign is decided. Raises ValueError for an unknown score.

    >>> direction("swemwbs"), direction("phq9")
    (1, -1)
    """
    names = score_names()
    if score_name not in names:
        raise ValueError(
            f"unknown score {score_name!r}{did_you_mean(score_name, names)}; "
            f"known: {', '.join(names)}"
        )
    return 1 if INSTRUMENTS[names[score_name]].score(score_name).higher_is_better else -1


@cache
def conversion_table(name: str | tuple[tuple[float, float], ...]) -> pd.Series:
    """A published raw-total -> score table shipped in ``linkeval/data`` (e.g. SWEMWBS), or
    a definition's own (raw, score) pairs."""
    if not isinstance(name, str):  # (raw, score) pairs from a definition
        return pd.Series(dict(name), dtype=float)
    with resources.files("linkeval.data").joinpath(f"{name}.csv").open("r") as fh:
        table = pd.read_csv(fh)
    return table.set_index("raw_score")["metric_score"]


def bands_of(score: Score, settings: Settings) -> tuple[Band, ...]:
    if score.lonely_threshold:
        t = settings.lonely_threshold
        return (Band("not lonely", 3, t - 1e-9), Band("lonely", t, 9))
    return score.bands


def band_labels(score: Score, settings: Settings | None = None) -> list[str]:
    return [b.label for b in bands_of(score, settings or Settings())]


def assign_bands(values: pd.Series, score: Score, settings: Settings) -> pd.Series:
    """Band label of each score (missing where unscored or the score has no bands)."""
    codes, labels = _band_codes(values, score, settings)
    return pd.Series(np.append(np.array(labels, dtype=object), pd.NA)[codes], index=values.index)


def _band_codes(values: pd.Series, score: Score, settings: Settings) -> tuple[np.ndarray, list]:
    """Each score's band as a position in the band labels (the last band that holds it);
    ``len(labels)`` where it is in none."""
    bands = bands_of(score, settings)
    numbers = values.astype("Float64")
    codes = np.full(len(values), len(bands), dtype=np.int64)
    for i, band in enumerate(bands):
        inside = ((numbers >= band.low) & (numbers <= band.high)).fillna(False)
        codes[inside.to_numpy(dtype=bool)] = i
    return codes, [band.label for band in bands]


def item_values(raw: pd.Series, instrument: Instrument) -> tuple[pd.Series, pd.Series]:
    """Raw item answers -> numbers on the item scale.

    Numbers are taken as they are; response labels through the instrument's label map
    (case and punctuation folded). Returns ``(values, invalid)``: values as Float64 with
    missing for blank and invalid answers; ``invalid`` marks non-blank answers that are not
    a label nor a whole number inside the item range (they are flagged, never coerced).
    """
    uniques, slots = distinct(raw)
    values, invalid = _unique_item_values(pd.Series(uniques, dtype=object), instrument)
    return (
        pd.Series(
            pd.array(
                np.append(values.to_numpy(dtype=float, na_value=np.nan), np.nan), dtype="Float64"
            )[slots],
            index=raw.index,
        ),
        pd.Series(np.append(invalid.to_numpy(dtype=bool), False)[slots], index=raw.index),
    )


def _unique_item_values(text: pd.Series, instrument: Instrument) -> tuple[pd.Series, pd.Series]:
    is_blank = text.isna() | (text.astype(str).str.strip() == "")
    numeric = pd.to_numeric(text.where(~is_blank), errors="coerce")
    labels = {normalise_label(k): v for k, v in instrument.labels.items()}
    from_label = text[numeric.isna() & ~is_blank].map(
        lambda v: labels.get(normalise_label(v), np.nan)
    )
    numeric = numeric.astype("Float64")
    numeric.loc[from_label.index] = from_label.astype("Float64")
    whole = (numeric == numeric.round()) if instrument.whole_numbers else numeric.notna()
    ok = (
        numeric.notna()
        & whole.fillna(False)
        & (numeric >= instrument.item_min)
        & (numeric <= instrument.item_max)
    )
    ok = ok.fillna(False).astype(bool)
    return numeric.where(ok), (~is_blank & ~ok).astype(bool)


def score_items(items: pd.DataFrame, instrument: Instrument, settings: Settings) -> pd.DataFrame:
    """Score completions from their item values (one row per completion, items as columns).

    Returns one row per completion and score with columns ``score_name``, ``score`` (Float64),
    ``band``, ``n_items``, ``n_missing``, ``scored`` and ``not_scored_reason``, and the
    original row label in ``row``. The text columns (``score_name``, ``band``,
    ``not_scored_reason``) are categoricals of the values they hold, categories sorted.
    Items listed in ``reversed_items`` are reversed first (value -> item_min + item_max -
    value).
    """
    parts: list[dict[str, np.ndarray]] = []
    names: list[str] = []
    bands, reasons = _Labels(), _Labels()
    for spec in instrument.scores:
        values = items[list(spec.items)].astype("Float64")
        for item in set(spec.items) & set(instrument.reversed_items):
            values[item] = instrument.item_min + instrument.item_max - values[item]
        n_items = len(spec.items)
        n_missing = values.isna().sum(axis=1).astype(int)
        required = [i for i in spec.items if i not in spec.optional]
        n_required_missing = values[required].isna().sum(axis=1).astype(int)
        allowed = settings.max_missing if instrument.allows_prorating else 0
        scored = n_required_missing <= allowed
        total = values.sum(axis=1, skipna=True)
        answered = n_items - n_missing
        mean = total / answered.where(answered > 0)
        if spec.method == "mean":  # the mean of the answered items (e.g. MYCaW profile)
            raw = mean.where(scored)
        else:
            # Person-mean prorating: the missing items take the mean of the answered ones.
            raw = total.where(n_missing == 0, mean * n_items).where(scored)
        score = raw.astype("Float64")
        if spec.conversion:
            table = conversion_table(spec.conversion)
            score = raw.round().map(table).astype("Float64").where(scored)
        band, labels = _band_codes(score, spec, settings)
        missing = n_missing.to_numpy()
        unscored = ~scored.to_numpy(dtype=bool)
        reason = np.full(len(items), -1, dtype=np.int64)  # missing where scored
        counts = np.unique(missing[unscored])
        if len(counts):
            codes = reasons(
                [f"{m} of {n_items} items missing (at most {allowed} allowed)" for m in counts]
            )
            reason[unscored] = codes[np.searchsorted(counts, missing[unscored])]
        parts.append(
            {
                "row": items.index.to_numpy(),
                "score_name": np.full(len(items), len(names)),
                "score": score.to_numpy(dtype=float, na_value=np.nan),
                "band": np.append(bands(labels), -1)[band],
                "n_items": np.full(len(items), n_items),
                "n_missing": missing,
                "scored": ~unscored,
                "not_scored_reason": reason,
            }
        )
        names.append(spec.name)
    column = {c: np.concatenate([p[c] for p in parts]) for c in parts[0]}
    return pd.DataFrame(
        {
            **column,
            "score_name": _categorical(column["score_name"], names),
            "score": pd.array(column["score"], dtype="Float64"),
            "band": _categorical(column["band"], bands.labels),
            "not_scored_reason": _categorical(column["not_scored_reason"], reasons.labels),
        }
    )


class _Labels(dict):
    """Text labels and their codes, each new label the next code (``labels``: in code order)."""

    def __call__(self, labels: list[str]) -> np.ndarray:
        return np.array([self.setdefault(label, len(self)) for label in labels], dtype=np.int64)

    @property
    def labels(self) -> list[str]:
        return list(self)


def _categorical(codes: np.ndarray, labels: list[str]) -> pd.Categorical:
    """Codes into ``labels`` (-1: missing) as a categorical of the labels used, sorted (as
    ``astype("category")`` makes it)."""
    values = pd.Categorical.from_codes(codes, categories=pd.Index(labels, dtype=object))
    values = values.remove_unused_categories()
    return values.reorder_categories(sorted(values.categories))


def cronbach_alpha(items: pd.DataFrame) -> float:
    """Cronbach's alpha of a set of item columns, on complete rows.

    alpha = k / (k - 1) * (1 - sum of item variances / variance of the total), variances
    with ddof = 1 (Cronbach 1951). NaN with fewer than two items or two complete rows.
    """
    complete = items.dropna().astype(float)
    k = complete.shape[1]
    if k < 2 or len(complete) < 2:
        return float("nan")
    item_var = complete.var(axis=0, ddof=1).sum()
    total_var = complete.sum(axis=1).var(ddof=1)
    if total_var == 0:
        return float("nan")
    return float(k / (k - 1) * (1 - item_var / total_var))


SCORE_TITLES = {
    "swemwbs": "Mental wellbeing (SWEMWBS)",
    "wemwbs": "Mental wellbeing (WEMWBS)",
    "ons4_life_satisfaction": "Life satisfaction (ONS4)",
    "ons4_worthwhile": "Feeling worthwhile (ONS4)",
    "ons4_happy": "Happiness yesterday (ONS4)",
    "ons4_anxious": "Anxiety yesterday (ONS4)",
    "ucla3": "Loneliness (UCLA-3)",
    "ons_loneliness": "How often lonely (ONS)",
    "phq9": "Depression symptoms (PHQ-9)",
    "gad7": "Anxiety symptoms (GAD-7)",
    "eq_vas": "Self-rated health (EQ VAS)",
}


def score_title(name: str) -> str:
    if name in SCORE_TITLES:
        return SCORE_TITLES[name]
    names = score_names()
    if name not in names:
        return name
    instrument = INSTRUMENTS[names[name]]
    return instrument.score(name).title or instrument.title


def score_spec(name: str) -> Score:
    """The definition of one score (``swemwbs``, ``ons4_anxious``, ...)."""
    names = score_names()
    if name not in names:
        raise ValueError(
            f"unknown score {name!r}{did_you_mean(name, list(names))}; scores: {', '.join(names)}"
        )
    return INSTRUMENTS[names[name]].score(name)
