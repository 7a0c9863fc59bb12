# Filters over wanbench.inputs and wanbench.inventory (thin skins: all rules live in the package).
from __future__ import annotations

# Each filter is documented in filter_plugins/<filter name>.yml (ansible-doc -t filter NAME).

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
