"""wanbench.bisect: the step's meaning, the search, its record, its text and the alarm links."""

import json
import math

import pytest

from wanbench import bisect, history


def commits(n):
    return [{"sha": f"{i:02d}" + "a" * 38, "subject": f"commit {i}"} for i in range(1, n + 1)]


def result(change, lo, hi, verdict="inconclusive"):
    return {"verdict": verdict, "diff_pct": {"request_total": change}, "ci_pct": {"request_total": [lo, hi]},
            "n": {"baseline": 3, "candidate": 3}, "reasons": []}


SLOW = result(60.0, 40.0, 80.0, "fail")
SAME = result(1.0, -8.0, 10.0)


def run_search(n, culprit, threshold=30.0, measure=None):
    """Drive the search like the play does; returns (state, steps, record)."""
    cs = commits(n)
    record, steps = {"measured": {}}, 0
    while True:
        state = bisect.search(cs, record["measured"], threshold)
        if state["done"]:
            return state, steps, record
        i = cs.index(state["next"])
        outcome = (measure or (lambda i: SLOW if i >= culprit else SAME))(i)
        record = bisect.add_step(record, state["next"]["sha"], state["next"]["subject"], outcome, [f"r{i}"], threshold)
        steps += 1


@pytest.mark.parametrize("n", [1, 2, 3, 8, 9, 17])
def test_every_culprit_is_found_within_the_step_budget(n):
    for culprit in range(n):
        state, steps, _ = run_search(n, culprit)
        assert state["outcome"] == "culprit"
        assert state["culprit"]["sha"] == commits(n)[culprit]["sha"]
        assert steps <= (math.ceil(math.log2(n)) + 1 if n > 1 else 1) == state["max_steps"]
        assert state["culprit"]["change_pct"] == 60.0 and state["culprit"]["runs"]


def test_bad_measured_good_is_not_reproduced():
    state, steps, _ = run_search(8, culprit=99)
    assert state["outcome"] == "not-reproduced" and steps == 4


def test_an_undecided_step_stops_and_names_the_range_left():
    undecided = result(20.0, -5.0, 45.0)
    state, steps, record = run_search(8, 5, measure=lambda i: undecided if i == 3 else (SLOW if i >= 5 else SAME))
    assert state["outcome"] == "undecided" and steps == 1
    assert state["range"]["good"] is None and state["range"]["bad"] == commits(8)[-1]["sha"]
    text = bisect.text(state, commits(8), record["measured"], "ff" * 20)
    assert "undecided at 04" in text and "the culprit lies in good..08" in text


def test_a_second_invocation_resumes_without_measuring_again():
    first, steps, record = run_search(8, 5)
    again = bisect.search(commits(8), json.loads(json.dumps(record["measured"])), 30.0)
    assert again == first and steps == 3
    # measured at another threshold: measured again
    assert bisect.search(commits(8), record["measured"], 10.0)["next"] is not None


@pytest.mark.parametrize("res, state", [
    (SLOW, "bad"), (SAME, "good"), (result(-20.0, -30.0, -10.0, "pass"), "good"),
    (result(35.0, 2.0, 70.0, "fail"), "bad"), (result(20.0, 2.0, 38.0, "fail"), "undecided"),
    (result(20.0, -5.0, 45.0), "undecided"), ({**SLOW, "verdict": "invalid", "reasons": ["not comparable: x"]}, "undecided"),
    ({"verdict": "inconclusive", "diff_pct": {"request_total": None}, "ci_pct": {"request_total": None}}, "undecided"),
    (None, "undecided")])
def test_a_step_is_bad_only_above_zero_and_the_threshold_and_good_only_below_it(res, state):
    assert bisect.classify(res, 30.0)[0] == state


def test_the_record_is_written_atomically_and_a_broken_one_is_one_line(tmp_path):
    path = bisect.record_path(tmp_path, "h", "baseline", "a" * 40, "b" * 40)
    assert bisect.load_record(path) == {"measured": {}}
    bisect.save_record(path, {"measured": {"x": {}}})
    assert bisect.load_record(path) == {"measured": {"x": {}}}
    assert [p.name for p in (tmp_path / "h" / "bisect").iterdir()] == ["baseline-aaaaaaaaaaaa-bbbbbbbbbbbb.json"]
    (tmp_path / "h" / "bisect" / "baseline-aaaaaaaaaaaa-bbbbbbbbbbbb.json").write_text("{half")
    with pytest.raises(bisect.BisectError, match="not a readable bisect record"):
        bisect.load_record(path)


def test_inputs_are_checked():
    with pytest.raises(bisect.BisectError, match="good='HEAD~3': expected a commit SHA"):
        bisect.target("/nowhere", good="HEAD~3", bad="b" * 40, variant="baseline")
    with pytest.raises(bisect.BisectError, match="needs -e good=SHA"):
        bisect.target("/nowhere")
    assert bisect.target("/x", good="A" * 40, bad="b" * 7, variant="v")["good"] == "a" * 40
    with pytest.raises(bisect.BisectError, match="no commits between good and bad"):
        bisect.search([], {})


def test_start_state_and_commits_are_read():
    s = bisect.start_state("branch=perf\nhead=" + "c" * 40 + "\ndirty=\ngood=" + "a" * 40 + " the good one\n")
    assert s == {"branch": "perf", "head": "c" * 40, "dirty": "", "good": "a" * 40, "good_subject": "the good one", "bad": ""}
    assert bisect.commits_from_log("x1 one two\n\ny2 three\n") == [{"sha": "x1", "subject": "one two"},
                                                                  {"sha": "y2", "subject": "three"}]


def test_the_two_arms_run_the_same_settings_as_control_and_candidate():
    from wanbench import schedule
    resolved = {"variant": "ffn_only", "family": "fsdp", "mode": "profiled", "family_baseline": "baseline",
                "fingerprint": "f", "settings": {}, "env": {}, "args": []}
    sel = bisect.arms(resolved, "c" * 40)
    sched = schedule.schedule(sel, repeats=2, seed=1, warmup=1)
    roles = {(r["variant"], r["role"]) for r in sched["runs"]}
    assert roles == {("ffn_only", "control"), ("ffn_only@cccccccccccc", "candidate")}
    assert {r["fingerprint"] for r in sched["runs"]} == {"f"}
    assert {r["bisect_commit"] for r in sched["runs"]} == {"good", "c" * 40}


def alarm(**kw):
    return {"host": "npu1", "variant": "baseline", "metric": "request_total", "first_bad": "p5",
            "commits": ["a" * 40, "b" * 40], "acked": False, **kw}


def test_an_alarm_links_to_its_bisect_and_then_to_its_culprit(tmp_path):
    a = bisect.annotate([alarm()], str(tmp_path))[0]
    assert a["bisect"] == f"ansible-playbook playbooks/bisect.yml -e alarm={a['id']}" and a["culprit"] is None
    assert "bisect: ansible-playbook playbooks/bisect.yml -e alarm=" in bisect.link_text(a)
    assert bisect.alarm_id(alarm()) != bisect.alarm_id(alarm(first_bad="p6"))
    culprit = {"sha": "c" * 40, "subject": "slow step", "change_pct": 61.0, "ci_pct": [40.0, 82.0],
               "n": {"baseline": 3, "candidate": 3}}
    bisect.save_record(bisect.record_path(tmp_path, "npu1", "baseline", "a" * 40, "b" * 40),
                       {"measured": {}, "culprit": culprit})
    a = bisect.annotate([alarm()], str(tmp_path))[0]
    assert bisect.link_text(a).startswith("culprit cccccccccccc slow step (bisected: request_total +61.00 %")


def test_an_alarm_id_fills_range_variant_host_and_threshold(tmp_path):
    from test_history import results_with_history  # the history tests' synthetic nights
    results_with_history(tmp_path)
    from wanbench import index
    index.build(str(tmp_path))
    found = history.alarms(history.load(str(tmp_path), metrics=("request_total",)))
    assert found
    t = bisect.target(str(tmp_path), alarm=bisect.alarm_id(found[0]))
    assert (t["good"], t["bad"]) == tuple(found[0]["commits"])
    assert (t["variant"], t["host"]) == (found[0]["variant"], found[0]["host"])
    assert t["threshold_pct"] == round(abs(found[0]["change_pct"]) / 2, 2)
    with pytest.raises(bisect.BisectError, match="no open alarm with that id"):
        bisect.target(str(tmp_path), alarm="00000000")


def test_history_shows_the_bisect_command_then_the_culprit_read_from_the_record(tmp_path):
    from test_history import results_with_history, sha

    from wanbench.cli import _parser as parser  # the command's own wiring: history annotated by bisect
    results_with_history(tmp_path)
    args = parser().parse_args(["history", str(tmp_path), "--metric", "request_total", "--json"])
    a, = json.loads(args.func(args)[1])["alarms"]
    args = parser().parse_args(["history", str(tmp_path), "--metric", "request_total"])
    assert f"\n  bisect: ansible-playbook playbooks/bisect.yml -e alarm={a['id']}" in args.func(args)[1]
    culprit = {"sha": "c" * 40, "subject": "slow step", "change_pct": 5.1, "ci_pct": [3.0, 7.2],
               "n": {"baseline": 4, "candidate": 4}}
    bisect.save_record(bisect.record_path(tmp_path, "npu1", "baseline", sha(6), sha(7)),
                       {"measured": {}, "culprit": culprit})
    text = args.func(args)[1]
    assert "\n  culprit cccccccccccc slow step (bisected: request_total +5.10 % (95 % CI +3.00 .. +7.20 %)" in text
    assert "bisect: ansible" not in text


def test_the_play_refuses_a_ref_name_before_touching_a_host(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "ANSIBLE_CONFIG": str(repo / "ansible.cfg")}
    res = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "playbooks/bisect.yml",
                          "-e", "good=HEAD~3", "-e", "bad=abcdef1", "-e", "variant=baseline",
                          "-e", f"wanbench_results_dir={tmp_path}"],
                         cwd=repo, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode != 0
    assert "good='HEAD~3': expected a commit SHA (7 to 40 hex digits)" in res.stdout + res.stderr
    assert "Check and lock the host" not in res.stdout and not list(tmp_path.iterdir())


def test_the_step_delay_switch_and_its_default(monkeypatch):
    import importlib.util
    import sys
    from pathlib import Path

    ref = Path(__file__).resolve().parents[1] / "reference"
    monkeypatch.syspath_prepend(str(ref))
    sys.modules.pop("wan_ref.switches", None)
    spec = importlib.util.spec_from_file_location("bisect_test_switches", ref / "wan_ref" / "switches.py")
    sw = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sw)
    assert sw.Switches.from_env({}).step_delay_ms == 0.0 == sw.STEP_DELAY_MS_DEFAULT
    assert sw.Switches.from_env({"WAN_REF_STEP_DELAY_MS": "250"}).step_delay_ms == 250.0
    monkeypatch.setattr(sw, "STEP_DELAY_MS_DEFAULT", 2000.0)  # what the planted commit changes
    assert sw.Switches.from_env({}).step_delay_ms == 2000.0
    assert sw.Switches.from_env({"WAN_REF_STEP_DELAY_MS": "0"}).step_delay_ms == 0.0
    with pytest.raises(sw.SwitchError, match="WAN_REF_STEP_DELAY_MS='-5' is not a valid value"):
        sw.Switches.from_env({"WAN_REF_STEP_DELAY_MS": "-5"})


def test_the_transcript_lists_the_range_and_the_next_commit_before_any_step():
    cs = commits(8)
    state = bisect.search(cs, {}, 30.0)
    text = bisect.text(state, cs, {}, "ff" * 20, "the good one")
    assert text.splitlines()[0] == ("bisect of 8 commit(s) after good ffffffffffff the good one"
                                    " (at most 4 steps; 0 measured):")
    assert all(f"{c['sha'][:12]} {c['subject']}" in text for c in cs)
    assert text.endswith("the culprit lies in good..08aaaaaaaaaa (8 commit(s)); next: 04aaaaaaaaaa commit 4")


def test_an_undecided_step_of_an_earlier_play_is_measured_again():
    undecided = result(20.0, -5.0, 45.0)
    record = bisect.add_step({"measured": {}}, commits(8)[3]["sha"], "c4", undecided, ["r"], 30.0, play="p1")
    assert bisect.search(commits(8), record["measured"], 30.0, play="p1")["outcome"] == "undecided"
    again = bisect.search(commits(8), record["measured"], 30.0, play="p2")
    assert again["outcome"] == "searching" and again["next"]["sha"] == commits(8)[3]["sha"]
