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


def test_schedule_warmup_then_blocks(cat):
    sel = C.plan(cat, "ffn_only", platform="reference")
    s = S.schedule(sel, repeats=3, seed=11, warmup=1, play="P")
    runs = s["runs"]
    assert len(runs) == 7 and s["seed"] == 11 and s["controls"]["fsdp:profiled"]["source"] == "rerun"
    assert runs[0]["warmup"] and runs[0]["variant"] == "baseline" and runs[0]["repeat"] == 0
    assert not any(r["warmup"] for r in runs[1:])
    assert [r["schedule"]["position"] for r in runs] == list(range(7))
    assert all(r["schedule"]["play"] == "P" and r["schedule"]["seed"] == 11 for r in runs)
    blocks = [[r["variant"] for r in runs if r["schedule"]["block"] == b] for b in (1, 2, 3)]
    assert blocks[1] == blocks[0][::-1] and sorted(blocks[2]) == ["baseline", "ffn_only"]
    assert [r["role"] for r in runs if r["variant"] == "ffn_only"] == ["candidate"] * 3
    assert [r["repeat"] for r in runs if r["variant"] == "baseline"] == [0, 1, 2, 3]


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
    assert S.plan_text(s).startswith("play P: 3 runs, 1 repeat(s) an arm, 1 warm-up, order seed 5: baseline (warm-up), ")
