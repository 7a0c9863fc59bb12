# Filters over wanbench.inputs and wanbench.inventory (thin skins: all rules live in the package).
from __future__ import annotations

DOCUMENTATION = r"""
name: wanbench_input_problems
short_description: Check the run inputs given with -e, raw, before anything templates them
description:
  - Reads the extra vars as Ansible loaded them from the command line (C(-e key=value), JSON,
    C(-e @file)), untemplated, and each C(-e key=value) argument as Ansible split it.
  - Never reads the run inputs through templating, so a C({{ lookup('pipe', ...) }}) in
    C(-e variant=...) is refused before it can run. Call it before any task reads a run input
    (the validate play does, in its pre_tasks).
  - Reports C(_raw_params) (words Ansible dropped from a C(key=value)), values Ansible split,
    variant names outside C([A-Za-z0-9_-]) or empty items of a comma list, Jinja markers in any
    run input but the prompt, a prompt with Jinja markers that Ansible would template (not
    C(!unsafe)), and the type or format of C(family), C(baseline), C(mode), C(repeats) and C(max_runs).
  - Companion filter in this file, C(wanbench_inventory_problems), checks one host's inventory
    settings and the catalog it sees (C(wanbench.inventory), shared with C(wanbench validate)); its
    input is the host's C(hostvars), its argument the host's name.
  - Companion filter C(wanbench_command_problems) takes the schedule's runs and the host's
    C(ARG_MAX) and login environment size (preflight's C(arg_max), C(env_bytes)) and names each variant whose command would not fit
    (C(wanbench.inputs.command_problems)); bench.yml checks it before the first run.
  - The prompt is also limited to 131071 bytes (one argument, Linux's MAX_ARG_STRLEN).
options:
  _input:
    description: Names of the run inputs to check (the other extra vars are only checked for splitting).
    type: list
    elements: str
    required: true
"""

EXAMPLES = r"""
- name: Refuse mangled or templated run inputs
  ansible.builtin.assert:
    quiet: true
    that: problems | length == 0
    fail_msg: "{{ problems | join('; ') }}"
  vars:
    problems: "{{ ['variant', 'mode', 'prompt'] | wanbench_input_problems }}"

- name: Show what is wrong with this host's inventory settings and catalog (an empty list when nothing)
  ansible.builtin.debug:
    msg: "{{ hostvars[inventory_hostname] | wanbench_inventory_problems(inventory_hostname) }}"
"""

RETURN = r"""
_value:
  description: One line per problem, naming the variable and the cause; empty when all is well.
  type: list
  elements: str
"""

from ansible.errors import AnsibleFilterError, AnsibleUndefinedVariable
from jinja2 import Undefined

try:
    from wanbench import inputs as _inputs
    from wanbench import inventory as _inventory
except ImportError as exc:  # not the repository's Python: Ansible skips this plugin and prints this line
    raise ImportError(f"{exc}: run ansible-playbook from the repository's .venv (scripts/setup.sh)") from exc


def _plain(value):
    """Plain Python data (Ansible's tagged str, dict and list subclasses made plain).

    An undefined value (a template that failed) raises AnsibleUndefinedVariable with its message.
    """
    if isinstance(value, Undefined):
        raise AnsibleUndefinedVariable(value._undefined_message)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, dict):
        return {_plain(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def raw_extra_vars():
    """(merged extra vars, [(-e key=value text, mapping Ansible made of it)], names not templated)."""
    from ansible import context
    from ansible.parsing.dataloader import DataLoader
    from ansible.parsing.splitter import parse_kv
    from ansible.template import is_trusted_as_template
    from ansible.utils.vars import load_extra_vars

    # The same loader and parser the CLI used; load_extra_vars returns the dict the play's
    # variables were built from (raw strings, templated only when a task reads them).
    values = load_extra_vars(DataLoader())
    texts = [str(t) for t in (context.CLIARGS.get("extra_vars") or ()) if t]
    arguments = [(t, _plain(parse_kv(t))) for t in texts if t[0] not in "@/.[{"]
    inert = {str(k) for k, v in values.items() if isinstance(v, str) and not is_trusted_as_template(v)}
    return _plain(values), arguments, inert


def wanbench_input_problems(names):
    """One line per problem of the run inputs given with -e (raw, untemplated)."""
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
        raise AnsibleFilterError(f"wanbench_input_problems: expected a list of run input names, got {names!r}")
    values, arguments, inert = raw_extra_vars()
    return _inputs.check_extra_vars(values, arguments, inert=inert, names=[str(n) for n in names])


def wanbench_inventory_problems(hostvars, host):
    """One line per problem of one host's inventory settings and catalog (see wanbench.inventory)."""
    if not hasattr(hostvars, "__getitem__"):
        raise AnsibleFilterError(f"wanbench_inventory_problems: expected hostvars[inventory_hostname], got {hostvars!r}")
    return _inventory.problems(str(host), _inventory.gather(lambda name: _plain(hostvars[name])))


def wanbench_command_problems(runs, arg_max=0, run_root="", env_bytes=0, **options):
    """Variants whose command would not fit the host's ARG_MAX, one line each (wanbench.inputs.command_problems)."""
    if not isinstance(runs, list) or not all(isinstance(r, dict) and "variant" in r for r in runs):
        raise AnsibleFilterError("wanbench_command_problems: expected the schedule's runs (a list)")
    try:
        arg_max, env_bytes = int(arg_max or 0), int(env_bytes or 0)
    except (TypeError, ValueError):
        raise AnsibleFilterError(f"wanbench_command_problems: arg_max and env_bytes must be numbers, "
                                 f"got {arg_max!r}, {env_bytes!r}") from None
    return _inputs.command_problems(runs, arg_max, str(run_root), env_bytes,
                                    **{k: str(v if v is not None else "") for k, v in options.items()})


class FilterModule:
    """wanbench input filters."""

    def filters(self):
        return {"wanbench_input_problems": wanbench_input_problems,
                "wanbench_inventory_problems": wanbench_inventory_problems,
                "wanbench_command_problems": wanbench_command_problems}
