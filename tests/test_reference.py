"""The reference workload (reference/generate.py): interface, switch mechanisms, outputs, CI acceptance.

Multi-rank checks run in one 4-process gloo session (torch.multiprocessing spawn) on a micro model;
the acceptance runs use torchrun with the t2v-tiny preset, as CI does.
"""

import dataclasses
import importlib.util
import os
import re
import socket
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

REFERENCE = Path(__file__).resolve().parents[1] / "reference"
_spec = importlib.util.spec_from_file_location("wan_reference_generate", REFERENCE / "generate.py")
ref = importlib.util.module_from_spec(_spec)
_write_bytecode = sys.dont_write_bytecode
_spec.loader.exec_module(ref)  # puts reference/ on sys.path, so wan_ref imports below
sys.dont_write_bytecode = _write_bytecode  # generate.py turns it off for its own process only

from torch.distributed.device_mesh import init_device_mesh  # noqa: E402
from torch.distributed.tensor import DTensor  # noqa: E402
from wan_ref.configs import WAN_CONFIGS, token_count  # noqa: E402
from wan_ref.modules import WanModel  # noqa: E402
from wan_ref.parallel import Runtime  # noqa: E402
from wan_ref.pipeline import WanT2V, _bar  # noqa: E402
from wan_ref.profiler import Profiler, attn_report, stage_report  # noqa: E402
from wan_ref.sharding import fsdp_units, materialize, shard, wrapped_names  # noqa: E402
from wan_ref.switches import SwitchError, Switches  # noqa: E402

TORCHRUN = Path(sys.executable).with_name("torchrun")
MICRO = dataclasses.replace(WAN_CONFIGS["t2v-tiny"], name="micro", dim=64, ffn_dim=128, num_heads=4, num_layers=2,
                            text_len=16, t5_dim=64, t5_ffn_dim=128, t5_heads=4, t5_layers=2, t5_vocab=300,
                            vae_channels=(8, 8, 4))
L = MICRO.num_layers
WORLD = 4


def make_args(world, *flags):
    # 48*48, 5 frames: 18 tokens, so 4-way sequence parallelism pads to 20 and masks the padding keys
    args = ref.build_parser().parse_args(["--task", "t2v-tiny", "--size", "48*48", "--frame_num", "5", *flags])
    ref.validate(args, world, switches=Switches())
    return args


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------ command line and switches

def test_unknown_flag_exits_2():
    with pytest.raises(SystemExit) as exc:
        ref.build_parser().parse_args(["--task", "t2v-tiny", "--no_such_flag"])
    assert exc.value.code == 2


def test_every_target_flag_is_accepted():
    flags = ["--task", "t2v-14B", "--size", "832*480", "--ckpt_dir", "/m", "--frame_num", "81", "--sample_steps", "20",
             "--ulysses_size", "4", "--ring_size", "1", "--cfg_size", "1", "--tp_size", "1", "--dit_fsdp", "--t5_fsdp",
             "--t5_cpu", "--vae_parallel", "--offload_model", "false", "--serialize_comm", "--cfg_fused_forward",
             "--cache_cross_kv", "--base_seed", "0", "--prompt", "p", "--save_file", "o.npy", "--quant_dit_path", "q",
             "--use_attentioncache", "--attentioncache_ratio", "1.2", "--attentioncache_interval", "4",
             "--start_step", "12", "--end_step", "37", "--use_rainfusion", "--sparsity", "0.64",
             "--sparse_start_step", "15", "--profile_stage", "--profile_stage_file", "p.csv", "--profile_attn",
             "--profile_attn_file", "a.csv", "--profile_block", "--profile_block_file", "b.csv",
             "--profile_mode", "detailed", "--profile_mode_dir", "d"]
    args = ref.build_parser().parse_args(flags)
    ref.validate(args, 4, switches=Switches())
    assert (args.sample_steps, args.ulysses_size, args.profile_mode) == (20, 4, "detailed")


@pytest.mark.parametrize("flags, world, message", [
    (["--frame_num", "6"], 4, "frame_num should be 4n+1"),
    (["--sample_steps", "0"], 4, "sample_steps should be >= 1"),
    (["--ulysses_size", "2"], 4, "should be equal to the world size"),
    (["--ulysses_size", "3"], 3, "`num_heads` must be divisible by `ulysses_size`"),
    (["--cfg_size", "3", "--ulysses_size", "1"], 3, "cfg_size only support 1 or 2"),
    (["--tp_size", "2", "--ulysses_size", "2"], 4, "tp only supported when ulysses_size == 1"),
    (["--size", "100*64"], 4, "positive multiples of 16"),
    (["--task", "t2v-14B", "--size", "64*64"], 4, "Unsupport size 64*64 for task t2v-14B"),
    (["--ulysses_size", "1", "--dit_fsdp"], 1, "not supported in non-distributed environments"),
    (["--cfg_size", "2", "--ulysses_size", "2", "--cfg_fused_forward"], 4, "--cfg_fused_forward needs cfg_size 1"),
])
def test_validation_names_the_problem(flags, world, message):
    base = ["--task", "t2v-tiny", "--size", "64*64", "--frame_num", "5", "--ulysses_size", str(world)]
    args = ref.build_parser().parse_args(base + flags)
    with pytest.raises(ValueError, match=re.escape(message)):
        ref.validate(args, world, switches=Switches())


@pytest.mark.parametrize("env, message", [
    ({}, "frame_num should be 4n+1 (n>0), but get 6"),
    ({"WAN_A2A_FENCE": "sometimes"}, "WAN_A2A_FENCE='sometimes' is not a valid value"),
])
def test_invalid_input_exits_nonzero_with_message(env, message):
    frames = "6" if not env else "5"
    proc = subprocess.run([sys.executable, str(REFERENCE / "generate.py"), "--task", "t2v-tiny", "--size", "64*64",
                           "--frame_num", frames], env={**os.environ, **env}, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode != 0
    assert message in proc.stderr


def test_switches_parse_the_branch_spellings():
    assert Switches.from_env({}) == Switches()
    sw = Switches.from_env({"WAN_A2A_FENCE": "full", "WAN_A2A_EVENT_GATE": "gate", "WAN_FSDP_ALLGATHER_WAIT_A2A": "1",
                            "WAN_FSDP_RESHARD_AFTER_FORWARD": "0", "WAN_FSDP_BLOCK_GROUP_SIZE": "2",
                            "WAN_FSDP_WRAP_MODE": "FFN_ONLY", "WAN_PACKED_QKV_A2A": "0", "ALGO": "1",
                            "WAN_FSDP_SHARDING_STRATEGY": "SHARD_GRAD_OP", "WAN_SLOW_CARD_DIAG": "1"})
    assert (sw.a2a_fence, sw.a2a_event_gate, sw.allgather_wait_a2a, sw.reshard_after_forward, sw.block_group_size,
            sw.wrap_mode, sw.packed_qkv_a2a, sw.algo, sw.sharding_strategy, sw.slow_card_diag) == (
        2, True, True, False, 2, "ffn_only", False, 1, "SHARD_GRAD_OP", True)
    assert Switches.from_env({"WAN_A2A_FENCE": "pre_qkv"}).a2a_fence == 1
    assert not Switches.from_env({"WAN_FSDP_SHARDING_STRATEGY": "SHARD_GRAD_OP"}).fsdp_reshard


@pytest.mark.parametrize("var, value", [
    ("WAN_A2A_FENCE", "3"), ("WAN_A2A_EVENT_GATE", "maybe"), ("WAN_FSDP_ALLGATHER_WAIT_A2A", "2"),
    ("WAN_FSDP_RESHARD_AFTER_FORWARD", "x"), ("WAN_FSDP_BLOCK_GROUP_SIZE", "0"), ("WAN_FSDP_BLOCK_GROUP_SIZE", "two"),
    ("WAN_FSDP_WRAP_MODE", "attn_only"), ("WAN_PACKED_QKV_A2A", "2"), ("WAN_FSDP_SHARDING_STRATEGY", "NO_SHARD"),
    ("ALGO", "2"), ("WAN_SLOW_CARD_DIAG", "x"), ("WAN_REF_FAIL_RANK", "-1"),
])
def test_unknown_switch_value_is_refused(var, value):
    with pytest.raises(SwitchError, match=var):
        Switches.from_env({var: value})


def test_cpu_notes_say_what_has_no_effect():
    args = make_args(4, "--ulysses_size", "4", "--serialize_comm", "--quant_dit_path", "q.json")
    sw = Switches(a2a_event_gate=True, allgather_wait_a2a=True, a2a_fence=1, algo=1)
    notes = "\n".join(ref.reference_notes(args, sw, torch.device("cpu")))
    for text in ["event gate: has no effect on CPU", "wait-after-A2A has no effect on CPU",
                 "--serialize_comm has no effect on CPU", "fence mode: pre_qkv_only (WAN_A2A_FENCE=1) [CPU: a barrier",
                 "memory figures are host RSS", "ignores --quant_dit_path", "ignores ALGO"]:
        assert text in notes
    cuda_notes = "\n".join(ref.reference_notes(args, sw, torch.device("cuda", 0)))
    assert "no effect" not in cuda_notes and "event gate: enabled" in cuda_notes


def test_token_count_follows_wan():
    assert token_count(WAN_CONFIGS["t2v-14B"], 832, 480, 81) == 32760


# ------------------------------------------------------------------ FSDP wrap plan

def test_fsdp_units_per_wrap_mode():
    blocks = [[f"blocks.{i}"] for i in range(4)]
    assert fsdp_units("dit", 4) == blocks + [[""]]
    assert fsdp_units("dit", 4, "block", 2) == [["blocks.0", "blocks.1"], ["blocks.2", "blocks.3"], [""]]
    assert fsdp_units("dit", 5, "block", 3) == [["blocks.0", "blocks.1", "blocks.2"], ["blocks.3", "blocks.4"], [""]]
    assert fsdp_units("dit", 4, "ffn_only", 2) == [[f"blocks.{i}.ffn"] for i in range(4)] + [[""]]
    # T5: always one block per unit, whatever the DiT switches say
    assert fsdp_units("t5", 4, "ffn_only", 2) == fsdp_units("t5", 4, "block", 3) == blocks + [[""]]


# ------------------------------------------------------------------ profiler reports

def _payload(scale):
    return {"totals": {"request_total": 100.0 * scale, "denoise_loop_total": 80.0 * scale,
                       "denoise_step_total": 80.0 * scale, "vae_decode": 5.0},
            "calls": {"request_total": 1}, "call_max": {},
            "steps": {"denoise_step_total": {0: 10.0 * scale, 1: 30.0 * scale, 2: 20.0 * scale, 3: 20.0 * scale}},
            "mem": {"request_total": [1048576.0 * scale, 2097152.0 * scale, 0.0]},
            "request_peak": [1048576.0 * scale, 3145728.0 * scale]}


def test_stage_report_reduces_over_ranks():
    log, rec = stage_report([_payload(1), _payload(2)], dict(frame_num=81, width=832, height=480))
    assert log[:4] == ["==== Stage Totals (ms, max_rank / avg_rank) ====", "denoise_loop_total: 160.000 / 120.000",
                       "denoise_step_total: 160.000 / 120.000", "request_total: 200.000 / 150.000"]
    assert "request_total: alloc_peak=2.0/1.5, reserved_peak=4.0/3.0, delta_alloc_peak=0.0/0.0" in log
    assert "request_peak_mem: alloc=2.0/1.5, reserved=6.0/4.5 MB" in log
    assert "denoise_share_pct: 80.000 pct" in log and "denoise_step_avg_ms: 40.000 ms" in log
    assert "top1: denoise_loop_total 160.000 ms (80.00%)" in log
    # per step: max over ranks [20, 60, 40, 40]; p50 = sorted[int(3 * 0.5)] = 40, p90 = sorted[int(3 * 0.9)] = 40
    assert "denoise_step_total: avg=40.000, p50=40.000, p90=40.000, min=20.000, max=60.000, avg_rank_avg=30.000" in log
    assert "denoise_step_total slowest 5: step1:60.000, step2:40.000, step3:40.000, step0:20.000" in log
    assert rec[0].startswith("RUN,") and rec[0].endswith(",T2V,world_size=2,frame_num=81,height=480,width=832")
    assert "MEM_REQUEST,2.000,1.500,6.000,4.500" in rec and "PERF,denoise_step_avg_ms,40.000000,ms" in rec
    assert "SLOW,denoise_step_total,step1:60.000;step2:40.000;step3:40.000;step0:20.000" in rec
    assert rec[-1] == "END"


def test_attn_report_sums_comm_per_step():
    payload = {"totals": {"attn_forward_total": 10.0, "attn_kernel": 4.0, "q_all_to_all": 1.0, "k_all_to_all": 1.0,
                          "v_all_to_all": 1.0, "out_all_to_all": 2.0},
               "calls": dict.fromkeys(["attn_forward_total", "attn_kernel", "q_all_to_all", "k_all_to_all",
                                       "v_all_to_all", "out_all_to_all"], 2),
               "call_max": {"attn_kernel": 3.0},
               "steps": {"q_all_to_all": {0: 0.5, 1: 0.5}, "k_all_to_all": {0: 0.5, 1: 0.5},
                         "v_all_to_all": {0: 0.5, 1: 0.5}, "out_all_to_all": {0: 1.0, 1: 1.0}}}
    log, rec = attn_report([payload])
    assert "attn_kernel: total=4.000/4.000, call_avg=2.000, call_max=3.000, calls=2" in log
    assert "comm_share: max_ratio=50.00%, avg_ratio=50.00%" in log
    assert "comm_total: avg=2.500, p50=2.500, p90=2.500, min=2.500, max=2.500, avg_rank_avg=2.500" in log
    assert rec[0].startswith("ATTN_RUN,") and rec[-1] == "ATTN_END" and "ATTN_RATIO,comm_share,0.500000,0.500000" in rec


def test_profiler_records_per_step_and_memory():
    step = {"now": None}
    prof = Profiler(True, torch.device("cpu"), lambda: step["now"], memory=True)
    with prof.stage("request_total"):
        for i in range(3):
            step["now"] = i
            with prof.stage("denoise_step_total"):
                torch.ones(1 << 20).sum()
        step["now"] = None
    data = prof.payload()
    assert data["calls"] == {"denoise_step_total": 3, "request_total": 1}
    assert sorted(data["steps"]) == ["denoise_step_total"] and sorted(data["steps"]["denoise_step_total"]) == [0, 1, 2]
    assert data["request_peak"][1] >= data["mem"]["request_total"][0] > 0  # VmHWM >= VmRSS
    assert Profiler().payload() is None


def test_fallback_progress_bar_writes_carriage_returns(capsys):
    assert list(_bar(3)) == [0, 1, 2]
    err = capsys.readouterr().err
    assert err.count("\r") == 4 and "100%|##########| 3/3 [" in err and err.endswith("s/it]\n")


# ------------------------------------------------------------------ multi-rank mechanisms (one spawn session)

LAYOUTS = {
    "ulysses4": ["--ulysses_size", "4"],
    "ulysses2_ring2": ["--ulysses_size", "2", "--ring_size", "2"],
    "ring4": ["--ring_size", "4"],
    "cfg2_ulysses2": ["--cfg_size", "2", "--ulysses_size", "2"],
    "cfg2_ring2": ["--cfg_size", "2", "--ring_size", "2"],
    "ulysses4_fused_cfg": ["--ulysses_size", "4", "--cfg_fused_forward"],
    "ulysses4_vae_parallel": ["--ulysses_size", "4", "--vae_parallel"],
}
U4, FSDP = ["--ulysses_size", "4"], ["--ulysses_size", "4", "--dit_fsdp", "--t5_fsdp"]
VARIANTS = {  # name: (flags, env) -- all must give the output of "ulysses4"
    "fsdp_block": (FSDP, {}),
    "fsdp_ffn_only": (FSDP, {"WAN_FSDP_WRAP_MODE": "ffn_only"}),
    "fsdp_ffn_only_group2": (FSDP, {"WAN_FSDP_WRAP_MODE": "ffn_only", "WAN_FSDP_BLOCK_GROUP_SIZE": "2"}),
    "fsdp_group2": (FSDP, {"WAN_FSDP_BLOCK_GROUP_SIZE": "2"}),
    "fsdp_reshard0": (FSDP, {"WAN_FSDP_RESHARD_AFTER_FORWARD": "0"}),
    "fsdp_shard_grad_op": (FSDP, {"WAN_FSDP_SHARDING_STRATEGY": "SHARD_GRAD_OP"}),
    "unpacked": (U4, {"WAN_PACKED_QKV_A2A": "0"}),
    "fence1": (U4, {"WAN_A2A_FENCE": "1"}),
    "fence2": (U4, {"WAN_A2A_FENCE": "2"}),
    "fence2_unpacked": (U4, {"WAN_A2A_FENCE": "2", "WAN_PACKED_QKV_A2A": "0"}),
    "serialize_gate_allgather_wait": (FSDP + ["--serialize_comm"],
                                      {"WAN_A2A_EVENT_GATE": "1", "WAN_FSDP_ALLGATHER_WAIT_A2A": "1"}),
    "cache_cross_kv": (U4 + ["--cache_cross_kv"], {}),
}


def _run(world, flags, env=None, steps=1, prompt="a cat"):
    args = make_args(world, *flags)
    rt = Runtime(args, Switches.from_env(env or {}), torch.device("cpu"))
    pipe = WanT2V(MICRO, args, rt)
    video = pipe.generate(prompt, steps, 7, Profiler(), Profiler(), False)
    return pipe, rt, video


def _session(rank, world, store, out):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    res = {}
    _, _, replica = _run(world, ["--tp_size", str(world)])  # every rank computes everything alone
    for name, flags in LAYOUTS.items():
        res[f"layout/{name}"] = _run(world, flags)[2]
    for name, (flags, env) in VARIANTS.items():
        pipe, rt, video = _run(world, flags, env)
        res[f"variant/{name}"] = video
        res[f"counters/{name}"] = dict(rt.counters)
        if "--dit_fsdp" in flags:
            blocks = pipe.model.blocks
            res[f"wrapped/{name}"] = (wrapped_names(pipe.model), wrapped_names(pipe.text_encoder))
            res[f"resharded/{name}"] = isinstance(blocks[0].ffn[0].weight, DTensor)
            if "ffn_only" not in name:
                res[f"one_unit/{name}"] = blocks[0]._get_fsdp_state() is blocks[1]._get_fsdp_state()
    # before any forward every parameter of a sharded model is a DTensor holding this rank's rows
    pipe = WanT2V(MICRO, make_args(world, *FSDP), Runtime(make_args(world, *FSDP), Switches(), torch.device("cpu")))
    res["local_params"] = sum(p.to_local().numel() for p in pipe.model.parameters())
    res["full_params"] = sum(p.numel() for p in pipe.model.parameters())
    # cache_cross_kv and the attention cache over several steps
    for name, flags in {"cross_kv_off": U4, "cross_kv_on": U4 + ["--cache_cross_kv"], "attn_cache_off": U4,
                        "attn_cache_on": U4 + ["--use_attentioncache", "--start_step", "1", "--end_step", "5",
                                               "--attentioncache_interval", "2"]}.items():
        _, rt, video = _run(world, flags, steps=5 if "attn" in name else 3)
        res[f"counters/{name}"], res[f"multi/{name}"] = dict(rt.counters), video
    rain = _run(world, U4 + ["--use_rainfusion", "--sparse_start_step", "1"], steps=2)[2]
    dense = _run(world, U4, steps=2)[2]
    res["rainfusion_diff"] = None if rank else float((rain - dense).abs().max())
    # the all-gather gate runs before FSDP's unshard of every unit once FSDP's streams exist
    args = make_args(world, *FSDP)
    rt = Runtime(args, Switches(), torch.device("cpu"))
    with torch.device("meta"):
        model = WanModel(MICRO, rt)
    calls = []  # (streams given, both blocks still sharded)
    shard(model, fsdp_units("dit", L), init_device_mesh("cpu", (world,)), True,
          gate=lambda streams: calls.append((len(streams), all(isinstance(b.ffn[0].weight, DTensor)
                                                                for b in model.blocks))))
    materialize(model, torch.device("cpu"), 0)
    x, ctx = torch.randn(1, 16, 2, 6, 6), torch.randn(1, MICRO.text_len, MICRO.t5_dim)
    with torch.no_grad():
        model(x, torch.ones(1), ctx)
        model(x, torch.ones(1), ctx)
    res["gate_calls"] = calls
    if rank == 0:
        res["replica"] = replica
        torch.save(res, out)
    dist.destroy_process_group()


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ranks")
    mp.start_processes(_session, args=(WORLD, str(tmp / "store"), str(tmp / "rank0.pt")), nprocs=WORLD,
                       start_method="spawn")
    return torch.load(tmp / "rank0.pt", weights_only=False)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_parallel_layouts_match_one_rank(session, layout):
    """Ulysses all-to-all, ring K/V all-gather, CFG parallelism, fused CFG and the parallel VAE
    compute what a rank computes alone (padding keys masked: 18 tokens on 4 ranks)."""
    assert session[f"layout/{layout}"].shape == (3, 5, 48, 48)
    torch.testing.assert_close(session[f"layout/{layout}"], session["replica"], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("variant", VARIANTS)
def test_switches_do_not_change_the_output(session, variant):
    torch.testing.assert_close(session[f"variant/{variant}"], session["layout/ulysses4"], rtol=1e-5, atol=1e-5)


def test_fsdp_wrap_mode_block_wraps_blocks_and_root(session):
    dit, t5 = session["wrapped/fsdp_block"]
    assert dit == ["", "blocks.0", "blocks.1"] and t5 == ["", "blocks.0", "blocks.1"]


def test_fsdp_wrap_mode_ffn_only_wraps_ffns_and_t5_falls_back_to_block(session):
    for name in ("fsdp_ffn_only", "fsdp_ffn_only_group2"):  # grouping applies in block mode only
        dit, t5 = session[f"wrapped/{name}"]
        assert dit == ["", "blocks.0.ffn", "blocks.1.ffn"] and t5 == ["", "blocks.0", "blocks.1"]


def test_fsdp_block_group_size_groups_dit_blocks_never_t5(session):
    dit, t5 = session["wrapped/fsdp_group2"]
    assert dit == ["", "blocks.0", "blocks.1"] and t5 == ["", "blocks.0", "blocks.1"]
    assert session["one_unit/fsdp_group2"] and not session["one_unit/fsdp_block"]  # one all-gather for both blocks


def test_fsdp_shards_parameters_over_ranks(session):
    local, full = session["local_params"], session["full_params"]
    assert full / WORLD <= local < 0.3 * full  # rank 0 also holds the rows of tiny parameters


def test_fsdp_reshard_after_forward(session):
    assert session["resharded/fsdp_block"] is True  # unit params are DTensor shards again after forward
    assert session["resharded/fsdp_reshard0"] is False  # they stay gathered
    assert session["resharded/fsdp_shard_grad_op"] is False


def test_packed_qkv_all_to_all_counts(session):
    # one request of one step = 2 DiT forwards (cond, uncond) of L blocks
    assert session["counters/fsdp_block"]["all_to_all"] == 2 * L * 2  # qkv + out
    assert session["counters/unpacked"]["all_to_all"] == 2 * L * 4  # q, k, v + out
    assert session["counters/cache_cross_kv"]["all_to_all"] == 2 * L * 2


def test_a2a_fence_counts(session):
    assert "a2a_fence" not in session["counters/fsdp_block"]
    assert session["counters/fence1"]["a2a_fence"] == 2 * L  # before the q/k/v exchange only
    assert session["counters/fence2"]["a2a_fence"] == 2 * L * 2  # before every all-to-all
    assert session["counters/fence2_unpacked"]["a2a_fence"] == 2 * L * 4


def test_allgather_gate_hook_runs_before_the_unshard(session):
    calls = session["gate_calls"]
    # 1st forward: FSDP creates its streams in the root's pre-forward, so only the L inner units are gated
    assert len(calls) == 2 * L + 1 and all(n == 2 for n, _ in calls)
    assert all(sharded for _, sharded in calls)  # a gated block still holds its shards: FSDP has not gathered yet


def test_event_gate_and_allgather_wait_are_inert_on_cpu(session):
    assert "allgather_gate" not in session["counters/serialize_gate_allgather_wait"]


def test_cache_cross_kv_computes_text_kv_once_per_branch(session):
    assert session["counters/cross_kv_off"]["cross_kv"] == 3 * 2 * L
    assert session["counters/cross_kv_on"]["cross_kv"] == 2 * L
    torch.testing.assert_close(session["multi/cross_kv_on"], session["multi/cross_kv_off"], rtol=1e-5, atol=1e-5)


def test_attention_cache_reuses_attention_on_cached_steps(session):
    # steps 0..4, window [1, 5), interval 2: steps 2 and 4 reuse, for both branches and every block
    on, off = session["counters/attn_cache_on"], session["counters/attn_cache_off"]
    assert on["attn_cache_hit"] == 2 * 2 * L and "attn_cache_hit" not in off
    assert off["all_to_all"] - on["all_to_all"] == 2 * 2 * L * 2
    assert not torch.equal(session["multi/attn_cache_on"], session["multi/attn_cache_off"])


def test_rainfusion_sparsifies_keys_from_its_start_step(session):
    assert 0 < session["rainfusion_diff"] < float("inf")


# ------------------------------------------------------------------ torchrun: failure and CI acceptance

def torchrun(tmp, nproc, flags, env=None, time_file=None):
    cmd = [str(TORCHRUN), f"--nproc_per_node={nproc}", "--master_addr", "127.0.0.1", "--master_port",
           str(free_port()), str(REFERENCE / "generate.py"), *flags]
    if time_file:
        cmd = ["/usr/bin/time", "-f", "REAL_TIME_SECONDS=%e", "-o", str(time_file)] + cmd
    run_env = {k: v for k, v in os.environ.items() if not k.startswith(("WAN_", "ALGO"))}
    with open(tmp / "run.log", "w") as log:
        return subprocess.run(cmd, cwd=tmp, env={**run_env, **(env or {})}, stdout=log, stderr=subprocess.STDOUT,
                              timeout=600).returncode


def test_rank_failure_exits_nonzero_with_traceback(tmp_path):
    rc = torchrun(tmp_path, 2, ["--task", "t2v-tiny", "--size", "32*32", "--frame_num", "5", "--sample_steps", "2",
                                "--ulysses_size", "2"], env={"WAN_REF_FAIL_RANK": "1"})
    log = (tmp_path / "run.log").read_text()
    assert rc != 0
    assert "Traceback (most recent call last)" in log and "injected failure on rank 1 (WAN_REF_FAIL_RANK)" in log
    assert "Finished." not in log


BASELINE_ENV = {"WAN_A2A_FENCE": "0", "WAN_A2A_EVENT_GATE": "0", "WAN_FSDP_ALLGATHER_WAIT_A2A": "0",
                "WAN_FSDP_RESHARD_AFTER_FORWARD": "1", "WAN_FSDP_BLOCK_GROUP_SIZE": "1", "WAN_FSDP_WRAP_MODE": "block"}
CI_VARIANTS = {"baseline": (["--dit_fsdp", "--t5_fsdp"], BASELINE_ENV),
               "nofsdp": ([], BASELINE_ENV),
               "ffn_only": (["--dit_fsdp", "--t5_fsdp"], {**BASELINE_ENV, "WAN_FSDP_WRAP_MODE": "ffn_only"})}


@pytest.fixture(scope="module")
def ci_runs(tmp_path_factory):
    """The tiny preset as CI runs it: 4 CPU ranks, 20 steps, profiled, timed by /usr/bin/time."""
    if not Path("/usr/bin/time").exists():
        pytest.fail("/usr/bin/time is missing: install the Debian package 'time' (apt-get install time)")
    root = tmp_path_factory.mktemp("ci")
    for name, (flags, env) in CI_VARIANTS.items():
        run_dir = root / name
        run_dir.mkdir()
        rc = torchrun(run_dir, 4, [
            "--task", "t2v-tiny", "--size", "128*128", "--ckpt_dir", "/unused", "--frame_num", "9",
            "--sample_steps", "20", "--ulysses_size", "4", "--vae_parallel", "--profile_stage", "--profile_attn",
            "--profile_stage_file", "perf.csv", "--serialize_comm", "--base_seed", "42",
            "--save_file", str(root / f"{name}.npy"), "--prompt", "The piano's glossy black surface", *flags],
            env=env, time_file=run_dir / "time.txt")
        (run_dir / "exit_code").write_text(f"{rc}\n")
    return root


@pytest.mark.parametrize("variant", CI_VARIANTS)
def test_ci_acceptance_metrics(ci_runs, variant):
    from wanbench.parse import parse_run

    result = parse_run(ci_runs / variant)
    assert result["status"] == "ok", result["reason"]
    assert all(v is not None for v in result["metrics"].values()), result["metrics"]
    assert set(result["metrics"]) == {"request_total", "denoise_step_avg", "attn_kernel_avg", "comm_total_avg",
                                      "qkv_all_to_all_avg", "out_all_to_all_avg", "reserved_peak", "gen_time",
                                      "real_time"}


def test_ci_memory_ordering_is_physical(ci_runs):
    from wanbench.parse import parse_run

    peak = {v: parse_run(ci_runs / v)["metrics"]["reserved_peak"] for v in ("baseline", "nofsdp")}
    assert peak["nofsdp"] > peak["baseline"], peak


def test_ci_outputs_identical_across_variants(ci_runs):
    videos = {v: np.load(ci_runs / f"{v}.npy") for v in CI_VARIANTS}
    assert videos["baseline"].shape == (3, 9, 128, 128) and np.isfinite(videos["baseline"]).all()
    assert np.allclose(videos["baseline"], videos["nofsdp"]) and np.allclose(videos["baseline"], videos["ffn_only"])


def test_ci_log_follows_the_target(ci_runs):
    log = (ci_runs / "baseline" / "run.log").read_bytes().decode()  # keep the \r of progress bars
    order = ["Generation job args: Namespace(", "Input prompt: The piano's glossy black surface",
             "Creating WanT2V pipeline.", "Warm up 2 steps...", "Generating video ...",
             "[T2V StageProfile] ==== Stage Totals (ms, max_rank / avg_rank) ====",
             "[T2V StageProfile] ==== Stage Memory (MB, max_rank / avg_rank) ====",
             "[T2V StageProfile] ==== Derived Perf Metrics (max_rank) ====",
             "[T2V StageProfile] ==== Stage Hotspots (max_rank) ====",
             "[T2V StageProfile] ==== Per-Step Breakdown (max_rank) ====",
             "[T2V AttnProfile] ==== Attention Internal Breakdown (ms) ====",
             "[T2V AttnProfile] ==== Attention Ratios ====",
             "[T2V AttnProfile] ==== Attention Per-Step Breakdown (ms, max_rank) ====",
             "Generating video used time  ", "Saving generated video to ", "Finished."]
    positions = [log.find(text) for text in order]
    assert -1 not in positions and positions == sorted(positions), dict(zip(order, positions))
    assert " 10/20 [" in log and "\r" in log  # tqdm progress
    stages = ["cfg_allgather", "denoise_loop_total", "denoise_step_total", "dit_forward", "noise_init", "request_total",
              "scheduler_setup", "scheduler_step", "text_encode_neg", "text_encode_pos", "vae_decode"]
    totals = re.findall(r"\[T2V StageProfile\] (\w+): [\d.]+ / [\d.]+$", log, re.M)
    assert totals == stages
    perf = (ci_runs / "baseline" / "perf.csv").read_text().splitlines()
    kinds = Counter(line.split(",")[0] for line in perf)
    assert (kinds["RUN"], kinds["TOTAL"], kinds["MEM"], kinds["MEM_REQUEST"], kinds["END"], kinds["ATTN_RUN"],
            kinds["ATTN_END"]) == (1, 11, 11, 1, 1, 1, 1)
    assert perf[-1] == "ATTN_END" and "ATTN_STEP,comm_total," in "\n".join(perf)
