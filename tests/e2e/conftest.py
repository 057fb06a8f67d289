"""End-to-end tests: the whole pipeline on synthetic studies, real notebooks and kernels."""

import pytest


def pytest_collection_modifyitems(items):
    for item in items:
        if "/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.slow)
