"""Molecule scenarios (molecule/) against the test host's docker engine and image."""

import os
import subprocess
from pathlib import Path

import pytest

from .testhost_lib import BIN, REPO


@pytest.mark.parametrize("scenario", ["repo_sync", "run_flow"])
def test_molecule_scenario(testhost, scenario):
    prefix = Path(os.path.realpath(BIN / "python")).parent.parent  # the Python the .venv links to
    env = {**os.environ, "WANBENCH_PYTHON_PREFIX": str(prefix), "ANSIBLE_FORCE_COLOR": "0", "NO_COLOR": "1",
           "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    res = subprocess.run([str(BIN / "molecule"), "test", "-s", scenario], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=1200)
    assert res.returncode == 0, (res.stdout + res.stderr)[-6000:]
    assert f"{scenario}" in res.stdout + res.stderr


