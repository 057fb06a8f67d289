"""One site's raw exports: its clean data written in its shape, with defects, and the truth kept.

Every random choice comes from the site's own stream, in a fixed order, so a seed always gives
the same files; reordering the steps below changes the study.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from linkeval.synthetic import defects
from linkeval.synthetic.defects import DEFECT_RATES, unmapped_labels
from linkeval.synthetic.styles import PRACTICE_SOURCES, QUESTIONNAIRE_STYLES, SiteStyle
from linkeval.synthetic.truth import (
    coded_event_truth,
    event_truth,
    kept_referral_ids,
    questionnaire_truth,
    referral_truth,
)
from linkeval.synthetic.wellbeing import Questionnaires, simulate_questionnaires
from linkeval.synthetic.writers import (
    Formatter,
    coded_event_rows,
    nhs_text,
    questionnaire_table,
    site_folder,
    write_coded_events,
    write_questionnaires,
    write_site,
)

# Free text in the fictional exports, which the cleaner must drop.
NOTES = np.array(
    ["Lives alone; daughter visits weekly", "Keen on gardening", "Prefers phone calls", ""],
    dtype=object,
)


def render_site(
    rng: np.random.Generator,
    style: SiteStyle,
    core: dict[str, pd.DataFrame],
    raw_dir: Path,
    large: bool,
    site_index: int = 0,
) -> tuple[dict[str, Any], dict[str, pd.DataFrame]]:
    """Write one site's exports; its config entry and its ground truth.

    ``core`` is the site's clean data (population.simulate_site); ``large`` means too many
    rows for an Excel workbook; ``site_index`` is the site's position in the study.
    """
    fmt = Formatter(rng, style)
    referrals = _Referrals(rng, fmt, style, core)
    events: dict[str, tuple[pd.DataFrame, pd.DataFrame]] = {}  # table -> (raw rows, clean rows)
    if style.contacts:
        events["contacts"] = _events(rng, fmt, style, core["contacts"], referrals, "contacts")
    if style.onward:
        events["onward_referrals"] = _events(
            rng, fmt, style, core["onward"], referrals, "onward_referrals"
        )
    referrals.add_counts(fmt, style)
    raw = defects.duplicate_referrals(rng, referrals.for_export())
    episode_of = None  # site G: referral -> the episode (referral_id) its coded events make
    if style.coded_events:
        site_cfg, truth, episode_of = _coded_events(rng, style, raw, referrals, raw_dir)
    else:
        raw_events = {table: rows for table, (rows, _) in events.items()}
        site_cfg, files = write_site(
            style,
            raw,
            raw_events.get("contacts"),
            raw_events.get("onward_referrals"),
            raw_dir,
            large,
        )
        truth = referral_truth(
            style,
            raw,
            referrals.ref,
            referrals.reasons,
            files,
            referrals.unmapped_source,
            referrals.unmapped_reason,
        )
    kept_ids = kept_referral_ids(raw)
    for table, (events_raw, events_clean) in events.items():
        truth.update(event_truth(style.code, table, events_raw, events_clean, files, kept_ids))
    q = simulate_questionnaires(rng, style, referrals.ref, core["reasons"], kept_ids)
    q_source, q_truth = _questionnaires(
        rng, style, q, referrals.ref, site_folder(raw_dir, style.code), large, site_index
    )
    site_cfg["sources"].append(q_source)
    if episode_of is not None:  # forms link by NHS number to the one episode of the person
        for name in ("scores", "pairs", "people"):
            q_truth[name]["referral_id"] = q_truth[name]["referral_id"].map(episode_of)
    truth.update(q_truth)
    return site_cfg, truth


def _coded_events(
    rng: np.random.Generator,
    style: SiteStyle,
    raw: pd.DataFrame,
    referrals: _Referrals,
    raw_dir: Path,
) -> tuple[dict[str, Any], dict[str, pd.DataFrame], dict[str, str]]:
    """Site G: the referrals written as a search's coded events; config, truth, episodes."""
    events = coded_event_rows(rng, style, raw, referrals.ref, referrals.reasons)
    site_cfg, path = write_coded_events(style, events, raw_dir)
    truth, episode_of = coded_event_truth(
        style, events, path, referrals.ref, referrals.unmapped_source
    )
    return site_cfg, truth, episode_of


class _Referrals:
    """A site's referrals as raw rows (text as exported) and as the clean values to expect."""

    def __init__(
        self,
        rng: np.random.Generator,
        fmt: Formatter,
        style: SiteStyle,
        core: dict[str, pd.DataFrame],
    ) -> None:
        # The canonical referrals, changed where a defect changes the clean value too (an
        # under-18's age, an unmapped source read as `other`).
        self.style = style
        self.ref = core["referrals"].copy()
        self.chosen = defects.choose_referral_defects(rng, style, len(self.ref))
        defects.make_under_18(rng, self.ref, self.chosen.rows["under_18"])
        self.raw = self._rows(rng, fmt, style)
        # Reason labels (one row per reason, with unmapped extras) and the referrals given an
        # unmapped source or reason, which the cleaner should flag.
        self.reasons, self.unmapped_reason = self._reasons(rng, fmt, core["reasons"])
        self.unmapped_source = set(
            self.ref["referral_id"].to_numpy()[self.chosen.rows["unmapped_source"]]
        )
        self._identifiers_to_drop(rng)

    def _rows(self, rng: np.random.Generator, fmt: Formatter, style: SiteStyle) -> pd.DataFrame:
        """The raw referral columns, with the date, NHS-number and unmapped-source defects."""
        ref, rows = self.ref, self.chosen.rows
        raw = pd.DataFrame({"referral_id": ref["referral_id"]})
        raw["referral_date"] = defects.spoil_referral_dates(
            fmt.date(ref["referral_date"]), ref["referral_date"], rows, style.date_format
        )
        if style.identity == "nhs":
            numbers = defects.spoil_nhs_numbers(rng, ref["nhs_number"].to_numpy(dtype=object), rows)
            raw["nhs_number"] = nhs_text(numbers, style.nhs_format)
        else:
            raw["local_id"] = ref["local_id"].to_numpy()
        if style.dob:
            raw["date_of_birth"] = fmt.date(ref["date_of_birth"])
        else:
            raw["age"] = ref["age_at_referral"].astype(str).to_numpy()
        if style.coded_events:  # a GP search knows who recorded it, not who referred
            ref["referral_source"] = ref["referral_source"].where(
                ref["referral_source"].isin(PRACTICE_SOURCES), "unknown"
            )
        raw["sex"] = fmt.label("sex", ref["sex"])
        raw["ethnicity"] = fmt.label("ethnicity", ref["ethnicity"])
        source = fmt.label("referral_source", ref["referral_source"])
        unmapped = rows["unmapped_source"]
        source[unmapped] = unmapped_labels(rng, "referral_source", len(unmapped))
        ref.loc[ref.index[unmapped], "referral_source"] = "other"
        raw["referral_source"] = source
        raw["imd_decile"] = ref["imd_decile"].astype(str).replace("<NA>", "").to_numpy()
        raw["outcome"] = fmt.label("outcome", ref["outcome"])
        raw["discharge_date"] = fmt.date(ref["discharge_date"])
        return raw

    def _reasons(
        self, rng: np.random.Generator, fmt: Formatter, reasons: pd.DataFrame
    ) -> tuple[pd.DataFrame, set[str]]:
        """Reasons with the site's labels, plus an unmapped extra reason on some referrals."""
        reasons = reasons.copy()
        reasons["label"] = fmt.label("reason", reasons["reason"])
        rows = self.chosen.rows["unmapped_reason"]
        extra = pd.DataFrame(
            {
                "referral_id": self.ref["referral_id"].to_numpy()[rows],
                "reason": "other",
                "label": unmapped_labels(rng, "reason", len(rows)),
            }
        )
        return pd.concat([reasons, extra], ignore_index=True), set(extra["referral_id"])

    def _identifiers_to_drop(self, rng: np.random.Generator) -> None:
        """Fictional names and postcodes, and free text, that the cleaner must drop."""
        n = len(self.raw)
        self.raw["patient_name"] = "TEST PATIENT " + pd.Series(np.arange(1, n + 1)).astype(str)
        self.raw["postcode"] = "ZZ99 " + pd.Series(rng.integers(1, 10, n)).astype(str) + "AA"
        self.raw["notes"] = NOTES[rng.integers(0, 4, n)]
        if self.style.coded_events:  # postcodes and practices in the demo lookups
            decile = self.ref["imd_decile"].astype("Float64")
            self.raw["postcode"] = (
                ("ZZ99 " + (decile % 10).astype("Int64").astype(str) + "AA")
                .where(decile.notna(), "")
                .to_numpy(dtype=object)
            )
            practices = self.style.practices
            practice = np.array(practices, dtype=object)[
                rng.integers(0, len(practices), self.ref["person"].max() + 1)
            ]
            self.raw["practice_code"] = practice[self.ref["person"].to_numpy()]

    def add_counts(self, fmt: Formatter, style: SiteStyle) -> None:
        """Counts (and first-contact date) as columns, for each table the site does not export."""
        if not style.contacts and not style.coded_events:
            self.raw["n_contacts"] = self.ref["n_contacts"].astype(str).to_numpy()
            self.raw["n_attended"] = self.ref["n_attended"].astype(str).to_numpy()
            self.raw["first_contact_date"] = fmt.date(self.ref["first_contact_date"])
        if not style.onward and not style.coded_events:
            self.raw["n_onward_referrals"] = self.ref["n_onward_referrals"].astype(str).to_numpy()

    def for_export(self) -> pd.DataFrame:
        """The raw rows plus export order (_pos), expected rule (_rule) and labels (_reasons)."""
        raw = self.raw
        raw["_pos"] = np.arange(len(raw), dtype=float)
        raw["_rule"] = self.chosen.rule
        raw["_reasons"] = raw["referral_id"].map(
            self.reasons.groupby("referral_id")["label"].agg(list)
        )
        return raw


def _events(
    rng: np.random.Generator,
    fmt: Formatter,
    style: SiteStyle,
    events: pd.DataFrame,
    referrals: _Referrals,
    table: str,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Contacts or onward referrals as raw rows with defects, and as the clean rows to expect."""
    date_col = "contact_date" if table == "contacts" else "onward_date"
    ev = events.copy().reset_index(drop=True)
    ref, ref_rule = referrals.ref, referrals.chosen.rule
    raw = pd.DataFrame({"referral_id": ev["referral_id"], date_col: fmt.date(ev[date_col])})
    # Rows of a rejected referral are rejected with it.
    rule_of_ref = pd.Series(ref_rule, index=ref["referral_id"])
    raw["_rule"] = (
        ev["referral_id"].map(rule_of_ref).notna().map({True: "referral_rejected", False: None})
    )
    rates = DEFECT_RATES[table]
    if table == "contacts":
        raw["mode"] = fmt.label("mode", ev["mode"])
        raw["duration_min"] = ev["duration_min"].map("{:g}".format)
        raw["attended"] = fmt.label("attended", ev["attended"].map({True: "true", False: "false"}))
        defects.unmapped_events(rng, raw, ev, "mode", rates["unmapped_mode"])
    else:
        raw["asset_type"] = fmt.label("asset_type", ev["asset_type"])
        defects.unmapped_events(rng, raw, ev, "asset_type", rates["unmapped_asset"])
    raw["_pos"] = np.arange(len(ev), dtype=float)
    clean_refs = ref[pd.isna(ref_rule)]
    raw = defects.inject_event_rows(rng, raw, clean_refs, table, date_col, style)
    return raw, _chance_copies(raw, ev, ref, table)


# Counts on a referral that its contacts or onward referrals make: (column, only if attended).
_COUNTS = {
    "contacts": [("n_contacts", False), ("n_attended", True)],
    "onward_referrals": [("n_onward_referrals", False)],
}


def _chance_copies(
    raw: pd.DataFrame, events: pd.DataFrame, ref: pd.DataFrame, table: str
) -> pd.DataFrame:
    """Rows that happen to repeat an earlier row exactly (two onward referrals of one person
    to the same kind of asset on the same day) are what the cleaner rejects as duplicate_row:
    marked so in ``raw``, and left out of the clean rows (returned) and the referrals' counts
    (``ref``, in place)."""
    exported = [c for c in raw.columns if not c.startswith("_")]
    copies = raw.duplicated(exported).to_numpy() & (raw["_rule"].to_numpy() != "duplicate_row")
    if not copies.any():
        return events
    own = copies & raw["_rule"].isna().to_numpy()  # events of kept referrals (_pos: their row)
    raw.loc[copies, ["_rule", "_flag"]] = ["duplicate_row", False]
    dropped = events.loc[raw.loc[own, "_pos"].astype(int).to_numpy()]
    for column, attended_only in _COUNTS[table]:
        rows = dropped[dropped["attended"]] if attended_only else dropped
        fewer = ref["referral_id"].map(rows.groupby("referral_id").size()).fillna(0)
        ref[column] = (ref[column] - fewer.astype("Int64")).astype("Int64")
    return events.drop(index=dropped.index)


def _questionnaires(
    rng: np.random.Generator,
    style: SiteStyle,
    q: Questionnaires,
    ref: pd.DataFrame,
    folder: Path,
    large: bool,
    site_index: int,
) -> tuple[dict[str, Any], dict[str, pd.DataFrame]]:
    """Write the site's questionnaire file; its config ``sources`` entry and its truth."""
    q_style = QUESTIONNAIRE_STYLES[style.export]
    rows = q.rows.sort_values("completed_date", kind="stable").reset_index(drop=True)
    rows = defects.spoil_answers(rng, rows, has_timepoint=q_style.timepoint_header is not None)
    out, items_cfg = questionnaire_table(rows, q.instruments, q_style, ref)
    out = defects.inject_questionnaire_rows(rng, out, q_style, style, site_index)
    source = write_questionnaires(out, q_style, items_cfg, folder, large)
    return source, questionnaire_truth(style.code, out, source["path"], rows, q)
