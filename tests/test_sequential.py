"""Adaptive repeats (issue 19 item 2): Lan-DeMets alpha spending over the looks, recorded by the schedule."""

import math

import pytest
from scipy import stats as scipy_stats

from wanbench import schedule, stats

ARM = {"family": "fsdp", "mode": "profiled", "family_baseline": "baseline"}
SELECTION = {"controls": {"fsdp:profiled": {**ARM, "variant": "baseline"}},
             "variants": [{**ARM, "variant": "baseline"}, {**ARM, "variant": "gate1"}]}


@pytest.mark.parametrize("shape", stats.SPENDING)
def test_the_looks_spend_exactly_alpha(shape):
    levels = stats.look_levels(10, 0.95, shape)
    assert sorted(levels) == list(range(2, 11))
    assert sum(1 - level for level in levels.values()) == pytest.approx(0.05)


def test_obrien_fleming_spends_little_early_and_most_at_the_end():
    # 2 - 2 Phi(1.96 / sqrt(t)) at t = 0.2: 1.2e-5; the last look gets 1.1 %, more than Bonferroni's 0.56 %
    assert stats.spent_alpha(0.2) == pytest.approx(2 - 2 * scipy_stats.norm.cdf(1.959964 / math.sqrt(0.2)))
    levels = stats.look_levels(10)
    assert 1 - levels[2] < 2e-5 and 1 - levels[10] > 0.05 / 9
    assert [levels[k] for k in range(2, 11)] == sorted((levels[k] for k in range(2, 11)), reverse=True)
    pocock = stats.look_levels(10, shape="pocock")
    assert 1 - pocock[2] > 1 - levels[2]  # Pocock spends more early
    with pytest.raises(ValueError, match="alpha spending 'linear'"):
        stats.spent_alpha(0.5, shape="linear")


def test_the_schedule_looks_after_each_pair_of_blocks_and_records_its_level():
    """Issue 19 item 4: an adaptive play looks after every ABBA pair (a look after block 3 judged an unbalanced
    play); the alpha is spent over the pairs, and an odd budget is rounded up."""
    sched = schedule.schedule(SELECTION, repeats=4, seed=1, warmup=0, adaptive=True, play="p")
    pairs = stats.look_levels(2, first=1)  # 2 looks: after blocks 2 and 4
    by_block = {r["schedule"]["block"]: r["schedule"] for r in sched["runs"]}
    assert sched["levels"] == {2: pairs[1], 4: pairs[2]} and sched["looks"] == 2
    assert {b: s["confidence"] for b, s in by_block.items()} == {1: pairs[2], 2: pairs[1], 3: pairs[2], 4: pairs[2]}
    assert [r["schedule"]["block"] for r in sched["runs"] if r["schedule"]["look"]] == [2, 4]
    assert by_block[1]["spent_alpha"] == by_block[2]["spent_alpha"] == pytest.approx(1 - pairs[1])
    assert by_block[4]["spent_alpha"] == pytest.approx(0.05) and by_block[4]["spending"] == "obrien-fleming"
    assert sched["confidence"] == pairs[2]  # the final report's level: the last look's
    assert "2 looks, alpha spent obrien-fleming-shaped: 99.44 %, 95.56 %" in schedule.plan_text(sched)
    odd = schedule.schedule(SELECTION, repeats=5, seed=1, warmup=0, adaptive=True, balanced=False)
    assert odd["repeats"] == 6 and "max_runs=5 rounded up to 6" in odd["note"]
    with pytest.raises(schedule.ScheduleError, match="alpha_spending='x'"):
        schedule.schedule(SELECTION, repeats=4, adaptive=True, spending="x")
    fixed = schedule.schedule(SELECTION, repeats=4, seed=1, warmup=0, play="p")
    assert {r["schedule"]["confidence"] for r in fixed["runs"]} == {0.95}
    assert not any(r["schedule"]["look"] for r in fixed["runs"])


def test_an_equivalent_look_stops_the_play_and_an_invalid_one_never_does():
    """The futility stop: an interval inside +-threshold settles a look (reported inconclusive, equivalent)."""
    equivalent = {"verdict": "inconclusive", "equivalent": True}
    assert schedule.decided([equivalent, {"verdict": "pass", "equivalent": False}])
    assert not schedule.decided([equivalent, {"verdict": "inconclusive", "equivalent": False}])
    assert not schedule.decided([{"verdict": "invalid", "equivalent": False}]) and not schedule.decided([])


def test_runs_for_the_verdict_sought_follow_the_observed_change():
    """Issue 19: an observed -3 % at CV 2.4 % printed 369 runs a side (the power to resolve 0.5 %) although 11 a side
    give 80 % for a true -3 %; a significant -0.43 % could never pass, yet was told 6 more runs."""
    sought = stats.runs_to_decide(-3.0, 2.4, 3, 0.5)
    assert (sought["more"], sought["runs"], sought["outcome"], sought["cannot"]) == (8, 11, "pass", None)
    assert stats.runs_needed(2.4, 0.5) > 300  # the planning figure, kept apart
    small = stats.runs_to_decide(-0.43, 0.5, 10, 0.5)
    assert small["cannot"] == "pass" and small["outcome"] == "equivalent"
    assert stats.runs_to_decide(-1.0, None, 3, 0.5) is None


def test_runs_to_decide_uses_the_block_differences_when_the_analysis_is_paired():
    """Issue 19 item 3: paired by block, the standard error is the block differences' sd / sqrt(N) with N - 1 df
    (N - 2 for the crossover), not Welch's sigma sqrt(2 / N): with drift between blocks the differences are far
    quieter than the runs, and far fewer runs decide."""
    welch = stats.runs_to_decide(-1.0, 2.0, 4, 0.5)  # runs spread by block drift: CV 2 %
    sd = math.log1p(0.8 / 100)  # a block's difference: 0.8 %
    paired = stats.runs_to_decide(-1.0, 2.0, 4, 0.5, paired=(sd, 1))
    crossover = stats.runs_to_decide(-1.0, 2.0, 4, 0.5, paired=(sd, 2))
    assert (welch["runs"], paired["runs"], crossover["runs"]) == (62, 7, 8)
    # the chance at the answer, computed here: the estimate at or beyond the threshold and t * se from 0
    d, thr = -math.log1p(-0.01), math.log1p(0.005)
    for n, lost, chance in ((7, 1, paired["chance"]), (8, 2, crossover["chance"])):
        def power(runs):
            se = sd / math.sqrt(runs)
            return scipy_stats.norm.cdf((d - max(scipy_stats.t.ppf(0.975, runs - lost) * se, thr)) / se)
        assert chance == pytest.approx(power(n)) and power(n) >= 0.8 > power(n - 1)
    assert stats.runs_to_decide(-1.0, None, 4, 0.5, paired=(sd, 1))["runs"] == 7  # the run noise not needed
