"""Device health and environment: what the machine looked like around a run.

Pure functions, no I/O of their own (the Ansible roles run the commands and
hand the text over), so they are tested on recorded output:

* ``capture_plan(platform)`` / ``capture_commands(platform)``: the exact
  commands to run before and after a run (docs/health.md lists them);
* ``snapshot(platform, outputs)``: their output parsed into one shape for
  every platform (``npu``, ``cuda``, ``reference``)::

      {"platform": "cuda", "status": "ok" | "incomplete" | "unreadable",
       "errors": ["nvidia-smi: ..."],
       "devices": [{"index", "name", "util_pct", "mem_used_mb", "mem_total_mb",
                    "temp_c", "power_w", "clocks": {"sm_mhz", "mem_mhz"} | None,
                    "throttle": [reason, ...], "health": "OK" | ... | None}],
       "processes": [{"device", "pid", "name", "mem_mb"}] | None,   # None: not captured
       "host": {"loadavg": [1, 5, 15 min], "ncpu", "governor"},
       "versions": {"driver", "cuda" | "cann", "torch", "torch_npu", "torch_cuda",
                    "kernel", "image", "image_name", "image_digest", "python", ...}}

* ``judge(before, after, control_env)``: the reasons a run is ``invalid``
  (empty list = healthy); ``env_diff(a, b)``: environment differences as
  human lines.

Units: MB (npu-smi's MB, nvidia-smi's MiB, both as printed), %, degrees C,
W, MHz.  A value a tool prints as ``N/A``, ``-`` or ``[Not Supported]`` is
None; ``ERR!`` / ``[Unknown Error]`` / ``[GPU is lost]`` are None too and set
the device's health to an error.  Bad or cut-off input gives a status and an
error line, never an exception.

Formats:
* ``nvidia-smi --query-gpu=... --format=csv``: recorded on 4x H100
  (driver 580.159.04, tests/fixtures/devices/).  Headers are matched by
  name, so the renamed columns of newer drivers (``clocks.current.sm``,
  ``clocks_event_reasons.active``) and the older ones both parse.
* ``nvidia-smi`` (plain table): recorded on the same host; the process rows
  follow NVIDIA's documented layout ``GPU GI CI PID Type Process-name
  GPU-Memory-Usage``.
* ``nvidia-smi --query-compute-apps=pid,process_name,used_memory
  --format=csv``: NVIDIA's documented CSV (header ``pid, process_name,
  used_gpu_memory [MiB]``).
* ``npu-smi info``: tested on real outputs from public sources (tests/fixtures/real/npu-smi/,
  SOURCES.md): 910ProB, 910B1-B4, A3 (two chips per NPU), 310P3 / Duo, 310B4, Ascend 950 (the NPU
  id in its own column), with and without a process table, and a driver error instead of a table
  (``parse_npu_smi`` describes the layouts).
"""

from __future__ import annotations

import json
import os
import re
import shlex

from . import platforms as _platforms

PLATFORMS = _platforms.NAMES
STATUSES = ("ok", "incomplete", "unreadable")  # best to worst

#: NVML's clocks event (throttle) reason bits (nvml.h, nvmlClocksEventReason*).
CLOCK_EVENT_BITS = {
    0x1: "gpu_idle",
    0x2: "applications_clocks_setting",
    0x4: "sw_power_cap",
    0x8: "hw_slowdown",
    0x10: "sync_boost",
    0x20: "sw_thermal_slowdown",
    0x40: "hw_thermal_slowdown",
    0x80: "hw_power_brake_slowdown",
    0x100: "display_clock_setting",
}
#: Reasons that mean the clocks were held down (not idle, not a setting).
THROTTLING = ("sw_power_cap", "hw_slowdown", "sw_thermal_slowdown", "hw_thermal_slowdown",
              "hw_power_brake_slowdown")
#: Environment keys compared between a run and its control (a key not recorded on one side is skipped).
ENV_KEYS = ("driver", "cuda", "cann", "torch", "torch_npu", "torch_cuda", "image", "image_digest", "kernel",
            "governor")
#: Memory a device may hold with nothing running (MB), per platform: an idle Ascend 910 reports
#: about 3 GB of HBM in use (firmware), an idle H100 0 MiB.
#: Platforms with devices (a snapshot without a device read is unknown).
DEVICE_PLATFORMS = tuple(name for name, p in _platforms.PLATFORMS.items() if p.device_env)
IDLE_MEM_MB = {name: p.idle_mem_mb for name, p in _platforms.PLATFORMS.items()}

_ALIASES = {"clocks.current.sm": "clocks.sm", "clocks.current.memory": "clocks.mem",
            "clocks.memory": "clocks.mem", "clocks_event_reasons.active": "clocks_throttle_reasons.active",
            "clocks_throttle_reasons.active": "clocks_throttle_reasons.active"}
_MISSING = {"", "n/a", "[n/a]", "-", "na", "[not supported]", "not supported"}
_BROKEN = ("err!", "[unknown error]", "[gpu is lost]", "[gpu requires reset]", "unknown error")

# The versions without importing the packages (importing torch took 2-8 s a play on the 2-core test
# machine): each package's own version.py (torch's also holds its CUDA), else its installed metadata.
_VERSIONS_PY = """import importlib.util, os, platform, runpy
print("python=" + platform.python_version())
def info(m):
    try:
        where = importlib.util.find_spec(m).submodule_search_locations or []
    except Exception:
        return {}
    for d in where:
        try:
            got = runpy.run_path(os.path.join(d, "version.py"))
        except Exception:
            continue
        if got.get("__version__"):
            return got
    try:
        from importlib import metadata
        return {"__version__": metadata.version(m)}
    except Exception:
        return {}
for m in ("torch", "torch_npu", "numpy"):
    print(m + "=" + str(info(m).get("__version__") or ""))
print("torch_cuda=" + str(info("torch").get("cuda") or ""))
"""


class _Bad(ValueError):
    """A line or field that does not parse; becomes an error line, never an exception for the caller."""


# ---------------------------------------------------------------------------------------------- commands

def capture_plan(platform, container=None, python="python3", placed=None):
    """The commands of one snapshot, in order: [{"name", "argv", "where", "places", "optional"}].

    The platform's own commands come from its record (``wanbench.platforms``), then the ones every
    platform shares.  ``where``: ``workload`` = where the workload runs (inside its container when
    there is one), ``host`` = on the host itself; ``places``: where it may run, in order (the
    workload first); ``placed`` ({name: where}, what preflight found) moves a command to the host.
    ``optional``: a failure (e.g. no cpufreq on a VM) is recorded as None, not as an error.
    ``container`` adds the container's image id and digest.
    """
    record = _platforms.get(platform)
    placed = placed or {}
    plan = [{"name": c.name, "argv": list(c.argv), "places": list(c.places), "optional": c.optional,
             "device": c.device, "where": placed.get(c.name) if placed.get(c.name) in c.places else c.places[0]}
            for c in record.commands]
    plan += [
        {"name": "kernel", "argv": ["uname", "-r"], "where": "workload", "optional": True},
        {"name": "loadavg", "argv": ["cat", "/proc/loadavg"], "where": "workload", "optional": True},
        {"name": "nproc", "argv": ["nproc"], "where": "workload", "optional": True},
        {"name": "governor", "argv": ["cat", "/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"],
         "where": "workload", "optional": True},
        # importing torch takes seconds: read once per play (host_plan), not around every run
        {"name": "python", "argv": [python, "-c", _VERSIONS_PY], "where": "workload", "optional": True,
         "once": True},
    ]
    if container:
        plan.append({"name": "image", "where": "host", "optional": True, "argv": [
            "sh", "-c", 'docker inspect --format "{{.Image}} {{.Config.Image}}" "$1" && '
                        'docker image inspect --format "{{json .RepoDigests}}" '
                        '"$(docker inspect --format "{{.Image}}" "$1")"', "sh", container]})
    return plan


def capture_commands(platform, container=None, python="python3"):
    """The argv lists of ``capture_plan`` (same order)."""
    return [c["argv"] for c in capture_plan(platform, container, python)]


# ---------------------------------------------------------------------------------------------- run directory
#: Where a run keeps its raw capture: <run_dir>/health/<phase>/<name>.out, .err, .rc (the run script
#: writes ``before`` and ``after``; ``host`` holds the host-side commands, read once per play).
HEALTH_DIR = "health"
PHASES = ("before", "after", "during")  # during: the wait loop's mid-run sample (platform record's ``during``)
HOST_PHASE = "host"


def workload_plan(platform, python="python3", placed=None):
    """The commands the run script runs where the workload runs, before and after it (``capture_plan``'s
    ``workload`` ones that are not read once per play; ``placed``: preflight's {name: where})."""
    return [c for c in capture_plan(platform, python=python, placed=placed)
            if c["where"] == "workload" and not c.get("once")]


def host_run_plan(platform, placed=None):
    """The commands run on the host before and after each run: those preflight placed there (the
    container lacks them)."""
    return [c for c in capture_plan(platform, placed=placed) if c["where"] == "host" and not c.get("once")
            and c["name"] != "image"]


# On the host: $1 the run directory, $2 the phase, $3 directories put before PATH, then name and command
# line pairs, then "--" and the argv prefix that reaches the run directory (docker exec NAME). Each command
# runs as the run script's do (timeout, raw .out/.err/.rc) plus <name>.where = host, in a temporary folder
# (removed after); the files travel as arguments of one command where the run lives (no stdin needed),
# which writes them into <run_dir>/health/<phase>/.
HOST_CAPTURE = r"""
dir=$1 phase=$2 extra=$3; shift 3
tmp=$(mktemp -d) || exit 1
while [ $# -gt 1 ] && [ "$1" != -- ]; do
  PATH="$extra${extra:+:}$PATH" timeout -k 5 60 sh -c "$2" </dev/null >"$tmp/$1.out" 2>"$tmp/$1.err"
  echo "$?" >"$tmp/$1.rc"; echo host >"$tmp/$1.where"; shift 2
done
shift
set -- "$@" sh -c 'd=$1; shift; mkdir -p "$d" || exit 1
while [ $# -gt 1 ]; do printf "%s" "${2%x}" >"$d/$1" || exit 1; shift 2; done' wanbench-capture "$dir/health/$phase"
for f in "$tmp"/*; do set -- "$@" "${f##*/}" "$(head -c 262144 "$f"; echo x)"; done
rm -rf "$tmp"
"$@"
"""


# Where the run lives, mid-run: $1 the run directory, then name and command line pairs (the platform record's
# ``during``). Each output goes to <run_dir>/health/during/<name>.out|.err|.rc, after a ``run=PID`` line
# naming the run script, whose process tree the parser leaves out.
DURING = r"""
r=$1 d=$1/health/during; shift
mkdir -p "$d" || exit 0
while [ $# -gt 1 ]; do
  { echo "run=$(cat "$r/.pid" 2>/dev/null)"; timeout -k 5 60 sh -c "$2"; } </dev/null >"$d/$1.out" 2>"$d/$1.err"
  echo "$?" >"$d/$1.rc"; shift 2
done
exit 0
"""


def during_argv(platform, run_dir):
    """argv (to run where the run lives) of the mid-run sample, or [] when the platform takes none."""
    names = _platforms.get(platform).during
    plan = [c for c in capture_plan(platform) if c["name"] in names]
    if not plan:
        return []
    return ["sh", "-c", DURING, "wanbench-during", str(run_dir), *[x for c in plan for x in (c["name"], shlex.join(c["argv"]))]]


def host_capture_command(run_dir, phase, platform, placed, exec_prefix=(), host_path=""):
    """One shell command line (for a plain command over the connection) that runs the commands preflight
    placed on the host and writes their raw output into the run's health/<phase>/ where the run lives;
    "" when there are none."""
    plan = host_run_plan(platform, placed)
    if not plan:
        return ""
    pairs = [x for c in plan for x in (c["name"], shlex.join(c["argv"]))]
    return shlex.join(["sh", "-c", HOST_CAPTURE, "wanbench-host-capture", str(run_dir), phase, str(host_path or ""),
                       *pairs, "--", *map(str, exec_prefix or ())])


def host_plan(platform, container, python="python3", exec_prefix=()):
    """The commands run once per play, argv ready to run on the host: the container's image (on the host
    itself, with a container) and the Python versions (where the workload runs: ``exec_prefix``)."""
    return [{**c, "argv": [*map(str, exec_prefix or ()), *c["argv"]] if c["where"] == "workload" else c["argv"]}
            for c in capture_plan(platform, container or None, python) if c["where"] == "host" or c.get("once")]


def preflight_plan(platform, container=None):
    """What preflight runs once per play: the commands that read the devices and the ones that may run
    on the host, [{"name", "argv", "places"}] (without a container the workload runs on the host: one place)."""
    return [{"name": c["name"], "argv": c["argv"], "places": c["places"] if container else ["workload"]}
            for c in capture_plan(platform) if c.get("device") or len(c.get("places", ())) > 1]


def _visible(text):
    """The device indices of a visible-devices list ("0,1,2,3"); None when empty or not all numbers."""
    items = [x.strip() for x in str(text or "").split(",") if x.strip()]
    return {int(x) for x in items} if items and all(x.isdigit() for x in items) else None


def preflight_judgement(platform, capture, device_state="required", visible_devices="", **limits):
    """Preflight's reading of its capture ({name: {where, rc, stdout, stderr}}):
    {"problems": [...], "warnings": [...], "placed": {name: where}, "snapshot": snapshot of the device commands}.
    A device busy, held or unhealthy is a problem (the play stops); a device state that cannot be read
    is a warning: the runs are judged ``invalid`` for it, or not with ``device_state`` optional.
    ``visible_devices`` ("0,1,2,3", the inventory's): only those devices and the processes on them are
    judged, so another team's work on the host's other devices does not stop the play."""
    capture = capture if isinstance(capture, dict) else {}
    placed = {name: r.get("where") for name, r in capture.items() if isinstance(r, dict) and r.get("where")}
    if not any(c.get("device") for c in capture_plan(platform)):
        return {"problems": [], "warnings": [], "placed": placed, "snapshot": None}
    snap = snapshot(platform, capture)
    keep = _visible(visible_devices)
    if keep is not None and snap.get("devices"):
        snap["devices"] = [d for d in snap["devices"] if d.get("index") in keep]
        if snap.get("processes") is not None:
            snap["processes"] = [p for p in snap["processes"] if p.get("device") is None or p["device"] in keep]
    problems = judge(snap, **limits, device_state="optional")  # before the play: every reason is one
    tail = ("the runs are judged without it (device_state=optional)" if device_state == "optional" else
            "every run will be invalid (-e device_state=optional measures without it)")
    warnings = [f"{line}; {tail}" for line in unknown_state(snap)]
    return {"problems": problems, "warnings": warnings, "placed": placed, "snapshot": snap}


def host_records(collected, results):
    """The files that record the host-side capture in each collected run directory that has a
    ``health/`` folder: [{"dest", "content"}] (``<name>.out``, ``.err``, ``.rc`` under health/host/).
    ``results``: {name: Ansible registered result ({"rc", "stdout", "stderr"})}."""
    records = []
    for run in collected or []:
        path = run.get("path") if isinstance(run, dict) else None
        if not path or not os.path.isdir(os.path.join(path, HEALTH_DIR)):
            continue
        folder = os.path.join(path, HEALTH_DIR, HOST_PHASE)
        for name, res in (results or {}).items():
            res = res if isinstance(res, dict) else {}
            rc = res.get("rc")
            records += [{"dest": os.path.join(folder, name + ".out"), "content": str(res.get("stdout") or "")},
                        {"dest": os.path.join(folder, name + ".err"), "content": str(res.get("stderr") or res.get("msg") or "")},
                        {"dest": os.path.join(folder, name + ".rc"), "content": f"{rc if isinstance(rc, int) else 127}\n"}]
    return records


def _read(path, limit=1 << 20):
    try:
        with open(path, "rb") as f:
            return f.read(limit).decode("utf-8", "replace")
    except OSError:
        return None


def read_capture(folder):
    """One phase's raw files (``<name>.out``, ``.err``, ``.rc``) as {name: {"rc", "stdout", "stderr"}};
    a missing or unreadable ``.rc`` is None (the command was cut off before it ended)."""
    outputs = {}
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return outputs
    for entry in names:
        name, ext = os.path.splitext(entry)
        if ext != ".out":
            continue
        rc_text = (_read(os.path.join(folder, name + ".rc")) or "").strip()
        rc = int(rc_text) if re.fullmatch(r"-?\d+", rc_text) else None
        outputs[name] = {"rc": rc if rc is not None else -1, "stdout": _read(os.path.join(folder, entry)) or "",
                         "stderr": (_read(os.path.join(folder, name + ".err")) or "")
                         + ("" if rc is not None else "\nno exit status recorded (cut off?)")}
        where = (_read(os.path.join(folder, name + ".where")) or "").strip()
        if where:  # written by HOST_CAPTURE: the command ran on the host (the container lacks it)
            outputs[name]["where"] = where
    return outputs


def run_health(run_dir, platform):
    """The parsed capture of a run directory: {"before": snapshot | None, "after": snapshot | None}, or
    None when the run has no ``health/`` folder (captured before this existed, or imported)."""
    base = os.path.join(run_dir, HEALTH_DIR)
    if not os.path.isdir(base):
        return None
    host = read_capture(os.path.join(base, HOST_PHASE))
    out = {}
    for phase in PHASES:
        folder = os.path.join(base, phase)
        out[phase] = snapshot(platform, {**read_capture(folder), **host}) if os.path.isdir(folder) else None
    return out


# ---------------------------------------------------------------------------------------------- values

def _value(raw):
    """'71.01 W' -> 71.01; N/A and friends -> None; ERR! -> _Bad."""
    s = raw.strip()
    low = s.lower()
    if low in _MISSING:
        return None
    if low in _BROKEN:
        raise _Bad(s)
    m = re.fullmatch(r"([-+]?\d+(?:\.\d+)?)\s*(?:%|MiB|MB|W|MHz|C)?", s)
    if not m:
        raise _Bad(f"not a number: {s!r}")
    return float(m.group(1))


def _int(raw):
    s = raw.strip()
    if not s.isdigit():
        raise _Bad(f"not an integer: {s!r}")
    return int(s)


def throttle_reasons(mask):
    """NVML clocks event bitmask (int or '0x...' text) -> reason names; unknown bits as 'bit_0x...'."""
    if isinstance(mask, str):
        s = mask.strip()
        if s.lower() in _MISSING:
            return []
        if not re.fullmatch(r"0[xX][0-9a-fA-F]+", s):
            raise _Bad(f"not a bitmask: {s!r}")
        mask = int(s, 16)
    names = [name for bit, name in CLOCK_EVENT_BITS.items() if mask & bit]
    rest = mask & ~sum(CLOCK_EVENT_BITS)
    return names + ([f"bit_{rest:#x}"] if rest else [])


def _csv_rows(text, what):
    """Header names (units dropped) and rows of nvidia-smi's --format=csv."""
    lines = [ln for ln in text.replace("\r", "").split("\n") if ln.strip()]
    if not lines:
        raise _Bad(f"{what}: empty output")
    header = [re.sub(r"\s*\[.*\]$", "", h.strip()) for h in lines[0].split(",")]
    header = [_ALIASES.get(h, h) for h in header]
    rows, errors = [], []
    for n, line in enumerate(lines[1:], 2):
        cells = [c.strip() for c in line.split(",")]
        if len(cells) != len(header):
            errors.append(f"{what}: line {n} has {len(cells)} of {len(header)} fields (cut off?)")
        else:
            rows.append((n, dict(zip(header, cells))))
    return header, rows, errors


def _part(devices=None, processes=None, versions=None, host=None, errors=None, notes=None):
    return {"devices": devices, "processes": processes, "versions": versions or {}, "host": host or {},
            "errors": errors or [], "notes": notes or []}


def _device(index, name, **kw):
    d = {"index": index, "name": name, "util_pct": None, "mem_used_mb": None, "mem_total_mb": None,
         "temp_c": None, "power_w": None, "clocks": None, "throttle": [], "health": None}
    d.update(kw)
    return d


# ---------------------------------------------------------------------------------------------- nvidia

def parse_nvidia_query(text):
    """``nvidia-smi --query-gpu=... --format=csv`` -> part with devices and the driver version."""
    header, rows, errors = _csv_rows(text, "nvidia-smi --query-gpu")
    missing = [f for f in ("index", "name") if f not in header]
    if missing:
        raise _Bad(f"nvidia-smi --query-gpu: no {', '.join(missing)} column in the header (cut off?)")
    devices, drivers = [], set()
    for n, row in rows:
        broken = []

        def num(field):
            if field not in row:
                return None
            try:
                return _value(row[field])
            except _Bad as exc:
                broken.append(f"{field}={exc}")
                return None

        try:
            index = _int(row["index"])
        except _Bad as exc:
            errors.append(f"nvidia-smi --query-gpu: line {n}: index {exc}")
            continue
        throttle = []
        if "clocks_throttle_reasons.active" in row:
            try:
                throttle = throttle_reasons(row["clocks_throttle_reasons.active"])
            except _Bad as exc:
                broken.append(f"clocks_event_reasons.active={exc}")
        sm, mem = num("clocks.sm"), num("clocks.mem")
        dev = _device(index, row["name"], util_pct=num("utilization.gpu"), mem_used_mb=num("memory.used"),
                      mem_total_mb=num("memory.total"), temp_c=num("temperature.gpu"), power_w=num("power.draw"),
                      clocks={"sm_mhz": sm, "mem_mhz": mem}, throttle=throttle,
                      health=("error: " + "; ".join(broken)) if broken else "OK")
        if row.get("driver_version", "").lower() not in _MISSING:
            drivers.add(row["driver_version"])
        devices.append(dev)
    if not devices:
        errors.append("nvidia-smi --query-gpu: no GPU rows")
    versions = {"driver": drivers.pop()} if len(drivers) == 1 else {}
    if len(drivers) > 1:
        errors.append(f"nvidia-smi --query-gpu: several driver versions: {sorted(drivers)}")
    return _part(devices=devices, versions=versions, errors=errors)


_NV_HEAD = re.compile(r"NVIDIA-SMI\s+(\S+)\s+Driver Version:\s+(\S+)(?:\s+CUDA Version:\s+(\S+))?")
_NV_PROC = re.compile(r"^\|\s+(\d+)\s+(\S+)\s+(\S+)\s+(\d+)\s+(\S+)\s+(.*?)\s+(\d+|N/A)(?:MiB)?\s*\|$")


def parse_nvidia_table(text):
    """Plain ``nvidia-smi``: driver and CUDA versions, and the process rows (other holders of a GPU)."""
    versions, errors, processes = {}, [], None
    lines = text.replace("\r", "").split("\n")
    for line in lines:
        m = _NV_HEAD.search(line)
        if m:
            versions["driver"] = m.group(2)
            if m.group(3):
                versions["cuda"] = m.group(3)
            break
    else:
        errors.append("nvidia-smi: no `NVIDIA-SMI ... Driver Version` header")
    in_procs, closed = False, False
    for line in lines:
        s = line.strip()
        if not in_procs:
            if s.startswith("| Processes:"):
                in_procs, processes = True, []
            continue
        if s.startswith("|==="):
            continue
        if s.startswith("+---"):  # the section's closing border
            closed = True
            break
        if "No running processes found" in s or s.startswith(("|  GPU ", "|        ID")):
            continue
        m = _NV_PROC.match(s)
        if m:
            mem = m.group(7)
            processes.append({"device": int(m.group(1)), "pid": int(m.group(4)), "name": m.group(6),
                              "mem_mb": None if mem == "N/A" else float(mem), "type": m.group(5)})
        elif s:
            errors.append(f"nvidia-smi: unreadable process row: {s[:120]!r}")
    if processes is None:
        errors.append("nvidia-smi: no `Processes:` section (output cut off?)")
    elif not closed:
        errors.append("nvidia-smi: `Processes:` section cut off")
        processes = None
    return _part(processes=processes, versions=versions, errors=errors)


def parse_nvidia_apps(text):
    """``nvidia-smi --query-compute-apps=pid,process_name,used_memory --format=csv`` (device unknown: None)."""
    header, rows, errors = _csv_rows(text, "nvidia-smi --query-compute-apps")
    if "pid" not in header:
        raise _Bad("nvidia-smi --query-compute-apps: no pid column in the header (cut off?)")
    processes = []
    for n, row in rows:
        try:
            pid = _int(row["pid"])
        except _Bad as exc:
            errors.append(f"nvidia-smi --query-compute-apps: line {n}: pid {exc}")
            continue
        try:
            mem = _value(row.get("used_gpu_memory", row.get("used_memory", "")))
        except _Bad:
            mem = None
        processes.append({"device": None, "pid": pid, "name": row.get("process_name"), "mem_mb": mem})
    return _part(processes=processes, errors=errors)


# ---------------------------------------------------------------------------------------------- npu

_NPU_HEAD = re.compile(r"npu-smi\s+(\S+)\s+Version:\s+(\S+)")
_USAGE = re.compile(r"(\d+(?:\.\d+)?)\s*/\s*(\d+(?:\.\d+)?)")


def _cells(line):
    s = line.strip()
    if not (s.startswith("|") and s.endswith("|")):
        return None
    return [c.strip() for c in s[1:-1].split("|")]


def parse_npu_smi(text):
    """``npu-smi info`` -> part with one device per chip, its processes and the driver version.

    Layouts (tests/fixtures/real/npu-smi/ holds a public sample of each): two rows per chip, ``N Name |
    Health | Power Temp Hugepages`` then ``Chip [Phy-ID|Device] | Bus-Id | AICore Memory-Usage
    [HBM-Usage]`` (910A/910B/310B/310P; an A3 or a 310P Duo lists two chips per NPU); the Ascend 950
    (A5) layout with the NPU id in a column of its own (``| NPU ID | Name |``, no chip id); ``-`` and
    ``NA`` are None.  The process table is optional: some versions (npu-smi 1.8.x, 310B) print none,
    which is a note (processes unknown, ``None``), not an error; a table that starts and stops early
    is an error.  Output without a device table raises with npu-smi's own text as the reason (e.g.
    ``dcmi module initialize failed. ret is -8005``); text around a table is kept as notes."""
    lines = text.replace("\r", "").split("\n")
    versions, errors, notes, devices, messages = {}, [], [], [], []
    processes, proc_header, closed, body, split_id = None, False, False, False, False
    pending = None  # first row of a chip's two-row entry
    for n, line in enumerate(lines, 1):
        s = line.strip()
        m = _NPU_HEAD.search(s)
        if m:
            versions["npu_smi"], versions["driver"] = m.group(1), m.group(2)
            continue
        if s[:1] in ("+", "|") and s[-1:] != s[:1] or s == "|":  # a border or row that stops midway
            errors.append(f"npu-smi info: output cut off at line {n}: {s[:80]!r}")
            if proc_header:
                closed = False
            break
        if s.startswith("+"):
            if proc_header and body:  # a border after a process row (not the one under the header)
                closed = True
            continue
        cells = _cells(s)
        if cells is None:
            if s:
                messages.append(s)
            continue
        if "Process id" in s:
            proc_header, processes = True, []
            if pending is not None:
                errors.append("npu-smi info: a chip's second row is missing")
                pending = None
            continue
        if "Bus-Id" in cells or "Health" in cells:  # column headers
            split_id = split_id or cells[0] == "NPU ID"  # Ascend 950: the NPU id has a column of its own
            continue
        if proc_header:
            closed, body = False, True
            if re.match(r"No running processes found", cells[0]):
                continue
            if len(cells) < 4:
                errors.append(f"npu-smi info: process row {n} cut off")
                continue
            ids = cells[0].split()
            try:
                npu, chip = int(ids[0]), int(ids[1]) if len(ids) > 1 else 0
                pid, mem = _int(cells[1]), _value(cells[3])
            except (_Bad, IndexError, ValueError):
                errors.append(f"npu-smi info: unreadable process row {n}: {s[:80]!r}")
                continue
            processes.append({"npu": npu, "chip": chip, "pid": pid, "name": cells[2] or None, "mem_mb": mem})
            continue
        if split_id and len(cells) >= 4:
            cells = [f"{cells[0]} {cells[1]}".strip(), *cells[2:]]
        if len(cells) < 3:
            errors.append(f"npu-smi info: row {n} cut off")
            pending = None
            continue
        if pending is None:
            m = re.fullmatch(r"(\d+)\s+(.+)", cells[0])
            if not m:
                errors.append(f"npu-smi info: unreadable device row {n}: {s[:80]!r}")
                continue
            pending = (int(m.group(1)), m.group(2), cells[1], cells[2])
            continue
        npu, name, health, first = pending
        pending = None
        ids = cells[0].split()
        try:
            chip = int(ids[0]) if ids else 0
            phy = int(ids[1]) if len(ids) > 1 else None
            power_temp = first.split()
            power, temp = _value(power_temp[0]), _value(power_temp[1])
            second = cells[2]
            usages = _USAGE.findall(second)
            aicore = _value(second.split()[0])
            if not usages:
                raise _Bad("no memory columns")
        except (_Bad, IndexError, ValueError) as exc:
            errors.append(f"npu-smi info: unreadable chip rows ending at line {n}: {exc}")
            continue
        # Memory-Usage then HBM-Usage; a card without HBM (310B, 310P) prints one usage pair only
        (mem_used, mem_total), (hbm_used, hbm_total) = usages[0], (usages + [("0", "0")])[1]
        use_hbm = float(hbm_total) > 0
        devices.append(_device(phy if phy is not None else npu, name, npu=npu, chip=chip,
                               bus_id=None if cells[1].lower() in _MISSING else cells[1],
                               util_pct=aicore, mem_used_mb=float(hbm_used if use_hbm else mem_used),
                               mem_total_mb=float(hbm_total if use_hbm else mem_total), temp_c=temp,
                               power_w=power, health=health))
    if pending is not None:
        errors.append("npu-smi info: output cut off inside a chip's rows")
    if not devices and not errors and messages:  # no table at all: npu-smi's own words are the reason
        raise _Bad("npu-smi info: " + "; ".join(messages[:3])[:300])
    if not devices and "driver" not in versions and not errors:
        raise _Bad("npu-smi info: no device table")
    if not devices:
        errors.append("npu-smi info: no device rows")
    notes += [f"npu-smi info: {m[:200]}" for m in messages[:5]]
    if processes is None and not errors:
        notes.append("npu-smi info: this npu-smi prints no process table; processes on the NPUs unknown")
    elif processes is not None and not closed:
        errors.append("npu-smi info: process table cut off")
        processes = None
    if processes is not None:
        by_chip = {(d["npu"], d["chip"]): d["index"] for d in devices}
        processes = [{"device": by_chip.get((p["npu"], p["chip"]), p["npu"]), "pid": p["pid"], "name": p["name"],
                      "mem_mb": p["mem_mb"]} for p in processes]
    return _part(devices=devices, processes=processes, versions=versions, errors=errors, notes=notes)


def parse_key_values(text, sep="="):
    """``key=value`` lines (ascend_toolkit_install.info, the versions snippet) -> dict of non-empty values."""
    out = {}
    for line in text.replace("\r", "").split("\n"):
        if sep in line:
            key, _, value = line.partition(sep)
            if key.strip() and value.strip():
                out.setdefault(key.strip(), value.strip())
    return out


# ---------------------------------------------------------------------------------------------- host

def parse_ps(text, busy_floor_pct=1.0):
    """The reference platform's stand-in for "processes on the device": processes using CPU.

    Input: the shell's pid, then ``ps -eo pid=,ppid=,pcpu=,rss=,etimes=,comm=``.  The shell, its ancestors
    (the session that runs the capture) and its children (ps) are left out; so are processes
    below ``busy_floor_pct`` CPU (ps's %CPU: CPU time over lifetime).  mem_mb is the RSS.
    """
    lines = [ln for ln in text.replace("\r", "").split("\n") if ln.strip()]
    if not lines or not lines[0].strip().isdigit():
        raise _Bad("ps: the first line is not the capturing shell's pid")
    me = int(lines[0])
    rows, errors = {}, []
    for line in lines[1:]:
        parts = line.split(None, 5)
        try:
            pid, ppid, pcpu, rss, age = int(parts[0]), int(parts[1]), float(parts[2]), int(parts[3]), int(parts[4])
            rows[pid] = (ppid, pcpu, rss, parts[5].strip() if len(parts) > 5 else "", age)
        except (IndexError, ValueError):
            errors.append(f"ps: unreadable line: {line[:80]!r}")
    own, pid = set(), me
    while pid in rows and pid not in own:  # the shell and its ancestors
        own.add(pid)
        pid = rows[pid][0]
    own |= {p for p, r in rows.items() if r[0] == me}
    processes = [{"device": 0, "pid": p, "ppid": r[0], "name": r[3], "mem_mb": round(r[2] / 1024, 1), "cpu_pct": r[1],
                  "age_s": r[4]}
                 for p, r in sorted(rows.items()) if p not in own and r[1] >= busy_floor_pct]
    return _part(processes=processes, errors=errors)


def parse_cpu_sample(text, busy_floor_pct=1.0):
    """The CPU sample (``platforms.CPU_SAMPLE``): every process's CPU over the window between two readings
    of /proc/<pid>/stat, as processes [{"device": 0, "pid", "ppid", "name", "cpu_pct", "mem_mb", "age_s"}]
    at ``busy_floor_pct`` % or more. Left out: the sampling shell, its ancestors (ssh, docker exec, the
    Ansible module, the run script) and children, and with a ``run=PID`` line (the sample taken during a
    run) that run's whole process tree. A run captured before this sample existed (``ps``'s lifetime
    %CPU: the first line a bare pid) is read by ``parse_ps``."""
    lines = [ln for ln in text.replace("\r", "").split("\n") if ln.strip()]
    if lines and lines[0].strip().isdigit():
        return parse_ps(text, busy_floor_pct)
    run = None
    if lines and lines[0].startswith("run="):
        run = int(lines.pop(0)[4:]) if lines[0][4:].strip().isdigit() else None
    head = parse_key_values(lines[0].replace(" ", "\n")) if lines else {}
    if not all(head.get(k, "").isdigit() for k in ("me", "hz", "page")):
        raise _Bad("cpu sample: no `me=PID hz=N page=N` line (cut off?)")
    me, hz, page = int(head["me"]), int(head["hz"]), int(head["page"])
    readings, errors = [], []
    for line in lines[1:]:
        if line.startswith("uptime "):
            try:
                readings.append((float(line.split()[1]), {}))
            except (IndexError, ValueError):
                raise _Bad(f"cpu sample: unreadable uptime line {line[:40]!r}") from None
            continue
        if not readings:
            raise _Bad("cpu sample: a process line before the first uptime line")
        name_part, _, rest = line.rpartition(")")
        pid_s, _, name = name_part.partition(" (")
        fields = rest.split()
        try:  # fields after the name: state ppid ... utime(12) stime(13) ... starttime(20) vsize(21) rss(22)
            readings[-1][1][int(pid_s)] = (int(fields[1]), name, int(fields[11]) + int(fields[12]),
                                           int(fields[19]), int(fields[21]))
        except (IndexError, ValueError):
            errors.append(f"cpu sample: unreadable line: {line[:80]!r}")
    if len(readings) < 2:
        raise _Bad("cpu sample: fewer than two readings (cut off?)")
    (t0, first), (t1, second) = readings[0], readings[-1]
    if t1 <= t0:
        raise _Bad("cpu sample: the two readings are not apart in time")
    parents = {pid: row[0] for pid, row in second.items()}
    own, pid = set(), me
    while pid in parents and pid not in own:  # the sampling shell and its ancestors
        own.add(pid)
        pid = parents[pid]
    own |= {p for p, pp in parents.items() if pp == me}
    if run is not None:  # the run's process tree: the run script and everything below it
        tree, grew = {run}, True
        while grew:
            more = {p for p, pp in parents.items() if pp in tree} - tree
            tree |= more
            grew = bool(more)
        own |= tree
    processes = []
    for pid, (ppid, name, ticks, start, rss) in sorted(second.items()):
        if pid in own or pid not in first:  # started between the readings: no interval to measure
            continue
        cpu = round(100.0 * (ticks - first[pid][2]) / hz / (t1 - t0), 1)
        if cpu >= busy_floor_pct:
            processes.append({"device": 0, "pid": pid, "ppid": ppid, "name": name, "cpu_pct": cpu,
                              "mem_mb": round(rss * page / 1048576, 1), "age_s": round(t1 - start / hz)})
    return _part(processes=processes, errors=errors)


def parse_loadavg(text):
    fields = text.split()
    if len(fields) < 3:
        raise _Bad(f"/proc/loadavg: {text.strip()[:40]!r}")
    try:
        return [float(v) for v in fields[:3]]
    except ValueError:
        raise _Bad(f"/proc/loadavg: {text.strip()[:40]!r}") from None


def parse_image(text):
    """The ``image`` command: '<image id> <image name>' then the RepoDigests JSON list."""
    lines = [ln.strip() for ln in text.replace("\r", "").split("\n") if ln.strip()]
    if not lines or not lines[0].startswith("sha256:"):
        raise _Bad("docker inspect: no image id")
    image, _, name = lines[0].partition(" ")
    out = {"image": image, "image_name": name or None, "image_digest": None}
    if len(lines) > 1:
        try:
            digests = json.loads(lines[1])
        except ValueError:
            raise _Bad("docker image inspect: RepoDigests cut off") from None
        if isinstance(digests, list) and digests and isinstance(digests[0], str):
            out["image_digest"] = digests[0].rpartition("@")[2] or None
    return out


def parse_cann(text):
    """The CANN toolkit's ascend_toolkit_install.info: ``version=``."""
    version = parse_key_values(text).get("version")
    return _part(versions={"cann": version} if version else {})


def parse_npu_driver(text):
    """The NPU driver's version.info: ``Version=`` (the driver, when npu-smi's header did not give it)."""
    version = parse_key_values(text).get("Version")
    return _part(versions={"driver_install": version} if version else {})


# ---------------------------------------------------------------------------------------------- assemble
# One per platform (its record's ``assemble``): the snapshot's devices, processes and versions from the
# parsed outputs ({command name: part}).

def assemble_npu(snap, parts):
    for key in ("cann", "npu_driver", "npu_smi"):  # npu-smi's header wins for the driver
        snap["versions"].update((parts.get(key) or {}).get("versions", {}))
    driver = snap["versions"].pop("driver_install", None)
    if driver and not snap["versions"].get("driver"):
        snap["versions"]["driver"] = driver
    part = parts.get("npu_smi") or {}
    snap["devices"], snap["processes"] = part.get("devices") or [], part.get("processes")


def assemble_cuda(snap, parts):
    for key in ("nvidia_table", "nvidia_query"):  # the query's driver wins; the table adds CUDA
        snap["versions"].update((parts.get(key) or {}).get("versions", {}))
    table = (parts.get("nvidia_table") or {}).get("processes")
    apps = (parts.get("nvidia_apps") or {}).get("processes")
    if table is not None or apps is not None:
        merged = {p["pid"]: dict(p) for p in table or []}
        for p in apps or []:  # the CSV lacks the device; the table has it for the same pid
            merged.setdefault(p["pid"], p)
        snap["processes"] = list(merged.values())
    snap["devices"] = (parts.get("nvidia_query") or {}).get("devices") or []


def assemble_reference(snap, parts):
    if "ps" not in parts:
        return
    snap["processes"] = parts["ps"].get("processes")
    la, ncpu = snap["host"]["loadavg"], snap["host"]["ncpu"]
    snap["devices"] = [_device(0, f"cpu ({ncpu} cores)" if ncpu else "cpu",
                               util_pct=None if not (la and ncpu) else round(100.0 * la[0] / ncpu, 1))]


# ---------------------------------------------------------------------------------------------- snapshot

def _text_of(result):
    """A command's output as handed over: text, None (not run / failed), or a dict like Ansible's
    registered result ({"rc", "stdout", "stderr", "failed", "msg"}). Returns (text or None, why)."""
    if result is None:
        return None, "not captured"
    if isinstance(result, bytes):
        result = result.decode("utf-8", "replace")
    if isinstance(result, str):
        return result, ""
    if isinstance(result, dict):
        rc = result.get("rc")
        if result.get("skipped"):
            return None, "skipped"
        if rc not in (0, None) or result.get("failed") and rc is None:
            why = (result.get("stderr") or result.get("stdout") or result.get("msg") or "").strip().splitlines()
            return None, f"exit status {rc}" + (f": {why[-1][:160]}" if why else "")
        out = result.get("stdout", "")
        return (out if isinstance(out, str) else str(out)), ""
    return None, f"unexpected output type {type(result).__name__}"


def snapshot(platform, outputs, container=None, python="python3"):
    """Parse one snapshot.  ``outputs``: {name: output} with the names of ``capture_plan`` (or a
    list in its order); each output is text, None, or an Ansible-registered result dict."""
    if not container and isinstance(outputs, dict) and outputs.get("image") is not None:
        container = "CONTAINER"  # the image command ran: parse its output too
    plan = capture_plan(platform, container, python) if platform in PLATFORMS else []
    snap = {"platform": platform, "status": "ok", "errors": [], "notes": [], "devices": [], "processes": None,
            "host": {"loadavg": None, "ncpu": None, "governor": None}, "versions": {}}
    if not plan:
        snap.update(status="unreadable", errors=[f"unknown platform {platform!r} (known: {', '.join(PLATFORMS)})"])
        return snap
    if isinstance(outputs, (list, tuple)):
        outputs = {c["name"]: out for c, out in zip(plan, outputs)}
    elif not isinstance(outputs, dict):
        snap.update(status="unreadable", errors=[f"outputs must be a dict or a list, not {type(outputs).__name__}"])
        return snap
    snap["where"] = {name: out["where"] for name, out in outputs.items()
                     if isinstance(out, dict) and out.get("where") and name in {c["name"] for c in plan}}
    record = _platforms.PLATFORMS[platform]
    parsers = {c.name: globals()[c.parser] for c in record.commands if c.parser}
    parts, errors = {}, snap["errors"]
    versions, host = snap["versions"], snap["host"]
    for cmd in plan:
        name = cmd["name"]
        text, why = _text_of(outputs.get(name))
        if text is None:
            if not cmd["optional"]:
                errors.append(f"{' '.join(cmd['argv'][:2])}: {why}")
            continue
        try:
            if name in parsers:
                parts[name] = parsers[name](text)
                errors.extend(parts[name]["errors"])
                snap["notes"].extend(parts[name]["notes"])
            elif name == "python":
                kv = parse_key_values(text)
                versions.update({k: kv[k] for k in ("python", "torch", "torch_npu", "torch_cuda", "numpy") if k in kv})
            elif name == "kernel":
                versions["kernel"] = text.strip() or None
            elif name == "governor":
                host["governor"] = versions["governor"] = text.strip() or None
            elif name == "loadavg":
                host["loadavg"] = parse_loadavg(text)
            elif name == "nproc":
                host["ncpu"] = int(text.strip()) if text.strip().isdigit() else None
            elif name == "image":
                versions.update(parse_image(text))
        except _Bad as exc:
            errors.append(str(exc))
        except Exception as exc:  # a parser bug must not take the run down: say what failed
            errors.append(f"{name}: could not parse ({type(exc).__name__}: {exc})")
    globals()[record.assemble](snap, parts)
    main = record.main
    if main not in parts:
        snap["status"] = "unreadable"
    elif errors:
        snap["status"] = "incomplete"
    return snap


# ---------------------------------------------------------------------------------------------- judge

def _versions(x):
    if not isinstance(x, dict):
        return {}
    return x.get("versions", x) if isinstance(x.get("versions"), dict) else x


def env_diff(a, b, keys=ENV_KEYS, names=("control", "run")):
    """Differences between two environments (snapshots or their ``versions``) as human lines, e.g.
    ``driver: 580.159.04 (control) vs 580.95.05 (run)``.  A key recorded on one side only is skipped."""
    va, vb = _versions(a), _versions(b)
    lines = []
    for key in keys:
        x, y = va.get(key), vb.get(key)
        if x is not None and y is not None and str(x) != str(y):
            lines.append(f"{key}: {x} ({names[0]}) vs {y} ({names[1]})")
    return lines


def _fmt(v, unit):
    return "?" if v is None else f"{v:g} {unit}"


BUSY_MIN_AGE_S = 3  # seconds a process must have run to count as a load on the reference platform
DURING_AFTER_S = 3  # the wait loop's mid-run sample: the first round that finds the run this old and alive


def ancestors(pid=None):
    """This process and its ancestors below init (pids, from /proc; as far as /proc can be read)."""
    chain, pid = [], os.getpid() if pid is None else pid
    while pid > 1 and pid not in chain:
        chain.append(pid)
        try:
            with open(f"/proc/{pid}/stat") as fh:
                pid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return chain


def _is_ansible_playbook(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            argv = fh.read().split(b"\0")[:2]
    except OSError:
        return False
    return any(os.path.basename(a.decode(errors="replace")) == "ansible-playbook" for a in argv)


def controller_pids(pid=None):
    """The play's own processes on this machine: this process and its ancestors up to the
    ansible-playbook that runs the play (a worker is a fork of it and carries its command line, so
    the topmost of the ansible-playbook processes in a row; its direct children are the workers);
    () when none is among them (a report built by hand). Not the shell above it: a load that shell
    started is another job."""
    chain = ancestors(pid)
    marks = [_is_ansible_playbook(p) for p in chain]
    if True not in marks:
        return ()
    top = marks.index(True)
    while top + 1 < len(chain) and marks[top + 1]:
        top += 1
    return tuple(chain[:top + 1])


def own_pids_of(run, own_pids):
    """``own_pids`` where a run's snapshots can hold them: a run on the controller (connection local; a
    manifest without one, from before the key, counts as local), not in a container (another pid space)."""
    manifest = run.get("manifest") or {}
    if manifest.get("container") or (manifest.get("connection") or "local") != "local":
        return ()
    return tuple(own_pids or ())


def others(processes, own_pids=(), ignore_names=()):
    """The processes that are another load: not in ``own_pids`` (the run's, the controller's), not their
    children, not named in ``ignore_names``."""
    own = set(own_pids or ())
    return [p for p in processes or [] if p.get("pid") not in own and p.get("ppid") not in own
            and p.get("name") not in ignore_names]


def _unknown(snap):
    return not isinstance(snap, dict) or snap.get("status") == "unreadable" or (
        not snap.get("devices") and snap.get("platform") in DEVICE_PLATFORMS)


def unknown_state(before, after=None, during=None):
    """``device state <when> the run unknown: <why>`` for each snapshot that was taken but could not be
    read (a snapshot that is None was not captured: no line)."""
    lines = []
    for when, snap in (("before", before), ("during", during), ("after", after)):
        if snap is not None and _unknown(snap):
            errs = snap.get("errors") if isinstance(snap, dict) else None
            lines.append(f"device state {when} the run unknown: " + ("; ".join(errs or []) or "no devices read"))
    return lines


def judge(before, after=None, control_env=None, *, idle_util_pct=10.0, idle_mem_mb=None, busy_cpu_pct=50.0,
          throttling=THROTTLING, env_keys=ENV_KEYS, own_pids=(), ignore_names=(), device_state="required",
          during=None):
    """Reasons why a run is ``invalid`` (empty list: the machine was fit to measure on).

    * before the run: a device busy (utilisation above ``idle_util_pct`` %, memory in use above
      ``idle_mem_mb`` MB: default per platform, ``IDLE_MEM_MB``) or held by another process
      (reference platform: a process using ``busy_cpu_pct`` % CPU or more); a device snapshot
      that could not be read;
    * before or after: a device snapshot that is incomplete with its process list unknown (e.g. an
      npu-smi process table cut off; a tool version that prints no process table is not incomplete);
    * before or after: clocks throttled (``throttling`` reasons; gpu_idle is not one), health not OK;
    * after: another process on a device (it ran during the run);
    * the environment differs from ``control_env`` (the control run's snapshot or versions).
    ``own_pids``: processes of the run or of the controller, never counted as others, nor are their
    children (the CLI passes ``controller_pids()`` for runs on the controller, ``own_pids_of``: a
    controller on the measured host, e.g. the embedded default, is the suite itself, not another load);
    ``ignore_names``: process names never counted.
    Snapshots that are None (not captured) give no reason; ``device_state="optional"``: one that could
    not be read gives none either (``unknown_state`` has its lines, reported as warnings).
    """
    reasons = [] if device_state == "optional" else unknown_state(before, after, during)
    for when, snap in (("before", before), ("during", during), ("after", after)):
        if snap is None or _unknown(snap):
            continue
        platform = snap.get("platform")
        if snap.get("status") == "incomplete" and snap.get("processes") is None and platform in DEVICE_PLATFORMS:
            reasons.append(f"device state {when} the run incomplete, processes unknown: "
                           + "; ".join(snap.get("errors") or []))
        mem_limit = IDLE_MEM_MB.get(platform) if idle_mem_mb is None else idle_mem_mb
        for d in snap.get("devices") or []:
            dev = f"device {d.get('index')}"
            if when == "before" and platform in DEVICE_PLATFORMS:
                util, mem = d.get("util_pct"), d.get("mem_used_mb")
                if util is not None and util > idle_util_pct:
                    reasons.append(f"{dev} busy before the run: utilisation {_fmt(util, '%')} "
                                   f"(idle limit {_fmt(idle_util_pct, '%')})")
                if mem is not None and mem_limit is not None and mem > mem_limit:
                    reasons.append(f"{dev} busy before the run: {_fmt(mem, 'MB')} in use "
                                   f"(idle limit {_fmt(mem_limit, 'MB')})")
            held = [r for r in d.get("throttle") or [] if r in throttling]
            if held:
                reasons.append(f"{dev} throttled {when} the run: {', '.join(held)}")
            health = d.get("health")
            if health is not None and str(health).upper() != "OK":
                reasons.append(f"{dev} health {when} the run: {health}")
        load = []
        for p in others(snap.get("processes"), own_pids, ignore_names):
            if platform not in DEVICE_PLATFORMS:  # the CPU stand-in: processes using CPU
                # a process younger than BUSY_MIN_AGE_S (a docker or git call of a second) is no load
                if p.get("cpu_pct") is not None and (p.get("age_s") is None or p["age_s"] >= BUSY_MIN_AGE_S):
                    load.append(p)
                continue
            where = "a device" if p.get("device") is None else f"device {p['device']}"
            reasons.append(f"{where} held by another process {when} the run: pid {p.get('pid')} "
                           f"{p.get('name') or '?'} ({_fmt(p.get('mem_mb'), 'MB')})")
        total = sum(p["cpu_pct"] for p in load)
        if when != "after" and load and total >= busy_cpu_pct:
            top = sorted(load, key=lambda p: -p["cpu_pct"])
            names = ", ".join(f"pid {p['pid']} {p.get('name') or '?'} at {_fmt(p['cpu_pct'], '%')} CPU" for p in top[:8])
            more = f" and {len(top) - 8} more" if len(top) > 8 else ""
            together = f" (together {_fmt(round(total, 1), '%')} CPU, limit {_fmt(busy_cpu_pct, '%')})" if len(top) > 1 else ""
            reasons.append(f"host busy {when} the run: {names}{more}{together}")
    if control_env is not None:
        mine = before if before is not None else after
        reasons += [f"environment differs from the control: {line}"
                    for line in env_diff(control_env, mine, env_keys, ("control", "run"))]
    return reasons
