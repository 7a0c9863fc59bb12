# Filters of playbooks/collect.yml over wanbench.rundirs (thin skins: the logic lives in the package).
from __future__ import annotations

DOCUMENTATION = r"""
name: wanbench_report_inputs
short_description: The report role's inputs for collected runs whose play died before its report
description:
  - Reads the manifests of collected run directories (and, with O(results_dir), of the already
    collected runs of the same plays) and returns C({runs, controls, confidence, unhealthy}) for
    the report role; cancelled runs are marked and left out of C(unhealthy).
options:
  _input:
    description: Paths of collected run directories.
    type: list
    elements: str
    required: true
  results_dir:
    description: The controller's results of the host (C(results/<host>)); "" = only the given runs.
    type: str
    default: ""
"""

EXAMPLES = r"""
- name: Gather the report's runs
  ansible.builtin.set_fact:
    collect_later_report: "{{ collect_later_paths | wanbench_report_inputs(wanbench_results_dir ~ '/' ~ inventory_hostname) }}"
"""

RETURN = r"""
_value:
  description: C({runs, controls, confidence, unhealthy}); runs are C({variant, role, control_key, path,
    exit_code, cancelled}) in run order.
  type: dict
"""

from ansible.errors import AnsibleFilterError

try:
    from wanbench import rundirs as _rundirs
except ImportError as exc:  # not the repository's Python: Ansible skips this plugin and prints this line
    raise ImportError(f"{exc}: run ansible-playbook from the repository's .venv (scripts/setup.sh)") from exc


def wanbench_report_inputs(paths, results_dir=""):
    """{runs, controls, confidence, unhealthy} for the report role (see wanbench.rundirs.report_inputs)."""
    if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
        raise AnsibleFilterError("wanbench_report_inputs: expected a list of run directory paths")
    try:
        return _rundirs.report_inputs(paths, str(results_dir or "") or None)
    except ValueError as exc:  # a manifest field of the wrong type: one line naming the file and the key
        raise AnsibleFilterError(f"wanbench_report_inputs: {exc}") from None


class FilterModule:
    """wanbench run directory filters."""

    def filters(self):
        return {"wanbench_report_inputs": wanbench_report_inputs}
