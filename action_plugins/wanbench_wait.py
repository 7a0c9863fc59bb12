# -*- coding: utf-8 -*-
# wanbench: wait for a detached run until it ends, in one task (documented in library/wanbench_wait.py).
"""Action plugin of wanbench_wait: one task waits out a run of any length.

Each round is one plain shell command on the target (no module, no Python there): it looks at
the run directory every ``interval`` seconds (every 0.25 s in a run's first 5 s) for up to a
window that follows the run's age (``min_window`` to ``window`` seconds), returns as soon as the
run has written its exit code or died, and prints the run's state. The controller judges that
state, prints one progress line per round and goes on; a lost SSH connection is waited out. The
loop keeps no per-round state, so its stack and memory stay constant however long the run lasts
(no recursive include). The pattern is ansible.builtin.async_status / wait_for_connection's.
"""

from __future__ import annotations

import os
import re
import shlex
import time

from ansible.errors import AnsibleConnectionFailure, AnsibleError
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from wanbench import devices

display = Display()

ARGUMENT_SPEC = {
    "run_dir": {"type": "path", "required": True},
    "container": {"type": "str", "default": ""},
    "docker": {"type": "str", "default": "docker"},
    "window": {"type": "int", "default": 30},
    "min_window": {"type": "int", "default": 5},
    "interval": {"type": "float", "default": 1.0},
    "timeout": {"type": "int", "default": 3600},
    "start_grace": {"type": "int", "default": 120},
    "kill_on_timeout": {"type": "bool", "default": True},
    "label": {"type": "str", "default": ""},
    "reconnect_timeout": {"type": "float", "default": 300},
    "reconnect_sleep": {"type": "float", "default": 2},
    "platform": {"type": "str", "default": ""},
}

EARLY_INTERVAL, EARLY_SECONDS = 0.25, 5

# One round on the target. $1 the run directory, $2 window s, $3 min_window s, $4 interval ms,
# $5 early interval ms, $6 early seconds. Looks until exit_code exists, the run's process is gone,
# or the window (the run's age, between min_window and window) would end; then prints the state.
# Liveness is checked before exit_code: the run writes exit_code before it exits.
WAIT_SCRIPT = r"""
cd "$1" 2>/dev/null || { echo state=nodir; exit 0; }
age() { if [ -f .pid ]; then echo $(( $(date +%s) - $(stat -c %Y .pid) )); else echo 0; fi; }
t0=$(date +%s%3N) w=$(age)
[ "$w" -lt "$3" ] && w=$3
[ "$w" -gt "$2" ] && w=$2
while [ ! -f exit_code ]; do
  [ -f .pid ] && ! kill -0 "$(cat .pid)" 2>/dev/null && break
  p=$4
  [ "$(age)" -lt "$6" ] && [ "$5" -lt "$p" ] && p=$5
  [ $(( $(date +%s%3N) + p )) -gt $(( t0 + w * 1000 )) ] && break
  sleep "$(( p / 1000 )).$(printf %03d $(( p % 1000 )))"
done
touch -c ../.holder 2>/dev/null  # the play holding the host lock is alive (see wanbench_preflight)
echo "now=$(date +%s.%N)"
echo "free_kb=$(df -Pk . 2>/dev/null | tail -n 1 | tr -s ' ' | cut -d ' ' -f 4)"
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

# TERM to the run's process group, to every process the run started (they carry WANBENCH_RUN_DIR, set
# by run.sh: ranks in sessions of their own and orphans included) and to every process writing the
# run's log, KILL after 10 s to what is left; then the run's scratch folder (TMPDIR) goes.
# $1 the run script's pid, $2 the run dir.
KILL_SCRIPT = r"""
log=$2/run.log mark=WANBENCH_RUN_DIR=$2
members() { { for f in /proc/[0-9]*/fd/1 /proc/[0-9]*/fd/2; do
  [ "$f" -ef "$log" ] 2>/dev/null && { p=${f#/proc/}; echo "${p%%/*}"; }; done
  grep -lsxzF "$mark" /proc/[0-9]*/environ | sed 's|^/proc/||; s|/environ$||'; } | sort -u; }
stop() { kill -s "$1" "-$2" 2>/dev/null; kill -s "$1" "$2" $(members) 2>/dev/null; }
stop TERM "$1"
for _ in 1 2 3 4 5 6 7 8 9 10; do
  { kill -0 "$1" 2>/dev/null || [ -n "$(members)" ]; } || break; sleep 1; done
kill -0 "$1" 2>/dev/null || [ -n "$(members)" ] && stop KILL "$1"
rm -rf "$2/tmp.tmp"
exit 0
"""
FULL_KB = 1024  # a run root with less free space than this is full

TQDM_RE = re.compile(r"(\d+)/(\d+) \[")
PHASES = (("Finished.", "finished"), ("Saving generated video", "saving"),
          ("Generating video ...", "generating"), ("Warm up", "warm-up"))


def where(params, inner):
    """inner argv, run on the host or through docker exec in the container."""
    return [params["docker"], "exec", params["container"], *inner] if params["container"] else inner


def round_argv(params):
    """argv of one round (WAIT_SCRIPT) for the task's parameters."""
    return where(params, ["sh", "-c", WAIT_SCRIPT, "wanbench-wait", params["run_dir"], str(params["window"]),
                          str(params["min_window"]), str(max(1, int(params["interval"] * 1000))),
                          str(int(EARLY_INTERVAL * 1000)), str(EARLY_SECONDS)])


def kill_argv(params, pid):
    """argv that stops the run: its process group (the run script leads it) and whatever writes its log."""
    return where(params, ["sh", "-c", KILL_SCRIPT, "wanbench-kill", str(pid), params["run_dir"]])


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
    phase, at = "loading", -1
    for marker, name in PHASES:
        pos = log.rfind(marker)
        if pos > at:
            phase, at = name, pos
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


def failure(params, status, msg, **res):
    """A failed round: the run's status (died, timeout, not-started, unreadable) and its cause."""
    return {"run_dir": params["run_dir"], **res, "failed": True, "status": status, "msg": msg, "cause": msg}


def full_disk(params, st):
    """'; the file system ... is full (...)' when the run root had (almost) no space left, else ''."""
    free = st.get("free_kb", "")
    if not free.isdigit() or int(free) >= FULL_KB:
        return ""
    return f"; the file system is full: {free} KiB free on {os.path.dirname(params['run_dir'].rstrip('/'))}"


def judge(params, st):
    """The round's result from the run's state (parse_status); a result with 'stop' names the pid
    whose process group is to be stopped (timeout)."""
    p = params
    if st.get("state") == "nodir":
        return failure(p, "not-started", f"run directory {p['run_dir']} does not exist"
                       + (f" in container {p['container']}" if p["container"] else ""))
    now = float(st.get("now") or time.time())
    phase, step, total = progress_of(st["log"])
    if "start" not in st:  # not started (yet)
        waited = int(now - int(st.get("written", now)))
        if waited > p["start_grace"]:
            return failure(p, "not-started", f"run in {p['run_dir']} did not start within {p['start_grace']} s "
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
            return failure(p, "unreadable", f"unreadable exit_code {st['exit_code']!r} in {p['run_dir']}"
                                            + full_disk(p, st))
        res.update(done=True, exit_code=code, status="ok" if code == 0 else "failed",
                   noticed_after=round(max(0.0, now - float(st.get("ended", now))), 3),
                   progress=f"finished with exit code {code} after {elapsed} s")
        if code != 0:
            res.update(cause=f"exit code {code}{full_disk(p, st)}", log_tail=log_tail(st["log"]))
        return res
    if st.get("alive") == "0":
        why = full_disk(p, st) or "; killed? container stopped?"
        return failure(p, "died", f"run in {p['run_dir']} ended without an exit code{why}; last log lines follow",
                       log_tail=log_tail(st["log"]), **res)
    if elapsed > p["timeout"]:
        stop = p["kill_on_timeout"] and st.get("pid")
        stopped = "its process group was stopped" if stop else "it was left running"
        return {**failure(p, "timeout", f"run in {p['run_dir']} still running after {elapsed} s (timeout "
                                        f"{p['timeout']} s); {stopped}", log_tail=log_tail(st["log"]), **res),
                **({"stop": st["pid"]} if stop else {})}
    res["progress"] = describe(phase, step, total, elapsed)
    return res


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(ARGUMENT_SPEC)

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp
        _, params = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        params["label"] = params["label"] or os.path.basename(str(params["run_dir"]).rstrip("/"))
        if self._task.check_mode:
            result.update(skipped=True, msg="check mode: no run was started, nothing to wait for")
            return result
        result.update(self.wait(params))
        return result

    def call(self, argv):
        """One command on the target: its stdout, or a failure result."""
        done = self._low_level_execute_command(shlex.join(argv))
        if done.get("unreachable"):
            raise AnsibleConnectionFailure(done.get("msg", "host unreachable"))
        if done.get("rc") == 255 and "connection" in (done.get("stderr") or "").lower():
            # ssh's own exit status: the session was cut under the command ("Shared connection to ...
            # closed."), not an answer of the round's script (which never exits 255): a lost connection
            raise AnsibleConnectionFailure((done.get("stderr") or "").strip())
        return done

    def look(self, params):
        """One round: the run's state after up to one window of looks on the target."""
        done = self.call(round_argv(params))
        if done.get("rc") != 0:
            return failure(params, "unreadable", f"cannot read run directory {params['run_dir']}: "
                                                 f"{(done.get('stderr') or done.get('stdout') or '').strip()}")
        res = judge(params, parse_status(done.get("stdout", "")))
        if res.get("stop"):
            self.call(kill_argv(params, res.pop("stop")))
        return res

    def sample(self, params):
        """The mid-run sample (devices.during_argv: the CPU of other processes on reference), once per run;
        its output lands in the run's health/during/ and is judged at report time."""
        argv = devices.during_argv(params["platform"], params["run_dir"]) if params["platform"] else []
        if argv:
            try:
                self.call(where(params, argv))
            except AnsibleConnectionFailure:  # lost with the connection: the run is judged without it
                pass

    def wait(self, params):
        label = params["label"]
        rounds = reconnects = 0
        lost_since = None
        sampled = False
        while True:
            try:
                res = self.look(params)
            except AnsibleConnectionFailure as exc:
                now = time.monotonic()
                if lost_since is None:
                    lost_since = now
                    reconnects += 1
                    display.display(f"{label}: SSH connection lost ({str(exc).strip()[:200]}); waiting for it")
                if now - lost_since > params["reconnect_timeout"]:
                    return {"failed": True, "unreachable": True, "rounds": rounds, "reconnects": reconnects,
                            "msg": f"{label}: host unreachable for more than {params['reconnect_timeout']:g} s "
                                   "while waiting for the run (it keeps running on the host)"}
                time.sleep(params["reconnect_sleep"])
                try:
                    self._connection.reset()
                except (AttributeError, AnsibleError):
                    pass
                continue
            rounds += 1
            if lost_since is not None:
                display.display(f"{label}: SSH connection back after {time.monotonic() - lost_since:.0f} s")
                lost_since = None
            if res.get("failed"):
                return {**res, "rounds": rounds, "reconnects": reconnects}
            display.display(f"{label}: {res.get('progress', '')}")
            if not sampled and not res.get("done") and res.get("elapsed", 0) >= devices.DURING_AFTER_S:
                sampled = True
                self.sample(params)
            if res.get("done"):
                return {**res, "rounds": rounds, "reconnects": reconnects, "changed": False}
