"""linkeval: cleaning, scoring and analysis for realist evaluations of social-prescribing link workers.

The pipeline, one subpackage a step::

    raw exports --cleaning--> processed tables --stats--> tidy results --report--> pages

A statistician writes ``import linkeval as le`` and uses the functions below; ``linkeval demo``
runs the whole pipeline on synthetic data. Importing linkeval changes no global state (no
matplotlib backend, theme or warning filter is set).
"""

from linkeval._version import __version__
from linkeval.cleaning import clean_study, write_outputs
from linkeval.config import load_config
from linkeval.io import load_processed
from linkeval.pseudonymise import load_key
from linkeval.report.disclosure import suppress, suppress_count
from linkeval.stats.attrition import attrition_table, followup_rates
from linkeval.stats.change import band_transitions, cronbach_alpha_ci, paired_change
from linkeval.stats.describe import (
    contact_modes,
    contacts_per_referral,
    days_to_first_contact,
    dna_rate,
    engagement_funnel,
    onward_by_asset,
    outcomes,
    referral_reasons,
    referral_sources,
    referrals_per_month,
    table_one,
)
from linkeval.stats.lmm import fit_random_intercept
from linkeval.stats.models import (
    analysis_frame,
    minimum_detectable,
    moderator_analysis,
    multilevel_model,
    sensitivity_analyses,
)
from linkeval.stats.pairing import pair_scores, reliabilities, reliable_change_index
from linkeval.stats.pooling import (
    context_meta_regression,
    meta_analysis,
    meta_regression,
    pooled_change,
)
from linkeval.stats.realist import assess_programme_theory
from linkeval.synthetic import generate_study

__all__ = [
    "__version__",
    "analysis_frame",
    "assess_programme_theory",
    "attrition_table",
    "band_transitions",
    "clean_study",
    "contact_modes",
    "context_meta_regression",
    "cronbach_alpha_ci",
    "contacts_per_referral",
    "days_to_first_contact",
    "dna_rate",
    "engagement_funnel",
    "fit_random_intercept",
    "followup_rates",
    "generate_study",
    "load_config",
    "load_key",
    "load_processed",
    "meta_analysis",
    "meta_regression",
    "minimum_detectable",
    "moderator_analysis",
    "multilevel_model",
    "onward_by_asset",
    "outcomes",
    "pair_scores",
    "paired_change",
    "pooled_change",
    "referral_reasons",
    "referral_sources",
    "referrals_per_month",
    "reliabilities",
    "reliable_change_index",
    "sensitivity_analyses",
    "suppress",
    "suppress_count",
    "table_one",
    "write_outputs",
]
