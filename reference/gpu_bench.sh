#!/usr/bin/env bash
# The reference workload's t2v-14B preset on the CUDA GPUs of one host (832*480, 81 frames,
# Ulysses over all GPUs, profiled), run as wanbench runs a play: WARMUP discarded runs of the
# first arm, then REPEATS blocks in which every arm runs once, in the order of
# wanbench.schedule.block_orders (seeded shuffle, every second block reversed: ABBA).
# Arms: baseline, aa (the baseline again: an A/A check), nofsdp, ffn_only.
# TASK, SIZE and FRAMES size it down (e.g. TASK=t2v-1.3B, or the CPU preset with TASK=t2v-tiny
# SIZE=128*128 FRAMES=9 NGPU=4 on a host without GPUs).
# Each run leaves run.log, perf.csv, time.txt, exit_code and manifest.json (variant, role and
# schedule, as the render role writes them) in $OUT/<NN>-<arm>/, the run-directory layout that
# `wanbench compare` and `wanbench report` group; the decoded videos (~390 MB each) go to a
# scratch folder, not to $OUT.
#
#   OUT=/path/to/results [ARMS="baseline aa nofsdp"] [REPEATS=3] [WARMUP=1] [SEED=<random>] \
#       [STEPS=20] [NGPU=<all GPUs>] [PYTHON=python3] [TASK=t2v-14B] [SIZE=832*480] [FRAMES=81] \
#       reference/gpu_bench.sh
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
: "${OUT:?set OUT to the folder that receives one sub-folder per run}"
PYTHON="${PYTHON:-python3}"
STEPS="${STEPS:-20}"
NGPU="${NGPU:-$("$PYTHON" -c 'import torch; print(torch.cuda.device_count())')}"
ARMS="${ARMS:-baseline aa nofsdp}"
REPEATS="${REPEATS:-3}"
WARMUP="${WARMUP:-1}"
SEED="${SEED:-$((RANDOM * 32768 + RANDOM))}"
TASK="${TASK:-t2v-14B}"
SIZE="${SIZE:-832*480}"
FRAMES="${FRAMES:-81}"
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

mkdir -p "$OUT"
{ date -u +%Y-%m-%dT%H:%M:%SZ
  "$PYTHON" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)
for i in range(torch.cuda.device_count()): print(f"GPU {i}: {torch.cuda.get_device_name(i)}")'
} > "$OUT/device.txt"

# "<block> <arm>" per line, warm-ups first (block 0).
play="$(date -u +%Y%m%dT%H%M%SZ)-gpu"
order="$("$PYTHON" - "$ARMS" "$REPEATS" "$WARMUP" "$SEED" "$here/.." <<'EOF'
import sys
sys.path.insert(0, sys.argv[5])
from wanbench.schedule import block_orders
arms, repeats, warmup, seed = sys.argv[1].split(), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
for _ in range(warmup):
    print(0, arms[0], " ".join([arms[0]]))
for block, names in enumerate(block_orders(arms, repeats, seed), start=1):
    for name in names:
        print(block, name, " ".join(names))
EOF
)"

port=29500
position=0
while read -r block arm block_order; do
    fsdp=(--dit_fsdp --t5_fsdp)
    wrap=block
    case "$arm" in
        baseline|aa) ;;
        nofsdp) fsdp=() ;;
        ffn_only) wrap=ffn_only ;;
        *) echo "gpu_bench.sh: unknown arm $arm" >&2; exit 2 ;;
    esac
    dir="$OUT/$(printf '%02d' "$position")-$arm"
    mkdir -p "$dir"
    role=candidate
    [ "$arm" = baseline ] && role=control
    "$PYTHON" - "$dir/manifest.json" "$arm" "$role" "$play" "$SEED" "$block" "$position" "$REPEATS" \
        "$block_order" "$TASK" "$SIZE" "$FRAMES" "$STEPS" <<'EOF'
import json, socket, sys
path, arm, role, play, seed, block, position, repeats, order, task, size, frames, steps = sys.argv[1:]
json.dump({"variant": arm, "role": role, "host": socket.gethostname(), "control_key": "fsdp:profiled",
           "settings": {"task": task, "size": size, "frame_num": int(frames), "steps": int(steps)},
           "schedule": {"play": play, "seed": int(seed), "block": int(block), "position": int(position),
                        "order": order.split(), "warmup": block == "0", "repeats": int(repeats)}},
          open(path, "w"), indent=2)
EOF
    start=$(date +%s.%N)
    set +e
    (cd "$dir" && env WAN_A2A_FENCE=0 WAN_A2A_EVENT_GATE=0 WAN_FSDP_ALLGATHER_WAIT_A2A=0 \
        WAN_FSDP_RESHARD_AFTER_FORWARD=1 WAN_FSDP_BLOCK_GROUP_SIZE=1 WAN_FSDP_WRAP_MODE="$wrap" \
        "$PYTHON" -m torch.distributed.run --nproc_per_node="$NGPU" --master_addr 127.0.0.1 --master_port "$port" \
        "$here/generate.py" --task "$TASK" --size "$SIZE" --ckpt_dir unused --frame_num "$FRAMES" \
        --sample_steps "$STEPS" --ulysses_size "$NGPU" --vae_parallel "${fsdp[@]}" \
        --profile_stage --profile_attn --profile_stage_file perf.csv --serialize_comm --base_seed 42 \
        --prompt "A boy plays piano." --save_file "$scratch/$arm.npy" > run.log 2>&1)
    echo $? > "$dir/exit_code"
    set -e
    awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "REAL_TIME_SECONDS=%.2f\n", e - s }' > "$dir/time.txt"
    port=$((port + 1))
    position=$((position + 1))
    echo "== $(basename "$dir") (block $block): exit $(cat "$dir/exit_code"), $(cat "$dir/time.txt")"
    grep -hE "StageProfile\] request_total: [0-9]|request_peak_mem|used time" "$dir/run.log" || tail -n 20 "$dir/run.log"
done <<< "$order"
