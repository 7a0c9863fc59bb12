"""Honest noise and multiplicity (issue 16 items 2 and 3): what a verdict may rest on.

Real runs: the 1.3B-shape A/A play and the 14B baselines on 4x H100 in docs/gpu-runs, and the
workload's log sample (tests/fixtures/samples) for the stored runs.
"""

import json
from pathlib import Path

import pytest

from wanbench import cli, stats
from wanbench.compare import compare, judge_family
from wanbench.parse import parse_run

REPO = Path(__file__).resolve().parents[1]
GPU_13B = REPO / "docs" / "gpu-runs" / "h100x4-2026-11-27-1.3B-aa-nofsdp" / "runs"
GPU_14B = [REPO / "docs" / "gpu-runs" / f"h100x4-2026-11-26-run{i}" / "baseline" for i in (1, 2)]
SAMPLE = REPO / "tests" / "fixtures" / "samples" / "run_sample_baseline.log"
SAMPLE_TOTAL = "request_total: 104321.987"


def scaled(run, factor, path=None, play=None):
    """A run like this one (its own path, no files of its own: not the same run given twice) with every time
    metric multiplied by factor (memory kept), optionally of a play."""
    manifest = dict(run.get("manifest") or {})
    if play:
        manifest["schedule"] = {**(manifest.get("schedule") or {}), "play": play, "warmup": False}
    return {**run, "path": path or f"{run['path']}-x{factor}", "manifest": manifest, "sources": [],
            "metrics": {m: v * factor if v is not None and m != "reserved_peak" else v
                        for m, v in run["metrics"].items()}}


def gpu_13b(variant):
    return [parse_run(p) for p in sorted(GPU_13B.glob(f"*-{variant}"))]


# ------------------------------------------------------------------ zero spread


def test_zero_spread_on_both_sides_gives_no_interval():
    """The same times twice a side used to make a zero-width interval that PASSed (-3.61 %, CI -3.61 .. -3.61)."""
    c = stats.change([100.0, 100.0], [96.39, 96.39])
    assert c["ci"] is None and c["method"] == "none" and "zero spread" in c["why"]
    run = parse_run(GPU_14B[0])
    base = [scaled(run, 1.0, path=f"{run['path']}-copy{i}") for i in range(2)]
    cand = [scaled(run, 0.9639, path=f"{run['path']}-cand{i}") for i in range(2)]
    result = compare(base, cand)
    assert result["verdict"] == "inconclusive" and result["ci_pct"]["request_total"] is None
    assert "both sides have zero spread (identical times): no interval" in result["reasons"][-1] or any(
        "zero spread" in r for r in result["reasons"])


# ------------------------------------------------------------------ stored noise with its df


def stored_run(root, name, play, total, *, fingerprint="fp", host="h", started="2026-11-27T10:00:00Z", sha="a" * 40):
    """A stored run directory: the workload's log sample with request_total replaced, and its manifest."""
    d = root / name
    d.mkdir(parents=True)
    (d / "run.log").write_text(SAMPLE.read_text().replace(SAMPLE_TOTAL, f"request_total: {total:.3f}"))
    (d / "manifest.json").write_text(json.dumps({
        "variant": "baseline", "host": host, "fingerprint": fingerprint, "started_at": started,
        "repo": {"sha": sha, "dirty": False}, "schedule": {"play": play, "warmup": False}}))
    (d / "exit_code").write_text("0\n")
    return d


def test_a_store_of_one_degree_of_freedom_cannot_decide(tmp_path):
    """Three near-identical stored runs (CV 0.07 %, 1 df) used to be taken as exact (a z interval)."""
    from wanbench.store import stored_noise

    stored_run(tmp_path, "r1", "p1", 100000.0)
    stored_run(tmp_path, "r2", "p1", 100100.0)
    stored_run(tmp_path, "r3", "p2", 100000.0)
    noise = stored_noise(str(tmp_path), "fp")
    base, cand = parse_run(GPU_14B[0]), scaled(parse_run(GPU_14B[1]), 0.97)
    result = compare(base, cand, noise=noise)
    assert result["verdict"] == "inconclusive" and result["ci_pct"]["request_total"] is None
    assert (noise["df"], noise["runs"], noise["plays"]) == (1, 3, 2)
    assert noise["cv_pct"] == pytest.approx(0.0707, abs=1e-3)
    assert "the noise has 1 degrees of freedom, fewer than the 10 needed" in result["reasons"][-2]
    # with 10 df the same noise decides, on a t interval of 10 df (wider than z)
    enough = compare(base, cand, noise={**noise, "df": 10})
    assert enough["verdict"] == "pass"
    assert enough["method"] == "known-noise" and "10 df" in enough["reasons"][-1] or any(
        ", 10 df (" in r for r in enough["reasons"])


def test_a_prior_without_df_does_not_decide():
    """-e wanbench_noise_cv_pct=0.01 alone used to let one run a side pass or fail."""
    base, cand = parse_run(GPU_14B[0]), parse_run(GPU_14B[1])
    result = compare(base, cand, noise={"cv_pct": 0.01, "source": "prior"})
    assert result["verdict"] == "inconclusive" and result["ci_pct"]["request_total"] is None
    assert any("a prior noise (no degrees of freedom) informs planning only" in r for r in result["reasons"])
    assert result["runs_needed"] == 2  # it still informs the runs needed


def test_a_store_with_zero_spread_is_reported_not_a_crash(tmp_path, capsys):
    """Identical stored times used to make every later report fail: 'noise cv_pct must be a number > 0'."""
    for i in range(4):
        stored_run(tmp_path / "store", f"s{i}", f"p{i // 2}", 100000.0)
    base = stored_run(tmp_path, "base", "p9", 100000.0)
    cand = stored_run(tmp_path, "cand", "p9", 97000.0)
    code = cli.main(["compare", "--baseline", str(base), str(cand), "--noise-store", str(tmp_path / "store")])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "zero spread (identical times)" in out.out and "inconclusive" in out.out


def test_the_store_window_keeps_recent_runs_of_this_host(tmp_path):
    from wanbench.store import stored_noise

    for i, (total, started) in enumerate([(100000.0, "2026-09-01T00:00:00Z"), (103000.0, "2026-09-01T01:00:00Z"),
                                          (100000.0, "2026-11-26T00:00:00Z"), (100100.0, "2026-11-26T01:00:00Z")]):
        stored_run(tmp_path, f"r{i}", f"p{i // 2}", total, started=started, sha="a" * 40 if i < 2 else "b" * 40)
    stored_run(tmp_path, "other-host", "p1", 150000.0, host="elsewhere", started="2026-11-26T02:00:00Z")
    from datetime import datetime, timezone

    now = datetime(2026, 11, 27, tzinfo=timezone.utc)
    everything = stored_noise(str(tmp_path), "fp", host="h")
    recent = stored_noise(str(tmp_path), "fp", host="h", window_days=30, now=now)
    newest = stored_noise(str(tmp_path), "fp", host="h", window_commits=1, now=now)
    assert (everything["runs"], everything["df"]) == (4, 2)
    assert (recent["runs"], recent["df"]) == (2, 1) and recent["cv_pct"] < 0.1
    assert (newest["runs"], newest["df"]) == (2, 1) and "last 1 commits" in newest["source"]


# ------------------------------------------------------------------ a control from another play


def test_a_control_from_another_play_needs_the_play_to_play_part():
    """baseline=stored: the within-play noise alone left out the variance between plays (false pass 10.7-21.9 %)."""
    control = scaled(parse_run(GPU_14B[0]), 1.0, play="stored-play")
    cands = [scaled(parse_run(GPU_14B[1]), f, path=f"c{i}", play="tonight") for i, f in enumerate((0.97, 0.971, 0.969))]
    within_only = {"cv_pct": 0.5, "df": 20, "between": None, "source": "stored: one play"}
    across = {"allow_mismatch": ("play",)}  # a stored control comes from another play by design (--across-plays)
    result = compare(control, cands, noise=within_only, **across)
    assert result["verdict"] == "inconclusive" and result["ci_pct"]["request_total"] is None
    assert any("no play-to-play estimate" in r for r in result["reasons"])
    # with the store's between-play estimate it decides, on a wider interval than the within-play noise gives
    plays = [[100.0 * f for f in g] for g in ([1.0, 1.004, 0.996], [1.01, 1.006, 1.014], [0.995, 0.99, 0.999],
                                              [1.003, 1.0, 1.007], [0.998, 1.002, 0.994], [1.0, 0.996, 1.004])]
    noise = {**stats.noise_from_plays(plays), "source": "stored: 6 plays"}
    assert noise["between"]["df_between"] == 5 and noise["between"]["cv_pct"] > 0
    judged = compare(control, cands, noise=noise, min_noise_df=5, **across)
    same_play = compare(scaled(control, 1.0, play="tonight"), cands, noise=noise, min_noise_df=5)
    assert judged["method"] == "stored-noise+between" and judged["verdict"] == "pass"
    width = lambda r: r["ci_pct"]["request_total"][1] - r["ci_pct"]["request_total"][0]  # noqa: E731
    assert same_play["method"] == "known-noise" and width(judged) > width(same_play)


# ------------------------------------------------------------------ multiplicity


def test_holm_levels_step_down():
    assert stats.holm_levels([0.04]) == [0.95]
    assert stats.holm_levels([0.001, 0.02, 0.04]) == pytest.approx([1 - 0.05 / 3, 1 - 0.05 / 2, 0.95])
    # the step-down stops at the first test it cannot reject: the rest keep that level
    assert stats.holm_levels([0.03, 0.04, None]) == pytest.approx([1 - 0.05 / 3] * 3)


def test_nine_candidates_against_one_control_are_one_holm_family():
    """Nine candidates at 95 % each: a false pass somewhere in 9.4-10.5 % of plays; Holm keeps it to 5 %."""
    base, aa = gpu_13b("baseline"), gpu_13b("aa")
    factors = [0.80] + [0.92] * 8  # one clear gain (p 0.0009); eight that pass alone at 95 % (p 0.029), not among nine
    groups = [[scaled(r, f, path=f"{r['path']}-c{i}") for r in aa] for i, f in enumerate(factors)]
    alone = [compare(base, g) for g in groups]
    assert [r["verdict"] for r in alone] == ["pass"] * 9
    family = judge_family(base, groups)
    assert [r["verdict"] for r in family] == ["pass"] + ["inconclusive"] * 8
    first = family[0]
    assert first["family"] == {"size": 9, "method": "Holm", "confidence": 0.95, "level": pytest.approx(1 - 0.05 / 9)}
    assert first["confidence"] == pytest.approx(1 - 0.05 / 9)
    assert any("family of 9 candidates against one control: Holm step-down at 95 % family-wise" in r
               for r in first["reasons"])
    # one candidate: unchanged
    assert judge_family(base, groups[:1])[0] == {**alone[0]}
