#!/usr/bin/env bash
# Fill DIR with the wheels of the wanbench controller for another machine, on a machine that reaches
# a package index (docs/install.md). Carry DIR over, then there: scripts/setup.sh --wheelhouse DIR.
#
#   scripts/wheelhouse.sh DIR [--python 3.12] [--platform manylinux_2_28_x86_64 ...]
#
# --python: the target's Python version (default: this python3's); --platform (repeatable): the
# target's wheel platform tags (default: the manylinux tags of x86-64 Linux with glibc 2.17 or later).
# DIR gets the controller's dependencies (pyproject.toml) and the build backend (setuptools) that
# builds this checkout there; binary wheels only, so nothing is compiled on the target.
set -euo pipefail
caller=$PWD
cd "$(dirname "$0")/.."
usage="usage: scripts/wheelhouse.sh DIR [--python X.Y] [--platform TAG ...]"
dir="" version="" platforms=()
while [ $# -gt 0 ]; do
  case "$1" in
    --python) [ $# -ge 2 ] || { echo "wheelhouse: --python needs a version; $usage" >&2; exit 2; }; version=$2; shift ;;
    --platform) [ $# -ge 2 ] || { echo "wheelhouse: --platform needs a tag; $usage" >&2; exit 2; }; platforms+=("$2"); shift ;;
    -h|--help) echo "$usage"; exit 0 ;;
    -*) echo "wheelhouse: unknown option $1; $usage" >&2; exit 2 ;;
    *) [ -z "$dir" ] || { echo "wheelhouse: one folder only; $usage" >&2; exit 2; }; dir=$1 ;;
  esac
  shift
done
[ -n "$dir" ] || { echo "$usage" >&2; exit 2; }
[[ "$dir" = /* ]] || dir=$caller/$dir
python=${PYTHON:-python3}
version=${version:-$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')}
[[ "$version" =~ ^3\.[0-9]+$ ]] || { echo "wheelhouse: --python wants a version like 3.12, got $version" >&2; exit 2; }
[ ${#platforms[@]} -gt 0 ] || platforms=(manylinux2014_x86_64 manylinux_2_17_x86_64 manylinux_2_28_x86_64)
# The requirements: the project's dependencies as pyproject.toml lists them, and its build backend.
mapfile -t reqs < <("$python" - <<'PY'
import tomllib
with open("pyproject.toml", "rb") as f:
    project = tomllib.load(f)
print(*project["project"]["dependencies"], *project["build-system"]["requires"], sep="\n")
PY
)
mkdir -p "$dir"
"$python" -m pip download -q --only-binary=:all: --implementation cp --python-version "$version" \
  "${platforms[@]/#/--platform=}" -d "$dir" "${reqs[@]}"
echo "wheelhouse: $(ls "$dir"/*.whl | wc -l) wheels for Python $version (${platforms[*]}) in $dir"
