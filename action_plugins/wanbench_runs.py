# -*- coding: utf-8 -*-
# wanbench: controller side of the wanbench_runs module (library/wanbench_runs.py).
"""Picks runs to cancel or to collect, and stops the lock holder's play before a cancel.

``action: list`` returns the module's listing plus, for collect.yml, ``selected`` (the runs
this controller has not collected, by O(run_id) / O(play_id), without those of a live lock
holder's play, which collects its own) and ``skipped``. ``action: cancel`` picks O(run_id),
else the live runs of O(play_id), else every live run; when the lock holder's ansible-playbook
runs on this controller it is stopped first (SIGINT, as Ctrl-C; SIGTERM if it is still there
after O(stop_wait) s), so that it starts no further run; then the module kills and marks the
runs and releases the lock when its holder is gone or its runs were cancelled. The logic lives
in wanbench.rundirs.
"""

from __future__ import annotations

import os
import signal
import time
from datetime import datetime, timezone

from ansible.plugins.action import ActionBase

from wanbench import rundirs


def stop_controller(pid, wait_s):
    """SIGINT (Ctrl-C) to an ansible-playbook of this machine, SIGTERM if it outlives wait_s; True when gone."""
    for sig, wait in ((signal.SIGINT, wait_s), (signal.SIGTERM, 10)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return True
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not rundirs.pid_alive(pid):
                return True
            time.sleep(0.2)
    return not rundirs.pid_alive(pid)


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def _module(self, args, task_vars):
        return self._execute_module(module_name="wanbench_runs", module_args=args, task_vars=task_vars)

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp
        args = dict(self._task.args)
        run_id, play_id = args.pop("run_id", "") or "", args.pop("play_id", "") or ""
        results_dir = str(args.pop("results_dir", "") or "")
        stale_after = int(args.pop("stale_after", 900))
        stop_wait = int(args.pop("stop_wait", 30))
        action = args.get("action", "list")
        try:
            run_ids, play_ids = rundirs.ids_arg(run_id, "run_id"), rundirs.ids_arg(play_id, "play_id")
        except ValueError as e:
            result.update(failed=True, msg=str(e))
            return result
        here = rundirs.controller()
        try:
            res = self._module({**args, "action": "list"}, task_vars)
            if res.get("failed"):
                result.update(res)
                return result
            holder = res.get("holder") or {}
            stale = rundirs.stale_reason(holder, res.get("holder_age"), stale_after, here) if holder else ""
            alive = bool(holder) and not stale
            if action == "list":
                runs = rundirs.uncollected(res["runs"], results_dir) if results_dir else res["runs"]
                try:
                    selected, skipped = rundirs.select(runs, run_ids, play_ids, holder, alive)
                except ValueError as e:
                    known = [r["name"] for r in res["runs"]] if run_ids else []
                    done = [i for i in run_ids if i in known]
                    why = f"{e} not yet collected" + (f" ({', '.join(done)} already collected to {results_dir})"
                                                       if done else "")
                    result.update(failed=True, msg=why, runs=res["runs"])
                    return result
                res.update(selected=selected, skipped=[f"{n}: {why}" for n, why in skipped],
                           holder_alive=alive, holder_stale=stale)
                result.update(res)
                return result

            # cancel: the named runs, else the live runs (of the named plays)
            try:
                targets, _ = rundirs.select(res["runs"], run_ids, play_ids, live_only=not run_ids)
            except ValueError as e:
                result.update(failed=True, msg=f"{e} {args['run_root']}", runs=res["runs"])
                return result
            holder_play = holder.get("play_id")
            ours = holder_play and (not (run_ids or play_ids) or any(t.get("play") == holder_play for t in targets)
                                    or holder_play in play_ids)
            stopped, warnings = False, []
            if ours and alive and holder.get("controller") == here and not self._play_context.check_mode:
                stopped = stop_controller(int(holder["pid"]), stop_wait)
                if not stopped:
                    result.update(failed=True, msg=f"the bench play {holder_play} (pid {holder['pid']}) did not stop")
                    return result
                # the play may have started a run between the listing and its end: list again
                res = self._module({**args, "action": "list"}, task_vars)
                if res.get("failed"):
                    result.update(res)
                    return result
                targets, _ = rundirs.select(res["runs"], run_ids, play_ids, live_only=not run_ids)
            elif ours and alive:
                warnings.append(f"play {holder_play} runs on {holder.get('controller', '?')}: its remaining runs "
                                "will refuse to start (the host lock is released); stop that play there")
            note = {"cancelled_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "by": here,
                    "reason": f"cancelled by playbooks/cancel.yml from {here}"}
            release = holder_play if holder_play and (ours or stale) else ""
            res = self._module({**args, "run_ids": [t["name"] for t in targets], "note": note, "release": release},
                               task_vars)
            res.update(controller_stopped=stopped, targets=[t["name"] for t in targets], holder_before=holder)
            if not res.get("failed"):
                res["summary"] = rundirs.cancel_summary(res, holder_play if stopped else "")
            if warnings:
                res.setdefault("warnings", []).extend(warnings)
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        result.update(res)
        return result
