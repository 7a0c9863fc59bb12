#!/usr/bin/env bash
# The reference workload's t2v-14B preset on the CUDA GPUs of one host: 832*480, 81 frames,
# Ulysses over all GPUs, profiled, for the variants baseline, nofsdp and ffn_only.
# TASK, SIZE and FRAMES size it down (e.g. TASK=t2v-1.3B, or the CPU preset with TASK=t2v-tiny
# SIZE=128*128 FRAMES=9 NGPU=4 on a host without GPUs).
# Each run leaves run.log, perf.csv, time.txt and exit_code in $OUT/<variant>/ (the run-directory
# layout wanbench parses); the decoded videos (~390 MB each) go to a scratch folder, not to $OUT.
#
#   OUT=/path/to/results [STEPS=20] [NGPU=<all GPUs>] [PYTHON=python3] [VARIANTS="baseline nofsdp ffn_only"] \
#       [TASK=t2v-14B] [SIZE=832*480] [FRAMES=81] reference/gpu_bench.sh
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
: "${OUT:?set OUT to the folder that receives one sub-folder per variant}"
PYTHON="${PYTHON:-python3}"
STEPS="${STEPS:-20}"
NGPU="${NGPU:-$("$PYTHON" -c 'import torch; print(torch.cuda.device_count())')}"
VARIANTS="${VARIANTS:-baseline nofsdp ffn_only}"
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

port=29500
for variant in $VARIANTS; do
    fsdp=(--dit_fsdp --t5_fsdp)
    wrap=block
    case "$variant" in
        baseline) ;;
        nofsdp) fsdp=() ;;
        ffn_only) wrap=ffn_only ;;
        *) echo "gpu_bench.sh: unknown variant $variant" >&2; exit 2 ;;
    esac
    dir="$OUT/$variant"
    mkdir -p "$dir"
    start=$(date +%s.%N)
    set +e
    (cd "$dir" && env WAN_A2A_FENCE=0 WAN_A2A_EVENT_GATE=0 WAN_FSDP_ALLGATHER_WAIT_A2A=0 \
        WAN_FSDP_RESHARD_AFTER_FORWARD=1 WAN_FSDP_BLOCK_GROUP_SIZE=1 WAN_FSDP_WRAP_MODE="$wrap" \
        "$PYTHON" -m torch.distributed.run --nproc_per_node="$NGPU" --master_addr 127.0.0.1 --master_port "$port" \
        "$here/generate.py" --task "$TASK" --size "$SIZE" --ckpt_dir unused --frame_num "$FRAMES" \
        --sample_steps "$STEPS" --ulysses_size "$NGPU" --vae_parallel "${fsdp[@]}" \
        --profile_stage --profile_attn --profile_stage_file perf.csv --serialize_comm --base_seed 42 \
        --prompt "A boy plays piano." --save_file "$scratch/$variant.npy" > run.log 2>&1)
    echo $? > "$dir/exit_code"
    set -e
    awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "REAL_TIME_SECONDS=%.2f\n", e - s }' > "$dir/time.txt"
    port=$((port + 1))
    echo "== $variant: exit $(cat "$dir/exit_code"), $(cat "$dir/time.txt")"
    grep -hE "StageProfile\] request_total: [0-9]|request_peak_mem|used time" "$dir/run.log" || tail -n 20 "$dir/run.log"
done
