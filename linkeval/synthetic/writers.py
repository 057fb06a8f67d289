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
        self.labels = LABELS[style.export]

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


def write_csv(
    frame: pd.DataFrame, path: Path, encoding: str = "utf-8", preamble: list[str] | None = None
) -> None:
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


def write_site(
    style: SiteStyle,
    referrals: pd.DataFrame,
    contacts: pd.DataFrame | None,
    onward: pd.DataFrame | None,
    raw_dir: Path,
    large: bool,
) -> tuple[dict[str, Any], FileRows]:
    """Write one site's referral, contact and onward files; its config entry and file rows."""
    folder = site_folder(raw_dir, style.code)
    folder.mkdir(parents=True, exist_ok=True)
    tables = _SiteTables(style, referrals, contacts, onward, folder, large)
    sources, files = _SHAPES[style.export](tables)
    # Labels the built-in synonyms do not know are declared in the site's config.
    values = SITE_VALUES.get(style.export, {})
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
    return pd.DataFrame(
        {
            f"reason_{i + 1}": lists.map(lambda labels, i=i: labels[i] if len(labels) > i else "")
            for i in range(k)
        }
    )


A_REF = {
    "referral_id": "Ref No",
    "nhs_number": "NHS Number",
    "patient_name": "Patient Name",
    "date_of_birth": "DOB",
    "postcode": "Postcode",
    "sex": "Gender",
    "ethnicity": "Ethnic Group",
    "referral_source": "Referred By",
    "reasons": "Reason(s) for referral",
    "referral_date": "Date Referred",
    "imd_decile": "IMD Decile",
    "outcome": "Outcome",
    "discharge_date": "Discharge Date",
    "notes": "Notes",
}


def _site_a(t: _SiteTables) -> tuple[list[dict[str, Any]], FileRows]:
    """cp1252 clinical-system search export: three preamble lines above the header."""
    pre = [
        "Search: Social prescribing referrals (link worker caseload)",
        f"Run by: {t.style.name} data team – report v2",
        "",
    ]
    frame = t.referrals.assign(reasons=_reasons_text(t.referrals, "; "))
    write_csv(_export(frame, A_REF), t.folder / "referrals.csv", "cp1252", pre)
    c_head = {
        "referral_id": "Ref No",
        "contact_date": "Contact Date",
        "mode": "Contact Type",
        "duration_min": "Duration (mins)",
        "attended": "Attendance",
    }
    write_csv(_export(t.contacts, c_head), t.folder / "contacts.csv", "cp1252", pre)
    o = t.onward.assign(organisation="Café Connect")
    o_head = {
        "referral_id": "Ref No",
        "onward_date": "Date Referred On",
        "asset_type": "Service Type",
        "organisation": "Organisation",
    }
    write_csv(_export(o, o_head), t.folder / "onward.csv", "cp1252", pre)
    common = {"encoding": "cp1252", "skip_rows": 3}
    sources = [
        {
            "table": "referrals",
            "path": t.rel("referrals.csv"),
            **common,
            "multi_value_separator": ";",
            "columns": _mapping(A_REF),
        },
        {"table": "contacts", "path": t.rel("contacts.csv"), **common, "columns": c_head},
        {
            "table": "onward_referrals",
            "path": t.rel("onward.csv"),
            **common,
            "columns": {k: v for k, v in o_head.items() if k != "organisation"},
        },
    ]
    return sources, {
        **t.whole("referrals", "referrals.csv", t.referrals),
        **t.whole("contacts", "contacts.csv", t.contacts),
        **t.whole("onward_referrals", "onward.csv", t.onward),
    }


def _site_b(t: _SiteTables) -> tuple[list[dict[str, Any]], FileRows]:
    """UTF-8 with BOM, ISO dates, snake_case headers, reasons in up to four columns."""
    heads = {
        "referral_id": "referral_ref",
        "nhs_number": "nhs_no",
        "date_of_birth": "dob",
        "postcode": "postcode",
        "sex": "sex",
        "ethnicity": "ethnic_category",
        "referral_source": "source",
        "referral_date": "referral_date",
        "imd_decile": "imd_decile",
        "outcome": "status",
        "discharge_date": "closed_date",
    }
    ref = t.referrals.reset_index(drop=True)
    frame = pd.concat([ref, _reason_columns(ref, 4)], axis=1)
    out = _export(frame, {**heads, **{f"reason_{i}": f"reason_{i}" for i in range(1, 5)}})
    write_csv(out, t.folder / "referrals.csv", "utf-8-sig")
    c_head = {
        "referral_id": "referral_ref",
        "contact_date": "appt_date",
        "mode": "appt_type",
        "duration_min": "mins",
        "attended": "appt_status",
    }
    write_csv(_export(t.contacts, c_head), t.folder / "contacts.csv", "utf-8-sig")
    o_head = {
        "referral_id": "referral_ref",
        "onward_date": "onward_referral_date",
        "asset_type": "service_category",
    }
    write_csv(_export(t.onward, o_head), t.folder / "onward_referrals.csv", "utf-8-sig")
    common = {"encoding": "auto", "date_format": "%Y-%m-%d"}
    columns = _mapping(heads)
    columns["reasons"] = [f"reason_{i}" for i in range(1, 5)]
    sources = [
        {"table": "referrals", "path": t.rel("referrals.csv"), **common, "columns": columns},
        {
            "table": "contacts",
            "path": t.rel("contacts.csv"),
            **common,
            "columns": c_head,
            "values": {"attended": {"Cancelled": "false"}},
        },
        {
            "table": "onward_referrals",
            "path": t.rel("onward_referrals.csv"),
            **common,
            "columns": o_head,
        },
    ]
    return sources, {
        **t.whole("referrals", "referrals.csv", t.referrals),
        **t.whole("contacts", "contacts.csv", t.contacts),
        **t.whole("onward_referrals", "onward_referrals.csv", t.onward),
    }


C_REF = {
    "referral_id": "Referral ID",
    "nhs_number": "NHS No.",
    "date_of_birth": "Date of Birth",
    "sex": "Sex",
    "ethnicity": "Ethnicity",
    "referral_source": "Referral Source",
    "reasons": "Reasons",
    "referral_date": "Referral Date",
    "imd_decile": "IMD",
    "outcome": "Status",
    "discharge_date": "Discharged",
}


def _site_c(t: _SiteTables) -> tuple[list[dict[str, Any]], FileRows]:
    """One Excel workbook, a sheet per table, dates as Excel dates (CSV files at scale)."""
    frame = t.referrals.assign(reasons=_reasons_text(t.referrals, ", "))
    r_out = _export(frame, C_REF)
    c_head = {
        "referral_id": "Referral ID",
        "contact_date": "Date",
        "mode": "Type",
        "duration_min": "Minutes",
        "attended": "Attended",
    }
    o_head = {"referral_id": "Referral ID", "onward_date": "Date", "asset_type": "Asset"}
    c_out, o_out = _export(t.contacts, c_head), _export(t.onward, o_head)
    if t.large:
        write_csv(r_out, t.folder / "referrals.csv")
        write_csv(c_out, t.folder / "contacts.csv")
        write_csv(o_out, t.folder / "onward.csv")
        paths = {
            "referrals": ("referrals.csv", None),
            "contacts": ("contacts.csv", None),
            "onward_referrals": ("onward.csv", None),
        }
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
        paths = {
            "referrals": ("northgate_export.xlsx", "Referrals"),
            "contacts": ("northgate_export.xlsx", "Contacts"),
            "onward_referrals": ("northgate_export.xlsx", "Onward"),
        }
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
    heads = {
        "referral_id": "Referral No",
        "local_id": "Client ID",
        "age": "Age",
        "sex": "Sex",
        "ethnicity": "Ethnicity",
        "referral_source": "Referrer",
        "reasons": "Reasons",
        "referral_date": "Referral Date",
        "imd_decile": "IMD decile",
        "outcome": "Outcome",
        "discharge_date": "End Date",
        "notes": "Notes",
    }
    frame = t.referrals.assign(reasons=_reasons_text(t.referrals, " / "))
    write_csv(_export(frame, heads), t.folder / "referrals.csv")
    c_head = {
        "referral_id": "Referral No",
        "contact_date": "Appointment Date",
        "mode": "Method",
        "duration_min": "Length",
        "attended": "Attended?",
    }
    write_csv(_export(t.contacts, c_head), t.folder / "appointments.csv")
    o_head = {
        "referral_id": "Referral No",
        "onward_date": "Signposted On",
        "asset_type": "Signposted To",
    }
    write_csv(_export(t.onward, o_head), t.folder / "signposting.csv")
    sources = [
        {
            "table": "referrals",
            "path": t.rel("referrals.csv"),
            "multi_value_separator": "/",
            "columns": _mapping(heads),
        },
        {"table": "contacts", "path": t.rel("appointments.csv"), "columns": c_head},
        {"table": "onward_referrals", "path": t.rel("signposting.csv"), "columns": o_head},
    ]
    return sources, {
        **t.whole("referrals", "referrals.csv", t.referrals),
        **t.whole("contacts", "appointments.csv", t.contacts),
        **t.whole("onward_referrals", "signposting.csv", t.onward),
    }


def _site_e(t: _SiteTables) -> tuple[list[dict[str, Any]], FileRows]:
    """No contacts table: counts and first-contact date as columns; '05-Mar-2024' dates."""
    heads = {
        "referral_id": "Case ID",
        "nhs_number": "NHS",
        "date_of_birth": "Birth Date",
        "sex": "Gender",
        "ethnicity": "Ethnicity",
        "referral_source": "Referred From",
        "reasons": "Needs",
        "referral_date": "Received",
        "imd_decile": "IMD Decile",
        "outcome": "Case Outcome",
        "discharge_date": "Closed",
        "n_contacts": "No. of contacts",
        "n_attended": "No. attended",
        "first_contact_date": "First contact",
        "n_onward_referrals": "No. onward referrals",
    }
    frame = t.referrals.assign(reasons=_reasons_text(t.referrals, " | "))
    write_csv(_export(frame, heads), t.folder / "valley_caseload.csv")
    sources = [
        {
            "table": "referrals",
            "path": t.rel("valley_caseload.csv"),
            "date_format": t.style.date_format,
            "multi_value_separator": "|",
            "columns": heads,
        }
    ]
    return sources, t.whole("referrals", "valley_caseload.csv", t.referrals)


def _site_f(t: _SiteTables) -> tuple[list[dict[str, Any]], FileRows]:
    """Exports split into one file per year (a glob path reads them all)."""
    heads = {
        "referral_id": "ReferralID",
        "nhs_number": "NHSNumber",
        "date_of_birth": "DateOfBirth",
        "postcode": "PostCode",
        "sex": "Gender",
        "ethnicity": "Ethnicity",
        "referral_source": "ReferralSource",
        "reasons": "ReferralReasons",
        "referral_date": "ReferralDate",
        "imd_decile": "IMDDecile",
        "outcome": "Outcome",
        "discharge_date": "DischargeDate",
    }
    frame = t.referrals.assign(reasons=_reasons_text(t.referrals, ";"))
    year = pd.to_datetime(t.referrals["referral_date"], format="%d/%m/%Y", errors="coerce").dt.year
    # Rows with unreadable dates go with the row before them (the export is date-ordered).
    year = year.where(year.isin([2023, 2024])).ffill().fillna(2023).astype(int).to_numpy()
    files_ref = _yearly(_export(frame, heads), year, [2023, 2024], t.folder, "referrals")
    c_head = {
        "referral_id": "ReferralID",
        "contact_date": "ContactDate",
        "mode": "ContactMode",
        "duration_min": "DurationMinutes",
        "attended": "Outcome",
    }
    c_year = pd.to_datetime(t.contacts["contact_date"], format="%d/%m/%Y", errors="coerce").dt.year
    c_year = c_year.where(c_year.notna()).ffill().fillna(2023).astype(int).clip(2023, 2025)
    files_c = _yearly(
        _export(t.contacts, c_head),
        c_year.to_numpy(),
        sorted(c_year.unique()),
        t.folder,
        "contacts",
    )
    o_head = {"referral_id": "ReferralID", "onward_date": "OnwardDate", "asset_type": "AssetType"}
    write_csv(_export(t.onward, o_head), t.folder / "onward_referrals.csv")
    sources = [
        {
            "table": "referrals",
            "path": t.rel("referrals_*.csv"),
            "multi_value_separator": ";",
            "columns": _mapping(heads),
        },
        {"table": "contacts", "path": t.rel("contacts_*.csv"), "columns": c_head},
        {"table": "onward_referrals", "path": t.rel("onward_referrals.csv"), "columns": o_head},
    ]
    return sources, {
        "referrals": files_ref,
        "contacts": files_c,
        **t.whole("onward_referrals", "onward_referrals.csv", t.onward),
    }


def _yearly(
    out: pd.DataFrame, year: np.ndarray, years: list[int], folder: Path, stem: str
) -> list[tuple[str, np.ndarray]]:
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


def questionnaire_table(
    rows: pd.DataFrame, instruments: list[str], style: QuestionnaireStyle, ref: pd.DataFrame
) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """Questionnaire rows as the site exports them, and each instrument's item headers.

    ``rows`` are canonical (referral_id, timepoint, completed_date, "<instrument>:<item>"
    answers, with _rule and _flag); the result keeps _rule and _flag and adds _key, the row's
    place in the export.
    """
    item_cols = [c for c in rows.columns if ":" in c]
    out = pd.DataFrame()
    ident = (
        rows["referral_id"]
        if style.link == "referral_id"
        else rows["referral_id"].map(ref.set_index("referral_id")[style.link])
    )
    out[style.id_header] = ident.to_numpy(dtype=object)
    if style.timepoint_header:
        out[style.timepoint_header] = (
            rows["timepoint"].map(style.timepoint_labels).to_numpy(dtype=object)
        )
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


def write_questionnaires(
    out: pd.DataFrame,
    style: QuestionnaireStyle,
    items_cfg: dict[str, list[str]],
    folder: Path,
    large: bool,
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


# --------------------------------------------------------------------------------------------
# Site G: a GP clinical-system search, one row per coded event

REFERRAL_EVENT = ("871731000000106", "Referral to social prescribing service")
# outcome -> (code, term); declined is the national SNOMED CT code, the rest local codes.
OUTCOME_EVENTS = {
    "completed": ("LWO01", "Social prescribing completed"),
    "ongoing": ("LWO02", "Social prescribing in progress"),
    "declined": ("871711000000103", "Social prescribing declined"),
    "not_contactable": ("LWO03", "Unable to contact for social prescribing"),
    "inappropriate": ("LWO04", "Social prescribing referral not appropriate"),
    "other": ("LWO05", "Social prescribing ended - other reason"),
}
# reason term (LABELS["G"]["reason"]) -> code: SNOMED CT findings linkeval knows, else local.
REASON_EVENTS = {
    "Social isolation": "422650009",
    "Anxiety": "48694002",
    "Depressed mood": "366979004",
    "Unemployed": "73438004",
    "Financial problem": "160932005",
    "Physically inactive": "LWR01",
    "Support for long term condition": "LWR02",
    "Housing problem": "LWR03",
    "Bereavement": "LWR04",
    "Carer strain": "LWR05",
    "Alcohol misuse": "LWR06",
    "Food insecurity": "LWR07",
    "Domestic abuse": "LWR08",
    "Other social need": "LWR09",
    # Needs nobody gave a code meaning (defects.UNMAPPED): rejected as unknown_code.
    "Pet care": "LWU01",
    "Transport": "LWU02",
    "Digital skills": "LWU03",
}
# Other codes the search returns that are not referrals, outcomes or reasons: unknown_code.
OTHER_EVENTS = [
    ("LWX01", "Social prescribing information leaflet given", ""),
    ("LWX02", "Body weight", "72.5"),
]
G_HEAD = {
    "nhs_number": "NHS Number",
    "patient_name": "Name",
    "date_of_birth": "Date of Birth",
    "sex": "Gender",
    "ethnicity": "Ethnicity",
    "postcode": "Postcode",
    "practice_code": "Practice Code",
    "event_date": "Event Date",
    "code": "Code",
    "term": "Term",
    "value": "Value",
    "referral_source": "Recorded By",
}
P_OTHER_EVENT = 0.03  # referrals with an event of a code the config does not name
P_EARLY_REASON = 0.01  # people with a need coded before any referral (no_referral)
P_REPEATED_REFERRAL = 0.01  # referrals coded twice on the same day
PERSON_COLUMNS = [
    "nhs_number",
    "patient_name",
    "date_of_birth",
    "sex",
    "ethnicity",
    "postcode",
    "practice_code",
    "referral_source",
]


def coded_event_rows(
    rng: np.random.Generator,
    style: SiteStyle,
    raw: pd.DataFrame,
    ref: pd.DataFrame,
    reasons: pd.DataFrame,
) -> pd.DataFrame:
    """The search's rows: each exported referral as a referral event, its reasons and outcome
    as events, and events of other codes; in date order. Bookkeeping columns: _kind,
    _meaning, _ref (the referral it was made from), _date (true date), _rule (for rows the
    cleaner rejects before grouping), _person, _unmapped_source."""
    by_id = ref.set_index("referral_id")
    fmt = style.date_format
    base = raw[PERSON_COLUMNS].assign(
        _ref=raw["referral_id"].to_numpy(),
        _pos=raw["_pos"].to_numpy(),
        _date=raw["referral_id"].map(by_id["referral_date"]).to_numpy(),
        _person=raw["referral_id"].map(by_id["person"]).to_numpy(),
    )
    code, term = REFERRAL_EVENT
    parts = [
        base.assign(
            event_date=raw["referral_date"].to_numpy(),
            code=code,
            term=term,
            value="",
            _kind="referral",
            _meaning=None,
            _sub=0,
            _rule=raw["_rule"].to_numpy(),
        )
    ]
    # Reasons and outcome only for referrals read as episodes (not copies or bad rows).
    ok = (raw["_rule"].isna() | (raw["_rule"] == "under_18")).to_numpy()
    valid = base[ok].drop_duplicates("_ref")
    labels = reasons.merge(valid[["_ref"]], left_on="referral_id", right_on="_ref")
    r = valid.set_index("_ref").loc[labels["_ref"]].reset_index()
    unknown = labels["label"].map(REASON_EVENTS).str.startswith("LWU").to_numpy()
    parts.append(
        r.assign(
            event_date=date_text(r["_date"], fmt),
            code=labels["label"].map(REASON_EVENTS).to_numpy(),
            term=labels["label"].to_numpy(),
            value="",
            _kind=np.where(unknown, "unknown", "reason"),
            _meaning=labels["reason"].to_numpy(),
            _sub=1,
            _rule=np.where(unknown, "unknown_code", None),
        )
    )
    outcome = valid["_ref"].map(by_id["outcome"])
    when = (
        valid["_ref"]
        .map(by_id["discharge_date"])
        .where(outcome != "ongoing", valid["_date"] + pd.Timedelta(days=7))
    )
    parts.append(
        valid.assign(
            event_date=date_text(when, fmt),
            _date=when.to_numpy(),
            code=outcome.map(lambda o: OUTCOME_EVENTS[o][0]).to_numpy(),
            term=outcome.map(lambda o: OUTCOME_EVENTS[o][1]).to_numpy(),
            value="",
            _kind="outcome",
            _meaning=outcome.to_numpy(),
            _sub=2,
            _rule=None,
        )
    )
    parts.extend(_other_events(rng, valid, fmt))
    events = pd.concat(parts, ignore_index=True)
    events["_unmapped_source"] = False
    events = events.sort_values(["_date", "_pos", "_sub"], kind="stable").reset_index(drop=True)
    # Rows that happen to be identical (a person referred twice on one day) are exact copies.
    copy = events.duplicated(list(G_HEAD), keep="first")
    events.loc[copy, "_rule"] = "duplicate_row"
    return events


def _other_events(rng: np.random.Generator, valid: pd.DataFrame, fmt: str) -> list[pd.DataFrame]:
    """Events of codes nobody named (after some referrals), and needs coded before a person's
    first referral (which no referral can take)."""
    kept = valid[valid["_rule"].isna().to_numpy()] if "_rule" in valid else valid
    pick = kept.iloc[np.flatnonzero(rng.random(len(kept)) < P_OTHER_EVENT)]
    which = rng.integers(0, len(OTHER_EVENTS), len(pick))
    when = pick["_date"] + pd.to_timedelta(rng.integers(0, 31, len(pick)), unit="D")
    other = pick.assign(
        event_date=date_text(when, fmt),
        _date=when.to_numpy(),
        code=[OTHER_EVENTS[k][0] for k in which],
        term=[OTHER_EVENTS[k][1] for k in which],
        value=[OTHER_EVENTS[k][2] for k in which],
        _kind="unknown",
        _meaning=None,
        _sub=3,
        _rule="unknown_code",
    )
    first = kept.sort_values("_date", kind="stable").drop_duplicates("_person")
    early = first.iloc[_some(rng, len(first), P_EARLY_REASON)]
    when = early["_date"] - pd.to_timedelta(rng.integers(10, 61, len(early)), unit="D")
    early = early.assign(
        event_date=date_text(when, fmt),
        _date=when.to_numpy(),
        code=REASON_EVENTS["Social isolation"],
        term="Social isolation",
        value="",
        _kind="reason",
        _meaning="loneliness_isolation",
        _sub=1,
        _rule=None,
    )
    # A referral coded twice on one day (another term): merged into the first.
    again = kept.iloc[_some(rng, len(kept), P_REPEATED_REFERRAL)].assign(
        code=REFERRAL_EVENT[0],
        term="Referral to social prescribing service (re-entered)",
        value="",
        _kind="referral",
        _meaning=None,
        _sub=0.5,
        _rule=None,
    )
    again["event_date"] = date_text(again["_date"], fmt)
    return [other, early, again]


def _some(rng: np.random.Generator, n: int, rate: float) -> np.ndarray:
    """Positions of round(rate * n) (at least one) of n rows, at random."""
    if n == 0:
        return np.array([], dtype=int)
    return np.sort(rng.choice(n, size=max(1, int(round(rate * n))), replace=False))


def write_coded_events(
    style: SiteStyle, events: pd.DataFrame, raw_dir: Path
) -> tuple[dict[str, Any], str]:
    """Write the search export; the site's config entry and the file's path."""
    folder = site_folder(raw_dir, style.code)
    folder.mkdir(parents=True, exist_ok=True)
    write_csv(_export(events, G_HEAD), folder / "sp_search.csv")
    local = {
        "outcome_codes": {c: o for o, (c, _) in OUTCOME_EVENTS.items() if not c.isdigit()},
        "reason_codes": {},
    }
    for reason, terms in LABELS["G"]["reason"].items():
        for t in terms:
            if not REASON_EVENTS[t].isdigit():
                local["reason_codes"][REASON_EVENTS[t]] = reason
    source = {
        "table": "coded_events",
        "path": rel(folder, "sp_search.csv"),
        "columns": _mapping(G_HEAD, drop=("patient_name", "term", "value")),
        "values": {"referral_source": dict(SITE_VALUES["G"]["referral_source"])},
        "events": {"referral_codes": [REFERRAL_EVENT[0]], **local},
    }
    context = {"host": style.host, "rural": style.rural}
    return {"name": style.name, "context": context, "sources": [source]}, source["path"]
