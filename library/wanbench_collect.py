#!/usr/bin/python
# -*- coding: utf-8 -*-
# wanbench: pack one run directory into an archive on the host (the action plugin fetches it).
from __future__ import annotations

DOCUMENTATION = r"""
module: wanbench_collect
short_description: Pack a wanbench run directory for the controller, or remove what was packed
description:
  - O(state=packed) counts the run directory's files and streams C(tar -cz) of it (run where
    the run lives, through O(exec), e.g. C(docker exec NAME)) into O(archive) on the host: one
    archive, no C(docker cp), no copy left in the container.
  - O(state=absent) removes O(archive) from the host and, unless O(keep_run_dir), the run
    directory where the run lives.
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
  state:
    description: C(packed) or C(absent).
    type: str
    choices: [packed, absent]
    default: packed
  keep_run_dir:
    description: With O(state=absent), keep the run directory where the run lives.
    type: bool
    default: true
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
  returned: state=packed
archive:
  description: The archive on the host.
  type: str
  returned: always
"""

import os
import subprocess

from ansible.module_utils.basic import AnsibleModule


def main():
    module = AnsibleModule(
        argument_spec=dict(
            run_dir=dict(type="str", required=True),
            exec=dict(type="list", elements="str", default=[]),
            archive=dict(type="str", required=True),
            state=dict(type="str", choices=["packed", "absent"], default="packed"),
            keep_run_dir=dict(type="bool", default=True),
            dest=dict(type="str", default=""),
        ),
        supports_check_mode=True,
    )
    p = module.params
    run_dir = p["run_dir"].rstrip("/")
    if p["state"] == "absent":
        if module.check_mode:
            module.exit_json(changed=True, archive=p["archive"])
        if os.path.exists(p["archive"]):
            os.unlink(p["archive"])
        if not p["keep_run_dir"]:
            rc, out, err = module.run_command(p["exec"] + ["rm", "-rf", "--", run_dir])
            if rc != 0:
                module.fail_json(msg=f"cannot remove {run_dir}: {err.strip()}", archive=p["archive"])
        module.exit_json(changed=True, archive=p["archive"])
    rc, out, err = module.run_command(p["exec"] + ["find", run_dir, "-type", "f"])
    if rc != 0:
        module.fail_json(msg=f"cannot list {run_dir}: {err.strip() or out.strip()}", archive=p["archive"])
    files = len(out.splitlines())
    if module.check_mode:
        module.exit_json(changed=False, files=files, archive=p["archive"])
    os.makedirs(os.path.dirname(p["archive"]) or ".", mode=0o700, exist_ok=True)
    argv = p["exec"] + ["tar", "-C", os.path.dirname(run_dir), "-cz", os.path.basename(run_dir)]
    with open(p["archive"], "wb") as archive:
        done = subprocess.run(argv, stdout=archive, stderr=subprocess.PIPE, check=False)
    if done.returncode != 0:
        os.unlink(p["archive"])
        module.fail_json(msg=f"cannot pack {run_dir}: {done.stderr.decode(errors='replace').strip()}",
                         archive=p["archive"], cmd=argv)
    module.exit_json(changed=True, files=files, archive=p["archive"])


if __name__ == "__main__":
    main()
