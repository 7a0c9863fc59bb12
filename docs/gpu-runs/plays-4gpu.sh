#!/usr/bin/env bash
# The plays of docs/gpu-runs/PLAN-4gpu.md on this host's CUDA GPUs through ansible-playbook
# (inventory/cuda-local), one after the other, each play's wall time in build/plays/times.txt,
# then `wanbench share` over each play's runs into build/plays/share-<play>/.
#
#   SET=combined (default): one play, aa,nofsdp,ffn_only against shared controls, repeats 2 (one ABBA pair)
#                           (1 warm-up + 3 blocks of 4 runs = 13 runs)
#   SET=issue:              issue 22's three plays: ffn_only (repeats 3), nofsdp (repeats 3),
#                           aa (repeats auto, max_runs 6): 26 to 34 runs (odd repeats run as the next even)
# Start it detached (setsid ... &) and read build/plays/*.log; it survives the shell that started it.
set -uo pipefail
cd "$(dirname "$0")/../.."
mkdir -p build/plays
case "${SET:-combined}" in
  combined) plays=("combined|-e variant=aa,nofsdp,ffn_only -e repeats=2") ;;
  issue) plays=("ffn_only|-e variant=ffn_only -e repeats=3" "nofsdp|-e variant=nofsdp -e repeats=3"
                "aa|-e variant=aa -e repeats=auto -e max_runs=6") ;;
  *) echo "plays-4gpu: SET must be combined or issue, got $SET" >&2; exit 2 ;;
esac
for entry in "${plays[@]}"; do
  name=${entry%%|*}; read -ra args <<<"${entry#*|}"
  start=$(date +%s)
  echo "$(date -u +%FT%TZ) start $name: ${args[*]}" >>build/plays/times.txt
  .venv/bin/ansible-playbook -i inventory/cuda-local bench.yml "${args[@]}" >"build/plays/$name.log" 2>&1
  rc=$?
  echo "$(date -u +%FT%TZ) end $name: rc $rc, $(( $(date +%s) - start )) s" >>build/plays/times.txt
done
# Each play's runs (results/<host>/<run_id>/manifest.json: play_id, role, warm-up flag) -> share.
.venv/bin/python - <<'PY' >build/plays/share-args.txt
import json, pathlib
plays = {}
for m in sorted(pathlib.Path("results").glob("*/*/manifest.json")):
    d = json.loads(m.read_text())
    if d.get("platform") != "cuda" or (d.get("schedule") or {}).get("warmup"):
        continue
    side = "--baseline " if d.get("role") == "control" else ""
    plays.setdefault(d.get("play_id", ""), []).append(side + str(m.parent))
for play, runs in plays.items():
    print(play, *runs)
PY
while read -r play runs; do
  # shellcheck disable=SC2086  # runs: "--baseline DIR" pairs and DIRs, no spaces in the paths
  .venv/bin/wanbench share --out "build/plays/share-$play" $runs >>build/plays/share.log 2>&1 \
    && echo "share $play: build/plays/share-$play" >>build/plays/times.txt
done <build/plays/share-args.txt
echo "$(date -u +%FT%TZ) all done" >>build/plays/times.txt
