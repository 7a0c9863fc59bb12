#!/usr/bin/python
# -*- coding: utf-8 -*-
# wanbench: wait for a detached run, polling its run directory; returns progress.
from __future__ import annotations

DOCUMENTATION = r"""
module: wanbench_wait
short_description: Wait a while for a detached wanbench run and report its progress
description:
  - Polls a run directory (on the host, or inside a docker container through C(docker exec))
    every O(interval) seconds and returns as soon as the run has written its C(exit_code) file,
    or when the window ends.
  - The window adapts to the run's age, so that progress shows early and long runs print few
    lines; it is the run's elapsed time, kept between O(min_window) and O(window) seconds.
  - Progress comes from the workload log C(run.log), the last tqdm C(k/N) and phase markers.
  - Its action plugin (action_plugins/wanbench_wait.py) calls it round after round until the run
    ends, printing each round's progress; every call is read-only, so it is safe to repeat after
    an SSH connection loss.
  - Fails when the run ended without writing an exit code, never started, or exceeded O(timeout)
    (then its process group is stopped unless O(kill_on_timeout) is false); the result names the
    C(status) (died, not-started, timeout, unreadable), the C(cause) and the C(log_tail).
options:
  run_dir:
    description: Run directory (holds C(.pid), C(run.log), C(exit_code)).
    type: path
    required: true
  container:
    description: Docker container that holds O(run_dir); empty means the host itself.
    type: str
    default: ""
  docker:
    description: Docker CLI on the host.
    type: str
    default: docker
  window:
    description: Longest wait in this call before returning progress, in seconds.
    type: int
    default: 30
  min_window:
    description: Shortest wait in this call before returning progress, in seconds.
    type: int
    default: 5
  interval:
    description: Seconds between two looks at the run directory (at most 0.25 s in a run's first 5 s).
    type: float
    default: 1.0
  timeout:
    description: Seconds since the run started after which the wait fails (the run keeps running).
    type: int
    default: 3600
  start_grace:
    description: Seconds after the run script was written within which the run must have started.
    type: int
    default: 120
  kill_on_timeout:
    description: At the timeout, stop the run's process group (TERM, KILL after 10 s) so that the next run
      finds the host free; false leaves it running.
    type: bool
    default: true
  label:
    description: Name shown in the progress lines (action plugin); empty means the run directory's name.
    type: str
    default: ""
  reconnect_timeout:
    description: Seconds the action plugin waits for a lost SSH connection to come back.
    type: float
    default: 300
  reconnect_sleep:
    description: Seconds between two reconnection attempts (action plugin).
    type: float
    default: 2
author: wanbench
"""

EXAMPLES = r"""
- name: Wait up to 30 s for the run
  wanbench_wait:
    run_dir: /root/wanbench/runs/20261126T120000Z-ffn_only-a1b2c3
    container: mindie-wan2.1-xysheng
    window: 30
  register: wait_poll
"""

RETURN = r"""
done:
  description: Whether the run has finished (its exit_code file exists).
  type: bool
  returned: success
exit_code:
  description: Exit status of the workload, once done.
  type: int
  returned: success
phase:
  description: loading, warm-up, generating, saving, finished or starting.
  type: str
  returned: success
step:
  description: Last tqdm step seen in run.log.
  type: int
  returned: success
total:
  description: Total steps of the last tqdm bar seen.
  type: int
  returned: success
elapsed:
  description: Seconds since the run started.
  type: int
  returned: success
noticed_after:
  description: Seconds between the run writing its exit_code and this look noticing it.
  type: float
  returned: when done
status:
  description: C(ok) or C(failed) (non-zero exit code) when done; C(died), C(timeout), C(not-started) or C(unreadable) on failure.
  type: str
  returned: when done or failed
cause:
  description: Why the run did not end cleanly, e.g. C(exit code 1).
  type: str
  returned: when the run failed
log_tail:
  description: The last non-empty lines of run.log.
  type: list
  elements: str
  returned: when the run failed
run_dir:
  description: The run directory watched.
  type: str
  returned: always
progress:
  description: One line for people, e.g. C(generating, step 7/20, elapsed 42 s).
  type: str
  returned: always
"""

import re
import time

from ansible.module_utils.basic import AnsibleModule

# Prints the run's state; the run directory arrives as $1, never inside the script text.
# Liveness is checked before exit_code: the run writes exit_code before it exits.
STATUS_SCRIPT = r"""
cd "$1" 2>/dev/null || { echo state=nodir; exit 0; }
touch -c ../.holder 2>/dev/null  # the play holding the host lock is alive (see wanbench_preflight)
echo "now=$(date +%s.%N)"
[ -f run.sh ] && echo "written=$(stat -c %Y run.sh)"
if [ -f .pid ]; then
  echo "start=$(stat -c %Y .pid)"
  echo "pid=$(cat .pid)"
  if kill -0 "$(cat .pid)" 2>/dev/null; then echo alive=1; else echo alive=0; fi
fi
if [ -f exit_code ]; then
  echo "exit_code=$(cat exit_code)"
  echo "ended=$(stat -c %.3Y exit_code 2>/dev/null || stat -c %Y exit_code)"
fi
echo "--log--"
tail -c 65536 run.log 2>/dev/null
exit 0
"""

EARLY_INTERVAL, EARLY_SECONDS = 0.25, 5
TQDM_RE = re.compile(r"(\d+)/(\d+) \[")
PHASES = (("Finished.", "finished"), ("Saving generated video", "saving"),
          ("Generating video ...", "generating"), ("Warm up", "warm-up"))


def status_argv(params):
    """argv that prints the run's state, on the host or through docker exec."""
    inner = ["sh", "-c", STATUS_SCRIPT, "wanbench-wait", params["run_dir"]]
    if params["container"]:
        return [params["docker"], "exec", params["container"]] + inner
    return inner


def parse_status(text):
    """{key: value} of the header lines, plus 'log' (the log tail)."""
    head, _, log = text.partition("--log--\n")
    state = {"log": log}
    for line in head.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            state[key.strip()] = value.strip()
    return state


def progress_of(log):
    """(phase, step, total) from a run.log tail."""
    phase, where = "loading", -1
    for marker, name in PHASES:
        pos = log.rfind(marker)
        if pos > where:
            phase, where = name, pos
    step = total = None
    matches = TQDM_RE.findall(log)
    if matches:
        step, total = (int(x) for x in matches[-1])
    return phase, step, total


def describe(phase, step, total, elapsed):
    bits = [phase]
    if step is not None and phase in ("warm-up", "generating"):
        bits.append(f"step {step}/{total}")
    bits.append(f"elapsed {elapsed} s")
    return ", ".join(bits)


def log_tail(log, lines=10):
    """The last non-empty lines of a log tail (tqdm carriage returns split)."""
    return [line for line in log.replace("\r", "\n").splitlines() if line.strip()][-lines:]


def kill_argv(params, pid):
    """argv that stops the run's process group (the run script is its session leader)."""
    inner = ["sh", "-c", KILL_SCRIPT, "wanbench-kill", str(pid)]
    if params["container"]:
        return [params["docker"], "exec", params["container"]] + inner
    return inner


# TERM to the run's process group, KILL after 10 s; the pid arrives as $1.
KILL_SCRIPT = r"""
kill -TERM -- "-$1" 2>/dev/null || kill -TERM "$1" 2>/dev/null
for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$1" 2>/dev/null || exit 0; sleep 1; done
kill -KILL -- "-$1" 2>/dev/null || kill -KILL "$1" 2>/dev/null
exit 0
"""


def fail(module, status, msg, **res):
    """Fail the module with the run's status (died, timeout, not-started, unreadable) and cause."""
    module.fail_json(msg=msg, status=status, cause=msg, **{"run_dir": module.params["run_dir"], **res})


def look(module):
    """One look at the run directory; returns a result dict or fails the module."""
    p = module.params
    rc, out, err = module.run_command(status_argv(p))
    if rc != 0:
        fail(module, "unreadable", f"cannot read run directory {p['run_dir']}: {err.strip() or out.strip()}",
             rc=rc, stderr=err)
    st = parse_status(out)
    if st.get("state") == "nodir":
        fail(module, "not-started", f"run directory {p['run_dir']} does not exist"
             + (f" in container {p['container']}" if p["container"] else ""))
    now = float(st.get("now", time.time()))
    phase, step, total = progress_of(st["log"])
    if "start" not in st:  # not started (yet)
        waited = int(now - int(st.get("written", now)))
        if waited > p["start_grace"]:
            fail(module, "not-started", f"run in {p['run_dir']} did not start within {p['start_grace']} s "
                                        "(no .pid); see its run.log", log_tail=log_tail(st["log"]))
        return {"done": False, "exit_code": None, "phase": "starting", "step": None, "total": None,
                "elapsed": 0, "run_dir": p["run_dir"], "progress": f"starting, {waited} s since launch"}
    elapsed = int(now - int(st["start"]))
    res = {"done": False, "exit_code": None, "phase": phase, "step": step, "total": total,
           "elapsed": elapsed, "run_dir": p["run_dir"]}
    if "exit_code" in st:
        try:
            code = int(st["exit_code"])
        except ValueError:
            fail(module, "unreadable", f"unreadable exit_code {st['exit_code']!r} in {p['run_dir']}")
        res.update(done=True, exit_code=code, status="ok" if code == 0 else "failed",
                   noticed_after=round(max(0.0, now - float(st.get("ended", now))), 3),
                   progress=f"finished with exit code {code} after {elapsed} s")
        if code != 0:
            res.update(cause=f"exit code {code}", log_tail=log_tail(st["log"]))
        return res
    if st.get("alive") == "0":
        fail(module, "died", f"run in {p['run_dir']} ended without an exit code (killed? container "
                             "stopped?); last log lines follow", log_tail=log_tail(st["log"]), **res)
    if elapsed > p["timeout"]:
        stopped = "it was left running"
        if p["kill_on_timeout"] and not module.check_mode and st.get("pid"):
            module.run_command(kill_argv(p, st["pid"]))
            stopped = "its process group was stopped"
        fail(module, "timeout", f"run in {p['run_dir']} still running after {elapsed} s (timeout "
                                f"{p['timeout']} s); {stopped}", log_tail=log_tail(st["log"]), **res)
    res["progress"] = describe(phase, step, total, elapsed)
    return res


def main():
    module = AnsibleModule(
        argument_spec=dict(
            run_dir=dict(type="path", required=True),
            container=dict(type="str", default=""),
            docker=dict(type="str", default="docker"),
            window=dict(type="int", default=30),
            min_window=dict(type="int", default=5),
            interval=dict(type="float", default=1.0),
            timeout=dict(type="int", default=3600),
            start_grace=dict(type="int", default=120),
            kill_on_timeout=dict(type="bool", default=True),
            # Used by the action plugin (never reach the module through it); accepted for ansible-doc.
            label=dict(type="str", default=""),
            reconnect_timeout=dict(type="float", default=300),
            reconnect_sleep=dict(type="float", default=2),
        ),
        supports_check_mode=True,
    )
    p = module.params
    started = time.monotonic()
    res = look(module)
    window = min(p["window"], max(p["min_window"], res["elapsed"]))
    while not res["done"]:
        # Short runs end soon after their start: look 4 times a second in a run's first 5 s.
        pause = min(p["interval"], EARLY_INTERVAL) if res["elapsed"] < EARLY_SECONDS else p["interval"]
        if time.monotonic() + pause > started + window:
            break
        time.sleep(pause)
        res = look(module)
    module.exit_json(changed=False, **res)


if __name__ == "__main__":
    main()
