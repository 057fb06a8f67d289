"""Values written as each site's system writes them, and each site's export files.

The raw tables handed to the writers use canonical field names and hold text (labels, formatted
dates) plus bookkeeping columns starting with ``_``, which are never written. Each site-shape
writer returns the ``sources`` entries of the study config that read its files back, and which
raw rows went into which file (for the row-by-row ground truth).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from linkeval.synthetic.styles import (
    ANSWER_TEXT,
    LABELS,
    SITE_VALUES,
    QuestionnaireStyle,
    SiteStyle,
)

XLSX_MAX_ROWS = 50_000  # above this the workbook site writes CSV instead

# table -> [(file path relative to the raw folder, positions of the raw rows in that file)]
FileRows = dict[str, list[tuple[str, np.ndarray]]]


# --------------------------------------------------------------------------------------------
# Values


def date_text(values: pd.Series | np.ndarray, fmt: str) -> np.ndarray:
    """Dates as text in ``fmt``; missing dates as empty cells."""
    text = pd.Series(pd.to_datetime(values)).dt.strftime(fmt)
    return text.fillna("").to_numpy(dtype=object)


class Formatter:
    """Canonical values written as one site writes them (its labels and date format)."""

    def __init__(self, rng: np.random.Generator, style: SiteStyle) -> None:
        self.rng = rng  # picks among a site's synonyms for a code, row by row
        self.date_format = style.date_format
        self.labels = LABELS[style.code]

    def label(self, field: str, codes: pd.Series) -> np.ndarray:
        """Each code written as one of the site's labels for it (chosen at random per row)."""
        out = np.empty(len(codes), dtype=object)
        values = codes.to_numpy()
        for code, options in self.labels[field].items():
            hit = values == code
            if hit.any():
                pick = self.rng.integers(0, len(options), hit.sum())
                out[hit] = np.array(options, dtype=object)[pick]
        return out

    def date(self, values: pd.Series) -> np.ndarray:
        return date_text(values, self.date_format)


def nhs_text(numbers: np.ndarray, layout: str) -> np.ndarray:
    """Ten-digit NHS numbers as the site writes them: plain, '943 476 5919' or '943-476-5919'."""
    if layout == "spaces":
        return np.array([f"{s[:3]} {s[3:6]} {s[6:]}" for s in numbers], dtype=object)
    if layout == "dashes":
        return np.array([f"{s[:3]}-{s[3:6]}-{s[6:]}" for s in numbers], dtype=object)
    return numbers


def excel_dates(text: pd.Series, fmt: str) -> pd.Series:
    """Dates as real Excel date cells where they parse; anything odd stays as typed text."""
    parsed = pd.to_datetime(text, format=fmt, errors="coerce")
    return parsed.astype(object).where(parsed.notna(), text)


def write_csv(frame: pd.DataFrame, path: Path, encoding: str = "utf-8",
              preamble: list[str] | None = None) -> None:
    """CSV with Windows line endings, as the exporting systems write it."""
    with path.open("w", encoding=encoding, newline="") as fh:
        for line in preamble or []:
            fh.write(line + "\r\n")
        frame.to_csv(fh, index=False, lineterminator="\r\n")


def site_folder(raw_dir: Path, code: str) -> Path:
    return raw_dir / f"site_{code.lower()}"


def rel(folder: Path, name: str) -> str:
    """A file's path as the config gives it: relative to the raw folder."""
    return f"{folder.name}/{name}"


# --------------------------------------------------------------------------------------------
# Referrals, contacts and onward referrals, in each site's shape


@dataclass
class _SiteTables:
    """What a site-shape writer needs: the site, its raw tables and the folder they go in."""

    style: SiteStyle
    referrals: pd.DataFrame
    contacts: pd.DataFrame | None  # None at sites that export no such table
    onward: pd.DataFrame | None
    folder: Path
    large: bool  # too many rows for a workbook

    def rel(self, name: str) -> str:
        return rel(self.folder, name)

    def whole(self, table: str, name: str, frame: pd.DataFrame) -> FileRows:
        """Every row of ``frame`` in the one file ``name``."""
        return {table: [(self.rel(name), np.arange(len(frame)))]}


def write_site(style: SiteStyle, referrals: pd.DataFrame, contacts: pd.DataFrame | None,
               onward: pd.DataFrame | None, raw_dir: Path, large: bool
               ) -> tuple[dict[str, Any], FileRows]:
    """Write one site's referral, contact and onward files; its config entry and file rows."""
    folder = site_folder(raw_dir, style.code)
    folder.mkdir(parents=True, exist_ok=True)
    tables = _SiteTables(style, referrals, contacts, onward, folder, large)
    sources, files = _SHAPES[style.code](tables)
    # Labels the built-in synonyms do not know are declared in the site's config.
    values = SITE_VALUES.get(style.code, {})
    for source in sources:
        if source["table"] == "referrals":
            for fld in ("referral_source", "sex", "outcome"):
                if values.get(fld):
                    source.setdefault("values", {})[fld] = dict(values[fld])
    context = {"host": style.host, "rural": style.rural}
    return {"name": style.name, "context": context, "sources": sources}, files


def _export(frame: pd.DataFrame, headers: dict[str, str]) -> pd.DataFrame:
    """The columns a file holds, in order, under the site's headers."""
    return frame[list(headers)].rename(columns=headers)


def _mapping(headers: dict[str, str], drop=("patient_name", "postcode", "notes")) -> dict[str, str]:
    """The config's column mapping: the exported columns the cleaner reads (not free text)."""
    return {k: v for k, v in headers.items() if k not in drop}


def _reasons_text(ref: pd.DataFrame, sep: str) -> pd.Series:
    """All of a referral's reason labels in one cell."""
    return ref["_reasons"].map(lambda labels: sep.join(labels) if isinstance(labels, list) else "")


def _reason_columns(ref: pd.DataFrame, k: int) -> pd.DataFrame:
    """A referral's reason labels in ``k`` columns reason_1..reason_k, blank when fewer."""
    lists = ref["_reasons"].map(lambda labels: labels if isinstance(labels, list) else [])
    return pd.DataFrame({f"reason_{i + 1}": lists.map(lambda labels, i=i: labels[i] if len(labels) > i else "")
                         for i in range(k)})


A_REF = {"referral_id": "Ref No", "nhs_number": "NHS Number", "patient_name": "Patient Name",
         "date_of_birth": "DOB", "postcode": "Postcode", "sex": "Gender",
         "ethnicity": "Ethnic Group", "referral_source": "Referred By",
         "reasons": "Reason(s) for referral", "referral_date": "Date Referred",
         "imd_decile": "IMD Decile", "outcome": "Outcome", "discharge_date": "Discharge Date",
         "notes": "Notes"}


def _site_a(t: _SiteTables) -> tuple[list[dict[str, Any]], FileRows]:
    """cp1252 clinical-system search export: three preamble lines above the header."""
    pre = ["Search: Social prescribing referrals (link worker caseload)",
           "Run by: Riverside PCN data team – report v2", ""]
    frame = t.referrals.assign(reasons=_reasons_text(t.referrals, "; "))
    write_csv(_export(frame, A_REF), t.folder / "referrals.csv", "cp1252", pre)
    c_head = {"referral_id": "Ref No", "contact_date": "Contact Date", "mode": "Contact Type",
              "duration_min": "Duration (mins)", "attended": "Attendance"}
    write_csv(_export(t.contacts, c_head), t.folder / "contacts.csv", "cp1252", pre)
    o = t.onward.assign(organisation="Café Connect")
    o_head = {"referral_id": "Ref No", "onward_date": "Date Referred On",
              "asset_type": "Service Type", "organisation": "Organisation"}
    write_csv(_export(o, o_head), t.folder / "onward.csv", "cp1252", pre)
    common = {"encoding": "cp1252", "skip_rows": 3}
    sources = [
        {"table": "referrals", "path": t.rel("referrals.csv"), **common,
         "multi_value_separator": ";", "columns": _mapping(A_REF)},
        {"table": "contacts", "path": t.rel("contacts.csv"), **common, "columns": c_head},
        {"table": "onward_referrals", "path": t.rel("onward.csv"), **common,
         "columns": {k: v for k, v in o_head.items() if k != "organisation"}},
    ]
    return sources, {**t.whole("referrals", "referrals.csv", t.referrals),
                     **t.whole("contacts", "contacts.csv", t.contacts),
                     **t.whole("onward_referrals", "onward.csv", t.onward)}


def _site_b(t: _SiteTables) -> tuple[list[dict[str, Any]], FileRows]:
    """UTF-8 with BOM, ISO dates, snake_case headers, reasons in up to four columns."""
    heads = {"referral_id": "referral_ref", "nhs_number": "nhs_no", "date_of_birth": "dob",
             "postcode": "postcode", "sex": "sex", "ethnicity": "ethnic_category",
             "referral_source": "source", "referral_date": "referral_date",
             "imd_decile": "imd_decile", "outcome": "status", "discharge_date": "closed_date"}
    ref = t.referrals.reset_index(drop=True)
    frame = pd.concat([ref, _reason_columns(ref, 4)], axis=1)
    out = _export(frame, {**heads, **{f"reason_{i}": f"reason_{i}" for i in range(1, 5)}})
    write_csv(out, t.folder / "referrals.csv", "utf-8-sig")
    c_head = {"referral_id": "referral_ref", "contact_date": "appt_date", "mode": "appt_type",
              "duration_min": "mins", "attended": "appt_status"}
    write_csv(_export(t.contacts, c_head), t.folder / "contacts.csv", "utf-8-sig")
    o_head = {"referral_id": "referral_ref", "onward_date": "onward_referral_date",
              "asset_type": "service_category"}
    write_csv(_export(t.onward, o_head), t.folder / "onward_referrals.csv", "utf-8-sig")
    common = {"encoding": "auto", "date_format": "%Y-%m-%d"}
    columns = _mapping(heads)
    columns["reasons"] = [f"reason_{i}" for i in range(1, 5)]
    sources = [
        {"table": "referrals", "path": t.rel("referrals.csv"), **common, "columns": columns},
        {"table": "contacts", "path": t.rel("contacts.csv"), **common,
         "columns": c_head, "values": {"attended": {"Cancelled": "false"}}},
        {"table": "onward_referrals", "path": t.rel("onward_referrals.csv"), **common,
         "columns": o_head},
    ]
    return sources, {**t.whole("referrals", "referrals.csv", t.referrals),
                     **t.whole("contacts", "contacts.csv", t.contacts),
                     **t.whole("onward_referrals", "onward_referrals.csv", t.onward)}


C_REF = {"referral_id": "Referral ID", "nhs_number": "NHS No.", "date_of_birth": "Date of Birth",
         "sex": "Sex", "ethnicity": "Ethnicity", "referral_source": "Referral Source",
         "reasons": "Reasons", "referral_date": "Referral Date", "imd_decile": "IMD",
         "outcome": "Status", "discharge_date": "Discharged"}


def _site_c(t: _SiteTables) -> tuple[list[dict[str, Any]], FileRows]:
    """One Excel workbook, a sheet per table, dates as Excel dates (CSV files at scale)."""
    frame = t.referrals.assign(reasons=_reasons_text(t.referrals, ", "))
    r_out = _export(frame, C_REF)
    c_head = {"referral_id": "Referral ID", "contact_date": "Date", "mode": "Type",
              "duration_min": "Minutes", "attended": "Attended"}
    o_head = {"referral_id": "Referral ID", "onward_date": "Date", "asset_type": "Asset"}
    c_out, o_out = _export(t.contacts, c_head), _export(t.onward, o_head)
    if t.large:
        write_csv(r_out, t.folder / "referrals.csv")
        write_csv(c_out, t.folder / "contacts.csv")
        write_csv(o_out, t.folder / "onward.csv")
        paths = {"referrals": ("referrals.csv", None), "contacts": ("contacts.csv", None),
                 "onward_referrals": ("onward.csv", None)}
    else:
        fmt = t.style.date_format
        for col in ("Date of Birth", "Referral Date", "Discharged"):
            r_out[col] = excel_dates(r_out[col], fmt)
        c_out["Date"] = excel_dates(c_out["Date"], fmt)
        o_out["Date"] = excel_dates(o_out["Date"], fmt)
        with pd.ExcelWriter(t.folder / "northgate_export.xlsx", engine="openpyxl") as xl:
            r_out.to_excel(xl, sheet_name="Referrals", index=False)
            c_out.to_excel(xl, sheet_name="Contacts", index=False)
            o_out.to_excel(xl, sheet_name="Onward", index=False)
        paths = {"referrals": ("northgate_export.xlsx", "Referrals"),
                 "contacts": ("northgate_export.xlsx", "Contacts"),
                 "onward_referrals": ("northgate_export.xlsx", "Onward")}
    heads = {"referrals": C_REF, "contacts": c_head, "onward_referrals": o_head}
    sources = []
    for table, (name, sheet) in paths.items():
        s = {"table": table, "path": t.rel(name)}
        if sheet:
            s["sheet"] = sheet
        if table == "referrals":
            s["multi_value_separator"] = ","
        s["columns"] = heads[table]
        sources.append(s)
    frames = {"referrals": t.referrals, "contacts": t.contacts, "onward_referrals": t.onward}
    files: FileRows = {}
    for table, (name, _) in paths.items():
        files.update(t.whole(table, name, frames[table]))
    return sources, files


def _site_d(t: _SiteTables) -> tuple[list[dict[str, Any]], FileRows]:
    """Own client IDs and ages (no NHS numbers or dates of birth); reasons in one cell."""
    heads = {"referral_id": "Referral No", "local_id": "Client ID", "age": "Age",
             "sex": "Sex", "ethnicity": "Ethnicity", "referral_source": "Referrer",
             "reasons": "Reasons", "referral_date": "Referral Date", "imd_decile": "IMD decile",
             "outcome": "Outcome", "discharge_date": "End Date", "notes": "Notes"}
    frame = t.referrals.assign(reasons=_reasons_text(t.referrals, " / "))
    write_csv(_export(frame, heads), t.folder / "referrals.csv")
    c_head = {"referral_id": "Referral No", "contact_date": "Appointment Date",
              "mode": "Method", "duration_min": "Length", "attended": "Attended?"}
    write_csv(_export(t.contacts, c_head), t.folder / "appointments.csv")
    o_head = {"referral_id": "Referral No", "onward_date": "Signposted On",
              "asset_type": "Signposted To"}
    write_csv(_export(t.onward, o_head), t.folder / "signposting.csv")
    sources = [
        {"table": "referrals", "path": t.rel("referrals.csv"),
         "multi_value_separator": "/", "columns": _mapping(heads)},
        {"table": "contacts", "path": t.rel("appointments.csv"), "columns": c_head},
        {"table": "onward_referrals", "path": t.rel("signposting.csv"), "columns": o_head},
    ]
    return sources, {**t.whole("referrals", "referrals.csv", t.referrals),
                     **t.whole("contacts", "appointments.csv", t.contacts),
                     **t.whole("onward_referrals", "signposting.csv", t.onward)}


def _site_e(t: _SiteTables) -> tuple[list[dict[str, Any]], FileRows]:
    """No contacts table: counts and first-contact date as columns; '05-Mar-2024' dates."""
    heads = {"referral_id": "Case ID", "nhs_number": "NHS", "date_of_birth": "Birth Date",
             "sex": "Gender", "ethnicity": "Ethnicity", "referral_source": "Referred From",
             "reasons": "Needs", "referral_date": "Received", "imd_decile": "IMD Decile",
             "outcome": "Case Outcome", "discharge_date": "Closed", "n_contacts":
             "No. of contacts", "n_attended": "No. attended", "first_contact_date":
             "First contact", "n_onward_referrals": "No. onward referrals"}
    frame = t.referrals.assign(reasons=_reasons_text(t.referrals, " | "))
    write_csv(_export(frame, heads), t.folder / "valley_caseload.csv")
    sources = [{"table": "referrals", "path": t.rel("valley_caseload.csv"),
                "date_format": t.style.date_format, "multi_value_separator": "|",
                "columns": heads}]
    return sources, t.whole("referrals", "valley_caseload.csv", t.referrals)


def _site_f(t: _SiteTables) -> tuple[list[dict[str, Any]], FileRows]:
    """Exports split into one file per year (a glob path reads them all)."""
    heads = {"referral_id": "ReferralID", "nhs_number": "NHSNumber", "date_of_birth": "DateOfBirth",
             "postcode": "PostCode", "sex": "Gender", "ethnicity": "Ethnicity",
             "referral_source": "ReferralSource", "reasons": "ReferralReasons",
             "referral_date": "ReferralDate", "imd_decile": "IMDDecile", "outcome": "Outcome",
             "discharge_date": "DischargeDate"}
    frame = t.referrals.assign(reasons=_reasons_text(t.referrals, ";"))
    year = pd.to_datetime(t.referrals["referral_date"], format="%d/%m/%Y", errors="coerce").dt.year
    # Rows with unreadable dates go with the row before them (the export is date-ordered).
    year = year.where(year.isin([2023, 2024])).ffill().fillna(2023).astype(int).to_numpy()
    files_ref = _yearly(_export(frame, heads), year, [2023, 2024], t.folder, "referrals")
    c_head = {"referral_id": "ReferralID", "contact_date": "ContactDate", "mode": "ContactMode",
              "duration_min": "DurationMinutes", "attended": "Outcome"}
    c_year = pd.to_datetime(t.contacts["contact_date"], format="%d/%m/%Y", errors="coerce").dt.year
    c_year = c_year.where(c_year.notna()).ffill().fillna(2023).astype(int).clip(2023, 2025)
    files_c = _yearly(_export(t.contacts, c_head), c_year.to_numpy(), sorted(c_year.unique()),
                      t.folder, "contacts")
    o_head = {"referral_id": "ReferralID", "onward_date": "OnwardDate", "asset_type": "AssetType"}
    write_csv(_export(t.onward, o_head), t.folder / "onward_referrals.csv")
    sources = [
        {"table": "referrals", "path": t.rel("referrals_*.csv"),
         "multi_value_separator": ";", "columns": _mapping(heads)},
        {"table": "contacts", "path": t.rel("contacts_*.csv"), "columns": c_head},
        {"table": "onward_referrals", "path": t.rel("onward_referrals.csv"),
         "columns": o_head},
    ]
    return sources, {"referrals": files_ref, "contacts": files_c,
                     **t.whole("onward_referrals", "onward_referrals.csv", t.onward)}


def _yearly(out: pd.DataFrame, year: np.ndarray, years: list[int], folder: Path,
            stem: str) -> list[tuple[str, np.ndarray]]:
    """Write ``<stem>_<year>.csv`` for each year; which rows went into which file."""
    files = []
    for y in years:
        rows = np.flatnonzero(year == y)
        write_csv(out.iloc[rows], folder / f"{stem}_{y}.csv")
        files.append((rel(folder, f"{stem}_{y}.csv"), rows))
    return files


_SHAPES = {"A": _site_a, "B": _site_b, "C": _site_c, "D": _site_d, "E": _site_e, "F": _site_f}


# --------------------------------------------------------------------------------------------
# Questionnaires


def questionnaire_table(rows: pd.DataFrame, instruments: list[str], style: QuestionnaireStyle,
                        ref: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """Questionnaire rows as the site exports them, and each instrument's item headers.

    ``rows`` are canonical (referral_id, timepoint, completed_date, "<instrument>:<item>"
    answers, with _rule and _flag); the result keeps _rule and _flag and adds _key, the row's
    place in the export.
    """
    item_cols = [c for c in rows.columns if ":" in c]
    out = pd.DataFrame()
    ident = rows["referral_id"] if style.link == "referral_id" else rows["referral_id"].map(
        ref.set_index("referral_id")[style.link])
    out[style.id_header] = ident.to_numpy(dtype=object)
    if style.timepoint_header:
        out[style.timepoint_header] = rows["timepoint"].map(style.timepoint_labels) \
            .to_numpy(dtype=object)
    out[style.date_header] = date_text(rows["completed_date"], style.date_format)
    items_cfg: dict[str, list[str]] = {}
    for name in instruments:
        cols = [c for c in item_cols if c.split(":")[0] == name]
        headers = style.headers(name, len(cols))
        items_cfg[name] = headers
        for col, header in zip(cols, headers, strict=True):
            cell = rows[col]
            if style.answer_text and name in ANSWER_TEXT:
                cell = cell.map(lambda v, m=ANSWER_TEXT[name]: m.get(v, v) if v != "" else "")
            out[header] = cell.astype(str).to_numpy(dtype=object)
    out["_rule"] = rows["_rule"].to_numpy(dtype=object)
    out["_flag"] = rows["_flag"].to_numpy()
    out["_key"] = np.arange(len(out))
    return out, items_cfg


def write_questionnaires(out: pd.DataFrame, style: QuestionnaireStyle,
                         items_cfg: dict[str, list[str]], folder: Path, large: bool
                         ) -> dict[str, Any]:
    """Write the questionnaire file; the config ``sources`` entry that reads it."""
    name = style.file
    if name.endswith(".xlsx") and large:
        name = name.replace(".xlsx", ".csv")
    data = out.drop(columns=["_rule", "_flag", "_key"])
    fmt = style.date_format
    if name.endswith(".xlsx"):
        data[style.date_header] = excel_dates(data[style.date_header], fmt)
        with pd.ExcelWriter(folder / name, engine="openpyxl") as xl:
            data.to_excel(xl, sheet_name="Questionnaires", index=False)
    else:
        write_csv(data, folder / name)
    source: dict[str, Any] = {"table": "questionnaires", "path": rel(folder, name)}
    if name.endswith(".xlsx"):
        source["sheet"] = "Questionnaires"
    if fmt != "%d/%m/%Y":
        source["date_format"] = fmt
    if style.timepoint_header is None:
        source["timepoint"] = "by_date"
    columns = {style.link: style.id_header, "completed_date": style.date_header}
    if style.timepoint_header:
        columns["timepoint"] = style.timepoint_header
    source["columns"] = columns
    source["items"] = items_cfg
    return source
