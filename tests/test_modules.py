"""The modules and action plugins of library/ and action_plugins/: exact argv, rc handling, changed and
check mode; the shell each action runs on the target is run for real against real directories."""

import importlib.util
import json
import os
import re
import shlex
import subprocess
import time
from pathlib import Path

import pytest
from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args
from ansible.module_utils.wanbench_lines import PRINT_HOLDER, lock_holder, parse_lines

from wanbench import rundirs

REPO = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("wanbench_wait_action", REPO / "action_plugins" / "wanbench_wait.py")
wait_action = importlib.util.module_from_spec(spec)
spec.loader.exec_module(wait_action)

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


class FakeTask:
    def __init__(self, args, check_mode=False):
        self.args, self.check_mode = args, check_mode


class FakeConnection:
    def __init__(self):
        self.resets = 0
        self._shell = type("Shell", (), {"tmpdir": None})()

    def reset(self):
        self.resets += 1


def wait_with(monkeypatch, args, check_mode=False, shell=None):
    """The wanbench_wait action; its commands on the target are answered by shell(argv) -> (rc, stdout,
    stderr) (default: run for real by /bin/sh on this machine). Returns the action and the argvs."""
    action = wait_action.ActionModule.__new__(wait_action.ActionModule)
    action._task = FakeTask({"window": 0, "min_window": 0, "reconnect_sleep": 0, **args}, check_mode)
    action._connection = FakeConnection()
    commands = []

    def low_level(cmd, **kwargs):
        argv = shlex.split(cmd)
        commands.append(argv)
        if shell:
            rc, out, err = shell(argv)
        else:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
            rc, out, err = done.returncode, done.stdout, done.stderr
        return {"rc": rc, "stdout": out, "stderr": err}

    action._low_level_execute_command = low_level
    monkeypatch.setattr(wait_action.ActionBase, "run", lambda self, tmp=None, task_vars=None: {})
    monkeypatch.setattr(wait_action.display, "display", lambda msg, *a, **k: None)
    return action, commands


def one_round(monkeypatch, args, answers):
    """One round of the wait for args, the target's commands answered from answers (rc, stdout, stderr)."""
    answers = iter(answers)
    action, commands = wait_with(monkeypatch, args, shell=lambda argv: next(answers))
    _, params = action.validate_argument_spec(argument_spec=wait_action.ARGUMENT_SPEC)
    return action.look(params), commands


def test_a_running_run_reports_progress_through_docker_exec(monkeypatch):
    res, commands = one_round(monkeypatch, {"run_dir": RUN, "container": "mindie-wan2.1-xysheng", "window": 20,
                                            "min_window": 5, "interval": 2}, [(0, status(), "")])
    assert commands == [["docker", "exec", "mindie-wan2.1-xysheng", "sh", "-c", wait_action.WAIT_SCRIPT,
                         "wanbench-wait", RUN, "20", "5", "2000", "250", "5"]]
    assert res["done"] is False and not res.get("failed")
    assert (res["phase"], res["step"], res["total"], res["elapsed"]) == ("generating", 7, 20, 42)
    assert res["progress"] == "generating, step 7/20, elapsed 42 s"


def test_a_finished_run_on_the_host(monkeypatch):
    log = LOG_RUNNING + "\n[..] INFO: Saving generated video to x\n[..] INFO: Finished.\n"
    res, commands = one_round(monkeypatch, {"run_dir": RUN, "docker": "/usr/bin/docker"},
                              [(0, status(alive="0", exit_code="0", log=log), "")])
    assert commands[0][:3] == ["sh", "-c", wait_action.WAIT_SCRIPT] and commands[0][4] == RUN
    assert res["done"] is True and res["exit_code"] == 0 and res["phase"] == "finished" and res["status"] == "ok"
    assert res["progress"] == "finished with exit code 0 after 42 s"


def test_a_workload_failure_is_reported_not_failed(monkeypatch):
    log = "line one\nRuntimeError: rank 2 failed\n"
    res, _ = one_round(monkeypatch, {"run_dir": RUN}, [(0, status(alive="0", exit_code="1", log=log), "")])
    assert res["done"] and res["exit_code"] == 1 and not res.get("failed")
    assert (res["status"], res["cause"], res["log_tail"]) == ("failed", "exit code 1",
                                                              ["line one", "RuntimeError: rank 2 failed"])


def test_a_starting_run(monkeypatch):
    res, _ = one_round(monkeypatch, {"run_dir": RUN}, [(0, status(pid=False, now=960), "")])
    assert res["phase"] == "starting" and res["progress"] == "starting, 10 s since launch"


@pytest.mark.parametrize("args,answer,needle,status_", [
    ({}, (0, status(alive="0"), ""), "ended without an exit code", "died"),
    ({}, (0, status(pid=False, now=2000), ""), "did not start within 120 s", "not-started"),
    ({"timeout": 30, "kill_on_timeout": False}, (0, status(), ""), "still running after 42 s (timeout 30 s); it was left running", "timeout"),
    ({}, (0, "state=nodir\n", ""), "does not exist", "not-started"),
    ({"container": "gone"}, (1, "", "Error response from daemon: No such container: gone"), "No such container", "unreadable"),
    ({}, (0, status(exit_code="x"), ""), "unreadable exit_code", "unreadable"),
])
def test_failures_say_why(monkeypatch, args, answer, needle, status_):
    res, commands = one_round(monkeypatch, {"run_dir": RUN, **args}, [answer])
    assert res["failed"] is True and needle in res["msg"] and res["status"] == status_ and res["cause"] == res["msg"]
    assert not res.get("changed") and len(commands) == 1


def test_a_dead_run_shows_the_log_tail(monkeypatch):
    log = "Traceback (most recent call last):\n  File x\nRuntimeError: rank 2 failed\n"
    res, _ = one_round(monkeypatch, {"run_dir": RUN}, [(0, status(alive="0", log=log), "")])
    assert res["log_tail"][-1] == "RuntimeError: rank 2 failed" and res["run_dir"] == RUN


def test_a_timeout_stops_the_runs_process_group(monkeypatch):
    head = status(now=1000, start=958).replace("alive=1", "alive=1\npid=4242")
    res, commands = one_round(monkeypatch, {"run_dir": RUN, "timeout": 30, "container": "c"}, [(0, head, ""), (0, "", "")])
    assert res["failed"] and res["status"] == "timeout" and "its process group was stopped" in res["msg"]
    assert "stop" not in res
    assert commands[1] == ["docker", "exec", "c", "sh", "-c", wait_action.KILL_SCRIPT, "wanbench-kill", "4242", RUN]


def test_the_timeout_kill_stops_every_process_of_the_run(tmp_path):
    """The kill command for real (dash where /bin/sh is dash): the run script's process group, a rank
    in a session of its own and one that ignores TERM all end; nothing else is touched."""
    (tmp_path / "run.sh").write_text(f"""#!/bin/sh
exec >{tmp_path}/run.log 2>&1
setsid sh -c 'sleep 300' &
sh -c 'trap "" TERM; sleep 300' &
sleep 300
""")
    bystander = subprocess.Popen(["sleep", "300"])
    run = subprocess.Popen(["setsid", "sh", str(tmp_path / "run.sh")])
    try:
        time.sleep(1)
        def members():
            return [p for p in os.listdir("/proc") if p.isdigit()
                    and any(os.path.realpath(f"/proc/{p}/fd/{fd}") == str(tmp_path / "run.log")
                            for fd in (1, 2) if os.path.exists(f"/proc/{p}/fd/{fd}"))]
        assert len(members()) >= 4
        argv = wait_action.kill_argv({"docker": "docker", "container": "", "run_dir": str(tmp_path)}, run.pid)
        assert subprocess.run(argv, timeout=60).returncode == 0
        run.wait(timeout=5)
        assert members() == [] and bystander.poll() is None
    finally:
        bystander.kill()
        run.kill()


@pytest.mark.parametrize("answer,needle", [
    (status(alive="0").replace("now=1000", "now=1000\nfree_kb=12"), "ended without an exit code; the file system is full"),
    (status(exit_code="x").replace("now=1000", "now=1000\nfree_kb=0"), "unreadable exit_code 'x'"),
])
def test_a_full_run_root_is_named(monkeypatch, answer, needle):
    res, _ = one_round(monkeypatch, {"run_dir": RUN}, [(0, answer, "")])
    assert res["failed"] and needle in res["msg"]
    assert "the file system is full: " in res["msg"] and "KiB free on /root/wanbench/runs" in res["msg"]
    res, _ = one_round(monkeypatch, {"run_dir": RUN}, [(0, status(alive="0").replace("now=1000", "now=1000\nfree_kb=4096"), "")])
    assert "killed? container stopped?" in res["msg"] and "full" not in res["msg"]


def a_run(tmp_path, pid, age=0, log=LOG_RUNNING):
    """A run directory whose .pid names pid and was written age seconds ago."""
    (tmp_path / "run.sh").write_text("#!/bin/bash\n")
    (tmp_path / "run.log").write_text(log)
    (tmp_path / ".pid").write_text(f"{pid}\n")
    stamp = time.time() - age
    os.utime(tmp_path / ".pid", (stamp, stamp))
    return tmp_path


def test_the_round_reads_a_real_run_directory(monkeypatch, tmp_path):
    """The shell itself, against a directory: a dead run ends the round at once (liveness before
    exit_code), an exit code is read with its time, a missing directory is named."""
    run = a_run(tmp_path, 999999999)
    action, _ = wait_with(monkeypatch, {"run_dir": str(run), "window": 30, "min_window": 30})
    started = time.monotonic()
    res = action.run(task_vars={})
    assert time.monotonic() - started < 10 and res["failed"] and res["status"] == "died"
    (run / ".pid").write_text(f"{os.getpid()}\n")
    (run / "exit_code").write_text("0\n")
    res = action.run(task_vars={})
    assert res["done"] and res["exit_code"] == 0 and 0 <= res["noticed_after"] < 10 and res["rounds"] == 1
    action, _ = wait_with(monkeypatch, {"run_dir": str(tmp_path / "nope")})
    assert action.run(task_vars={})["msg"] == f"run directory {tmp_path / 'nope'} does not exist"


@pytest.mark.parametrize("age,low,high", [(0, 0.7, 2.6), (100, 2.7, 5.0)])  # a round ends an interval (0.2 s) early rather than late
def test_a_round_lasts_the_runs_age_between_min_window_and_window(monkeypatch, tmp_path, age, low, high):
    """A young run (age 0) gets a round of min_window (1 s), an old one of window (3 s): progress
    shows early, long runs print few lines. Real shell, real sleeps."""
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        run = a_run(tmp_path, sleeper.pid, age=age)
        action, _ = wait_with(monkeypatch, {"run_dir": str(run), "window": 3, "min_window": 1, "interval": 0.2})
        _, params = action.validate_argument_spec(argument_spec=wait_action.ARGUMENT_SPEC)
        started = time.monotonic()
        res = action.look(params)
        took = time.monotonic() - started
    finally:
        sleeper.kill()
        sleeper.wait()
    assert res["done"] is False and res["elapsed"] >= age and low <= took <= high, (res, took)


def test_the_end_is_noticed_within_the_interval(monkeypatch, tmp_path):
    """A run that writes its exit code 1.5 s into a round: the round returns at once after it."""
    writer = subprocess.Popen(["sh", "-c", 'sleep 1.5; echo 3 > "$1/exit_code"; sleep 1', "w", str(tmp_path)])
    try:
        run = a_run(tmp_path, writer.pid, age=100)
        action, _ = wait_with(monkeypatch, {"run_dir": str(run), "window": 20, "min_window": 20, "interval": 0.5})
        started = time.monotonic()
        res = action.run(task_vars={})
        took = time.monotonic() - started
    finally:
        writer.wait()
    assert res["done"] and res["exit_code"] == 3 and res["rounds"] == 1 and took < 8, (res, took)
    assert 0 <= res["noticed_after"] <= 1.5, res


def test_check_mode_waits_for_nothing(monkeypatch):
    action, commands = wait_with(monkeypatch, {"run_dir": RUN}, check_mode=True)
    assert action.run(task_vars={})["skipped"] and not commands


# ------------------------------------------------------------------ the action's loop: one task, any length
def make_action(monkeypatch, answers, args=None, check_mode=False, keep=None):
    """A wanbench_wait action whose rounds answer from the iterator answers (a result or an exception);
    the rounds and the printed lines are recorded (the last `keep` of them when given)."""
    import collections

    action = wait_action.ActionModule.__new__(wait_action.ActionModule)
    action._task = FakeTask({"run_dir": RUN, "label": "ffn_only (candidate)", "reconnect_sleep": 0, **(args or {})},
                            check_mode)
    action._connection = FakeConnection()
    calls, lines = collections.deque(maxlen=keep), collections.deque(maxlen=keep)
    counted = {"calls": 0, "lines": 0}

    def look(params):
        calls.append(params)
        counted["calls"] += 1
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    action.look = look
    monkeypatch.setattr(wait_action.ActionBase, "run", lambda self, tmp=None, task_vars=None: {})

    def show(msg, *args, **kwargs):
        lines.append(msg)
        counted["lines"] += 1

    monkeypatch.setattr(wait_action.display, "display", show)
    action.counted = counted
    return action, calls, lines


def test_a_run_over_two_hours_is_waited_out_with_constant_stack_and_memory(monkeypatch):
    """1,000 rounds of 20 s (5.5 h of a sleeping run, simulated): one task, no recursion.
    A recursive include failed at 200-250 rounds; here the stack depth and the traced memory
    of the loop are the same at round 1,000 as at round 10."""
    import inspect
    import tracemalloc

    depths, memory = [], {}
    rounds = 1000

    def answers():
        for n in range(1, rounds + 1):
            depths.append(len(inspect.stack(0)))
            if n in (10, rounds):  # memory held by the action plugin's own code
                snapshot = tracemalloc.take_snapshot().filter_traces(
                    [tracemalloc.Filter(True, wait_action.__file__)])
                memory[n] = sum(stat.size for stat in snapshot.statistics("filename"))
            done = n == rounds
            yield {"done": done, "exit_code": 0 if done else None, "elapsed": 20 * n, "run_dir": RUN,
                   "progress": f"finished with exit code 0 after {20 * n} s" if done
                   else f"generating, step {n % 20}/20, elapsed {20 * n} s"}

    action, calls, lines = make_action(monkeypatch, answers(), keep=2)
    tracemalloc.start()
    try:
        res = action.run(task_vars={})
    finally:
        tracemalloc.stop()
    assert res["done"] and res["exit_code"] == 0 and res["rounds"] == rounds and res["elapsed"] > 2 * 3600
    assert action.counted["calls"] == rounds and calls[-1]["run_dir"] == RUN
    assert len(set(depths)) == 1, "the stack grew from round to round"
    assert memory[rounds] - memory[10] < 4096, memory
    assert action.counted["lines"] == rounds
    assert list(lines) == ["ffn_only (candidate): generating, step 19/20, elapsed 19980 s",
                           "ffn_only (candidate): finished with exit code 0 after 20000 s"]


def test_a_lost_ssh_connection_is_waited_out(monkeypatch):
    lost = wait_action.AnsibleConnectionFailure("ssh: connect to host 127.0.0.1 port 2222: Connection refused")
    answers = iter([{"done": False, "progress": "generating, elapsed 5 s"}, lost, lost,
                    {"done": True, "exit_code": 0, "progress": "finished with exit code 0 after 30 s"}])
    action, calls, lines = make_action(monkeypatch, answers)
    res = action.run(task_vars={})
    assert res["done"] and res["reconnects"] == 1 and res["rounds"] == 2 and action._connection.resets == 2
    assert lines[1].startswith("ffn_only (candidate): SSH connection lost (ssh: connect to host")
    assert lines[2].startswith("ffn_only (candidate): SSH connection back after")


def test_a_session_cut_under_a_round_is_a_lost_connection_not_an_unreadable_run(monkeypatch):
    """ssh exits 255 ("Shared connection to 127.0.0.1 closed.") when sshd's session is killed during a round:
    the wait waits for the connection (seen in CI: the SSH-loss play failed with "cannot read run directory")."""
    cut = iter([(255, "", "Shared connection to 127.0.0.1 closed.\n")])
    action, commands = wait_with(monkeypatch, {"run_dir": RUN}, shell=lambda argv: next(cut, (0, "", "")))
    with pytest.raises(wait_action.AnsibleConnectionFailure, match="Shared connection"):
        action.look(action._task.args | {"container": "", "docker": "docker", "interval": 1, "window": 0,
                                         "min_window": 0, "timeout": 60, "start_grace": 60,
                                         "kill_on_timeout": True, "label": "x", "platform": ""})
    action, _ = wait_with(monkeypatch, {"run_dir": RUN}, shell=lambda argv: (1, "", "No such file"))
    assert action.call(["true"])["rc"] == 1  # any other failure of the round is the run's, not the connection's


def test_a_host_that_stays_away_fails_the_wait(monkeypatch):
    lost = wait_action.AnsibleConnectionFailure("gone")
    action, _, _ = make_action(monkeypatch, iter([lost] * 10), args={"reconnect_timeout": 0})
    clock = iter(range(0, 100, 5))
    monkeypatch.setattr(wait_action.time, "monotonic", lambda: next(clock))
    res = action.run(task_vars={})
    assert res["failed"] and res["unreachable"] and "unreachable for more than 0 s" in res["msg"]


def test_a_failed_run_ends_the_wait_with_its_cause(monkeypatch):
    action, _, lines = make_action(monkeypatch, iter([{"failed": True, "status": "died", "msg": "ended without"}]))
    res = action.run(task_vars={})
    assert res["failed"] and res["status"] == "died" and not lines


WAIT_PLAY = """\
- name: Wait for a sleeping fake workload
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Wait for the run
      wanbench_wait:
        run_dir: "{{ run_dir }}"
        window: 2
        min_window: 1
        timeout: 86400
        label: fake
      register: waited

    - name: Keep the result
      ansible.builtin.copy:
        content: "{{ waited | to_json }}"
        dest: "{{ run_dir }}/../result.json"
        mode: "0644"
"""


def test_the_end_of_a_run_is_noticed_within_two_seconds(tmp_path):
    """A real play against a sleeping fake workload whose run started 2 h 10 min ago (.pid
    back-dated): the wait task prints its progress and notices the exit_code within 2 s."""
    import sys
    import time

    run_dir = tmp_path / "runs" / "20261127T000000Z-fake-abc123"
    run_dir.mkdir(parents=True)
    (run_dir / "run.sh").write_text("#!/bin/bash\n")
    (tmp_path / "play.yml").write_text(WAIT_PLAY)
    # The workload ends 5 s after the wait's first round touched the lock file (however long the
    # play took to start on a loaded machine): at 2 s a round, the wait prints progress first.
    (run_dir.parent / ".holder").write_text("{}\n")
    os.utime(run_dir.parent / ".holder", (1, 1))
    workload = subprocess.Popen(["sh", "-c", 'echo $$ > "$1/.pid"; touch -d "-130 minutes" "$1/.pid"; '
                                 'for _ in $(seq 600); do [ "$(stat -c %Y "$1/../.holder")" != 1 ] && break; sleep 0.1; done; '
                                 'sleep 5; echo 0 > "$1/exit_code.tmp"; mv "$1/exit_code.tmp" "$1/exit_code"', "fake",
                                 str(run_dir)])
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "ANSIBLE_LIBRARY": str(REPO / "library"), "ANSIBLE_ACTION_PLUGINS": str(REPO / "action_plugins"),
           "ANSIBLE_LOCALHOST_WARNING": "false", "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
           "ANSIBLE_HOME": str(tmp_path / ".ansible"), "ANSIBLE_FORCE_COLOR": "0"}
    try:
        done = subprocess.run([str(bin_dir / "ansible-playbook"), "-i", "localhost,", "play.yml", "-e",
                               f"ansible_python_interpreter={sys.executable}", "-e", f"run_dir={run_dir}"],
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
        finished = time.time()
    finally:
        workload.wait(timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr
    res = json.loads((tmp_path / "runs" / "result.json").read_text())
    assert res["done"] and res["exit_code"] == 0 and res["rounds"] >= 2 and res["elapsed"] >= 130 * 60
    assert 0 <= res["noticed_after"] <= 2.0, res["noticed_after"]
    assert "fake: loading, elapsed 78" in done.stdout and "fake: finished with exit code 0 after 78" in done.stdout
    assert finished - (run_dir / "exit_code").stat().st_mtime < 2.0 + 3.0  # + the play's own teardown


# ------------------------------------------------------------------ wanbench_preflight: one call, the lock
def load(name, folder="library"):
    s = importlib.util.spec_from_file_location(f"{name}_{folder}", REPO / folder / f"{name}.py")
    m = importlib.util.module_from_spec(s)
    s.loader.exec_module(m)
    return m


wanbench_preflight = load("wanbench_preflight")


def preflight(monkeypatch, capsys, args, fakes=None):
    """Run the module; the workspace script runs for real (on this host), docker/npu-smi are faked."""
    calls = []
    real = basic.AnsibleModule.run_command

    def run_command(self, argv, **kwargs):
        calls.append(argv)
        for prefix, answer in (fakes or {}).items():
            if argv[0] == prefix:
                return answer
        return real(self, argv, **kwargs)

    monkeypatch.setattr(basic.AnsibleModule, "run_command", run_command)
    with patch_module_args({"tools": ["sh"], "min_free_gb": 0, **args}):
        with pytest.raises(SystemExit) as exc:
            wanbench_preflight.main()
    return exc.value.code, json.loads(capsys.readouterr().out), calls


HOLDER = {"play_id": "20261127T000000Z-aaaaaa", "variant": "ffn_only", "controller": "me@here", "pid": 1,
          "started_at": "2026-11-27T00:00:00Z"}


def test_preflight_takes_checks_and_releases_the_lock(monkeypatch, capsys, tmp_path):
    root = tmp_path / "runs"
    rc, out, _ = preflight(monkeypatch, capsys, {"run_root": str(root), "lock": "acquire", "holder": HOLDER})
    assert rc == 0 and out["changed"] and out["lock_state"] == "acquired" and out["holder"] == HOLDER
    assert json.loads((root / ".holder").read_text()) == HOLDER and out["problems"] == []
    other = {**HOLDER, "play_id": "20261127T000001Z-bbbbbb", "variant": "gate1"}
    rc, out, _ = preflight(monkeypatch, capsys, {"run_root": str(root), "lock": "acquire", "holder": other})
    assert rc == 1 and out["lock_state"] == "held" and out["holder"] == HOLDER
    assert ("the host is locked by play 20261127T000000Z-aaaaaa (variant ffn_only, me@here, pid 1, "
            "since 2026-11-27T00:00:00Z)") in out["msg"] and "still running" not in out["msg"]
    rc, out, _ = preflight(monkeypatch, capsys, {"run_root": str(root), "lock": "release", "holder": other})
    assert rc == 0 and out["lock_state"] == "none" and (root / ".holder").exists(), "released another play's lock"
    rc, out, _ = preflight(monkeypatch, capsys, {"run_root": str(root), "lock": "release", "holder": HOLDER})
    assert rc == 0 and out["lock_state"] == "released" and not (root / ".holder").exists()
    rc, out, _ = preflight(monkeypatch, capsys, {"run_root": str(root), "lock": "check"})
    assert rc == 0 and out["lock_state"] == "free" and not out["changed"]


@pytest.mark.parametrize("content", ["", "1\n", "[]\n", '{"play_id": "2026'])
def test_preflight_names_a_broken_holder_without_a_traceback(monkeypatch, capsys, tmp_path, content):
    """An empty, cut or non-record .holder (written by hand, or by an older version on a full disk) is
    named as unreadable, never a crash; acquiring leaves it as it is."""
    root = tmp_path / "runs"
    root.mkdir()
    (root / ".holder").write_text(content)
    rc, out, _ = preflight(monkeypatch, capsys, {"run_root": str(root), "lock": "acquire", "holder": HOLDER})
    assert rc == 1 and out["lock_state"] == "held" and set(out["holder"]) == {"unreadable"}
    assert "the host is locked by an unreadable holder" in out["msg"] and str(root / ".holder") in out["msg"]
    assert (root / ".holder").read_text() == content and sorted(p.name for p in root.iterdir()) == [".holder"]


def test_preflight_acquire_needs_a_holder_and_writes_it_whole(monkeypatch, capsys, tmp_path):
    root = tmp_path / "runs"
    rc, out, _ = preflight(monkeypatch, capsys, {"run_root": str(root), "lock": "acquire", "holder": {}})
    assert rc == 1 and "needs the play's holder record" in out["msg"] and not (root / ".holder").exists()
    rc, out, _ = preflight(monkeypatch, capsys, {"run_root": str(root), "lock": "acquire", "holder": HOLDER})
    assert rc == 0 and sorted(p.name for p in root.iterdir()) == [".holder"]  # no temporary file left


def test_the_holder_lines_survive_a_release_between_the_two_reads(tmp_path):
    """The lock's record is printed only when both of its reads succeed: a holder removed between them
    (another play releasing) prints nothing, and the script's status stays 0."""
    hold = tmp_path / ".holder"
    script = f'hold={shlex.quote(str(hold))}; stat() {{ command stat "$@"; rm -f "$hold"; }}\n' + PRINT_HOLDER
    hold.write_text(json.dumps(HOLDER) + "\n")
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout == "" and out.stderr == ""
    hold.write_text(json.dumps(HOLDER) + "\n")
    out = subprocess.run(["bash", "-c", f"hold={shlex.quote(str(hold))}\n" + PRINT_HOLDER], capture_output=True,
                         text=True)
    assert lock_holder(parse_lines(out.stdout))["holder"] == HOLDER


def test_preflight_takeover_only_when_no_run_holds_the_run_lock(monkeypatch, capsys, tmp_path):
    root = tmp_path / "runs"
    root.mkdir()
    (root / ".holder").write_text(json.dumps(HOLDER, sort_keys=True) + "\n")
    new = {**HOLDER, "play_id": "20261127T000001Z-bbbbbb"}
    holding = subprocess.Popen(["flock", str(root / ".lock"), "sleep", "30"], start_new_session=True)
    try:
        import time
        time.sleep(0.3)
        rc, out, _ = preflight(monkeypatch, capsys, {"run_root": str(root), "lock": "acquire", "holder": new,
                                                     "takeover": HOLDER["play_id"]})
        assert rc == 1 and out["run_busy"] and "a run of it is still running" in out["msg"]
    finally:
        import signal
        os.killpg(holding.pid, signal.SIGKILL)  # flock and its sleep, which holds the lock too
        holding.wait()
    rc, out, _ = preflight(monkeypatch, capsys, {"run_root": str(root), "lock": "acquire", "holder": new,
                                                 "takeover": HOLDER["play_id"]})
    assert rc == 0 and out["lock_state"] == "taken-over" and json.loads((root / ".holder").read_text()) == new


def test_preflight_lists_every_problem_and_leaves_the_host_unlocked(monkeypatch, capsys, tmp_path):
    root = tmp_path / "runs"
    rc, out, _ = preflight(monkeypatch, capsys, {
        "run_root": str(root), "lock": "acquire", "holder": HOLDER, "tools": ["sh", "no-such-tool-x"],
        "repo_dir": str(tmp_path / "nope"), "min_free_gb": 1e9})
    assert rc == 1 and out["lock_state"] == "released" and not (root / ".holder").exists()
    assert out["problems"][0] == "missing on the login PATH: no-such-tool-x"
    assert out["problems"][1] == f"no directory {tmp_path / 'nope'}"
    assert out["problems"][2].startswith("only ") and "GiB free on" in out["problems"][2]


def test_preflight_container_and_devices(monkeypatch, capsys, tmp_path):
    stopped = json.dumps([{"State": {"Running": False, "Status": "exited"}}])
    rc, out, calls = preflight(monkeypatch, capsys, {"run_root": str(tmp_path), "container": "c", "lock": "acquire",
                                                     "holder": HOLDER}, {"docker": (0, stopped, "")})
    assert rc == 1 and out["msg"] == "container c is not running (state exited); start it with `docker start c`"
    assert calls == [["docker", "container", "inspect", "c"]] and not (tmp_path / ".holder").exists()


NPU_IDLE = REPO / "tests" / "fixtures" / "devices" / "npu-smi-info-910b-idle.txt"


def test_preflight_runs_a_capture_command_where_it_exists_and_says_where(monkeypatch, capsys, tmp_path):
    """npu-smi absent where the repo lives (a login shell whose PATH lacks it) but present on the host:
    a stand-in npu-smi (printing a fixture) in a folder that only host_path puts on PATH."""
    tools = tmp_path / "host-tools"
    tools.mkdir()
    (tools / "npu-smi").write_text(f"#!/bin/sh\ncat {shlex.quote(str(NPU_IDLE))}\n")
    (tools / "npu-smi").chmod(0o755)
    capture = [{"name": "npu_smi", "argv": ["npu-smi", "info"], "places": ["workload", "host"]}]
    where_repo = ["env", "PATH=/usr/bin:/bin"]  # stands for docker exec: the login PATH there has no npu-smi
    rc, out, calls = preflight(monkeypatch, capsys, {"run_root": str(tmp_path), "exec": where_repo,
                                                     "capture": capture, "host_path": str(tools)})
    assert rc == 0, out
    got = out["capture"]["npu_smi"]
    assert got["where"] == "host" and got["rc"] == 0 and got["stdout"] == NPU_IDLE.read_text()
    assert calls[0][:4] == where_repo + ["bash", "-lc"] and calls[1][:2] == ["sh", "-c"]
    rc, out, _ = preflight(monkeypatch, capsys, {"run_root": str(tmp_path), "exec": where_repo, "capture": capture})
    got = out["capture"]["npu_smi"]  # nowhere: the first place's result, each place's last line
    assert rc == 0 and got["where"] == "workload" and got["rc"] == 127
    assert re.fullmatch(r"workload: .*npu-smi.*not found; host: .*npu-smi.*not found", got["stderr"]), got["stderr"]


def test_preflight_names_the_missing_piece_of_the_platform_environment(monkeypatch, capsys, tmp_path):
    env = {"imports": ["json", "torch_npu_absent"], "env": ["WANBENCH_TEST_UNSET_VAR", "HOME"]}
    rc, out, _ = preflight(monkeypatch, capsys, {"run_root": str(tmp_path), "platform": "npu", "environment": env})
    assert rc == 1
    assert out["problems"] == ["the login shell where the repo lives lacks the npu environment: WANBENCH_TEST_UNSET_VAR "
                               "not set; python3 cannot import torch_npu_absent: ModuleNotFoundError: No module named "
                               "'torch_npu_absent'"], out["problems"]


def test_preflight_check_mode_never_takes_the_lock(monkeypatch, capsys, tmp_path):
    rc, out, _ = preflight(monkeypatch, capsys, {"run_root": str(tmp_path), "lock": "acquire", "holder": HOLDER,
                                                 "_ansible_check_mode": True})
    assert rc == 0 and out["lock_state"] == "free" and not out["changed"] and not (tmp_path / ".holder").exists()


preflight_action = load("wanbench_preflight", "action_plugins")


@pytest.mark.parametrize("holder,age,expected", [
    ({**HOLDER, "controller": "me@here", "pid": 999999999}, 0, "its ansible-playbook (pid 999999999 on me@here) is gone"),
    ({**HOLDER, "controller": "me@here", "pid": os.getpid()}, 0, ""),
    ({**HOLDER, "controller": "you@there", "pid": 1}, 901, "it was last seen 901 s ago (more than 900 s)"),
    ({**HOLDER, "controller": "you@there", "pid": 1}, 899, ""),
    ({"unreadable": "x"}, 5000, ""),
    # a pid reused by another process (pid 1, here init) is stale by its start time or boot; an old
    # record without them is judged by the pid alone, as before
    ({**HOLDER, "controller": "me@here", "pid": 1, "pid_start": 123456789, "boot_id": rundirs.boot_id()}, 0,
     "its ansible-playbook (pid 1 on me@here) is gone: the pid now names another process (started at tick "
     f"{rundirs.pid_start(1)}, not 123456789)"),
    ({**HOLDER, "controller": "me@here", **rundirs.process_identity(1)}, 0, ""),
    ({**HOLDER, "controller": "me@here", **rundirs.process_identity(1), "boot_id": "another-boot"}, 0,
     "its ansible-playbook (pid 1 on me@here) ran before this machine's last boot"),
    ({**HOLDER, "controller": "me@here", "pid": 1}, 0, ""),
    ({**HOLDER, "controller": "you@there", "pid": 1, "pid_start": 5, "boot_id": "x"}, 10, ""),
])
def test_stale_holders(holder, age, expected):
    assert preflight_action.stale_reason(holder, age, 900, "me@here") == expected


# ------------------------------------------------------------------ wanbench_rundir and wanbench_collect
wanbench_collect = load("wanbench_collect")
rundir_action = load("wanbench_rundir", "action_plugins")


def make_rundir_action(monkeypatch, args, check_mode=False, shell=None):
    """The wanbench_rundir action with its one command run by shell(cmd, in_data) -> (rc, stdout, stderr)
    (default: really, by /bin/sh on this machine); the commands are recorded."""
    action = rundir_action.ActionModule.__new__(rundir_action.ActionModule)
    action._task = FakeTask(args, check_mode)
    commands = []

    def low_level(cmd, in_data=None, **kwargs):
        commands.append((cmd, in_data))
        if shell:
            rc, out, err = shell(cmd, in_data)
        else:
            done = subprocess.run(["sh", "-c", cmd], input=in_data, capture_output=True)
            rc, out, err = done.returncode, done.stdout.decode(), done.stderr.decode()
        return {"rc": rc, "stdout": out, "stderr": err}

    action._low_level_execute_command = low_level
    monkeypatch.setattr(rundir_action.ActionBase, "run", lambda self, tmp=None, task_vars=None: {})
    return action, commands


def test_rundir_writes_files_on_the_host_and_never_reuses_a_directory(monkeypatch, tmp_path):
    args = {"path": str(tmp_path / "runs" / "r1"), "files": {"run.sh": "#!/bin/bash\n", "manifest.json": "{}\n"},
            "executable": ["run.sh"]}
    action, commands = make_rundir_action(monkeypatch, args)
    res = action.run(task_vars={})
    assert res["changed"] and not res.get("failed") and res["files"] == ["manifest.json", "run.sh"], res
    assert oct((tmp_path / "runs" / "r1" / "run.sh").stat().st_mode & 0o777) == "0o755"
    assert oct((tmp_path / "runs" / "r1" / "manifest.json").stat().st_mode & 0o777) == "0o644"
    assert (tmp_path / "runs" / "r1" / "manifest.json").read_text() == "{}\n"
    assert len(commands) == 1, "one command per run directory"
    res = action.run(task_vars={})
    assert res["failed"] and res["msg"].startswith(f"cannot write {tmp_path}/runs/r1: mkdir:") and "File exists" in res["msg"]


def test_rundir_on_a_full_disk_leaves_no_half_written_directory(monkeypatch, small_fs):
    """A run root with too little space: the command fails naming the cause, and no run directory with
    0-byte or cut run.sh / manifest.json is left for collect to bring into results/."""
    mnt, fill = small_fs
    fill(leave=4096)
    args = {"path": str(mnt / "runs" / "r1"), "files": {"run.sh": "#!/bin/bash\n" + "# x\n" * 4000,
                                                         "manifest.json": "{}\n"}, "executable": ["run.sh"]}
    action, _ = make_rundir_action(monkeypatch, args)
    res = action.run(task_vars={})
    assert res["failed"] and res["msg"].startswith(f"cannot write {mnt}/runs/r1: tar:") and "No space left" in res["msg"]
    assert os.listdir(mnt / "runs") == []


def test_rundir_in_a_container_is_one_docker_exec_with_a_tar_stream(monkeypatch):
    import io
    import shlex
    import tarfile

    action, commands = make_rundir_action(
        monkeypatch, {"path": RUN, "container": "c", "files": {"run.sh": "echo hi\n"}, "executable": ["run.sh"]},
        shell=lambda cmd, data: (0, "", ""))
    res = action.run(task_vars={})
    assert res["changed"] and not res.get("failed")
    ((cmd, data),) = commands
    assert shlex.split(cmd) == ["docker", "exec", "-i", "c", "sh", "-c", rundir_action.UNPACK, "wanbench-rundir", RUN]
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        (member,) = tar.getmembers()
        assert (member.name, member.mode, tar.extractfile(member).read()) == ("run.sh", 0o755, b"echo hi\n")


@pytest.mark.parametrize("args,needle", [
    ({"path": RUN, "files": {"../run.sh": "x"}}, "file names must be plain names, got ['../run.sh']"),
    ({"path": RUN, "files": {}}, "path and files (a mapping of names to text) are required"),
    ({"files": {"run.sh": "x"}}, "path and files (a mapping of names to text) are required"),
])
def test_rundir_refuses_bad_arguments_before_any_command(monkeypatch, args, needle):
    action, commands = make_rundir_action(monkeypatch, args)
    res = action.run(task_vars={})
    assert res["failed"] and needle in res["msg"] and not commands


def test_rundir_in_check_mode_writes_nothing(monkeypatch, tmp_path):
    action, commands = make_rundir_action(monkeypatch, {"path": str(tmp_path / "r"), "files": {"run.sh": "x"}},
                                          check_mode=True)
    assert action.run(task_vars={})["changed"] and not commands and not (tmp_path / "r").exists()


collect_action = load("wanbench_collect", "action_plugins")


def make_collect_action(monkeypatch, args, check_mode=False):
    """The wanbench_collect action with its commands run by /bin/sh on this machine (the host) and
    fetch_file a copy; the commands are recorded."""
    import shutil

    action = collect_action.ActionModule.__new__(collect_action.ActionModule)
    action._task = FakeTask(args, check_mode)
    action._connection = FakeConnection()
    commands, fetched = [], []

    def low_level(cmd, in_data=None, **kwargs):
        commands.append(cmd)
        done = subprocess.run(["sh", "-c", cmd], input=in_data, capture_output=True, text=True)
        return {"rc": done.returncode, "stdout": done.stdout, "stderr": done.stderr}

    action._low_level_execute_command = low_level
    action._connection.fetch_file = lambda src, dst: (fetched.append(src), shutil.copy(src, dst))
    action._remove_tmp_path = lambda path: None
    monkeypatch.setattr(collect_action.ActionBase, "run", lambda self, tmp=None, task_vars=None: {})
    return action, commands, fetched


def a_run_dir(tmp_path, names=("run.log", "exit_code", ".pid")):
    run_dir = tmp_path / "runs" / "20261127T000000Z-ffn_only-abc123"
    run_dir.mkdir(parents=True)
    for name in names:
        (run_dir / name).write_text(name)
    return run_dir


def test_collect_fetches_a_small_run_in_one_command(monkeypatch, tmp_path):
    run_dir = a_run_dir(tmp_path)
    archive = tmp_path / "stage" / "a.tar.gz"
    action, commands, fetched = make_collect_action(
        monkeypatch, {"run_dir": str(run_dir), "archive": str(archive), "dest": str(tmp_path / "results")})
    res = action.run(task_vars={})
    assert res["changed"] and not res.get("failed") and res["files"] == 3, res
    got = tmp_path / "results" / run_dir.name
    assert res["path"] == str(got) and sorted(p.name for p in got.iterdir()) == [".pid", "exit_code", "run.log"]
    assert (got / "exit_code").read_text() == "exit_code"
    assert len(commands) == 1 and not fetched, "a small archive comes back in the one command's output"
    assert not archive.exists() and not (tmp_path / "stage" / "a.tar.gz.err").exists()
    assert run_dir.is_dir(), "the run directory is kept unless keep_run_dir is false"


def test_collect_fetches_a_large_archive_and_cleans_up(monkeypatch, tmp_path):
    run_dir = a_run_dir(tmp_path, names=())
    (run_dir / "perf.csv").write_bytes(os.urandom(4096))
    archive = tmp_path / "stage" / "a.tar.gz"
    action, commands, fetched = make_collect_action(
        monkeypatch, {"run_dir": str(run_dir), "archive": str(archive), "dest": str(tmp_path / "results"),
                      "inline_max": 1024, "keep_run_dir": False})
    res = action.run(task_vars={})
    assert res["files"] == 1 and not res.get("failed"), res
    assert fetched == [str(archive)] and len(commands) == 2, "pack, then one clean-up command"
    assert (tmp_path / "results" / run_dir.name / "perf.csv").stat().st_size == 4096
    assert not archive.exists() and not run_dir.exists()


def test_collect_leaves_the_output_where_the_run_lives(monkeypatch, tmp_path):
    run_dir = a_run_dir(tmp_path, names=("run.log", "exit_code", "output.npy", "output.npy.sha"))
    args = {"run_dir": str(run_dir), "archive": str(tmp_path / "a.tar.gz"), "dest": str(tmp_path / "results"),
            "leave_out": "output.npy"}
    action, _, _ = make_collect_action(monkeypatch, args)
    res = action.run(task_vars={})
    assert res["files"] == 3 and not res.get("failed"), res
    assert sorted(p.name for p in (tmp_path / "results" / run_dir.name).iterdir()) == [
        "exit_code", "output.npy.sha", "run.log"]
    assert (run_dir / "output.npy").is_file(), "scored on the host, kept there"
    for bad in ("../x", "."):
        action, commands, _ = make_collect_action(monkeypatch, {**args, "leave_out": bad,
                                                                "dest": str(tmp_path / "other")})
        res = action.run(task_vars={})
        assert res["failed"] and "leave_out must be a file name" in res["msg"] and not commands


def test_collect_names_a_missing_run_directory(monkeypatch, tmp_path):
    action, _, _ = make_collect_action(monkeypatch, {"run_dir": str(tmp_path / "gone"),
                                                     "archive": str(tmp_path / "a.tar.gz"), "dest": str(tmp_path)})
    res = action.run(task_vars={})
    assert res["failed"] and res["msg"] == f"cannot pack {tmp_path / 'gone'}: no run directory {tmp_path}/gone"
    assert not (tmp_path / "a.tar.gz").exists()


def test_collect_through_an_exec_prefix_and_in_check_mode(monkeypatch, tmp_path):
    run_dir = a_run_dir(tmp_path)
    args = {"run_dir": str(run_dir), "archive": str(tmp_path / "a.tar.gz"), "dest": str(tmp_path / "results"),
            "exec": ["env", "WANBENCH_WHERE=container"]}
    action, commands, _ = make_collect_action(monkeypatch, args, check_mode=True)
    assert action.run(task_vars={})["skipped"] and not commands
    action, commands, _ = make_collect_action(monkeypatch, args)
    assert action.run(task_vars={})["files"] == 3
    assert commands[0].endswith(shlex_join(["env", "WANBENCH_WHERE=container"]))


def shlex_join(words):
    import shlex
    return shlex.join(words)


@pytest.mark.parametrize("module", ["wanbench_collect", "wanbench_rundir", "wanbench_wait"])
def test_ansible_doc_reads_each_action_only_module(module):
    """These files are only documentation (their action plugins do the work): ansible-doc shows it;
    a description line that YAML reads as a mapping breaks it."""
    import sys
    done = subprocess.run([str(Path(sys.executable).parent / "ansible-doc"), "-M", str(REPO / "library"), module],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert module in done.stdout.split("\n", 1)[0] and "RETURN VALUES" in done.stdout, done.stdout[:500]
