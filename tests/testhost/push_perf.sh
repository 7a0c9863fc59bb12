#!/usr/bin/env bash
# Publish reference/ as a new commit on branch `perf` of the test host's bare repo
# (build/testhost/wan.git, the container's remote `xys`). Prints the new SHA.
# Usage: push_perf.sh [commit message]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
bare="$root/build/testhost/wan.git"
msg=${1:-"reference workload from wanbench $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)"}
[ -d "$bare" ] || git init -q --bare -b perf "$bare"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if git -C "$bare" rev-parse -q --verify refs/heads/perf >/dev/null; then
  git clone -q -b perf "$bare" "$work"
else
  git init -q -b perf "$work" && git -C "$work" remote add origin "$bare"
fi
find "$work" -mindepth 1 -maxdepth 1 ! -name .git -exec rm -rf {} +
tar -C "$root/reference" --exclude=__pycache__ -c . | tar -C "$work" -x
git -C "$work" add -A
git -C "$work" -c user.name=wanbench -c user.email=wanbench@localhost commit -q --allow-empty -m "$msg"
git -C "$work" push -q origin HEAD:perf
git -C "$work" rev-parse HEAD
