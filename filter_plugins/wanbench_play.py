# Filters of the bench play over wanbench.play (thin skins: the logic lives in the package).
from __future__ import annotations

# Each filter is documented in filter_plugins/<filter name>.yml (ansible-doc -t filter NAME).

from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

try:
    from wanbench import play as _play
except ImportError as exc:  # not the repository's Python: Ansible skips this plugin and prints this line
    raise ImportError(f"{exc}: run ansible-playbook from the repository's .venv (scripts/setup.sh)") from exc

RENDER_OPTIONS = ("generate", "torchrun", "model_dir", "devices", "save_file", "host", "address", "connection",
                  "container", "platform", "play_id")


def wanbench_render_run(run, run_id, run_root, repo=None, **options):
    """A run's directory, command and manifest (see wanbench.play.render_run)."""
    if not isinstance(run, Mapping) or not {"variant", "args", "env", "flags", "settings"} <= run.keys():
        raise AnsibleFilterError("wanbench_render_run: expected a scheduled run (variant, args, env, flags, settings)")
    unknown = sorted(set(options) - set(RENDER_OPTIONS))
    if unknown:
        raise AnsibleFilterError(f"wanbench_render_run: unknown option(s) {', '.join(unknown)}")
    if repo is not None and not isinstance(repo, Mapping):
        raise AnsibleFilterError(f"wanbench_render_run: repo must be a mapping, got {type(repo).__name__}")
    if not str(run_id) or not str(run_root):
        raise AnsibleFilterError("wanbench_render_run: run_id and run_root must not be empty")
    return _play.render_run(dict(run), str(run_id), str(run_root), repo=dict(repo or {}),
                            **{k: str(v if v is not None else "") for k, v in options.items()})


def wanbench_run_outcome(run, run_id, wait=None, collected=None, failure=None):
    """One bench_collected entry for a scheduled run (see wanbench.play.run_outcome)."""
    if not isinstance(run, Mapping) or not {"variant", "role", "control_key"} <= run.keys():
        raise AnsibleFilterError("wanbench_run_outcome: expected a scheduled run (variant, role, control_key)")
    for name, value in (("wait", wait), ("collected", collected), ("failure", failure)):
        if value is not None and not isinstance(value, Mapping):
            raise AnsibleFilterError(f"wanbench_run_outcome: {name} must be a mapping, got {type(value).__name__}")
    return _play.run_outcome(dict(run), str(run_id), dict(wait or {}), dict(collected or {}), dict(failure or {}))


def wanbench_play_failures(runs, groups=None, fail_on="", unhealthy=True):
    """Why the play fails at its end, one line each (see wanbench.play.play_failures)."""
    if not isinstance(runs, list) or not isinstance(groups or [], list):
        raise AnsibleFilterError("wanbench_play_failures: expected the play's runs and report groups (lists)")
    try:
        return _play.play_failures(runs, groups or [], fail_on, bool(unhealthy))
    except ValueError as exc:
        raise AnsibleFilterError(f"wanbench_play_failures: {exc}") from exc


def wanbench_git_state(text, log_lines=8):
    """{sha, subject, dirty, log} from repo_sync's record command (see wanbench.play.git_state)."""
    if not isinstance(text, str):
        raise AnsibleFilterError(f"wanbench_git_state: expected the command's output text, got {type(text).__name__}")
    return _play.git_state(text, log_lines=int(log_lines))


class FilterModule:
    """wanbench play filters."""

    def filters(self):
        return {"wanbench_run_outcome": wanbench_run_outcome, "wanbench_git_state": wanbench_git_state,
                "wanbench_render_run": wanbench_render_run, "wanbench_play_failures": wanbench_play_failures}
