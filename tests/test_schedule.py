"""wanbench.schedule: warm-up, interleaved blocks, recorded order, report groups."""

import pytest

from wanbench import catalog as C
from wanbench import schedule as S


@pytest.fixture
def cat():
    import yaml
    from pathlib import Path
    d = yaml.safe_load((Path(__file__).resolve().parents[1] / "group_vars" / "all" / "catalog.yml").read_text())
    return {"common": d["wanbench_common"], "platform_settings": d.get("wanbench_platform_settings"),
            "families": d["wanbench_families"], "modes": d["wanbench_modes"], "variants": d["wanbench_variants"]}


def test_block_orders_are_abba():
    for seed in range(20):
        orders = S.block_orders(["a", "b"], 4, seed)
        assert orders[1] == orders[0][::-1] and orders[3] == orders[2][::-1]
        flat = [x for o in orders[:2] for x in o]
        assert sum(i for i, x in enumerate(flat) if x == "a") == sum(i for i, x in enumerate(flat) if x == "b")
    assert S.block_orders(["a", "b", "c"], 3, 7) == S.block_orders(["a", "b", "c"], 3, 7)
    assert len({tuple(S.block_orders(["a", "b", "c"], 1, s)[0]) for s in range(30)}) > 1  # seeds shuffle


def test_schedule_warmup_round_then_balanced_blocks(cat):
    """Issue 19 item 4: every arm runs a discarded warm-up (not the control alone), and repeats=3 becomes 4 blocks
    in ABBA pairs (block 3 was a fresh shuffle: unbalanced), with a note saying so."""
    sel = C.plan(cat, "ffn_only", platform="reference")
    s = S.schedule(sel, repeats=3, seed=11, warmup=1, play="P")
    runs = s["runs"]
    assert (s["repeats"], s["repeats_asked"], s["seed"]) == (4, 3, 11)
    assert "repeats=3 rounded up to 4" in s["note"] and "repeats=3 rounded up to 4" in S.plan_text(s)
    assert len(runs) == 10 and s["controls"]["fsdp:profiled"]["source"] == "rerun"
    warm = [r for r in runs if r["warmup"]]
    assert runs[:2] == warm and sorted(r["variant"] for r in warm) == ["baseline", "ffn_only"]
    assert all(r["repeat"] == 0 and r["schedule"]["block"] == 0 for r in warm)
    assert [r["variant"] for r in warm] == [r["variant"] for r in runs if r["schedule"]["block"] == 1]
    assert [r["schedule"]["position"] for r in runs] == list(range(10))
    assert all(r["schedule"]["play"] == "P" and r["schedule"]["seed"] == 11 for r in runs)
    assert {r["schedule"]["design"] for r in runs} == {S.DESIGN}
    blocks = [[r["variant"] for r in runs if r["schedule"]["block"] == b] for b in (1, 2, 3, 4)]
    assert blocks[1] == blocks[0][::-1] and blocks[3] == blocks[2][::-1]
    for arm in ("baseline", "ffn_only"):  # each arm first in a block as often as the other
        assert sum(b[0] == arm for b in blocks) == 2
    assert [r["role"] for r in runs if r["variant"] == "ffn_only"] == ["candidate"] * 5
    assert [r["repeat"] for r in runs if r["variant"] == "baseline"] == [0, 1, 2, 3, 4]
    assert S.schedule(sel, repeats=3, seed=11, warmup=0, balanced=False)["repeats"] == 3  # opt-out: as asked
    one = S.schedule(sel, repeats=1, seed=11, warmup=0)
    assert one["repeats"] == 1 and "not balanced" in one["note"]


def test_each_arm_takes_each_position_equally_often():
    """Three arms: pair j runs the shuffle rotated j times, so over 3 pairs each arm is first, second and last
    equally often (a fresh shuffle per pair left that to chance)."""
    for seed in range(10):
        orders = S.block_orders(["a", "b", "c"], 6, seed)
        for arm in "abc":
            assert sorted(o.index(arm) for o in orders) == [0, 0, 1, 1, 2, 2]
        assert all(orders[i + 1] == orders[i][::-1] for i in (0, 2, 4))


def test_aa_is_the_baseline_under_another_name(cat):
    sel = C.plan(cat, "aa", platform="reference")
    (aa,) = sel["variants"]
    base = sel["controls"]["fsdp:profiled"]
    assert aa["variant"] == "aa" and aa["fingerprint"] == base["fingerprint"] and aa["args"] == base["args"]
    s = S.schedule(sel, repeats=2, seed=1, warmup=0)
    assert sorted((r["variant"], r["role"]) for r in s["runs"]) == [
        ("aa", "candidate"), ("aa", "candidate"), ("baseline", "control"), ("baseline", "control")]


@pytest.mark.parametrize("policy, stored, variants, source", [
    ("rerun", None, ["baseline", "ffn_only"], "rerun"),
    ("skip", "/results/h/run1", ["ffn_only"], "none"),
    ("stored", "/results/h/run1", ["ffn_only"], "stored"),
    ("stored", None, ["ffn_only"], "none"),
])
def test_baseline_policies(cat, policy, stored, variants, source):
    sel = C.plan(cat, "ffn_only", platform="reference")
    s = S.schedule(sel, policy, {"fsdp:profiled": stored}, repeats=1, warmup=0)
    assert [r["variant"] for r in s["runs"]] in (variants, variants[::-1])
    assert s["controls"]["fsdp:profiled"]["source"] == source


@pytest.mark.parametrize("kwargs, message", [
    ({"baseline": "auto"}, "baseline='auto': expected one of rerun, skip, stored"),
    ({"repeats": 0}, "repeats: expected a positive whole number, got 0"),
    ({"repeats": "three"}, "repeats: expected a positive whole number, got 'three'"),
    ({"warmup": -1}, "warmup=-1: expected a whole number >= 0"),
])
def test_schedule_errors(cat, kwargs, message):
    with pytest.raises(S.ScheduleError, match=message.replace("(", r"\(")):
        S.schedule(C.plan(cat, "ffn_only", platform="reference"), **kwargs)


def test_report_groups(cat):
    s = S.schedule(C.plan(cat, "ffn_only", platform="reference"), repeats=1, seed=3, warmup=1)
    collected = [{"variant": r["variant"], "role": r["role"], "control_key": r["control_key"],
                  "path": f"/res/{i}"} for i, r in enumerate(s["runs"])]
    (g,) = S.report_groups(collected, s["controls"], out_root="/res/reports/T")
    assert g["controls"] == [c["path"] for c in collected if c["role"] == "control"] and len(g["controls"]) == 2
    assert g["candidates"] == [c["path"] for c in collected if c["role"] == "candidate"]
    assert (g["control_source"], g["out"]) == ("rerun", "/res/reports/T/fsdp-profiled")
    (g,) = S.report_groups([], s["controls"])
    assert (g["controls"], g["control_source"]) == ([], "none")


def test_plan_text(cat):
    s = S.schedule(C.plan(cat, "ffn_only", platform="reference"), repeats=1, seed=5, warmup=1, play="P")
    assert S.plan_text(s).startswith("play P: 4 runs, 1 repeat(s) an arm (repeats=1: one block, its order not balanced")
    assert "1 warm-up round(s) (one discarded run of every arm), order seed 5: " in S.plan_text(s)
    assert S.plan_text(s).count("(warm-up)") == 2
