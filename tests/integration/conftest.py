"""Fixtures: the test host (tests/testhost/up.sh) and a playbook runner (ansible-runner).

The session fixture brings the host up (sshd on 127.0.0.1, docker engine, container like
production), printing up.sh's progress lines as they come, and publishes this checkout's
reference/ as a new commit on the container's remote. One SSH login is timed at the start and at
the end: longer than a few seconds fails the session, naming the cause. At the end of the session it tears the
host down (tests/testhost/down.sh) and removes the session's results folder, unless
WANBENCH_KEEP_TESTHOST=1. Outside CI a host that cannot be brought up skips these tests;
with CI=true it fails.
"""

import os
import shutil
import subprocess
import sys
import time

import ansible_runner
import pytest

from .testhost_lib import REPO, RESULTS_ROOT, existing_runs, finish, sh, slow_login


def _up_with_progress(timeout=1800):
    """Run up.sh, echoing its [testhost] lines to the terminal (past pytest's capture)."""
    proc = subprocess.Popen(["bash", "tests/testhost/up.sh"], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines = []
    started = time.monotonic()
    for line in proc.stdout:
        lines.append(line)
        sys.__stderr__.write(f"\n{line.rstrip()} ({time.monotonic() - started:.0f} s)")
        sys.__stderr__.flush()
    rc = proc.wait(timeout=timeout)
    if rc != 0:
        raise subprocess.CalledProcessError(rc, "tests/testhost/up.sh", output="".join(lines), stderr="")


@pytest.fixture(scope="session")
def testhost():
    """Bring the test host up (idempotent) and publish reference/ on branch perf; returns the new SHA."""
    keep = os.environ.get("WANBENCH_KEEP_TESTHOST") == "1"
    try:
        _up_with_progress()
        sha = sh("bash", "tests/testhost/push_perf.sh", "wanbench integration tests").stdout.strip().splitlines()[-1]
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        detail = (getattr(exc, "stdout", "") or "") + (getattr(exc, "stderr", "") or "")
        message = f"the test host could not be brought up: {exc}\n{detail[-2000:]}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    # Measured once, so that a slow login fails the session at once with its cause instead of
    # every play waiting; measured again at the end: no test may leave logins slower.
    slow = slow_login("at the session's start")
    if slow:
        pytest.fail(slow)
    yield sha
    slow = slow_login("at the session's end, after the tests")
    if not keep:
        sh("bash", "tests/testhost/down.sh", check=False)
        shutil.rmtree(RESULTS_ROOT, ignore_errors=True)
    if slow:
        pytest.fail(slow)


def run_playbook(pdd, extravars=None, playbook="bench.yml", inventory="testhost", event_handler=None, wait=True,
                 cmdline=None):
    """Run a playbook with a fresh private data dir; returns a Result (or thread, runner, before, started)."""
    before = existing_runs()
    started = time.monotonic()
    kwargs = dict(
        private_data_dir=str(pdd), project_dir=str(REPO), playbook=str(REPO / playbook),
        inventory=str(REPO / "inventory" / inventory),
        extravars={"wanbench_results_dir": str(RESULTS_ROOT), **(extravars or {})},
        # ansible-runner's own callback folder takes the place of ansible.cfg's callback_plugins unless named
        # here (runner appends its folder): the bisect's cancel guard lives in callback_plugins/
        envvars={"ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "PATH": os.environ["PATH"], "ANSIBLE_FORCE_COLOR": "0",
                 "ANSIBLE_CALLBACK_PLUGINS": str(REPO / "callback_plugins")},
        quiet=True, event_handler=event_handler, timeout=1800, cmdline=cmdline)
    if not wait:
        thread, runner = ansible_runner.run_async(**kwargs)
        return thread, runner, before, started
    return finish(ansible_runner.run(**kwargs), before, started)


@pytest.fixture
def playbook(tmp_path_factory):
    """playbook(extravars=..., playbook='bench.yml', inventory='testhost', event_handler=None, wait=True, cmdline=None)."""
    return lambda **kw: run_playbook(tmp_path_factory.mktemp("runner"), **kw)


@pytest.fixture(scope="module")
def e2e(testhost, tmp_path_factory):
    """One bench.yml play on the test host: a warm-up round, then one block of a fresh control baseline and ffn_only."""
    result = run_playbook(tmp_path_factory.mktemp("e2e"),
                          extravars={"variant": "ffn_only", "baseline": "rerun", "repeats": "1"})
    return result, testhost


class FakeWorkload:
    """tests/testhost/fake_torchrun copied into the container; set(name=value) writes its control files."""

    CONTROLS = ("sleep-seconds", "hold", "fail-variants", "ranks", "fill-disk", "links", "fifo", "ranks-elsewhere")

    def __init__(self):
        from .testhost_lib import CONTAINER, FAKE_DIR, docker

        self._docker, self._container, self.dir = docker, CONTAINER, FAKE_DIR
        self.torchrun = f"{FAKE_DIR}/torchrun"
        docker("exec", CONTAINER, "mkdir", "-p", FAKE_DIR)
        docker("cp", str(REPO / "tests" / "testhost" / "fake_torchrun"), f"{CONTAINER}:{self.torchrun}")
        self.clear()

    def set(self, **controls):
        for name, value in controls.items():
            self._docker("exec", self._container, "sh", "-c", 'printf "%s\\n" "$2" > "$1"', "sh",
                         f"{self.dir}/{name.replace('_', '-')}", str(value))

    def release(self):
        """End a held run (set(hold=1)) now."""
        self._docker("exec", self._container, "rm", "-f", f"{self.dir}/hold")

    def clear(self):
        self._docker("exec", self._container, "rm", "-f", *[f"{self.dir}/{c}" for c in self.CONTROLS])


@pytest.fixture
def fake(testhost):
    """The zero-work fake workload in the container (control files cleared before and after)."""
    workload = FakeWorkload()
    yield workload
    workload.clear()
