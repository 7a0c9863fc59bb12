"""wanbench.stats and the decisions compare makes from repeated runs of real logs."""

import math
import statistics
from pathlib import Path

import pytest
from scipy import stats as scipy_stats

from wanbench import stats
from wanbench.compare import compare
from wanbench.parse import parse_run

REPO = Path(__file__).resolve().parents[1]
GPU_13B = REPO / "docs" / "gpu-runs" / "h100x4-2026-11-27-1.3B-aa-nofsdp" / "runs"
GPU_14B = [REPO / "docs" / "gpu-runs" / f"h100x4-2026-11-26-run{i}" / "baseline" for i in (1, 2)]


def test_summary():
    s = stats.summary([100.0, 102.0, 101.0])
    assert (s["n"], s["median"], s["mean"], s["min"], s["max"]) == (3, 101.0, 101.0, 100.0, 102.0)
    assert s["sd"] == pytest.approx(1.0) and s["cv_pct"] == pytest.approx(100 / 101)
    assert s["range_pct"] == pytest.approx(200 / 101)
    assert stats.summary([5.0])["sd"] is None and stats.summary([])["n"] == 0


def test_welch_interval_on_log_times():
    base, cand = [100.0, 100.6, 99.5], [98.0, 97.8, 98.3]
    c = stats.change(base, cand)
    lb, lc = [math.log(x) for x in base], [math.log(x) for x in cand]
    d = statistics.fmean(lc) - statistics.fmean(lb)
    assert c["pct"] == pytest.approx((math.exp(d) - 1) * 100)
    ref = scipy_stats.ttest_ind(lc, lb, equal_var=False)  # an independent reference: scipy's Welch test
    assert c["method"] == "welch" and c["df"] == pytest.approx(ref.df)
    ci = ref.confidence_interval(0.95)
    assert c["ci"] == (pytest.approx((math.exp(ci.low) - 1) * 100), pytest.approx((math.exp(ci.high) - 1) * 100))
    assert c["ci"][0] < c["pct"] < c["ci"][1] < 0


def test_one_run_a_side_needs_a_measured_noise():
    c = stats.change([100.0], [99.0])
    assert (c["pct"], c["ci"], c["method"], c["df"]) == (pytest.approx(-1.0), None, "none", None)
    c = stats.change([100.0], [99.0], noise={"cv_pct": 0.2, "df": 12})
    half = scipy_stats.t.ppf(0.975, 12) * math.log1p(0.002) * math.sqrt(2)  # t with the noise's df, not z
    assert c["method"] == "known-noise" and c["df"] == 12
    assert c["ci"] == (pytest.approx((math.exp(math.log(0.99) - half) - 1) * 100),
                       pytest.approx((math.exp(math.log(0.99) + half) - 1) * 100))


@pytest.mark.parametrize("pct, ci, verdict", [
    (-1.0, (-1.5, -0.5), "pass"),
    (-0.5, (-0.9, -0.1), "pass"),          # at the threshold counts
    (-0.3, (-0.45, -0.1), "equivalent"),   # real, but inside +-threshold
    (-0.3, (-0.6, -0.1), "inconclusive"),  # real, smaller than the threshold, not inside it
    (-1.0, (-2.0, 0.1), "inconclusive"),
    (1.0, (0.2, 1.8), "fail"),
    (0.0, (-0.2, 0.2), "equivalent"),
    (-1.0, None, "inconclusive"),
])
def test_decide(pct, ci, verdict):
    assert stats.decide(pct, ci, 0.5) == verdict


def test_runs_needed():
    # the brief's figure: CV 0.59 % and 0.5 % need about 2 (1.96 + 0.84)^2 (CV / delta)^2 = 22 runs (z); t says 23
    assert stats.runs_needed(0.59, 0.5) == 23
    assert stats.runs_needed(0.59, 3.0) == 3
    assert stats.runs_needed(None, 0.5) is None and stats.runs_needed(1.0, 0) is None
    assert stats.runs_needed(2.0, 0.5) > stats.runs_needed(1.0, 0.5)


def test_pooled_cv_removes_each_groups_level():
    cv, df = stats.pooled_cv_pct([[100.0, 101.0], [200.0, 202.0], [7.0]])
    assert df == 2 and cv == pytest.approx((math.exp(math.log(1.01) / math.sqrt(2)) - 1) * 100)
    assert stats.pooled_cv_pct([[1.0], [2.0]]) == (None, 0)


def scaled(run, factor):
    """A run like this one with every time metric multiplied by factor (memory kept): another run (its own path,
    no files of its own), so that it is not the same run given twice."""
    return {**run, "path": f"{run['path']}-x{factor}", "sources": [],
            "metrics": {m: v * factor if v is not None and m != "reserved_peak" else v
                        for m, v in run["metrics"].items()}}


def unblocked(run):
    """The run without its schedule block (as a run of an older play, or a hand-picked directory)."""
    schedule = {k: v for k, v in run["manifest"]["schedule"].items() if k != "block"}
    return {**run, "manifest": {**run["manifest"], "schedule": schedule}}


def gpu_13b(variant):
    return [parse_run(p) for p in sorted(GPU_13B.glob(f"*-{variant}"))]


def test_aa_on_real_runs_decides_nothing():
    """Real A/A data: the reference at the 1.3B shape on 4x H100, 3 baseline and 3 aa runs in ABBA order."""
    base, aa = gpu_13b("baseline"), gpu_13b("aa")
    assert len(base) == 4 and len(aa) == 3  # the first baseline is the warm-up
    result = compare(base, aa)
    assert result["verdict"] == "inconclusive"
    assert result["n"] == {"baseline": 3, "candidate": 3}
    assert [e["why"] for e in result["excluded"]] == ["warm-up (discarded)"]
    low, high = result["ci_pct"]["request_total"]
    assert low < 0 < high
    assert result["noise_source"] == "data" and result["runs_needed"] > 3
    # every block holds one run of each arm: paired by block, -1.78 .. +4.75 %; Welch over all runs -4.15 .. +7.34 %
    assert result["method"] == "paired" and (round(low, 2), round(high, 2)) == (-1.78, 4.75)
    assert "paired by block, t on log differences, 3 blocks" in result["reasons"][3]
    welch = compare(base, [unblocked(r) for r in aa])
    assert welch["method"] == "welch" and [round(x, 2) for x in welch["ci_pct"]["request_total"]] == [-4.15, 7.34]
    assert "Welch t on log times (blocks incomplete)" in welch["reasons"][3]
    # 10 % beyond the noise of these runs (CV ~2.4 %) is decided; 3 % is decided paired by block (the drift
    # between blocks cancels), not by Welch over all runs, which says how many runs would be needed
    assert compare(base, [scaled(r, 1.10) for r in aa])["verdict"] == "fail"
    assert compare(base, [scaled(r, 0.90) for r in aa])["verdict"] == "pass"
    assert compare(base, [scaled(r, 1.03) for r in aa])["verdict"] == "fail"
    slower3 = compare(base, [unblocked(scaled(r, 1.03)) for r in aa])
    assert slower3["verdict"] == "inconclusive" and slower3["runs_needed"] > 3


def test_14b_baselines_resolve_3_percent():
    """Real 14B baselines (two sessions, 0.62 % apart): A/A is not decided, +-3 % is."""
    base = [parse_run(p) for p in GPU_14B]
    again = [scaled(parse_run(p), 1.0) for p in GPU_14B]
    assert compare(base, again)["verdict"] == "inconclusive"
    assert compare(base, [scaled(r, 1.03) for r in again])["verdict"] == "fail"
    assert compare(base, [scaled(r, 0.97) for r in again])["verdict"] == "pass"
    # one run a side: not decided without a known noise, whatever the difference
    single = compare(base[0], base[1])
    assert single["verdict"] == "inconclusive" and single["ci_pct"]["request_total"] is None
    assert single["noise_source"] == "none"
    # with the measured 14B noise (CV 0.59 %) the 0.62 % difference is still noise
    known = compare(base[0], base[1], noise={"cv_pct": 0.59, "df": 11, "source": "measured"})
    assert known["verdict"] == "inconclusive" and known["noise_source"] == "measured"
    assert known["runs_needed"] == 23


def play_runs(tag, values, blocks, positions):
    """Run dicts of one play as parse_run gives them, with the schedule's block and position of each."""
    from wanbench.parse import METRICS
    return [{"path": f"play/{tag}{i}", "kind": "run", "status": "ok", "reason": "", "warnings": [],
             "metrics": {**dict.fromkeys(METRICS), "request_total": v, "reserved_peak": 1000.0},
             "manifest": {"variant": tag, "schedule": {"play": "P", "warmup": False, "block": b, "position": p}}}
            for i, (v, b, p) in enumerate(zip(values, blocks, positions))]


def test_abba_pairs_analysed_together_cancel_an_order_effect():
    """Issue 19 item 4: a true -1 % under a +1 % effect of running first in a block. The block differences
    alternate -2 % / 0 %: paired alone they look like noise (inconclusive); the crossover analysis (the blocks
    where the candidate ran first against those where the control did) removes the order effect and passes."""
    first, noise = 1.01, [1.0, 1.001, 0.9995, 1.0005]
    cand_first = [False, True, True, False]  # AB BA | BA AB: the project's rotated ABBA pairs
    base = [10000.0 * (first if not cf else 1.0) for cf in cand_first]
    cand = [10000.0 * 0.99 * n * (first if cf else 1.0) for cf, n in zip(cand_first, noise)]
    blocks = [1, 2, 3, 4]
    pb = [2 * (b - 1) + (1 if cf else 0) for b, cf in zip(blocks, cand_first)]
    pc = [2 * (b - 1) + (0 if cf else 1) for b, cf in zip(blocks, cand_first)]
    crossed = stats.change(base, cand, blocks=(blocks, blocks), positions=(pb, pc))
    paired = stats.change(base, cand, blocks=(blocks, blocks))
    assert (crossed["method"], crossed["df"], paired["method"], paired["df"]) == ("crossover", 2, "paired", 3)
    assert crossed["pct"] == pytest.approx(paired["pct"])  # balanced: the same estimate, the order's spread removed
    # by hand: group means of the log differences, variance pooled within the two groups, s^2 / 4 (1/2 + 1/2)
    d = [math.log(c / b) for b, c in zip(base, cand)]
    groups = [[x for x, cf in zip(d, cand_first) if cf is f] for f in (True, False)]
    ss = sum((x - statistics.fmean(g)) ** 2 for g in groups for x in g)
    se = math.sqrt(ss / 2 * (1 / 2 + 1 / 2) / 4)
    q = scipy_stats.t.ppf(0.975, 2)
    assert crossed["ci"][1] == pytest.approx((math.exp(statistics.fmean(d) + q * se) - 1) * 100)
    assert stats.decide(crossed["pct"], crossed["ci"], 0.5) == "pass"
    assert stats.decide(paired["pct"], paired["ci"], 0.5) == "inconclusive"
    # through compare, with the manifests' blocks and positions: the method is named
    result = compare(play_runs("b", base, blocks, pb), play_runs("c", cand, blocks, pc))
    assert result["verdict"] == "pass" and result["method"] == "crossover"
    assert "order effect removed (ABBA pairs together: crossover t, 2 df), 4 blocks" in " ".join(result["reasons"])
    # 3 blocks, or both orders not equally often: paired as before
    assert stats.change(base[:3], cand[:3], blocks=(blocks[:3],) * 2, positions=(pb[:3], pc[:3]))["method"] == "paired"
