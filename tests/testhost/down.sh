#!/usr/bin/env bash
# Stop what up.sh started: the container, sshd and (if up.sh started it) dockerd.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
state="$root/build/testhost"
docker=/usr/bin/docker; [ -x "$docker" ] || docker=docker
"$docker" rm -f mindie-wan2.1-xysheng >/dev/null 2>&1
for name in sshd dockerd; do
  if [ -f "$state/$name.pid" ]; then kill "$(cat "$state/$name.pid")" 2>/dev/null; rm -f "$state/$name.pid"; fi
done
exit 0
