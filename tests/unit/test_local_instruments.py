"""Instruments declared in the config, and the measures services use, pinned to their rules.

Each published rule is cited in the instrument's definition (``linkeval/instruments.py``,
module docstring and ``DEFINED``); docs/standard.md, 'Outcome measures'.
"""

from __future__ import annotations

import pickle
import subprocess
import sys

import pandas as pd
import pytest
import yaml

from linkeval.cleaning import clean_study
from linkeval.config import load_config
from linkeval.errors import LinkevalError
from linkeval.instruments import (
    BUILTIN,
    INSTRUMENTS,
    Settings,
    define,
    direction,
    item_values,
    score_items,
    score_title,
    settings_for,
)
from tests.helpers import write_study

KEY = b"test-key-for-linkeval-unit-tests"


def scores_of(name: str, rows: list[list], settings: Settings | None = None) -> pd.DataFrame:
    inst = INSTRUMENTS[name]
    items = pd.DataFrame(rows, columns=list(inst.items), dtype="Float64")
    out = score_items(items, inst, settings or settings_for(name))
    return out


def one(out: pd.DataFrame, score: str) -> list:
    return (
        out[out["score_name"] == score]["score"]
        .astype(object)
        .where(out[out["score_name"] == score]["scored"], None)
        .tolist()
    )


# ---------------------------------------------------------------------------------------------
# MYCaW (Paterson 2007; profile score as MYMOP, Paterson 1996)


def test_mycaw_concerns_wellbeing_and_profile_score():
    out = scores_of("mycaw", [[5, 3, 4], [4, None, 2], [None, 2, 3], [6, 6, None]])
    assert one(out, "mycaw_concern1") == [5, 4, None, 6]
    assert one(out, "mycaw_concern2") == [3, None, 2, 6]
    assert one(out, "mycaw_wellbeing") == [4, 2, 3, None]
    # Profile = mean of the available scores; one concern is enough, wellbeing is required.
    assert one(out, "mycaw") == [pytest.approx(4.0), pytest.approx(3.0), None, None]
    assert all(direction(s) == -1 for s in ("mycaw", "mycaw_concern1", "mycaw_wellbeing"))


def test_mycaw_scale_is_0_to_6_with_labelled_ends():
    values, invalid = item_values(
        pd.Series(["0", "6", "7", "-1", "Bothers me greatly", "Not bothering me at all", "3.5"]),
        INSTRUMENTS["mycaw"],
    )
    assert values.tolist()[:2] == [0, 6] and values.tolist()[4:6] == [6, 0]
    assert invalid.tolist() == [False, False, True, True, False, False, True]


def test_mycaw_concerns_pair_at_concern_level():
    from linkeval.stats.pairing import pair_scores

    base = {"site": "A", "person_id": "p" * 64, "referral_id": "R1"}
    rows = []
    for tp, date, answers in (
        ("baseline", "2024-01-10", [5, 3, 4]),
        ("followup", "2024-10-20", [2, 3, 2]),
    ):
        scored = scores_of("mycaw", [answers])
        for r in scored.itertuples():
            rows.append(
                {
                    **base,
                    "timepoint": tp,
                    "completed_date": pd.Timestamp(date),
                    "instrument": r.score_name,
                    "score": r.score,
                    "band": r.band,
                    "scored": r.scored,
                }
            )
    frame = pd.DataFrame(rows)
    frame["score"] = frame["score"].astype("Float64")
    pairs, _ = pair_scores(frame, (270, 365))
    change = pairs.set_index("instrument")["change"]
    assert change["mycaw_concern1"] == -3 and change["mycaw_concern2"] == 0
    assert change["mycaw_wellbeing"] == -2
    assert change["mycaw"] == pytest.approx((2 + 3 + 2) / 3 - 4)


# ---------------------------------------------------------------------------------------------
# Campaign to End Loneliness Measurement Tool (Campaign to End Loneliness 2015)


def test_cel_scoring_from_labels_and_numbers():
    labels = ["Strongly disagree", "Disagree", "Neutral", "Agree", "Strongly agree"]
    values, invalid = item_values(pd.Series(labels), INSTRUMENTS["cel"])
    assert values.tolist() == [4, 3, 2, 1, 0] and not invalid.any()
    out = scores_of("cel", [[4, 4, 4], [0, 0, 0], [3, 2, 1], [1, None, 1]])
    assert one(out, "cel") == [12, 0, 6, None]  # 0-12, any missing answer: no score
    assert direction("cel") == -1
    assert out["band"].isna().all()  # the guidance gives no bands


# ---------------------------------------------------------------------------------------------
# ReQoL-10 (Keetharuth 2018): item scores as on the scoring sheet, total 0-40, higher better


def test_reqol10_total_and_missing_items():
    out = scores_of(
        "reqol10", [[4] * 10, [0] * 10, [0, 1, 2, 3, 4, 4, 3, 2, 1, 0], [4] * 9 + [None]]
    )
    assert one(out, "reqol10") == [40, 0, 20, None]
    assert direction("reqol10") == 1
    assert "Oxford University Innovation" in INSTRUMENTS["reqol10"].licence


def test_reqol_negatively_worded_items_reversed_in_a_local_definition():
    # A site exporting raw response positions (0 = none of the time ... 4 = most or all of
    # the time) declares the negatively worded items of its licensed form as reversed.
    inst = define(
        "reqol10_raw",
        {
            "title": "ReQoL-10 raw positions",
            "source": "Keetharuth 2018; licensed form",
            "items": [f"q{i}" for i in range(1, 11)],
            "range": [0, 4],
            "higher_is_better": True,
            "reversed": ["q1", "q3"],
            "labels": {
                "None of the time": 0,
                "Only occasionally": 1,
                "Sometimes": 2,
                "Often": 3,
                "Most or all of the time": 4,
            },
        },
    )
    items = pd.DataFrame([[4] * 10], columns=list(inst.items), dtype="Float64")
    assert score_items(items, inst, Settings())["score"].iloc[0] == 32  # 8 x 4 + 2 x 0


# ---------------------------------------------------------------------------------------------
# Licensed measures without public item scoring: pre-scored totals and levels


def test_pam_prescored_score_and_level():
    values, invalid = item_values(pd.Series(["55.2", "100", "101", "abc"]), INSTRUMENTS["pam"])
    assert values.tolist()[:2] == [55.2, 100] and invalid.tolist() == [False, False, True, True]
    out = scores_of("pam", [[47.0, 1], [67.1, 4]])
    assert one(out, "pam") == [47.0, 67.1]
    assert out[out["score_name"] == "pam_level"]["band"].tolist() == ["level 1", "level 4"]


def test_wellbeing_star_prescored_total():
    out = scores_of("wellbeing_star", [[8], [80], [None]])
    assert one(out, "wellbeing_star") == [8, 80, None]
    values, invalid = item_values(pd.Series(["7", "81", "40"]), INSTRUMENTS["wellbeing_star"])
    assert invalid.tolist() == [True, True, False]


# ---------------------------------------------------------------------------------------------
# The declarative definition (the same mechanism for built-in and local instruments)

SPEC = {
    "title": "Community connection scale",
    "source": "in-house (Riverside PCN, 2024)",
    "items": ["belong", "trust", "alone", "help"],
    "range": [1, 5],
    "labels": {"Never": 1, "Rarely": 2, "Sometimes": 3, "Often": 4, "Always": 5},
    "reversed": ["alone"],
    "higher_is_better": True,
    "scoring": "sum",
    "bands": {"low": [4, 9], "medium": [10, 15], "high": [16, 20]},
    "mid": 2,
    "max_missing": 1,
}


def test_local_definition_reversed_items_bands_mid_and_prorating():
    inst = define("connect", SPEC)
    items = pd.DataFrame(
        [[5, 5, 1, 5], [1, 1, 5, 1], [3, 3, 3, None], [3, None, None, 3]],
        columns=list(inst.items),
        dtype="Float64",
    )
    out = score_items(items, inst, Settings(max_missing=inst.max_missing))
    assert out["score"].tolist()[:3] == [20, 4, 12]  # alone reversed: 6 - value
    assert out["band"].tolist()[:3] == ["high", "low", "medium"]
    assert not out["scored"].iloc[3]  # two missing, one allowed
    assert out["not_scored_reason"].iloc[3] == "2 of 4 items missing (at most 1 allowed)"
    assert inst.score("connect").mid == 2 and inst.allows_prorating


def test_local_definition_mean_scoring_and_conversion_table(tmp_path):
    inst = define(
        "mood",
        {
            "title": "Mood",
            "source": "in-house",
            "items": ["a", "b", "c"],
            "range": [0, 2],
            "higher_is_better": False,
            "scoring": "mean",
        },
    )
    items = pd.DataFrame([[0, 1, 2]], columns=["a", "b", "c"], dtype="Float64")
    assert score_items(items, inst, Settings())["score"].iloc[0] == 1
    (tmp_path / "table.csv").write_text("raw_score,score\n0,0\n1,10\n2,25\n")
    conv = define(
        "conv",
        {
            "title": "C",
            "source": "x",
            "items": ["a", "b"],
            "range": [0, 1],
            "higher_is_better": True,
            "conversion": "table.csv",
        },
        tmp_path,
    )
    items = pd.DataFrame([[1, 1], [0, 1]], columns=["a", "b"], dtype="Float64")
    assert score_items(items, conv, Settings())["score"].tolist() == [25, 10]
    inline = define(
        "conv2",
        {
            "title": "C",
            "source": "x",
            "items": ["a"],
            "range": [0, 1],
            "higher_is_better": True,
            "conversion": {0: 5, 1: 7},
        },
    )
    assert score_items(items[["a"]], inline, Settings())["score"].tolist() == [7, 5]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"range": [5, 1]}, "instruments.bad.range"),
        ({"reversed": ["nope"]}, "instruments.bad.reversed"),
        ({"scoring": "median"}, "instruments.bad.scoring"),
        ({"higher_is_better": None}, "instruments.bad.higher_is_better"),
        ({"bands": {"low": [3, 1]}}, "instruments.bad.bands.low"),
        ({"max_missing": 4}, "instruments.bad.max_missing"),
        ({"labels": {"Always": 9}}, "instruments.bad.labels.Always"),
        ({"item": ["x"]}, 'did you mean "items"'),
    ],
)
def test_definition_errors_name_the_key(change, message):
    with pytest.raises(LinkevalError, match=message.replace(".", r"\.")):
        define("bad", {**SPEC, **change})


def test_builtins_are_defined_with_the_same_mechanism():
    assert {"mycaw", "cel", "reqol10", "pam", "wellbeing_star"} <= BUILTIN
    for inst in INSTRUMENTS.values():
        assert inst.source and inst.item_min < inst.item_max
        for spec in inst.scores:
            assert set(spec.items) <= set(inst.items) and set(spec.optional) < set(spec.items)
    assert score_title("mycaw") == "MYCaW profile score"
    assert score_title("cel") == "Campaign to End Loneliness Measurement Tool"


# ---------------------------------------------------------------------------------------------
# In a study config: declared, validated, scored, and known to workers


QUESTIONNAIRES = (
    "Ref,Date,Stage,Belong,Trust,Alone,Help,C1,C2,WB\n"
    "R1,10/03/2024,Baseline,Never,Rarely,Always,Never,5,4,5\n"
    "R1,15/12/2024,Follow-up,Often,Often,Rarely,Always,2,,2\n"
)


def study_with_local(tmp_path, spec=SPEC):
    path = write_study(tmp_path, extra={"instruments": {"connect": spec, "mycaw": {"mid": 1}}})
    cfg = yaml.safe_load(path.read_text())
    (tmp_path / "raw" / "x" / "q.csv").write_text(QUESTIONNAIRES)
    cfg["sites"]["X"]["sources"].append(
        {
            "table": "questionnaires",
            "path": "x/q.csv",
            "columns": {"referral_id": "Ref", "completed_date": "Date", "timepoint": "Stage"},
            "items": {"connect": ["Belong", "Trust", "Alone", "Help"], "mycaw": ["C1", "C2", "WB"]},
        }
    )
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def test_config_local_instrument_is_scored_and_paired(tmp_path):
    cfg = load_config(study_with_local(tmp_path))
    assert [i.name for i in cfg.local_instruments] == ["connect"]
    assert cfg.instruments["mycaw"] == {"mid": 1} and cfg.instruments["connect"] == {
        "mid": 2,
        "max_missing": 1,
    }
    result = clean_study(cfg, key=KEY, today=pd.Timestamp("2026-01-01"))
    scores = result.tables["scores"].set_index(["instrument", "timepoint"])["score"]
    assert scores[("connect", "baseline")] == 1 + 2 + 1 + 1  # alone "Always" reversed -> 1
    assert scores[("connect", "followup")] == 4 + 4 + 4 + 5
    pairs = result.tables["pairs"].set_index("instrument")
    assert pairs.loc["connect", "change"] == 12 and pairs.loc["connect", "met_mid_improvement"]
    assert pairs.loc["mycaw_concern1", "change"] == -3
    assert pairs.loc["mycaw", "change"] == pytest.approx(2 - 14 / 3)
    assert bool(pairs.loc["mycaw", "met_mid_improvement"])  # improvement = lower, MID 1


def test_config_refuses_unknown_instrument_and_builtin_redefinition(tmp_path):
    path = write_study(tmp_path, extra={"instruments": {"swembws": {"mid": 3}}})
    with pytest.raises(
        LinkevalError, match='instruments.swembws: unknown instrument.*did you mean "swemwbs"'
    ):
        load_config(path)
    path = write_study(tmp_path, extra={"instruments": {"ucla3": SPEC}})
    with pytest.raises(LinkevalError, match="built-in instrument"):
        load_config(path)
    path = write_study(tmp_path, extra={"instruments": {"connect": {**SPEC, "colour": 1}}})
    with pytest.raises(LinkevalError, match=r"instruments\.connect\.colour: unknown key"):
        load_config(path)


def test_local_instrument_survives_pickling_into_a_fresh_process(tmp_path):
    cfg = load_config(study_with_local(tmp_path))
    blob = tmp_path / "cfg.pickle"
    blob.write_bytes(pickle.dumps(cfg))
    code = (
        "import pickle, sys; from linkeval.instruments import INSTRUMENTS, direction; "
        f"pickle.load(open({str(blob)!r}, 'rb')); "
        "print(INSTRUMENTS['connect'].title, direction('connect'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "Community connection scale 1"
