# Filters over wanbench.devices and wanbench.outputs (thin skins: all logic lives in the package).
from __future__ import annotations

# Each filter is documented in filter_plugins/<filter name>.yml (ansible-doc -t filter NAME).

from ansible.errors import AnsibleFilterError

try:
    from wanbench import devices as _devices
    from wanbench import play as _play
except ImportError as exc:  # not the repository's Python: Ansible skips this plugin and prints this line
    raise ImportError(f"{exc}: run ansible-playbook from the repository's .venv (scripts/setup.sh)") from exc


def wanbench_capture_plan(platform, python="python3", placed=None):
    """The workload-side capture commands of a platform (less those preflight placed on the host)."""
    if platform not in _devices.PLATFORMS:
        raise AnsibleFilterError(f"wanbench_capture_plan: unknown platform {platform!r} "
                                 f"(known: {', '.join(_devices.PLATFORMS)})")
    return _devices.workload_plan(str(platform), python=str(python or "python3"), placed=placed or {})


def wanbench_host_capture_command(run_dir, phase, platform, placed=None, exec_prefix=(), host_path=""):
    """The command line that captures, on the host, what preflight placed there ("" when nothing)."""
    if platform not in _devices.PLATFORMS:
        raise AnsibleFilterError(f"wanbench_host_capture_command: unknown platform {platform!r}")
    if not isinstance(exec_prefix, (list, tuple)):
        raise AnsibleFilterError("wanbench_host_capture_command: exec_prefix must be an argv prefix (a list)")
    return _devices.host_capture_command(run_dir, str(phase), str(platform), placed or {}, exec_prefix, host_path)


def wanbench_host_capture_plan(platform, container, python="python3", exec_prefix=()):
    """The capture commands of once per play (the container's image; the Python versions through exec)."""
    if platform not in _devices.PLATFORMS:
        raise AnsibleFilterError(f"wanbench_host_capture_plan: unknown platform {platform!r}")
    if not isinstance(exec_prefix, (list, tuple)):
        raise AnsibleFilterError("wanbench_host_capture_plan: exec_prefix must be an argv prefix (a list)")
    return _devices.host_plan(str(platform), str(container or ""), str(python or "python3"), exec_prefix)


def wanbench_host_capture_records(collected, results):
    """[{dest, content}]: the host-side capture's raw files for each collected run (health/host/)."""
    if not isinstance(collected, list):
        raise AnsibleFilterError("wanbench_host_capture_records: expected the list of collected runs (bench_collected)")
    if isinstance(results, list):  # a looped command's registered results
        results = {r.get("item", {}).get("name"): r for r in results if isinstance(r, dict)}
    return _devices.host_records(collected, results)


def wanbench_output_pairs(collected):
    """The play's (control, candidate) output pairs (see wanbench.play.output_pairs)."""
    if not isinstance(collected, list):
        raise AnsibleFilterError("wanbench_output_pairs: expected the list of collected runs (bench_collected)")
    return _play.output_pairs(collected)


def wanbench_output_records(pairs, printed):
    """[{dest, content}] for each pair, from the output check's printed JSON."""
    if not isinstance(pairs, list):
        raise AnsibleFilterError("wanbench_output_records: expected the list of wanbench_output_pairs")
    return _play.output_records(pairs, printed)


class FilterModule:
    """wanbench device-health and output-check filters."""

    def filters(self):
        return {
            "wanbench_capture_plan": wanbench_capture_plan,
            "wanbench_host_capture_plan": wanbench_host_capture_plan,
            "wanbench_host_capture_command": wanbench_host_capture_command,
            "wanbench_host_capture_records": wanbench_host_capture_records,
            "wanbench_output_pairs": wanbench_output_pairs,
            "wanbench_output_records": wanbench_output_records,
        }
