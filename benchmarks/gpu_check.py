"""Machine state and output check on the GPUs of one host, without Ansible (docs/health.md).

From the repository root on a host with CUDA GPUs and PyTorch::

    python3 benchmarks/gpu_check.py --out /tmp/gpu-check

1. captures the device snapshot and environment with the commands of
   ``wanbench.devices.capture_plan("cuda")`` (as the run script does, into
   <out>/<arm>/health/<phase>/<name>.out|.err|.rc, before and after each run);
2. runs the reference workload (reference/generate.py) with torchrun on every
   GPU (``--nproc``) at a small shape and a fixed ``--base_seed``, three arms:
   ``baseline`` (FSDP wrap mode block), ``ffn_only`` (a real variant: only the
   FSDP wrap switch changes) and ``perturbed`` (the baseline with
   ``WAN_REF_PERTURB``, which changes the output on purpose);
3. scores each candidate's output against the baseline's with the file's own
   ``wanbench/outputs.py`` run as the play runs it (``python -c``), writes
   output_check.json, and prints the parsed snapshots, the judge's reasons,
   the scores and flags, and the verdict lines of ``wanbench.report``.

Exit 0 when every run finished and ffn_only kept the output while perturbed
changed it; 1 otherwise (the printout says why).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from wanbench import devices, manifest, outputs, play, report  # noqa: E402  (the checkout's package, no install)
from wanbench.parse import parse_run  # noqa: E402

ARMS = {  # arm -> (role, environment switches); every arm runs the baseline's flags
    "baseline": ("control", {"WAN_FSDP_WRAP_MODE": "block"}),
    "ffn_only": ("candidate", {"WAN_FSDP_WRAP_MODE": "ffn_only"}),
    "perturbed": ("candidate", {"WAN_FSDP_WRAP_MODE": "block", "WAN_REF_PERTURB": "5e-2"}),
}
SWITCHES = {"WAN_A2A_FENCE": "0", "WAN_A2A_EVENT_GATE": "0", "WAN_FSDP_ALLGATHER_WAIT_A2A": "0",
            "WAN_FSDP_RESHARD_AFTER_FORWARD": "1", "WAN_FSDP_BLOCK_GROUP_SIZE": "1"}
# NVLink multicast off (the lent GPU machines' rule); harmless elsewhere.
NCCL = {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1", "NVSHMEM_DISABLE_NVLS": "1"}


def capture(folder, python):
    """Run the workload-side capture commands, raw files as the run script writes them."""
    folder.mkdir(parents=True, exist_ok=True)
    for cmd in devices.workload_plan("cuda", python=python) + devices.host_plan("cuda", "", python=python):
        try:
            proc = subprocess.run(cmd["argv"], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
            rc, out, err = proc.returncode, proc.stdout, proc.stderr
        except (OSError, subprocess.TimeoutExpired) as exc:
            rc, out, err = 127, "", f"{cmd['argv'][0]}: {exc}\n"
        (folder / f"{cmd['name']}.out").write_text(out)
        (folder / f"{cmd['name']}.err").write_text(err)
        (folder / f"{cmd['name']}.rc").write_text(f"{rc}\n")


def run_arm(out, arm, args, port):
    role, switches = ARMS[arm]
    run_dir = out / arm
    run_dir.mkdir(parents=True, exist_ok=True)
    save = run_dir / "output.npy"
    argv = [args.python, "-m", "torch.distributed.run", f"--nproc_per_node={args.nproc}", "--master_addr",
            "127.0.0.1", "--master_port", str(port), str(REPO / "reference" / "generate.py"),
            "--task", args.task, "--size", args.size, "--frame_num", str(args.frames), "--sample_steps", str(args.steps),
            "--ulysses_size", str(args.nproc), "--dit_fsdp", "--t5_fsdp", "--vae_parallel", "--serialize_comm",
            "--profile_stage", "--profile_attn", "--profile_stage_file", str(run_dir / "perf.csv"),
            "--base_seed", str(args.seed), "--prompt", "A boy plays piano.", "--save_file", str(save)]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WAN_", "ALGO"))}
    env.update({**NCCL, **SWITCHES, **switches})
    (run_dir / "manifest.json").write_text(json.dumps({
        "variant": arm, "role": role, "platform": "cuda", "argv": argv, "control_key": "fsdp:profiled",
        "env": {**SWITCHES, **switches}}, indent=2) + "\n")
    capture(run_dir / devices.HEALTH_DIR / "before", args.python)
    start = time.monotonic()
    with open(run_dir / "run.log", "wb") as log:
        rc = subprocess.run(argv, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            timeout=args.timeout).returncode
    wall = time.monotonic() - start
    capture(run_dir / devices.HEALTH_DIR / "after", args.python)
    (run_dir / "time.txt").write_text(f"REAL_TIME_SECONDS={wall:.2f}\n")
    (run_dir / "exit_code").write_text(f"{rc}\n")
    return run_dir, rc, wall


def score_outputs(out, args):
    """The play's output check: outputs.py's text through `python -c`, one JSON argument."""
    pairs = [{"id": arm, "control": str(out / "baseline" / "output.npy"), "candidate": str(out / arm / "output.npy")}
             for arm in ARMS if ARMS[arm][0] == "candidate"]
    proc = subprocess.run([args.python, "-I", "-c", (REPO / "wanbench" / "outputs.py").read_text(), json.dumps(pairs)],
                          capture_output=True, text=True, timeout=600)
    for rec in play.output_records([{**p, "candidate_run": p["id"], "control_run": "baseline",
                                       "dest": str(out / p["id"] / manifest.OUTPUT_CHECK)} for p in pairs],
                                     proc.stdout if proc.returncode == 0 else ""):
        Path(rec["dest"]).write_text(json.dumps(rec["content"], indent=2) + "\n")
    if proc.returncode != 0:
        print(f"output check failed: {proc.stderr.strip()[-500:]}")


def show_snapshot(name, snap):
    v = snap["versions"]
    print(f"  {name}: status {snap['status']}" + (f" ({'; '.join(snap['errors'])})" if snap["errors"] else ""))
    for d in snap["devices"]:
        clocks = d.get("clocks") or {}
        print(f"    GPU {d['index']} {d['name']}: util {d['util_pct']} %, mem {d['mem_used_mb']}/{d['mem_total_mb']} MB,"
              f" {d['temp_c']} C, {d['power_w']} W, SM {clocks.get('sm_mhz')} MHz, mem {clocks.get('mem_mhz')} MHz,"
              f" clock events {d['throttle'] or 'none'}, health {d['health']}")
    procs = snap["processes"]
    print(f"    other processes: {'not read' if procs is None else procs or 'none'}")
    print("    " + ", ".join(f"{k} {v[k]}" for k in ("driver", "cuda", "torch", "torch_cuda", "numpy", "python",
                                                     "kernel", "governor") if v.get(k)))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, type=Path, help="folder for the run directories (created)")
    p.add_argument("--python", default=sys.executable, help="Python with torch (default: this one)")
    p.add_argument("--nproc", type=int, default=4, help="GPUs = ranks (default 4)")
    p.add_argument("--task", default="t2v-tiny", help="size preset of the reference workload (default t2v-tiny)")
    p.add_argument("--size", default="256*256", help="W*H (default 256*256)")
    p.add_argument("--frames", type=int, default=17, help="frames, 4n+1 (default 17)")
    p.add_argument("--steps", type=int, default=10, help="sampling steps (default 10)")
    p.add_argument("--seed", type=int, default=42, help="--base_seed of every arm (default 42)")
    p.add_argument("--min-psnr-db", type=float, default=60.0,
                   help="PSNR at or above which an output counts as the same (group_vars: 60)")
    p.add_argument("--timeout", type=int, default=600, help="seconds a run may take (default 600)")
    args = p.parse_args(argv)
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    ok = True
    for port, arm in enumerate(ARMS, start=29650):
        run_dir, rc, wall = run_arm(out, arm, args, port)
        print(f"{arm}: exit {rc} after {wall:.1f} s ({run_dir})")
        ok &= rc == 0
    score_outputs(out, args)

    runs = {arm: parse_run(out / arm) for arm in ARMS}
    print("\n== device snapshots (wanbench.devices.snapshot), baseline run")
    for phase in devices.PHASES:
        show_snapshot(phase, runs["baseline"]["devices"][phase])
    print("\n== judge (reasons a run is invalid; none = fit to measure on)")
    control_env = runs["baseline"]["devices"]["before"]
    for arm, r in runs.items():
        reasons = devices.judge(r["devices"]["before"], r["devices"]["after"],
                                None if arm == "baseline" else control_env)
        print(f"  {arm}: {reasons or 'none'}")
    print(f"\n== output scores vs baseline (wanbench.outputs.score / flag at {args.min_psnr_db:g} dB)")
    flags = {}
    for arm in ("ffn_only", "perturbed"):
        score = (runs[arm]["output_check"] or {}).get("score") or {}
        flags[arm] = outputs.flag(score, args.min_psnr_db)
        print(f"  {arm}: identical {score.get('identical')}, PSNR {score.get('psnr_db')} dB, max abs diff"
              f" {score.get('max_abs_diff')}, sha256 {str(score.get('candidate_sha256'))[:16]}...;"
              f" flag: {flags[arm] or 'none (same output)'}")
    data = report.build([runs["ffn_only"], runs["perturbed"]], [runs["baseline"]], min_psnr_db=args.min_psnr_db)
    print("\n== verdicts (wanbench.report; one run a side decides nothing on time)")
    print(report.summary(data), end="")
    guard = flags["ffn_only"] is None and bool(flags["perturbed"]) and flags["perturbed"].startswith("output changed")
    print(f"\nguard: {'ok' if guard else 'NOT as expected'} (ffn_only same output, perturbed flagged)")
    return 0 if ok and guard else 1


if __name__ == "__main__":
    sys.exit(main())
