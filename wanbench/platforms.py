"""One record per platform: everything the suite knows about a kind of host in one place.

A platform (``npu``, ``cuda``, ``reference``) is one :class:`Platform` in ``PLATFORMS``:

* ``device_env``: the environment variable that selects the devices (None: no devices);
* ``idle_mem_mb``: memory a device may hold with nothing running (MB; judge's default);
* ``commands``: its capture commands (:class:`Command`), each with the places it may run, in order
  (``workload``: where the workload runs, inside its container when there is one; ``host``: on the
  host, through the same connection) and the parser of its output (a function of
  :mod:`wanbench.devices`, by name);
* ``main``: the command whose output is the device state (no usable output: state unknown);
* ``assemble``: the function of :mod:`wanbench.devices` that builds a snapshot's devices and
  processes from the parsed outputs;
* ``environment``: what the workload's login shell must have (modules that import, environment
  variables that are set), checked by preflight;
* ``during``: the commands the wait loop runs once mid-run (the CPU sample on ``reference``).

Adding a platform is one record here plus its parsers' fixtures (docs/health.md). The capture
commands every platform shares (kernel, load, versions, image) are in :mod:`wanbench.devices`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

WORKLOAD, HOST = "workload", "host"


@dataclass(frozen=True)
class Command:
    name: str                      # key of its output (health/<phase>/<name>.out)
    argv: tuple                    # run without a shell, as given
    parser: str | None = None      # function of wanbench.devices that parses the output (None: no parser)
    optional: bool = False         # a failure is recorded as missing, not as an error
    places: tuple = (WORKLOAD,)    # where it may run, in order: the first place that has it
    device: bool = False           # reads the devices' state: preflight judges it before the play


@dataclass(frozen=True)
class Platform:
    name: str
    device_env: str | None
    idle_mem_mb: float | None
    main: str
    assemble: str
    commands: tuple
    environment: dict = field(default_factory=dict)  # {"imports": (module, ...), "env": (variable, ...)}
    during: tuple = ()  # commands sampled once mid-run (the wait loop), beside the run's own processes


_NVIDIA_QUERY = ("index", "name", "driver_version", "utilization.gpu", "memory.used", "memory.total",
                 "temperature.gpu", "power.draw", "clocks.sm", "clocks.mem", "clocks_throttle_reasons.active")
_EITHER = (WORKLOAD, HOST)

# The CPU sample (output key ``ps``, as the lifetime ``ps`` it replaced): this shell's pid, the clock
# tick and page size, then two readings of every process's /proc/<pid>/stat CPU_WINDOW_S apart, each
# after the uptime (devices.parse_cpu_sample): CPU over that window, not ps's lifetime average.
# The window is paid twice a run (before, after) on the play's critical path: 0.25 s (it was 1 s: 2 s
# of a zero-work run's 3.1-3.4 s overhead). Its error is the readings' clock-tick rounding, under one
# tick (10 ms at 100 Hz) a process: 4 % CPU over 0.25 s, against a 50 % busy limit; the uptime lines
# give the real interval, so a late reading is not an error. On the loaded 2-core development machine
# a spinner read 37 +- 3 % (six samples of 0.25 s) where 1 s windows read 33 +- 2 %.
CPU_WINDOW_S = 0.25
CPU_SAMPLE = ('echo "me=$$ hz=$(getconf CLK_TCK) page=$(getconf PAGESIZE)"; '
              'for i in 1 2; do echo "uptime $(cut -d " " -f 1 /proc/uptime)"; '
              f'cat /proc/[0-9]*/stat 2>/dev/null; [ "$i" = 2 ] || sleep {CPU_WINDOW_S:g}; done')

PLATFORMS = {
    "npu": Platform(
        name="npu", device_env="ASCEND_RT_VISIBLE_DEVICES",
        # an idle Ascend 910 reports about 3.3 GB of HBM in use (firmware)
        idle_mem_mb=4096.0, main="npu_smi", assemble="assemble_npu",
        commands=(
            # the MindIE container often has no npu-smi (not mounted): then the host's
            Command("npu_smi", ("npu-smi", "info"), "parse_npu_smi", places=_EITHER, device=True),
            Command("cann", ("sh", "-c", "cat /usr/local/Ascend/ascend-toolkit/latest/*/ascend_toolkit_install.info"),
                    "parse_cann", optional=True),
            # the driver's install record (Version=...), a file of the host mounted into some containers
            Command("npu_driver", ("cat", "/usr/local/Ascend/driver/version.info"), "parse_npu_driver",
                    optional=True, places=_EITHER),
        ),
        environment={"imports": ("torch", "torch_npu"), "env": ("ASCEND_OPP_PATH", "ASCEND_AICPU_PATH")}),
    "cuda": Platform(
        name="cuda", device_env="CUDA_VISIBLE_DEVICES", idle_mem_mb=1024.0, main="nvidia_query",
        assemble="assemble_cuda",
        commands=(
            Command("nvidia_query", ("nvidia-smi", "--query-gpu=" + ",".join(_NVIDIA_QUERY), "--format=csv"),
                    "parse_nvidia_query", places=_EITHER, device=True),
            Command("nvidia_table", ("nvidia-smi",), "parse_nvidia_table", places=_EITHER, device=True),
            Command("nvidia_apps", ("nvidia-smi", "--query-compute-apps=pid,process_name,used_memory",
                                    "--format=csv"), "parse_nvidia_apps", optional=True, places=_EITHER, device=True),
        )),
    "reference": Platform(
        name="reference", device_env=None, idle_mem_mb=None, main="ps", assemble="assemble_reference",
        commands=(Command("ps", ("sh", "-c", CPU_SAMPLE), "parse_cpu_sample"),), during=("ps",)),
}
NAMES = tuple(PLATFORMS)


def get(name):
    """The record of a platform; ValueError naming the known ones."""
    try:
        return PLATFORMS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown platform {name!r} (known: {', '.join(NAMES)})") from None
