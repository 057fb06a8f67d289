"""The ground truth: what the cleaner should do with every raw row, and what it should produce.

Row truth has one row per raw row, in file order: the rule that should reject it (or none: kept)
and whether it should be flagged. Clean truth is the canonical values of every kept referral,
contact and onward referral, and the questionnaire scores and pairs computed directly from the
generated answers by the published scoring rules.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from linkeval.synthetic.styles import SiteStyle
from linkeval.synthetic.wellbeing import FOLLOWUP_WINDOW, Questionnaires
from linkeval.synthetic.writers import FileRows

# Each instrument's valid answers; anything else is not scored.
ANSWER_RANGES = {"swemwbs": (1, 5), "ucla3": (1, 3), "ons4": (0, 10), "phq9": (0, 3),
                 "gad7": (0, 3), "ons_loneliness": (1, 5), "eq_vas": (0, 100)}
ONS4_ITEMS = ["life_satisfaction", "worthwhile", "happy", "anxious"]  # scored one by one
# truth name of (row truth, clean rows) for each event table
EVENT_TRUTH = {"contacts": ("contact_rows", "contacts"),
               "onward_referrals": ("onward_rows", "onward_referrals")}


def row_truth(raw: pd.DataFrame, files: list[tuple[str, np.ndarray]], site: str,
              table: str) -> pd.DataFrame:
    """The expected fate of each raw row, file by file, row by row."""
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


def kept_referral_ids(raw: pd.DataFrame) -> set[str]:
    """Referral IDs of the raw referral rows the cleaner keeps."""
    return set(raw.loc[raw["_rule"].isna(), "referral_id"])


def referral_truth(style: SiteStyle, raw: pd.DataFrame, ref: pd.DataFrame,
                   reasons: pd.DataFrame, files: FileRows, unmapped_source: set[str],
                   unmapped_reason: set[str]) -> dict[str, pd.DataFrame]:
    """Row truth for the referral files, the kept referrals and their reasons.

    ``unmapped_source`` and ``unmapped_reason`` are the referrals written with a label nobody
    mapped: their kept rows should be flagged.
    """
    kept = raw["_rule"].isna().to_numpy()
    rows = row_truth(raw, files["referrals"], style.code, "referrals")
    rows["flag_source"] = raw["referral_id"].isin(unmapped_source).to_numpy() & kept
    rows["flag_reason"] = raw["referral_id"].isin(unmapped_reason).to_numpy() & kept
    kept_ids = kept_referral_ids(raw)
    clean = ref[ref["referral_id"].isin(kept_ids)].copy()
    # Only what the site exports can be recovered.
    if not style.dob:
        clean["date_of_birth"] = pd.NaT
    if style.identity != "nhs":
        clean["nhs_number"] = None
    else:
        clean["local_id"] = None
    clean.insert(0, "site", style.code)
    reason_codes = reasons.drop_duplicates(["referral_id", "reason"])[["referral_id", "reason"]]
    return {"referral_rows": rows, "referrals": clean.drop(columns=["person"]),
            "referral_reasons": reason_codes[reason_codes["referral_id"].isin(kept_ids)]
            .assign(site=style.code)}


def event_truth(site: str, table: str, raw: pd.DataFrame, events: pd.DataFrame,
                files: FileRows, kept_ids: set[str]) -> dict[str, pd.DataFrame]:
    """Row truth for a contacts or onward-referrals table, and its rows for kept referrals."""
    rows_name, clean_name = EVENT_TRUTH[table]
    return {rows_name: row_truth(raw, files[table], site, table),
            clean_name: events[events["referral_id"].isin(kept_ids)].assign(site=site)}


def questionnaire_truth(site: str, out: pd.DataFrame, path: str, rows: pd.DataFrame,
                        q: Questionnaires) -> dict[str, pd.DataFrame]:
    """Row truth for the exported forms, expected scores and pairs, and each person's truth.

    ``out`` is the export with its bookkeeping columns; ``rows`` the canonical forms (with
    defects in the answers) that were exported.
    """
    truth_rows = pd.DataFrame({
        "site": site, "table": "questionnaires", "source_file": path,
        "source_row": np.arange(1, len(out) + 1), "expected_rule": out["_rule"].to_numpy(),
        "flagged": out["_flag"].to_numpy()})
    truth_rows["expected_action"] = np.where(truth_rows["expected_rule"].isna(), "kept",
                                             "rejected")
    scores = expected_scores(rows, q.instruments)
    return {"questionnaire_rows": truth_rows, "scores": scores.assign(site=site),
            "pairs": expected_pairs(scores).assign(site=site),
            "people": q.people.assign(site=site)}


def expected_scores(rows: pd.DataFrame, instruments: list[str]) -> pd.DataFrame:
    """Scores by the published rules, computed directly from the generated answers."""
    table = pd.read_csv(Path(__file__).parents[1] / "data" / "swemwbs_metric.csv") \
        .set_index("raw_score")["metric_score"]
    parts = []
    for name in instruments:
        cols = [c for c in rows.columns if c.split(":")[0] == name and ":" in c]
        raw = rows[cols].replace("", np.nan).astype(float)
        lo, hi = ANSWER_RANGES[name]
        raw = raw.where((raw >= lo) & (raw <= hi))
        if name == "ons4":
            for j, item in enumerate(ONS4_ITEMS):
                parts.append(_score_frame(rows, f"ons4_{item}", raw.iloc[:, j]))
            continue
        # A total only when every item is answered and in range.
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


def expected_pairs(scores: pd.DataFrame) -> pd.DataFrame:
    """Each baseline score with its follow-up: the earliest in the window, else the earliest."""
    s = scores[scores["scored"]]
    base = s[s["timepoint"] == "baseline"][["referral_id", "instrument", "score",
                                            "completed_date"]]
    follow = s[s["timepoint"] == "followup"]
    merged = base.merge(follow[["referral_id", "instrument", "score", "completed_date"]],
                        on=["referral_id", "instrument"], how="left", suffixes=("_b", "_f"))
    merged["days"] = (merged["completed_date_f"] - merged["completed_date_b"]).dt.days
    before = merged["days"] < 0  # a follow-up dated before the baseline is not used
    merged.loc[before, ["score_f", "days"]] = np.nan
    merged["in_window"] = merged["days"].between(*FOLLOWUP_WINDOW)
    keep = merged.sort_values(["in_window", "days"], ascending=[False, True]) \
        .drop_duplicates(["referral_id", "instrument"])
    return pd.DataFrame({"referral_id": keep["referral_id"], "instrument": keep["instrument"],
                         "baseline": keep["score_b"], "followup": keep["score_f"],
                         "days_between": keep["days"],
                         "in_window": keep["days"].between(*FOLLOWUP_WINDOW)})
