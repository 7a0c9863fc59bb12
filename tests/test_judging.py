"""The verdict options' one home (wanbench.judging): CLI, share and the play's argument lists agree."""

import os

import pytest
import yaml

from wanbench import cli, judging

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _parse(command, *extra):
    args = ["C", "--baseline", "B"] + (["--out", "o"] if command == "share" else []) + list(extra)
    return cli._parser().parse_args([command, *args])


VALUES = {"threshold_pct": "0.7", "reserved_tolerance_pct": 2, "noise_store": "results/h", "noise_cv_pct": "",
          "noise": {"cv_pct": 0.59, "df": 11, "measured": "2026-11-27"}, "min_noise_df": 10, "noise_window_days": 30,
          "noise_window_commits": "", "confidence": 0.99, "allow_mismatch": "commit", "across_plays": False,
          "on_mismatch": "invalid", "idle_util_pct": 10, "idle_mem_mb": "",
          "busy_cpu_pct": 50.0, "device_state": "optional", "ignore_process": ["sshd", "containerd"],
          "min_psnr_db": 60, "require_same_output": "True"}


@pytest.mark.parametrize("command", ["compare", "report", "share"])
def test_argv_of_the_play_reads_back_the_same_options_in_every_command(command):
    got = judging.values_of(_parse(command, *judging.argv(VALUES)))
    assert got == {"threshold_pct": 0.7, "reserved_tolerance_pct": 2.0, "noise_store": "results/h",
                   "noise_cv_pct": None, "noise": {"cv_pct": 0.59, "df": 11.0, "measured": "2026-11-27"},
                   "min_noise_df": 10.0, "noise_window_days": 30.0, "noise_window_commits": None, "confidence": 0.99,
                   "allow_mismatch": ["commit"], "across_plays": False, "on_mismatch": "invalid", "idle_util_pct": 10.0,
                   "idle_mem_mb": None, "busy_cpu_pct": 50.0, "device_state": "optional",
                   "ignore_process": ["sshd", "containerd"],
                   "min_psnr_db": 60.0, "require_same_output": True}


def test_defaults_are_the_same_in_every_command():
    assert judging.values_of(_parse("compare")) == judging.values_of(_parse("share")) \
        == judging.values_of(_parse("report")) == judging.values_of(_parse("compare", *judging.argv(
            {n: "" for n in judging.NAMES})))


def test_a_wrong_or_missing_option_is_one_error_naming_it():
    with pytest.raises(ValueError, match="judging option threshold_pct: not a number: 'abc'"):
        judging.argv({**VALUES, "threshold_pct": "abc"})
    with pytest.raises(ValueError, match="judging option confidence: must be between 0 and 1"):
        judging.argv({**VALUES, "confidence": 95})
    with pytest.raises(ValueError, match="missing ignore_process; unknown ignore_processes"):
        judging.argv({**{k: v for k, v in VALUES.items() if k != "ignore_process"}, "ignore_processes": []})


def _judging_vars(path, task_name):
    tasks = yaml.safe_load(open(os.path.join(ROOT, path)))
    task = next(t for t in tasks if t["name"] == task_name)
    argv = task["ansible.builtin.command"]["argv"]
    names = [n for n, v in task["vars"].items() if isinstance(v, dict) and f"{n} | wanbench_judging_argv" in argv]
    assert len(names) == 1, f"{path}: one mapping of verdict options passed to wanbench_judging_argv"
    return task["vars"][names[0]]


def test_the_adaptive_look_and_the_report_pass_every_verdict_option():
    # the look used to omit 8 options (e.g. --ignore-process, --idle-mem-mb): it stopped on verdicts the
    # final report would not give
    look = _judging_vars("playbooks/tasks/look.yml", "Judge the runs collected so far")
    final = _judging_vars("roles/report/tasks/write.yml", "Write report.md, report.csv, report.json, summary.txt, share.md and report.html")
    assert set(look) == set(final) == set(judging.NAMES)


def test_a_noise_store_that_does_not_exist_is_an_error_naming_it(tmp_path, capsys, samples):
    missing = tmp_path / "does" / "not" / "exist"
    rc = cli.main(["compare", "--baseline", str(samples / "perf_sample_baseline.csv"),
                   str(samples / "perf_sample_variant.csv"), "--noise-store", str(missing)])
    out, err = capsys.readouterr()
    assert (rc, out) == (2, "")
    assert err == f"wanbench: --noise-store {missing}: not a folder (give the host's results folder, results/<host>)\n"


def test_an_invalid_look_never_stops_an_adaptive_play():
    from wanbench import schedule

    # the look of a play whose runs are invalid (e.g. a busy machine): the final report gives no decision
    assert schedule.decided([{"verdict": "invalid", "equivalent": False}]) is False
    assert schedule.decided([{"verdict": "pass", "equivalent": False},
                             {"verdict": "invalid", "equivalent": False}]) is False
    assert schedule.decided([{"verdict": "fail", "equivalent": False},
                             {"verdict": "inconclusive", "equivalent": True}]) is True


def test_run_args_give_candidates_with_their_controls_or_the_controls_alone():
    assert judging.run_args(["c1", "c2"], ["x"]) == ["x", "--baseline=c1", "--baseline=c2"]
    assert judging.run_args(["c1"], []) == ["c1"]  # a report of controls only
    assert judging.run_args(None, None) == []
