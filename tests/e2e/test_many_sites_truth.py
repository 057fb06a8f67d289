"""The cleaner recovers the ground truth of a study whose sites repeat the export shapes
(fifteen sites: S008-S015 after the demo's A-G, two GP searches), by the same checks as the
demo's (test_ground_truth.py), run here on that study."""

from __future__ import annotations

import pytest

from linkeval.cleaning import clean_study
from linkeval.config import load_config
from linkeval.synthetic import generate_study
from tests.conftest import TEST_KEY, TODAY
from tests.e2e import test_ground_truth as demo_checks
from tests.e2e.test_ground_truth import KEY

# The demo's checks, each run on this module's study (the fixtures below take the place of
# the demo's of the same name).
test_every_injected_defect_is_rejected_by_the_right_rule = (
    demo_checks.test_every_injected_defect_is_rejected_by_the_right_rule
)
test_unmapped_labels_are_flagged_exactly = demo_checks.test_unmapped_labels_are_flagged_exactly
test_row_accounting_reconciles = demo_checks.test_row_accounting_reconciles
test_kept_referrals_have_the_true_values = demo_checks.test_kept_referrals_have_the_true_values
test_reasons_contacts_and_onward_referrals_match_truth = (
    demo_checks.test_reasons_contacts_and_onward_referrals_match_truth
)
test_questionnaire_rows_have_the_true_fate = demo_checks.test_questionnaire_rows_have_the_true_fate
test_scores_match_truth = demo_checks.test_scores_match_truth
test_pairs_match_truth = demo_checks.test_pairs_match_truth
test_coded_events_merged_into_episodes_are_flagged_exactly = (
    demo_checks.test_coded_events_merged_into_episodes_are_flagged_exactly
)


@pytest.fixture(scope="module")
def demo_study(tmp_path_factory):
    return generate_study(tmp_path_factory.mktemp("fifteen"), n_referrals=4500, n_sites=15, seed=21)


@pytest.fixture(scope="module")
def demo_config(demo_study):
    return load_config(demo_study.config_path)


@pytest.fixture(scope="module")
def demo_clean(demo_config):
    return clean_study(demo_config, key=TEST_KEY, today=TODAY)


def test_every_site_is_cleaned_with_its_own_rows(demo_study, demo_clean):
    assert not demo_clean.failed
    sites = list(demo_study.config["sites"])
    assert sorted(demo_clean.tables["referrals"]["site"].unique()) == sites
    # The two GP searches (G and S014) take their PCN from the practices they were given.
    refs = demo_clean.tables["referrals"]
    pcn = refs.groupby("site")["pcn_code"].agg(lambda v: set(v.dropna()))
    assert len(pcn["G"]) == 1 and len(pcn["S014"]) == 1


def test_duplicate_cases_are_flagged_exactly(demo_study, demo_clean):
    """As the demo's check, with two GP searches (G and S014) instead of one."""
    ref = demo_study.truth["referrals"].copy()
    ref["person"] = ref["nhs_number"].where(ref["nhs_number"].notna(), ref["local_id"])
    rows = demo_study.truth["referral_rows"]
    kept = rows[rows["expected_action"] == "kept"].drop_duplicates(["site", "referral_id"])
    where = ref.merge(
        kept[["site", "referral_id", "table", "source_file", "source_row"]],
        on=["site", "referral_id"],
        how="left",
    )
    events = where["referral_id"].str.contains("#")  # '<file>#<row>' of the referral event
    assert set(where.loc[events, "site"]) == {"G", "S014"}
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
    got = demo_clean.log[demo_clean.log["rule"] == "duplicate_case"]

    def as_set(frame):
        return set(frame[KEY].astype({"source_row": int}).itertuples(index=False, name=None))

    assert as_set(got) == as_set(want)
    assert (want["site"] == "S014").sum() >= 2  # planted at the repeated GP search too
