# The verdict options' argument list over wanbench.judging (a thin skin: the options live in the package).
from __future__ import annotations

DOCUMENTATION = r"""
name: wanbench_judging_argv
short_description: The wanbench compare/report arguments of the verdict options
description:
  - Builds the command-line arguments of every verdict option (wanbench.judging.OPTIONS) from a mapping
    {option name: value}, so that the adaptive look (playbooks/tasks/look.yml) and the report role judge
    with the same options. Every option must be named; an empty value or null leaves it at its default,
    a list gives a repeatable option once per item, a flag is given when true.
options:
  _input:
    description: "{threshold_pct, reserved_tolerance_pct, noise_store, noise_cv_pct, noise, min_noise_df,
      noise_window_days, noise_window_commits, confidence,
      allow_mismatch, idle_util_pct, idle_mem_mb, busy_cpu_pct, ignore_process, min_psnr_db,
      require_same_output}"
    type: dict
    required: true
"""

EXAMPLES = r"""
argv: "{{ ['wanbench', 'compare', 'C'] + (judging_values | wanbench_judging_argv) }}"
"""

RETURN = r"""
_value:
  description: The arguments, e.g. C(['--threshold-pct', '0.5', '--ignore-process=sshd', '--require-same-output']).
  type: list
  elements: str
"""

from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

try:
    from wanbench import judging as _judging
except ImportError as exc:  # not the repository's Python: Ansible skips this plugin and prints this line
    raise ImportError(f"{exc}: run ansible-playbook from the repository's .venv (scripts/setup.sh)") from exc


def wanbench_judging_argv(values):
    """The verdict options' arguments (see wanbench.judging.argv)."""
    if not isinstance(values, Mapping):
        raise AnsibleFilterError(f"wanbench_judging_argv: expected a mapping, got {type(values).__name__}")
    try:
        return _judging.argv({k: (list(v) if isinstance(v, (list, tuple)) else v) for k, v in values.items()})
    except ValueError as exc:
        raise AnsibleFilterError(f"wanbench_judging_argv: {exc}") from None


class FilterModule:
    """wanbench judging filters."""

    def filters(self):
        return {"wanbench_judging_argv": wanbench_judging_argv}
