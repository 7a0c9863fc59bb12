"""wanbench.history: series over nights, the persistence alarm rule, acks, nightly exit codes."""

import argparse
import json
import os
import random
import statistics

import pytest

from wanbench import history, index

NIGHTS = 10
RUNS = 3
CV = 0.006          # the reference workload's measured request_total CV (0.59 %)
BASE_MS = 104000.0
RESERVED_MB = 19792.0


def sha(night):
    return f"{night:02d}" * 20


def synthetic(seed, regression_from=None, pct=5.0, reserved_from=None, reserved_mb=400.0, runs=RUNS, cv=CV):
    """{metric: nights} of 10 nights x 3 runs of one variant (night k: commit sha(k), date 2026-11-0k)."""
    rng = random.Random(seed)
    out = {"request_total": [], "reserved_peak": []}
    for k in range(1, NIGHTS + 1):
        level = BASE_MS * (1 + pct / 100 if regression_from and k >= regression_from else 1)
        values = [level * rng.lognormvariate(0, cv) for _ in range(runs)]
        mem = RESERVED_MB + (reserved_mb if reserved_from and k >= reserved_from else 0)
        for metric, vals in (("request_total", values), ("reserved_peak", [mem] * runs)):
            s = statistics.stdev(vals) / statistics.fmean(vals) * 100
            out[metric].append({"night": f"play{k:02d}", "date": f"2026-11-{k:02d}", "commit": sha(k),
                                "commits": [sha(k)], "n": runs, "median": statistics.median(vals),
                                "cv_pct": s, "values": vals})
    return out


def series(nights, metric="request_total"):
    return {"host": "npu1", "variant": "baseline", "metric": metric, "nights": nights}


def open_on(nights, metric="request_total", **kw):
    """The 1-based nights on which an alarm is open when the history ends that night."""
    return [k for k in range(1, len(nights) + 1) if history.alarms(series(nights[:k], metric), **kw)]


@pytest.mark.parametrize("persist", [1, 2, 3])
def test_regression_alarms_on_its_kth_night_with_the_commit_range(persist):
    nights = synthetic(seed=7, regression_from=7)["request_total"]
    assert open_on(nights, persist=persist) == list(range(7 + persist - 1, NIGHTS + 1))
    alarm, = history.alarms(series(nights[:7 + persist - 1]), persist=persist)
    assert alarm["first_bad"] == "play07" and alarm["last_good"] == "play06"
    assert alarm["commits"] == [sha(6), sha(7)]
    assert 3.5 < alarm["change_pct"] < 6.5 and alarm["change_pct"] > alarm["limit_pct"]
    assert alarm["limit_pct"] == max(history.THRESHOLD_PCT, 2 * alarm["noise_cv_pct"])
    assert 0.2 < alarm["noise_cv_pct"] < 1.5
    assert [n["night"] for n in alarm["nights"]] == [f"play{k:02d}" for k in range(7, 7 + persist)]
    assert alarm["acked"] is False


def test_an_alarm_says_when_the_settings_changed_with_it():
    nights = synthetic(seed=7, regression_from=7)["request_total"]
    assert history.alarms(series(nights))[0]["settings_changed"] is False  # fingerprints unknown
    marked = [{**n, "fingerprints": ["fp2" if k >= 6 else "fp1"]} for k, n in enumerate(nights)]
    alarm, = history.alarms(series(marked))
    assert alarm["settings_changed"] is True and "settings fingerprint changed" in history._alarm_line(alarm)
    same = [{**n, "fingerprints": ["fp1"]} for n in nights]
    assert history.alarms(series(same))[0]["settings_changed"] is False


def test_a_lasting_regression_keeps_its_first_bad_night():
    nights = synthetic(seed=3, regression_from=7)["request_total"]
    alarm, = history.alarms(series(nights))
    assert (alarm["first_bad"], alarm["commits"], len(alarm["nights"])) == ("play07", [sha(6), sha(7)], 4)


@pytest.mark.parametrize("seed", range(12))
def test_no_alarm_without_a_regression(seed):
    data = synthetic(seed=seed)
    assert open_on(data["request_total"]) == []
    assert open_on(data["reserved_peak"], "reserved_peak") == []


@pytest.mark.parametrize("seed", range(5))
def test_the_injected_regression_is_found_whatever_the_seed(seed):
    assert open_on(synthetic(seed=seed, regression_from=7)["request_total"]) == [8, 9, 10]


@pytest.mark.parametrize("seed", range(5))
def test_the_limit_follows_the_measured_noise(seed):
    # On a host 5x noisier (CV 3 %), a 2 % step is within noise: the limit is 2 x CV, not the 1 % floor.
    noisy = synthetic(seed=seed, regression_from=7, pct=2.0, cv=0.03)["request_total"]
    verdicts = history.judge(noisy, "request_total")
    assert all(v["limit_pct"] == pytest.approx(2 * v["noise_cv_pct"]) and v["limit_pct"] > 4 for v in verdicts[3:])
    assert open_on(noisy) == []
    # ... and on a quiet host the floor holds: a 0.8 % step stays below threshold_pct.
    quiet = synthetic(seed=seed, regression_from=7, pct=0.8, cv=0.0005)["request_total"]
    assert all(v["limit_pct"] == history.THRESHOLD_PCT for v in history.judge(quiet, "request_total")[3:])
    assert open_on(quiet) == [] and open_on(quiet, threshold_pct=0.5) == [8, 9, 10]


def test_a_recovered_night_closes_the_alarm():
    nights = synthetic(seed=1, regression_from=7)["request_total"]
    nights[9] = {**nights[9], "median": nights[5]["median"], "values": nights[5]["values"]}
    assert open_on(nights) == [8, 9]


def test_a_single_slow_night_does_not_alarm():
    nights = synthetic(seed=2)["request_total"]
    nights[6] = {**nights[6], "median": nights[6]["median"] * 1.05, "values": [v * 1.05 for v in nights[6]["values"]]}
    assert history.judge(nights, "request_total")[6]["state"] == "bad"
    assert open_on(nights) == []


def test_too_short_a_history_is_not_judged():
    nights = synthetic(seed=1, regression_from=2)["request_total"]
    states = [v["state"] for v in history.judge(nights, "request_total")]
    assert states[:3] == ["unjudged"] * 3 and "unjudged" not in states[3:]


def test_reserved_peak_rise_raises_its_own_alarm():
    data = synthetic(seed=4, reserved_from=8)
    both = [series(data["request_total"]), series(data["reserved_peak"], "reserved_peak")]
    assert history.alarms(both[:1]) == []
    alarm, = history.alarms(both)
    assert alarm["metric"] == "reserved_peak" and alarm["commits"] == [sha(7), sha(8)]
    assert alarm["change_pct"] == pytest.approx(400 / RESERVED_MB * 100) and alarm["noise_cv_pct"] is None
    assert open_on(data["reserved_peak"], "reserved_peak") == [8, 9, 10]
    assert open_on(data["reserved_peak"], "reserved_peak", reserved_persist=2) == [9, 10]


def test_reserved_peak_within_tolerance_is_quiet():
    data = synthetic(seed=4, reserved_from=8, reserved_mb=RESERVED_MB * 0.009)
    assert open_on(data["reserved_peak"], "reserved_peak") == []


def write(tmp_path, text, name="acks.yml"):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def test_ack_file_silences_until_its_date(tmp_path):
    nights = synthetic(seed=7, regression_from=7)["request_total"]
    acks = history.load_acks(write(tmp_path, "- host: npu1\n  variant: baseline\n  metric: request_total\n"
                                             "  until: 2026-11-09\n  reason: known, fix in flight\n"))
    on9, = history.alarms(series(nights[:9]), acks=acks)
    assert on9["acked"] is True and "known, fix in flight" in on9["ack_reason"]
    assert history.exit_code([on9], [], False) == history.EXIT_OK
    on10, = history.alarms(series(nights), acks=acks)  # night 10 is after the ack's date
    assert on10["acked"] is False
    assert history.exit_code([on10], [], False) == history.EXIT_REGRESSION


def test_ack_matches_only_its_series_and_takes_json_and_wildcards(tmp_path):
    nights = synthetic(seed=7, regression_from=7)["request_total"]
    other = history.load_acks(write(tmp_path, json.dumps([{"host": "npu2", "variant": "*", "metric": "*",
                                                          "until": "2030-01-01", "reason": "x"}]), "a.json"))
    assert history.alarms(series(nights), acks=other)[0]["acked"] is False
    wild = history.load_acks(write(tmp_path, "acks:\n- {host: '*', variant: baseline, metric: '*',"
                                             " until: 2030-01-01, reason: y}\n"))
    assert history.alarms(series(nights), acks=wild)[0]["acked"] is True


@pytest.mark.parametrize("text, message", [
    ("- host: npu1\n  variant: b\n  metric: request_total\n  until: soon\n  reason: r\n", "ack 1: until 'soon'"),
    ("- host: npu1\n  variant: b\n  metric: request_total\n  until: 2026-11-09\n", "ack 1: missing reason"),
    ("- host: npu1\n  variant: b\n  metric: speed\n  until: 2026-11-09\n  reason: r\n", "ack 1: metric 'speed'"),
    ("[1, 2]\n", "ack 1: expected a mapping"),
    ("host: npu1\n", "expected a list of acks"),
    ("- {host: [\n", "not YAML or JSON at line"),
])
def test_bad_ack_file_is_one_line_naming_file_and_entry(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ValueError) as e:
        history.load_acks(path)
    assert str(e.value).startswith(path) and message in str(e.value) and "\n" not in str(e.value)


def test_missing_ack_file(tmp_path):
    with pytest.raises(ValueError, match="cannot read the ack file"):
        history.load_acks(str(tmp_path / "none.yml"))


@pytest.mark.parametrize("alarms, broken, invalid, code", [
    ([], [], False, 0),
    ([], ["r1"], False, 4),
    ([{"acked": False}], [], False, 3),
    ([{"acked": True}], [], False, 0),
    ([{"acked": False}], 2, False, 3),
    ([{"acked": False}], ["r1"], True, 2),
    ([], 0, "inventory has no host", 2),
])
def test_exit_codes_separate_setup_regression_and_broken_runs(alarms, broken, invalid, code):
    assert history.exit_code(alarms, broken, invalid) == code


# ---------------------------------------------------------------- through the index and the CLI handler

PROFILE = """RUN,{stamp},T2V,world_size=4
TOTAL,request_total,{ms:.3f},{ms:.3f}
MEM_REQUEST,16234.500,15890.200,{mem:.3f},{mem:.3f}
END
"""


def make_run(root, host, run_id, night, sha_, ms, mem=RESERVED_MB, variant="baseline", warmup=False):
    d = root / host / run_id
    d.mkdir(parents=True)
    stamp = f"2026-11-{night:02d}T02:{len(list(d.parent.iterdir())):02d}:00Z"
    (d / "manifest.json").write_text(json.dumps({
        "variant": variant, "host": host, "role": "control", "repo": {"sha": sha_, "dirty": False},
        "fingerprint": "fp1", "started_at": stamp, "ended_at": stamp, "exit_code": 0,
        "schedule": {"play": f"play{night:02d}", "seed": 1, "block": 1, "position": 0, "warmup": warmup}}))
    (d / "perf.csv").write_text(PROFILE.format(stamp=stamp[:10] + " 02:00:00", ms=ms, mem=mem))
    (d / "run.log").write_text("[2026-11-01 02:00:00,000] INFO: Finished.\n")
    (d / "exit_code").write_text("0\n")
    return d


def results_with_history(root, seed=7, regression_from=7):
    data = synthetic(seed=seed, regression_from=regression_from)["request_total"]
    for k, night in enumerate(data, start=1):
        make_run(root, "npu1", f"n{k:02d}-warmup", k, sha(k), night["values"][0] * 1.2, warmup=True)
        for i, v in enumerate(night["values"]):
            make_run(root, "npu1", f"n{k:02d}-r{i}", k, sha(k), v)
    return data


def parser():
    p = argparse.ArgumentParser()
    history.add_cli(p.add_subparsers())
    return p


def test_series_from_the_index_leaves_out_warmups_and_matches(tmp_path):
    data = results_with_history(tmp_path)
    index.build(tmp_path)
    got = index.series(str(tmp_path), "npu1", "baseline", "request_total")
    assert [n["night"] for n in got] == [f"play{k:02d}" for k in range(1, 11)]
    assert [n["commit"] for n in got] == [sha(k) for k in range(1, 11)]
    assert [n["n"] for n in got] == [3] * 10
    assert [n["median"] for n in got] == pytest.approx([round(n["median"], 3) for n in data])
    alarm, = history.alarms(history.load(str(tmp_path)))
    assert alarm["commits"] == [sha(6), sha(7)]


def test_history_handler_prints_series_and_the_open_alarm(tmp_path):
    results_with_history(tmp_path)
    args = parser().parse_args(["history", str(tmp_path), "--check"])
    inputs, text, verdicts = args.func(args)
    assert inputs == [] and verdicts == ["fail"]
    assert "npu1 / baseline / request_total" in text and "npu1 / baseline / reserved_peak" in text
    assert "OPEN: npu1 baseline request_total" in text and f"{sha(6)[:12]}..{sha(7)[:12]}" in text
    ack = write(tmp_path, "- {host: npu1, variant: baseline, metric: request_total, until: 2026-12-01, reason: r}\n")
    args = parser().parse_args(["history", str(tmp_path), "--ack", ack, "--metric", "request_total"])
    _, text, verdicts = args.func(args)
    assert verdicts == [] and "acked: r (until 2026-12-01)" in text and "reserved_peak" not in text
    args = parser().parse_args(["history", str(tmp_path), "--json", "--persist", "5"])
    _, text, verdicts = args.func(args)
    assert verdicts == [] and json.loads(text)["alarms"] == []


def test_history_handler_without_runs_says_so(tmp_path):
    args = parser().parse_args(["history", str(tmp_path), "--host", "nope"])
    assert args.func(args) == ([], f"{tmp_path}: no judged runs for that selection", [])


def test_history_handler_bad_inputs_are_one_line(tmp_path):
    args = parser().parse_args(["history", str(tmp_path / "missing")])
    with pytest.raises(ValueError, match="not a folder"):
        args.func(args)
    with pytest.raises(SystemExit):
        parser().parse_args(["history", str(tmp_path), "--persist", "0"])


def test_history_reads_an_index_it_cannot_update(tmp_path, monkeypatch):
    results_with_history(tmp_path)
    index.build(tmp_path)

    def read_only(_):
        raise PermissionError(13, "Permission denied", str(tmp_path))

    monkeypatch.setattr(index, "build", read_only)
    args = parser().parse_args(["history", str(tmp_path)])
    _, text, verdicts = args.func(args)
    assert verdicts == ["fail"] and text.endswith("note: index not updated (Permission denied); showing it as it is")
    os.unlink(tmp_path / "index.sqlite")
    with pytest.raises(PermissionError):
        args.func(args)
