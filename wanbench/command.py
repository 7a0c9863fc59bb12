"""The per-run parts of a resolved variant: run id, torchrun master port, environment and argv."""

from __future__ import annotations

import hashlib
import secrets
import shlex
from datetime import datetime, timezone

from . import platforms


def run_id(variant, now=None, token=None):
    """``<UTCstamp>-<variant>-<short random>``."""
    now = now or datetime.now(timezone.utc)
    return f"{now.strftime('%Y%m%dT%H%M%SZ')}-{variant}-{token or secrets.token_hex(3)}"


def master_port(rid, low=20000, span=10000):
    """A per-run torchrun port derived from the run id."""
    return low + int(hashlib.sha256(rid.encode()).hexdigest(), 16) % span


def command(resolved, run_dir, generate="generate.py", torchrun="torchrun", master_port_=29500,
            ckpt_dir="", devices="", platform=None, save_file="output.npy"):
    """The run's environment and torchrun argv (run-local paths, port, devices added)."""
    platform = platform or resolved["settings"]["platform"]
    env = dict(resolved["env"])
    dev_var = platforms.get(platform).device_env
    if dev_var and devices:
        env[dev_var] = str(devices)
    args = list(resolved["args"])
    if ckpt_dir:
        args += ["--ckpt_dir", ckpt_dir]
    flags = resolved["flags"]
    if flags.get("profile_stage"):
        args += ["--profile_stage_file", f"{run_dir}/perf.csv"]
    if flags.get("profile_block"):
        args += ["--profile_block_file", f"{run_dir}/block.csv"]
    if flags.get("profile_mode"):
        args += ["--profile_mode_dir", f"{run_dir}/profile"]
    if save_file:
        args += ["--save_file", f"{run_dir}/{save_file}"]
    args += ["--prompt", resolved["settings"]["prompt"]]
    argv = [torchrun, f"--nproc_per_node={resolved['settings']['nproc']}",
            "--master_addr", "127.0.0.1", "--master_port", str(master_port_), generate] + args
    return {"env": env, "argv": argv,
            "command_line": " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
            + (" " if env else "") + shlex.join(argv)}
