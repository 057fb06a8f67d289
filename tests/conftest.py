"""Shared fixtures: one small synthetic study, generated and cleaned once per test session."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from linkeval.cleaning import clean_study, write_outputs
from linkeval.config import load_config
from linkeval.synthetic import generate_study

TEST_KEY = b"test-key-for-linkeval-unit-tests"
TODAY = pd.Timestamp("2026-11-24")


@pytest.fixture(scope="session")
def demo_study(tmp_path_factory):
    """The six demo sites (seed 7), written to a temporary folder."""
    out = tmp_path_factory.mktemp("demo")
    return generate_study(out, seed=7)


@pytest.fixture(scope="session")
def demo_config(demo_study):
    return load_config(demo_study.config_path)


@pytest.fixture(scope="session")
def demo_clean(demo_study, demo_config):
    """The demo study cleaned in memory with the test key."""
    return clean_study(demo_config, key=TEST_KEY, today=TODAY)


@pytest.fixture(scope="session")
def demo_processed(demo_config, demo_clean) -> Path:
    """The demo study's processed folder, written."""
    return write_outputs(demo_config, demo_clean)


@pytest.fixture(scope="session")
def large_study(tmp_path_factory):
    """A larger synthetic study (18,000 referrals, six sites) with known context effects."""
    study = generate_study(tmp_path_factory.mktemp("large"), n_referrals=18000, seed=11)
    cfg = load_config(study.config_path)
    return cfg, clean_study(cfg, key=TEST_KEY).tables
