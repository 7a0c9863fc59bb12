"""One host's inventory and the catalog it sees: the checks shared by the validate play and ``wanbench validate``.

:func:`problems` takes a host's variables, templated (the play hands over ``hostvars``;
``wanbench validate`` loads them with Ansible's own inventory and templating, :func:`load`),
and returns one line per problem, naming the host, the variable and the cause.  Nothing here
touches a host.
"""

from __future__ import annotations

import math
import os
import re

from . import catalog
from . import platforms
from .schema import PLATFORMS

#: The catalog as one mapping (assembled once, in group_vars/all/catalog.yml, from its five parts).
CATALOG = "wanbench_catalog"
#: The site variables checked here ("where things are", group_vars/all/site.yml).
SETTINGS = ("wanbench_platform", "wanbench_container", "wanbench_repo_dir", "wanbench_run_root",
            "wanbench_results_dir", "wanbench_repo_fetch", "wanbench_allow_dirty", "wanbench_git_remote",
            "wanbench_git_branch", "wanbench_required_commits", "wanbench_model_dir", "wanbench_visible_devices",
            "wanbench_min_free_gb", "wanbench_job_timeout")
NAMES = SETTINGS + (CATALOG,)

CONTAINER_RE = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*")
DEVICES_RE = re.compile(r"[0-9]+(,[0-9]+)*")
# The words Ansible's `bool` filter and its bool argument type take.
BOOLEANS = {"true": True, "yes": True, "on": True, "1": True, "y": True, "t": True,
            "false": False, "no": False, "off": False, "0": False, "n": False, "f": False}


def _bool(value):
    """``value`` as a bool, or None when it is neither true nor false."""
    if isinstance(value, bool):
        return value
    return BOOLEANS.get(str(value).strip().lower()) if isinstance(value, (str, int)) else None


def _number(value):
    """``value`` as a finite float, or None when it is no such number."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _absolute(name, value):
    if not (isinstance(value, str) and value.startswith("/")):
        return f"{name} must be an absolute path, got {value!r}"
    return None


def _settings(v, nproc):
    """Problems of the site variables ``v`` (every name of SETTINGS present)."""
    platform = v["wanbench_platform"]
    if platform not in PLATFORMS:
        yield f"wanbench_platform must be one of {', '.join(PLATFORMS)}, got {platform!r}"
    yield _absolute("wanbench_repo_dir", v["wanbench_repo_dir"])
    yield _absolute("wanbench_run_root", v["wanbench_run_root"])
    yield _absolute("wanbench_results_dir", v["wanbench_results_dir"])
    container = v["wanbench_container"]
    if not (container == "" or (isinstance(container, str) and CONTAINER_RE.fullmatch(container))):
        yield f"wanbench_container {container!r} is not a docker container name"
    model = v["wanbench_model_dir"]
    if model not in ("", None):
        yield _absolute("wanbench_model_dir", model)
    for name in ("wanbench_repo_fetch", "wanbench_allow_dirty"):
        if _bool(v[name]) is None:
            yield f"{name} must be true or false, got {v[name]!r}"
    if _bool(v["wanbench_repo_fetch"]) and not (v["wanbench_git_remote"] and v["wanbench_git_branch"]):
        yield "wanbench_git_remote and wanbench_git_branch are needed when wanbench_repo_fetch is on"
    commits = v["wanbench_required_commits"]
    if not (isinstance(commits, list) and all(isinstance(c, str) and c for c in commits)):
        yield f"wanbench_required_commits must be a list of commits (SHA or ref), got {commits!r}"
    timeout = _number(v["wanbench_job_timeout"])
    if timeout is None or timeout <= 0 or timeout != int(timeout):
        yield f"wanbench_job_timeout must be a positive whole number of seconds, got {v['wanbench_job_timeout']!r}"
    free = _number(v["wanbench_min_free_gb"])
    if free is None or free < 0:
        yield f"wanbench_min_free_gb must be a number of GiB (0 or more), got {v['wanbench_min_free_gb']!r}"
    devices = v["wanbench_visible_devices"]
    if platform in PLATFORMS and platforms.get(platform).device_env and nproc is not None and not (
            isinstance(devices, str) and DEVICES_RE.fullmatch(devices) and len(devices.split(",")) == nproc):
        yield (f"wanbench_visible_devices must list {nproc} device ids (one per process, e.g. "
               f"\"{','.join(map(str, range(nproc)))}\") on platform {platform}, got {devices!r}")


def problems(host, hostvars):
    """One line per problem of ``host``'s inventory and catalog; empty when all is well.

    ``hostvars``: the host's variables, templated (:func:`gather`); a variable that is not set
    or could not be templated is reported by name.
    """
    missing = [n for n in NAMES if n not in hostvars]
    if missing:
        return [f"inventory of {host}: {', '.join(missing)} not set (are group_vars/all/site.yml and "
                "catalog.yml loaded? run from the repository root)"]
    failed = [f"inventory of {host}: {n} cannot be templated: {v}" for n, v in hostvars.items()
              if isinstance(v, TemplateFailed)]
    if failed:
        return failed
    out = []
    cat = hostvars[CATALOG]
    nproc = None
    try:
        catalog.check_catalog(cat)
        platform = hostvars["wanbench_platform"]
        if platform in PLATFORMS:
            nproc = catalog.effective_common(cat, platform, None)["nproc"]
    except catalog.CatalogError as exc:
        out += [f"catalog of {host}: {e}" for e in exc.errors]
    out += [f"inventory of {host}: {p}" for p in _settings(hostvars, nproc) if p]
    return out


class TemplateFailed(str):
    """A variable whose template failed; its text is the first line of the error."""


def gather(get):
    """{name: value} of NAMES, each read with ``get(name)`` (which templates it).

    A name ``get`` raises KeyError for is left out; a template error (Ansible's, or Jinja's
    undefined value met inside a structure) becomes TemplateFailed.
    """
    from ansible.errors import AnsibleError
    from jinja2.exceptions import UndefinedError

    values = {}
    for name in NAMES:
        try:
            values[name] = get(name)
        except KeyError:
            continue
        except (AnsibleError, UndefinedError) as exc:
            values[name] = TemplateFailed((str(exc).strip().splitlines() or [type(exc).__name__])[0])
    return values


def load(inventory, playbook_dir="playbooks", group="wanbench"):
    """{host: gathered variables} for the hosts of ``group`` in ``inventory``.

    Reads the inventory and templates the variables with Ansible's own classes, as
    ``ansible-playbook`` does for a play in ``playbook_dir`` (whose group_vars hold the catalog).
    """
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar
    from ansible.vars.manager import VariableManager

    loader = DataLoader()
    loader.set_basedir(playbook_dir)
    manager = InventoryManager(loader=loader, sources=[inventory])
    variables = VariableManager(loader=loader, inventory=manager)
    hosts = {}
    for name in manager.get_groups_dict().get(group, []):
        host = manager.get_host(name)
        raw = variables.get_vars(host=host)
        templar = Templar(loader=loader, variables=raw)
        hosts[host.name] = gather(lambda name, raw=raw, templar=templar: templar.template(raw[name]))
    return hosts


# ---------------------------------------------------------------- CLI

def _handler(args):
    if not os.path.isdir(args.playbook_dir):
        raise ValueError(f"--playbook-dir {args.playbook_dir}: no such folder (run from the repository root)")
    inventory = args.inventory or _default_inventory()
    if not os.path.exists(inventory):
        raise ValueError(f"-i {inventory}: no such inventory")
    hosts = load(inventory, args.playbook_dir)
    if not hosts:
        raise ValueError(f"-i {inventory}: no host in group wanbench")
    found = [p for host, values in hosts.items() for p in problems(host, values)]
    if found:
        raise ValueError("\n".join(found))
    return [], f"{inventory}: {', '.join(hosts)}: inventory and catalog ok", []


def _default_inventory():
    """The inventory ansible-playbook would use here (ansible.cfg's, else Ansible's default)."""
    from ansible import constants

    return constants.DEFAULT_HOST_LIST[0]


def add_cli(subparsers):
    """Add ``validate [-i INVENTORY] [--playbook-dir DIR]`` to an argparse subparsers object."""
    p = subparsers.add_parser("validate", help="check an inventory and the catalog as the validate play does")
    p.add_argument("-i", "--inventory", metavar="INVENTORY",
                   help="inventory file or folder (default: the one ansible.cfg names, inventory/local)")
    p.add_argument("--playbook-dir", default="playbooks", metavar="DIR",
                   help="folder of the playbooks, whose group_vars hold the site settings and the catalog"
                        " (default: playbooks)")
    p.set_defaults(func=_handler)
    return p
