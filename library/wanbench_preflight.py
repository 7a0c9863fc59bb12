#!/usr/bin/python
# -*- coding: utf-8 -*-
# wanbench: check a host for a run in one call, and take, check or release its lock.
from __future__ import annotations

DOCUMENTATION = r"""
module: wanbench_preflight
short_description: Check that a host can take wanbench runs now, and lock it for one play
description:
  - "One call checks the whole host and returns JSON; it fails with one message listing every
    problem found. Checks: the container exists and runs (C(docker container inspect)), the tools
    are on the login PATH where the repo lives, the login shell there has the platform's
    environment (O(environment)), the repo and model directories exist, and the run root's file
    system has O(min_free_gb) free."
  - "O(capture): each command runs where the repo lives first, else on the host (the first place of
    its C(places) where it exits 0); its raw output is returned in RV(capture) with where it ran. The
    module judges nothing there: the action plugin parses the output with C(wanbench.devices) on the
    controller (devices idle, state readable)."
  - "The host lock: one play at a time per host. O(lock=acquire) creates C(<run_root>/.holder)
    atomically (noclobber) holding O(holder) as one JSON line; the run script refuses to start
    unless it names its play. A held lock fails the call naming the holder (play id, variant,
    controller user@host, start time, PID) and whether a run of it still holds C(.lock).
    O(takeover) replaces a holder that the action plugin found stale (its controller process is
    dead, or it has not been seen for O(stale_after) seconds) when no run holds C(.lock).
    O(lock=release) removes the holder if it is O(holder)'s play; O(lock=check) only looks."
  - The action plugin (action_plugins/wanbench_preflight.py) fills O(holder) on the controller
    and decides staleness.
options:
  exec:
    description: Argv prefix that runs a program where the repo lives (C(docker exec NAME)), empty for the host.
    type: list
    elements: str
    default: []
  docker:
    description: Docker CLI on the host.
    type: str
    default: docker
  container:
    description: Container that must exist and run; empty for none.
    type: str
    default: ""
  platform:
    description: The platform (C(wanbench.platforms)); the action plugin turns it into O(capture) and O(environment).
    type: str
    default: reference
  capture:
    description: Commands to run where they exist, C([{name, argv, places}]), C(places) in order (C(workload), C(host)); set by the action plugin.
    type: list
    elements: dict
    default: []
  host_path:
    description: Directories put before PATH for the commands run on the host (C(wanbench_host_tools_path)).
    type: str
    default: ""
  environment:
    description: What the login shell where the repo lives must have, C({imports, env}); set by the action plugin.
    type: dict
    default: {}
  visible_devices:
    description: The devices the runs use (C(wanbench_visible_devices), e.g. C(0,1,2,3)); only they and their processes are judged (action plugin); empty = every device.
    type: str
    default: ""
  python:
    description: Python that must import O(environment)'s modules (the workload's).
    type: str
    default: python3
  device_state:
    description: C(required) or C(optional) (action plugin; a device state that cannot be read is then a warning).
    type: str
    default: required
  thresholds:
    description: Idle limits for the device judgement, C({idle_util_pct, idle_mem_mb}) (action plugin).
    type: dict
    default: {}
  tools:
    description: Programs the run needs, looked up on the login PATH where the repo lives.
    type: list
    elements: str
    default: []
  repo_dir:
    description: Directory that must exist where the repo lives.
    type: str
    default: ""
  model_dir:
    description: Directory that must exist where the repo lives (empty = not checked).
    type: str
    default: ""
  run_root:
    description: Run directories live here; its file system must have O(min_free_gb) free.
    type: str
    required: true
  min_free_gb:
    description: Free GiB required under O(run_root).
    type: float
    default: 10
  lock:
    description: C(acquire) the host lock, C(check) it, C(release) it, or C(none).
    type: str
    choices: [acquire, check, release, none]
    default: check
  holder:
    description: This play (play_id, variant, controller, pid, started_at); set by the action plugin.
    type: dict
    default: {}
  takeover:
    description: Play id of a stale holder to replace (set by the action plugin).
    type: str
    default: ""
  checks:
    description: Check the host (false = only the lock).
    type: bool
    default: true
  variant:
    description: The play's variant selection, recorded in the holder (action plugin).
    type: str
    default: ""
  play_id:
    description: This play's id (action plugin; empty = a fresh C(<UTCstamp>-<random>)).
    type: str
    default: ""
  stale_after:
    description: Seconds without a sign of life after which another controller's holder is stale (action plugin).
    type: int
    default: 900
  results_dir:
    description: The controller's results of this host (C(results/<host>)); started runs of O(run_root) not
      there are named in one warning (action plugin, O(lock=acquire) or O(lock=check)).
    type: str
    default: ""
author: wanbench
"""

EXAMPLES = r"""
- name: Check the host and lock it for this play
  wanbench_preflight:
    exec: [docker, exec, mindie-wan2.1-xysheng]
    container: mindie-wan2.1-xysheng
    platform: npu
    tools: [torchrun, /usr/bin/time, flock, setsid, git, tar]
    repo_dir: /root/xysheng/Wan2.1
    run_root: /root/wanbench/runs
    min_free_gb: 20
    lock: acquire
  register: preflight_state
"""

RETURN = r"""
capture:
  description: "Each O(capture) command's raw result, C({name: {where, rc, stdout, stderr}}); C(where) the place it
    ran (C(workload) or C(host)), the first place's result when it failed everywhere."
  type: dict
  returned: when O(capture) is set and the container runs
placed:
  description: "Where each O(capture) command runs in this play, C({name: workload | host}) (action plugin)."
  type: dict
  returned: when O(capture) is set
problems:
  description: Every problem found (empty when the host is ready).
  type: list
  elements: str
  returned: always
free_gb:
  description: Free GiB on the run root's file system.
  type: float
  returned: always
mount:
  description: Mount point of the run root's file system.
  type: str
  returned: always
lock_state:
  description: C(acquired), C(taken-over), C(held) (by another play), C(free), C(released) or C(none).
  type: str
  returned: always
holder:
  description: The lock's holder after the call (this play when acquired), or the other play holding it.
  type: dict
  returned: always
run_busy:
  description: Whether a run holds C(<run_root>/.lock) now.
  type: bool
  returned: always
holder_age:
  description: Seconds since the holder was last seen (the wait refreshes it every round).
  type: int
  returned: when a holder exists
uncollected:
  description: Started runs of the run root that the controller has not collected (action plugin).
  type: list
  elements: str
  returned: when O(results_dir) is set and such runs exist
"""

import json
import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.wanbench_lines import PRINT_HOLDER, lock_holder, parse_lines

# Runs where the repo lives, in a login shell (the container's PATH). Arguments, never text:
# $1 run root, $2 lock mode, $3 holder line, $4 takeover play id, $5 repo dir, $6 model dir,
# then the tools (python:PY sets the Python of the import:MODULE checks; env:NAME must be set).
# Prints key=value lines.
WORKSPACE_SCRIPT = r"""
root=$1 mode=$2 new=$3 takeover=$4 repo=$5 model=$6; shift 6
py=python3
for t in "$@"; do case $t in
  python:*) py=${t#python:} ;;
  env:*) v=${t#env:}; [ -n "$(printenv "$v")" ] || echo "noenv=$v" ;;
  import:*) m=${t#import:}; e=$("$py" -c "import $m" 2>&1) || echo "noimport=$m: $(printf '%s' "$e" | tail -n 1)" ;;
  *) command -v "$t" >/dev/null 2>&1 || echo "missing=$t" ;;
esac; done
for d in "$repo" "$model"; do [ -z "$d" ] || [ -d "$d" ] || echo "nodir=$d"; done
d=$root; while [ ! -d "$d" ]; do d=$(dirname "$d"); done
echo "df=$(df -Pk "$d" | tail -n 1)"
echo "arg_max=$(getconf ARG_MAX 2>/dev/null) $(env | wc -c)"
[ "$mode" = none ] && exit 0
lock=$root/.lock hold=$root/.holder
busy=0; if [ -e "$lock" ] && ! flock -n "$lock" true 2>/dev/null; then busy=1; fi
echo "run_busy=$busy"
names() { [ -f "$hold" ] && grep -qF "\"play_id\": \"$1\"" "$hold"; }
case $mode in
  acquire)
    mkdir -p "$root" || exit 1
    if [ -n "$takeover" ] && [ "$busy" = 0 ] && names "$takeover"; then rm -f "$hold"; echo took_over=1; fi
    # written whole, then linked into place: ln fails when a holder exists, and a cut write never shows
    # (a file system without hard links: written in place, refused when one exists)
    if [ "$busy" = 0 ] && printf '%s\n' "$new" > "$hold.$$" &&
       { ln "$hold.$$" "$hold" 2>/dev/null || { [ ! -e "$hold" ] && (set -C; cat "$hold.$$" > "$hold") 2>/dev/null; }; }; then
      echo lock=acquired
    fi
    rm -f "$hold.$$" ;;
  release)
    if [ -n "$new" ] && names "$(printf '%s' "$new" | sed -n 's/.*"play_id": "\([^"]*\)".*/\1/p')"; then
      rm -f "$hold"; echo lock=released
    fi ;;
esac
""" + PRINT_HOLDER + r"""
exit 0
"""

def describe_holder(holder):
    """One line naming a lock holder for people."""
    if not isinstance(holder, dict) or "unreadable" in holder:
        text = holder.get("unreadable") if isinstance(holder, dict) else holder
        return f"an unreadable holder ({text!r:.200}; remove the file if no bench runs there)"
    return (f"play {holder.get('play_id', '?')} (variant {holder.get('variant') or '?'}, "
            f"{holder.get('controller', '?')}, pid {holder.get('pid', '?')}, since {holder.get('started_at', '?')})")


def check_container(module, p, problems):
    if not p["container"]:
        return
    rc, out, err = module.run_command([p["docker"], "container", "inspect", p["container"]])
    if rc != 0:
        problems.append(f"container {p['container']} not found: {err.strip() or out.strip()}")
        return
    state = json.loads(out)[0]["State"]
    if not state.get("Running"):
        problems.append(f"container {p['container']} is not running (state {state.get('Status')}); "
                        f"start it with `docker start {p['container']}`")


def run_capture(module, p):
    """Each capture command where it exists: {name: {where, rc, stdout, stderr}} (see RETURN)."""
    env = {"PATH": p["host_path"] + ":" + os.environ.get("PATH", "")} if p["host_path"] else None
    out = {}
    for cmd in p["capture"]:
        tried = []
        for place in cmd.get("places") or ["workload"]:
            # in the container: its login shell, as the run script has it; on the host: this connection
            prefix = p["exec"] + ["bash", "-lc"] if place == "workload" and p["exec"] else ["sh", "-c"]
            rc, stdout, stderr = module.run_command(prefix + ['exec "$@"', "wanbench-capture", *cmd["argv"]],
                                                    environ_update=env if place == "host" else None)
            tried.append({"where": place, "rc": rc, "stdout": stdout, "stderr": stderr})
            if rc == 0:
                break
        got = tried[-1] if tried[-1]["rc"] == 0 else dict(tried[0])
        if got["rc"] != 0:  # failed everywhere: each place's last line
            got["stderr"] = "; ".join(f"{t['where']}: " + ((t["stderr"] or t["stdout"]).strip().splitlines() or
                                                            [f"exit status {t['rc']}"])[-1] for t in tried)
        out[cmd["name"]] = got
    return out


def main():
    module = AnsibleModule(
        argument_spec=dict(
            exec=dict(type="list", elements="str", default=[]),
            docker=dict(type="str", default="docker"),
            container=dict(type="str", default=""),
            platform=dict(type="str", default="reference"),
            capture=dict(type="list", elements="dict", default=[]),
            host_path=dict(type="str", default=""),
            environment=dict(type="dict", default={}),
            python=dict(type="str", default="python3"),
            device_state=dict(type="str", default="required"),
            thresholds=dict(type="dict", default={}),
            tools=dict(type="list", elements="str", default=[]),
            repo_dir=dict(type="str", default=""),
            model_dir=dict(type="str", default=""),
            run_root=dict(type="str", required=True),
            min_free_gb=dict(type="float", default=10),
            lock=dict(type="str", choices=["acquire", "check", "release", "none"], default="check"),
            holder=dict(type="dict", default={}),
            takeover=dict(type="str", default=""),
            checks=dict(type="bool", default=True),
            # Used by the action plugin (never reach the module through it); accepted for ansible-doc.
            variant=dict(type="str", default=""),
            play_id=dict(type="str", default=""),
            stale_after=dict(type="int", default=900),
            results_dir=dict(type="str", default=""),
        ),
        supports_check_mode=True,
    )
    p = module.params
    mode = p["lock"]
    if module.check_mode and mode in ("acquire", "release"):
        mode = "check"
    problems = []
    checks = p["checks"] and mode != "release"
    if checks:
        check_container(module, p, problems)
        if problems:  # nothing else can be looked at in a missing or stopped container
            module.fail_json(msg="; ".join(problems), problems=problems, lock_state="none", holder={})
        capture = run_capture(module, p)
    if mode == "acquire" and not p["holder"].get("play_id"):
        module.fail_json(msg="lock=acquire needs the play's holder record (with its play_id)")
    line = json.dumps(p["holder"], sort_keys=True) if p["holder"] else ""
    needs = [f"python:{p['python']}", *(f"env:{v}" for v in p["environment"].get("env") or ()),
             *(f"import:{m}" for m in p["environment"].get("imports") or ())]
    rc, out, err = module.run_command(p["exec"] + [
        "bash", "-lc", WORKSPACE_SCRIPT, "wanbench-preflight", p["run_root"], mode, line, p["takeover"],
        *((p["repo_dir"], p["model_dir"], *p["tools"], *needs) if checks else ("", ""))])
    if rc != 0:
        module.fail_json(msg=f"cannot check the run root {p['run_root']}: {err.strip() or out.strip()}", rc=rc,
                         problems=problems + [err.strip()], lock_state="none", holder={})
    got = parse_lines(out)
    res = {"problems": problems, "run_busy": got.get("run_busy", ["0"])[0] == "1", "lock_state": "none",
           "holder": {}, "changed": False, **({"capture": capture} if checks else {})}
    if checks:
        missing = got.get("missing", [])
        if missing:
            problems.append("missing on the login PATH: " + ", ".join(missing))
        lacks = [f"{v} not set" for v in got.get("noenv", [])] + \
                [f"{p['python']} cannot import {m}" for m in got.get("noimport", [])]
        if lacks:
            problems.append(f"the login shell where the repo lives lacks the {p['platform']} environment: "
                            + "; ".join(lacks))
        for d in got.get("nodir", []):
            problems.append(f"no directory {d}")
        fields = (got.get("df") or [""])[0].split()
        free_kb = int(fields[3]) if len(fields) >= 6 and fields[3].isdigit() else 0
        res.update(free_gb=round(free_kb / 1048576, 1), mount=fields[5] if len(fields) >= 6 else "")
        arg_max = ((got.get("arg_max") or [""])[0].split() + ["", ""])[:2]  # ARG_MAX, then the login env's bytes
        res.update(arg_max=int(arg_max[0]) if arg_max[0].isdigit() else 0,
                   env_bytes=int(arg_max[1]) if arg_max[1].isdigit() else 0)
        if free_kb < p["min_free_gb"] * 1048576:
            problems.append(f"only {res['free_gb']} GiB free on {res['mount'] or p['run_root']}; "
                            f"{p['min_free_gb']:g} GiB required")
    res.update(lock_holder(got))
    mine = bool(p["holder"]) and res["holder"].get("play_id") == p["holder"].get("play_id")
    if mode == "acquire":
        if got.get("lock") == ["acquired"] and mine:
            res.update(lock_state="taken-over" if "took_over" in got else "acquired", changed=True)
        else:
            res["lock_state"] = "held"
    elif mode == "release":
        res.update(lock_state="released" if got.get("lock") == ["released"] else "none",
                   changed=got.get("lock") == ["released"])
    elif mode == "check":
        res["lock_state"] = "held" if res["holder"] or res["run_busy"] else "free"
    if res["lock_state"] == "held" and mode in ("acquire", "check"):
        what = describe_holder(res["holder"]) if res["holder"] else "a run without a play (no .holder)"
        busy = "; a run of it is still running" if res["run_busy"] else ""
        problems.append(f"the host is locked by {what}{busy} ({p['run_root']}/.holder)")
    if problems and res["lock_state"] in ("acquired", "taken-over"):  # a host that is not ready stays free
        module.run_command(p["exec"] + ["bash", "-c", WORKSPACE_SCRIPT, "wanbench-preflight", p["run_root"],
                                        "release", line, "", "", ""])
        res.update(lock_state="released", holder={}, changed=False)
    if problems:
        module.fail_json(msg="; ".join(problems), **res)
    module.exit_json(**res)


if __name__ == "__main__":
    main()
