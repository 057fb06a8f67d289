"""No direct identifier or free text leaves the cleaning step (docs/design.md, 'Identity and pseudonymisation')."""

from __future__ import annotations

import re

import pandas as pd

from linkeval.schema import SCHEMAS


def _processed_text(folder) -> str:
    """Every value and column name in every processed file, as text."""
    chunks = []
    for path in sorted(folder.rglob("*")):
        if path.suffix == ".parquet":
            frame = pd.read_parquet(path)
            chunks.append(" ".join(map(str, frame.columns)))
            chunks.append(frame.astype(str).to_csv(index=False))
        elif path.suffix in (".csv", ".json"):
            chunks.append(path.read_text(encoding="utf-8-sig"))
    return "\n".join(chunks)


def test_no_identifiers_in_any_processed_file(demo_study, demo_processed):
    text = _processed_text(demo_processed)
    truth = demo_study.truth["referrals"]
    nhs = set(truth["nhs_number"].dropna())
    assert len(nhs) > 1000
    # Every run of digits, however spaced or dashed, as one string of digits.
    runs = {re.sub(r"\D", "", r) for r in re.findall(r"\d(?:[\d \-]*\d)?", text)}
    long_runs = "|".join(r for r in runs if len(r) >= 10)
    leaked = [n for n in nhs if n in long_runs]
    assert leaked == []
    for placeholder in ("0000000000", "9999999999", "1111111111"):
        assert not re.search(rf"(?<![\d.]){placeholder}(?!\d)", text), placeholder
    tokens = set(re.findall(r"\d{2}/\d{2}/\d{4}|\d{4}-\d{2}-\d{2}|\d{2}-[A-Z][a-z]{2}-\d{4}", text))
    events = set()
    for col in ("referral_date", "discharge_date", "first_contact_date"):
        events |= set(pd.to_datetime(truth[col].dropna()).dt.strftime("%Y-%m-%d"))
    for fmt in ("%d/%m/%Y", "%Y-%m-%d", "%d-%b-%Y"):
        dobs = set(pd.to_datetime(truth["date_of_birth"].dropna()).dt.strftime(fmt))
        # A date of birth that is also some event date cannot be told apart; check the rest.
        same_as_event = set(pd.to_datetime(sorted(events)).strftime(fmt))
        assert (dobs - same_as_event) & tokens == set(), fmt
    assert len(dobs) > 1000
    for marker in ("TEST PATIENT", "ZZ99", "Lives alone", "gardening", "Prefers phone", "CC-0"):
        assert marker not in text


def test_processed_tables_have_only_canonical_columns(demo_processed):
    for name, schema in SCHEMAS.items():
        frame = pd.read_parquet(demo_processed / f"{name}.parquet")
        assert list(frame.columns) == list(schema.columns)
