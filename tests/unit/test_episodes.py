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
