# -*- coding: utf-8 -*-
# wanbench: controller side of the wanbench_preflight module (library/wanbench_preflight.py).
"""Names this play as the lock holder, takes over stale locks, warns of uncollected runs.

The holder is filled on the controller: play id (O(holder.play_id) or a fresh one), the
variant, the controller's user@host, the ansible-playbook PID and the start time. When the
module finds the lock held, the holder is stale if its controller is this machine and its
PID is gone, or if it has not been seen for O(stale_after) seconds; when no run holds the
run lock, the module is called again to take the lock over, with a warning. With
O(results_dir) (the controller's results of this host), the run root is listed
(wanbench_runs) and one warning names the runs this controller has not collected.
"""

from __future__ import annotations

import os
import secrets
from datetime import datetime, timezone

from ansible.plugins.action import ActionBase

from wanbench.rundirs import controller, leftover_warning, process_identity, stale_reason, uncollected


def new_play_id():
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp
        args = dict(self._task.args)
        variant = str(args.pop("variant", "") or "")
        play_id = str(args.pop("play_id", "") or "") or new_play_id()
        stale_after = int(args.pop("stale_after", 900))
        results_dir = str(args.pop("results_dir", "") or "")
        here = controller()
        if args.get("lock", "check") in ("acquire", "check") and not args.get("holder"):
            # The worker's parent is the ansible-playbook process itself.
            args["holder"] = {"play_id": play_id, "variant": variant, "controller": here,
                              **process_identity(os.getppid()),
                              "started_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
        try:
            res = self._execute_module(module_name="wanbench_preflight", module_args=args, task_vars=task_vars)
            if (res.get("failed") and res.get("lock_state") == "held" and args.get("lock") == "acquire"
                    and not res.get("run_busy")):
                why = stale_reason(res.get("holder"), res.get("holder_age"), stale_after, here)
                if why:
                    old = res["holder"]
                    res = self._execute_module(module_name="wanbench_preflight",
                                               module_args={**args, "takeover": old["play_id"]}, task_vars=task_vars)
                    if res.get("lock_state") == "taken-over":
                        warning = (f"took over the stale lock of play {old['play_id']} (variant "
                                   f"{old.get('variant') or '?'}, {old.get('controller', '?')}): {why}")
                        res.setdefault("warnings", []).append(warning)
                        res["stale_holder"] = old
            if results_dir and res.get("lock_state", "none") != "none" and args.get("lock", "check") in ("acquire", "check"):
                # A run never silently stays behind: name the runs this controller has not collected.
                listed = self._execute_module(module_name="wanbench_runs", task_vars=task_vars, module_args={
                    "run_root": args["run_root"], "exec": args.get("exec", []), "action": "list"})
                warning = "" if listed.get("failed") else leftover_warning(listed["runs"], results_dir, args["run_root"])
                if warning:
                    res.setdefault("warnings", []).append(warning)
                    res["uncollected"] = [r["name"] for r in uncollected(listed["runs"], results_dir)]
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        result.update(res)
        return result
