#!/usr/bin/python
# -*- coding: utf-8 -*-
# wanbench: pack one run directory into an archive on the host (the action plugin fetches it).
from __future__ import annotations

DOCUMENTATION = r"""
module: wanbench_collect
short_description: Pack a wanbench run directory for the controller
description:
  - Counts the run directory's files and streams C(tar -cz) of it (one C(sh) where the run
    lives, through O(exec), e.g. C(docker exec NAME)) into O(archive) on the host: one
    archive, no C(docker cp), no copy left in the container.
  - The action plugin (action_plugins/wanbench_collect.py) calls it, fetches the archive once,
    unpacks it on the controller, compares the file counts and removes the archive (and, unless
    O(keep_run_dir), the run directory) with one shell command.
options:
  run_dir:
    description: Run directory to pack (where the run lives).
    type: str
    required: true
  exec:
    description: Argv prefix that runs a program where the run lives; empty for the host.
    type: list
    elements: str
    default: []
  archive:
    description: Path of the archive on the host.
    type: str
    required: true
  keep_run_dir:
    description: Keep the run directory where the run lives once fetched (action plugin).
    type: bool
    default: true
  inline_max:
    description: An archive up to this many bytes comes back base64 in the result (no separate
      fetch, nothing left on the host); a larger one is left at O(archive) for the action to fetch.
    type: int
    default: 8388608
  dest:
    description: Controller directory the action plugin unpacks into (action plugin only).
    type: str
    default: ""
author: wanbench
"""

EXAMPLES = r"""
- name: Collect the run
  wanbench_collect:
    run_dir: /root/wanbench/runs/20261126T120000Z-ffn_only-a1b2c3
    exec: [docker, exec, mindie-wan2.1-xysheng]
    archive: /tmp/wanbench-stage/20261126T120000Z-ffn_only-a1b2c3.tar.gz
    dest: results/npu
  register: collect_packed
"""

RETURN = r"""
files:
  description: Regular files in the run directory when it was packed.
  type: int
  returned: success
archive:
  description: The archive on the host (absent from it when inlined).
  type: str
  returned: always
content:
  description: The archive, base64, when it is at most O(inline_max) bytes (then removed from the host).
  type: str
  returned: when inlined
"""

import base64
import os
import subprocess

from ansible.module_utils.basic import AnsibleModule

# $1 the run root, $2 the run id: prints the number of files to stderr, then tar.gz to stdout.
PACK = ('{ cd "$1" && [ -d "$2" ]; } 2>/dev/null || { echo "no run directory $1/$2" >&2; exit 1; }; '
        'find "$2" -type f | wc -l >&2 && exec tar -cz "$2"')


def main():
    module = AnsibleModule(
        argument_spec=dict(
            run_dir=dict(type="str", required=True),
            exec=dict(type="list", elements="str", default=[]),
            archive=dict(type="str", required=True),
            keep_run_dir=dict(type="bool", default=True),
            inline_max=dict(type="int", default=8 << 20),
            dest=dict(type="str", default=""),
        ),
        supports_check_mode=True,
    )
    p = module.params
    run_dir = p["run_dir"].rstrip("/")
    if module.check_mode:
        rc, out, err = module.run_command(p["exec"] + ["find", run_dir, "-type", "f"])
        module.exit_json(changed=False, files=len(out.splitlines()), archive=p["archive"])
    os.makedirs(os.path.dirname(p["archive"]) or ".", mode=0o700, exist_ok=True)
    # One exec where the run lives: the file count on stderr's first line, the archive on stdout.
    argv = p["exec"] + ["sh", "-c", PACK, "wanbench-collect", os.path.dirname(run_dir), os.path.basename(run_dir)]
    with open(p["archive"], "wb") as archive:
        done = subprocess.run(argv, stdout=archive, stderr=subprocess.PIPE, check=False)
    err = done.stderr.decode(errors="replace")
    first, _, rest = err.partition("\n")
    if done.returncode != 0 or not first.strip().isdigit():
        os.unlink(p["archive"])
        module.fail_json(msg=f"cannot pack {run_dir}: {(rest or first).strip()}", archive=p["archive"], cmd=argv)
    files = int(first)
    if os.path.getsize(p["archive"]) <= p["inline_max"]:
        with open(p["archive"], "rb") as archive:
            content = base64.b64encode(archive.read()).decode("ascii")
        os.unlink(p["archive"])
        module.exit_json(changed=True, files=files, archive=p["archive"], content=content)
    module.exit_json(changed=True, files=files, archive=p["archive"])


if __name__ == "__main__":
    main()
