"""Faults against the SSH + Docker test host, each with its expected outcome asserted.

What happens when ... (README, docs/faults.md): the SSH connection is killed mid-run (ten
times), sshd restarts mid-run, one rank is killed, a run outlives its timeout, two benches
start at once, a bench is cancelled, a play dies and its runs are collected later. The fake
workload (tests/testhost/fake_torchrun) stands in where the workload itself is not the point;
the rank and timeout cases run the real reference workload under the real torchrun. Killing
SSH once mid-run with the real workload: tests/integration/test_bench.py::test_ssh_loss_mid_run_is_survived.
"""

import json
import os
import re
import signal
import threading
import time


from .testhost_lib import (CONTAINER, RESULTS, RUN_ROOT, container_processes, container_runs, docker, finish,
                           kill_ssh_sessions, live_runs, manifest, restart_sshd)

ONE_FAKE_RUN = {"baseline": "skip", "repeats": "1", "wanbench_warmup_runs": "0"}


def fake_play(fake, **extravars):
    return {**ONE_FAKE_RUN, "wanbench_torchrun": fake.torchrun, **extravars}


def wait_live(thread, before, pattern="", timeout=300):
    """The first new run of the container that has started and not ended (its log begun)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and thread.is_alive():
        for run in live_runs():
            if run not in before and pattern in run and "Generating video" in log_of(run):
                return run
        time.sleep(0.2)
    why = "the play ended before" if not thread.is_alive() else f"within {timeout} s no"
    raise AssertionError(f"{why} run{' ' + pattern if pattern else ''} started (held: {holder()})")


def log_of(run):
    return docker("exec", CONTAINER, "cat", f"{RUN_ROOT}/{run}/run.log", check=False).stdout


def holder():
    out = docker("exec", CONTAINER, "cat", f"{RUN_ROOT}/.holder", check=False)
    return json.loads(out.stdout) if out.returncode == 0 else None


def messages(result, task):
    return "\n".join(str(r.get("msg", "")) for r in result.task_results(task))


def flat(text):
    return re.sub(r"\s+", " ", text)


# ------------------------------------------------------------------ SSH and sshd
def test_ssh_connection_killed_mid_run_ten_times(fake, playbook):
    """One play of 10 short runs; every SSH session is killed while each run runs: 10/10 complete
    and are collected, the play succeeds."""
    fake.set(sleep_seconds=3)
    before = container_runs()
    thread, runner, runs_before, started = playbook(extravars=fake_play(fake, variant="ffn_only", repeats="10"),
                                                    wait=False)
    hit = {}
    while thread.is_alive():
        for run in live_runs():
            if run not in before and run not in hit and "Generating video" in log_of(run):
                killed = kill_ssh_sessions()
                if killed:
                    hit[run] = killed
        time.sleep(0.1)
    result = finish(runner, runs_before, started)
    runs = result.new_runs()
    print(f"SSH killed mid-run in {len(hit)} of {len(runs)} runs; play {result.seconds:.0f} s")
    assert result.rc == 0, result.stdout[-5000:]
    assert len(runs) == 10 and all((r / "exit_code").read_text() == "0\n" for r in runs), runs
    assert set(hit) == {r.name for r in runs}, f"SSH was killed mid-run in {sorted(hit)} only"


def test_sshd_restarted_mid_run(fake, playbook):
    """sshd stops (master and sessions) for 5 s while the run runs and comes back: the wait
    reconnects, the run is collected, the play succeeds."""
    fake.set(hold=1)  # the run goes on until sshd is back
    before = container_runs()
    thread, runner, runs_before, started = playbook(extravars=fake_play(fake, variant="ffn_only"), wait=False)
    run = wait_live(thread, before)
    restart_sshd(down_s=5)
    assert run in live_runs(), "the run ended before sshd came back: not a mid-run restart"
    fake.release()
    thread.join(timeout=600)
    result = finish(runner, runs_before, started)
    assert result.rc == 0, result.stdout[-5000:]
    (collected,) = result.new_runs()
    assert collected.name == run and (collected / "exit_code").read_text() == "0\n"


# ------------------------------------------------------------------ the workload itself
def rank_pid(run, rank):
    """PID of the real workload's rank `rank` of run (its argv names the run directory)."""
    script = ('for p in /proc/[0-9]*; do tr "\\0" " " < $p/cmdline 2>/dev/null | grep -q -- "$1" || continue; '
              'tr "\\0" "\\n" < $p/environ 2>/dev/null | grep -qx "RANK=$2" && echo ${p#/proc/}; done; exit 0')
    out = docker("exec", CONTAINER, "sh", "-c", script, "sh", f"{RUN_ROOT}/{run}/", str(rank)).stdout.split()
    return int(out[0]) if out else None


def test_one_rank_killed(testhost, playbook):
    """kill -9 of rank 2 of the real workload mid-run: the report blames rank 2 (torchrun's Root
    Cause, not a survivor's gloo error), the run is failed with no % change, the play goes on."""
    before = container_runs()
    thread, runner, runs_before, started = playbook(
        extravars={"variant": "ffn_only", "baseline": "rerun", "repeats": "1", "wanbench_warmup_runs": "0"},
        wait=False)
    run = wait_live(thread, before, "-ffn_only-")
    deadline = time.monotonic() + 120
    while (pid := rank_pid(run, 2)) is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert pid, f"rank 2 of {run} not found"
    docker("exec", CONTAINER, "kill", "-9", str(pid))
    thread.join(timeout=900)
    result = finish(runner, runs_before, started)
    assert result.rc != 0, "a failed run fails the play at its end"
    runs = {re.sub(r"^\d{8}T\d{6}Z-(.*)-[0-9a-f]{6}$", r"\1", p.name): p for p in result.new_runs()}
    assert sorted(runs) == ["baseline", "ffn_only"], "the play did not go on with the other run"
    assert (runs["baseline"] / "exit_code").read_text() == "0\n"
    assert (runs["ffn_only"] / "exit_code").read_text() != "0\n"
    report = messages(result, "Print the report")
    assert re.search(r"rank 2\b.*(SIGKILL|signal 9|exitcode -9)", flat(report)), report
    change = report.split("## Change vs baseline", 1)[1].split("##", 1)[0]
    (row,) = [line for line in change.splitlines() if line.startswith("| ffn_only")]
    assert "%" not in row and re.search(r"\|\s+n/a\s+\|", row), f"a failed run has no % change: {row}"
    assert "Fail when a run did not finish cleanly" in result.stdout


def test_run_past_its_timeout(testhost, playbook):
    """The real workload with a 6 s timeout: the wait stops it; afterwards no process of it is
    left in the container (ranks included, the devices idle), and the cause says timeout."""
    result = playbook(extravars={"variant": "baseline", **ONE_FAKE_RUN, "wanbench_job_timeout": "6"})
    deadline = time.monotonic() + 2  # a moment (at most 2 s) for torchrun to take its ranks down
    while (left := container_processes()) and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid, _ in left:  # whatever is left would hold the run lock for every later test
        docker("exec", CONTAINER, "kill", "-9", str(pid), check=False)
    assert result.rc != 0
    assert "still running after" in result.stdout and "(timeout 6 s); its process group was stopped" in result.stdout
    (run,) = result.new_runs()
    assert not (run / "exit_code").exists() or (run / "exit_code").read_text() != "0\n"
    assert left == [], f"processes left in the container after the timeout: {left}"


# ------------------------------------------------------------------ the host lock
def test_two_benches_at_once(fake, playbook):
    """The second bench fails at preflight within seconds naming the first; no verdict of it, no
    run of it in the run root or in results/; the first completes."""
    fake.set(hold=1)  # the first bench's run goes on until the second has been refused
    before = container_runs()
    thread, runner, runs_before, started = playbook(extravars=fake_play(fake, variant="ffn_only"), wait=False)
    wait_live(thread, before)
    first = holder()
    second = playbook(extravars=fake_play(fake, variant="nofsdp"))
    fake.release()
    thread.join(timeout=600)
    result = finish(runner, runs_before, started)
    msgs = flat(" ".join(second.failures()))
    assert second.rc != 0 and second.seconds < 30, (second.seconds, second.stdout[-3000:])
    assert (f"the host is locked by play {first['play_id']} (variant ffn_only, {first['controller']}, "
            f"pid {first['pid']}, since {first['started_at']}); a run of it is still running") in msgs, msgs
    assert not second.task_results("Print the verdicts") and "FAIL" not in second.stdout.replace("FAILED!", "")
    assert not [r for r in container_runs() - before if "-nofsdp-" in r]
    assert result.rc == 0, result.stdout[-3000:]
    assert [p.name.split("-")[1] for p in result.new_runs()] == ["ffn_only"]
    # results/ is the session's: runs of earlier tests stay; none of the second bench may arrive
    assert not [p for p in second.new_runs() if "-nofsdp-" in p.name]


# ------------------------------------------------------------------ cancel, collect later
def test_cancel_a_bench(fake, playbook):
    """cancel.yml mid-run: the bench play is stopped, the run's whole process tree (4 ranks in
    sessions of their own) is killed, the run is marked cancelled, collected and reported as
    cancelled (never judged), and the host lock is released."""
    fake.set(sleep_seconds=300, ranks=4)
    before = container_runs()
    thread, runner, runs_before, started = playbook(extravars=fake_play(fake, variant="ffn_only"), wait=False)
    run = wait_live(thread, before)
    while len(container_processes()) < 4 + 3:  # run.sh, time, the fake and its 4 ranks
        time.sleep(0.2)
    cancel = playbook(playbook="playbooks/cancel.yml")
    thread.join(timeout=60)
    bench = finish(runner, runs_before, started)
    assert cancel.rc == 0, cancel.stdout[-5000:]
    assert not thread.is_alive() and bench.rc != 0, "the bench play was not stopped"
    assert container_processes() == []
    summary = messages(cancel, "Show what was cancelled")
    assert re.match(rf"cancelled {run} \(\d+ processes killed\); bench play \S+ stopped; host lock released", summary), summary
    assert holder() is None
    assert docker("exec", CONTAINER, "test", "-f", f"{RUN_ROOT}/{run}/cancelled", check=False).returncode == 0
    assert (RESULTS / run / "cancelled").is_file() and not (RESULTS / run / "exit_code").exists()
    verdicts = messages(cancel, "Print the verdicts")
    assert "ffn_only: 1 run(s) CANCELLED, not judged" in verdicts and "FAIL" not in verdicts, verdicts
    assert "| cancelled |" in messages(cancel, "Print the report")
    print(f"cancel.yml: {cancel.seconds:.1f} s")


def test_collect_a_run_whose_play_died(fake, playbook):
    """Ctrl-C of the bench play mid-run: the run goes on; the next preflight names it as not
    collected; collect.yml waits for it, collects and reports it."""
    fake.set(hold=1)  # the run goes on until collect.yml waits for it (fake.release below)
    before = container_runs()
    thread, runner, runs_before, started = playbook(extravars=fake_play(fake, variant="ffn_only"), wait=False)
    run = wait_live(thread, before)
    os.kill(holder()["pid"], signal.SIGINT)  # the controller's Ctrl-C
    interrupted = time.monotonic()
    thread.join(timeout=60)
    assert not thread.is_alive() and finish(runner, runs_before, started).rc != 0
    took = time.monotonic() - interrupted
    assert run in live_runs(), (f"the run should outlive its play (stopped {took:.0f} s after Ctrl-C): "
                                f"{docker('exec', CONTAINER, 'cat', f'{RUN_ROOT}/{run}/exit_code', check=False).stdout}")
    nxt = playbook(extravars=fake_play(fake, variant="nofsdp"), cmdline="--tags preflight")
    # the run root may hold runs of other plays (the play benchmark's): this one is named, and it alone runs
    named = re.search(rf"(\d+) run\(s\) in {RUN_ROOT} not collected: ([^;]*?) \(1 still running\)", flat(nxt.stdout))
    assert named and (run in named.group(2) or "more" in named.group(2)), nxt.stdout[-3000:]
    waiting = threading.Event()

    def on_event(event):
        if event.get("event") == "runner_on_start" and event.get("event_data", {}).get("task") == "Wait for the run":
            waiting.set()
        return True

    thread, runner, runs_before, started = playbook(playbook="playbooks/collect.yml", event_handler=on_event, wait=False)
    assert waiting.wait(timeout=300) and run in live_runs(), "collect.yml did not start waiting for the live run"
    fake.release()
    thread.join(timeout=300)
    later = finish(runner, runs_before, started)
    assert later.rc == 0, later.stdout[-5000:]
    assert (RESULTS / run / "exit_code").read_text() == "0\n" and manifest(RESULTS / run)["exit_code"] == 0
    assert f"{run}: finished with exit code 0" in later.stdout, "collect.yml did not wait for the live run"
    assert "| ffn_only" in messages(later, "Print the report")
    again = playbook(playbook="playbooks/collect.yml")
    assert again.rc == 0 and "no run to collect" in messages(again, "Show the runs to collect")


# ------------------------------------------------------------------ the disk
TINY = "/root/wanbench/tiny"  # a 16 MiB tmpfs in the test container (tests/testhost/up.sh)


def test_disk_full_during_the_run(fake, playbook):
    """The run root is a 16 MiB tmpfs that the workload fills: the play fails with one clear line
    naming the full disk, and nothing half-written lands in results/ as a result."""
    fake.set(fill_disk=1)
    docker("exec", CONTAINER, "sh", "-c", f"rm -rf {TINY}/* {TINY}/.holder {TINY}/.lock")
    result = playbook(extravars=fake_play(fake, variant="ffn_only", wanbench_run_root=TINY, wanbench_min_free_gb="0"))
    docker("exec", CONTAINER, "sh", "-c", f"rm -rf {TINY}/* {TINY}/.holder {TINY}/.lock")
    assert result.rc != 0
    assert not [p for p in RESULTS.rglob("*.tmp")], "half-written files in results/"
    assert not result.task_results("Print the verdicts") or "ffn_only: PASS" not in result.stdout
    assert re.search(r"(no space left|disk is full|file system is full)[^\n]*" + re.escape(TINY), result.stdout, re.I), \
        result.stdout[-4000:]


# ------------------------------------------------------------------ what a run leaves in its directory
def test_links_in_a_run_directory_are_recorded_and_the_run_collected(fake, playbook):
    """The workload leaves latest.npy -> output.npy and host-tmp -> /tmp in the run directory: the run
    is collected over SSH from the container with both links in links.json, and the play succeeds
    (on main: nothing of the run reached results/, and the play exited 0)."""
    fake.set(links=1)
    result = playbook(extravars=fake_play(fake, variant="ffn_only"))
    (run,) = result.new_runs()
    assert result.rc == 0, result.stdout[-5000:]
    assert json.loads((run / "links.json").read_text()) == {"host-tmp": "/tmp", "latest.npy": "output.npy"}
    assert (run / "exit_code").read_text() == "0\n" and not (run / "host-tmp").exists()


def test_ranks_that_write_elsewhere_do_not_outlive_a_timeout(fake, playbook):
    """Two ranks of the fake that write to /dev/null and are orphaned at once (found neither by the log
    nor by their parent) end with the run at a 1 s timeout (on main both survived in the container)."""
    fake.set(sleep_seconds=120, ranks=2, ranks_elsewhere=3003)
    result = playbook(extravars=fake_play(fake, variant="ffn_only", wanbench_job_timeout="1"))
    assert result.rc != 0 and "timeout 1 s" in result.stdout, result.stdout[-4000:]
    assert [args for _, args in container_processes() if "sleep" in args] == []
