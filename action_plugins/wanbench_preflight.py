# -*- coding: utf-8 -*-
# wanbench: controller side of the wanbench_preflight module (library/wanbench_preflight.py).
"""Names this play as the lock holder and takes over stale locks.

The holder is filled on the controller: play id (O(holder.play_id) or a fresh one), the
variant, the controller's user@host, the ansible-playbook PID and the start time. When the
module finds the lock held, the holder is stale if its controller is this machine and its
PID is gone, or if it has not been seen for O(stale_after) seconds; when no run holds the
run lock, the module is called again to take the lock over, with a warning.
"""

from __future__ import annotations

import getpass
import os
import secrets
import socket
from datetime import datetime, timezone

from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

display = Display()


def controller():
    return f"{getpass.getuser()}@{socket.gethostname()}"


def new_play_id():
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


def pid_alive(pid):
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError, TypeError):
        return True
    return True


def stale_reason(holder, age, stale_after, here):
    """Why a holder is stale, or '' when it may still be alive."""
    if not isinstance(holder, dict) or "play_id" not in holder:
        return ""
    if holder.get("controller") == here and not pid_alive(holder.get("pid")):
        return f"its ansible-playbook (pid {holder.get('pid')} on {here}) is gone"
    if age is not None and age > stale_after:
        return f"it was last seen {age} s ago (more than {stale_after} s)"
    return ""


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
        here = controller()
        if args.get("lock", "check") in ("acquire", "check") and not args.get("holder"):
            # The worker's parent is the ansible-playbook process itself.
            args["holder"] = {"play_id": play_id, "variant": variant, "controller": here, "pid": os.getppid(),
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
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        result.update(res)
        return result
