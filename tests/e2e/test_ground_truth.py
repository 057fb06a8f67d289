"""The cleaner recovers the synthetic generator's ground truth exactly (seven sites: G is a GP
search export of coded events, grouped into referral episodes)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from linkeval.pseudonymise import pseudonym
from tests.conftest import TEST_KEY

ROW_TRUTH = {
    "referrals": "referral_rows",
    "contacts": "contact_rows",
    "onward_referrals": "onward_rows",
    "coded_events": "coded_event_rows",
}
KEY = ["site", "table", "source_file", "source_row"]


def _rejections(log: pd.DataFrame, table: str) -> pd.DataFrame:
    rej = log[(log["action"] == "rejected") & (log["table"] == table)]
    return rej[[*KEY, "rule"]].astype({"source_row": int})


@pytest.mark.parametrize("table", list(ROW_TRUTH))
def test_every_injected_defect_is_rejected_by_the_right_rule(demo_study, demo_clean, table):
    truth = demo_study.truth[ROW_TRUTH[table]]
    expected = truth[truth["expected_action"] == "rejected"][[*KEY, "expected_rule"]]
    got = _rejections(demo_clean.log, table)
    merged = expected.merge(got, on=KEY, how="outer", indicator=True)
    missed = merged[merged["_merge"] == "left_only"]
    extra = merged[merged["_merge"] == "right_only"]
    wrong = merged[(merged["_merge"] == "both") & (merged["expected_rule"] != merged["rule"])]
    assert missed.empty, f"defects not rejected:\n{missed.head(10)}"
    assert extra.empty, f"clean rows rejected:\n{extra.head(10)}"
    assert wrong.empty, f"rejected by the wrong rule:\n{wrong.head(10)}"
    # Every kind of injected defect actually occurs in the demo, so this test can fail.
    assert len(expected) > 20


@pytest.mark.parametrize("table", list(ROW_TRUTH))
def test_unmapped_labels_are_flagged_exactly(demo_study, demo_clean, table):
    truth = demo_study.truth[ROW_TRUTH[table]]
    log = demo_clean.log
    flagged = log[
        (log["action"] == "flagged") & (log["table"] == table) & (log["rule"] == "unmapped_label")
    ]
    got = set(map(tuple, flagged[KEY].astype({"source_row": int}).itertuples(index=False)))
    if table == "referrals":
        want_rows = truth[truth["flag_source"] | truth["flag_reason"]]
    else:
        want_rows = truth[truth["flagged"]]
    want = set(map(tuple, want_rows[KEY].itertuples(index=False)))
    assert got == want
    assert len(want) > (2 if table == "coded_events" else 5)


def test_row_accounting_reconciles(demo_study, demo_clean):
    s = demo_clean.summary
    assert (s["rows_read"] == s["rows_kept"] + s["rows_rejected"]).all()
    for table, truth_name in ROW_TRUTH.items():
        truth = demo_study.truth[truth_name]
        read = s[s["table"] == table].set_index("site")["rows_read"]
        want = truth.groupby("site").size()
        assert read.reindex(want.index).tolist() == want.tolist()


def test_kept_referrals_have_the_true_values(demo_study, demo_clean):
    truth = demo_study.truth["referrals"].set_index(["site", "referral_id"]).sort_index()
    got = demo_clean.tables["referrals"].set_index(["site", "referral_id"]).sort_index()
    assert got.index.equals(truth.index)
    expected_pid = truth.apply(
        lambda r: (
            pseudonym(TEST_KEY, r["nhs_number"])
            if isinstance(r["nhs_number"], str)
            else pseudonym(TEST_KEY, f"{r.name[0]}:{r['local_id']}")
        ),
        axis=1,
    )
    assert (got["person_id"] == expected_pid).all()
    for col in ("referral_date", "discharge_date", "first_contact_date"):
        pd.testing.assert_series_equal(
            got[col].astype("datetime64[ns]"),
            truth[col].astype("datetime64[ns]"),
            check_names=False,
        )
    for col in ("referral_source", "sex", "ethnicity", "outcome", "rural_urban", "pcn_code"):
        # Missing (an episode without an outcome event; area fields outside site G) as "".
        want = truth[col].astype(object).where(truth[col].notna(), "").astype(str)
        assert (got[col].astype(object).where(got[col].notna(), "").astype(str) == want).all(), col
    g = got.loc["G"]
    assert g["rural_urban"].notna().any() and g["imd_decile"].notna().any()  # area lookups
    for col in (
        "age_at_referral",
        "imd_decile",
        "n_contacts",
        "n_attended",
        "n_onward_referrals",
        "days_to_first_contact",
    ):
        pd.testing.assert_series_equal(
            got[col].astype("Int64"), truth[col].astype("Int64"), check_names=False
        )


def test_reasons_contacts_and_onward_referrals_match_truth(demo_study, demo_clean):
    def norm(frame, cols):
        return frame[cols].astype(str).sort_values(cols).reset_index(drop=True)

    cols = ["site", "referral_id", "reason"]
    pd.testing.assert_frame_equal(
        norm(demo_clean.tables["referral_reasons"], cols),
        norm(demo_study.truth["referral_reasons"], cols),
    )
    got = demo_clean.tables["contacts"].copy()
    want = demo_study.truth["contacts"].copy()
    for frame in (got, want):
        frame["contact_date"] = pd.to_datetime(frame["contact_date"]).dt.strftime("%Y-%m-%d")
        frame["attended"] = frame["attended"].astype(bool)
    cols = ["site", "referral_id", "contact_date", "mode", "duration_min", "attended"]
    pd.testing.assert_frame_equal(norm(got, cols), norm(want, cols))
    got = demo_clean.tables["onward_referrals"].copy()
    want = demo_study.truth["onward_referrals"].copy()
    for frame in (got, want):
        frame["onward_date"] = pd.to_datetime(frame["onward_date"]).dt.strftime("%Y-%m-%d")
    cols = ["site", "referral_id", "onward_date", "asset_type"]
    pd.testing.assert_frame_equal(norm(got, cols), norm(want, cols))


# ---- questionnaires ---------------------------------------------------------------------


def test_questionnaire_rows_have_the_true_fate(demo_study, demo_clean):
    truth = demo_study.truth["questionnaire_rows"]
    expected = truth[truth["expected_action"] == "rejected"][[*KEY, "expected_rule"]]
    got = _rejections(demo_clean.log, "questionnaires")
    merged = expected.merge(got, on=KEY, how="outer", indicator=True)
    assert (merged["_merge"] == "both").all(), merged[merged["_merge"] != "both"].head(10)
    assert (merged["expected_rule"] == merged["rule"]).all()
    assert set(expected["expected_rule"]) >= {
        "duplicate_row",
        "missing_required",
        "unknown_referral",
        "no_referral",
        "missing_timepoint",
    }
    flagged = demo_clean.log[(demo_clean.log["rule"] == "invalid_item")]
    got_flags = set(map(tuple, flagged[KEY].astype({"source_row": int}).itertuples(index=False)))
    want_flags = set(map(tuple, truth[truth["flagged"]][KEY].itertuples(index=False)))
    assert got_flags == want_flags and len(want_flags) > 5


def test_scores_match_truth(demo_study, demo_clean):
    keys = ["site", "referral_id", "timepoint", "completed_date", "instrument"]
    want = demo_study.truth["scores"].copy()
    got = demo_clean.tables["scores"].copy()
    for frame in (want, got):
        frame["completed_date"] = pd.to_datetime(frame["completed_date"]).dt.normalize()
    merged = want.merge(got, on=keys, how="outer", suffixes=("_want", "_got"), indicator=True)
    assert (merged["_merge"] == "both").all(), merged[merged["_merge"] != "both"].head()
    assert (merged["scored_want"] == merged["scored_got"]).all()
    s = merged[merged["scored_want"]]
    assert np.allclose(s["score_want"].astype(float), s["score_got"].astype(float))
    assert (~merged["scored_want"]).sum() > 10  # missing and out-of-range items occur


def test_pairs_match_truth(demo_study, demo_clean):
    keys = ["site", "referral_id", "instrument"]
    want = demo_study.truth["pairs"]
    got = demo_clean.tables["pairs"]
    merged = want.merge(got, on=keys, how="outer", suffixes=("_want", "_got"), indicator=True)
    assert (merged["_merge"] == "both").all(), merged[merged["_merge"] != "both"].head()
    for col in ("baseline", "followup"):
        a, b = merged[f"{col}_want"].astype(float), merged[f"{col}_got"].astype(float)
        assert ((a - b).abs().fillna(0) < 1e-9).all() and (a.isna() == b.isna()).all(), col
    assert (merged["in_window_want"] == merged["in_window_got"]).all()
    assert (
        merged["in_window_got"].any()
        and (~merged["in_window_got"] & merged["followup_got"].notna()).any()
    )  # some out of window


def test_coded_events_merged_into_episodes_are_flagged_exactly(demo_study, demo_clean):
    truth = demo_study.truth["coded_event_rows"]
    log = demo_clean.log
    for rule, column in (
        ("repeated_referral_event", "flag_repeated"),
        ("superseded_outcome", "flag_superseded"),
    ):
        rows = log[(log["rule"] == rule) & (log["table"] == "coded_events")]
        assert set(rows["source_row"].astype(int)) == set(truth.loc[truth[column], "source_row"])
        assert len(rows) > 0, rule
    rejected = set(truth["expected_rule"].dropna())
    assert rejected >= {
        "unknown_code",
        "no_referral",
        "referral_rejected",
        "duplicate_row",
        "under_18",
    }


def test_duplicate_cases_are_flagged_exactly(demo_study, demo_clean):
    """A kept referral at most 28 days after the same person's previous kept one, at any site."""
    ref = demo_study.truth["referrals"].copy()
    ref["person"] = ref["nhs_number"].where(ref["nhs_number"].notna(), ref["local_id"])
    rows = demo_study.truth["referral_rows"]
    kept = rows[rows["expected_action"] == "kept"].drop_duplicates(["site", "referral_id"])
    where = ref.merge(
        kept[["site", "referral_id", "table", "source_file", "source_row"]],
        on=["site", "referral_id"],
        how="left",
    )
    events = where["site"] == "G"  # referral_id is '<file>#<row>' of the referral event
    parts = where.loc[events, "referral_id"].str.rsplit("#", n=1, expand=True)
    where.loc[events, "table"] = "coded_events"
    where.loc[events, "source_file"] = parts[0]
    where.loc[events, "source_row"] = parts[1].astype(int)
    where = where.sort_values(
        ["site", "person", "referral_date", "source_file", "source_row"], kind="stable"
    )
    same = where["person"].eq(where["person"].shift()) & where["site"].eq(where["site"].shift())
    gap = (where["referral_date"] - where["referral_date"].shift()).dt.days
    want = where[same & (gap <= 28)]
    log = demo_clean.log
    got = log[log["rule"] == "duplicate_case"]

    def as_set(frame):
        return set(frame[KEY].astype({"source_row": int}).itertuples(index=False, name=None))

    assert as_set(got) == as_set(want)
    assert (want["site"] == "G").sum() >= 2  # the generator plants some at site G


def test_followups_before_baseline_are_logged_not_paired(demo_clean):
    log = demo_clean.log
    before = log[log["rule"] == "followup_before_baseline"]
    assert len(before) > 0 and (before["action"] == "rejected").all()
    assert not before.duplicated(["source_file", "source_row"]).any()


def test_parallel_cleaning_gives_the_serial_result_and_leaves_no_temporary_files(
    demo_config, demo_clean
):
    from linkeval.cleaning import clean_study
    from tests.conftest import TODAY

    parallel = clean_study(demo_config, key=TEST_KEY, today=TODAY, jobs=2)
    for table, frame in demo_clean.tables.items():
        pd.testing.assert_frame_equal(parallel.tables[table], frame, obj=table)
    pd.testing.assert_frame_equal(parallel.log, demo_clean.log)
    pd.testing.assert_frame_equal(parallel.summary, demo_clean.summary)
    assert not list(demo_config.processed_dir.parent.glob(".linkeval-parts-*"))
