"""What a variant catalog may hold: platforms, modes, the switches and flags a variant may set.

Plain data, read by :mod:`wanbench.catalog` (checks, selection, resolution) and
:mod:`wanbench.command` (the per-run command).  The catalog itself lives in
``group_vars/all/catalog.yml``.
"""

from __future__ import annotations

import re

from .platforms import NAMES as PLATFORMS  # noqa: F401  (one record per platform: wanbench.platforms)
MODES = ("profiled", "runtime_only")
AA = "aa"  # reserved selection: the family baseline against itself (an A/A check of the host's noise)

_BIT = {"type": "int", "choices": (0, 1)}

#: Switches read by the perf branch (WAN_TARGET.md), with their types.
ENV_SCHEMA = {
    "WAN_A2A_FENCE": {"type": "int", "choices": (0, 1, 2)},  # 0 off, 1 before q/k/v all-to-all, 2 around every one
    "WAN_A2A_EVENT_GATE": _BIT,
    "WAN_FSDP_ALLGATHER_WAIT_A2A": _BIT,
    "WAN_FSDP_RESHARD_AFTER_FORWARD": _BIT,
    "WAN_FSDP_BLOCK_GROUP_SIZE": {"type": "int", "min": 1},
    "WAN_FSDP_WRAP_MODE": {"type": "str", "choices": ("block", "ffn_only")},
    "WAN_PACKED_QKV_A2A": _BIT,
    "WAN_FSDP_SHARDING_STRATEGY": {"type": "str"},
    "WAN_SLOW_CARD_DIAG": _BIT,
    "WAN_SLOW_CARD_OP_DIAG": _BIT,
    "WAN_SLOW_CARD_DIAG_STAGES": {"type": "str"},
    "WAN_SLOW_CARD_DIAG_MAX_CALLS": {"type": "int", "min": 0},
    "WAN_SLOW_CARD_DIAG_EVERY_STEP": _BIT,
    "WAN_SLOW_CARD_OP_DIAG_STAGES": {"type": "str"},
    "WAN_SLOW_CARD_OP_DIAG_MAX_CALLS": {"type": "int", "min": 0},
    "WAN_SLOW_CARD_OP_DIAG_EVERY_STEP": _BIT,
    "ALGO": _BIT,
}

#: generate.py flags a variant may set ("bool" = store_true switch).
#: Switch flags: a bare --flag when true, left out when false.
SWITCH_FLAGS = (
    "dit_fsdp", "t5_fsdp", "t5_cpu", "vae_parallel", "serialize_comm", "cfg_fused_forward", "cache_cross_kv",
    "use_attentioncache", "use_rainfusion", "profile_stage", "profile_attn", "profile_block",
)

FLAG_SCHEMA = {
    "ring_size": {"type": "int", "min": 1},
    "cfg_size": {"type": "int", "choices": (1, 2)},
    "tp_size": {"type": "int", "min": 1},
    "offload_model": {"type": "bool", "value": True},  # takes True/False (str2bool)
    "base_seed": {"type": "int", "min": 0},
    "quant_dit_path": {"type": "str"},
    "attentioncache_ratio": {"type": "float"},
    "attentioncache_interval": {"type": "int", "min": 1},
    "start_step": {"type": "int", "min": 0},
    "end_step": {"type": "int", "min": 0},
    "sparsity": {"type": "float"},
    "sparse_start_step": {"type": "int", "min": 0},
    "profile_mode": {"type": "str", "choices": ("normal", "detailed")},
    "profile_mode_steps": {"type": "int", "min": 1},  # steps of detailed mode's second, traced generation
    "perf_logic": {"type": "str", "choices": ("legacy", "optimized")},
    "sample_solver": {"type": "str", "choices": ("unipc", "dpm++")},
    "sample_shift": {"type": "float"},
    "sample_guide_scale": {"type": "float"},
    **{name: {"type": "bool"} for name in SWITCH_FLAGS},
}

#: Flags that belong to the common settings or to the run, never to a variant.
MANAGED_FLAGS = {
    "task": "common settings (wanbench_common.task)",
    "size": "common settings (wanbench_common.size)",
    "frame_num": "common settings (wanbench_common.frame_num)",
    "ulysses_size": "common settings (wanbench_common.ulysses_size)",
    "prompt": "common settings or the mode (-e prompt=...)",
    "sample_steps": "the family (wanbench_families.<family>.steps)",
    "ckpt_dir": "the inventory (wanbench_model_dir)",
    "save_file": "the run directory",
    "profile_stage_file": "the run directory",
    "profile_attn_file": "the run directory",
    "profile_block_file": "the run directory",
    "profile_mode_dir": "the run directory",
}

#: Flags whose value the measurement mode owns.
MODE_FLAGS = ("profile_stage", "profile_attn")

#: Keys that form one "main variable" when counting changes against the base.
MAIN_VARIABLE_GROUPS = {
    "dit_fsdp": "fsdp", "t5_fsdp": "fsdp",
    "use_attentioncache": "attentioncache", "attentioncache_ratio": "attentioncache",
    "attentioncache_interval": "attentioncache", "start_step": "attentioncache",
    "end_step": "attentioncache",
    "use_rainfusion": "rainfusion", "sparsity": "rainfusion", "sparse_start_step": "rainfusion",
    "profile_block": None, "profile_mode": None, "profile_mode_steps": None,
    "base_seed": None,  # not a main variable
}
for _k in ENV_SCHEMA:
    if _k.startswith("WAN_SLOW_CARD"):
        MAIN_VARIABLE_GROUPS[_k] = None  # diagnostics only

COMMON_SCHEMA = {
    "task": {"type": "str"},
    "size": {"type": "str"},
    "frame_num": {"type": "int", "min": 1},
    "ulysses_size": {"type": "int", "min": 1},
    "nproc": {"type": "int", "min": 1},
    "prompt": {"type": "str"},
}
VARIANT_KEYS = ("base", "family", "mode", "steps", "env", "flags", "description")
FAMILY_KEYS = ("steps", "baseline", "description")
MODE_KEYS = ("flags", "env", "prompt", "description")
NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
SIZE_RE = re.compile(r"^[1-9][0-9]*\*[1-9][0-9]*$")
