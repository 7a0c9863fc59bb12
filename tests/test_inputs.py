"""Run inputs given with -e: wanbench.inputs (rules), and the validate play that applies them
to the raw extra vars before anything templates them (ansible-core 2.19)."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from wanbench import inputs

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ENV = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
       "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_FORCE_COLOR": "0", "NO_COLOR": "1"}


# ------------------------------------------------------------------ rules (plain functions)
@pytest.mark.parametrize("text,parsed,needle", [
    ("prompt=A boy plays violin", {"prompt": "A", "_raw_params": "boy plays violin"},
     "it keeps prompt='A' and drops 'boy plays violin' (_raw_params)"),
    ("variant=ffn_only, gate1", {"variant": "ffn_only,", "_raw_params": "gate1"},
     "it keeps variant='ffn_only,' and drops 'gate1' (_raw_params)"),
    ("variant=ffn_only\ntouch x", {"variant": "ffn_only", "_raw_params": "touch x"},
     "-e 'variant=ffn_only\\ntouch x': Ansible splits key=value at whitespace"),
    ("prompt=sum 1+1=2", {"prompt": "sum", "1+1": "2"}, "made a variable named '1+1'"),
    ("prompt=A boy=plays", {"prompt": "A", "boy": "plays"}, "made a variable named 'boy' of a word holding '='"),
])
def test_split_arguments_are_refused_with_their_cause(text, parsed, needle):
    problem = inputs.check_argument(text, parsed)
    assert problem is not None and needle in problem, problem
    assert "\n" not in problem and "vars file (-e @vars.yml)" in problem


@pytest.mark.parametrize("text,parsed", [
    ("variant=ffn_only", {"variant": "ffn_only"}),
    ("variant=ffn_only mode=profiled", {"variant": "ffn_only", "mode": "profiled"}),
    ("variant=ffn_only prompt=a=b", {"variant": "ffn_only", "prompt": "a=b"}),
    ('prompt="A boy plays violin"', {"prompt": "A boy plays violin"}),
    ("wanbench_visible_devices=0,1", {"wanbench_visible_devices": "0,1"}),
])
def test_arguments_ansible_kept_as_typed_pass(text, parsed):
    assert inputs.check_argument(text, parsed) is None


@pytest.mark.parametrize("name,value,needle", [
    ("variant", "ffn_only, gate1", "' gate1' is not a variant name"),
    ("variant", "ffn_only,", "item 2 of the comma list is empty"),
    ("variant", ",ffn_only", "item 1 of the comma list is empty"),
    ("variant", "ffn_only;touch x", "'ffn_only;touch x' is not a variant name"),
    ("variant", "ffn_only\ntouch x", "is not a variant name"),
    ("variant", "{{ lookup('pipe', 'id') }}", "variant: Jinja marker '{{'"),
    ("variant", "a{%b", "variant: Jinja marker '{%'"),
    ("variant", "a{#b", "variant: Jinja marker '{#'"),
    ("variant", {"a": 1}, "variant: expected NAME or NAME,NAME, got dict"),
    ("variant", 3, "got int"),
    ("mode", "{{ x }}", "mode: Jinja marker '{{'"),
    ("mode", "Profiled mode", "is not a mode name"),
    ("family", "{% raw %}", "family: Jinja marker '{%'"),
    ("family", "", "is not a family name"),
    ("baseline", "{# x #}", "baseline: Jinja marker '{#'"),
    ("baseline", "re run", "is not a control-run policy"),
    ("baseline", True, "is not a control-run policy"),
    ("repeats", "0", "repeats: expected a positive whole number or 'auto', got '0'"),
    ("repeats", "-3", "got '-3'"),
    ("repeats", " 3", "got ' 3'"),
    ("repeats", True, "got True"),
    ("repeats", "{{ 3 }}", "repeats: Jinja marker"),
    ("max_runs", "auto", "max_runs: expected a positive whole number, got 'auto'"),
    ("max_runs", 0, "got 0"),
    ("max_runs", 2.5, "got 2.5"),
    ("prompt", "{{ lookup('pipe', 'id') }}", "prompt holds the Jinja marker '{{', which Ansible would run"),
    ("prompt", "a {# b", "prompt holds the Jinja marker '{#'"),
    ("prompt", 42, "prompt: expected text, got int"),
    ("prompt", "钢" * 43691, "prompt: 131073 bytes; at most 131071 (Linux passes no longer argument"),
    ("prompt", "x" * 200_000, "prompt: 200000 bytes"),
    ("fail_on", "fail,invalid,bad", "fail_on: unknown verdict(s) bad; choose from pass, fail, inconclusive, invalid"),
    ("fail_on", "FAILED", "unknown verdict(s) failed"),
])
def test_bad_values_are_refused_naming_the_variable(name, value, needle):
    problem = inputs.check_value(name, value)
    assert problem is not None and needle in problem, problem
    assert problem.startswith(name) and "\n" not in problem


@pytest.mark.parametrize("name,value", [
    ("variant", ""), ("variant", "ffn_only"), ("variant", "ffn_only,gate1,group-2"), ("variant", "all"),
    ("variant", ["ffn_only", "gate1"]), ("family", "fsdp"), ("family", "framework"),
    ("baseline", "rerun"), ("baseline", "skip"), ("baseline", "stored"), ("mode", ""), ("mode", "profiled"),
    ("mode", "runtime_only"), ("repeats", "auto"), ("repeats", "1"), ("repeats", 7), ("max_runs", "40"),
    ("max_runs", 3), ("prompt", "It's \"$x\" `id`\n钢琴 ${HOME} \\ {} { {"),
    ("fail_on", ""), ("fail_on", "fail,invalid"), ("fail_on", ["fail", "Invalid"]), ("fail_on", " fail , "),
])
def test_good_values_pass(name, value):
    assert inputs.check_value(name, value) is None


def test_a_prompt_ansible_will_not_template_may_hold_jinja_markers():
    prompt = "{{ lookup('pipe', 'id') }} {% if %} {# #}"
    assert inputs.check_value("prompt", prompt, inert=True) is None
    # inert does not open the names to markers
    assert "Jinja marker" in inputs.check_value("variant", "{{ x }}", inert=True)


def test_check_extra_vars_reports_each_problem_once():
    arguments = [("variant=ffn_only, gate1", {"variant": "ffn_only,", "_raw_params": "gate1"}),
                 ("mode=profiled", {"mode": "profiled"})]
    values = {"variant": "ffn_only,", "_raw_params": "gate1", "mode": "profiled", "repeats": "0",
              "prompt": "{{ x }}", "other": "{{ not checked }}"}
    problems = inputs.check_extra_vars(values, arguments, inert={"prompt"})
    assert len(problems) == 2, problems
    assert problems[0].startswith("-e 'variant=ffn_only, gate1': ") and problems[1].startswith("repeats: ")


def test_raw_params_from_json_or_a_file_is_refused():
    (problem,) = inputs.check_extra_vars({"_raw_params": "touch x", "variant": "ffn_only"})
    assert problem.startswith("_raw_params is set to 'touch x'")


def test_only_the_named_inputs_are_checked():
    assert inputs.check_extra_vars({"variant": "a b"}, names=["mode"]) == []
    assert inputs.check_extra_vars({"variant": "a b"}) != []


# ------------------------------------------------------------------ the filter (Ansible skin)
@pytest.fixture
def filters(monkeypatch):
    """The filter module, with the command line's -e arguments set per test."""
    import importlib.util

    from ansible import context
    from ansible.template import trust_as_template
    from ansible.utils import vars as ansible_vars

    spec = importlib.util.spec_from_file_location("wanbench_inputs_filter", REPO / "filter_plugins/wanbench_inputs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    def set_extra_vars(*texts):
        # the CLI trusts every -e string as a template; so do we
        monkeypatch.setattr(context, "CLIARGS", {"extra_vars": tuple(trust_as_template(t) for t in texts)})
        monkeypatch.setattr(ansible_vars.load_extra_vars, "extra_vars", None, raising=False)

    module.set_extra_vars = set_extra_vars
    return module


def test_filter_reads_the_raw_extra_vars_and_their_trust(filters, tmp_path):
    (tmp_path / "p.yml").write_text("prompt: !unsafe '{{ data }}'\n")
    filters.set_extra_vars("variant=ffn_only mode=profiled", f"@{tmp_path / 'p.yml'}")
    values, arguments, inert = filters.raw_extra_vars()
    assert values == {"variant": "ffn_only", "mode": "profiled", "prompt": "{{ data }}"}
    assert arguments == [("variant=ffn_only mode=profiled", {"variant": "ffn_only", "mode": "profiled"})]
    assert inert == {"prompt"}
    assert filters.wanbench_input_problems(list(inputs.RUN_INPUTS)) == []


def test_filter_refuses_a_trusted_prompt_template_and_dropped_words(filters):
    filters.set_extra_vars('{"prompt": "{{ x }}"}', "variant=a b")
    problems = filters.wanbench_input_problems(["variant", "prompt"])
    assert [p.split(" ")[0:2] for p in problems] == [["-e", "'variant=a"], ["prompt", "holds"]], problems


def test_filter_wants_a_list_of_names(filters):
    from ansible.errors import AnsibleFilterError

    with pytest.raises(AnsibleFilterError, match="wanbench_input_problems: expected a list of run input names"):
        filters.wanbench_input_problems("variant")


# ------------------------------------------------------------------ the validate play (controller only)
def playbook(*argv, playbook="playbooks/validate.yml", inventory="production", timeout=300):
    res = subprocess.run([str(BIN / "ansible-playbook"), "-i", f"inventory/{inventory}", playbook, *argv],
                         cwd=REPO, env=ENV, capture_output=True, text=True, timeout=timeout)
    return res, res.stdout + res.stderr


def error_line(out):
    lines = [ln for ln in out.splitlines() if ln.startswith("[ERROR]: ")]
    assert len(lines) == 1, out[-3000:]
    return lines[0]


REFUSE = "[ERROR]: Task failed: Action failed: "


@pytest.mark.parametrize("extra,line", [
    (["-e", "prompt=A boy plays violin", "-e", "variant=ffn_only"],
     "-e 'prompt=A boy plays violin': Ansible splits key=value at whitespace: it keeps prompt='A' and drops "
     "'boy plays violin' (_raw_params); quote the value (-e 'prompt=\"...\"'), or pass it in a vars file "
     "(-e @vars.yml) or as JSON (-e '{\"prompt\": \"...\"}')"),
    (["-e", "variant=ffn_only, gate1"],
     "-e 'variant=ffn_only, gate1': Ansible splits key=value at whitespace: it keeps variant='ffn_only,' and drops "
     "'gate1' (_raw_params)"),
    (["-e", "variant=ffn_only\ntouch x"],
     "-e 'variant=ffn_only\\ntouch x': Ansible splits key=value at whitespace: it keeps variant='ffn_only' and "
     "drops 'touch x' (_raw_params)"),
    (["-e", '{"variant": "ffn_only, gate1"}'],
     "variant 'ffn_only, gate1': ' gate1' is not a variant name (letters, digits, '_' and '-' only; "
     "NAME,NAME without spaces)"),
    (["-e", "variant=ffn_only,,gate1"], "variant 'ffn_only,,gate1': item 2 of the comma list is empty"),
    (["-e", "variant=ffn_only", "-e", "mode={{ 'profiled' }}"], "mode: Jinja marker '{{' in \"{{ 'profiled' }}\""),
    (["-e", "variant=ffn_only", "-e", "repeats=0"], "repeats: expected a positive whole number or 'auto', got '0'"),
    (["-e", "variant=ffn_only", "-e", "max_runs=many"], "max_runs: expected a positive whole number, got 'many'"),
])
def test_validate_refuses_mangled_inputs_in_one_line_before_anything_else(extra, line):
    res, out = playbook(*extra)
    assert res.returncode != 0
    assert error_line(out).startswith(REFUSE + line), error_line(out)
    # the first task of the play refused: not even the role's argument-spec check ran
    assert re.findall(r"^TASK \[(.*?)\]", out, re.M) == [
        "validate : Refuse run inputs that Ansible would split, drop or run as a template"], out[-3000:]


INJECT = 'lookup("pipe", "touch {}")'


@pytest.mark.parametrize("name,form", [
    *[(name, "key=value") for name in inputs.RUN_INPUTS],
    *[(name, form) for name in ("variant", "prompt") for form in ("json", "vars file")],
])
def test_a_template_in_a_run_input_never_runs(tmp_path, name, form):
    marker = tmp_path / "pwned"
    value = "{{ " + INJECT.format(marker) + " }}"
    if form == "key=value":
        extra = ["-e", f"{name}='{value}'"]
    elif form == "json":
        extra = ["-e", json.dumps({name: value})]
    else:
        (tmp_path / "vars.yml").write_text(f"{name}: {json.dumps(value)}\n")
        extra = ["-e", f"@{tmp_path / 'vars.yml'}"]
    if name != "variant":
        extra += ["-e", "variant=ffn_only"]
    res, out = playbook(*extra)
    assert res.returncode != 0 and error_line(out).startswith(REFUSE + name), out[-3000:]
    assert "Jinja marker '{{'" in error_line(out)
    assert not marker.exists(), f"the template in {name} ran"


def test_the_injection_probe_is_live_without_the_input_check(tmp_path):
    # Proves the test above can fail: with the input check skipped, the role's own tasks template
    # the variable and the lookup runs on the controller (what the check prevents).
    marker = tmp_path / "pwned"
    res, out = playbook("--skip-tags", "input_check", "-e", "variant={{ " + INJECT.format(marker) + " }}")
    assert marker.exists(), out[-3000:]


def test_bench_refuses_the_injection_before_any_host(tmp_path):
    marker = tmp_path / "pwned"
    res, out = playbook("-e", "variant={{ " + INJECT.format(marker) + " }}", playbook="bench.yml", inventory="local")
    assert res.returncode != 0 and error_line(out).startswith(REFUSE + "variant: Jinja marker '{{'"), out[-3000:]
    assert "Check the host" not in out and "PLAY [Benchmark the selected variants]" not in out
    assert not marker.exists()


def test_valid_inputs_and_an_unsafe_prompt_pass_validation(tmp_path):
    marker = tmp_path / "pwned"
    prompt = "It's {{ " + INJECT.format(marker) + " }} {% raw %} {# x #}"
    res, out = playbook("-e", "variant=ffn_only,nofsdp mode=profiled", "-e", "baseline=rerun", "-e", "repeats=auto",
                        "-e", "max_runs=3", "-e", "{\"prompt\": !unsafe " + json.dumps(prompt) + "}")
    assert res.returncode == 0, out[-3000:]
    assert "ffn_only, nofsdp on npu (profiled); baseline=rerun" in out
    assert not marker.exists()


def test_a_prompt_too_long_for_one_argument_is_refused_before_anything_runs(tmp_path):
    """A 200 KB prompt (from a vars file: no command line takes it) stops at the input check (on main it
    passed validation, then every run exited 126: argument list too long)."""
    (tmp_path / "prompt.yml").write_text(json.dumps({"prompt": "x" * 200_000}))
    res, out = playbook("-e", "variant=ffn_only", "-e", f"@{tmp_path / 'prompt.yml'}")
    assert res.returncode != 0 and error_line(out).startswith(
        REFUSE + "prompt: 200000 bytes; at most 131071 (Linux passes no longer argument to a program: "
        "MAX_ARG_STRLEN); shorten it"), out[-3000:]


# ------------------------------------------------------------------ a hostile prompt, end to end
PROMPT = ("It's \"$(touch {m}1)\" and `touch {m}2` $HOME ${{PATH}} \\ '' \"\" 钢琴，小提琴\n"
          "second line {{{{ lookup('pipe', 'touch {m}3') }}}} {{% if 1 %}}x{{% endif %}} {{# c #}}\ttab")

STUB_TORCHRUN = """#!/usr/bin/env python3
# Stands in for torchrun: records its argv, echoes the prompt like generate.py, exits 0.
import json, pathlib, sys
argv = sys.argv[1:]
pathlib.Path(__file__).with_name("argv.json").write_text(json.dumps(argv, ensure_ascii=False), encoding="utf-8")
print("[2026-11-27 00:00:00,000] INFO: Input prompt: " + argv[argv.index("--prompt") + 1])
print("[2026-11-27 00:00:00,000] INFO: Finished.")
"""


def test_a_hostile_prompt_reaches_the_workload_byte_exact(tmp_path):
    """bench.yml on the embedded default, the prompt in a vars file with !unsafe, a stub torchrun:
    validate, render, run.sh, bash and exec hand the prompt over unchanged and run none of it."""
    marker = tmp_path / "pwned"
    prompt = PROMPT.format(m=marker)
    assert all(c in prompt for c in ("'", '"', "$", "`", "\n", "{{", "}}", "{%", "{#", "钢琴"))
    (tmp_path / "torchrun").write_text(STUB_TORCHRUN)
    (tmp_path / "torchrun").chmod(0o755)
    (tmp_path / "vars.yml").write_text("prompt: !unsafe " + json.dumps(prompt, ensure_ascii=False) + "\n",
                                       encoding="utf-8")
    res, out = playbook("-e", f"@{tmp_path / 'vars.yml'}", "-e", "variant=baseline", "-e", "baseline=skip", "-e", "repeats=1", "-e", "wanbench_warmup_runs=0",
                        "-e", f"wanbench_torchrun={tmp_path / 'torchrun'}", "-e", f"wanbench_run_root={tmp_path / 'runs'}",
                        "-e", f"wanbench_results_dir={tmp_path / 'results'}", playbook="bench.yml", inventory="local",
                        timeout=600)
    assert res.returncode == 0, out[-5000:]
    argv = json.loads((tmp_path / "argv.json").read_text(encoding="utf-8"))
    assert argv[-2:] == ["--prompt", prompt]
    (run_dir,) = (tmp_path / "results" / "localhost").glob("*-baseline-*")
    assert f"INFO: Input prompt: {prompt}\n".encode() in (run_dir / "run.log").read_bytes()
    manifest = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["settings"]["prompt"] == prompt and manifest["argv"][-1] == prompt
    assert not list(tmp_path.glob("pwned*")), "a part of the prompt ran"
