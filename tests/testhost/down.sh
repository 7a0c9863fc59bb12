#!/usr/bin/env bash
# Stop what up.sh started: the container, sshd with its open sessions and (if up.sh started it)
# dockerd; then remove up.sh's state, build/testhost (and build/ when that leaves it empty).
# The image stays in the docker engine's store, so the next up.sh needs no debootstrap.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
state="$root/build/testhost"
docker=/usr/bin/docker; [ -x "$docker" ] || docker=docker
"$docker" rm -f mindie-wan2.1-xysheng >/dev/null 2>&1
for name in sshd dockerd; do
  [ -f "$state/$name.pid" ] || continue
  pid=$(cat "$state/$name.pid")
  [ "$name" = sshd ] && pkill -P "$pid" 2>/dev/null  # the sessions it forked (clients' ssh masters then end)
  kill "$pid" 2>/dev/null
  for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done  # dockerd stops its engine first
done
rm -rf "$state"
rmdir "$root/build" 2>/dev/null
exit 0
