"""FSDP2 wrapping of the DiT and T5 (the branch's shard_model), and deterministic materialisation."""
import logging
import math
import zlib
from functools import partial

import torch
from torch.distributed.fsdp import FSDPModule, fully_shard
from torch.distributed.tensor import DTensor


def fsdp_units(kind, num_blocks, wrap_mode="block", group_size=1):
    """Module names of each FSDP unit, innermost first; the root ("", everything not in an inner
    unit) comes last. T5 always wraps its blocks one by one: the branch never applies ffn_only or
    block grouping to it; grouping applies in block mode only."""
    if kind == "t5":
        wrap_mode, group_size = "block", 1
    if wrap_mode == "ffn_only":
        inner = [[f"blocks.{i}.ffn"] for i in range(num_blocks)]
    else:
        names = [f"blocks.{i}" for i in range(num_blocks)]
        inner = [names[i:i + group_size] for i in range(0, num_blocks, group_size)]
    return inner + [[""]]


def wrapped_names(model):
    return [name for name, module in model.named_modules() if isinstance(module, FSDPModule)]


def shard(model, units, mesh, reshard_after_forward, gate=None):
    """fully_shard each unit (a list of modules shares one all-gather). `gate`, when given, is called
    with the unit's all-gather streams in a pre-forward hook that runs before FSDP's unshard."""
    for names in units:
        modules = [model.get_submodule(name) for name in names]
        fully_shard(modules if len(modules) > 1 else modules[0], mesh=mesh, reshard_after_forward=reshard_after_forward)
        if gate is not None:
            modules[0].register_forward_pre_hook(partial(_gate_hook, gate), prepend=True)
    logging.info(f"FSDP wrap mode: {'ffn_only' if units[0][0].endswith('.ffn') else 'block'} "
                 f"(targets={len(units) - 1})")


def _gate_hook(gate, module, args):
    comm = module._get_fsdp_state()._comm_ctx
    if hasattr(comm, "all_gather_stream"):  # created by FSDP's lazy init in the first root forward
        gate([comm.all_gather_copy_in_stream, comm.all_gather_stream])


@torch.no_grad()
def materialize(module, device, seed):
    """Allocate a meta-device (possibly sharded) module on `device` and fill each parameter with a value
    that depends only on (seed, parameter name): sharded and unsharded variants hold identical weights,
    and a rank only ever holds one full parameter at a time (it keeps its own rows of a sharded one)."""
    module.to_empty(device=device)
    for name, param in module.named_parameters():
        value = _init_value(name, param.shape, param.dtype, device, seed)
        if isinstance(param, DTensor):  # FSDP2: Shard(0) over a 1-D mesh, rows split as torch.chunk does
            mesh = param.device_mesh
            rows = -(-param.shape[0] // mesh.size())
            start = min(mesh.get_local_rank() * rows, param.shape[0])
            param = param.to_local()
            value = value.narrow(0, start, param.shape[0])
        param.copy_(value)


def _init_value(name, shape, dtype, device, seed):
    if len(shape) == 1:
        is_norm_weight = name.endswith(".weight") and name.split(".")[-2].startswith("norm")
        return torch.full(shape, 1.0 if is_norm_weight else 0.0, dtype=dtype, device=device)
    generator = torch.Generator(device=device).manual_seed(seed + zlib.crc32(name.encode()))
    value = torch.randn(shape, generator=generator, dtype=dtype, device=device)
    return value.mul_(math.prod(shape[1:]) ** -0.5)
