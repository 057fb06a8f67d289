"""Area and practice context derived from lookup files during cleaning, then dropped.

docs/standard.md; linkeval/cleaning/area.py. The lookups are the package's small synthetic
files for the ZZ99 pseudo-postcodes, in the published files' shapes.
"""

from __future__ import annotations

import shutil
from importlib import resources

import pandas as pd
import pytest
import yaml

from linkeval.cleaning import clean_study, write_outputs
from linkeval.config import load_config
from linkeval.errors import LinkevalError
from tests.helpers import write_study

KEY = b"test-key-for-linkeval-unit-tests"
TODAY = pd.Timestamp("2026-01-01")

REFERRALS = (
    "Ref,NHS,Referred,DOB,Source,Why,Postcode,Practice,IMD\n"
    "R1,943 476 5919,05/03/2024,01/02/1950,GP,Loneliness,ZZ99 1AA,Z00001,7\n"
    "R2,401 023 2137,06/03/2024,01/02/1960,GP,Debt,zz992aa,Z00003,\n"
    "R3,943 476 5919,07/03/2024,01/02/1950,GP,Debt,ZZ99 0AA,Z00006,\n"
    "R4,943 476 5919,08/03/2024,01/02/1950,GP,Debt,AB1 2CD,Z99999,4\n"  # not in the lookups
    "R5,943 476 5919,09/03/2024,01/02/1950,GP,Debt,,,\n"
)
COLUMNS = {
    "referral_id": "Ref",
    "nhs_number": "NHS",
    "referral_date": "Referred",
    "date_of_birth": "DOB",
    "referral_source": "Source",
    "reasons": "Why",
    "postcode": "Postcode",
    "practice_code": "Practice",
    "imd_decile": "IMD",
}


def vals(series: pd.Series) -> list:
    return [None if pd.isna(v) else v for v in series.tolist()]


def lookup_files(folder):
    folder.mkdir(exist_ok=True)
    data = resources.files("linkeval.data")
    for name in (
        "postcodes",
        "imd2019",
        "iod2025",
        "lsoa_2011_2021",
        "rural_urban_2021",
        "practice_pcn",
    ):
        with resources.as_file(data / f"demo_lookup_{name}.csv") as src:
            shutil.copy(src, folder / f"{name}.csv")
    return folder


def study(tmp_path, lookups):
    lookup_files(tmp_path / "lookups")
    return write_study(
        tmp_path,
        referrals=REFERRALS,
        contacts=None,
        columns=COLUMNS,
        extra={"context_lookups": lookups},
    )


LOOKUPS_2019 = {
    "postcodes": {"path": "lookups/postcodes.csv", "lsoa": "lsoa21", "lsoa_year": 2021},
    "lsoa_2011_2021": "lookups/lsoa_2011_2021.csv",
    "imd": "lookups/imd2019.csv",  # IoD 2019: keyed on LSOA 2011 (the default columns)
    "rural_urban": "lookups/rural_urban_2021.csv",
    "practice_pcn": "lookups/practice_pcn.csv",
}


def test_lookups_add_imd_rurality_and_pcn(tmp_path):
    cfg = load_config(study(tmp_path, LOOKUPS_2019))
    result = clean_study(cfg, key=KEY, today=TODAY)
    ref = result.tables["referrals"].set_index("referral_id")
    # R1: exported 7, derived 1 (the derived decile wins); R4 unknown postcode: exported 4 kept.
    assert vals(ref["imd_decile"]) == [1, 2, 10, 4, None]
    assert vals(ref["imd_quintile"]) == [1, 1, 5, 2, None]
    assert vals(ref["rural_urban"]) == ["urban", "rural", "rural", None, None]
    assert vals(ref["pcn_code"]) == ["U00001", "U00002", "U00003", None, None]
    log = result.log
    flagged = log[log["rule"].isin(["unknown_postcode", "unknown_practice"])]
    assert flagged["source_row"].tolist() == [4, 4]
    assert not log["detail"].astype(str).str.contains("AB1|ZZ99|Z99999", case=False).any()


def test_iod_2025_on_lsoa_2021_needs_no_conversion(tmp_path):
    lookups = {
        "postcodes": "lookups/postcodes.csv",
        "imd": {
            "path": "lookups/iod2025.csv",
            "lsoa": "LSOA code (2021)",
            "decile": "Index of Multiple Deprivation (IMD) Decile",
            "lsoa_year": 2021,
        },
    }
    cfg = load_config(study(tmp_path, lookups))
    ref = clean_study(cfg, key=KEY, today=TODAY).tables["referrals"]
    assert vals(ref["imd_decile"]) == [1, 2, 10, 4, None]
    assert ref["rural_urban"].isna().all() and ref["pcn_code"].isna().all()


def test_no_postcode_in_any_processed_or_qa_output(tmp_path):
    cfg = load_config(study(tmp_path, LOOKUPS_2019))
    out = write_outputs(cfg, clean_study(cfg, key=KEY, today=TODAY))
    files = [p for p in out.rglob("*") if p.is_file()]
    assert any(p.suffix == ".parquet" for p in files) and any(p.suffix == ".csv" for p in files)
    for path in files:
        if path.suffix == ".parquet":
            frame = pd.read_parquet(path)
            assert not {"postcode", "practice_code", "lsoa"} & set(frame.columns), path
            text = frame.astype(str).to_csv()
        else:
            text = path.read_text(encoding="utf-8-sig")
        for value in ("ZZ99", "zz992aa", "AB1 2CD", "E019999", "Z00001"):
            assert value.lower() not in text.lower(), (path.name, value)


def test_lookup_config_errors(tmp_path):
    path = study(tmp_path, {"imd": "lookups/imd2019.csv"})
    with pytest.raises(LinkevalError, match="need the postcodes lookup"):
        load_config(path)
    path = study(tmp_path, {"postcodes": "lookups/nope.csv"})
    with pytest.raises(LinkevalError, match=r"context_lookups\.postcodes\.path: .* not found"):
        load_config(path)
    path = study(tmp_path, {"postcode": "lookups/postcodes.csv"})
    with pytest.raises(LinkevalError, match='did you mean "postcodes"'):
        load_config(path)
    # IoD 2019 (LSOA 2011) from 2021 LSOAs without the ONS lookup: one clear line.
    cfg = load_config(
        study(tmp_path, {"postcodes": "lookups/postcodes.csv", "imd": "lookups/imd2019.csv"})
    )
    with pytest.raises(LinkevalError, match="add lsoa_2011_2021"):
        clean_study(cfg, key=KEY, today=TODAY)


def test_without_lookups_the_quintile_comes_from_the_exported_decile(tmp_path):
    path = study(tmp_path, {})
    cfg = yaml.safe_load(path.read_text())
    cfg.pop("context_lookups")
    path.write_text(yaml.safe_dump(cfg))
    ref = clean_study(load_config(path), key=KEY, today=TODAY).tables["referrals"]
    assert vals(ref["imd_decile"]) == [7, None, None, 4, None]
    assert vals(ref["imd_quintile"]) == [4, None, None, 2, None]
