"""Run inputs given with -e: wanbench.inputs (rules), and the validate play that applies them
to the raw extra vars before anything templates them (ansible-core 2.19)."""

import pytest

from wanbench import inputs


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
