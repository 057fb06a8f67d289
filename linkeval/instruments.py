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
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from importlib import resources
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
    conversion: str | None = None  # name of a raw-total -> score table in package data
    lonely_threshold: bool = False  # bands come from the `lonely_threshold` setting (UCLA-3)


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

    def score(self, name: str) -> Score:
        return next(s for s in self.scores if s.name == name)


WEMWBS_LABELS = {"none of the time": 1, "rarely": 2, "some of the time": 3, "often": 4,
                 "all of the time": 5}
PHQ_LABELS = {"not at all": 0, "several days": 1, "more than half the days": 2,
              "nearly every day": 3}
SWEMWBS_ITEMS = ("optimistic", "useful", "relaxed", "dealing_with_problems", "thinking_clearly",
                 "close_to_others", "own_mind")
WEMWBS_ITEMS = ("optimistic", "useful", "relaxed", "interested_in_people", "energy",
                "dealing_with_problems", "thinking_clearly", "good_about_self",
                "close_to_others", "confident", "own_mind", "loved", "interested_in_new_things",
                "cheerful")
ONS4_BANDS = (Band("low", 0, 4), Band("medium", 5, 6), Band("high", 7, 8),
              Band("very high", 9, 10))
ONS4_ANXIETY_BANDS = (Band("very low", 0, 1), Band("low", 2, 3), Band("medium", 4, 5),
                      Band("high", 6, 10))


def _one(name: str, items: tuple[str, ...], higher_is_better: bool, **kw) -> tuple[Score, ...]:
    return (Score(name=name, items=items, higher_is_better=higher_is_better, **kw),)


INSTRUMENTS: dict[str, Instrument] = {
    "swemwbs": Instrument(
        "swemwbs", "Short Warwick-Edinburgh Mental Wellbeing Scale", SWEMWBS_ITEMS, 1, 5,
        _one("swemwbs", SWEMWBS_ITEMS, True, mid=3.0, conversion="swemwbs_metric"),
        labels=WEMWBS_LABELS, source="Stewart-Brown 2009; Shah 2018"),
    "wemwbs": Instrument(
        "wemwbs", "Warwick-Edinburgh Mental Wellbeing Scale", WEMWBS_ITEMS, 1, 5,
        _one("wemwbs", WEMWBS_ITEMS, True, mid=3.0), labels=WEMWBS_LABELS,
        allows_prorating=True, source="Tennant 2007; Maheswaran 2012"),
    "ons4": Instrument(
        "ons4", "ONS personal wellbeing (ONS4)",
        ("life_satisfaction", "worthwhile", "happy", "anxious"), 0, 10,
        (Score("ons4_life_satisfaction", ("life_satisfaction",), True, ONS4_BANDS),
         Score("ons4_worthwhile", ("worthwhile",), True, ONS4_BANDS),
         Score("ons4_happy", ("happy",), True, ONS4_BANDS),
         Score("ons4_anxious", ("anxious",), False, ONS4_ANXIETY_BANDS)),
        labels={"not at all": 0, "completely": 10}, source="ONS personal wellbeing guidance"),
    "ucla3": Instrument(
        "ucla3", "UCLA 3-item loneliness scale", ("lack_companionship", "left_out", "isolated"),
        1, 3, _one("ucla3", ("lack_companionship", "left_out", "isolated"), False,
                   lonely_threshold=True),
        labels={"hardly ever": 1, "hardly ever or never": 1, "never": 1, "some of the time": 2,
                "often": 3}, source="Hughes 2004"),
    "ons_loneliness": Instrument(
        "ons_loneliness", "ONS direct loneliness question", ("how_often_lonely",), 1, 5,
        _one("ons_loneliness", ("how_often_lonely",), False,
             bands=(Band("never", 1, 1), Band("hardly ever", 2, 2), Band("occasionally", 3, 3),
                    Band("some of the time", 4, 4), Band("often/always", 5, 5))),
        labels={"never": 1, "hardly ever": 2, "occasionally": 3, "some of the time": 4,
                "often always": 5, "often": 5, "always": 5}, source="ONS 2018"),
    "phq9": Instrument(
        "phq9", "Patient Health Questionnaire (PHQ-9)",
        ("interest", "down", "sleep", "tired", "appetite", "failure", "concentration", "moving",
         "self_harm"), 0, 3,
        _one("phq9", ("interest", "down", "sleep", "tired", "appetite", "failure",
                      "concentration", "moving", "self_harm"), False, mid=5.0,
             bands=(Band("minimal", 0, 4), Band("mild", 5, 9), Band("moderate", 10, 14),
                    Band("moderately severe", 15, 19), Band("severe", 20, 27))),
        labels=PHQ_LABELS, source="Kroenke 2001; Löwe 2004"),
    "gad7": Instrument(
        "gad7", "Generalised Anxiety Disorder scale (GAD-7)",
        ("nervous", "control_worry", "worry_too_much", "trouble_relaxing", "restless",
         "irritable", "afraid"), 0, 3,
        _one("gad7", ("nervous", "control_worry", "worry_too_much", "trouble_relaxing",
                      "restless", "irritable", "afraid"), False, mid=4.0,
             bands=(Band("minimal", 0, 4), Band("mild", 5, 9), Band("moderate", 10, 14),
                    Band("severe", 15, 21))),
        labels=PHQ_LABELS, source="Spitzer 2006; Toussaint 2020"),
    "eq_vas": Instrument(
        "eq_vas", "EQ-5D visual analogue scale", ("vas",), 0, 100,
        _one("eq_vas", ("vas",), True), source="EuroQol EQ-5D-5L user guide"),
}

SETTINGS = {"max_missing", "lonely_threshold", "mid", "reliability"}


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
            raise LinkevalError(f"instruments.{name}.{key}: unknown setting"
                                f"{did_you_mean(key, SETTINGS)}; valid: {', '.join(sorted(SETTINGS))}")
    max_missing = overrides.get("max_missing", 0)
    if not isinstance(max_missing, int) or max_missing < 0:
        raise LinkevalError(f"instruments.{name}.max_missing: must be a whole number >= 0")
    if max_missing and not instrument.allows_prorating:
        raise LinkevalError(f"instruments.{name}.max_missing: {instrument.title} is scored only "
                            "when every item is answered (no published prorating rule)")
    if max_missing >= len(instrument.items):
        raise LinkevalError(f"instruments.{name}.max_missing: must be below the number of items "
                            f"({len(instrument.items)})")
    reliability = overrides.get("reliability")
    if reliability is not None and not 0 < float(reliability) < 1:
        raise LinkevalError(f"instruments.{name}.reliability: must be between 0 and 1")
    return Settings(max_missing=max_missing,
                    lonely_threshold=float(overrides.get("lonely_threshold", 6)),
                    mid=overrides.get("mid"), reliability=reliability)


def get(name: str) -> Instrument:
    if name not in INSTRUMENTS:
        raise LinkevalError(f"unknown instrument {name!r}{did_you_mean(name, INSTRUMENTS)}; "
                            f"known: {', '.join(INSTRUMENTS)}")
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
        raise ValueError(f"unknown score {score_name!r}{did_you_mean(score_name, names)}; "
                         f"known: {', '.join(names)}")
    return 1 if INSTRUMENTS[names[score_name]].score(score_name).higher_is_better else -1


@cache
def conversion_table(name: str) -> pd.Series:
    """A published raw-total -> score table shipped in ``linkeval/data`` (e.g. SWEMWBS)."""
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
    out = pd.Series(pd.NA, index=values.index, dtype=object)
    for band in bands_of(score, settings):
        out[(values >= band.low) & (values <= band.high)] = band.label
    return out


def item_values(raw: pd.Series, instrument: Instrument) -> tuple[pd.Series, pd.Series]:
    """Raw item answers -> numbers on the item scale.

    Numbers are taken as they are; response labels through the instrument's label map
    (case and punctuation folded). Returns ``(values, invalid)``: values as Float64 with
    missing for blank and invalid answers; ``invalid`` marks non-blank answers that are not
    a label nor a whole number inside the item range (they are flagged, never coerced).
    """
    uniques, slots = distinct(raw)
    values, invalid = _unique_item_values(pd.Series(uniques, dtype=object), instrument)
    return (pd.Series(pd.array(np.append(values.to_numpy(dtype=float, na_value=np.nan), np.nan),
                               dtype="Float64")[slots], index=raw.index),
            pd.Series(np.append(invalid.to_numpy(dtype=bool), False)[slots], index=raw.index))


def _unique_item_values(text: pd.Series, instrument: Instrument) -> tuple[pd.Series, pd.Series]:
    is_blank = text.isna() | (text.astype(str).str.strip() == "")
    numeric = pd.to_numeric(text.where(~is_blank), errors="coerce")
    labels = {normalise_label(k): v for k, v in instrument.labels.items()}
    from_label = text[numeric.isna() & ~is_blank].map(
        lambda v: labels.get(normalise_label(v), np.nan))
    numeric = numeric.astype("Float64")
    numeric.loc[from_label.index] = from_label.astype("Float64")
    whole = numeric == numeric.round()
    ok = numeric.notna() & whole.fillna(False) & (numeric >= instrument.item_min) & (
        numeric <= instrument.item_max)
    ok = ok.fillna(False).astype(bool)
    return numeric.where(ok), (~is_blank & ~ok).astype(bool)


def score_items(items: pd.DataFrame, instrument: Instrument, settings: Settings) -> pd.DataFrame:
    """Score completions from their item values (one row per completion, items as columns).

    Returns one row per completion and score with columns ``score_name``, ``score`` (Float64),
    ``band``, ``n_items``, ``n_missing``, ``scored`` and ``not_scored_reason``, and the
    original row label in ``row``. Items listed in ``reversed_items`` are reversed first
    (value -> item_min + item_max - value).
    """
    frames = []
    for spec in instrument.scores:
        values = items[list(spec.items)].astype("Float64")
        for item in set(spec.items) & set(instrument.reversed_items):
            values[item] = instrument.item_min + instrument.item_max - values[item]
        n_items = len(spec.items)
        n_missing = values.isna().sum(axis=1).astype(int)
        allowed = settings.max_missing if instrument.allows_prorating else 0
        scored = n_missing <= allowed
        total = values.sum(axis=1, skipna=True)
        answered = n_items - n_missing
        # Person-mean prorating: the missing items take the mean of the answered ones.
        prorated = (total / answered.where(answered > 0) * n_items)
        raw = total.where(n_missing == 0, prorated).where(scored)
        score = raw.astype("Float64")
        if spec.conversion:
            table = conversion_table(spec.conversion)
            score = raw.round().map(table).astype("Float64").where(scored)
        reason = pd.Series(pd.NA, index=items.index, dtype=object)
        reason[~scored] = (n_missing[~scored].astype(str) + f" of {n_items} items missing"
                           + f" (at most {allowed} allowed)")
        frames.append(pd.DataFrame({
            "row": items.index, "score_name": spec.name, "score": score.to_numpy(),
            "band": assign_bands(score, spec, settings).to_numpy(),
            "n_items": n_items, "n_missing": n_missing.to_numpy(), "scored": scored.to_numpy(),
            "not_scored_reason": reason.to_numpy(),
        }))
    return pd.concat(frames, ignore_index=True)


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
    "swemwbs": "Mental wellbeing (SWEMWBS)", "wemwbs": "Mental wellbeing (WEMWBS)",
    "ons4_life_satisfaction": "Life satisfaction (ONS4)", "ons4_worthwhile": "Feeling worthwhile (ONS4)",
    "ons4_happy": "Happiness yesterday (ONS4)", "ons4_anxious": "Anxiety yesterday (ONS4)",
    "ucla3": "Loneliness (UCLA-3)", "ons_loneliness": "How often lonely (ONS)",
    "phq9": "Depression symptoms (PHQ-9)", "gad7": "Anxiety symptoms (GAD-7)",
    "eq_vas": "Self-rated health (EQ VAS)",
}


def score_title(name: str) -> str:
    return SCORE_TITLES.get(name, name)


def score_spec(name: str) -> Score:
    """The definition of one score (``swemwbs``, ``ons4_anxious``, ...)."""
    names = score_names()
    if name not in names:
        raise ValueError(f"unknown score {name!r}{did_you_mean(name, list(names))}; "
                         f"scores: {', '.join(names)}")
    return INSTRUMENTS[names[name]].score(name)
