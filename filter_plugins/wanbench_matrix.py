# Filter over wanbench.matrix (a thin skin: all logic lives in the package).
from __future__ import annotations

DOCUMENTATION = r"""
name: wanbench_matrix
short_description: Resolve a named matrix and split its candidates between the hosts
description:
  - Checks matrix C(name) of C(wanbench_matrices) against the catalog and gives every host its share
    (round-robin over the candidates; a host with none runs the family baselines alone).
  - Refuses a C(variant) given together with a matrix. A wrong matrix or input comes back as
    C({error}), one line naming the matrix, for the play to assert on (a clean message, not a
    templating traceback).
options:
  _input:
    description: C(wanbench_matrices), the named matrices.
    type: dict
    required: true
  name:
    description: The matrix to run (C(-e matrix=NAME)).
    type: str
    required: true
  catalog:
    description: The catalog, C({common, platform_settings, families, modes, variants}).
    type: dict
    required: true
  hosts:
    description: The hosts that split the matrix, in inventory order.
    type: list
    elements: str
    required: true
  platform:
    description: C(npu), C(cuda) or C(reference).
    type: str
    default: npu
  variant:
    description: The play's C(variant) input; must be empty.
    type: str
    default: ""
"""

EXAMPLES = r"""
- name: Take this host's share of the matrix
  ansible.builtin.set_fact:
    nightly_plan: >-
      {{ wanbench_matrices | wanbench_matrix(matrix, validate_catalog, hosts=ansible_play_hosts_all,
           platform=wanbench_platform, variant=variant) }}
"""

RETURN = r"""
_value:
  description: C({name, variants, baselines, repeats, hosts}); C(hosts) maps each host to
    C({variants, variant (comma separated), repeats, candidates}); or C({error}) on a wrong matrix.
  type: dict
"""


try:
    from wanbench import matrix as _matrix
except ImportError as exc:  # not the repository's Python: Ansible skips this plugin and prints this line
    raise ImportError(f"{exc}: run ansible-playbook from the repository's .venv (scripts/setup.sh)") from exc


def wanbench_matrix(matrices, name, catalog, hosts, platform="npu", variant=""):
    """This night's matrix and every host's share of it (see wanbench.matrix)."""
    try:
        return _matrix.plan(matrices, name, catalog, list(hosts or []), platform=platform, variant=variant)
    except ValueError as exc:
        return {"error": str(exc)}


class FilterModule:
    """wanbench matrix filter."""

    def filters(self):
        return {"wanbench_matrix": wanbench_matrix}
