"""How often noise alone gives a verdict, and whether a real change still passes: a Monte-Carlo check.

Not a pass/fail test.  Every simulated play is judged by the project's own
decision (``wanbench.compare.compare`` and ``judge_family``, ``wanbench.stats``)
on runs ordered by its own ``wanbench.schedule``; only the times are drawn:
log-normal run-to-run noise at CV 0.5 % (14B on 4x H100) and 2.4 % (1.3B),
plus a play effect where a scenario has one.  Rows (noise only, true change 0):

* fresh control, repeats 2/3/5: interleaved control and candidate runs of one play;
* one run a side, with a store of df 1/2/4/10 (df + 1 stored runs of one play, one of another);
* baseline=stored: one control run from another play and 3 candidate runs,
  the play-to-play spread 1x or 2x the within-play spread, the store 11 plays
  of 3 runs;
* 9 candidates at repeats 3 against one control (any candidate's verdict counts);
* repeats=auto (max 10 runs an arm): the play's looks after every block.

Targets: pass <= 2.5 %, pass+fail <= 5 %.  Then (issue 19) plays of the
baseline and one candidate in the schedule's order (a warm-up round, ABBA
pairs, analysed together: ``stats.change`` with the runs' blocks and
positions) under no drift (CV 0.5 % and 2.4 %), block drift (0.5 % between
blocks, 0.2 % within), a linear trend (1 % a run), a first-in-block effect
(+1 %) and a slow first run of the play (+19 %, as on the 2-core machine):
the noise-only pass and pass+fail rates with their MC SE, the pass rate at
-3, -1 and -0.5 %, and the mean runs an arm, for repeats 2/4/6 and
repeats=auto (max 10, 20).  Targets at block drift: -1 % passes >= 80 % with
4 blocks, and repeats=auto (max 10) >= 90 % at <= 6 runs an arm.  Then a
genuine -3 % with 3 runs a side built from the real 14B runs in docs/gpu-runs
(each run's deviation from its variant's mean, the candidate's times scaled
by 0.97): it should pass.  Prints the number of simulated plays per row and
the Monte-Carlo standard error; a rate past its target by less than 2 MC SE
is marked "~"; the seed is fixed.

    .venv/bin/python benchmarks/bench_verdicts.py [--plays 1000] [--drift-plays 500] [--seed 20261204]
"""

import argparse
import inspect
import itertools
import math
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from wanbench import compare as cmp  # noqa: E402
from wanbench import schedule as sch  # noqa: E402
from wanbench import stats  # noqa: E402
from wanbench.parse import METRICS, parse_run  # noqa: E402

LEVEL = 10000.0  # ms: any level, the noise is multiplicative
GPU_14B = [REPO / "docs" / "gpu-runs" / f"h100x4-2026-11-26-run{i}" / v
           for v in ("baseline", "ffn_only", "nofsdp") for i in (1, 2)]


def runs(values, tag, play, blocks=True):
    """Run dicts as parse_run gives them (the fields compare reads), one per value, all of one play.

    ``blocks``: the i-th run is in block i + 1, as a play's manifests record it (False: no block recorded)."""
    return [{"path": f"sim/{tag}{i}", "kind": "run", "status": "ok", "reason": "", "warnings": [],
             "metrics": {**dict.fromkeys(METRICS), "request_total": float(v), "reserved_peak": 1000.0},
             "manifest": {"variant": tag, "schedule": {"play": play, "warmup": False,
                                                       **({"block": i + 1} if blocks else {})}}}
            for i, v in enumerate(values)]


def store_noise(groups):
    """The noise of stored runs grouped by play, as the store computes it."""
    groups = [list(map(float, g)) for g in groups]
    if hasattr(stats, "noise_from_plays"):
        noise = stats.noise_from_plays(groups)
        return noise and {**noise, "source": "simulated store"}
    cv, df = stats.pooled_cv_pct(groups)  # before the store kept its df: at least MIN_STORED_RUNS runs
    enough = sum(map(len, groups)) >= getattr(stats, "MIN_STORED_RUNS", 0)
    return {"cv_pct": cv, "df": df, "source": "simulated store"} if cv and enough else None


ACROSS = {"allow_mismatch": ("play",)} if "allow_mismatch" in inspect.signature(cmp.compare).parameters else {}


def judge(base, groups, confidence=stats.CONFIDENCE, noise=None, across=False):
    """The verdicts of candidate groups against one control, as the report judges them (``across``: a control
    from another play, as the report of baseline=stored allows it)."""
    kw = ACROSS if across else {}
    if hasattr(cmp, "judge_family"):
        return [r["verdict"] for r in cmp.judge_family(base, groups, confidence=confidence, noise=noise, **kw)]
    return [cmp.compare(base, g, noise=noise, confidence=confidence, **kw)["verdict"] for g in groups]


def lognormal(rng, cv_pct, shape):
    return LEVEL * np.exp(rng.standard_normal(shape) * math.log1p(cv_pct / 100))


# ---------------------------------------------------------------------------- scenarios: one play each


def fresh(rng, cv, plays, repeats):
    x = lognormal(rng, cv, (plays, 2, repeats))
    return [judge(runs(p[0], "b", "P"), [runs(p[1], "c", "P")]) for p in x]


def one_run_with_store(rng, cv, plays, df):
    x = lognormal(rng, cv, (plays, 2))
    s = lognormal(rng, cv, (plays, df + 2))  # df + 1 runs of one play and a play of one run: df + 2 runs, df df
    return [judge(runs(p[:1], "b", "P"), [runs(p[1:], "c", "P")], noise=store_noise([st[:-1], st[-1:]]))
            for p, st in zip(x, s)]


def stored_baseline(rng, cv, plays, between_x, stored_plays=11, per_play=3):
    sigma_b = math.log1p(cv / 100) * between_x
    out = []
    for _ in range(plays):
        effects = np.exp(rng.standard_normal(stored_plays + 2) * sigma_b)
        store = lognormal(rng, cv, (stored_plays, per_play)) * effects[:stored_plays, None]
        control = lognormal(rng, cv, 1) * effects[-2]
        cand = lognormal(rng, cv, 3) * effects[-1]
        out.append(judge(runs(control, "b", "stored"), [runs(cand, "c", "tonight")], noise=store_noise(store),
                         across=True))
    return out


def nine(rng, cv, plays, repeats=3, k=9):
    x = lognormal(rng, cv, (plays, k + 1, repeats))
    return [judge(runs(p[0], "b", "P"), [runs(p[i], f"c{i}-", "P") for i in range(1, k + 1)]) for p in x]


ARM = {"family": "fsdp", "mode": "profiled", "family_baseline": "baseline"}


def adaptive_schedule(max_runs, seed):
    selection = {"controls": {"fsdp:profiled": {**ARM, "variant": "baseline"}},
                 "variants": [{**ARM, "variant": "baseline"}, {**ARM, "variant": "cand"}]}
    return sch.schedule(selection, repeats=max_runs, seed=seed, warmup=0, adaptive=True, play="P")


def play_schedule(repeats, adaptive, seed):
    """The schedule of a play of the baseline and one candidate: a warm-up round, then ABBA pairs."""
    selection = {"controls": {"fsdp:profiled": {**ARM, "variant": "baseline"}},
                 "variants": [{**ARM, "variant": "baseline"}, {**ARM, "variant": "cand"}]}
    return sch.schedule(selection, repeats=repeats, seed=seed, warmup=1, adaptive=adaptive, play="P")


def auto(rng, cv, plays, max_runs=10, change_pct=0.0, seed=1):
    """repeats=auto: look after every block from the second on at the schedule's level; stop once decided."""
    sched = adaptive_schedule(max_runs, seed)
    out, used = [], []
    factor = 1 + change_pct / 100
    for _ in range(plays):
        x = lognormal(rng, cv, (2, max_runs))
        seen = {"baseline": [], "cand": []}
        verdicts = ["inconclusive"]
        for r in sched["runs"]:
            arm, block = r["variant"], r["schedule"]["block"]
            seen[arm].append(x[0 if arm == "baseline" else 1, block - 1] * (factor if arm == "cand" else 1))
            if r["schedule"]["look"]:
                results = (cmp.judge_family(runs(seen["baseline"], "b", "P"), [runs(seen["cand"], "c", "P")],
                                            confidence=r["schedule"]["confidence"])
                           if hasattr(cmp, "judge_family") else
                           [cmp.compare(runs(seen["baseline"], "b", "P"), runs(seen["cand"], "c", "P"),
                                        confidence=r["schedule"]["confidence"])])
                verdicts = [g["verdict"] for g in results]
                if sch.decided(results):
                    break
        out.append(verdicts)
        used.append(len(seen["cand"]))
    return out, float(np.mean(used))


# ---------------------------------------------------------------------------- issue 19: drift and power

SCENARIOS = {  # name: (within-run CV %, between-block CV %, trend % a run, first-in-block %, first run of the play %)
    "no drift, CV 0.5 %": (0.5, 0.0, 0.0, 0.0, 0.0),
    "no drift, CV 2.4 %": (2.4, 0.0, 0.0, 0.0, 0.0),
    "block drift 0.5 % / 0.2 % within": (0.2, 0.5, 0.0, 0.0, 0.0),
    "linear trend 1 %/run, CV 0.5 %": (0.5, 0.0, 1.0, 0.0, 0.0),
    "first in block +1 %, CV 0.5 %": (0.5, 0.0, 0.0, 1.0, 0.0),
    "first run of play +19 %, CV 0.5 %": (0.5, 0.0, 0.0, 0.0, 19.0),
}
DESIGNS = (("repeats 2", 2, False), ("repeats 4", 4, False), ("repeats 6", 6, False),
           ("auto, max 10", 10, True), ("auto, max 20", 20, True))


def play_verdict(rng, scenario, change_pct, repeats, adaptive, seed, check=False):
    """One play of baseline + one candidate in the project's order (a warm-up round, ABBA pairs), judged as the
    play judges it (the looks of repeats=auto, else the final report); (verdict, runs an arm).

    The request_total decision is compare's own (``stats.change`` on the runs with their blocks and positions,
    ``stats.decide``, an equivalent interval reported inconclusive, ``schedule.decided``), called directly: about
    20 times faster than ``compare``, whose other rules cannot apply to these healthy, comparable runs.
    ``check``: every look is judged by ``compare`` too, and the two must agree."""
    cv, block_cv, trend, first, cold = scenario
    sched = play_schedule(repeats, adaptive, seed)
    sigma, block_sigma = math.log1p(cv / 100), math.log1p(block_cv / 100)
    block_effect = rng.standard_normal(sched["repeats"] + 1) * block_sigma
    seen = {"baseline": [], "cand": []}
    verdict = "inconclusive"
    for r in sched["runs"]:
        s = r["schedule"]
        pos = s["position"]
        log = sigma * rng.standard_normal() + block_effect[s["block"]] + math.log1p(trend / 100) * pos
        if s["order"][0] == r["variant"]:
            log += math.log1p(first / 100)
        if pos == 0:
            log += math.log1p(cold / 100)
        if r["variant"] == "cand":
            log += math.log1p(change_pct / 100)
        if s["warmup"]:
            continue
        seen[r["variant"]].append((LEVEL * math.exp(log), s["block"], pos))
        if s["look"] or not adaptive and pos == len(sched["runs"]) - 1:
            level = s["confidence"] if adaptive else sched["confidence"]
            (b, bb, bp), (c, cb, cp) = (zip(*seen[a]) for a in ("baseline", "cand"))
            got = stats.change(list(b), list(c), confidence=level, blocks=(list(bb), list(cb)),
                               positions=(list(bp), list(cp)))
            verdict = stats.decide(got["pct"], got["ci"], cmp.THRESHOLD_PCT)
            result = {"verdict": "inconclusive" if verdict == "equivalent" else verdict,
                      "equivalent": verdict == "equivalent"}
            if check:
                full = cmp.compare(*(blocked(seen[a], a) for a in ("baseline", "cand")), confidence=level)
                assert (full["verdict"], full["equivalent"], full["method"]) == (
                    result["verdict"], result["equivalent"], got["method"]), (full["reasons"], got)
            verdict = result["verdict"]
            if adaptive and sch.decided([result]):
                break
    return verdict, len(seen["cand"])


CHECKED = 3  # plays a cell whose every look is judged by compare as well (they must agree)


def blocked(values_blocks, tag):
    """Run dicts of one play whose manifests record each run's block and position, as the play's do."""
    out = runs([v for v, _, _ in values_blocks], tag, "P")
    for run, (_, block, position) in zip(out, values_blocks):
        run["manifest"]["schedule"].update(block=block, position=position)
    return out


def mark(over, se):
    """ok, "~ (within 2 MC SE)" or MISSED for a rate ``over`` points past its target (negative: within it)."""
    return "ok" if over <= 0 else "~ (within 2 MC SE)" if over <= 2 * se else "MISSED"


def drift_table(rng, plays):
    """The issue 19 table: noise-only rates in every scenario, power and runs an arm; returns the targets missed."""
    print(f"\nissue 19: plays of baseline + 1 candidate in the project's order (a warm-up round, ABBA pairs,"
          f" analysed together), {plays} plays a cell")
    print(f"{'scenario':<34} {'design':<12} {'0 %: pass':>9} {'p+f':>5} {'MC SE':>5} {'-3 %':>6} {'-1 %':>6}"
          f" {'-0.5 %':>6} {'runs/arm at 0, -3, -1, -0.5':>27}  noise-only target")
    seed, found, missed = itertools.count(1), {}, 0
    for name, scenario in SCENARIOS.items():
        for design, repeats, adaptive in DESIGNS:
            cells, mean_runs = [], []
            for change in (0.0, -3.0, -1.0, -0.5):
                got = [play_verdict(rng, scenario, change, repeats, adaptive, next(seed), check=i < CHECKED)
                       for i in range(plays)]
                cells.append([v for v, _ in got])
                mean_runs.append(sum(n for _, n in got) / plays)
                if change == -1.0:
                    runs_se = float(np.std([n for _, n in got], ddof=1)) / math.sqrt(plays)
            p, pf, se = rates([[v] for v in cells[0]])
            found[name, design] = (cells[2].count("pass") / plays, mean_runs[2], runs_se)
            verdict = mark(max(p - 2.5, pf - 5.0), se)
            missed += verdict == "MISSED"
            print(f"{name:<34} {design:<12} {p:>9.1f} {pf:>5.1f} {se:>5.2f}"
                  + "".join(f" {100 * c.count('pass') / plays:>6.1f}" for c in cells[1:])
                  + f" {', '.join(f'{m:.1f}' for m in mean_runs):>27}  {verdict}")
    drift = "block drift 0.5 % / 0.2 % within"
    for design, want, runs_cap in (("repeats 4", 0.80, None), ("auto, max 10", 0.90, 6.0)):
        rate, runs_an_arm, runs_se = found[drift, design]
        se = math.sqrt(rate * (1 - rate) / plays) * 100
        ok = mark(want * 100 - rate * 100, se)
        if runs_cap is not None and ok != "MISSED" and runs_an_arm > runs_cap:
            ok = mark(runs_an_arm - runs_cap, runs_se)
        missed += ok == "MISSED"
        print(f"target, {drift}, {design}: -1 % passes {rate * 100:.1f} % (MC SE {se:.1f}), want >= {want * 100:.0f} %"
              + (f"; {runs_an_arm:.2f} runs an arm (MC SE {runs_se:.2f}), want <= {runs_cap:g}" if runs_cap else "")
              + f": {ok}")
    return missed


# ---------------------------------------------------------------------------- the real 14B runs


def real_14b_minus_3():
    """3 vs 3 from the real 14B runs: every split of their deviations; the candidate side scaled by 0.97."""
    totals = [parse_run(p)["metrics"]["request_total"] for p in GPU_14B]
    logs = np.log(totals).reshape(3, 2)
    residual = np.exp((logs - logs.mean(axis=1, keepdims=True)).ravel())  # each run against its variant's mean
    base_level = float(np.exp(logs[0].mean()))
    verdicts = []
    for chosen in itertools.combinations(range(6), 3):
        rest = [i for i in range(6) if i not in chosen]
        # the directories record no blocks (no manifests): compare judges them by Welch, as here
        verdicts.append(judge(runs(base_level * residual[list(chosen)], "b", "P", blocks=False),
                              [runs(base_level * 0.97 * residual[rest], "c", "P", blocks=False)])[0])
    return verdicts


# ---------------------------------------------------------------------------- table


def rates(results):
    """(pass %, pass+fail %, Monte-Carlo SE of pass+fail in points) over plays; any candidate's verdict counts."""
    n = len(results)
    passed = sum("pass" in v for v in results) / n
    decided = sum(("pass" in v) or ("fail" in v) for v in results) / n
    return passed * 100, decided * 100, math.sqrt(decided * (1 - decided) / n) * 100


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plays", type=int, default=1000, help="simulated plays per row (default 1000)")
    parser.add_argument("--seed", type=int, default=20261204)
    parser.add_argument("--drift-plays", type=int, default=500,
                        help="plays a cell of the drift and power table (issue 19; default 500; 0 = skip it)")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    started = time.perf_counter()
    n, half = args.plays, max(200, args.plays // 2)  # the costly rows (10 comparisons a play) run half as many
    rows = []
    print(f"noise-only verdicts, judged by wanbench's own compare/stats/schedule (seed {args.seed})")
    print(f"{'scenario':<44} {'CV %':>5} {'plays':>6} {'pass %':>7} {'p+f %':>7} {'MC SE':>6}  target")
    for cv in (0.5, 2.4):
        cases = [(f"fresh control, repeats {r}", lambda r=r: fresh(rng, cv, n, r), n) for r in (2, 3, 5)]
        cases += [(f"one run a side, store of df {d}", lambda d=d: one_run_with_store(rng, cv, n, d), n)
                  for d in (1, 2, 4, 10)]
        cases += [(f"baseline=stored, between-play {b}x within", lambda b=b: stored_baseline(rng, cv, n, b), n)
                  for b in (1, 2)]
        cases += [("9 candidates, repeats 3 (any verdict)", lambda: nine(rng, cv, half), half)]
        for name, run, plays in cases:
            rows.append((name, cv, plays, *rates(run())))
        results, mean_runs = auto(rng, cv, half)
        rows.append((f"repeats=auto, max 10 (mean {mean_runs:.1f} runs an arm)", cv, half, *rates(results)))
    missed = 0
    for name, cv, plays, p, pf, se in rows:
        # a rate above its target by less than 2 Monte-Carlo SE is not shown to miss it (an exact 95 % test
        # gives 5 % pass+fail): "~"
        verdict = mark(max(p - 2.5, pf - 5.0), se)
        missed += verdict == "MISSED"
        print(f"{name:<44} {cv:>5.1f} {plays:>6d} {p:>7.2f} {pf:>7.2f} {se:>6.2f}  {verdict}")
    if args.drift_plays:
        missed += drift_table(rng, args.drift_plays)
    real = real_14b_minus_3()
    print(f"\ngenuine -3 % on the real 14B runs (docs/gpu-runs, 3 vs 3, all {len(real)} splits):"
          f" pass {real.count('pass')}/{len(real)}")
    print(f"targets (pass <= 2.5 %, pass+fail <= 5 %; issue 19's): {f'{missed} MISSED' if missed else 'none missed'};"
          f" {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
