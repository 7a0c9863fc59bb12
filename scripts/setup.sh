#!/usr/bin/env bash
# Install wanbench into ./.venv: the controller (ansible-core 2.19 + collections, the wanbench
# package and CLI), the reference workload's torch (CPU build), and the test tools.
# Re-running is cheap and safe.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
"$python" -c 'import sys; sys.exit(sys.version_info[:2] < (3, 11))' \
  || { echo "setup: Python >= 3.11 required, $python is $("$python" -V 2>&1)" >&2; exit 1; }
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -e '.[workload,dev]'
# GNU time measures real_time (REAL_TIME_SECONDS) around every run.
if [ ! -x /usr/bin/time ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q time >/dev/null
fi
# Headless Chromium renders report.html in the tests (Debian's package; screenshots only).
if ! command -v chromium >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null
fi
[ -x /usr/bin/time ] || echo "setup: warning: /usr/bin/time (GNU time) is missing; install it for real_time" >&2
echo "setup: done. Activate with: . .venv/bin/activate"
