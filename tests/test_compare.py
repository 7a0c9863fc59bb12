"""wanbench.compare: percent changes and verdicts."""

import itertools
import math
import os

import pytest

from wanbench.compare import compare
from wanbench.parse import METRICS, parse_run


def run(request_total=100000.0, reserved_peak=18000.0, status="ok", reason="", warnings=(), variant=None,
        **metrics):
    """A run as parse_run returns it, reduced to what compare reads."""
    values = {**dict.fromkeys(METRICS), "request_total": request_total, "reserved_peak": reserved_peak, **metrics}
    return {"path": f"/runs/{variant or 'run'}/{next(_ids)}", "kind": "run", "status": status, "reason": reason,
            "metrics": values, "extra": {}, "warnings": list(warnings),
            "manifest": {"variant": variant} if variant else {}}


_ids = itertools.count()
PRIOR = {"cv_pct": 0.1, "df": 1000, "source": "measured"}  # a measured noise small enough that the thresholds decide


def test_one_run_a_side_decides_nothing_without_a_known_noise(samples):
    baseline = parse_run(samples / "run_sample_baseline.log")
    variant = parse_run(samples / "run_sample_variant.log")
    result = compare(baseline, variant)
    assert result["candidate"] == str(samples / "run_sample_variant.log")
    assert result["baseline"] == str(samples / "run_sample_baseline.log")
    assert result["diff_pct"]["request_total"] == pytest.approx(-1.34146313758383, rel=1e-12)
    assert result["diff_pct"]["reserved_peak"] == pytest.approx(0.27789005658852, rel=1e-12)
    assert result["diff_pct"]["qkv_all_to_all_avg"] == pytest.approx(-10.76728798346867, rel=1e-12)
    assert result["diff_pct"]["gen_time"] == pytest.approx(-1.34257561145657, rel=1e-12)
    assert result["diff_pct"]["real_time"] is None
    assert result["verdict"] == "inconclusive"
    assert (result["ci_pct"], result["noise_source"], result["runs_needed"]) == ({"request_total": None}, "none", None)
    assert result["n"] == {"baseline": 1, "candidate": 1}
    assert result["reasons"] == [
        "reserved_peak +0.28 % within 1.00 % tolerance",
        "request_total -1.34 % (n=1/1): no interval, the noise is unknown with one run a side; repeat the runs"
        " (-e repeats=N), or measure the host (-e variant=aa)",
        "warning (candidate): negative stage time in stage_totals: vae_decode max=-38.172, avg=-38.106"]
    known = compare(baseline, variant, noise={"cv_pct": 0.2, "df": 12, "source": "stored: 14 runs"})
    assert known["verdict"] == "pass" and known["noise_source"] == "stored: 14 runs"
    assert known["ci_pct"]["request_total"] == [pytest.approx(-1.95, abs=0.005), pytest.approx(-0.73, abs=0.005)]
    assert known["reasons"][1] == ("request_total -1.34 % (95 % CI -1.95 .. -0.73 %, n=1/1, noise CV 0.2 %, 12 df"
                                   " (stored: 14 runs)): the interval is below 0 and the change at or beyond -0.50 %")
    noisy = compare(baseline, variant, noise={"cv_pct": 1.0, "source": "prior"})
    assert noisy["verdict"] == "inconclusive" and noisy["runs_needed"] == 64
    # the planning figure (a change of the threshold's size), then the runs for the verdict sought (issue 19)
    assert noisy["reasons"][2] == ("runs needed to resolve 0.50 % (80 % power): 64 a side at noise CV 1.00 % (prior);"
                                   " for this verdict: 9 more run(s) a side (10 in all) give 80 % chance of pass if"
                                   " the change is the -1.34 % observed")


def test_crashed_runs(samples):
    baseline = parse_run(samples / "run_sample_baseline.log")
    crash = parse_run(samples / "run_sample_crash.log")
    failed = compare(baseline, crash)
    assert failed["verdict"] == "fail"
    assert failed["diff_pct"] == dict.fromkeys(METRICS)
    assert failed["reasons"] == [
        "candidate failed: out of memory: RuntimeError: NPU out of memory. Tried to allocate 2.00 GiB",
        "request_total missing in candidate", "reserved_peak missing in candidate"]
    assert failed["excluded"] == [{"path": str(samples / "run_sample_crash.log"), "role": "candidate",
                                   "why": "failed: out of memory: RuntimeError: NPU out of memory."
                                          " Tried to allocate 2.00 GiB"}]
    invalid = compare(crash, baseline)
    assert invalid["verdict"] == "invalid"
    assert invalid["reasons"][0] == "baseline failed: out of memory: RuntimeError: NPU out of memory. Tried to allocate 2.00 GiB"


@pytest.mark.parametrize("candidate, verdict, reasons", [
    (run(99000.0, 40643.0), "fail",
     ["reserved_peak +125.79 % > 1.00 % tolerance",
      "request_total -1.00 % (95 % CI -1.27 .. -0.73 %, n=1/1, noise CV 0.1 %, 1000 df (measured)): the interval is below 0"
      " and the change at or beyond -0.50 %"]),
    (run(100600.0), "fail",
     ["reserved_peak +0.00 % within 1.00 % tolerance",
      "request_total +0.60 % (95 % CI +0.32 .. +0.88 %, n=1/1, noise CV 0.1 %, 1000 df (measured)): the interval is above 0"
      " and the change at or beyond +0.50 %"]),
    (run(99700.0, 18100.0), "inconclusive",
     ["reserved_peak +0.56 % within 1.00 % tolerance",
      "request_total -0.30 % (95 % CI -0.58 .. -0.02 %, n=1/1, noise CV 0.1 %, 1000 df (measured)): a real change, but smaller"
      " than the 0.50 % threshold", "runs needed to resolve 0.50 % (80 % power): 3 a side at noise CV 0.10 % (measured);"
      " for this verdict: cannot pass at this threshold (the change observed is inside +-0.50 %); 5 more run(s) a"
      " side (6 in all) give 80 % chance of equivalent if the change is the -0.30 % observed"]),
    (run(99900.0, 18180.0), "inconclusive",
     ["reserved_peak +1.00 % within 1.00 % tolerance",
      "request_total -0.10 % (95 % CI -0.38 .. +0.18 %, n=1/1, noise CV 0.1 %, 1000 df (measured)): equivalent: the interval"
      " lies inside +-0.50 %"]),
    (run(99000.0, 17000.0), "pass",
     ["reserved_peak -5.56 % within 1.00 % tolerance",
      "request_total -1.00 % (95 % CI -1.27 .. -0.73 %, n=1/1, noise CV 0.1 %, 1000 df (measured)): the interval is below 0"
      " and the change at or beyond -0.50 %"]),
    (run(90000.0, None), "invalid",
     ["reserved_peak missing in candidate",
      "request_total -10.00 % (95 % CI -10.25 .. -9.75 %, n=1/1, noise CV 0.1 %, 1000 df (measured)): the interval is below 0"
      " and the change at or beyond -0.50 %"]),
    (run(90000.0, 99999.0, status="incomplete", reason="report cut off"), "fail",
     ["candidate incomplete: report cut off", "request_total missing in candidate",
      "reserved_peak missing in candidate"]),
])
def test_verdict_rules(candidate, verdict, reasons):
    result = compare(run(), candidate, noise=PRIOR)
    assert (result["verdict"], result["reasons"]) == (verdict, reasons)


def test_baseline_problems_make_it_invalid():
    assert compare(run(None), run())["reasons"] == ["request_total missing in baseline",
                                                    "reserved_peak +0.00 % within 1.00 % tolerance"]
    zero = compare(run(0.0), run(status="failed", reason="exit code 1"))
    assert zero["verdict"] == "invalid"
    assert zero["reasons"] == ["request_total is 0 in baseline: no percent change", "candidate failed: exit code 1",
                               "request_total missing in candidate", "reserved_peak missing in candidate"]
    assert compare(run(status="unreadable", reason="empty file"), run(90000.0))["verdict"] == "invalid"


def test_memory_not_measured_gives_no_memory_verdict():
    unmeasured = ["memory not measured (every memory figure is 0.0)"]
    result = compare(run(reserved_peak=None, warnings=unmeasured), run(90000.0, None, warnings=unmeasured), noise=PRIOR)
    assert result["verdict"] == "pass" and result["diff_pct"]["reserved_peak"] is None
    assert "reserved_peak not measured (all memory figures 0.0 or absent): no memory verdict" in result["reasons"]
    assert compare(run(), run(90000.0, None), noise=PRIOR)["verdict"] == "invalid"  # measured, then missing


def test_thresholds_are_configurable():
    result = compare(run(), run(99000.0, 18300.0), threshold_pct=2, reserved_tolerance_pct=2.0, noise=PRIOR)
    assert result["verdict"] == "inconclusive"
    assert result["reasons"][:2] == ["reserved_peak +1.67 % within 2.00 % tolerance",
                                     "request_total -1.00 % (95 % CI -1.27 .. -0.73 %, n=1/1, noise CV 0.1 %,"
                                     " 1000 df (measured)): equivalent: the interval lies inside +-2.00 %"]
    assert result["equivalent"] is True


@pytest.mark.parametrize("kwargs, message", [
    ({"threshold_pct": -0.1}, "threshold_pct must be a number >= 0, got -0.1"),
    ({"reserved_tolerance_pct": -1}, "reserved_tolerance_pct must be a number >= 0, got -1"),
    ({"threshold_pct": True}, "threshold_pct must be a number >= 0, got True"),
    ({"noise": {"cv_pct": -1}}, "noise cv_pct must be a number >= 0, got -1"),
])
def test_bad_thresholds(kwargs, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        compare(run(), run(), **kwargs)


def test_repeated_runs():
    baseline = [run(100000.0, variant="base"), run(100400.0, variant="base"), run(99800.0, variant="base")]
    candidate = [run(99000.0, 18090.0, variant="cand", warnings=["w"]), run(99400.0, variant="cand", warnings=["w"]),
                 run(99200.0, 18000.0, variant="cand", comm_total_avg=5.0)]
    result = compare(baseline, candidate)
    assert (result["baseline"], result["candidate"]) == ("base", "cand")
    assert result["n"] == {"baseline": 3, "candidate": 3} and result["noise_source"] == "data"
    assert result["diff_pct"]["reserved_peak"] == pytest.approx(90 / 18000 * 100, rel=1e-12)  # max against max
    assert result["diff_pct"]["comm_total_avg"] is None  # two candidate runs lack it
    assert result["stats"]["candidate"]["request_total"]["median"] == 99200.0
    assert result["noise_cv_pct"]["baseline"] == pytest.approx(0.3053, abs=1e-4)
    low, high = result["ci_pct"]["request_total"]
    assert low < high < 0 and result["diff_pct"]["request_total"] == pytest.approx(-0.866, abs=0.001)
    assert result["verdict"] == "pass"
    assert result["reasons"][:3] == ["baseline: 3 of 3 runs used", "candidate: 3 of 3 runs used",
                                     "reserved_peak +0.50 % within 1.00 % tolerance"]
    assert result["reasons"][-1] == "warning (candidate): w"
    worst = compare(baseline, [run(90000.0), run(90000.0, status="failed", reason="exit code 1")])
    assert worst["verdict"] == "fail"
    assert worst["reasons"][:3] == ["baseline: 3 of 3 runs used", "candidate: 1 of 2 runs used",
                                    f"candidate failed: exit code 1 ({worst['excluded'][0]['path']})"]
    with pytest.raises(ValueError, match="at least one run"):
        compare([], run())


def test_warmups_and_unhealthy_baseline_runs_are_left_out():
    warm = run(150000.0, variant="base")
    warm["manifest"]["schedule"] = {"warmup": True}
    sick = run(50000.0, variant="base", status="failed", reason="exit code 1")
    result = compare([warm, run(variant="base"), sick, run(100200.0, variant="base")],
                     [run(99900.0, variant="cand"), run(100100.0, variant="cand")])
    assert result["n"] == {"baseline": 2, "candidate": 2}
    assert [e["why"] for e in result["excluded"]] == ["warm-up (discarded)", "failed: exit code 1"]
    assert result["verdict"] == "inconclusive"  # an unhealthy baseline run is left out, not a verdict


def test_warnings_of_both_sides_are_reasons():
    result = compare(run(warnings=["abnormal step jitter"]), run(99000.0, warnings=["negative stage time"]))
    assert result["reasons"][-2:] == ["warning (baseline): abnormal step jitter",
                                      "warning (candidate): negative stage time"]


# ------------------------------------------------------------------ machine state and output (docs/health.md)

def _snap(platform="reference", torch="2.13.0", processes=(), util=None):
    return {"platform": platform, "status": "ok", "errors": [], "processes": list(processes),
            "devices": [{"index": 0, "name": "cpu", "util_pct": util, "mem_used_mb": None, "throttle": [],
                         "health": None}],
            "host": {}, "versions": {"torch": torch, "kernel": "6.1.0"}}


def healthy(run_, before=None, after=None, output=None):
    run_["devices"] = {"before": before or _snap(), "after": after or _snap()}
    run_["output_check"] = output
    return run_


def score(psnr=math.inf, identical=None, status="ok", reason=""):
    identical = psnr == math.inf if identical is None else identical
    return {"control_run": "c1", "score": {"status": status, "reason": reason, "kind": "array", "psnr_db": psnr,
                                           "max_abs_diff": 0.0 if identical else 0.1, "ssim": None,
                                           "identical": identical}}


def side(n, value, variant, **kw):
    return [healthy(run(value + i, variant=variant), **kw) for i in range(n)]


def test_a_busy_host_makes_a_clear_win_invalid_with_the_reason():
    busy = _snap(processes=[{"device": 0, "pid": 4242, "name": "python3", "mem_mb": 10.0, "cpu_pct": 99.0}])
    base = side(3, 100000.0, "baseline")
    cand = side(3, 90000.0, "ffn_only")
    assert compare(base, cand, noise=PRIOR)["verdict"] == "pass"
    cand[1]["devices"]["before"] = busy
    result = compare(base, cand, noise=PRIOR)
    assert result["verdict"] == "invalid"
    assert result["health"] == [f"candidate run {os.path.basename(cand[1]['path'])}: host busy before the run:"
                                f" pid 4242 python3 at 99 % CPU"]
    assert result["reasons"][0] == result["health"][0]
    assert compare(base, cand, noise=PRIOR, health={"busy_cpu_pct": 100})["verdict"] == "pass"


def test_an_environment_that_differs_from_the_control_is_invalid_and_listed():
    base = side(2, 100000.0, "baseline")
    cand = side(2, 100000.0, "gate1")
    cand[0]["devices"]["before"] = _snap(torch="2.14.0")
    result = compare(base, cand, noise=PRIOR)
    name = os.path.basename(cand[0]["path"])
    assert result["verdict"] == "invalid"
    assert result["health"] == [f"candidate run {name}: environment differs from the control: torch: 2.13.0"
                                " (control) vs 2.14.0 (run)"]
    assert result["env_diff"] == [f"candidate run {name}: torch: 2.13.0 (control) vs 2.14.0 (run)"]
    base[1]["devices"]["before"] = _snap(torch="2.12.0")  # the control side itself is not one environment
    assert any(r.startswith(f"baseline run {os.path.basename(base[1]['path'])}: environment differs")
               for r in compare(base, cand, noise=PRIOR)["health"])


def test_runs_without_a_capture_are_judged_as_before():
    base, cand = [run(100000.0 + i) for i in range(3)], [run(90000.0 + i) for i in range(3)]
    result = compare(base, cand, noise=PRIOR)
    assert (result["verdict"], result["health"], result["env_diff"], result["output_flag"]) == ("pass", [], [], None)


def test_a_changed_output_is_a_flag_and_with_require_same_output_a_fail():
    base = side(3, 100000.0, "baseline")
    cand = side(3, 90000.0, "w8a8", output=score(31.24))
    cand[0]["output_check"] = score()  # one run identical, the others changed
    result = compare(base, cand, noise=PRIOR, min_psnr_db=60)
    assert result["verdict"] == "pass" and result["output_flag"] == "output changed: PSNR 31.2 dB"
    assert result["output"]["checked"] == 3 and result["output"]["worst_psnr_db"] == 31.24
    assert result["reasons"].count("output changed: PSNR 31.2 dB") == 2
    assert compare(base, cand, noise=PRIOR, min_psnr_db=30)["output_flag"] is None  # 31.2 dB counts as the same
    strict = compare(base, cand, noise=PRIOR, min_psnr_db=60, require_same_output=True)
    assert strict["verdict"] == "fail"
    assert "output changed: PSNR 31.2 dB (require_same_output)" in strict["reasons"]


def test_an_output_not_compared_is_a_note_or_with_require_same_output_invalid():
    base = side(3, 100000.0, "baseline")
    cand = side(3, 90000.0, "gate1", output=score(status="error", reason="no fixed --base_seed", psnr=None,
                                                      identical=False))
    result = compare(base, cand, noise=PRIOR, min_psnr_db=60)
    assert result["verdict"] == "pass" and result["output_flag"] is None
    assert f"{os.path.basename(cand[0]['path'])}: output not compared: no fixed --base_seed" in result["reasons"]
    strict = compare(base, cand, noise=PRIOR, min_psnr_db=60, require_same_output=True)
    assert strict["verdict"] == "invalid"
    for r in cand:
        r["output_check"] = None
    assert compare(base, cand, noise=PRIOR, require_same_output=True)["verdict"] == "invalid"
    assert compare(base, cand, noise=PRIOR)["verdict"] == "pass"
