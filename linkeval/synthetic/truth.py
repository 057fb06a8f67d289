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
from linkeval.synthetic.wellbeing import FOLLOWUP_WINDOW, LOCAL_INSTRUMENTS, Questionnaires
from linkeval.synthetic.writers import FileRows

# Each instrument's valid answers; anything else is not scored.
ANSWER_RANGES = {
    "swemwbs": (1, 5),
    "ucla3": (1, 3),
    "ons4": (0, 10),
    "phq9": (0, 3),
    "gad7": (0, 3),
    "ons_loneliness": (1, 5),
    "eq_vas": (0, 100),
    "mycaw": (0, 6),
    **{n: tuple(d["range"]) for n, d in LOCAL_INSTRUMENTS.items()},
}
MYCAW_SCORES = ["mycaw_concern1", "mycaw_concern2", "mycaw_wellbeing"]  # one per item
ONS4_ITEMS = ["life_satisfaction", "worthwhile", "happy", "anxious"]  # scored one by one
# truth name of (row truth, clean rows) for each event table
EVENT_TRUTH = {
    "contacts": ("contact_rows", "contacts"),
    "onward_referrals": ("onward_rows", "onward_referrals"),
}


def row_truth(
    raw: pd.DataFrame, files: list[tuple[str, np.ndarray]], site: str, table: str
) -> pd.DataFrame:
    """The expected fate of each raw row, file by file, row by row."""
    parts = []
    for name, rows in files:
        sub = raw.iloc[rows]
        parts.append(
            pd.DataFrame(
                {
                    "site": site,
                    "table": table,
                    "source_file": name,
                    "source_row": np.arange(1, len(rows) + 1),
                    "referral_id": sub["referral_id"].to_numpy(),
                    "expected_rule": sub["_rule"].to_numpy(),
                    "flagged": sub["_flag"].to_numpy() if "_flag" in sub else False,
                }
            )
        )
    out = pd.concat(parts, ignore_index=True)
    out["expected_action"] = np.where(out["expected_rule"].isna(), "kept", "rejected")
    return out


def kept_referral_ids(raw: pd.DataFrame) -> set[str]:
    """Referral IDs of the raw referral rows the cleaner keeps."""
    return set(raw.loc[raw["_rule"].isna(), "referral_id"])


def referral_truth(
    style: SiteStyle,
    raw: pd.DataFrame,
    ref: pd.DataFrame,
    reasons: pd.DataFrame,
    files: FileRows,
    unmapped_source: set[str],
    unmapped_reason: set[str],
) -> dict[str, pd.DataFrame]:
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
    return {
        "referral_rows": rows,
        "referrals": clean.drop(columns=["person"]),
        "referral_reasons": reason_codes[reason_codes["referral_id"].isin(kept_ids)].assign(
            site=style.code
        ),
    }


def event_truth(
    site: str,
    table: str,
    raw: pd.DataFrame,
    events: pd.DataFrame,
    files: FileRows,
    kept_ids: set[str],
) -> dict[str, pd.DataFrame]:
    """Row truth for a contacts or onward-referrals table, and its rows for kept referrals."""
    rows_name, clean_name = EVENT_TRUTH[table]
    return {
        rows_name: row_truth(raw, files[table], site, table),
        clean_name: events[events["referral_id"].isin(kept_ids)].assign(site=site),
    }


def questionnaire_truth(
    site: str, out: pd.DataFrame, path: str, rows: pd.DataFrame, q: Questionnaires
) -> dict[str, pd.DataFrame]:
    """Row truth for the exported forms, expected scores and pairs, and each person's truth.

    ``out`` is the export with its bookkeeping columns; ``rows`` the canonical forms (with
    defects in the answers) that were exported.
    """
    truth_rows = pd.DataFrame(
        {
            "site": site,
            "table": "questionnaires",
            "source_file": path,
            "source_row": np.arange(1, len(out) + 1),
            "expected_rule": out["_rule"].to_numpy(),
            "flagged": out["_flag"].to_numpy(),
        }
    )
    truth_rows["expected_action"] = np.where(truth_rows["expected_rule"].isna(), "kept", "rejected")
    scores = expected_scores(rows, q.instruments)
    return {
        "questionnaire_rows": truth_rows,
        "scores": scores.assign(site=site),
        "pairs": expected_pairs(scores).assign(site=site),
        "people": q.people.assign(site=site),
    }


def expected_scores(rows: pd.DataFrame, instruments: list[str]) -> pd.DataFrame:
    """Scores by the published rules, computed directly from the generated answers."""
    table = pd.read_csv(Path(__file__).parents[1] / "data" / "swemwbs_metric.csv").set_index(
        "raw_score"
    )["metric_score"]
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
        if name == "mycaw":  # each item its own score; profile = mean of those answered,
            for j, score in enumerate(MYCAW_SCORES):  # with concern 1 and wellbeing required
                parts.append(_score_frame(rows, score, raw.iloc[:, j]))
            profile = raw.mean(axis=1).where(raw.iloc[:, [0, 2]].notna().all(axis=1))
            parts.append(_score_frame(rows, "mycaw", profile))
            continue
        if name in LOCAL_INSTRUMENTS:  # reversed items turned; up to max_missing prorated
            spec = LOCAL_INSTRUMENTS[name]
            low, high = spec["range"]
            for item in spec["reversed"]:
                j = spec["items"].index(item)
                raw.iloc[:, j] = low + high - raw.iloc[:, j]
            answered = raw.notna().sum(axis=1)
            total = (raw.mean(axis=1) * len(cols)).where(
                answered >= len(cols) - spec["max_missing"]
            )
            parts.append(_score_frame(rows, name, total))
            continue
        # A total only when every item is answered and in range.
        total = raw.sum(axis=1, min_count=len(cols)).where(raw.notna().all(axis=1))
        if name == "swemwbs":
            total = total.map(table)
        parts.append(_score_frame(rows, name, total))
    return pd.concat(parts, ignore_index=True)


def _score_frame(rows: pd.DataFrame, name: str, score: pd.Series) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "referral_id": rows["referral_id"].to_numpy(),
            "timepoint": rows["timepoint"].to_numpy(),
            "completed_date": pd.to_datetime(rows["completed_date"]).to_numpy(),
            "instrument": name,
            "score": score.to_numpy(),
            "scored": score.notna().to_numpy(),
        }
    )


def expected_pairs(scores: pd.DataFrame) -> pd.DataFrame:
    """Each baseline score with its follow-up: the earliest in the window, else the earliest."""
    s = scores[scores["scored"]]
    base = s[s["timepoint"] == "baseline"][["referral_id", "instrument", "score", "completed_date"]]
    follow = s[s["timepoint"] == "followup"]
    merged = base.merge(
        follow[["referral_id", "instrument", "score", "completed_date"]],
        on=["referral_id", "instrument"],
        how="left",
        suffixes=("_b", "_f"),
    )
    merged["days"] = (merged["completed_date_f"] - merged["completed_date_b"]).dt.days
    before = merged["days"] < 0  # a follow-up dated before the baseline is not used
    merged.loc[before, ["score_f", "days"]] = np.nan
    merged["in_window"] = merged["days"].between(*FOLLOWUP_WINDOW)
    keep = merged.sort_values(["in_window", "days"], ascending=[False, True]).drop_duplicates(
        ["referral_id", "instrument"]
    )
    return pd.DataFrame(
        {
            "referral_id": keep["referral_id"],
            "instrument": keep["instrument"],
            "baseline": keep["score_b"],
            "followup": keep["score_f"],
            "days_between": keep["days"],
            "in_window": keep["days"].between(*FOLLOWUP_WINDOW),
        }
    )


# --------------------------------------------------------------------------------------------
# Site G: coded events grouped into referral episodes


# Rules the cleaner applies to an event row before grouping (the rest come from grouping).
ROW_RULES = (
    "duplicate_row",
    "missing_required",
    "unparseable_date",
    "impossible_date",
    "future_date",
    "invalid_nhs_number",
    "placeholder_nhs_number",
    "unknown_code",
)


def coded_event_truth(
    style: SiteStyle, events: pd.DataFrame, path: str, ref: pd.DataFrame, unmapped_source: set[str]
) -> tuple[dict[str, pd.DataFrame], dict[str, str]]:
    """Row truth for the search export, the referrals its episodes make, and each kept
    episode's referral_id by the referral it was made from.

    Grouping, person by person in date order (referral events first on a day): a referral
    event opens an episode unless the person's episode opened the same day; other events join
    the open episode, or are rejected (no_referral) before the first. The last outcome is the
    episode's (discharge date its date, unless ongoing).
    """
    ev = events.assign(source_row=np.arange(1, len(events) + 1))
    ev["episode"], ev["rule"] = None, ev["_rule"].where(ev["_rule"].isin(ROW_RULES), None)
    ev["repeated"] = ev["superseded"] = False
    live = ev[ev["rule"].isna()].sort_values(
        ["_person", "_date", "_sub", "source_row"],
        key=lambda c: c if c.name != "_sub" else (c > 0).astype(int),
        kind="stable",
    )
    # Vectorised: a referral event on the day of the person's previous referral event repeats
    # the open episode; any other opens one; other events join the episode open before them.
    is_ref = (live["_kind"] == "referral").to_numpy()
    refs = live[is_ref]
    repeated = (refs["_date"] == refs.groupby("_person", sort=False)["_date"].shift()).to_numpy()
    opening = refs.index[~repeated]
    episode = pd.Series(None, index=live.index, dtype=object)
    episode[opening] = path + "#" + live.loc[opening, "source_row"].astype(str)
    episode = episode.groupby(live["_person"].to_numpy(), sort=False).ffill()
    ev.loc[live.index, "episode"] = episode.to_numpy()
    ev.loc[refs.index[repeated], "repeated"] = True
    ev.loc[live.index[episode.isna().to_numpy() & ~is_ref], "rule"] = "no_referral"
    openers = ev[(ev["_kind"] == "referral") & ev["rule"].isna() & ~ev["repeated"]]
    under_18 = set(openers.loc[openers["_rule"] == "under_18", "episode"])
    ev.loc[openers.index[openers["_rule"] == "under_18"], "rule"] = "under_18"
    merged = ev["episode"].isin(under_18) & ev["rule"].isna()
    ev.loc[merged, "rule"] = "referral_rejected"
    kept = openers[openers["_rule"] != "under_18"]
    outcomes = ev[(ev["_kind"] == "outcome") & ev["rule"].isna()].sort_values(
        ["_date", "source_row"], kind="stable"
    )
    ev.loc[outcomes.index[outcomes.duplicated("episode", keep="last")], "superseded"] = True
    last = outcomes.drop_duplicates("episode", keep="last").set_index("episode")
    ev.loc[ev["rule"].notna(), ["repeated", "superseded"]] = False  # rejected: not flagged
    rows = pd.DataFrame(
        {
            "site": style.code,
            "table": "coded_events",
            "source_file": path,
            "source_row": ev["source_row"],
            "referral_id": ev["episode"],
            "expected_rule": ev["rule"],
            "expected_action": np.where(ev["rule"].isna(), "kept", "rejected"),
            "flagged": (ev.index.isin(kept.index) & ev["_ref"].isin(unmapped_source)),
            "flag_repeated": ev["repeated"].to_numpy(),
            "flag_superseded": ev["superseded"],
        }
    )
    clean = ref.set_index("referral_id").loc[kept["_ref"]].reset_index()
    episode = kept["episode"].to_numpy()
    clean["referral_id"] = episode
    outcome = pd.Series(episode).map(last["_meaning"])
    clean["outcome"] = outcome.astype(object).where(outcome.notna(), np.nan).to_numpy()
    ended = pd.Series(episode).map(last["_date"]).where(outcome.to_numpy() != "ongoing")
    clean["discharge_date"] = pd.to_datetime(ended).to_numpy()
    for col in ("n_contacts", "n_attended", "n_onward_referrals", "days_to_first_contact"):
        clean[col] = pd.array([pd.NA] * len(clean), dtype="Int64")
    clean["first_contact_date"] = pd.NaT
    clean["local_id"] = None
    # The lookups: decile d <- postcode ZZ99 (d mod 10)AA, whose LSOA is rural for even d.
    decile = clean["imd_decile"].astype("Float64").to_numpy(dtype=float, na_value=np.nan)
    clean["rural_urban"] = np.where(
        np.isnan(decile), None, np.where(decile % 2 == 0, "rural", "urban")
    )
    clean["pcn_code"] = style.pcn
    clean.insert(0, "site", style.code)
    reasons = ev[
        (ev["_kind"] == "reason") & ev["rule"].isna() & ev["episode"].isin(set(kept["episode"]))
    ][["episode", "_meaning"]].drop_duplicates()
    reasons = pd.DataFrame(
        {
            "referral_id": reasons["episode"].to_numpy(),
            "reason": reasons["_meaning"].to_numpy(),
            "site": style.code,
        }
    )
    return (
        {
            "coded_event_rows": rows,
            "referrals": clean.drop(columns=["person"]),
            "referral_reasons": reasons,
        },
        dict(zip(kept["_ref"], kept["episode"], strict=True)),
    )
