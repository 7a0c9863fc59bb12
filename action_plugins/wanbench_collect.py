# -*- coding: utf-8 -*-
# wanbench: fetch one run directory to the controller in one task (module: library/wanbench_collect.py).
"""Pack on the host (one shell command), unpack and count on the controller.

One plain command over the connection (no module, no Python on the target) counts the run
directory's files and streams ``tar -cz`` of it from where the run lives (through ``exec``,
e.g. ``docker exec NAME``) into an archive on the host; an archive up to inline_max (8 MiB)
comes back base64 in that command's output and is removed from the host, a larger one is
fetched once and removed by a second command. The archive is unpacked with tarfile's "data"
filter (no absolute paths, links out of the tree or devices), into <dest>/<run_id>/; symbolic
links are recorded in its links.json (name: target), never made or followed (wanbench.rundirs.unpack).
A run that cannot be collected whole is not moved into <dest> and stays on the host.
With host_capture (devices.host_capture_command), that command runs first: the device state after
the run, read on the host where the container lacks the tool, into the run's health/after/.
"""

from __future__ import annotations

import base64
import os
import shlex
import tempfile

from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase

from wanbench import rundirs

# $1 the run root, $2 the run id, $3 a file name left out ("" none): prints the number of files to
# stderr, then tar.gz to stdout. Half-written files and folders (*.tmp: renamed into place once whole;
# tmp.tmp, the run's TMPDIR) stay behind.
PACK = ('{ cd "$1" && [ -d "$2" ]; } 2>/dev/null || { echo "no run directory $1/$2" >&2; exit 1; }; '
        'x=${3:+"$2/$3"}; find "$2" -name "*.tmp" -prune -o -type f ${x:+! -path "$x"} -print | wc -l >&2 && '
        'exec tar -cz --exclude="*.tmp" --no-wildcards ${x:+--exclude="$x"} "$2"')

# On the host: $1 the archive, $2 inline_max, $3 the run root, $4 the run id, $5 the file left out,
# then the exec prefix.
# Prints files=N, then either "inline" and the archive in base64 (the archive removed) or "kept".
STAGE = r"""
archive=$1 max=$2 root=$3 id=$4 leave=$5; shift 5
mkdir -p -m 700 "$(dirname "$archive")" || exit 1
"$@" sh -c "$0" wanbench-collect "$root" "$id" "$leave" >"$archive" 2>"$archive.err"
rc=$? files=$(head -n 1 "$archive.err") err=$(tail -n +2 "$archive.err")
rm -f "$archive.err"
case "$rc:$files" in 0:*[!0-9]*|0:) rc=1 ;; esac
if [ "$rc" != 0 ]; then rm -f "$archive"; echo "${err:-$files}" >&2; exit 1; fi
echo "files=$files"
if [ "$(stat -c %s "$archive")" -le "$max" ]; then echo inline; base64 -w 0 "$archive" && rm -f "$archive"; else echo kept; fi
"""


def stage_argv(run_dir, archive, inline_max, exec_prefix, leave_out=""):
    """argv of the one command that packs run_dir (less the file leave_out) into archive on the host (STAGE)."""
    return ["sh", "-c", STAGE, PACK, archive, str(int(inline_max)), os.path.dirname(run_dir),
            os.path.basename(run_dir), str(leave_out or ""), *map(str, exec_prefix)]


def parse_stage(out):
    """{files, content (base64, when inlined)} from STAGE's output."""
    head, _, content = out.partition("\n")
    mode, _, content = content.partition("\n")
    files = int(head.removeprefix("files="))
    return {"files": files, **({"content": content.strip()} if mode.strip() == "inline" else {})}


def count_files(path):
    return sum(len(files) for _, _, files in os.walk(path))


class ActionModule(ActionBase):
    TRANSFERS_FILES = False  # no temporary directory on the target: nothing is uploaded

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp
        args = dict(self._task.args)
        dest = os.path.abspath(os.path.expanduser(str(args.get("dest") or ".")))
        run_dir = str(args["run_dir"]).rstrip("/")
        run_id = os.path.basename(run_dir)
        host = task_vars.get("inventory_hostname")
        try:
            staged = str(args["archive"])
            if self._task.check_mode:
                result.update(changed=False, skipped=True, msg="check mode: no run was started, nothing to collect")
                return result
            leave_out = str(args.get("leave_out") or "")
            if "/" in leave_out or leave_out in (".", ".."):
                result.update(failed=True, msg=f"leave_out must be a file name in the run directory, got {leave_out!r}")
                return result
            host_capture = str(args.get("host_capture") or "")
            if host_capture:  # the device state after the run, read on the host (the container lacks the tool)
                captured = self._low_level_execute_command(host_capture)
                if captured.get("rc"):
                    result.setdefault("warnings", []).append(
                        f"host capture after the run failed: {(captured.get('stderr') or '').strip()[:300]}")
            argv = stage_argv(run_dir, staged, args.get("inline_max", 8 << 20), args.get("exec") or [], leave_out)
            done = self._low_level_execute_command(shlex.join(argv))
            if done.get("rc") != 0:
                result.update(failed=True, cmd=argv, msg=f"cannot pack {run_dir}: "
                                                         f"{(done.get('stderr') or done.get('stdout') or '').strip()}")
                return result
            packed = {"archive": staged, **parse_stage(done.get("stdout", ""))}
            os.makedirs(dest, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=dest, prefix=f".{run_id}.") as work:
                local = os.path.join(work, "run.tar.gz")
                inlined = "content" in packed
                if inlined:  # small archive: it came back in the command's output
                    with open(local, "wb") as f:
                        f.write(base64.b64decode(packed.pop("content")))
                else:
                    self._connection.fetch_file(packed["archive"], local)
                try:
                    links = rundirs.unpack(local, work, run_id)
                except ValueError as exc:
                    result.update(failed=True, msg=f"{run_dir} on {host}: {exc}; it stays there for collect.yml")
                    return result
                got = count_files(os.path.join(work, run_id))
                if got != packed["files"]:
                    result.update(failed=True, msg=f"fetched {got} files of {packed['files']} from {run_dir} "
                                                   f"on {host}; it stays there for collect.yml")
                    return result
                rundirs.write_links(os.path.join(work, run_id), links)
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
                " && ".join(map(shlex.join, cleanup))) if cleanup else {}
            if cleaned.get("rc"):
                result.update(failed=True, msg=f"fetched, but cannot clean up: {cleaned.get('stderr', '').strip()}")
                return result
            result.update(changed=True, run_id=run_id, path=final, files=got, links=links)
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        return result
