"""Run inputs given with ``-e``: refuse what Ansible would mangle or run as a template.

Ansible splits a ``-e key=value`` argument at whitespace (``prompt=A boy plays`` keeps
``prompt=A`` and files ``boy plays`` under ``_raw_params``) and templates every extra var
it trusts when a task first reads it: a ``{{ lookup('pipe', ...) }}`` in ``-e variant=...``
runs a command on the controller.  The checks here look at the raw, untemplated values
(filter_plugins/wanbench_inputs.py gathers them before any task reads a run input) and
return one line per problem, naming the variable and the cause.

Plain functions over plain data; no Ansible import.
"""

from __future__ import annotations

import re

# The run inputs of group_vars/all/site.yml (set with -e).
RUN_INPUTS = ("variant", "family", "baseline", "mode", "prompt", "repeats", "max_runs", "fail_on")
JINJA_MARKERS = ("{{", "{%", "{#")

NAME_RE = re.compile(r"[A-Za-z0-9_-]+")      # a variant or family name
WORD_RE = re.compile(r"[a-z][a-z_]*")        # a policy or mode word
VAR_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
INT_RE = re.compile(r"[0-9]+")

# Linux passes no single argument longer than MAX_ARG_STRLEN (32 pages: 131072 bytes with its NUL);
# the prompt is one argument of torchrun and of every rank (a longer one: exec fails, exit 126).
PROMPT_MAX_BYTES = 131071
# Room left under the host's ARG_MAX beyond the measured login environment (what the launch adds).
ARG_MAX_SLACK = 4096

SAFE_WAYS = ("quote the value (-e '{name}=\"...\"'), or pass it in a vars file (-e @vars.yml) "
             "or as JSON (-e '{{\"{name}\": \"...\"}}')")
SAFE_PROMPT = ("pass the prompt as data: 'prompt: !unsafe ...' in a vars file (-e @prompt.yml) "
               "or -e '{\"prompt\": !unsafe \"...\"}' (docs/ansible.md, \"Passing a prompt safely\")")


def jinja_marker(text):
    """The first Jinja marker (``{{``, ``{%``, ``{#``) in ``text``, or None."""
    if not isinstance(text, str):
        return None
    found = [(text.find(m), m) for m in JINJA_MARKERS if m in text]
    return min(found)[1] if found else None


def _kind(value):
    return "nothing" if value is None else type(value).__name__


def count(name, value):
    """``value`` as a whole number >= 1: an int, or its digits as text (as ``-e`` gives it).

    Raises ValueError "<name>: expected a positive whole number, got <value>" otherwise.
    """
    if isinstance(value, str) and INT_RE.fullmatch(value):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}: expected a positive whole number, got {value!r}")
    return value


def repeats_plan(repeats="", max_runs="", default_repeats=3, default_max_runs=10):
    """What ``-e repeats`` and ``-e max_runs`` mean, decided here only: (blocks to plan, adaptive).

    ``repeats`` "" (or None) takes the inventory's ``default_repeats`` (``wanbench_repeats``);
    ``repeats=auto`` plans ``max_runs`` blocks (else ``default_max_runs``, ``wanbench_max_runs``)
    as a budget, and the play stops a control key once its verdicts are decided (adaptive).
    Raises ValueError naming the input.
    """
    repeats = default_repeats if repeats in (None, "") else repeats
    if isinstance(repeats, str) and repeats.strip() == "auto":
        return count("max_runs", default_max_runs if max_runs in (None, "") else max_runs), True
    return count("repeats", repeats), False


def _positive_int(value):
    try:
        return bool(count("", value))
    except ValueError:
        return False


def check_argument(text, parsed):
    """One ``-e key=value`` argument as Ansible's ``parse_kv`` split it.

    ``text`` is the argument as typed, ``parsed`` the mapping Ansible made of it.
    Returns a one-line problem, or None when Ansible kept it as typed.
    """
    keys = [k for k in parsed if k != "_raw_params"]
    first = keys[0] if keys else "prompt"
    how = SAFE_WAYS.format(name=first)
    if "_raw_params" in parsed:
        kept = ", ".join(f"{k}={parsed[k]!r}" for k in keys) or "no variable"
        return (f"-e {text!r}: Ansible splits key=value at whitespace: it keeps {kept} and drops "
                f"{parsed['_raw_params']!r} (_raw_params); {how}")
    bad = [k for k in keys if not VAR_RE.fullmatch(k)]
    if bad:
        return (f"-e {text!r}: Ansible splits key=value at whitespace and made a variable named {bad[0]!r} "
                f"of the rest of {first}'s value; {how}")
    stray = [k for k in keys if k not in RUN_INPUTS]
    if "prompt" in keys and stray:
        return (f"-e {text!r}: Ansible split the prompt at whitespace and made a variable named {stray[0]!r} "
                f"of a word holding '='; {SAFE_WAYS.format(name='prompt')}")
    return None


def _check_variant(value):
    if isinstance(value, str):
        if value == "":
            return None  # the catalog says "no variant given" and lists the known ones
        items = value.split(",")
    elif isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        items = list(value)
    else:
        return f"variant: expected NAME or NAME,NAME, got {_kind(value)}"
    for n, item in enumerate(items, 1):
        if item == "":
            return f"variant {value!r}: item {n} of the comma list is empty (write NAME,NAME)"
        if not NAME_RE.fullmatch(item):
            return (f"variant {value!r}: {item!r} is not a variant name (letters, digits, '_' and '-' only; "
                    f"NAME,NAME without spaces)")
    return None


def check_value(name, value, inert=False):
    """One run input's raw value; ``inert`` is True when Ansible will not template it (``!unsafe``).

    Returns a one-line problem, or None.
    """
    if name == "prompt":
        if not isinstance(value, str):
            return f"prompt: expected text, got {_kind(value)} (quote it)"
        marker = jinja_marker(value)
        if marker and not inert:
            return f"prompt holds the Jinja marker {marker!r}, which Ansible would run as a template; {SAFE_PROMPT}"
        size = len(value.encode("utf-8", errors="surrogatepass"))
        if size > PROMPT_MAX_BYTES:
            return (f"prompt: {size} bytes; at most {PROMPT_MAX_BYTES} (Linux passes no longer argument to a "
                    f"program: MAX_ARG_STRLEN); shorten it")
        return None
    marker = jinja_marker(value)
    if marker:
        return f"{name}: Jinja marker {marker!r} in {value!r}: run inputs are names, never templates"
    if name == "variant":
        return _check_variant(value)
    if name == "family":
        if not (isinstance(value, str) and NAME_RE.fullmatch(value)):
            return f"family: {value!r} is not a family name (letters, digits, '_' and '-' only)"
    elif name == "baseline":
        if not (isinstance(value, str) and WORD_RE.fullmatch(value)):
            return f"baseline: {value!r} is not a control-run policy (rerun, skip or stored)"
    elif name == "mode":
        if not (isinstance(value, str) and (value == "" or WORD_RE.fullmatch(value))):
            return f"mode: {value!r} is not a mode name (profiled or runtime_only, or '' for each variant's own)"
    elif name == "repeats":
        if not (value == "auto" or _positive_int(value)):
            return f"repeats: expected a positive whole number or 'auto', got {value!r}"
    elif name == "max_runs":
        if not _positive_int(value):
            return f"max_runs: expected a positive whole number, got {value!r}"
    elif name == "fail_on":
        from .play import parse_fail_on

        try:
            parse_fail_on(value)
        except ValueError as exc:
            return str(exc)
    return None


def check_extra_vars(values, arguments=(), inert=(), names=RUN_INPUTS):
    """Problems of the extra vars, one line each (an empty list when all is well).

    ``values``: the merged extra vars, raw (untemplated); ``arguments``: each ``-e key=value``
    argument as ``(text, mapping Ansible made of it)``; ``inert``: names of values Ansible will
    not template; ``names``: the run inputs to check.
    """
    problems, reported = [], set()
    for text, parsed in arguments:
        problem = check_argument(text, parsed)
        if problem:
            problems.append(problem)
            reported.update(parsed)
    if "_raw_params" in values and "_raw_params" not in reported:
        problems.append(f"_raw_params is set to {values['_raw_params']!r}: Ansible files the words of a -e "
                        f"key=value it could not assign there; it is no wanbench input: "
                        f"{SAFE_WAYS.format(name='prompt')}")
    for name in names:
        if name in values and name not in reported:
            problem = check_value(name, values[name], inert=name in inert)
            if problem:
                problems.append(problem)
    return problems


def exec_size(argv, env):
    """Bytes exec takes for ``argv`` and ``env``: each string with its NUL and a pointer, as ARG_MAX counts."""
    strings = [*map(str, argv), *(f"{k}={v}" for k, v in env.items())]
    return sum(len(x.encode("utf-8", errors="surrogatepass")) + 1 + 8 for x in strings) + 16


def command_problems(runs, arg_max, run_root, env_bytes=0, **options):
    """One line per variant whose command would not fit the host's ``arg_max`` (``getconf ARG_MAX``
    there) with the environment the run inherits (``env_bytes``, measured there) and ARG_MAX_SLACK;
    [] when all fit or ``arg_max`` is unknown (0).

    ``runs`` are scheduled runs; ``options`` those of wanbench.play.render_run (paths, devices).
    """
    from .play import render_run

    arg_max, env_bytes, problems, seen = int(arg_max or 0), int(env_bytes or 0), [], set()
    for run in runs if arg_max > 0 else ():
        if run["variant"] in seen:
            continue
        seen.add(run["variant"])
        cmd = render_run(run, f"00000000T000000Z-{run['variant']}-000000", run_root, **options)["command"]
        size = exec_size(cmd["argv"], cmd["env"])
        if size + env_bytes + ARG_MAX_SLACK > arg_max:
            problems.append(f"{run['variant']}: its command takes {size} bytes of arguments and environment, the "
                            f"host's login environment {env_bytes} more; the host's ARG_MAX is {arg_max}: "
                            f"shorten the prompt or raise the host's stack limit (ulimit -s)")
    return problems
