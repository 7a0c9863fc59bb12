"""Shared pytest fixtures."""

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO.parent / "shared" / "target" / "samples"


@pytest.fixture(scope="session")
def samples():
    """The workload's sample outputs, from shared/ beside the repository."""
    if not SAMPLES.is_dir():
        pytest.skip(f"sample outputs not found at {SAMPLES}: clone with shared/ beside the repository")
    return SAMPLES
