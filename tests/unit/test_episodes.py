"""People seen more than once: duplicate cases are flagged by the documented rule."""

from __future__ import annotations

import pandas as pd

from linkeval.cleaning import clean_study
from linkeval.cleaning.episodes import DUPLICATE_CASE_DAYS
from linkeval.config import load_config
from tests.helpers import write_study

REFERRALS = (
    "Ref,NHS,Referred,DOB,Source,Why\n"
    "R1,943 476 5919,05/03/2024,01/02/1950,GP,Loneliness\n"
    "R2,943 476 5919,19/03/2024,01/02/1950,Self referral,Loneliness\n"  # 14 days: duplicate
    "R3,943 476 5919,01/10/2024,01/02/1950,GP,Debt\n"  # re-referral
    "R4,401 023 2137,02/04/2024,01/02/1960,GP,Debt\n"
    "R5,401 023 2137,30/04/2024,01/02/1960,Self referral,Debt\n"  # 28 days: duplicate
)


def test_duplicate_cases_flagged_and_re_referrals_kept(tmp_path):
    assert DUPLICATE_CASE_DAYS == 28
    cfg = load_config(write_study(tmp_path, referrals=REFERRALS, contacts=None))
    result = clean_study(
        cfg, key=b"test-key-for-linkeval-unit-tests", today=pd.Timestamp("2026-01-01")
    )
    assert len(result.tables["referrals"]) == 5  # flagged, not rejected
    log = result.log[result.log["rule"] == "duplicate_case"]
    assert sorted(log["source_row"].astype(int)) == [2, 5]
    assert (log["action"] == "flagged").all()
    assert log["detail"].str.contains("same person as referral R1, opened 14 days").any()
    assert not log["detail"].str.contains("943|401").any()


class _Log:
    def __init__(self) -> None:
        self.flagged: list[tuple[list, list[str]]] = []

    def flag(self, rows, table, fld, rule, detail) -> None:
        self.flagged.append((rows.index.tolist(), list(detail)))


def test_the_rule_compares_each_persons_referrals_in_date_order():
    from types import SimpleNamespace

    from linkeval.cleaning.episodes import flag_duplicate_cases

    q, p = "q" * 64, "p" * 64
    frame = pd.DataFrame(
        {
            "referral_id": ["Q3", "P1", "Q1", "N1", "P2", "Q2", "N2", "P3", "Q4"],
            "person_id": pd.Series([q, p, q, None, p, q, None, p, q], dtype="str"),
            "referral_date": pd.to_datetime(
                [
                    "2024-03-01 09:00",  # Q3: 29 days after Q2 (and at a later hour): not
                    "2024-01-10",  # P1
                    "2024-01-05",  # Q1
                    "2024-01-01",  # N1 and N2: no person, no one's duplicates
                    "2024-02-07",  # P2: 28 days after P1: flagged
                    "2024-02-01",  # Q2: 27 days after Q1: flagged
                    "2024-01-02",  # N2
                    None,  # P3: undated, compared with no one
                    "2024-03-02",  # Q4: the day after Q3 (15 hours: 0 whole days): flagged
                ],
                format="ISO8601",
            ),
        }
    ).set_axis(range(10, 19))
    log = _Log()
    assert flag_duplicate_cases(SimpleNamespace(log=log), frame) is frame
    ((rows, details),) = log.flagged
    # Listed by person (p before q) and date.
    assert rows == [14, 15, 18]
    assert [d.split(",")[0] for d in details] == [
        "same person as referral P1",
        "same person as referral Q1",
        "same person as referral Q3",
    ]
    assert [d.split(", opened ")[1].split(" days")[0] for d in details] == ["28", "27", "0"]
