"""The suite's own check (tests/conftest.py): a session that leaves a process, a container or a file
in results/ or build/ behind fails in CI and warns elsewhere; the test host may be kept on request."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

LEAKY = """
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_leaves_a_file_and_a_process():
    (ROOT / "build" / "testhost").mkdir(parents=True)
    (ROOT / "build" / "testhost" / "id_ed25519").write_text("kept with the test host")
    (ROOT / "results").mkdir(exist_ok=True)
    (ROOT / "results" / "stray.json").write_text("{}")
    proc = subprocess.Popen(["sleep", "300"], cwd=ROOT, start_new_session=True)
    (ROOT.parent / "leaked.pid").write_text(str(proc.pid))
"""


@pytest.fixture
def session_dir(tmp_path):
    """A checkout of one leaky test under the suite's own conftest.py; kills what it leaves."""
    root = tmp_path / "checkout"
    (root / "tests").mkdir(parents=True)
    (root / "tests" / "conftest.py").write_text((REPO / "tests" / "conftest.py").read_text())
    (root / "tests" / "test_leaky.py").write_text(LEAKY)
    yield root
    pid = tmp_path / "leaked.pid"
    if pid.exists():
        try:
            os.kill(int(pid.read_text()), signal.SIGKILL)
        except ProcessLookupError:
            pass
        pid.unlink()


def session(root, **env):
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "WANBENCH_KEEP_TESTHOST")} | env
    res = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"], cwd=root,
                         env=env, capture_output=True, text=True, timeout=120)
    return res.returncode, res.stdout + res.stderr


def alive(root):
    pid = int((root.parent / "leaked.pid").read_text())
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] != "Z"


def test_a_leaky_session_fails_in_ci_and_names_what_it_left(session_dir):
    rc, out = session(session_dir, CI="true")
    assert rc == 1, out
    assert "error: the test session left behind what it did not find" in out
    pid = (session_dir.parent / "leaked.pid").read_text()
    for line in (f"  process {pid}: sleep 300", "  file build", "  file build/testhost/id_ed25519",
                 "  file results", "  file results/stray.json"):
        assert line + "\n" in out, out
    assert alive(session_dir)


def test_outside_ci_it_warns_and_the_tests_decide(session_dir):
    rc, out = session(session_dir)
    assert rc == 0 and "warning: the test session left behind" in out and "file results/stray.json" in out, out


def test_what_existed_before_and_a_kept_test_host_are_allowed(session_dir):
    (session_dir / "results").mkdir()
    (session_dir / "results" / "stray.json").write_text("{}")  # the user's, from before the session
    rc, out = session(session_dir, CI="true", WANBENCH_KEEP_TESTHOST="1")
    # the test host's state may stay; the stray process may not
    assert rc == 1 and "file build" not in out and "file results" not in out, out
    assert f"process {(session_dir.parent / 'leaked.pid').read_text()}: sleep 300" in out
