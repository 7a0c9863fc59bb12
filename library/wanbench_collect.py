#!/usr/bin/python
# -*- coding: utf-8 -*-
# wanbench: fetch one run directory to the controller (documentation of the action plugin).
from __future__ import annotations

DOCUMENTATION = r"""
module: wanbench_collect
short_description: Pack a wanbench run directory for the controller
description:
  - One plain command on the host (no module, no Python there) counts the run directory's files
    and streams C(tar -cz) of it (one C(sh) where the run lives, through O(exec), e.g.
    C(docker exec NAME)) into O(archive) on the host - one archive, no C(docker cp), no copy left
    in the container. An archive up to O(inline_max) bytes comes back base64 in the command's
    output and is removed from the host; a larger one is fetched once.
  - The action plugin (action_plugins/wanbench_collect.py) then unpacks it on the controller into
    O(dest)/<run id>, compares the file counts and removes a fetched archive (and, unless
    O(keep_run_dir), the run directory) with one shell command.
  - Symbolic links in the run directory are recorded in C(links.json) of the collected directory
    (name and target), never made or followed. A run that cannot be collected whole (a file the
    archive lacks, a device or pipe) fails the task naming the run and why; nothing of it reaches
    O(dest) and it stays on the host for C(playbooks/collect.yml).
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
  leave_out:
    description: A file name in the run directory that stays where the run lives and is not fetched
      (the generated output, scored on the host; "" fetches everything).
    type: str
    default: ""
  host_capture:
    description: A command line run on the host first (action plugin only; the device state after the run where
      the container lacks the tool, C(wanbench_host_capture_command)); "" runs none.
    type: str
    default: ""
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
  register: collect_result
"""

RETURN = r"""
run_id:
  description: The run's id (the run directory's name).
  type: str
  returned: success
path:
  description: Where the run directory now is on the controller, O(dest)/<run id>.
  type: str
  returned: success
files:
  description: Regular files fetched (the same number as in the run directory when it was packed).
  type: int
  returned: success
links:
  description: The run directory's symbolic links, name (in the run directory) to target, as recorded in links.json.
  type: dict
  returned: success
"""

# The work is done by the action plugin (action_plugins/wanbench_collect.py): plain shell commands on
# the target, no Python there. This file documents the task's arguments (ansible-doc).
