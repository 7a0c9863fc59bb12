# -*- coding: utf-8 -*-
"""Ansible filters over the wanbench package: parse runs, diff them, judge them, render tables.

Thin skins: all logic lives in the ``wanbench`` package, which must be
importable by the Python that runs Ansible (``pip install -e .`` in the
repository).  Each filter is documented beside this file in
``<filter name>.yml`` (DOCUMENTATION / EXAMPLES / RETURN), the way
community.general documents a file holding several filters.

Ansible loads every filter plugin file in each worker that templates, so this
file imports only light modules at load time; ``wanbench.report`` (pandas) is
imported by ``wanbench_table`` when it is called.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

try:
    from wanbench import compare, parse
    WANBENCH_IMPORT_ERROR = None
except ImportError as e:
    WANBENCH_IMPORT_ERROR = e


def _need_wanbench(name):
    if WANBENCH_IMPORT_ERROR is not None:
        raise AnsibleFilterError(f"{name}: the wanbench package cannot be imported by the Python"
                                 f" that runs Ansible ({WANBENCH_IMPORT_ERROR}); run"
                                 f" 'pip install -e .' in the wanbench repository")


def _is_run(value):
    return isinstance(value, Mapping) and {"path", "status", "metrics", "warnings"} <= value.keys()


def _runs(name, what, value, single=False):
    """A run (from wanbench_parse), or unless single a non-empty list of runs."""
    if _is_run(value) or (not single and isinstance(value, list) and value
                          and all(_is_run(r) for r in value)):
        return value
    expected = "a run from wanbench_parse" + ("" if single else " or a non-empty list of them")
    raise AnsibleFilterError(f"{name}: {what} must be {expected}, got {type(value).__name__}")


def _thresholds(name, noise_pct, reserved_tolerance_pct):
    """compare()'s keyword arguments for the thresholds given (None: the package default).

    Numeric strings, as extra vars give them, are accepted.
    """
    given = {"noise_pct": noise_pct, "reserved_tolerance_pct": reserved_tolerance_pct}
    kwargs = {}
    for what, value in given.items():
        if value is None:
            continue
        try:
            kwargs[what] = float(value)
        except (TypeError, ValueError):
            kwargs[what] = None
        if isinstance(value, bool) or kwargs[what] is None or not kwargs[what] >= 0:
            raise AnsibleFilterError(f"{name}: {what} must be a number >= 0, got {value!r}")
    return kwargs


def wanbench_parse(path):
    """Parse a run: a log, a profile file, a time file, or a run directory."""
    _need_wanbench("wanbench_parse")
    if not isinstance(path, (str, os.PathLike)):
        raise AnsibleFilterError(f"wanbench_parse: the input must be a path, got {type(path).__name__}")
    return parse.parse_run(path)


def wanbench_verdict(baseline, candidate, noise_pct=None, reserved_tolerance_pct=None):
    """Compare candidate with baseline: diff_pct, verdict and reasons."""
    name = "wanbench_verdict"
    _need_wanbench(name)
    return compare.compare(_runs(name, "the baseline", baseline), _runs(name, "the candidate", candidate),
                           **_thresholds(name, noise_pct, reserved_tolerance_pct))


def wanbench_diff(baseline, candidate):
    """Percent change of each decision metric, candidate vs baseline."""
    name = "wanbench_diff"
    _need_wanbench(name)
    return compare.compare(_runs(name, "the baseline", baseline),
                           _runs(name, "the candidate", candidate))["diff_pct"]


def wanbench_table(runs, baseline=None, fmt="md", noise_pct=None, reserved_tolerance_pct=None):
    """The report tables for runs, as markdown, CSV or JSON text."""
    name = "wanbench_table"
    _need_wanbench(name)
    if not isinstance(runs, list) or not all(_is_run(r) for r in runs):
        raise AnsibleFilterError(f"{name}: the input must be a list of runs from wanbench_parse,"
                                 f" got {type(runs).__name__}")
    if baseline is not None:
        _runs(name, "baseline", baseline, single=True)
    from wanbench import report  # pandas: only where tables are built (see the module docstring)
    if fmt not in report.FORMATS:
        raise AnsibleFilterError(f"{name}: fmt must be one of {', '.join(report.FORMATS)}, got {fmt!r}")
    return report.render_report(runs, baseline, fmt, **_thresholds(name, noise_pct, reserved_tolerance_pct))


class FilterModule:
    def filters(self):
        return {
            "wanbench_parse": wanbench_parse,
            "wanbench_diff": wanbench_diff,
            "wanbench_verdict": wanbench_verdict,
            "wanbench_table": wanbench_table,
        }
