# Filters of playbooks/collect.yml over wanbench.rundirs (thin skins: the logic lives in the package).
from __future__ import annotations

# Each filter is documented in filter_plugins/<filter name>.yml (ansible-doc -t filter NAME).

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
