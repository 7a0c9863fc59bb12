"""playbooks/bisect.yml on the test host: a throwaway repository of the reference workload with eight
commits after the good one, the fifth of which makes every denoise step sleep 1 s (WAN_REF_STEP_DELAY_MS's
default: about +100 % request_total on the tiny preset, whose steps take about 1 s on the shared 2-core
machine). Shortened on purpose: no warm-up, at most 4 runs a side a step, a 60 % threshold (the alarm's rule
too: half the regression), so that the steps decide in 2 or 3 blocks even while other work loads the machine.
"""

import math
import os
import re
import signal
import subprocess
import time

import pytest

from wanbench import bisect, history, index

from .testhost_lib import CONTAINER, REPO, docker, finish, sh

THROWAWAY = "/root/bisect-repo"
COMMITS, CULPRIT, DELAY_MS = 8, 5, 1000
RUN_ROOT = "/root/wanbench/runs"


def git(*argv):
    return docker("exec", CONTAINER, "git", "-C", THROWAWAY, *argv).stdout.strip()


@pytest.fixture(scope="module")
def repo(testhost, tmp_path_factory):
    """The throwaway repository in the container: {commits (oldest first, good first), head, results}."""
    work = tmp_path_factory.mktemp("bisect-repo")
    run = lambda *a: sh("git", "-C", str(work), "-c", "user.name=t", "-c", "user.email=t@localhost", *a)  # noqa: E731
    sh("git", "init", "-q", "-b", "perf", str(work))
    sh("sh", "-c", f"tar -C {REPO / 'reference'} --exclude=__pycache__ -c . | tar -C {work} -x")
    run("add", "-A")
    run("commit", "-q", "-m", "good: the reference workload")
    switches = work / "wan_ref" / "switches.py"
    for i in range(1, COMMITS + 1):
        with open(work / "CHANGES.txt", "a") as fh:
            fh.write(f"change {i}\n")
        subject = f"change {i}"
        if i == CULPRIT:
            text = switches.read_text()
            assert "\nSTEP_DELAY_MS_DEFAULT = 0.0\n" in text
            switches.write_text(text.replace("\nSTEP_DELAY_MS_DEFAULT = 0.0\n", f"\nSTEP_DELAY_MS_DEFAULT = {DELAY_MS}\n"))
            subject += ": every denoise step sleeps"
        run("add", "-A")
        run("commit", "-q", "-m", subject)
    shas = run("log", "--reverse", "--format=%H").stdout.split()
    docker("exec", CONTAINER, "rm", "-rf", THROWAWAY)
    docker("cp", str(work), f"{CONTAINER}:{THROWAWAY}")
    docker("exec", CONTAINER, "git", "config", "--global", "--add", "safe.directory", THROWAWAY)
    assert git("status", "--porcelain") == "" and git("rev-parse", "HEAD") == shas[-1]
    yield {"commits": shas, "head": shas[-1], "results": tmp_path_factory.mktemp("bisect-results")}
    docker("exec", CONTAINER, "rm", "-rf", THROWAWAY, check=False)


def play_vars(repo, **kw):
    # the development machine is shared: the CPU-busy check would make every step invalid (undecided)
    return {"variant": "baseline", "wanbench_repo_dir": THROWAWAY, "wanbench_results_dir": str(repo["results"]),
            "max_runs": "4", "wanbench_warmup_runs": "0", "wanbench_health_busy_cpu_pct": "400", **kw}


def assert_restored(repo):
    assert git("symbolic-ref", "--short", "HEAD") == "perf" and git("rev-parse", "HEAD") == repo["head"]
    assert git("status", "--porcelain") == ""


def test_bisect_names_the_culprit_within_the_step_budget_and_restores_the_branch(repo, playbook):
    good, bad, culprit = repo["commits"][0], repo["commits"][-1], repo["commits"][CULPRIT]
    result = playbook(playbook="playbooks/bisect.yml",
                      extravars=play_vars(repo, good=good, bad=bad, wanbench_threshold_pct="60"))
    print(result.stdout[-6000:])
    assert result.rc == 0, result.stdout[-5000:]
    assert f"first bad commit: {culprit} change {CULPRIT}: every denoise step sleeps: request_total +" in result.stdout
    record = bisect.load_record(bisect.record_path(repo["results"], "testhost", "baseline", good, bad))
    assert record["culprit"]["sha"] == culprit and record["outcome"] == "culprit"
    assert 1 <= len(record["measured"]) <= math.ceil(math.log2(COMMITS)) + 1
    assert all(e["state"] == ("bad" if e["sha"] in repo["commits"][CULPRIT:] else "good")
               for e in record["measured"].values())
    assert record["culprit"]["ci_pct"][0] > 0 and record["culprit"]["n"]["candidate"] >= 2
    for i, c in enumerate(repo["commits"][1:], start=1):  # every subject of the range is printed
        assert re.search(rf"{c[:12]} change {i}\b", result.stdout)
    assert_restored(repo)


def test_the_same_from_an_alarm_id_resumes_from_the_record(repo, playbook):
    """An alarm over the same range (nights at good, then nights 120 % slower at bad): bisect.yml -e alarm=ID
    takes range, variant, host and threshold (half the change) from it and reuses the measured steps."""
    from test_history import make_run

    good, bad = repo["commits"][0], repo["commits"][-1]
    results = repo["results"]
    for night in range(1, 11):
        for i in range(3):
            # the same spread every night: the change is exactly +120 %, the threshold exactly 60 %
            ms = (996.0, 1000.0, 1004.0)[i] * (2.2 if night >= 7 else 1.0)
            make_run(results, "testhost", f"n{night:02d}-r{i}", night, good if night < 7 else bad, ms)
    index.build(str(results))
    alarm, = [a for a in history.alarms(history.load(str(results), metrics=("request_total",)))
              if a["commits"] == [good, bad]]
    assert round(alarm["change_pct"] / 2, 2) == 60.0  # the first bisect's threshold: its steps are reused
    before = {p.name for p in (results / "testhost").iterdir()}
    extravars = play_vars(repo, alarm=bisect.alarm_id(alarm))
    del extravars["variant"]  # the alarm names it
    result = playbook(playbook="playbooks/bisect.yml", extravars=extravars)
    assert result.rc == 0, result.stdout[-5000:]
    assert f"first bad commit: {repo['commits'][CULPRIT]} change {CULPRIT}" in result.stdout
    assert {p.name for p in (results / "testhost").iterdir()} == before, "resumed: no new runs"
    assert_restored(repo)
    text = sh(str(REPO / ".venv" / "bin" / "python"), "-m", "wanbench.cli", "history", str(results),
              "--metric", "request_total", check=False).stdout
    assert f"culprit {repo['commits'][CULPRIT][:12]} change {CULPRIT}" in text, text


def test_a_cancelled_bisect_leaves_the_repository_on_its_branch(repo, playbook):
    """SIGINT to ansible-playbook while a step's run runs: the run is waited out, the play stops and
    puts the checkout back on its branch."""
    good, bad = repo["commits"][1], repo["commits"][-1]  # another range: nothing to resume
    thread, runner, before, started = playbook(
        playbook="playbooks/bisect.yml", wait=False,
        extravars=play_vars(repo, good=good, bad=bad, wanbench_threshold_pct="60"))
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and thread.is_alive():
        detached = docker("exec", CONTAINER, "git", "-C", THROWAWAY, "symbolic-ref", "-q", "HEAD",
                          check=False).returncode != 0
        if detached:
            break
        time.sleep(0.5)
    assert detached, "the bisect never checked a commit out"
    holder = docker("exec", CONTAINER, "cat", f"{RUN_ROOT}/.holder").stdout
    pid = int(re.search(r'"pid":\s*(\d+)', holder).group(1))
    os.kill(pid, signal.SIGINT)  # the controller's Ctrl-C
    thread.join(timeout=300)
    result = finish(runner, before, started)
    assert not thread.is_alive() and result.rc != 0
    assert "interrupted before" in result.stdout, result.stdout[-5000:]  # the play's stop, not Ansible's
    assert_restored(repo)
