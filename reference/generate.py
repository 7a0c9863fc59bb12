"""Reference workload for wanbench: the Wan2.1 perf branch's generate.py interface, driving a
Wan-shaped distributed text-to-video pipeline with random seeded weights (nothing is downloaded).

    torchrun --nproc_per_node=4 --master_addr 127.0.0.1 --master_port 29500 generate.py \\
        --task t2v-tiny --size 128*128 --frame_num 9 --sample_steps 20 --ulysses_size 4 \\
        --dit_fsdp --t5_fsdp --profile_stage --profile_attn --profile_stage_file perf.csv
"""
import argparse
import logging
import os
import random
import sys
import time
from datetime import datetime

sys.dont_write_bytecode = True  # the work tree stays clean: the suite checks it before every run
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402

from wan_ref.configs import EXAMPLE_PROMPT, SUPPORTED_SIZES, WAN_CONFIGS  # noqa: E402
from wan_ref.parallel import Runtime  # noqa: E402
from wan_ref.pipeline import WanT2V, parse_size  # noqa: E402
from wan_ref.profiler import Profiler, report, return_freed_host_memory  # noqa: E402
from wan_ref.switches import SwitchError, Switches  # noqa: E402


def str2bool(v):
    if v.lower() in ("yes", "true", "t", "y", "1"):
        return True
    if v.lower() in ("no", "false", "f", "n", "0"):
        return False
    raise argparse.ArgumentTypeError(f"Boolean value expected, got {v!r}")


def build_parser():
    p = argparse.ArgumentParser(description="Generate a video from a text prompt (Wan2.1-shaped reference workload)")
    p.add_argument("--task", type=str, default="t2v-14B", choices=list(WAN_CONFIGS), help="The task (size preset).")
    p.add_argument("--size", type=str, default="1280*720", help="The area (width*height) of the generated video.")
    p.add_argument("--frame_num", type=int, default=None, help="Frames to generate; 4n+1.")
    p.add_argument("--ckpt_dir", type=str, default=None, help="Accepted; the reference uses random seeded weights.")
    p.add_argument("--offload_model", type=str2bool, default=None)
    p.add_argument("--profile_stage", action="store_true", default=False)
    p.add_argument("--profile_stage_file", type=str, default=None)
    p.add_argument("--profile_attn", action="store_true", default=False)
    p.add_argument("--profile_attn_file", type=str, default=None)
    p.add_argument("--profile_block", action="store_true", default=False)
    p.add_argument("--profile_block_file", type=str, default=None)
    p.add_argument("--profile_mode", type=str, default="normal", choices=["normal", "detailed"],
                   help="detailed: also record a torch.profiler trace of the timed request into --profile_mode_dir.")
    p.add_argument("--profile_mode_dir", type=str, default="./profile_detailed")
    p.add_argument("--perf_logic", type=str, default="optimized", choices=["legacy", "optimized"])
    p.add_argument("--serialize_comm", action="store_true", default=False)
    p.add_argument("--cfg_fused_forward", action="store_true", default=False)
    p.add_argument("--cache_cross_kv", action="store_true", default=False)
    p.add_argument("--cfg_size", type=int, default=1)
    p.add_argument("--ulysses_size", type=int, default=1)
    p.add_argument("--ring_size", type=int, default=1)
    p.add_argument("--tp_size", type=int, default=1)
    p.add_argument("--vae_parallel", action="store_true", default=False)
    p.add_argument("--t5_fsdp", action="store_true", default=False)
    p.add_argument("--t5_cpu", action="store_true", default=False)
    p.add_argument("--dit_fsdp", action="store_true", default=False)
    p.add_argument("--save_file", type=str, default=None, help="Where to write the decoded video (.npy data).")
    p.add_argument("--prompt", type=str, default=None)
    p.add_argument("--base_seed", type=int, default=-1)
    p.add_argument("--sample_solver", type=str, default="unipc", choices=["unipc", "dpm++"])
    p.add_argument("--sample_steps", type=int, default=None)
    p.add_argument("--sample_shift", type=float, default=None)
    p.add_argument("--sample_guide_scale", type=float, default=5.0)
    p.add_argument("--quant_dit_path", type=str, default=None)
    cache = p.add_argument_group(title="Attention Cache args")
    cache.add_argument("--use_attentioncache", action="store_true")
    cache.add_argument("--attentioncache_ratio", type=float, default=1.2)
    cache.add_argument("--attentioncache_interval", type=int, default=4)
    cache.add_argument("--start_step", type=int, default=12)
    cache.add_argument("--end_step", type=int, default=37)
    rain = p.add_argument_group(title="Rainfusion args")
    rain.add_argument("--use_rainfusion", action="store_true")
    rain.add_argument("--sparsity", type=float, default=0.64)
    rain.add_argument("--sparse_start_step", type=int, default=15)
    return p


def validate(args, world_size, switches=None):
    """The branch's checks (plus the reference's size and switch checks); ValueError names the problem."""
    def check(ok, message):
        if not ok:
            raise ValueError(message)

    cfg = WAN_CONFIGS[args.task]
    if args.sample_steps is None:
        args.sample_steps = 50
    check(args.sample_steps >= 1, f"sample_steps should be >= 1, but get {args.sample_steps}")
    if args.sample_shift is None:
        args.sample_shift = 5.0
    check(args.sample_shift > 0.0, f"sample_shift should be > 0, but get {args.sample_shift}")
    if args.frame_num is None:
        args.frame_num = 81
    check(args.frame_num > 1 and (args.frame_num - 1) % 4 == 0,
          f"frame_num should be 4n+1 (n>0), but get {args.frame_num}")
    check(min(args.cfg_size, args.ulysses_size, args.ring_size, args.tp_size) >= 1,
          f"cfg_size, ulysses_size, ring_size and tp_size must >= 1, but get cfg_size={args.cfg_size}, "
          f"ulysses_size={args.ulysses_size}, ring_size={args.ring_size}, tp_size={args.tp_size}")
    check(args.tp_size == 1 or (args.ulysses_size == 1 and args.ring_size == 1),
          f"tp only supported when ulysses_size == 1, and ring_size == 1, but get ulysses_size "
          f"{args.ulysses_size}, ring_size {args.ring_size}")
    check(args.cfg_size in (1, 2), f"cfg_size only support 1 or 2, but get {args.cfg_size}")
    supported = SUPPORTED_SIZES[args.task]
    if supported is not None:
        check(args.size in supported, f"Unsupport size {args.size} for task {args.task}, supported sizes are: "
                                      f"{', '.join(supported)}")
    else:
        step = cfg.vae_stride[1] * cfg.patch_size[1]
        parts = args.size.split("*")
        check(len(parts) == 2 and all(v.isdigit() and int(v) > 0 and int(v) % step == 0 for v in parts),
              f"size should be W*H with W and H positive multiples of {step}, but get {args.size}")
    if world_size == 1:
        check(not (args.t5_fsdp or args.dit_fsdp),
              "t5_fsdp and dit_fsdp are not supported in non-distributed environments.")
        check(not (args.cfg_size > 1 or args.ulysses_size > 1 or args.ring_size > 1),
              "context parallel are not supported in non-distributed environments.")
        check(not args.vae_parallel, "vae parallel are not supported in non-distributed environments.")
    check(args.cfg_size * args.ulysses_size * args.ring_size * args.tp_size == world_size,
          f"The number of cfg_size, ulysses_size, ring_size and tp_size should be equal to the world size "
          f"({args.cfg_size}*{args.ulysses_size}*{args.ring_size}*{args.tp_size} != {world_size}).")
    check(cfg.num_heads % args.ulysses_size == 0, "`num_heads` must be divisible by `ulysses_size`.")
    check(not (args.cfg_size > 1 and args.cfg_fused_forward), "--cfg_fused_forward needs cfg_size 1")
    return Switches.from_env() if switches is None else switches


def reference_notes(args, switches, device):
    """INFO lines telling what the reference does with the flags and switches it cannot mirror fully."""
    cpu = device.type == "cpu"
    streams = "has no effect on CPU (no device streams)" if cpu else "enabled"
    notes = [
        f"Attention all_to_all mode: {'packed_qkv_single' if switches.packed_qkv_a2a else 'legacy_qkv_three'}"
        f"_all_to_all (WAN_PACKED_QKV_A2A={int(switches.packed_qkv_a2a)})",
        f"Attention all_to_all fence mode: {('disabled', 'pre_qkv_only', 'full')[switches.a2a_fence]} "
        f"(WAN_A2A_FENCE={switches.a2a_fence})" + (" [CPU: a barrier over the Ulysses group]"
                                                    if cpu and switches.a2a_fence else ""),
        f"Reference: weights are random and seeded; --ckpt_dir {args.ckpt_dir} is not read.",
    ]
    if cpu:
        notes.append("Reference: on CPU, memory figures are host RSS per rank: reserved = peak RSS (VmHWM), "
                     "alloc = current RSS (VmRSS).")
    if switches.step_delay_ms:
        notes.append(f"Reference: WAN_REF_STEP_DELAY_MS={switches.step_delay_ms:g}: every denoise step sleeps that long "
                     "on every rank (a slowdown on purpose).")
    if switches.perturb:
        notes.append(f"Reference: WAN_REF_PERTURB={switches.perturb:g} adds noise of that scale to the final latent; "
                     "the output differs from an unperturbed run on purpose.")
    if switches.a2a_event_gate:
        notes.append(f"Attention all_to_all event gate: {streams} (WAN_A2A_EVENT_GATE=1)")
    if switches.allgather_wait_a2a:
        notes.append(f"FSDP all-gather wait-after-A2A {streams} (WAN_FSDP_ALLGATHER_WAIT_A2A=1)")
    if args.serialize_comm and cpu:
        notes.append("Reference: --serialize_comm has no effect on CPU: gloo FSDP all-gathers are already "
                     "issued synchronously.")
    ignored = [("--quant_dit_path", args.quant_dit_path), ("--offload_model", args.offload_model),
               ("--profile_block", args.profile_block), ("--attentioncache_ratio", args.use_attentioncache),
               ("--sample_solver (flow-matching Euler is used)", args.sample_solver != "unipc"),
               ("--tp_size (tp ranks compute replicas)", args.tp_size > 1),
               ("ALGO (no fused kernels here)", switches.algo),
               ("WAN_SLOW_CARD_DIAG / WAN_SLOW_CARD_OP_DIAG", switches.slow_card_diag or switches.slow_card_op_diag),
               ("WAN_FSDP_SHARDING_STRATEGY beyond reshard (FSDP2)", switches.sharding_strategy != "FULL_SHARD")]
    notes += [f"Reference ignores {name}." for name, used in ignored if used]
    return notes


def _init_logging(rank):
    if rank == 0:
        logging.basicConfig(level=logging.INFO, format="[%(asctime)s] %(levelname)s: %(message)s",
                            handlers=[logging.StreamHandler(stream=sys.stdout)])
    else:
        logging.basicConfig(level=logging.ERROR)


def generate(args):
    rank = int(os.getenv("RANK", 0))
    world_size = int(os.getenv("WORLD_SIZE", 1))
    local_rank = int(os.getenv("LOCAL_RANK", 0))
    _init_logging(rank)
    try:
        switches = validate(args, world_size)
    except (ValueError, SwitchError) as exc:
        sys.exit(f"generate.py: error: {exc}")
    if args.offload_model is None:
        args.offload_model = world_size == 1
        logging.info(f"offload_model is not specified, set to {args.offload_model}.")
    if args.use_rainfusion and args.cfg_fused_forward:
        logging.warning("`--use_rainfusion` is currently incompatible with `--cfg_fused_forward`; "
                        "falling back to non-fused CFG forward.")
        args.cfg_fused_forward = False
    if args.tp_size > 1 and args.dit_fsdp:
        logging.info("DiT using Tensor Parallel, disabled dit_fsdp")
        args.dit_fsdp = False

    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
        return_freed_host_memory()
    if "RANK" in os.environ:
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    else:  # plain `python generate.py`: a one-process group keeps one code path
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo", store=dist.HashStore(),
                                rank=0, world_size=1)
    cfg = WAN_CONFIGS[args.task]
    logging.info(f"Generation job args: {args}")
    config = {"__name__": cfg.name, **{k: v for k, v in vars(cfg).items() if k != "name"}}
    logging.info(f"Generation model config: {config}")
    seed = [args.base_seed if args.base_seed >= 0 else random.randint(0, sys.maxsize)]
    dist.broadcast_object_list(seed, src=0)
    args.base_seed = seed[0]
    for note in reference_notes(args, switches, device):
        logging.info(note)
    if args.prompt is None:
        args.prompt = EXAMPLE_PROMPT
    logging.info(f"Input prompt: {args.prompt}")

    logging.info("Creating WanT2V pipeline.")
    rt = Runtime(args, switches, device)
    pipe = WanT2V(cfg, args, rt)
    show = rank == 0
    logging.info("Warm up 2 steps...")
    pipe.generate(args.prompt, 2, args.base_seed, Profiler(), Profiler(), show)

    logging.info("Generating video ...")
    if switches.fail_rank == rank:
        raise RuntimeError(f"injected failure on rank {rank} (WAN_REF_FAIL_RANK)")
    step_of = lambda: rt.step  # noqa: E731
    stage_prof = Profiler(args.profile_stage, device, step_of, memory=True)
    attn_prof = Profiler(args.profile_attn, device, step_of)
    trace = None
    if args.profile_mode == "detailed":
        activities = [torch.profiler.ProfilerActivity.CPU] + ([torch.profiler.ProfilerActivity.CUDA] if rt.cuda else [])
        trace = torch.profiler.profile(activities=activities,
                                       on_trace_ready=torch.profiler.tensorboard_trace_handler(args.profile_mode_dir))
        trace.start()
    rt.sync()
    begin = time.time()
    video = pipe.generate(args.prompt, args.sample_steps, args.base_seed, stage_prof, attn_prof, show)
    rt.sync()
    end = time.time()
    if trace is not None:
        trace.stop()
    width, height = parse_size(args.size)
    run_info = dict(cache_cross_kv=int(args.cache_cross_kv), cfg_fused_forward=int(args.cfg_fused_forward),
                    frame_num=args.frame_num, height=height, width=width,
                    legacy_model_to_each_step=int(args.perf_logic == "legacy"),
                    offload_model=int(args.offload_model), sample_solver=args.sample_solver,
                    sampling_steps=args.sample_steps)
    report(stage_prof, attn_prof, run_info, args.profile_stage_file, args.profile_attn_file or args.profile_stage_file)
    logging.info(f"Generating video used time {end - begin: .4f}s")

    if rank == 0:
        if args.save_file is None:
            stamp = datetime.now().strftime("%Y%m%d_%H%M%S")
            prompt = args.prompt.replace(" ", "_").replace("/", "_")[:50]
            args.save_file = (f"{args.task}_{args.size}_{args.cfg_size}_{args.ulysses_size}_{args.ring_size}_"
                              f"{args.tp_size}_{prompt}_{stamp}.npy")
        logging.info(f"Saving generated video to {args.save_file}")
        with open(args.save_file, "wb") as f:
            np.save(f, video.cpu().numpy())
    logging.info("Finished.")
    dist.destroy_process_group()


if __name__ == "__main__":
    generate(build_parser().parse_args())
