"""wanbench.compare: percent changes and verdicts."""

import pytest

from wanbench.compare import compare
from wanbench.parse import METRICS, parse_run


def run(request_total=100000.0, reserved_peak=18000.0, status="ok", reason="", warnings=(), variant=None,
        **metrics):
    """A run as parse_run returns it, reduced to what compare reads."""
    values = {**dict.fromkeys(METRICS), "request_total": request_total, "reserved_peak": reserved_peak, **metrics}
    return {"path": f"/runs/{variant or 'run'}", "kind": "run", "status": status, "reason": reason,
            "metrics": values, "extra": {}, "warnings": list(warnings),
            "manifest": {"variant": variant} if variant else {}}


def test_sample_variant_passes(samples):
    baseline = parse_run(samples / "run_sample_baseline.log")
    result = compare(baseline, parse_run(samples / "run_sample_variant.log"))
    assert result["candidate"] == str(samples / "run_sample_variant.log")
    assert result["baseline"] == str(samples / "run_sample_baseline.log")
    assert result["diff_pct"]["request_total"] == pytest.approx(-1.34146313758383, rel=1e-12)
    assert result["diff_pct"]["reserved_peak"] == pytest.approx(0.27789005658852, rel=1e-12)
    assert result["diff_pct"]["qkv_all_to_all_avg"] == pytest.approx(-10.76728798346867, rel=1e-12)
    assert result["diff_pct"]["gen_time"] == pytest.approx(-1.34257561145657, rel=1e-12)
    assert result["diff_pct"]["real_time"] is None
    assert result["verdict"] == "pass"
    assert result["reasons"] == [
        "reserved_peak +0.28 % within 1.00 % tolerance",
        "request_total -1.34 % beyond the 0.50 % noise threshold",
        "warning (candidate): negative stage time in stage_totals: vae_decode max=-38.172, avg=-38.106"]


def test_crashed_runs(samples):
    baseline = parse_run(samples / "run_sample_baseline.log")
    crash = parse_run(samples / "run_sample_crash.log")
    failed = compare(baseline, crash)
    assert failed["verdict"] == "fail"
    assert failed["diff_pct"] == dict.fromkeys(METRICS)
    assert failed["reasons"] == [
        "candidate failed: out of memory: RuntimeError: NPU out of memory. Tried to allocate 2.00 GiB",
        "request_total missing in candidate", "reserved_peak missing in candidate"]
    invalid = compare(crash, baseline)
    assert invalid["verdict"] == "invalid"
    assert invalid["reasons"][0] == "baseline failed: out of memory: RuntimeError: NPU out of memory. Tried to allocate 2.00 GiB"


@pytest.mark.parametrize("candidate, verdict, reasons", [
    (run(99000.0, 40643.0), "fail",
     ["reserved_peak +125.79 % > 1.00 % tolerance", "request_total -1.00 % beyond the 0.50 % noise threshold"]),
    (run(100600.0), "fail",
     ["reserved_peak +0.00 % within 1.00 % tolerance", "request_total +0.60 % beyond the 0.50 % noise threshold"]),
    (run(99700.0, 18100.0), "inconclusive",
     ["reserved_peak +0.56 % within 1.00 % tolerance", "request_total -0.30 % within the 0.50 % noise threshold"]),
    (run(99500.0, 18180.0), "inconclusive",  # exactly at the thresholds: not "more than"
     ["reserved_peak +1.00 % within 1.00 % tolerance", "request_total -0.50 % within the 0.50 % noise threshold"]),
    (run(99000.0, 17000.0), "pass",
     ["reserved_peak -5.56 % within 1.00 % tolerance", "request_total -1.00 % beyond the 0.50 % noise threshold"]),
    (run(90000.0, None), "invalid", ["reserved_peak missing in candidate",
                                     "request_total -10.00 % beyond the 0.50 % noise threshold"]),
    (run(90000.0, 99999.0, status="incomplete", reason="report cut off"), "fail",
     ["candidate incomplete: report cut off", "reserved_peak +455.55 % > 1.00 % tolerance",
      "request_total -10.00 % beyond the 0.50 % noise threshold"]),
])
def test_verdict_rules(candidate, verdict, reasons):
    result = compare(run(), candidate)
    assert (result["verdict"], result["reasons"]) == (verdict, reasons)


def test_baseline_problems_make_it_invalid():
    assert compare(run(None), run())["reasons"] == ["request_total missing in baseline",
                                                    "reserved_peak +0.00 % within 1.00 % tolerance"]
    zero = compare(run(0.0), run(status="failed", reason="exit code 1"))
    assert zero["verdict"] == "invalid"
    assert zero["reasons"] == ["request_total is 0 in baseline: no percent change", "candidate failed: exit code 1",
                               "reserved_peak +0.00 % within 1.00 % tolerance"]
    assert compare(run(status="unreadable", reason="empty file"), run(90000.0))["verdict"] == "invalid"


def test_thresholds_are_configurable():
    result = compare(run(), run(99000.0, 18300.0), noise_pct=2, reserved_tolerance_pct=2.0)
    assert result["verdict"] == "inconclusive"
    assert result["reasons"] == ["reserved_peak +1.67 % within 2.00 % tolerance",
                                 "request_total -1.00 % within the 2.00 % noise threshold"]


@pytest.mark.parametrize("kwargs, message", [
    ({"noise_pct": -0.1}, "noise_pct must be a number >= 0, got -0.1"),
    ({"reserved_tolerance_pct": -1}, "reserved_tolerance_pct must be a number >= 0, got -1"),
    ({"noise_pct": True}, "noise_pct must be a number >= 0, got True"),
])
def test_bad_thresholds(kwargs, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        compare(run(), run(), **kwargs)


def test_repeated_runs_are_averaged():
    baseline = [run(100000.0, variant="base"), run(102000.0, variant="base")]
    candidate = [run(99000.0, 18090.0, variant="cand", warnings=["w"]), run(99400.0, variant="cand", warnings=["w"]),
                 run(99200.0, 18000.0, variant="cand", comm_total_avg=5.0)]
    result = compare(baseline, candidate)
    assert (result["baseline"], result["candidate"]) == ("base", "cand")
    assert result["diff_pct"]["request_total"] == pytest.approx((99200 - 101000) / 101000 * 100, rel=1e-12)
    assert result["diff_pct"]["reserved_peak"] == pytest.approx(30 / 18000 * 100, rel=1e-12)
    assert result["diff_pct"]["comm_total_avg"] is None  # two candidate runs lack it
    assert result["verdict"] == "pass"
    assert result["reasons"] == ["baseline: mean of 2 runs", "candidate: mean of 3 runs",
                                 "reserved_peak +0.17 % within 1.00 % tolerance",
                                 "request_total -1.78 % beyond the 0.50 % noise threshold",
                                 "warning (candidate): w"]
    worst = compare(baseline, [run(90000.0), run(90000.0, status="failed", reason="exit code 1")])
    assert worst["verdict"] == "fail"
    assert worst["reasons"] == ["baseline: mean of 2 runs", "candidate: mean of 2 runs",
                                "candidate failed: exit code 1", "reserved_peak +0.00 % within 1.00 % tolerance",
                                "request_total -10.89 % beyond the 0.50 % noise threshold"]
    with pytest.raises(ValueError, match="at least one run"):
        compare([], run())


def test_warnings_of_both_sides_are_reasons():
    result = compare(run(warnings=["abnormal step jitter"]), run(99000.0, warnings=["negative stage time"]))
    assert result["reasons"][-2:] == ["warning (baseline): abnormal step jitter",
                                      "warning (candidate): negative stage time"]
