# ruff: noqa: F401  (every import here is a re-export: the public names of linkeval)
"""The names ``import linkeval as le`` offers (read by type checkers, editors and, through
lazy_loader, by linkeval/__init__.py: each is imported when first used)."""

from ._version import __version__
from .cleaning import clean_study, write_outputs
from .config import load_config
from .io import load_processed
from .pseudonymise import load_key
from .report.disclosure import suppress, suppress_count
from .stats.attrition import attrition_table, followup_rates
from .stats.change import band_transitions, cronbach_alpha_ci, paired_change
from .stats.describe import (
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
from .stats.lmm import fit_random_intercept
from .stats.models import (
    analysis_frame,
    minimum_detectable,
    moderator_analysis,
    multilevel_model,
    sensitivity_analyses,
)
from .stats.pairing import pair_scores, reliabilities, reliable_change_index
from .stats.pooling import (
    context_meta_regression,
    meta_analysis,
    meta_regression,
    pooled_change,
)
from .stats.realist import assess_programme_theory
from .synthetic import generate_study
