"""wanbench.inventory: one host's inventory settings and catalog, checked alike by the validate play and `wanbench validate`."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from wanbench import inventory

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ENV = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "PYTHONPATH": str(REPO),
       "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_FORCE_COLOR": "0", "NO_COLOR": "1"}


@pytest.fixture(scope="module")
def production():
    """The production inventory's variables, templated as a play would see them."""
    hosts = inventory.load(str(REPO / "inventory/production"), str(REPO / "playbooks"))
    assert list(hosts) == ["npu"]
    return hosts["npu"]


def test_the_shipped_inventories_pass(production):
    assert inventory.problems("npu", production) == []
    for name in ("local", "testhost", "cuda-local", "cuda-remote"):
        for host, values in inventory.load(str(REPO / "inventory" / name), str(REPO / "playbooks")).items():
            assert inventory.problems(host, values) == [], name


@pytest.mark.parametrize("change,line", [
    ({"wanbench_repo_dir": "relative/path"}, "wanbench_repo_dir must be an absolute path, got 'relative/path'"),
    ({"wanbench_run_root": ""}, "wanbench_run_root must be an absolute path, got ''"),
    ({"wanbench_results_dir": "results"}, "wanbench_results_dir must be an absolute path, got 'results'"),
    ({"wanbench_model_dir": "models"}, "wanbench_model_dir must be an absolute path, got 'models'"),
    ({"wanbench_platform": "tpu"}, "wanbench_platform must be one of npu, cuda, reference, got 'tpu'"),
    ({"wanbench_container": "bad name"}, "wanbench_container 'bad name' is not a docker container name"),
    ({"wanbench_git_branch": ""}, "wanbench_git_remote and wanbench_git_branch are needed when wanbench_repo_fetch is on"),
    ({"wanbench_repo_fetch": "maybe"}, "wanbench_repo_fetch must be true or false, got 'maybe'"),
    ({"wanbench_required_commits": "abc"}, "wanbench_required_commits must be a list of commits (SHA or ref), got 'abc'"),
    ({"wanbench_job_timeout": "0"}, "wanbench_job_timeout must be a positive whole number of seconds, got '0'"),
    ({"wanbench_job_timeout": "inf"}, "wanbench_job_timeout must be a positive whole number of seconds, got 'inf'"),
    ({"wanbench_job_timeout": 1.5}, "wanbench_job_timeout must be a positive whole number of seconds, got 1.5"),
    ({"wanbench_min_free_gb": -1}, "wanbench_min_free_gb must be a number of GiB (0 or more), got -1"),
    ({"wanbench_visible_devices": "0,1"},
     "wanbench_visible_devices must list 4 device ids (one per process, e.g. \"0,1,2,3\") on platform npu, got '0,1'"),
    ({"wanbench_visible_devices": "0, 1, 2, 3"}, "wanbench_visible_devices must list 4 device ids"),
])
def test_each_bad_setting_is_one_line_naming_host_and_variable(production, change, line):
    got = inventory.problems("npu", {**production, **change})
    assert len(got) == 1 and got[0].startswith(f"inventory of npu: {line}"), got


def test_values_as_given_with_e_pass(production):
    # -e wanbench_repo_fetch=false -e wanbench_job_timeout=600 arrive as strings
    assert inventory.problems("npu", {**production, "wanbench_repo_fetch": "false", "wanbench_git_branch": "",
                                      "wanbench_job_timeout": "600", "wanbench_min_free_gb": "0.5"}) == []


def test_device_count_follows_the_platform_settings(production):
    # the platform's own nproc counts, not the common one (the Jinja check read wanbench_common.nproc)
    cat = production["wanbench_catalog"]
    two = {**cat, "platform_settings": {**cat["platform_settings"], "npu": {"nproc": 2, "ulysses_size": 2}}}
    assert inventory.problems("npu", {**production, "wanbench_catalog": two,
                                      "wanbench_visible_devices": "0,1"}) == []
    got = inventory.problems("npu", {**production, "wanbench_catalog": two})
    assert got == ["inventory of npu: wanbench_visible_devices must list 2 device ids (one per process, e.g. \"0,1\") "
                   "on platform npu, got '0,1,2,3'"]
    # the reference platform runs without devices
    assert inventory.problems("npu", {**production, "wanbench_platform": "reference", "wanbench_visible_devices": ""}) == []


def test_catalog_problems_name_the_catalog(production):
    cat = production["wanbench_catalog"]
    common = {**cat["common"], "frame_num": 80}
    got = inventory.problems("npu", {**production, "wanbench_catalog": {**cat, "common": common}})
    assert got == ["catalog of npu: wanbench_common.frame_num: 80 is not 4n+1"]
    settings = {**cat["platform_settings"], "npu": {"frame_num": 6}}
    assert inventory.problems("npu", {**production, "wanbench_catalog": {**cat, "platform_settings": settings}}) == [
        "catalog of npu: wanbench_platform_settings.npu.frame_num: 6 is not 4n+1"]


def test_unset_and_untemplatable_variables_are_named(production):
    values = {k: v for k, v in production.items() if k != "wanbench_run_root"}
    assert inventory.problems("npu", values) == [
        "inventory of npu: wanbench_run_root not set (are group_vars/all/site.yml and catalog.yml loaded? "
        "run from the repository root)"]
    values = {**production, "wanbench_model_dir": inventory.TemplateFailed("'nope' is undefined")}
    assert inventory.problems("npu", values) == ["inventory of npu: wanbench_model_dir cannot be templated: 'nope' is undefined"]


# ------------------------------------------------------------------ the play and the CLI agree
BAD_INVENTORY = """\
wanbench_platform: npu
wanbench_repo_dir: relative/Wan2.1
wanbench_run_root: "{{ wanbench_repo_dir }}/runs"
wanbench_visible_devices: "0,1,2,3"
wanbench_job_timeout: 0
wanbench_platform_settings: {npu: {nproc: 2, ulysses_size: 2}}
"""
EXPECTED = [
    "inventory of npu: wanbench_repo_dir must be an absolute path, got 'relative/Wan2.1'",
    "inventory of npu: wanbench_run_root must be an absolute path, got 'relative/Wan2.1/runs'",
    "inventory of npu: wanbench_job_timeout must be a positive whole number of seconds, got 0",
    "inventory of npu: wanbench_visible_devices must list 2 device ids (one per process, e.g. \"0,1\") on platform npu,"
    " got '0,1,2,3'",
]


def bad_inventory(tmp_path, group_vars):
    (tmp_path / "group_vars").mkdir()
    (tmp_path / "hosts.yml").write_text((REPO / "inventory/production/hosts.yml").read_text())
    (tmp_path / "group_vars/wanbench.yml").write_text(group_vars)
    return tmp_path


def run(*argv):
    return subprocess.run(list(map(str, argv)), cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)


def test_the_play_and_the_cli_fail_alike_on_a_bad_inventory(tmp_path):
    inv = bad_inventory(tmp_path, BAD_INVENTORY)
    play = run(BIN / "ansible-playbook", "-i", inv, "playbooks/validate.yml", "-e", "variant=ffn_only")
    errors = [ln for ln in (play.stdout + play.stderr).splitlines() if ln.startswith("[ERROR]: ")]
    assert play.returncode != 0 and errors == ["[ERROR]: Task failed: Action failed: " + " | ".join(EXPECTED)], \
        (play.stdout + play.stderr)[-3000:]
    cli = run(sys.executable, "-m", "wanbench", "validate", "-i", inv)
    assert cli.returncode == 2 and cli.stdout == ""
    assert cli.stderr.splitlines() == [f"wanbench: {line}" for line in EXPECTED]


def test_the_cli_passes_a_good_inventory_and_names_a_missing_one(tmp_path):
    ok = run(sys.executable, "-m", "wanbench", "validate", "-i", "inventory/production")
    assert (ok.returncode, ok.stdout, ok.stderr) == (0, "inventory/production: npu: inventory and catalog ok\n", "")
    gone = run(sys.executable, "-m", "wanbench", "validate", "-i", tmp_path / "nope")
    assert (gone.returncode, gone.stderr) == (2, f"wanbench: -i {tmp_path / 'nope'}: no such inventory\n")
