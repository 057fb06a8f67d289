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


IDS = [
    "R2",
    "B000123",
    "A-0001",
    "REF/77",
    "ref.12",
    "9434765919",
    "943 476 5919",
    "943-476-5919",
    "07700900123",
    "0770 090 0123",
    "01/02/1950",
    "1.2.3",
    "REF-1950-02-01",
    "12-Jan-1950",
    "3rd March 1950",
    "march 3, 1950",
    "Sept 3 50",
    "ſep 3 1950",
    "ZZ99 3AA",
    "zz993aa",
    "ıZ99 3ıA",
    "İA9 9AA",
    "SW1A 1AA",
    "EC1A1BB",
    "jane@example.org",
    "x@y.z",
    "A1 1AA",
    "٩٤٣٤٧٦٥٩١٩",
    "١/٢/١٩٥٠",
    "id\nAB1\n2CD",
    "Z99 3A",
    "janet",
    "DECK-1",
    "123456789",
    "1234567890",
    "",
    "é@x.co",
    "PX-2024-000001",
]


def test_only_ids_that_may_look_like_identifiers_go_through_the_patterns():
    # The Arrow prefilter may let through more IDs than match, never fewer: the same IDs are
    # found as with every pattern run on every ID.
    from linkeval.cleaning.site import IDENTIFIER_LIKE, LONG_NUMBER, _identifier_like
    from linkeval.pseudonymise import nhs_number_status, normalise_nhs_number

    ids = pd.Series(IDS + [f"{c}{i:06d}" for c in "ABZ" for i in range(0, 10**6, 9973)])
    every = nhs_number_status(normalise_nhs_number(ids)) == "valid"
    for pattern in [LONG_NUMBER, *IDENTIFIER_LIKE]:
        every |= ids.str.contains(pattern, regex=True).astype(bool)
    assert _identifier_like(ids).tolist() == every.tolist()
    assert every.sum() >= 20  # the list has many of each kind
    assert not _identifier_like(pd.Series(["B000123", "R2"])).any()
