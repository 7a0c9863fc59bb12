#!/usr/bin/python
# -*- coding: utf-8 -*-
# wanbench: write a run directory's files where the run will live, in one call.
from __future__ import annotations

DOCUMENTATION = r"""
module: wanbench_rundir
short_description: Create a wanbench run directory holding the given files, on the host or in a container
description:
  - Creates O(path) (it must not exist: a run id is used once) and writes O(files) into it.
  - In a container, one C(docker exec -i) unpacks a tar stream of the files; on the host the
    files are written directly. Replaces a staging directory, a template, a copy, a mkdir and a
    C(docker cp) per run.
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
      manifest.json: "{{ render_manifest | to_nice_json }}\n"
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

import io
import os
import subprocess
import tarfile
import time

from ansible.module_utils.basic import AnsibleModule

# Unpacks the tar stream on stdin into a new directory $1 (mkdir without -p on the last level:
# an existing run directory is an error).
UNPACK = 'mkdir -p "$(dirname "$1")" && mkdir "$1" && tar -x -C "$1"'


def tar_of(files, executable):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), int(time.time())
            info.mode = 0o755 if name in executable else 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="str", required=True),
            files=dict(type="dict", required=True),
            executable=dict(type="list", elements="str", default=[]),
            container=dict(type="str", default=""),
            docker=dict(type="str", default="docker"),
        ),
        supports_check_mode=True,
    )
    p = module.params
    names = sorted(p["files"])
    bad = [n for n in names if "/" in n or n in ("", ".", "..")]
    if bad:
        module.fail_json(msg=f"file names must be plain names, got {bad}")
    files = {n: str(p["files"][n]) for n in names}
    if module.check_mode:
        module.exit_json(changed=True, path=p["path"], files=names)
    if p["container"]:
        argv = [p["docker"], "exec", "-i", p["container"], "sh", "-c", UNPACK, "wanbench-rundir", p["path"]]
        done = subprocess.run(argv, input=tar_of(files, set(p["executable"])), capture_output=True, check=False)
        if done.returncode != 0:
            module.fail_json(msg=f"cannot write {p['path']} in container {p['container']}: "
                                 f"{done.stderr.decode(errors='replace').strip()}", cmd=argv)
    else:
        try:
            os.makedirs(os.path.dirname(p["path"]), exist_ok=True)
            os.mkdir(p["path"])
            for name, text in files.items():
                target = os.path.join(p["path"], name)
                with open(target, "w", encoding="utf-8") as f:
                    f.write(text)
                os.chmod(target, 0o755 if name in p["executable"] else 0o644)
        except OSError as exc:
            module.fail_json(msg=f"cannot write {p['path']}: {exc}")
    module.exit_json(changed=True, path=p["path"], files=names)


if __name__ == "__main__":
    main()
