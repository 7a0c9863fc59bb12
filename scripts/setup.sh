#!/usr/bin/env bash
# Install wanbench into ./.venv (docs/install.md). Re-running is cheap and safe.
#
#   scripts/setup.sh                        the development set: the controller (ansible-core 2.19, the
#                                           wanbench package and CLI), the reference workload's torch (CPU
#                                           build) and the test tools with the collections molecule needs
#   scripts/setup.sh --controller           the controller only: what ansible-playbook bench.yml and the
#                                           wanbench CLI need; the workload's Python is the host's
#   scripts/setup.sh --wheelhouse DIR       the controller from DIR's wheels only (scripts/wheelhouse.sh
#                                           fills DIR on a connected machine); no package index is used
#   --system-site-packages                  (with any, when the venv is made) the venv also sees the
#                                           packages of the Python it is made from (e.g. its torch)
#
# PYTHON=python3.12 picks the Python the venv is made from (3.11 or later).
set -euo pipefail
caller=$PWD
cd "$(dirname "$0")/.."
usage="usage: scripts/setup.sh [--controller] [--wheelhouse DIR] [--system-site-packages]"
set_=dev wheelhouse="" venv_opts=()
while [ $# -gt 0 ]; do
  case "$1" in
    --controller) set_=controller ;;
    --wheelhouse)
      [ $# -ge 2 ] || { echo "setup: --wheelhouse needs a folder; $usage" >&2; exit 2; }
      wheelhouse=$2 set_=controller; shift
      [[ "$wheelhouse" = /* ]] || wheelhouse=$caller/$wheelhouse ;;
    --system-site-packages) venv_opts+=(--system-site-packages) ;;
    -h|--help) echo "$usage"; exit 0 ;;
    *) echo "setup: unknown option $1; $usage" >&2; exit 2 ;;
  esac
  shift
done
python=${PYTHON:-python3}
"$python" -c 'import sys; sys.exit(sys.version_info[:2] < (3, 11))' \
  || { echo "setup: Python >= 3.11 required, $python is $("$python" -V 2>&1)" >&2; exit 1; }
if [ -n "$wheelhouse" ]; then
  ls "$wheelhouse"/*.whl >/dev/null 2>&1 \
    || { echo "setup: --wheelhouse $wheelhouse holds no wheels (fill it with scripts/wheelhouse.sh)" >&2; exit 1; }
fi
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv "${venv_opts[@]}" .venv
  # A Python that is itself a venv (e.g. the image's one that holds torch) lends its packages
  # through a .pth file: a venv made from it would otherwise see only its base Python's.
  if [ ${#venv_opts[@]} -gt 0 ]; then
    "$python" -c 'import site, sys; sys.prefix != sys.base_prefix and print(*site.getsitepackages(), sep="\n")' \
      > "$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/host-site-packages.pth"
  fi
fi
pip=(.venv/bin/pip install -q)
if [ -n "$wheelhouse" ]; then
  # --isolated: this host's pip configuration (indexes, find-links, constraints) plays no part.
  .venv/bin/pip --isolated install -q --no-index --find-links "$wheelhouse" -e .
elif [ "$set_" = controller ]; then
  "${pip[@]}" --upgrade pip
  "${pip[@]}" -e .
else
  "${pip[@]}" --upgrade pip
  "${pip[@]}" -e '.[workload,dev]'
  # The molecule scenarios' docker driver needs community.docker (with its dependency) and
  # ansible.posix. Galaxy may be out of reach; PyPI's `ansible` package (12.x pairs with ansible-core
  # 2.19) carries them among ~470 MB of other collections: unpack only these three from its wheel.
  if ! .venv/bin/ansible-galaxy collection list community.docker 2>/dev/null | grep -q community.docker; then
    tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
    .venv/bin/pip download -q --no-deps --only-binary=:all: -d "$tmp" 'ansible>=12,<13'
    .venv/bin/python - "$tmp"/ansible-*.whl <<'PY'
import sys, sysconfig, zipfile
keep = tuple(f"ansible_collections/{name}/" for name in
             ("community/docker", "community/library_inventory_filtering_v1", "ansible/posix"))
with zipfile.ZipFile(sys.argv[1]) as wheel:
    wheel.extractall(sysconfig.get_paths()["purelib"], [n for n in wheel.namelist() if n.startswith(keep)])
PY
  fi
fi
if [ "$set_" = dev ]; then
  # GNU time measures real_time (REAL_TIME_SECONDS) around every run.
  if [ ! -x /usr/bin/time ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q time >/dev/null
  fi
  # Headless Chromium renders report.html in the tests (Debian's package; screenshots only).
  if ! command -v chromium >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null
  fi
fi
[ -x /usr/bin/time ] || echo "setup: warning: /usr/bin/time (GNU time) is missing on this host; runs here need it for real_time" >&2
echo "setup: done ($set_${wheelhouse:+ from $wheelhouse}). Activate with: . .venv/bin/activate"
