# -*- coding: utf-8 -*-
# wanbench: wait for a detached run until it ends, in one task (controller-side loop).
"""Action plugin of the wanbench_wait module (library/wanbench_wait.py).

One task waits out a run of any length: a loop on the controller calls the module on the
target once per round (a round lasts the module's window, 5 to 20 s), prints one progress
line per round, and rides out a lost SSH connection. The loop keeps no per-round state, so
its stack and memory stay constant however long the run lasts (no recursive include).
The pattern is ansible.builtin.async_status / wait_for_connection's.
"""

from __future__ import annotations

import os
import time

from ansible.errors import AnsibleConnectionFailure, AnsibleError
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

display = Display()

# Arguments the action plugin keeps for itself; everything else goes to the module.
OWN_ARGS = ("label", "reconnect_timeout", "reconnect_sleep")


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("run_dir", "container", "docker", "window", "min_window", "interval", "timeout",
                             "start_grace", *OWN_ARGS))

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp
        args = dict(self._task.args)
        label = args.pop("label", None) or os.path.basename(str(args.get("run_dir", "")).rstrip("/"))
        reconnect_timeout = float(args.pop("reconnect_timeout", 300))
        reconnect_sleep = float(args.pop("reconnect_sleep", 2))
        if self._task.check_mode:
            result.update(skipped=True, msg="check mode: no run was started, nothing to wait for")
            return result
        try:
            result.update(self.wait(args, task_vars, label, reconnect_timeout, reconnect_sleep))
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        return result

    def call_module(self, args, task_vars):
        """One round: the module waits up to its window on the target and returns the run's state."""
        res = self._execute_module(module_name="wanbench_wait", module_args=args, task_vars=task_vars)
        if res.get("unreachable"):
            raise AnsibleConnectionFailure(res.get("msg", "host unreachable"))
        return res

    def wait(self, args, task_vars, label, reconnect_timeout, reconnect_sleep):
        rounds = reconnects = 0
        lost_since = None
        while True:
            try:
                res = self.call_module(args, task_vars)
            except AnsibleConnectionFailure as exc:
                now = time.monotonic()
                if lost_since is None:
                    lost_since = now
                    reconnects += 1
                    display.display(f"{label}: SSH connection lost ({str(exc).strip()[:200]}); waiting for it")
                if now - lost_since > reconnect_timeout:
                    return {"failed": True, "unreachable": True, "rounds": rounds, "reconnects": reconnects,
                            "msg": f"{label}: host unreachable for more than {reconnect_timeout:g} s while "
                                   "waiting for the run (it keeps running on the host)"}
                time.sleep(reconnect_sleep)
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
                res.update(rounds=rounds, reconnects=reconnects)
                return res
            display.display(f"{label}: {res.get('progress', '')}")
            if res.get("done"):
                res.update(rounds=rounds, reconnects=reconnects, changed=False)
                return res
