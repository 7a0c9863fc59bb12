"""Run directories: listing and cancelling real process trees (wanbench_runs' script), picking runs,
the preflight's line about uncollected runs, and a cancelled run in the parser and the report."""

import importlib.util
import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from wanbench import rundirs
from wanbench.parse import parse_run
from wanbench.report import build, summary

REPO = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("wanbench_runs_module", REPO / "library" / "wanbench_runs.py")
wanbench_runs = importlib.util.module_from_spec(spec)
spec.loader.exec_module(wanbench_runs)

RUN = "20261127T101500Z-ffn_only-a1b2c3"
OTHER = "20261127T102000Z-nofsdp-d4e5f6"


def script(root, action, *ids, note=None, release="", limit=10):
    out = subprocess.run(["bash", "-c", wanbench_runs.SCRIPT, "wanbench-runs", str(root), action, str(limit),
                          json.dumps(note or {}), release, *ids], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return wanbench_runs.parse_lines(out.stdout)


# The shape of a real run: the run script is a session leader (setsid), writes .pid, runs the
# workload with stdout/stderr in run.log; the workload starts ranks in sessions of their own
# (as torchrun does) and one of them outlives its parent (a rank orphaned when torchrun died).
RUN_SH = """#!/bin/bash
echo $$ > "$1/.pid"
{
  setsid sleep 300 &
  setsid sleep 301 &
  sh -c 'setsid sleep 302 & exit 0'
  sleep 303
} > "$1/run.log" 2>&1
echo 0 > "$1/exit_code"
"""


def start_run(root, name=RUN, play="20261127T101400Z-abcdef"):
    d = root / name
    d.mkdir(parents=True)
    (d / "run.sh").write_text(RUN_SH)
    # as the render step writes it (to_nice_json): indented, so the play id is not on the first line
    (d / "manifest.json").write_text(json.dumps({"play_id": play, "variant": "ffn_only", "schedule": {"play": play}},
                                                indent=4, sort_keys=True) + "\n")
    subprocess.Popen(["setsid", "-f", "bash", str(d / "run.sh"), str(d)], stdin=subprocess.DEVNULL,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while len(run_processes(d)) < 5 and time.monotonic() < deadline:
        time.sleep(0.1)
    return d


def run_processes(d):
    """This test's own processes of run d (by their run.log or the run script): [pid]."""
    found = []
    for p in Path("/proc").glob("[0-9]*"):
        try:
            state = (p / "stat").read_text().rsplit(")", 1)[1].split()[0]
            cmd = (p / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            out = os.path.realpath(p / "fd" / "1")
        except OSError:
            continue
        if state != "Z" and (out == str(d / "run.log") or str(d / "run.sh") in cmd):
            found.append(int(p.name))
    return found


@pytest.fixture
def cleanup(tmp_path):
    yield
    for pid in run_processes(tmp_path / RUN):  # whatever a failed test left behind
        os.kill(pid, 9)


def test_cancel_kills_the_whole_tree_and_marks_the_run(tmp_path, cleanup):
    d = start_run(tmp_path)
    procs = run_processes(d)
    assert len(procs) == 5, procs  # the script, 3 ranks in sessions of their own (one orphaned), sleep 303
    listed = wanbench_runs.listed(script(tmp_path, "list")["run"])
    assert listed == [{"name": RUN, "live": True, "exit_code": None, "ended": False, "cancelled": False,
                       "play": "20261127T101400Z-abcdef"}]
    got = script(tmp_path, "cancel", RUN, note={"by": "me@here", "cancelled_at": "2026-11-27T10:20:00Z"})
    assert got["cancelled"] == [f"{RUN} 5"]
    assert run_processes(d) == []
    assert not (d / "exit_code").exists()
    assert json.loads((d / "cancelled").read_text()) == {"by": "me@here", "cancelled_at": "2026-11-27T10:20:00Z"}
    (listed,) = wanbench_runs.listed(script(tmp_path, "list")["run"])
    assert not listed["live"] and listed["cancelled"]
    run = parse_run(d)
    assert (run["status"], run["reason"]) == ("cancelled", "cancelled at 2026-11-27T10:20:00Z by me@here")


def test_an_ended_run_is_left_as_it_is_and_the_lock_released(tmp_path):
    d = tmp_path / RUN
    d.mkdir()
    (d / ".pid").write_text("999999999\n")
    (d / "exit_code").write_text("0\n")
    (tmp_path / ".holder").write_text('{"play_id": "P1"}\n')
    got = script(tmp_path, "cancel", RUN, "nope", release="P1")
    assert got["ended"] == [RUN] and got["missing"] == ["nope"] and got["released"] == ["1"]
    assert not (d / "cancelled").exists() and not (tmp_path / ".holder").exists()


def test_select_picks_by_run_play_and_liveness():
    runs = [{"name": RUN, "live": True, "play": "P1"}, {"name": OTHER, "live": False, "play": "P2"}]
    assert rundirs.select(runs) == (runs, [])
    assert rundirs.select(runs, live_only=True) == ([runs[0]], [])
    assert rundirs.select(runs, play_ids=["P2"]) == ([runs[1]], [])
    assert rundirs.select(runs, holder={"play_id": "P1"}, holder_alive=True) == (
        [runs[1]], [(RUN, "play P1 is still running and collects it")])
    with pytest.raises(ValueError, match="no run 20261127T000000Z-x-000000 in the run root"):
        rundirs.select(runs, run_ids=["20261127T000000Z-x-000000"])
    with pytest.raises(ValueError, match="run_id 'x;rm -rf /' is not a run id"):
        rundirs.ids_arg("x;rm -rf /")


def test_leftover_warning_names_uncollected_runs(tmp_path):
    runs = [{"name": RUN, "live": False}, {"name": OTHER, "live": True}]
    (tmp_path / RUN).mkdir()
    assert rundirs.leftover_warning(runs, str(tmp_path), "/r") == (
        f"1 run(s) in /r not collected: {OTHER} (1 still running); collect and report them with "
        "`ansible-playbook playbooks/collect.yml`, or stop them with `ansible-playbook playbooks/cancel.yml`")
    (tmp_path / OTHER).mkdir()
    assert rundirs.leftover_warning(runs, str(tmp_path), "/r") == ""
    many = [{"name": f"r{i:02d}", "live": False} for i in range(12)]
    assert rundirs.leftover_warning(many, str(tmp_path / "none"), "/r").startswith(
        "12 run(s) in /r not collected: r00, r01, r02, r03, r04, r05, r06, r07, r08, r09 and 2 more;")


def write_run(root, name, variant, role, position, play="P1", exit_code=0, cancelled=False):
    d = root / name
    d.mkdir(parents=True)
    (d / "manifest.json").write_text(json.dumps({
        "variant": variant, "role": role, "control_key": "fsdp:profiled",
        "schedule": {"play": play, "position": position, "confidence": 0.9, "warmup": False}}))
    (d / "run.log").write_text("[2026-02-11 14:05:12] INFO: Generating video ...\n")
    if exit_code is not None:
        (d / "exit_code").write_text(f"{exit_code}\n")
    if cancelled:
        (d / "cancelled").write_text('{"by": "me@here", "cancelled_at": "2026-11-27T10:20:00Z"}\n')
    return str(d)


def test_report_inputs_join_the_plays_collected_runs(tmp_path):
    ctl = write_run(tmp_path, "a-baseline", "baseline", "control", 0)
    cand = write_run(tmp_path, "b-ffn_only", "ffn_only", "candidate", 1, exit_code=None, cancelled=True)
    write_run(tmp_path, "c-other", "baseline", "control", 0, play="P2")
    got = rundirs.report_inputs([cand], str(tmp_path))
    assert [(r["variant"], r["role"], r["exit_code"], r["cancelled"]) for r in got["runs"]] == [
        ("baseline", "control", 0, False), ("ffn_only", "candidate", None, True)]
    assert got["runs"][0]["path"] == os.path.realpath(ctl)
    assert got["controls"] == {"fsdp:profiled": {"variant": "baseline", "source": "rerun", "path": None}}
    assert got["confidence"] == 0.9 and got["unhealthy"] == []


def test_a_cancelled_run_is_shown_never_judged(tmp_path):
    ctl = parse_run(write_run(tmp_path, "a", "baseline", "control", 0))
    cand = parse_run(write_run(tmp_path, "b", "ffn_only", "candidate", 1, exit_code=None, cancelled=True))
    data = build([cand], [ctl])
    assert data["groups"] == []
    row = [r for r in data["rows"] if r["variant"] == "ffn_only"][0]
    assert (row["status"], row["verdict"], row["excluded"]) == ("cancelled", None, "cancelled (never judged)")
    assert summary(data) == ("ffn_only: 1 run(s) CANCELLED, not judged\n"
                             "nothing judged (no candidate, or no control run): raw metrics only\n")


# ------------------------------------------------------------------ cancel.yml and collect.yml on the embedded default
BIN = Path(__import__("sys").executable).parent
ENV = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
       "ANSIBLE_FORCE_COLOR": "0", "NO_COLOR": "1"}


def play(tmp_path, playbook, *args, wait=True):
    argv = [str(BIN / "ansible-playbook"), playbook, "-e", f"wanbench_run_root={tmp_path / 'runs'}",
            "-e", f"wanbench_results_dir={tmp_path / 'results'}", "-e", f"wanbench_torchrun={tmp_path / 'bin' / 'torchrun'}",
            *args]
    if not wait:
        return subprocess.Popen(argv, cwd=REPO, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return subprocess.run(argv, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)


def test_cancel_then_collect_on_the_embedded_default(tmp_path):
    """bench.yml with a fake workload (4 ranks in sessions of their own) that would sleep 300 s;
    cancel.yml stops the bench play, kills the run's processes, marks, collects and reports it;
    the lock is free; collect.yml then finds nothing left."""
    import shutil

    (tmp_path / "bin").mkdir()
    shutil.copy(REPO / "tests" / "testhost" / "fake_torchrun", tmp_path / "bin" / "torchrun")
    (tmp_path / "bin" / "sleep-seconds").write_text("300\n")
    (tmp_path / "bin" / "ranks").write_text("4\n")
    bench = play(tmp_path, "bench.yml", "-e", "variant=ffn_only", "-e", "baseline=skip", "-e", "repeats=1",
                 "-e", "wanbench_warmup_runs=0", wait=False)
    try:
        deadline = time.monotonic() + 120
        while not list((tmp_path / "runs").glob("*/run.log")) or len(run_processes(
                next((tmp_path / "runs").glob("*-ffn_only-*")))) < 6:
            assert bench.poll() is None and time.monotonic() < deadline, bench.stdout.read()[-3000:]
            time.sleep(0.2)
        (run,) = (tmp_path / "runs").glob("*-ffn_only-*")
        started = time.monotonic()
        cancel = play(tmp_path, "playbooks/cancel.yml")
        took = time.monotonic() - started
        bench_out = bench.communicate(timeout=60)[0]
    finally:
        if bench.poll() is None:
            bench.kill()
        for pid in run_processes(next((tmp_path / "runs").glob("*-ffn_only-*"), tmp_path / "none")):
            os.kill(pid, 9)
    out = cancel.stdout + cancel.stderr
    assert cancel.returncode == 0, out[-4000:]
    assert bench.returncode != 0 and "User interrupted execution" in bench_out
    assert run_processes(run) == [] and (run / "cancelled").is_file()
    assert re.search(rf"cancelled {run.name} \(\d+ processes killed\); bench play \S+ stopped; host lock released",
                     re.sub(r"\s+", " ", out)), out[-3000:]
    assert not (tmp_path / "runs" / ".holder").exists()
    assert (tmp_path / "results" / "localhost" / run.name / "cancelled").is_file()
    assert "ffn_only: 1 run(s) CANCELLED, not judged" in out
    print(f"cancel.yml took {took:.1f} s")
    again = play(tmp_path, "playbooks/collect.yml")
    assert again.returncode == 0 and "no run to collect" in again.stdout, again.stdout[-3000:]


def test_the_module_documentation_matches_its_argument_spec():
    """(Each filter's documentation is a YAML file beside its plugin, rendered by tests/test_plugin_docs.py.)"""
    import yaml

    for block in ("DOCUMENTATION", "EXAMPLES", "RETURN"):
        assert yaml.safe_load(getattr(wanbench_runs, block)), f"wanbench_runs.{block}"
    options = yaml.safe_load(wanbench_runs.DOCUMENTATION)["options"]
    source = (REPO / "library" / "wanbench_runs.py").read_text()
    assert all(f"{name}=dict(" in source for name in options), "a documented option missing from the argument spec"


def test_collect_later_on_the_embedded_default(tmp_path):
    """Ctrl-C of bench.yml mid-run: the run goes on; the next preflight names it in one warning;
    collect.yml waits for it, collects and reports it."""
    import shutil
    import signal

    (tmp_path / "bin").mkdir()
    shutil.copy(REPO / "tests" / "testhost" / "fake_torchrun", tmp_path / "bin" / "torchrun")
    (tmp_path / "bin" / "sleep-seconds").write_text("20\n")
    bench = play(tmp_path, "bench.yml", "-e", "variant=ffn_only", "-e", "baseline=skip", "-e", "repeats=1",
                 "-e", "wanbench_warmup_runs=0", wait=False)
    try:
        deadline = time.monotonic() + 120
        while not list((tmp_path / "runs").glob("*/.pid")):
            assert bench.poll() is None and time.monotonic() < deadline, bench.stdout.read()[-3000:]
            time.sleep(0.2)
        bench.send_signal(signal.SIGINT)  # the controller's Ctrl-C
        bench.communicate(timeout=60)
    finally:
        if bench.poll() is None:
            bench.kill()
    (run,) = (tmp_path / "runs").glob("*-ffn_only-*")
    assert not (run / "exit_code").exists(), "the run should outlive its play"
    nxt = play(tmp_path, "playbooks/preflight.yml", "--tags", "preflight")
    out = re.sub(r"\s+", " ", nxt.stdout + nxt.stderr)
    assert f"1 run(s) in {tmp_path / 'runs'} not collected: {run.name} (1 still running)" in out, out[-3000:]
    later = play(tmp_path, "playbooks/collect.yml")
    out = later.stdout + later.stderr
    assert later.returncode == 0, out[-4000:]
    assert f"{run.name}: finished with exit code 0" in out, "collect.yml did not wait for the live run"
    assert (tmp_path / "results" / "localhost" / run.name / "exit_code").read_text() == "0\n"
    assert "| ffn_only" in out and "Print the verdicts" in out


# ------------------------------------------------------------------ links and what cannot be collected
def test_unpack_records_links_and_refuses_special_files(tmp_path):
    """Links (relative, absolute out of the tree) are recorded, not made; a pipe fails naming it."""
    import tarfile

    run = tmp_path / "src" / "r1"
    run.mkdir(parents=True)
    (run / "output.npy").write_text("x")
    os.symlink("output.npy", run / "latest.npy")
    os.symlink("/etc", run / "host-etc")
    archive = tmp_path / "r1.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(run, arcname="r1")
    links = rundirs.unpack(archive, tmp_path / "out", "r1")
    assert links == {"latest.npy": "output.npy", "host-etc": "/etc"}
    assert sorted(p.name for p in (tmp_path / "out" / "r1").iterdir()) == ["output.npy"]
    rundirs.write_links(tmp_path / "out" / "r1", links)
    assert json.loads((tmp_path / "out" / "r1" / "links.json").read_text()) == {"host-etc": "/etc",
                                                                                  "latest.npy": "output.npy"}
    os.mkfifo(run / "pipe")
    with tarfile.open(archive, "w") as tar:
        tar.add(run, arcname="r1")
    with pytest.raises(ValueError, match=r"cannot unpack: .*r1/pipe"):
        rundirs.unpack(archive, tmp_path / "out2", "r1")


def test_links_in_run_directories_are_collected_on_the_embedded_default(tmp_path):
    """bench.yml, two runs whose workload leaves latest.npy -> output.npy and host-tmp -> /tmp: both
    runs are collected with their links recorded in links.json (on main: 0 of 2 collected, rc 0), and
    -e fail_on=fail,invalid fails the play after the report on ffn_only's INVALID. A run holding a
    named pipe cannot be collected: the play fails at its end naming it, after its report, and the
    run stays in the run root for collect.yml."""
    import shutil

    (tmp_path / "bin").mkdir()
    shutil.copy(REPO / "tests" / "testhost" / "fake_torchrun", tmp_path / "bin" / "torchrun")
    (tmp_path / "bin" / "links").write_text("1\n")
    args = ("-e", "variant=ffn_only", "-e", "baseline=rerun", "-e", "repeats=1", "-e", "wanbench_warmup_runs=0",
            "-e", "fail_on=fail,invalid")
    done = play(tmp_path, "bench.yml", *args)
    out = re.sub(r"\s+", " ", done.stdout + done.stderr)
    # The fake workload measures nothing: ffn_only is INVALID, which fail_on names, after the report.
    assert done.returncode == 2, out[-4000:]
    assert re.search(r"Print the verdicts\b.*ffn_only: INVALID .* Fail when a run did not finish cleanly, was not "
                     r"collected, or has a verdict of fail_on\b.*ffn_only: verdict invalid \(fail_on=fail,invalid; "
                     r"\S+/report.json\)", out), out[-3000:]
    assert "it stays on the host" not in out
    runs = sorted((tmp_path / "results" / "localhost").glob("*-*-*"))
    assert len(runs) == 2, out[-3000:]
    for run in runs:
        assert json.loads((run / "links.json").read_text()) == {"host-tmp": "/tmp", "latest.npy": "output.npy"}
        assert not (run / "latest.npy").exists() and not (run / "host-tmp").is_symlink()
    (tmp_path / "bin" / "fifo").write_text("1\n")
    broken = play(tmp_path, "bench.yml", "-e", "variant=ffn_only", "-e", "baseline=skip", "-e", "repeats=1",
                  "-e", "wanbench_warmup_runs=0")
    out = re.sub(r"\s+", " ", broken.stdout + broken.stderr)
    lost = [r for r in (tmp_path / "runs").iterdir()
            if r.is_dir() and not (tmp_path / "results" / "localhost" / r.name).exists()]
    assert broken.returncode != 0 and len(lost) == 1, out[-3000:]
    assert re.search(rf"{lost[0].name} not collected \(.*pipe.*\); it stays on the host: collect it with "
                     r"playbooks/collect.yml", out), out[-3000:]
    assert "Fail when a run did not finish cleanly, was not collected" in out and (lost[0] / "exit_code").is_file()


# ------------------------------------------------------------------ stray ranks and the run's scratch
def sleepers(seconds):
    """PIDs of this machine's `sleep SECONDS` processes (the fake's ranks-elsewhere)."""
    found = []
    for p in Path("/proc").glob("[0-9]*"):
        try:
            if (p / "cmdline").read_bytes() == f"sleep\0{seconds}\0".encode():
                found.append(int(p.name))
        except OSError:
            continue
    return found


@pytest.mark.parametrize("case", ["timeout", "end of the run"])
def test_ranks_that_write_elsewhere_are_stopped_and_the_scratch_goes(tmp_path, case):
    """The fake workload starts 2 ranks that write to /dev/null and are orphaned at once (found neither
    by their log nor by their parent). A 1 s timeout, or the end of a run that leaves them behind,
    leaves none (on main both survived either way); torchrun's TMPDIR is the run's own tmp.tmp,
    gone with the run and never fetched."""
    import shutil

    seconds = {"timeout": 3001, "end of the run": 3002}[case]
    (tmp_path / "bin").mkdir()
    shutil.copy(REPO / "tests" / "testhost" / "fake_torchrun", tmp_path / "bin" / "torchrun")
    (tmp_path / "bin" / "ranks").write_text("2\n")
    (tmp_path / "bin" / "ranks-elsewhere").write_text(f"{seconds}\n")
    extra = ["-e", "wanbench_job_timeout=1"] if case == "timeout" else []
    if case == "timeout":
        (tmp_path / "bin" / "sleep-seconds").write_text("300\n")
    try:
        done = play(tmp_path, "bench.yml", "-e", "variant=ffn_only", "-e", "baseline=skip", "-e", "repeats=1",
                    "-e", "wanbench_warmup_runs=0", *extra)
        out = re.sub(r"\s+", " ", done.stdout + done.stderr)
        left = sleepers(seconds)
    finally:
        for pid in sleepers(seconds):
            os.kill(pid, 9)
    (run,) = (tmp_path / "runs").glob("*-ffn_only-*")
    assert left == [], f"{len(left)} rank(s) of {run.name} left running ({case})"
    if case == "timeout":
        assert done.returncode != 0 and "still running after" in out and "timeout 1 s" in out, out[-3000:]
    else:
        assert done.returncode == 0, out[-3000:]
        assert f"[fake] TMPDIR={run}/tmp.tmp" in (run / "run.log").read_text()
    assert not (run / "tmp.tmp").exists()
    assert not (tmp_path / "results" / "localhost" / run.name / "tmp.tmp").exists()


def test_a_command_longer_than_the_hosts_arg_max_is_refused_before_any_run(tmp_path):
    """With the stack limit at 512 KiB the host's ARG_MAX is 128 KiB: a 130000-byte prompt (one argument's
    limit is 131071 bytes) cannot start with the rest of the command and the environment; preflight
    measures both and the play stops before its first run, naming it (on main the run started and
    exited 126)."""
    import shutil

    (tmp_path / "bin").mkdir()
    shutil.copy(REPO / "tests" / "testhost" / "fake_torchrun", tmp_path / "bin" / "torchrun")
    (tmp_path / "prompt.yml").write_text(json.dumps({"prompt": "x" * 130_000}))
    argv = [str(BIN / "ansible-playbook"), "bench.yml", "-e", f"wanbench_run_root={tmp_path / 'runs'}",
            "-e", f"wanbench_results_dir={tmp_path / 'results'}", "-e", f"wanbench_torchrun={tmp_path / 'bin' / 'torchrun'}",
            "-e", "variant=ffn_only", "-e", "baseline=skip", "-e", "repeats=1", "-e", "wanbench_warmup_runs=0",
            "-e", f"@{tmp_path / 'prompt.yml'}"]
    res = subprocess.run(["bash", "-c", 'ulimit -s 512 && exec "$@"', "bash", *argv], cwd=REPO, env=ENV,
                         capture_output=True, text=True, timeout=300)
    out = re.sub(r"\s+", " ", res.stdout + res.stderr)
    assert res.returncode != 0, out[-3000:]
    assert re.search(r"ffn_only: its command takes 13\d{4} bytes of arguments and environment, the host's login "
                     r"environment \d+ more; the host's ARG_MAX is 131072", out), out[-3000:]
    assert not [p for p in (tmp_path / "runs").glob("*-ffn_only-*")], "a run started"


def test_cancel_kills_a_rank_that_writes_elsewhere_and_was_orphaned(tmp_path):
    """A rank started by the run (it carries WANBENCH_RUN_DIR, as run.sh exports it) that writes to
    /dev/null, sits in a session of its own and lost its parent at once: cancel finds and kills it
    (on main it was neither in the run's tree nor writing run.log) and removes the run's TMPDIR."""
    d = tmp_path / RUN
    (d / "tmp.tmp").mkdir(parents=True)
    (d / "run.sh").write_text('#!/bin/bash\necho $$ > "$1/.pid"\nexport WANBENCH_RUN_DIR="$1"\n'
                              "( setsid sleep 3004 </dev/null >/dev/null 2>&1 & )\nsleep 3005 > \"$1/run.log\"\n")
    subprocess.Popen(["setsid", "-f", "bash", str(d / "run.sh"), str(d)], stdin=subprocess.DEVNULL,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not (sleepers(3004) and sleepers(3005)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert sleepers(3004) and sleepers(3005)
        got = script(tmp_path, "cancel", RUN, note={"by": "me@here"})
        assert got["cancelled"] and sleepers(3004) == [] and sleepers(3005) == [], got
        assert not (d / "tmp.tmp").exists()
    finally:
        for pid in sleepers(3004) + sleepers(3005):
            os.kill(pid, 9)
