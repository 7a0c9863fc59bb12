# Filter over wanbench.matrix (a thin skin: all logic lives in the package).
from __future__ import annotations

# Each filter is documented in filter_plugins/<filter name>.yml (ansible-doc -t filter NAME).


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
