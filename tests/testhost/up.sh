#!/usr/bin/env bash
# Bring up wanbench's test host on this machine, idempotently:
#   - Debian's sshd on 127.0.0.1:$WANBENCH_TESTHOST_PORT (default 2222), login by a generated key as
#     the dedicated user wanbench-testhost: shell /bin/sh (no rc file runs at login, so nothing of this
#     machine's own shell start-up, which a killed session could leave locked), member of group docker;
#   - Debian's docker engine, started with --bridge=none --iptables=false (no private-address bridge);
#   - image wanbench/testhost:bookworm, built with debootstrap + docker import (no registry needed);
#   - a bare git repo whose branch `perf` carries reference/ at its root (remote `xys` in the container);
#   - container mindie-wan2.1-xysheng (--network none) holding a clone of it at the production path,
#     with this checkout's Python environment bind-mounted read-only and torchrun on the login PATH.
# Everything it makes lives under build/testhost/ (see down.sh to stop it).
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
state="$root/build/testhost"
port=${WANBENCH_TESTHOST_PORT:-2222}
image=wanbench/testhost:bookworm
user=wanbench-testhost            # ansible_user of inventory/testhost
home=/var/lib/$user
container=mindie-wan2.1-xysheng
venv="$root/.venv"
mkdir -p "$state"

log() { printf '[testhost] %s\n' "$*"; }
die() { printf '[testhost] error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (it starts sshd and dockerd)"
[ -x "$venv/bin/torchrun" ] || die "no $venv/bin/torchrun: run the README's set-up command first"

# --- packages -------------------------------------------------------------------------------
need=()
for pair in dockerd:docker.io sshd:openssh-server debootstrap:debootstrap git:git; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || [ -x "/usr/sbin/${pair%%:*}" ] || need+=("${pair#*:}")
done
[ -x /usr/bin/time ] || need+=(time)
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]}"
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >/dev/null
fi
docker=/usr/bin/docker
[ -x "$docker" ] || docker=$(command -v docker)

# --- the login user (kept by down.sh, as the image is) --------------------------------------
getent group docker >/dev/null || groupadd --system docker
if ! id "$user" >/dev/null 2>&1; then
  log "adding user $user (shell /bin/sh, group docker)"
  useradd --system --shell /bin/sh --home-dir "$home" --create-home --groups docker "$user"
fi
# Without PAM, sshd refuses an account whose password is locked ("!"), even by key: "*" is no password.
usermod --shell /bin/sh --password '*' --append --groups docker "$user"
mkdir -p -m 700 "$home/.ssh"

# --- docker engine --------------------------------------------------------------------------
if ! "$docker" info >/dev/null 2>&1; then
  log "starting dockerd"
  # Without the caller's other descriptors: a daemon that inherits the fd of `flock LOCK up.sh`
  # would hold the test host's lock for as long as it runs.
  ( for fd in /proc/$BASHPID/fd/*; do fd=${fd##*/}; [ "$fd" -gt 2 ] && eval "exec $fd>&-" 2>/dev/null; done
    exec setsid /usr/sbin/dockerd --bridge=none --iptables=false --ip6tables=false \
      --pidfile "$state/dockerd.pid" </dev/null >"$state/dockerd.log" 2>&1 ) &
  for _ in $(seq 60); do "$docker" info >/dev/null 2>&1 && break; sleep 1; done
  "$docker" info >/dev/null 2>&1 || die "dockerd did not start; see $state/dockerd.log"
fi

# --- base image -----------------------------------------------------------------------------
if ! "$docker" image inspect "$image" >/dev/null 2>&1; then
  log "building $image with debootstrap (about a minute)"
  rootfs="$state/rootfs"
  rm -rf "$rootfs"
  debootstrap --variant=minbase --include=python3,git,procps,time,ca-certificates \
    bookworm "$rootfs" http://deb.debian.org/debian >"$state/debootstrap.log" 2>&1 \
    || die "debootstrap failed; see $state/debootstrap.log"
  tar -C "$rootfs" -c . | "$docker" import -c 'CMD ["/bin/bash"]' - "$image" >/dev/null
  rm -rf "$rootfs"
fi

# --- sshd -----------------------------------------------------------------------------------
[ -f "$state/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C wanbench-testhost -f "$state/id_ed25519"
[ -f "$state/ssh_host_ed25519_key" ] || ssh-keygen -q -t ed25519 -N '' -f "$state/ssh_host_ed25519_key"
# In the user's home: sshd reads the keys as the user, who may not reach this checkout. Appended, so
# that another checkout's test host still running keeps its key.
grep -qxF "$(cat "$state/id_ed25519.pub")" "$home/.ssh/authorized_keys" 2>/dev/null \
  || cat "$state/id_ed25519.pub" >>"$home/.ssh/authorized_keys"
chown -R "$user:" "$home"
chmod 600 "$home/.ssh/authorized_keys" "$state/id_ed25519"
cat >"$state/sshd_config" <<CFG
Port $port
ListenAddress 127.0.0.1
HostKey $state/ssh_host_ed25519_key
PidFile $state/sshd.pid
AuthorizedKeysFile .ssh/authorized_keys
AllowUsers $user
PermitRootLogin no
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
AcceptEnv LANG LC_*
Subsystem sftp internal-sftp
CFG
if ! { [ -f "$state/sshd.pid" ] && kill -0 "$(cat "$state/sshd.pid")" 2>/dev/null; }; then
  log "starting sshd on 127.0.0.1:$port"
  mkdir -p /run/sshd
  /usr/sbin/sshd -f "$state/sshd_config" -E "$state/sshd.log"
  for _ in $(seq 20); do [ -f "$state/sshd.pid" ] && break; sleep 0.5; done
fi
ssh_user() { ssh -q -p "$port" -i "$state/id_ed25519" -o BatchMode=yes -o StrictHostKeyChecking=no \
  -o UserKnownHostsFile=/dev/null "$user@127.0.0.1" "$@"; }
ssh_user true \
  || die "ssh to $user@127.0.0.1:$port failed: $(tail -n 1 "$state/sshd.log" 2>/dev/null) (set WANBENCH_TESTHOST_PORT for another port)"
ssh_user "$docker" info >/dev/null 2>&1 \
  || die "$user cannot use docker over ssh: is $(ls -l /var/run/docker.sock 2>&1) in group docker? (restart dockerd)"

# --- the git remote `xys` -------------------------------------------------------------------
bash "$root/tests/testhost/push_perf.sh" >/dev/null

# --- the container --------------------------------------------------------------------------
pyprefix=$(cd "$(dirname "$(readlink -f "$venv/bin/python")")/.." && pwd)
# The .venv's inode too: a clone made again at the same path has a new .venv that the old bind mount
# does not see.
# A .venv that is a link (a worktree sharing a checkout's environment) is mounted at its target
# too: its scripts' #! lines name the target.
venv_real=$(readlink -f "$venv")
# A 16 MiB tmpfs at $tiny: a run root whose disk fills during a run (tests/integration/test_faults.py).
tiny=/root/wanbench/tiny
want="$venv|$venv_real|$pyprefix|$state|$(stat -c %i "$venv")|$tiny"
have=$("$docker" inspect -f '{{ index .Config.Labels "wanbench.mounts" }}' "$container" 2>/dev/null || true)
if [ -n "$have" ] && [ "$have" != "$want" ]; then
  log "recreating $container (mounts changed)"
  "$docker" rm -f "$container" >/dev/null
  have=""
fi
if [ -z "$have" ]; then
  log "creating container $container"
  "$docker" run -d --init --name "$container" --network none --shm-size 1g \
    --label "wanbench.mounts=$want" \
    -v "$state/wan.git:/srv/git/wan.git" \
    -v "$venv:$venv:ro" -v "$venv_real:$venv_real:ro" -v "$pyprefix:$pyprefix:ro" --tmpfs "$tiny:size=16m" \
    "$image" sleep infinity >/dev/null
  "$docker" exec -i "$container" bash -euc '
    ln -sf "$1/bin/torchrun" /usr/local/bin/torchrun
    mkdir -p /apps/sharedstorage/Wan2.1-T2V-14B /root/xysheng
    git config --global user.name wanbench-testhost
    git config --global user.email testhost@localhost
    git clone -q -o xys -b perf /srv/git/wan.git /root/xysheng/Wan2.1
  ' _ "$venv"
elif [ "$("$docker" inspect -f '{{.State.Running}}' "$container")" != true ]; then
  log "starting container $container"
  "$docker" start "$container" >/dev/null
fi
"$docker" exec "$container" bash -lc 'torchrun --help >/dev/null && git -C /root/xysheng/Wan2.1 rev-parse --short HEAD' \
  >/dev/null || die "container $container is not usable"
log "ready: ssh -p $port -i $state/id_ed25519 $user@127.0.0.1, container $container"
