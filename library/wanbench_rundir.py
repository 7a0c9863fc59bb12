#!/usr/bin/python
# -*- coding: utf-8 -*-
# wanbench: write a run directory's files where the run will live, in one call (documentation of the action plugin).
from __future__ import annotations

DOCUMENTATION = r"""
module: wanbench_rundir
short_description: Create a wanbench run directory holding the given files, on the host or in a container
description:
  - Creates O(path) (it must not exist yet, a run id is used once) and writes O(files) into it.
  - The action plugin builds a tar of the files on the controller and sends it as the standard
    input of one shell command on the target (C(docker exec -i) when there is a container), which
    unpacks it into the new directory. No Python and no module upload on the target.
options:
  path:
    description: Run directory to create.
    type: str
    required: true
  files:
    description: File name to content (text).
    type: dict
    required: true
  executable:
    description: Names in O(files) written with mode 0755 (the others 0644).
    type: list
    elements: str
    default: []
  container:
    description: Docker container where the run lives; empty for the host.
    type: str
    default: ""
  docker:
    description: Docker CLI on the host.
    type: str
    default: docker
author: wanbench
"""

EXAMPLES = r"""
- name: Write the run directory
  wanbench_rundir:
    path: /root/wanbench/runs/20261126T120000Z-ffn_only-a1b2c3
    container: mindie-wan2.1-xysheng
    files:
      run.sh: "{{ lookup('ansible.builtin.template', 'run.sh.j2') }}"
      manifest.json: "{{ render_result.manifest | to_nice_json }}\n"
    executable: [run.sh]
"""

RETURN = r"""
path:
  description: The run directory.
  type: str
  returned: always
files:
  description: The names written.
  type: list
  elements: str
  returned: always
"""

# The work is done by the action plugin (action_plugins/wanbench_rundir.py): one shell command on the
# target, no Python there. This file documents the task's arguments (ansible-doc).
