# Filters over wanbench.bisect (thin skins: the search, its record and its text live in the package).
from __future__ import annotations

# Each filter is documented in filter_plugins/<filter name>.yml (ansible-doc -t filter NAME).

from ansible.errors import AnsibleFilterError

try:
    from wanbench import bisect as _bisect
except ImportError as exc:  # not the repository's Python: Ansible skips this plugin and prints this line
    raise ImportError(f"{exc}: run ansible-playbook from the repository's .venv (scripts/setup.sh)") from exc


def _call(name, fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except (_bisect.BisectError, ValueError) as exc:
        raise AnsibleFilterError(f"{name}: {exc}") from None


def wanbench_bisect_target(results_dir, alarm="", good="", bad="", variant=""):
    return _call("wanbench_bisect_target", _bisect.target, str(results_dir), alarm=str(alarm or ""),
                 good=str(good or ""), bad=str(bad or ""), variant=str(variant or ""))


def wanbench_bisect_commits(log_text):
    return _bisect.commits_from_log(str(log_text or ""))


def wanbench_bisect_start(text):
    return _bisect.start_state(str(text or ""))


def wanbench_bisect_step_line(entry):
    return _bisect.step_line(entry)


def wanbench_bisect_path(results_dir, host, variant, good, bad):
    return _bisect.record_path(str(results_dir), str(host), str(variant), str(good), str(bad))


def wanbench_bisect_record(path):
    return _call("wanbench_bisect_record", _bisect.load_record, str(path))


def wanbench_bisect_arms(resolved, sha):
    if not isinstance(resolved, dict) or "fingerprint" not in resolved:
        raise AnsibleFilterError("wanbench_bisect_arms: expected one resolved variant from wanbench_plan")
    return _bisect.arms(resolved, str(sha))


def wanbench_bisect_add(record, commit, results, runs, threshold_pct, play=""):
    """``results``: the list ``wanbench compare --json`` prints (one candidate group)."""
    if not isinstance(record, dict) or not isinstance(commit, dict):
        raise AnsibleFilterError("wanbench_bisect_add: expected the record and the commit {sha, subject}")
    result = results[0] if isinstance(results, list) and results else None
    return _bisect.add_step(record, commit["sha"], commit.get("subject", ""), result, list(runs or []),
                            float(threshold_pct), play=str(play or ""))


def wanbench_bisect_search(commits, record, threshold_pct=None, play=None):
    measured = record.get("measured", {}) if isinstance(record, dict) else {}
    return _call("wanbench_bisect_search", _bisect.search, list(commits or []), measured,
                 None if threshold_pct in (None, "") else float(threshold_pct), play=str(play or ""))


def wanbench_bisect_finish(record, state, target):
    """The record with the search's outcome (and the culprit, for `wanbench history`) and its target."""
    return {**record, "target": target, "outcome": state["outcome"], "culprit": state["culprit"],
            "range": state["range"]}


def wanbench_bisect_text(state, commits, record, good, good_subject=""):
    return _bisect.text(state, list(commits or []), record.get("measured", {}), str(good), str(good_subject or ""))


class FilterModule:
    """wanbench bisect filters."""

    def filters(self):
        return {"wanbench_bisect_target": wanbench_bisect_target, "wanbench_bisect_commits": wanbench_bisect_commits,
                "wanbench_bisect_path": wanbench_bisect_path, "wanbench_bisect_record": wanbench_bisect_record,
                "wanbench_bisect_arms": wanbench_bisect_arms, "wanbench_bisect_add": wanbench_bisect_add,
                "wanbench_bisect_search": wanbench_bisect_search, "wanbench_bisect_finish": wanbench_bisect_finish,
                "wanbench_bisect_text": wanbench_bisect_text,
                "wanbench_bisect_start": wanbench_bisect_start, "wanbench_bisect_step_line": wanbench_bisect_step_line}
