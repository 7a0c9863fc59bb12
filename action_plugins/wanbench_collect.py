# -*- coding: utf-8 -*-
# wanbench: fetch one run directory to the controller in one task (module: library/wanbench_collect.py).
"""Pack on the host (module), one fetch, unpack and count on the controller, clean up (one command).

A small archive (up to the module's inline_max, 8 MiB) comes back inside the module's result:
then there is no separate fetch and nothing to clean up on the host.

Replaces seven tasks a run (list, tar, docker cp, rm, fetch, unarchive, find) with three
round trips in one task. The archive is unpacked with tarfile's "data" filter (no absolute
paths, links out of the tree or devices), into <dest>/<run_id>/.
"""

from __future__ import annotations

import base64
import os
import shlex
import tarfile
import tempfile

from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase


def count_files(path):
    return sum(len(files) for _, _, files in os.walk(path))


class ActionModule(ActionBase):
    TRANSFERS_FILES = True

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp
        args = dict(self._task.args)
        dest = os.path.abspath(os.path.expanduser(str(args.get("dest") or ".")))
        run_dir = str(args["run_dir"]).rstrip("/")
        run_id = os.path.basename(run_dir)
        try:
            packed = self._execute_module(module_name="wanbench_collect",
                                          module_args=args, task_vars=task_vars)
            if packed.get("failed") or self._task.check_mode:
                result.update(packed)
                return result
            os.makedirs(dest, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=dest, prefix=f".{run_id}.") as work:
                local = os.path.join(work, "run.tar.gz")
                inlined = "content" in packed
                if inlined:  # small archive: it came back in the module's result
                    with open(local, "wb") as f:
                        f.write(base64.b64decode(packed.pop("content")))
                else:
                    self._connection.fetch_file(packed["archive"], local)
                with tarfile.open(local) as archive:
                    names = {m.name.split("/", 1)[0] for m in archive.getmembers()}
                    if names != {run_id}:
                        result.update(failed=True, msg=f"archive of {run_dir} holds {sorted(names)}, not {run_id}")
                        return result
                    archive.extractall(work, filter="data")
                got = count_files(os.path.join(work, run_id))
                if got != packed["files"]:
                    result.update(failed=True, msg=f"fetched {got} files of {packed['files']} from {run_dir} "
                                                   f"on {task_vars.get('inventory_hostname')}")
                    return result
                final = os.path.join(dest, run_id)
                if os.path.exists(final):
                    result.update(failed=True, msg=f"{final} exists already; not overwritten")
                    return result
                os.rename(os.path.join(work, run_id), final)
            # The archive (and, unless kept, the run directory) go with one shell command.
            cleanup = [] if inlined else [["rm", "-f", "--", packed["archive"]]]
            if not boolean(args.get("keep_run_dir", True)):
                cleanup.append([*map(str, args.get("exec") or []), "rm", "-rf", "--", run_dir])
            cleaned = self._low_level_execute_command(
                " && ".join(" ".join(map(shlex.quote, c)) for c in cleanup)) if cleanup else {}
            if cleaned.get("rc"):
                result.update(failed=True, msg=f"fetched, but cannot clean up: {cleaned.get('stderr', '').strip()}")
                return result
            result.update(changed=True, run_id=run_id, path=final, files=got)
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        return result
