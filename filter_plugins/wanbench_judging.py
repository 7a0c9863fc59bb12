# The verdict options' argument list over wanbench.judging (a thin skin: the options live in the package).
from __future__ import annotations

# Each filter is documented in filter_plugins/<filter name>.yml (ansible-doc -t filter NAME).

from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

try:
    from wanbench import judging as _judging
except ImportError as exc:  # not the repository's Python: Ansible skips this plugin and prints this line
    raise ImportError(f"{exc}: run ansible-playbook from the repository's .venv (scripts/setup.sh)") from exc


def wanbench_judging_argv(values, controls=None, candidates=None):
    """The verdict options' arguments (see wanbench.judging.argv), then the runs (wanbench.judging.run_args)."""
    if not isinstance(values, Mapping):
        raise AnsibleFilterError(f"wanbench_judging_argv: expected a mapping, got {type(values).__name__}")
    if not all(isinstance(x, (list, tuple, type(None))) for x in (controls, candidates)):
        raise AnsibleFilterError("wanbench_judging_argv: controls and candidates must be lists of paths")
    try:
        return (_judging.argv({k: (list(v) if isinstance(v, (list, tuple)) else v) for k, v in values.items()})
                + _judging.run_args(controls, candidates))
    except ValueError as exc:
        raise AnsibleFilterError(f"wanbench_judging_argv: {exc}") from None


class FilterModule:
    """wanbench judging filters."""

    def filters(self):
        return {"wanbench_judging_argv": wanbench_judging_argv}
