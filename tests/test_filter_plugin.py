"""filter_plugins/wanbench_metrics.py: called directly, and from a real playbook."""

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError

PLUGINS = Path(__file__).resolve().parents[1] / "filter_plugins"
spec = importlib.util.spec_from_file_location("wanbench_metrics", PLUGINS / "wanbench_metrics.py")
plugin = importlib.util.module_from_spec(spec)
spec.loader.exec_module(plugin)
FILTERS = plugin.FilterModule().filters()
NAMES = ["wanbench_parse", "wanbench_diff", "wanbench_verdict", "wanbench_table"]


def ansible(tool, *args, cwd):
    path = os.path.join(os.path.dirname(sys.executable), tool)
    if not os.path.exists(path):
        pytest.skip(f"{path} not installed")
    env = {**os.environ, "ANSIBLE_FILTER_PLUGINS": str(PLUGINS), "ANSIBLE_HOME": str(cwd / ".ansible"),
           "ANSIBLE_LOCALHOST_WARNING": "false", "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false"}
    return subprocess.run([path, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture
def sample_runs(samples):
    return [FILTERS["wanbench_parse"](str(samples / f"run_sample_{n}.log")) for n in ("baseline", "variant")]


def test_filters_are_registered():
    assert sorted(FILTERS) == sorted(NAMES)


def test_direct_calls(sample_runs):
    baseline, variant = sample_runs
    assert (baseline["status"], baseline["metrics"]["reserved_peak"]) == ("ok", 19792.0)
    assert FILTERS["wanbench_diff"](baseline, variant)["request_total"] == pytest.approx(-1.34146313758383, rel=1e-12)
    verdict = FILTERS["wanbench_verdict"](baseline, [variant, variant], noise_pct="2", reserved_tolerance_pct=0)
    assert verdict["verdict"] == "fail"
    assert verdict["reasons"][:3] == ["candidate: mean of 2 runs", "reserved_peak +0.28 % > 0.00 % tolerance",
                                      "request_total -1.34 % within the 2.00 % noise threshold"]
    table = json.loads(FILTERS["wanbench_table"]([variant], baseline=baseline, fmt="json"))
    assert [r["verdict"] for r in table["rows"]] == ["baseline", "pass"]


@pytest.mark.parametrize("name, args, kwargs, message", [
    ("wanbench_parse", (["a.log"],), {}, "wanbench_parse: the input must be a path, got list"),
    ("wanbench_diff", ("a.log", "RUN"), {}, "wanbench_diff: the baseline must be a run from wanbench_parse"
                                            " or a non-empty list of them, got str"),
    ("wanbench_verdict", ("RUN", []), {}, "wanbench_verdict: the candidate must be a run from wanbench_parse"
                                          " or a non-empty list of them, got list"),
    ("wanbench_verdict", ("RUN", "RUN"), {"noise_pct": "lots"},
     "wanbench_verdict: noise_pct must be a number >= 0, got 'lots'"),
    ("wanbench_verdict", ("RUN", "RUN"), {"reserved_tolerance_pct": -1},
     "wanbench_verdict: reserved_tolerance_pct must be a number >= 0, got -1"),
    ("wanbench_table", ("RUN",), {}, "wanbench_table: the input must be a list of runs from wanbench_parse, got dict"),
    ("wanbench_table", (["RUN"],), {"baseline": ["RUN"]},
     "wanbench_table: baseline must be a run from wanbench_parse, got list"),
    ("wanbench_table", (["RUN"],), {"fmt": "html"}, "wanbench_table: fmt must be one of md, csv, json, got 'html'"),
])
def test_bad_input_raises_filter_error(sample_runs, name, args, kwargs, message):
    args = tuple(sample_runs[0] if a == "RUN" else [sample_runs[0]] if a == ["RUN"] else a for a in args)
    with pytest.raises(AnsibleFilterError) as error:
        FILTERS[name](*args, **kwargs)
    assert error.value.message == message


def test_filters_in_a_playbook(tmp_path, samples):
    (tmp_path / "play.yml").write_text(textwrap.dedent("""\
        - name: Use the wanbench filters
          hosts: localhost
          connection: local
          gather_facts: false
          tasks:
            - name: Parse the sample runs
              ansible.builtin.set_fact:
                baseline_run: "{{ (samples ~ '/run_sample_baseline.log') | wanbench_parse }}"
                variant_run: "{{ (samples ~ '/run_sample_variant.log') | wanbench_parse }}"

            - name: Compare them
              ansible.builtin.set_fact:
                diff: "{{ baseline_run | wanbench_diff(variant_run) }}"
                verdict: "{{ baseline_run | wanbench_verdict(variant_run, noise_pct='0.5') }}"
                table: "{{ [variant_run] | wanbench_table(baseline=baseline_run, fmt='csv') }}"

            - name: Check the results
              ansible.builtin.assert:
                that:
                  - baseline_run.metrics.request_total == 104321.987
                  - baseline_run.metrics.real_time is none
                  - variant_run.warnings | length == 1
                  - (diff.request_total | round(4)) == -1.3415
                  - verdict.verdict == 'pass'
                  - verdict.reasons[1] == 'request_total -1.34 % beyond the 0.50 % noise threshold'
                  - table.splitlines() | length == 3

            - name: Refuse a string where a run is expected
              block:
                - name: Judge a path
                  ansible.builtin.set_fact:
                    bad: "{{ 'run.log' | wanbench_verdict(variant_run) }}"
              rescue:
                - name: Check the error
                  ansible.builtin.assert:
                    that: "'wanbench_verdict: the baseline must be a run from wanbench_parse' in ansible_failed_result.msg"
        """))
    done = ansible("ansible-playbook", "-i", "localhost,", "play.yml", "-e", f"samples={samples}", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ok=4" in done.stdout and "failed=0" in done.stdout and "rescued=1" in done.stdout


def test_documentation_loads(tmp_path):
    done = ansible("ansible-doc", "-t", "filter", "--json", *NAMES, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    docs = json.loads(done.stdout)
    assert sorted(docs) == sorted(NAMES)
    for name in NAMES:
        assert docs[name]["doc"]["name"] == name
        assert docs[name]["examples"] and docs[name]["return"]["_value"]["description"]
    assert sorted(docs["wanbench_verdict"]["doc"]["options"]) == [
        "_input", "candidate", "noise_pct", "reserved_tolerance_pct"]


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


def test_the_table_filter_still_builds_tables(sample_runs):
    """wanbench_table imports the report module (pandas) when it is called."""
    table = FILTERS["wanbench_table"](sample_runs[1:], baseline=sample_runs[0], fmt="csv")
    assert len(table.splitlines()) == 3


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
