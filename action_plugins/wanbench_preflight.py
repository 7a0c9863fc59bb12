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

The platform's record (``wanbench.platforms``) gives the module its capture commands and the
environment the login shell must have; the module returns their raw output, and the device state is
judged here with ``wanbench.devices`` (``preflight_judgement``): a busy device fails the task (the lock
is released), a state that cannot be read anywhere is a warning; ``placed`` says where each capture
command runs in this play (the container, else the host).
"""

from __future__ import annotations

import os
import secrets
from datetime import datetime, timezone

from ansible.plugins.action import ActionBase

from wanbench import devices, platforms
from wanbench.rundirs import controller, leftover_warning, process_identity, stale_reason, uncollected

DEVICE_STATES = ("required", "optional")


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
        visible = str(args.pop("visible_devices", "") or "")  # judged here, not by the module
        checks = args.get("checks", True) not in (False, "false", "False", "no") and args.get("lock") != "release"
        if checks:
            try:
                record = platforms.get(args.get("platform", "reference"))
            except ValueError as exc:
                result.update(failed=True, msg=f"wanbench_platform: {exc}")
                return result
            if args.get("device_state", "required") not in DEVICE_STATES:
                result.update(failed=True, msg=f"device_state must be one of {', '.join(DEVICE_STATES)}, "
                                               f"got {args.get('device_state')!r}")
                return result
            args["capture"] = devices.preflight_plan(record.name, args.get("container"))
            args["environment"] = {k: list(v) for k, v in record.environment.items()}
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
            if checks and "capture" in res:
                judged = devices.preflight_judgement(
                    args["platform"], res.pop("capture"), args.get("device_state", "required"), visible,
                    **{k: float(v) for k, v in (args.get("thresholds") or {}).items() if str(v) != ""})
                res["placed"] = judged["placed"]
                res.setdefault("warnings", []).extend(judged["warnings"])
                if judged["problems"]:
                    res["problems"] = res.get("problems", []) + judged["problems"]
                    if res.get("lock_state") in ("acquired", "taken-over"):  # a host that is not ready stays free
                        self._execute_module(module_name="wanbench_preflight", task_vars=task_vars, module_args={
                            **{k: v for k, v in args.items() if k not in ("capture", "environment")},
                            "lock": "release", "checks": False})
                        res.update(lock_state="released", holder={}, changed=False)
                    res.update(failed=True, msg="; ".join(res["problems"]))
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
