"""The offline install (docs/install.md): scripts/wheelhouse.sh fills a folder with the controller's
wheels from the package index; scripts/setup.sh --wheelhouse installs from it with no index reachable.

The install runs in a network namespace without network (``unshare -n``, where this user may make
one) and always with pip pointed at an index that refuses connections, so that any index access fails
the install instead of passing unnoticed.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NO_INDEX = "http://127.0.0.1:9/simple"  # the discard port: refused at once


def run(argv, **kw):
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, stdin=subprocess.DEVNULL, **kw)


def offline_env():
    """This environment without pip's own settings, every index pointed at a refusing address."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_") and not k.lower().endswith("_proxy")}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_NO_INDEX="1", PIP_INDEX_URL=NO_INDEX, PIP_RETRIES="0",
               http_proxy=NO_INDEX, https_proxy=NO_INDEX, HTTP_PROXY=NO_INDEX, HTTPS_PROXY=NO_INDEX)
    return env


def checkout(dest):
    """What setup.sh installs from: the package, its build description and the script."""
    dest.mkdir()
    for name in ("pyproject.toml", "wanbench", "scripts"):
        src = REPO / name
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, dest / name)
    return dest


def no_network():
    """argv prefix that runs a command without network, or [] where no namespace can be made here."""
    unshare = shutil.which("unshare")
    return [unshare, "-n"] if unshare and run([unshare, "-n", "true"]).returncode == 0 else []


def test_the_controller_installs_from_a_wheelhouse_with_no_index(tmp_path):
    wheels = tmp_path / "wheels"
    built = run(["bash", REPO / "scripts/wheelhouse.sh", wheels], env={**os.environ, "PYTHON": sys.executable})
    assert built.returncode == 0, built.stderr[-3000:]
    names = {p.name.split("-")[0].lower() for p in wheels.glob("*.whl")}
    assert {"ansible_core", "setuptools", "pandas", "scipy"} <= names, names   # the build backend too
    assert "ansible" not in names                                             # no collections bundle

    repo = checkout(tmp_path / "repo")
    setup = run([*no_network(), "bash", repo / "scripts/setup.sh", "--wheelhouse", wheels], env={
        **offline_env(), "PYTHON": sys.executable})
    assert setup.returncode == 0, (setup.stdout + setup.stderr)[-3000:]
    assert "setup: done (controller from" in setup.stdout
    bin_ = repo / ".venv" / "bin"
    cli = run([bin_ / "wanbench", "--help"])
    assert cli.returncode == 0 and cli.stdout.startswith("usage: wanbench"), cli.stderr[-2000:]
    play = run([bin_ / "ansible-playbook", "--version"])
    assert play.returncode == 0 and "core 2.19" in play.stdout.splitlines()[0], play.stderr[-2000:]
    # light: ansible.builtin only, no collections; every requirement met from the wheelhouse
    assert run([bin_ / "python", "-c", "import ansible_collections"]).returncode != 0
    check = run([bin_ / "pip", "check"], env=offline_env())
    assert check.returncode == 0, check.stdout + check.stderr


@pytest.mark.parametrize("argv,line", [
    (["scripts/setup.sh", "--wheelhouse", "{empty}"],
     "setup: --wheelhouse {empty} holds no wheels (fill it with scripts/wheelhouse.sh)"),
    (["scripts/setup.sh", "--wheelhouse"], "setup: --wheelhouse needs a folder; usage: scripts/setup.sh "
                                          "[--controller] [--wheelhouse DIR] [--system-site-packages]"),
    (["scripts/setup.sh", "--bogus"], "setup: unknown option --bogus; usage: scripts/setup.sh "
                                     "[--controller] [--wheelhouse DIR] [--system-site-packages]"),
    (["scripts/wheelhouse.sh", "{empty}", "--python", "3"], "wheelhouse: --python wants a version like 3.12, got 3"),
    (["scripts/wheelhouse.sh"], "usage: scripts/wheelhouse.sh DIR [--python X.Y] [--platform TAG ...]"),
])
def test_bad_input_is_one_line_and_touches_nothing(tmp_path, argv, line):
    empty = tmp_path / "empty"
    empty.mkdir()
    repo = checkout(tmp_path / "repo")
    res = run(["bash", *[str(a).replace("{empty}", str(empty)) for a in argv]], cwd=repo, env=offline_env())
    assert res.returncode in (1, 2) and res.stderr.splitlines() == [line.replace("{empty}", str(empty))], res.stderr
    assert not (repo / ".venv").exists() and list(empty.iterdir()) == []
