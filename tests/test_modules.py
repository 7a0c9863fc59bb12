"""library/wanbench_wait.py: exact argv, rc handling, changed and check mode."""

import importlib.util
import json
import os
import subprocess
from pathlib import Path

import pytest
from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args

REPO = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("wanbench_wait", REPO / "library" / "wanbench_wait.py")
wanbench_wait = importlib.util.module_from_spec(spec)
spec.loader.exec_module(wanbench_wait)

RUN = "/root/wanbench/runs/20261126T120000Z-ffn_only-abc123"
LOG_RUNNING = ("W1126 torchrun warning\n[2026-11-26 12:00:01,000] INFO: Warm up 2 steps...\n"
               "  0%|  | 0/2 [00:00<?, ?it/s]\r100%|##| 2/2 [00:01<00:00,  1.0s/it]\n"
               "[2026-11-26 12:00:03,000] INFO: Generating video ...\n"
               "  0%|  | 0/20 [00:00<?, ?it/s]\r 35%|###5 | 7/20 [00:07<00:13,  1.0s/it]")


def status(now=1000, start=958, alive="1", exit_code=None, log=LOG_RUNNING, written=950, pid=True):
    head = [f"now={now}", f"written={written}"]
    if pid:
        head += [f"start={start}", f"alive={alive}"]
    if exit_code is not None:
        head.append(f"exit_code={exit_code}")
    return "\n".join(head) + "\n--log--\n" + log


def run_module(monkeypatch, capsys, args, outputs):
    """Run the module with args; run_command answers from outputs (rc, stdout, stderr)."""
    calls = []
    answers = iter(outputs)

    def fake_run_command(self, argv, **kwargs):
        calls.append(argv)
        return next(answers)

    monkeypatch.setattr(basic.AnsibleModule, "run_command", fake_run_command)
    monkeypatch.setattr(wanbench_wait.time, "sleep", lambda s: None)
    with patch_module_args({"window": 0, "min_window": 0, **args}):
        with pytest.raises(SystemExit) as exc:
            wanbench_wait.main()
    return exc.value.code, json.loads(capsys.readouterr().out), calls


def test_running_run_reports_progress_through_docker_exec(monkeypatch, capsys):
    rc, out, calls = run_module(monkeypatch, capsys, {"run_dir": RUN, "container": "mindie-wan2.1-xysheng"},
                                [(0, status(), "")])
    assert calls == [["docker", "exec", "mindie-wan2.1-xysheng", "sh", "-c", wanbench_wait.STATUS_SCRIPT,
                      "wanbench-wait", RUN]]
    assert rc == 0 and out["changed"] is False and out["done"] is False
    assert (out["phase"], out["step"], out["total"], out["elapsed"]) == ("generating", 7, 20, 42)
    assert out["progress"] == "generating, step 7/20, elapsed 42 s"


def test_finished_run_on_the_host(monkeypatch, capsys):
    log = LOG_RUNNING + "\n[..] INFO: Saving generated video to x\n[..] INFO: Finished.\n"
    rc, out, calls = run_module(monkeypatch, capsys, {"run_dir": RUN, "docker": "/usr/bin/docker"},
                                [(0, status(alive="0", exit_code="0", log=log), "")])
    assert calls == [["sh", "-c", wanbench_wait.STATUS_SCRIPT, "wanbench-wait", RUN]]
    assert rc == 0 and out["done"] is True and out["exit_code"] == 0 and out["phase"] == "finished"
    assert out["progress"] == "finished with exit code 0 after 42 s"


def test_polls_until_done_within_the_window(monkeypatch, capsys):
    clock = iter(range(0, 1000, 1))
    monkeypatch.setattr(wanbench_wait.time, "monotonic", lambda: next(clock))
    rc, out, calls = run_module(monkeypatch, capsys, {"run_dir": RUN, "window": 30, "interval": 2},
                                [(0, status(), ""), (0, status(now=1002), ""), (0, status(exit_code="3"), "")])
    assert len(calls) == 3 and out["done"] is True and out["exit_code"] == 3 and rc == 0


@pytest.mark.parametrize("elapsed,looks", [(0, 3), (4, 3), (8, 5), (42, 11), (500, 11)])
def test_window_adapts_to_the_runs_age(monkeypatch, capsys, elapsed, looks):
    """The window is the run's age, between min_window (5 s) and window (20 s); a look every 2 s."""
    now = [0.0]
    monkeypatch.setattr(wanbench_wait.time, "monotonic", lambda: now[0])
    monkeypatch.setattr(wanbench_wait.time, "sleep", lambda s: now.__setitem__(0, now[0] + s))
    calls = []

    def fake_run_command(self, argv, **kwargs):
        calls.append(argv)
        return 0, status(now=1000, start=1000 - elapsed), ""

    monkeypatch.setattr(basic.AnsibleModule, "run_command", fake_run_command)
    with patch_module_args({"run_dir": RUN, "window": 20, "min_window": 5, "interval": 2}):
        with pytest.raises(SystemExit):
            wanbench_wait.main()
    assert len(calls) == looks and json.loads(capsys.readouterr().out)["done"] is False


def test_a_workload_failure_is_reported_not_failed(monkeypatch, capsys):
    rc, out, _ = run_module(monkeypatch, capsys, {"run_dir": RUN}, [(0, status(alive="0", exit_code="1"), "")])
    assert rc == 0 and out["done"] and out["exit_code"] == 1


def test_starting_run(monkeypatch, capsys):
    rc, out, _ = run_module(monkeypatch, capsys, {"run_dir": RUN}, [(0, status(pid=False, now=960), "")])
    assert rc == 0 and out["phase"] == "starting" and out["progress"] == "starting, 10 s since launch"


@pytest.mark.parametrize("args,answer,needle", [
    ({}, (0, status(alive="0"), ""), "ended without an exit code"),
    ({}, (0, status(pid=False, now=2000), ""), "did not start within 120 s"),
    ({"timeout": 30}, (0, status(), ""), "still running after 42 s (timeout 30 s)"),
    ({}, (0, "state=nodir\n", ""), "does not exist"),
    ({"container": "gone"}, (1, "", "Error response from daemon: No such container: gone"), "No such container"),
    ({}, (0, status(exit_code="x"), ""), "unreadable exit_code"),
])
def test_failures_say_why(monkeypatch, capsys, args, answer, needle):
    rc, out, _ = run_module(monkeypatch, capsys, {"run_dir": RUN, **args}, [answer])
    assert rc == 1 and out["failed"] is True and needle in out["msg"]
    assert out.get("changed", False) is False


def test_dead_run_shows_the_log_tail(monkeypatch, capsys):
    log = "Traceback (most recent call last):\n  File x\nRuntimeError: rank 2 failed\n"
    _, out, _ = run_module(monkeypatch, capsys, {"run_dir": RUN}, [(0, status(alive="0", log=log), "")])
    assert out["log_tail"][-1] == "RuntimeError: rank 2 failed"


def test_check_mode_is_read_only_and_supported(monkeypatch, capsys):
    rc, out, calls = run_module(monkeypatch, capsys, {"run_dir": RUN, "_ansible_check_mode": True},
                                [(0, status(alive="0", exit_code="0"), "")])
    assert rc == 0 and out["changed"] is False and out["done"] is True and len(calls) == 1


def look(path):
    return wanbench_wait.parse_status(subprocess.run(["sh", "-c", wanbench_wait.STATUS_SCRIPT, "x", str(path)],
                                                     capture_output=True, check=True).stdout.decode())


def test_status_script_reads_a_real_run_directory(tmp_path):
    """The shell snippet itself, against a directory: liveness before exit_code, log tail last."""
    (tmp_path / "run.sh").write_text("#!/bin/bash\n")
    (tmp_path / ".pid").write_text("999999999\n")
    (tmp_path / "run.log").write_text(LOG_RUNNING)
    st = look(tmp_path)
    assert st["alive"] == "0" and "exit_code" not in st and st["log"] == LOG_RUNNING
    (tmp_path / ".pid").write_text(f"{os.getpid()}\n")
    (tmp_path / "exit_code").write_text("0\n")
    st = look(tmp_path)
    assert st["alive"] == "1" and st["exit_code"] == "0"
    assert look(tmp_path / "nope")["state"] == "nodir"
