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
baseline and one candidate in the schedule's order (a warm-up, ABBA blocks)
under no drift (CV 0.5 % and 2.4 %), block drift (0.5 % between blocks,
0.2 % within), a linear trend (1 % a run) and a first-in-block effect (+1 %):
the noise-only pass and pass+fail rates, the pass rate at -3, -1 and -0.5 %,
and the mean runs an arm, for repeats 2/4/6 and repeats=auto (max 10, 20).
Targets at block drift: -1 % passes >= 80 % with 4 blocks, and repeats=auto
(max 10) >= 90 % at <= 6 runs an arm.  Then a genuine -3 % with 3 runs a
side built from the real 14B runs in docs/gpu-runs (each run's deviation from
its variant's mean, the candidate's times scaled by 0.97): it should pass.
Prints the number of simulated plays per row and the Monte-Carlo standard
error; the seed is fixed.

    .venv/bin/python benchmarks/bench_verdicts.py [--plays 1000] [--drift-plays 40] [--seed 20261204]
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


def adaptive_schedule(max_runs, seed):
    arm = {"family": "fsdp", "mode": "profiled", "family_baseline": "baseline"}
    selection = {"controls": {"fsdp:profiled": {**arm, "variant": "baseline"}},
                 "variants": [{**arm, "variant": "baseline"}, {**arm, "variant": "cand"}]}
    return sch.schedule(selection, repeats=max_runs, seed=seed, warmup=0, adaptive=True, play="P")


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
            if r["schedule"]["last_in_block"] and block >= 2:
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

SCENARIOS = {  # name: (within-run CV %, between-block CV %, trend % a run, first-in-block effect %)
    "no drift, CV 0.5 %": (0.5, 0.0, 0.0, 0.0),
    "no drift, CV 2.4 %": (2.4, 0.0, 0.0, 0.0),
    "block drift 0.5 % / 0.2 % within": (0.2, 0.5, 0.0, 0.0),
    "linear trend 1 %/run, CV 0.5 %": (0.5, 0.0, 1.0, 0.0),
    "first in block +1 %, CV 0.5 %": (0.5, 0.0, 0.0, 1.0),
}
DESIGNS = (("repeats 2", 2, False), ("repeats 4", 4, False), ("repeats 6", 6, False),
           ("auto, max 10", 10, True), ("auto, max 20", 20, True))


def play_verdict(rng, scenario, change_pct, repeats, adaptive, seed):
    """One play of baseline + one candidate in the project's order (warm-up, ABBA blocks), judged as the play
    judges it (the looks of repeats=auto, else the final report); (verdict, runs an arm)."""
    cv, block_cv, trend, first = scenario
    sched = adaptive_schedule(repeats, seed) if adaptive else sch.schedule(
        {"controls": {"fsdp:profiled": {**ARM, "variant": "baseline"}},
         "variants": [{**ARM, "variant": "baseline"}, {**ARM, "variant": "cand"}]},
        repeats=repeats, seed=seed, warmup=1, play="P")
    sigma, block_sigma = math.log1p(cv / 100), math.log1p(block_cv / 100)
    block_effect = rng.standard_normal(repeats + 1) * block_sigma
    seen = {"baseline": [], "cand": []}
    verdict = "inconclusive"
    for pos, r in enumerate(sched["runs"]):
        s = r["schedule"]
        log = sigma * rng.standard_normal() + block_effect[s["block"]] + math.log1p(trend / 100) * pos
        if not s["warmup"] and s["order"][0] == r["variant"]:
            log += math.log1p(first / 100)
        if r["variant"] == "cand":
            log += math.log1p(change_pct / 100)
        if s["warmup"]:
            continue
        seen[r["variant"]].append((LEVEL * math.exp(log), s["block"]))
        if adaptive and s["last_in_block"] and s["block"] >= 2 or not adaptive and pos == len(sched["runs"]) - 1:
            base, cand = (blocked(seen[a], a) for a in ("baseline", "cand"))
            result = cmp.compare(base, cand, confidence=s["confidence"] if adaptive else sched["confidence"])
            verdict = result["verdict"]
            if adaptive and sch.decided([result]):
                break
    return verdict, len(seen["cand"])


ARM = {"family": "fsdp", "mode": "profiled", "family_baseline": "baseline"}


def blocked(values_blocks, tag):
    out = runs([v for v, _ in values_blocks], tag, "P")
    for run, (_, block) in zip(out, values_blocks):
        run["manifest"]["schedule"]["block"] = block
    return out


def drift_table(rng, plays):
    print(f"\nissue 19: plays of baseline + 1 candidate in the project's order, {plays} plays a cell"
          " (MC SE of a rate p: sqrt(p (1 - p) / plays))")
    print(f"{'scenario':<36} {'design':<13} {'0 %: pass':>9} {'p+f':>6} {'-3 %':>6} {'-1 %':>6} {'-0.5 %':>7}"
          f" {'runs/arm at 0, -3, -1, -0.5':>28}")
    seed = itertools.count(1)
    for name, scenario in SCENARIOS.items():
        for design, repeats, adaptive in DESIGNS:
            cells, mean_runs = [], []
            for change in (0.0, -3.0, -1.0, -0.5):
                got = [play_verdict(rng, scenario, change, repeats, adaptive, next(seed)) for _ in range(plays)]
                cells.append([v for v, _ in got])
                mean_runs.append(sum(n for _, n in got) / plays)
            zero = cells[0]
            print(f"{name:<36} {design:<13} {100 * zero.count('pass') / plays:>9.1f}"
                  f" {100 * (zero.count('pass') + zero.count('fail')) / plays:>6.1f}"
                  + "".join(f" {100 * c.count('pass') / plays:>{w}.1f}" for c, w in zip(cells[1:], (6, 6, 7)))
                  + f" {', '.join(f'{m:.1f}' for m in mean_runs):>28}")


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
    parser.add_argument("--drift-plays", type=int, default=40,
                        help="plays a cell of the drift and power table (issue 19; default 40; 0 = skip it)")
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
        over = max(p - 2.5, pf - 5.0)
        mark = "ok" if over <= 0 else "~ (within 2 MC SE)" if over <= 2 * se else "MISSED"
        missed += mark == "MISSED"
        print(f"{name:<44} {cv:>5.1f} {plays:>6d} {p:>7.2f} {pf:>7.2f} {se:>6.2f}  {mark}")
    if args.drift_plays:
        drift_table(rng, args.drift_plays)
    real = real_14b_minus_3()
    print(f"\ngenuine -3 % on the real 14B runs (docs/gpu-runs, 3 vs 3, all {len(real)} splits):"
          f" pass {real.count('pass')}/{len(real)}")
    print(f"targets (pass <= 2.5 %, pass+fail <= 5 %): {f'{missed} row(s) MISSED' if missed else 'none missed'};"
          f" {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
