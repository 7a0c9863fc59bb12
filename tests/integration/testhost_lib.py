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
