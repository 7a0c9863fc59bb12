"""Shared pytest fixtures."""

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
SAMPLES = FIXTURES / "samples"


@pytest.fixture(scope="session")
def samples():
    """The project's own sample outputs of the workload (tests/fixtures/samples, made by make_fixtures.py)."""
    return SAMPLES


@pytest.fixture(scope="session")
def fixtures():
    """All of the project's fixtures: samples/, diag/ (slow-card, block, legacy, no memory), torchrun/."""
    return FIXTURES
