# Filters over wanbench.catalog, wanbench.command, wanbench.schedule and wanbench.store (thin skins: all logic lives in the package).
from __future__ import annotations

# Each filter is documented in filter_plugins/<filter name>.yml (ansible-doc -t filter NAME).

from ansible.errors import AnsibleFilterError
from ansible.module_utils.parsing.convert_bool import boolean

try:
    from wanbench import catalog as _catalog
    from wanbench import command as _command
    from wanbench import inputs as _inputs
    from wanbench import schedule as _schedule
    from wanbench import store as _store
except ImportError as exc:  # not the repository's Python: Ansible skips this plugin and prints this line
    raise ImportError(f"{exc}: run ansible-playbook from the repository's .venv (scripts/setup.sh)") from exc


def _fail(name, exc):
    errors = getattr(exc, "errors", [str(exc)])
    lines = "\n".join(f"  - {e}" for e in errors)
    return AnsibleFilterError(f"{name}: {len(errors)} problem(s):\n{lines}")


def wanbench_plan(catalog, variant, platform="npu", mode="", prompt="", family="fsdp", require_variant=True):
    """Validate the catalog and resolve the selected variants (+ each family's control).

    Without a variant, ``require_variant`` False checks every variant of ``family`` (variant=all).
    """
    if not isinstance(catalog, dict):
        raise AnsibleFilterError(f"wanbench_plan: expected the catalog mapping, got {type(catalog).__name__}")
    try:
        variant = variant if variant or boolean(require_variant) else "all"
    except TypeError as exc:
        raise AnsibleFilterError(f"wanbench_plan: require_variant: {exc}") from None
    try:
        return _catalog.plan(catalog, variant, platform=platform, mode=mode or None,
                             overrides={"prompt": prompt} if prompt else None, family=family or None)
    except _catalog.CatalogError as exc:
        raise _fail("wanbench_plan", exc) from None


def wanbench_selection_text(selection, baseline="rerun"):
    """The resolved selection as one line: variants, platform, modes, control policy."""
    if not isinstance(selection, dict) or "variants" not in selection:
        raise AnsibleFilterError("wanbench_selection_text: expected the result of wanbench_plan")
    return _catalog.selection_text(selection, str(baseline))


def wanbench_schedule(selection, baseline="rerun", repeats="", max_runs="", defaults=None, seed="", warmup=1, play="",
                      spending="obrien-fleming", balanced=True, store=None):
    """The play's runs: warm-ups, then interleaved blocks of every arm (see wanbench.schedule).

    ``repeats``/``max_runs`` as given with -e ("" = ``defaults``' ``repeats``/``max_runs``), their meaning
    decided by wanbench.inputs.repeats_plan; ``store`` ({results_dir, host, sha, dirty}) finds the stored
    controls of ``baseline=stored``.
    """
    if not isinstance(selection, dict) or "controls" not in selection:
        raise AnsibleFilterError("wanbench_schedule: expected the result of wanbench_plan")
    defaults = defaults or {}
    try:
        blocks, adaptive = _inputs.repeats_plan(repeats, max_runs, defaults.get("repeats", 3),
                                                defaults.get("max_runs", 10))
        stored = _stored_controls(selection, **store) if baseline == "stored" and store else {}
        return _schedule.schedule(selection, baseline=baseline, stored=stored, repeats=blocks,
                                  seed=None if seed in (None, "") else _int("order_seed", seed),
                                  warmup=_int("warmup", warmup), adaptive=adaptive, play=str(play or "") or None,
                                  spending=str(spending or "obrien-fleming"), balanced=_bool("balanced", balanced))
    except ValueError as exc:  # ScheduleError, and repeats_plan's one line
        raise _fail("wanbench_schedule", exc) from None


def wanbench_decided(results):
    """Whether a look settles its control key (the JSON of ``wanbench compare``): see wanbench.schedule.decided."""
    if not isinstance(results, list):
        raise AnsibleFilterError("wanbench_decided: expected the list that wanbench compare --json prints")
    return _schedule.decided(results)


def _int(name, value):
    try:
        return int(str(value).strip())
    except ValueError:
        raise AnsibleFilterError(f"wanbench_schedule: {name}={value!r}: expected a whole number") from None


def _bool(name, value):
    text = str(value).strip().lower()
    if text not in ("true", "false", "yes", "no", "1", "0"):
        raise AnsibleFilterError(f"wanbench_schedule: {name}={value!r}: expected true or false")
    return text in ("true", "yes", "1")


def wanbench_plan_text(sched):
    """The schedule as one line: play, seed, runs in order, controls."""
    return _schedule.plan_text(sched)


def _stored_controls(selection, results_dir, host, sha, dirty=True):
    """{control key: stored run dir or None} for each family control of the selection."""
    if not isinstance(selection, dict) or "controls" not in selection:
        raise AnsibleFilterError("wanbench_schedule: expected the result of wanbench_plan")
    if dirty:
        return {key: None for key in selection["controls"]}
    return {key: _store.find_baseline(str(results_dir), str(host), str(sha or ""), c["fingerprint"],
                                      variant=c["variant"])
            for key, c in selection["controls"].items()}


def wanbench_run_id(variant):
    """A fresh run id ``<UTCstamp>-<variant>-<random>`` (set_fact it once; it changes each call)."""
    return _command.run_id(str(variant))


def wanbench_report_groups(collected, controls, out_root=None):
    """Collected runs grouped by control key: [{key, family, mode, controls, control_source, candidates, out}]."""
    if not isinstance(collected, list) or not isinstance(controls, dict):
        raise AnsibleFilterError("wanbench_report_groups: expected a list of collected runs and the schedule's controls")
    return _schedule.report_groups(collected, controls, out_root=str(out_root) if out_root else None)


class FilterModule:
    """wanbench catalog filters."""

    def filters(self):
        return {
            "wanbench_plan": wanbench_plan,
            "wanbench_selection_text": wanbench_selection_text,
            "wanbench_schedule": wanbench_schedule,
            "wanbench_plan_text": wanbench_plan_text,
            "wanbench_decided": wanbench_decided,
            "wanbench_run_id": wanbench_run_id,
            "wanbench_report_groups": wanbench_report_groups,
        }
