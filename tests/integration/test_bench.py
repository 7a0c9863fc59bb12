"""bench.yml end to end over real SSH into the docker test host."""

import json
import os
import re
import signal
import time
from datetime import datetime, timezone
from pathlib import Path


from wanbench.parse import parse_run

from .testhost_lib import CONTAINER, CONTAINER_REPO, RESULTS_ROOT, docker, finish, manifest, sh, sshd_children

VERDICTS = {"pass", "fail", "inconclusive", "invalid"}
RUN_ROOT = "/root/wanbench/runs"  # wanbench_run_root of inventory/testhost
RUN_FILES = {"run.sh", "manifest.json", "run.log", "time.txt", "exit_code"}


def test_bench_runs_the_control_and_the_variant(e2e):
    result, sha = e2e
    assert result.rc == 0, result.stdout[-5000:]
    runs = sorted(result.new_runs(), key=lambda p: manifest(p)["schedule"]["position"])
    names = [re.sub(r"^\d{8}T\d{6}Z-(.*)-[0-9a-f]{6}$", r"\1", p.name) for p in runs]
    # a warm-up round (every arm once, discarded), then one block in the same order
    assert names[:2] == names[2:] and sorted(names[2:]) == ["baseline", "ffn_only"], names
    assert [manifest(p)["schedule"]["warmup"] for p in runs] == [True, True, False, False]
    assert len({manifest(p)["schedule"]["play"] for p in runs}) == 1
    for run_dir, name in zip(runs, names):
        role = "candidate" if name == "ffn_only" else "control"
        files = {p.name for p in run_dir.iterdir()}
        assert RUN_FILES | {"perf.csv", ".pid"} <= files and "output.npy" not in files, files  # output scored on the host
        assert (run_dir / "exit_code").read_text() == "0\n"
        m = manifest(run_dir)
        assert (m["host"], m["container"], m["platform"], m["role"]) == ("testhost", CONTAINER, "reference", role)
        assert m["repo"]["sha"] == sha and m["repo"]["dirty"] is False and m["repo"]["branch"] == "perf"
        assert m["exit_code"] == 0 and m["started_at"] <= m["ended_at"]
        assert m["argv"][:5] == ["torchrun", "--nproc_per_node=4", "--master_addr", "127.0.0.1", "--master_port"]
        assert m["steps"] == 20 and "--sample_steps" in m["argv"]
        parsed = parse_run(run_dir)
        assert parsed["status"] == "ok", parsed["reason"]
        for metric in ("request_total", "reserved_peak", "gen_time", "real_time", "denoise_step_avg"):
            assert parsed["metrics"][metric] is not None, metric
    assert [manifest(p)["env"]["WAN_FSDP_WRAP_MODE"] for p in runs] == [
        "ffn_only" if n == "ffn_only" else "block" for n in names]


def test_bench_writes_and_prints_the_report_and_verdict(e2e):
    result, _ = e2e
    printed = "\n".join(r.get("msg", "") for r in result.task_results("Print the verdicts"))
    verdict = re.search(r"ffn_only: (PASS|FAIL|INCONCLUSIVE|INVALID) \(request_total [+-]\d+\.\d\d %", printed)
    assert verdict, printed
    report = "\n".join(r.get("msg", "") for r in result.task_results("Print the report"))
    assert "## Verdicts" in report and "## Runs" in report and "warm-up (discarded)" in report
    (cmd,) = [r["cmd"] for r in result.task_results("Write report.md, report.csv, report.json, summary.txt, share.md and report.html")]
    out = Path(cmd[cmd.index("--out") + 1])
    assert out.name == "fsdp-profiled" and out.parent.parent == RESULTS_ROOT / "testhost" / "reports"
    assert {"report.md", "report.csv", "report.json", "summary.txt", "share.md", "report.html"} <= {p.name for p in out.iterdir()}
    data = json.loads((out / "report.json").read_text())
    assert sorted((r["variant"], r["role"]) for r in data["rows"]) == [
        ("baseline", "baseline"), ("baseline", "baseline"), ("ffn_only", "candidate"), ("ffn_only", "candidate")]
    (group,) = data["groups"]
    assert group["variant"] == "ffn_only" and group["verdict"] in VERDICTS
    assert group["n"] == {"baseline": 1, "candidate": 1}  # the warm-up is left out
    assert group["verdict"].upper() == verdict.group(1)


def test_bench_shows_readable_progress(e2e):
    result, _ = e2e
    lines = [line for line in result.stdout.splitlines() if line.startswith(("baseline (control): ", "ffn_only (candidate): "))]
    assert any(re.search(r"ffn_only \(candidate\): finished with exit code 0 after \d+ s", m) for m in lines)
    assert any(re.search(r"(step \d+/\d+|loading|warm-up|starting).*(elapsed \d+ s|since launch)", m)
               for m in lines), lines
    assert "FAILED - RETRYING" not in result.stdout


def test_record_wall_times(e2e):
    """Not a timing test: records the bench.yml wall time and the workload's for the docs."""
    result, _ = e2e
    runs = result.new_runs()
    workload = [float((r / "time.txt").read_text().split("=")[1]) for r in runs]
    (RESULTS_ROOT / "integration-timing.json").write_text(json.dumps(
        {"bench_yml_seconds": round(result.seconds, 1), "runs": [r.name for r in runs],
         "workload_real_time_seconds": workload}, indent=2))
    print(f"bench.yml on the test host: {result.seconds:.1f} s for {len(runs)} runs; workload: {workload} s")
    assert len(workload) == 4 and all(t > 0 for t in workload)  # a warm-up round, then one run an arm
    assert result.seconds > sum(workload), "the play cannot take less time than the runs it waited for"


def test_ssh_loss_mid_run_is_survived(e2e, playbook):
    """Kill every SSH session (the sshd master's children) while the workload runs, three times;
    the run is still waited for, collected and judged (against e2e's stored control run)."""
    runs_in_container = set(docker("exec", CONTAINER, "ls", RUN_ROOT, check=False).stdout.split())
    thread, runner, before, started = playbook(
        extravars={"variant": "nofsdp", "baseline": "stored", "repeats": "1", "wanbench_warmup_runs": "0"},
        wait=False)
    # Find the run in the container itself (runner events can arrive late on a loaded machine), then
    # wait until its workload is under way: the log shows the warm-up or the timed loop.
    while thread.is_alive():
        new = [d for d in docker("exec", CONTAINER, "ls", RUN_ROOT, check=False).stdout.split()
               if d not in runs_in_container and "-nofsdp-" in d]
        log = docker("exec", CONTAINER, "cat", f"{RUN_ROOT}/{new[0]}/run.log", check=False).stdout if new else ""
        if "Warm up" in log or "Generating video ..." in log:
            break
        time.sleep(0.2)
    killed = []
    for _ in range(3):
        for pid in sshd_children():
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(time.time())
            except ProcessLookupError:
                pass
        time.sleep(3)
    thread.join(timeout=1800)
    result = finish(runner, before, started)
    assert killed, f"no SSH session to kill: rc {result.rc}, {result.stdout[-3000:]}"
    assert result.rc == 0, result.stdout[-5000:]
    runs = result.new_runs()
    assert len(runs) == 1 and "-nofsdp-" in runs[0].name, "the stored control run should have been reused"
    m = manifest(runs[0])
    assert m["exit_code"] == 0 and (runs[0] / "exit_code").read_text() == "0\n"
    ended = datetime.strptime(m["ended_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()
    assert min(killed) < ended + 1, "the SSH sessions were killed after the workload had ended"
    plan = " ".join(r.get("msg", "") for r in result.task_results("Show the plan"))
    assert "baseline (stored" in plan, plan
    assert "nofsdp: " in " ".join(r.get("msg", "") for r in result.task_results("Print the verdicts"))


PROMPT = "It's \"$(touch /tmp/pwned)\" and `id` at the 钢琴\nsecond line: $HOME ${PATH} \\ '' \"\""


def test_prompt_arrives_byte_for_byte_and_runs_nothing(testhost, playbook):
    sh("rm", "-f", "/tmp/pwned")
    docker("exec", CONTAINER, "rm", "-f", "/tmp/pwned")
    result = playbook(extravars={"variant": "baseline", "baseline": "skip", "prompt": PROMPT, "repeats": "1",
                                 "wanbench_warmup_runs": "0"})
    assert result.rc == 0, result.stdout[-5000:]
    (run_dir,) = result.new_runs()
    log = (run_dir / "run.log").read_bytes()
    assert f"INFO: Input prompt: {PROMPT}\n".encode() in log
    m = manifest(run_dir)
    assert m["settings"]["prompt"] == PROMPT and m["argv"][-2:] == ["--prompt", PROMPT]
    assert not Path("/tmp/pwned").exists(), "created on the host"
    assert docker("exec", CONTAINER, "test", "-e", "/tmp/pwned", check=False).returncode == 1, "created in the container"
    printed = " ".join(r.get("msg", "") for r in result.task_results("Print the verdicts"))
    assert "nothing judged (no candidate, or no control run): raw metrics only" in printed


# ------------------------------------------------------------------ bad inputs: one clear error each
def _failed_before_running(result, needle):
    assert result.rc != 0
    msgs = result.failures()
    assert len(msgs) == 1 and needle in re.sub(r"\s+", " ", msgs[0]), msgs
    assert result.new_runs() == [], "nothing may run"


def test_unknown_variant(testhost, playbook):
    result = playbook(extravars={"variant": "ffn_onyl"})
    _failed_before_running(result, "unknown variant 'ffn_onyl' (known: agwait1, agwait1_lasta2a, baseline,")
    assert not [e for e in result.events if e.get("event") == "runner_on_start"
                and e["event_data"].get("task_action") not in ("ansible.builtin.validate_argument_spec",
                                                                 "ansible.builtin.assert", "ansible.builtin.set_fact")]


def test_stopped_container(testhost, playbook):
    docker("stop", "-t", "1", CONTAINER)
    try:
        result = playbook(extravars={"variant": "ffn_only"})
    finally:
        docker("start", CONTAINER)
    _failed_before_running(result, f"container {CONTAINER} is not running (state exited)")


def test_missing_branch(testhost, playbook):
    result = playbook(extravars={"variant": "ffn_only", "wanbench_git_branch": "no-such-branch"})
    _failed_before_running(result, "branch no-such-branch does not exist on remote xys")


def test_dirty_tree(testhost, playbook):
    docker("exec", CONTAINER, "sh", "-c", 'echo "# local edit" >> "$1/generate.py"', "sh", CONTAINER_REPO)
    try:
        result = playbook(extravars={"variant": "ffn_only"})
    finally:
        docker("exec", CONTAINER, "git", "-C", CONTAINER_REPO, "checkout", "--", "generate.py")
    _failed_before_running(result, f"work tree {CONTAINER_REPO} on testhost is dirty ( M generate.py)")
