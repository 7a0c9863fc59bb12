"""Shared pytest fixtures."""

import os
import subprocess
import sys
import time
from pathlib import Path

import ansible.module_utils
import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
SAMPLES = FIXTURES / "samples"

# The modules in library/ import ansible.module_utils.wanbench_lines, which Ansible ships with them
# from module_utils/ (ansible.cfg); tests that load a module file directly find it there too.
ansible.module_utils.__path__.append(str(REPO / "module_utils"))


@pytest.fixture(scope="session")
def samples():
    """The project's own sample outputs of the workload (tests/fixtures/samples, made by make_fixtures.py)."""
    return SAMPLES


@pytest.fixture(scope="session")
def fixtures():
    """All of the project's fixtures: samples/, diag/ (slow-card, block, legacy, no memory), torchrun/."""
    return FIXTURES


@pytest.fixture
def small_fs(tmp_path):
    """A real small file system (a 1 MiB tmpfs, mounted as root) and fill(leave): take all but about
    ``leave`` bytes of it. Unmounted after the test."""
    mnt = tmp_path / "small_fs"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0755", "tmpfs", str(mnt)],
                          capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"a small tmpfs needs root (mount): {done.stderr.strip()}")

    def fill(leave=0):
        fd = os.open(mnt / ".filler", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        try:
            while True:
                st = os.statvfs(mnt)
                free = st.f_bavail * st.f_frsize - leave
                if free <= 0:
                    return
                os.write(fd, b"\0" * min(free, 1 << 16))
        except OSError:  # full
            return
        finally:
            os.close(fd)

    try:
        yield mnt, fill
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """In CI (CI=true) a skipped test is a failure: a skip would hide a missing fixture, tool or service
    behind a green run. Locally a skip stays a skip, with its reason."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and not hasattr(report, "wasxfail") and os.environ.get("CI", "").lower() == "true":
        reason = report.longrepr[-1] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, where every test must run: {reason}"


# ------------------------------------------------------------------ a good citizen: nothing left behind
# At the start of the session the suite notes the processes of this user that belong to this
# checkout or to the session's temporary folders (by command line or working directory), the
# docker containers, and what results/ and build/ hold; at the end it lists what is new. With
# CI=true anything new fails the session; locally it is a warning. WANBENCH_KEEP_TESTHOST=1 keeps
# the test host (tests/testhost/up.sh): its state under build/testhost, the processes started
# from it (sshd, dockerd and theirs) and its container.
WATCHED = ("results", "build")
TESTHOST_STATE = os.path.join("build", "testhost")
TESTHOST_CONTAINER = "mindie-wan2.1-xysheng"
LEFTOVER_GRACE_S = 5  # a process still ending (an ssh master losing its server) may take a moment
_CITIZEN = pytest.StashKey()  # (marks, what the session found at its start)


def _files():
    found = set()
    for top in WATCHED:
        if (REPO / top).exists():
            found.add(top)
        for folder, dirs, files in os.walk(REPO / top):
            rel = os.path.relpath(folder, REPO)
            found.update(os.path.join(rel, name) for name in dirs + files)
    return found


def _own_helpers():
    """Helper processes of this one that end with it: multiprocessing's resource tracker and fork server
    (torch.multiprocessing starts them in tests/test_reference.py)."""
    tracker = sys.modules.get("multiprocessing.resource_tracker")
    forkserver = sys.modules.get("multiprocessing.forkserver")
    return {os.getpid(), getattr(getattr(tracker, "_resource_tracker", None), "_pid", None),
            getattr(getattr(forkserver, "_forkserver", None), "_forkserver_pid", None)}


def _processes(marks):
    """{(pid, start time): (parent pid, command line)} of this user's processes that touch ``marks``."""
    found, own = {}, _own_helpers()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.stat(f"/proc/{pid}").st_uid != os.getuid() or int(pid) in own:
                continue
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                command = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            continue
        if command and any(m in command or (cwd + "/").startswith(m + "/") for m in marks):
            found[(int(pid), fields[19])] = (int(fields[1]), command)
    return found


def _containers():
    try:
        res = subprocess.run(["docker", "ps", "-a", "--format", "{{.Names}}"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return set()
    return set(res.stdout.split()) if res.returncode == 0 else set()


def _leftovers(before, marks, keep):
    """What the session left: one line each."""
    procs = {k: v for k, v in _processes(marks).items() if k not in before["processes"]}
    if keep:  # the test host's processes and their children
        kept = {pid for (pid, _), (_, cmd) in procs.items() if str(REPO / TESTHOST_STATE) in cmd}
        while True:
            more = {pid for (pid, _), (ppid, _) in procs.items() if ppid in kept} - kept
            if not more:
                break
            kept |= more
        procs = {k: v for k, v in procs.items() if k[0] not in kept}
    files = _files() - before["files"]
    if keep:
        files = {f for f in files if f != "build" and not (f + os.sep).startswith(TESTHOST_STATE + os.sep)}
    containers = _containers() - before["containers"] - ({TESTHOST_CONTAINER} if keep else set())
    return ([f"process {pid}: {cmd}" for (pid, _), (_, cmd) in sorted(procs.items())]
            + [f"container {name}" for name in sorted(containers)]
            + [f"file {name}" for name in sorted(files)])


def pytest_sessionstart(session):
    marks = (str(REPO), str(session.config._tmp_path_factory.getbasetemp()))
    session.config.stash[_CITIZEN] = (marks, {"processes": _processes(marks), "files": _files(),
                                              "containers": _containers()})


def pytest_sessionfinish(session):
    if _CITIZEN not in session.config.stash:
        return
    marks, before = session.config.stash[_CITIZEN]
    keep = os.environ.get("WANBENCH_KEEP_TESTHOST") == "1"
    deadline = time.monotonic() + LEFTOVER_GRACE_S
    left = _leftovers(before, marks, keep)
    while left and any(line.startswith("process ") for line in left) and time.monotonic() < deadline:
        time.sleep(1)
        left = _leftovers(before, marks, keep)
    if not left:
        return
    ci = os.environ.get("CI", "").lower() == "true"
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    write = reporter.write_line if reporter else (lambda line: print(line, file=sys.stderr))
    write(f"{'error' if ci else 'warning'}: the test session left behind what it did not find "
          f"(tests must use temporary folders and stop what they start):")
    for line in left:
        write(f"  {line}")
    if ci:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
