#!/usr/bin/python
# -*- coding: utf-8 -*-
# wanbench: list the run directories of a host's run root, or cancel runs (their whole process tree).
from __future__ import annotations

DOCUMENTATION = r"""
module: wanbench_runs
short_description: List the runs of a wanbench run root, or cancel runs and mark them cancelled
description:
  - "O(action=list) lists the started runs (directories with C(.pid)) of O(run_root): whether each
    still runs, its exit code, whether it was cancelled and its play; and the host lock's holder."
  - "O(action=cancel) stops each run of O(run_ids) that has not ended: every process of the run is
    frozen (SIGSTOP), then killed (SIGKILL), and the call waits until none is left. A run's
    processes are its run script (C(.pid), checked against its command line), everything in that
    script's process tree, process groups and sessions (torchrun starts each rank in a session of
    its own), and any process whose stdout or stderr is the run's C(run.log) (a rank whose
    torchrun died before it). The run directory then gets a C(cancelled) file (one JSON line:
    when, by whom, why), written atomically; the parser and the report show the run as cancelled
    and never judge it. A run that wrote its C(exit_code) first is left as it is."
  - With O(release), the host lock (C(<run_root>/.holder)) is removed afterwards when it names that
    play and no run holds C(<run_root>/.lock).
  - Its action plugin (action_plugins/wanbench_runs.py) picks the runs on the controller (run id,
    play id, live runs, runs not yet collected) and stops the holder's ansible-playbook first.
options:
  run_root:
    description: Root of the run directories.
    type: str
    required: true
  exec:
    description: Argv prefix that runs a program where the runs live (C(docker exec NAME)), empty for the host.
    type: list
    elements: str
    default: []
  action:
    description: C(list) the runs, or C(cancel) O(run_ids).
    type: str
    choices: [list, cancel]
    default: list
  run_ids:
    description: Runs to cancel (directory names under O(run_root)).
    type: list
    elements: str
    default: []
  note:
    description: The C(cancelled) file's content (one JSON object; the action plugin fills it).
    type: dict
    default: {}
  release:
    description: Play id whose host lock to remove after the cancel (empty = keep the lock).
    type: str
    default: ""
  kill_timeout:
    description: Seconds to wait for a run's processes to be gone after SIGKILL.
    type: int
    default: 60
  run_id:
    description: Comma-separated run ids to pick (action plugin).
    type: str
    default: ""
  play_id:
    description: Comma-separated play ids to pick (action plugin).
    type: str
    default: ""
  results_dir:
    description: The controller's results of this host (C(results/<host>)); a run there is collected (action plugin).
    type: str
    default: ""
  stale_after:
    description: Seconds without a sign of life after which another controller's lock holder is stale (action plugin).
    type: int
    default: 900
  stop_wait:
    description: Seconds to wait for the holder's ansible-playbook to end after SIGINT (action plugin).
    type: int
    default: 30
author: wanbench
"""

EXAMPLES = r"""
- name: Cancel the live runs of the host
  wanbench_runs:
    exec: [docker, exec, mindie-wan2.1-xysheng]
    run_root: /root/wanbench/runs
    action: cancel
  register: runs_cancelled
"""

RETURN = r"""
runs:
  description: The started runs, C({name, live, exit_code, cancelled, play}) each, in name order.
  type: list
  elements: dict
  returned: always
holder:
  description: The host lock's holder (empty when free).
  type: dict
  returned: always
holder_age:
  description: Seconds since the holder was last seen.
  type: int
  returned: when a holder exists
run_busy:
  description: Whether a run holds C(<run_root>/.lock) now.
  type: bool
  returned: always
cancelled:
  description: Runs stopped and marked cancelled, each with the number of its processes killed.
  type: dict
  returned: action=cancel
ended:
  description: Runs of O(run_ids) that had ended (exit_code written) and were left as they are.
  type: list
  elements: str
  returned: action=cancel
released:
  description: Whether the host lock was removed.
  type: bool
  returned: action=cancel
"""

import json
import re

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.wanbench_lines import PRINT_HOLDER, lock_holder, parse_lines

# Runs where the runs live. Arguments, never text: $1 run root, $2 action, $3 kill timeout (s),
# $4 the cancelled note (JSON line), $5 play id to release, then run ids. Prints key=value lines.
SCRIPT = r"""
root=$1 action=$2 limit=$3 note=$4 release=$5; shift 5

me=$$ sub=$BASHPID
# The run's processes still alive (zombies are gone), one line; $1 run dir, then pids already known.
members() {
  local dir=$1 set=" " s p line f lead changed=1 cmd
  shift
  for p in "$@"; do set="$set$p "; done
  if read -r lead < "$dir/.pid" 2>/dev/null && [[ $lead =~ ^[0-9]+$ ]]; then
    cmd=$(tr '\0' ' ' < "/proc/$lead/cmdline" 2>/dev/null)
    case $set in *" $lead "*) ;; *) case $cmd in *"$dir/run.sh"*) set="$set$lead " ;; esac ;; esac  # not a reused pid
  fi
  for p in $(grep -lsxzF "WANBENCH_RUN_DIR=$dir" /proc/[0-9]*/environ); do  # started by the run (run.sh sets it)
    p=${p#/proc/}; p=${p%/environ}
    case $set in *" $p "*) ;; *) set="$set$p " ;; esac
  done
  while [ "$changed" = 1 ]; do
    changed=0
    for s in /proc/[0-9]*/stat; do
      p=${s#/proc/}; p=${p%/stat}
      case $p in 1|"$me"|"$sub"|"$BASHPID") continue ;; esac
      case $set in *" $p "*) continue ;; esac
      read -r line < "$s" 2>/dev/null || continue
      f=(${line##*) })  # state ppid pgrp session ...
      [ "${f[0]}" = Z ] && continue
      case $set in
        *" ${f[1]} "*|*" ${f[2]} "*|*" ${f[3]} "*) set="$set$p "; changed=1; continue ;;
      esac
      if [ "/proc/$p/fd/1" -ef "$dir/run.log" ] || [ "/proc/$p/fd/2" -ef "$dir/run.log" ]; then
        set="$set$p "; changed=1
      fi
    done
  done
  for p in $set; do
    read -r line < "/proc/$p/stat" 2>/dev/null || continue
    f=(${line##*) }); [ "${f[0]}" = Z ] || printf '%s ' "$p"
  done
}
holder() {
  echo "run_busy=$(if [ -e "$root/.lock" ] && ! flock -n "$root/.lock" true 2>/dev/null; then echo 1; else echo 0; fi)"
  hold=$root/.holder
""" + PRINT_HOLDER + r"""}
[ -d "$root" ] || { holder; exit 0; }
case $action in
  list)
    for d in "$root"/*/; do
      d=${d%/}; id=${d##*/}
      [ -f "$d/.pid" ] || continue
      code=-; live=0; m=; play=
      if [ -f "$d/exit_code" ]; then read -r code < "$d/exit_code" || code=?
      elif [ -n "$(members "$d")" ]; then live=1; fi
      # the play's id: the manifest is indented JSON until the run script rewrites it at the end
      m=$(grep -o -m1 '"play_id": "[^"]*"' "$d/manifest.json" 2>/dev/null)
      [[ $m =~ :\ \"([^\"]*)\" ]] && play=${BASH_REMATCH[1]}
      printf 'run=%s\t%s\t%s\t%s\t%s\n' "$id" "$live" "$code" "$([ -f "$d/cancelled" ] && echo 1 || echo 0)" "$play"
    done ;;
  cancel)
    for id in "$@"; do
      d=$root/$id
      [ -d "$d" ] || { echo "missing=$id"; continue; }
      [ -f "$d/exit_code" ] && { echo "ended=$id"; continue; }
      pids=$(members "$d") prev=x rounds=0
      while [ "$pids" != "$prev" ] && [ $(( rounds += 1 )) -le 50 ]; do  # freeze the tree: nothing forks or escapes
        [ -n "$pids" ] && kill -STOP $pids 2>/dev/null
        prev=$pids; pids=$(members "$d" $pids)
      done
      n=$(wc -w <<< "$pids")
      [ -n "$pids" ] && { kill -KILL $pids 2>/dev/null; kill -CONT $pids 2>/dev/null; }
      left=$pids
      for _ in $(seq $(( limit * 5 ))); do left=$(members "$d"); [ -z "$left" ] && break; sleep 0.2; done
      if [ -n "$left" ]; then echo "left=$id $left"; continue; fi
      rm -rf "$d/tmp.tmp"  # the run's TMPDIR (torchrun's scratch)
      if [ -f "$d/exit_code" ]; then echo "ended=$id"; continue; fi
      printf '%s\n' "$note" > "$d/cancelled.tmp" && mv -f "$d/cancelled.tmp" "$d/cancelled" && echo "cancelled=$id $n"
    done
    if [ -n "$release" ] && grep -qF "\"play_id\": \"$release\"" "$root/.holder" 2>/dev/null; then
      if [ -e "$root/.lock" ] && ! flock -n "$root/.lock" true 2>/dev/null; then echo "release=busy"
      else rm -f "$root/.holder" && echo "released=1"; fi
    fi ;;
esac
holder
exit 0
"""

SAFE_ID = re.compile(r"^[A-Za-z0-9_.,:-]+$")


def listed(lines):
    runs = []
    for line in lines:
        name, live, code, cancelled, play = (line.split("\t") + ["", "", "", "", ""])[:5]
        runs.append({"name": name, "live": live == "1", "exit_code": int(code) if re.match(r"^-?\d+$", code) else None,
                     "ended": code != "-", "cancelled": cancelled == "1", "play": play or None})
    return runs


def main():
    module = AnsibleModule(
        argument_spec=dict(
            run_root=dict(type="str", required=True),
            exec=dict(type="list", elements="str", default=[]),
            action=dict(type="str", choices=["list", "cancel"], default="list"),
            run_ids=dict(type="list", elements="str", default=[]),
            note=dict(type="dict", default={}),
            release=dict(type="str", default=""),
            kill_timeout=dict(type="int", default=60),
            # Used by the action plugin (never reach the module through it); accepted for ansible-doc.
            run_id=dict(type="str", default=""),
            play_id=dict(type="str", default=""),
            results_dir=dict(type="str", default=""),
            stale_after=dict(type="int", default=900),
            stop_wait=dict(type="int", default=30),
        ),
        supports_check_mode=True,
    )
    p = module.params
    bad = [i for i in p["run_ids"] + ([p["release"]] if p["release"] else []) if not SAFE_ID.match(i) or i.startswith(".")]
    if bad:
        module.fail_json(msg=f"not a run or play id: {bad[0]!r}")
    action = "list" if module.check_mode else p["action"]
    rc, out, err = module.run_command(p["exec"] + [
        "bash", "-c", SCRIPT, "wanbench-runs", p["run_root"], action, str(max(1, p["kill_timeout"])),
        json.dumps(p["note"], sort_keys=True), p["release"], *(p["run_ids"] if action == "cancel" else [])])
    if rc != 0:
        module.fail_json(msg=f"cannot read the run root {p['run_root']}: {err.strip() or out.strip()}", rc=rc)
    got = parse_lines(out)
    res = {"runs": listed(got.get("run", [])), "holder": {}, "run_busy": got.get("run_busy") == ["1"], "changed": False}
    res.update(lock_holder(got))
    if p["action"] == "cancel":
        cancelled = {}
        for item in got.get("cancelled", []):
            name, _, n = item.partition(" ")
            cancelled[name] = int(n or 0)
        res.update(cancelled=cancelled, ended=got.get("ended", []), released=got.get("released") == ["1"],
                   changed=bool(cancelled) or got.get("released") == ["1"])
        problems = [f"no run {m} in {p['run_root']}" for m in got.get("missing", [])]
        problems += [f"processes of run {left.split(' ', 1)[0]} still alive {p['kill_timeout']} s after SIGKILL: "
                     f"{left.split(' ', 1)[1].strip()}" for left in got.get("left", [])]
        if got.get("release") == ["busy"]:
            problems.append(f"the host lock was kept: a run still holds {p['run_root']}/.lock")
        if problems:
            module.fail_json(msg="; ".join(problems), **res)
    module.exit_json(**res)


if __name__ == "__main__":
    main()
