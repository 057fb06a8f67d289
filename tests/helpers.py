"""Small hand-written studies for error and edge-case tests."""

from __future__ import annotations

from pathlib import Path

import yaml

REFERRALS_CSV = (
    "Ref,NHS,Referred,DOB,Source,Why\n"
    "R1,943 476 5919,05/03/2024,01/02/1950,GP,Loneliness;Debt\n"
    "R2,943 476 5918,06/03/2024,01/02/1950,GP,Loneliness\n"  # bad check digit
    "R3,999 999 9999,07/03/2024,01/02/1950,Self referral,\n"  # placeholder
    "R4,401 023 2137,08/03/2024,01/02/2010,Nurse,Anxiety\n"  # under 18
    "R5,401 023 2137,09/03/2024,01/02/1990,Dentist,Pet care\n"  # unmapped labels
    "R1,943 476 5919,05/03/2024,01/02/1950,GP,Loneliness;Debt\n"  # exact duplicate of row 1
)
CONTACTS_CSV = (
    "Ref,Date,Type,Attended\n"
    "R1,10/03/2024,Phone,Yes\n"
    "R1,01/03/2024,Phone,Yes\n"  # before referral
    "R2,10/03/2024,Phone,Yes\n"  # referral rejected
    "R9,10/03/2024,Phone,Yes\n"  # unknown referral
    "R5,12/03/2024,Carrier pigeon,DNA\n"
)
REFERRAL_COLUMNS = {
    "referral_id": "Ref",
    "nhs_number": "NHS",
    "referral_date": "Referred",
    "date_of_birth": "DOB",
    "referral_source": "Source",
    "reasons": "Why",
}


def write_study(
    tmp_path: Path,
    referrals: str = REFERRALS_CSV,
    contacts: str | None = CONTACTS_CSV,
    columns: dict | None = None,
    extra: dict | None = None,
    encoding: str = "utf-8",
    sites: tuple[str, ...] = ("X",),
) -> Path:
    """Write raw files and a config; returns the config path."""
    raw = tmp_path / "raw"
    site_cfg = {}
    for code in sites:
        folder = raw / code.lower()
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "referrals.csv").write_bytes(referrals.encode(encoding))
        sources = [
            {
                "table": "referrals",
                "path": f"{code.lower()}/referrals.csv",
                "multi_value_separator": ";",
                "columns": columns or REFERRAL_COLUMNS,
            }
        ]
        if contacts is not None:
            (folder / "contacts.csv").write_text(contacts, encoding="utf-8")
            sources.append(
                {
                    "table": "contacts",
                    "path": f"{code.lower()}/contacts.csv",
                    "columns": {
                        "referral_id": "Ref",
                        "contact_date": "Date",
                        "mode": "Type",
                        "attended": "Attended",
                    },
                }
            )
        site_cfg[code] = {"name": f"Site {code}", "sources": sources}
    cfg = {
        "study": "Test study",
        "raw_dir": "raw",
        "processed_dir": "processed",
        "reports_dir": "reports",
        "pseudonymisation": {"key_env": "LINKEVAL_TEST_KEY"},
        "sites": site_cfg,
    }
    cfg.update(extra or {})
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    return path
