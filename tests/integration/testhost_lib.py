"""Helpers for the integration tests: paths, docker/sh wrappers, ansible-runner results."""

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
STATE = REPO / "build" / "testhost"
BIN = Path(sys.executable).parent
CONTAINER = "mindie-wan2.1-xysheng"
CONTAINER_REPO = "/root/xysheng/Wan2.1"
# The session's results live in a temporary folder (never the checkout's results/); the
# session fixture removes it at the end unless WANBENCH_KEEP_TESTHOST=1.
RESULTS_ROOT = Path(tempfile.mkdtemp(prefix="wanbench-it-results-"))
RESULTS = RESULTS_ROOT / "testhost"
os.environ["PATH"] = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"  # ansible-playbook of this venv


def sh(*argv, check=True, timeout=120, **kw):
    return subprocess.run(list(argv), cwd=REPO, capture_output=True, text=True, check=check, timeout=timeout, **kw)


def docker(*argv, check=True):
    return sh("docker", *argv, check=check)


@dataclass
class Result:
    rc: int
    status: str
    events: list
    stdout: str
    seconds: float
    runs_before: set = field(default_factory=set)

    def task_results(self, task):
        """Results of a task that went ok (one per loop item for loops)."""
        return [e["event_data"].get("res", {}) for e in self.events
                if e.get("event") in ("runner_on_ok", "runner_item_on_ok") and e["event_data"].get("task") == task
                and not (e.get("event") == "runner_on_ok" and "results" in e["event_data"].get("res", {}))]

    def failures(self):
        return [e["event_data"].get("res", {}).get("msg", "") for e in self.events
                if e.get("event") in ("runner_on_failed", "runner_on_unreachable")
                and not e["event_data"].get("ignore_errors")]

    def new_runs(self):
        return sorted(p for p in RESULTS.iterdir() if p.is_dir() and p.name != "reports"
                      and p.name not in self.runs_before) if RESULTS.is_dir() else []


def existing_runs():
    return {p.name for p in RESULTS.iterdir()} if RESULTS.is_dir() else set()


def finish(runner, before, started):
    stdout = runner.stdout.read()
    return Result(rc=runner.rc, status=runner.status, events=list(runner.events), stdout=stdout,
                  seconds=time.monotonic() - started, runs_before=before)


def manifest(run_dir):
    return json.loads((run_dir / "manifest.json").read_text())


# ------------------------------------------------------------------ logins
USER = "wanbench-testhost"  # ansible_user of inventory/testhost (shell /bin/sh: no rc file runs at login)
LOGIN_LIMIT_S = 5.0         # a login here takes well under a second; more means something in its path waits


def login_seconds():
    """Seconds one SSH login to the test host takes (`true` as inventory/testhost's user)."""
    port = os.environ.get("WANBENCH_TESTHOST_PORT", "2222")
    started = time.monotonic()
    sh("ssh", "-q", "-p", port, "-i", str(STATE / "id_ed25519"), "-o", "BatchMode=yes", "-o", "ControlMaster=no",
       "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", f"{USER}@127.0.0.1", "true",
       timeout=120)
    return time.monotonic() - started


def slow_login(when):
    """One line naming the cause when a login takes longer than LOGIN_LIMIT_S, else ""."""
    try:
        seconds = login_seconds()
    except subprocess.TimeoutExpired:
        seconds = float("inf")
    except subprocess.CalledProcessError as exc:
        return f"{when}: ssh {USER}@127.0.0.1 failed (rc {exc.returncode}): {exc.stderr.strip()[-500:]}"
    if seconds <= LOGIN_LIMIT_S:
        return ""
    return (f"{when}: one SSH login to the test host ({USER}@127.0.0.1, `true`) took {seconds:.1f} s "
            f"(limit {LOGIN_LIMIT_S:.0f} s): something in the login path waits (the user's shell start-up, "
            f"sshd's DNS look-ups, a loaded machine); every connection of every play would wait as long")


# ------------------------------------------------------------------ faults: SSH, sshd, container processes
RUN_ROOT = "/root/wanbench/runs"  # wanbench_run_root of inventory/testhost
FAKE_DIR = "/opt/wanbench-fake"   # the fake workload's copy in the container (tests/testhost/fake_torchrun)


def sshd_children():
    """PIDs of the test sshd's session processes (children of its master)."""
    master = int((STATE / "sshd.pid").read_text())
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == master:
            children.append(int(stat.parent.name))
    return children


def ssh_session_pids():
    """PIDs of the sshd processes serving a connection to the test port: the master's children, and
    sessions whose master is gone (an earlier sshd of this port whose connection the controller's
    ControlPersist keeps reusing)."""
    import re as _re

    port = os.environ.get("WANBENCH_TESTHOST_PORT", "2222")
    out = sh("ss", "-Htnp", "state", "established", "sport", "=", f":{port}", check=False).stdout
    return sorted(set(sshd_children()) | {int(p) for p in _re.findall(r'"sshd[^"]*",pid=(\d+)', out)})


def kill_ssh_sessions():
    """SIGKILL every SSH session of the test sshd (the controller's connections drop); how many."""
    import signal

    killed = 0
    for pid in ssh_session_pids():
        try:
            os.kill(pid, signal.SIGKILL)
            killed += 1
        except ProcessLookupError:
            pass
    return killed


def restart_sshd(down_s=3):
    """Stop the test sshd (master and sessions), wait down_s, start it again with its config."""
    import signal

    kill_ssh_sessions()
    master = int((STATE / "sshd.pid").read_text())
    os.kill(master, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while Path(f"/proc/{master}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(down_s)
    sh("/usr/sbin/sshd", "-f", str(STATE / "sshd_config"), "-E", str(STATE / "sshd.log"))

    def pid():
        try:
            return int((STATE / "sshd.pid").read_text().strip() or 0)
        except (OSError, ValueError):
            return 0

    while pid() in (0, master) and time.monotonic() < deadline + down_s + 10:
        time.sleep(0.1)
    assert pid() not in (0, master), "sshd did not come back"


def container_runs():
    """Run directories in the container's run root."""
    return set(docker("exec", CONTAINER, "sh", "-c", f"ls {RUN_ROOT} 2>/dev/null", check=False).stdout.split())


def live_runs(names=None):
    """Runs of the container's run root that started (.pid) and have not written exit_code."""
    script = (f'cd {RUN_ROOT} 2>/dev/null || exit 0; for d in */; do d=${{d%/}}; '
              '[ -f "$d/.pid" ] && [ ! -f "$d/exit_code" ] && echo "$d"; done; exit 0')
    found = docker("exec", CONTAINER, "sh", "-c", script, check=False).stdout.split()
    return [d for d in found if names is None or d in names]


def container_processes():
    """Processes in the container other than its init, its `sleep infinity` and this look: [(pid, args)]."""
    out = docker("exec", CONTAINER, "ps", "-eo", "pid=,ppid=,args=").stdout
    procs = []
    for line in out.splitlines():
        pid, ppid, args = (line.split(None, 2) + ["", ""])[:3]
        if pid == "1" or args in ("sleep infinity", "ps -eo pid=,ppid=,args="):
            continue
        procs.append((int(pid), args))
    return procs
