"""filter_plugins: what loading them costs, and the play filters called directly."""

import importlib.util
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError

PLUGINS = Path(__file__).resolve().parents[1] / "filter_plugins"


@pytest.mark.parametrize("plugin_file", sorted(PLUGINS.glob("*.py")), ids=lambda p: p.name)
def test_loading_a_filter_plugin_imports_no_heavy_library(plugin_file):
    """Ansible loads every filter plugin file in each worker that templates: a heavy import at
    load time (pandas: ~1 s) would be paid by every set_fact of every play."""
    code = textwrap.dedent(f"""\
        import importlib.util, sys
        spec = importlib.util.spec_from_file_location("plugin", {str(plugin_file)!r})
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        assert module.FilterModule().filters()
        print(sorted(m for m in ("pandas", "numpy", "torch") if m in sys.modules))
        """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


# ------------------------------------------------------------------ filter_plugins/wanbench_play.py
pspec = importlib.util.spec_from_file_location("wanbench_play_filters", PLUGINS / "wanbench_play.py")
play_plugin = importlib.util.module_from_spec(pspec)
pspec.loader.exec_module(play_plugin)
PLAY = play_plugin.FilterModule().filters()
RUN = {"variant": "ffn_only", "role": "candidate", "control_key": "fsdp:profiled"}
RID = "20261127T000000Z-ffn_only-abc123"


@pytest.mark.parametrize("wait,collected,failure,expected", [
    ({"run_dir": f"/r/{RID}", "done": True, "exit_code": 0, "status": "ok"}, {"run_id": RID, "path": f"/res/{RID}"}, {},
     {"status": "ok", "exit_code": 0, "path": f"/res/{RID}", "cause": ""}),
    ({"run_dir": f"/r/{RID}", "done": True, "exit_code": 1, "status": "failed", "cause": "exit code 1",
      "log_tail": ["boom"]}, {"run_id": RID, "path": f"/res/{RID}"}, {},
     {"status": "failed", "exit_code": 1, "cause": "exit code 1", "log_tail": ["boom"]}),
    ({"run_dir": f"/r/{RID}", "failed": True}, {"run_id": RID, "path": f"/res/{RID}"},
     {"status": "timeout", "cause": "still running after 4000 s", "log_tail": ["step 3/20"]},
     {"status": "timeout", "exit_code": None, "path": f"/res/{RID}", "log_tail": ["step 3/20"]}),
    # results left from the previous run of the loop are not this run's
    ({"run_dir": "/r/other", "done": True, "exit_code": 0}, {"run_id": "other", "path": "/res/other"},
     {"status": "error", "cause": "render failed"},
     {"status": "error", "exit_code": None, "path": None, "cause": "render failed"}),
    ({}, {}, {}, {"status": "not-run", "exit_code": None, "path": None}),
    ({"run_dir": f"/r/{RID}", "done": True, "exit_code": 0, "status": "ok"}, {}, {"collect_error": "tar failed"},
     {"status": "ok", "path": None, "cause": "not collected: tar failed"}),
])
def test_run_outcome(wait, collected, failure, expected):
    got = PLAY["wanbench_run_outcome"](RUN, RID, wait=wait, collected=collected, failure=failure)
    assert {k: got[k] for k in expected} == expected
    assert got["variant"] == "ffn_only" and got["role"] == "candidate" and got["control_key"] == "fsdp:profiled"
    assert got["run_id"] == RID and isinstance(got["log_tail"], list)


def test_run_outcome_refuses_what_is_not_a_run():
    with pytest.raises(AnsibleFilterError, match="expected a scheduled run"):
        PLAY["wanbench_run_outcome"]("ffn_only", RID)
    with pytest.raises(AnsibleFilterError, match="wait must be a mapping, got str"):
        PLAY["wanbench_run_outcome"](RUN, RID, wait="done")


def test_git_state():
    text = (" M generate.py\n--wanbench-log--\n"
            f"{'a' * 40} aaaaaaa Fix the gate\n{'b' * 40} bbbbbbb {'x' * 100}\n")
    got = PLAY["wanbench_git_state"](text, log_lines=8)
    assert got["sha"] == "a" * 40 and got["subject"] == "Fix the gate" and got["dirty"] is True
    assert got["log"][0] == "aaaaaaa Fix the gate" and len(got["log"][1]) == 80 and got["log"][1].endswith("...")
    assert PLAY["wanbench_git_state"]("--wanbench-log--\n") == {"sha": "", "subject": "", "dirty": False, "log": []}
    with pytest.raises(AnsibleFilterError, match="expected the command's output text"):
        PLAY["wanbench_git_state"](None)


def _health_filters():
    spec = importlib.util.spec_from_file_location("wanbench_health", PLUGINS / "wanbench_health.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.FilterModule().filters()


def test_health_filters_give_the_capture_and_refuse_bad_input_in_one_line():
    f = _health_filters()
    names = [c["name"] for c in f["wanbench_capture_plan"]("npu", python="/py")]
    assert names[:2] == ["npu_smi", "cann"] and "image" not in names
    assert [c["name"] for c in f["wanbench_host_capture_plan"]("npu", "mindie")] == ["python", "image"]
    (once,) = f["wanbench_host_capture_plan"]("npu", "", python="/py", exec_prefix=["docker", "exec", "m"])
    assert once["argv"][:4] == ["docker", "exec", "m", "/py"]
    with pytest.raises(AnsibleFilterError, match="^wanbench_host_capture_plan: exec_prefix must be an argv prefix"):
        f["wanbench_host_capture_plan"]("npu", "", exec_prefix="docker exec m")
    with pytest.raises(AnsibleFilterError, match=r"^wanbench_capture_plan: unknown platform 'gpu' \(known: npu, cuda,"
                                                  r" reference\)$"):
        f["wanbench_capture_plan"]("gpu")
    for name in ("wanbench_output_pairs", "wanbench_host_capture_records"):
        args = ({"not": "a list"},) if name != "wanbench_host_capture_records" else ({"not": "a list"}, {})
        with pytest.raises(AnsibleFilterError, match=f"^{name}: expected the list of collected runs"):
            f[name](*args)
    with pytest.raises(AnsibleFilterError, match="^wanbench_output_records: expected the list of wanbench_output_pairs$"):
        f["wanbench_output_records"]("x", "")


def test_render_run_builds_directory_command_and_manifest_in_one_call():
    import yaml

    from wanbench import catalog, command

    cat = yaml.safe_load((PLUGINS.parent / "group_vars/all/catalog.yml").read_text())
    catalog_dict = {k.removeprefix("wanbench_"): v for k, v in cat.items()}
    run = {**catalog.resolve(catalog_dict, "ffn_only", platform="cuda"), "role": "candidate",
           "control_key": "fsdp:profiled", "schedule": {"block": 2}}
    got = PLAY["wanbench_render_run"](run, RID, "/runs/", repo={"sha": "abc"}, torchrun="torchrun",
                                      model_dir="/m", devices="0,1,2,3", save_file="out.mp4", host="npu",
                                      address="", connection="ssh", container="c", platform="cuda", play_id="p1")
    run_dir = f"/runs/{RID}"
    assert (got["run_id"], got["run_dir"], got["script"]) == (RID, run_dir, f"{run_dir}/run.sh")
    assert got["master_port"] == command.master_port(RID) and 20000 <= got["master_port"] < 30000
    argv = got["command"]["argv"]
    assert argv[:6] == ["torchrun", "--nproc_per_node=4", "--master_addr", "127.0.0.1", "--master_port",
                        str(got["master_port"])]
    assert argv[argv.index("--ckpt_dir") + 1] == "/m" and argv[argv.index("--save_file") + 1] == f"{run_dir}/out.mp4"
    assert argv[argv.index("--profile_stage_file") + 1] == f"{run_dir}/perf.csv"
    assert got["command"]["env"]["CUDA_VISIBLE_DEVICES"] == "0,1,2,3"
    assert got["command_line"] == got["command"]["command_line"]
    m = got["manifest"]
    assert list(m)[:2] == ["run_id", "variant"] and list(m)[-1] == "schedule"
    assert (m["variant"], m["role"], m["steps"], m["env"], m["argv"]) == ("ffn_only", "candidate", 20,
                                                                        got["command"]["env"], argv)
    assert (m["host"], m["address"], m["connection"], m["container"], m["platform"], m["play_id"]) == (
        "npu", "npu", "ssh", "c", "cuda", "p1")
    assert (m["repo"], m["run_dir"], m["master_port"], m["schedule"]) == ({"sha": "abc"}, run_dir, got["master_port"],
                                                                         {"block": 2})
    assert len(m["rendered_at"]) == 20 and m["rendered_at"].endswith("Z")


@pytest.mark.parametrize("args,kwargs,needle", [
    (("ffn_only", RID, "/runs"), {}, "expected a scheduled run"),
    (({"variant": "x", "args": [], "env": {}, "flags": {}, "settings": {}}, RID, "/runs"), {"devcies": "0"},
     "unknown option(s) devcies"),
    (({"variant": "x", "args": [], "env": {}, "flags": {}, "settings": {}}, "", "/runs"), {},
     "run_id and run_root must not be empty"),
])
def test_render_run_refuses_bad_input(args, kwargs, needle):
    with pytest.raises(AnsibleFilterError, match=re.escape(needle)):
        PLAY["wanbench_render_run"](*args, **kwargs)


def _report(tmp_path, name, verdicts):
    out = tmp_path / name
    out.mkdir()
    (out / "report.json").write_text(json.dumps({"groups": [{"variant": v, "verdict": d} for v, d in verdicts]}))
    return {"key": name, "out": str(out), "controls": ["c"], "candidates": ["x"]}


def test_play_failures_name_lost_runs_broken_runs_and_fail_on_verdicts(tmp_path):
    """The play's end: a run not collected always fails it (naming collect.yml), a non-zero exit unless
    unhealthy is off, and only the verdicts named in fail_on; groups without runs have no report.json."""
    runs = [{"run_id": "r1", "path": "/res/r1", "exit_code": 0, "collect_error": ""},
            {"run_id": "r2", "path": None, "exit_code": 0, "collect_error": "fetched 37 files of 38"},
            {"run_id": "r3", "path": "/res/r3", "exit_code": 1, "collect_error": ""}]
    groups = [_report(tmp_path, "g1", [("ffn_only", "fail"), ("gate1", "pass")]),
              _report(tmp_path, "g2", [("nofsdp", "invalid")]),
              {"key": "g3", "out": str(tmp_path / "none"), "controls": [], "candidates": []}]
    fails = PLAY["wanbench_play_failures"]
    assert fails(runs[:1], groups) == []
    assert fails(runs, groups, fail_on="fail,invalid") == [
        "r2 not collected (fetched 37 files of 38); it stays on the host: collect it with playbooks/collect.yml",
        "runs that exited non-zero (see their run.log): /res/r3",
        f"ffn_only: verdict fail (fail_on=fail,invalid; {tmp_path / 'g1' / 'report.json'})",
        f"nofsdp: verdict invalid (fail_on=fail,invalid; {tmp_path / 'g2' / 'report.json'})"]
    assert fails(runs, groups, fail_on=["invalid"], unhealthy=False) == [
        "r2 not collected (fetched 37 files of 38); it stays on the host: collect it with playbooks/collect.yml",
        f"nofsdp: verdict invalid (fail_on=invalid; {tmp_path / 'g2' / 'report.json'})"]
    with pytest.raises(AnsibleFilterError, match=r"wanbench_play_failures: fail_on: unknown verdict\(s\) fial"):
        fails(runs, groups, fail_on="fial")
