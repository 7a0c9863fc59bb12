# -*- coding: utf-8 -*-
# wanbench: write a run directory's files where the run will live, in one command (module: library/wanbench_rundir.py).
"""Action plugin of wanbench_rundir: a tar stream of the files, unpacked by one shell command.

The archive is built on the controller and sent as the command's standard input over the
connection (for a container, through one ``docker exec -i``), so no Python and no module
upload is needed on the target: one round trip per run directory.
"""

from __future__ import annotations

import io
import shlex
import tarfile
import time

from ansible.plugins.action import ActionBase

# Unpacks the tar stream on stdin into a new directory $1 (mkdir without -p on the last level:
# an existing run directory is an error). A failed unpack (a full disk) removes the directory: no
# half-written run.sh or manifest.json is left for collect to bring into results/.
UNPACK = 'mkdir -p "$(dirname "$1")" && mkdir "$1" && { tar -x -C "$1" || { rm -rf "$1"; exit 1; }; }'


def tar_of(files, executable):
    """An uncompressed tar of {name: text}; names in executable get mode 0755, the others 0644."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), int(time.time())
            info.mode = 0o755 if name in executable else 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def unpack_argv(path, container="", docker="docker"):
    """argv that unpacks the tar stream on stdin into the new directory path."""
    inner = ["sh", "-c", UNPACK, "wanbench-rundir", path]
    return [docker, "exec", "-i", container, *inner] if container else inner


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("path", "files", "executable", "container", "docker"))

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars or {})
        del tmp
        args = self._task.args
        path, files = str(args.get("path") or ""), args.get("files")
        if not path or not isinstance(files, dict) or not files:
            return {**result, "failed": True, "msg": "wanbench_rundir: path and files (a mapping of names to text) are required"}
        names = sorted(files)
        bad = [n for n in names if not isinstance(n, str) or "/" in n or n in ("", ".", "..")]
        if bad:
            return {**result, "failed": True, "msg": f"wanbench_rundir: file names must be plain names, got {bad}"}
        executable = set(args.get("executable") or [])
        result.update(changed=True, path=path, files=names)
        if self._task.check_mode:
            return result
        container = str(args.get("container") or "")
        argv = unpack_argv(path, container, str(args.get("docker") or "docker"))
        data = tar_of({n: str(files[n]) for n in names}, executable)
        done = self._low_level_execute_command(shlex.join(argv), in_data=data)
        if done.get("rc") != 0:
            where = f" in container {container}" if container else ""
            return {**result, "changed": False, "failed": True, "cmd": argv,
                    "msg": f"cannot write {path}{where}: {(done.get('stderr') or done.get('stdout') or '').strip()}"}
        return result
