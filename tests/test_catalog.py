"""wanbench.catalog and wanbench.command: validation and resolution of the variant catalog in group_vars, and the per-run command."""

import copy
import shlex
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml

from wanbench import catalog as C
from wanbench.command import command, master_port, run_id
from wanbench.schedule import schedule

REPO = Path(__file__).resolve().parents[1]
VARS = yaml.safe_load((REPO / "group_vars/all/catalog.yml").read_text())
# Paths that Ansible templates from the inventory.
SITE = {"{{ wanbench_quant_dit_path }}": "/models/w8a8", "{{ wanbench_quant_blocks_path }}": "/models/qblocks"}


def real_catalog():
    variants = copy.deepcopy(VARS["wanbench_variants"])
    for v in variants.values():
        for k, val in (v.get("flags") or {}).items():
            if val in SITE:
                v["flags"][k] = SITE[val]
    return {"common": copy.deepcopy(VARS["wanbench_common"]),
            "platform_settings": copy.deepcopy(VARS["wanbench_platform_settings"]),
            "families": copy.deepcopy(VARS["wanbench_families"]),
            "modes": copy.deepcopy(VARS["wanbench_modes"]),
            "variants": variants}


@pytest.fixture
def cat():
    return real_catalog()


def errors_of(cat):
    with pytest.raises(C.CatalogError) as exc:
        C.check_catalog(cat)
    return exc.value.errors


# ------------------------------------------------------------------ the shipped catalog
def test_shipped_catalog_is_valid_and_quiet(cat):
    assert C.check_catalog(cat) == []


def test_every_variant_of_the_target_tables_is_there(cat):
    fsdp = {"baseline", "agwait1", "agwait1_lasta2a", "gate0", "gate1", "fence1", "nofsdp",
            "ffn_only", "reshard0", "group2"}
    assert set(C.select(cat, "all", family="fsdp")) == fsdp
    framework = C.select(cat, "all", family="framework")
    assert framework[0] == "fw_baseline" and len(framework) == 8
    for name in fsdp:
        assert C.resolve(cat, name)["steps"] == 20
    for name in framework:
        assert C.resolve(cat, name)["steps"] == 10


def test_baseline_resolves_to_the_handbook_command(cat):
    r = C.resolve(cat, "baseline", platform="npu")
    assert r["env"] == {"WAN_A2A_FENCE": "0", "WAN_A2A_EVENT_GATE": "0", "WAN_FSDP_ALLGATHER_WAIT_A2A": "0",
                        "WAN_FSDP_RESHARD_AFTER_FORWARD": "1", "WAN_FSDP_BLOCK_GROUP_SIZE": "1",
                        "WAN_FSDP_WRAP_MODE": "block"}
    assert r["args"] == ["--task", "t2v-14B", "--size", "832*480", "--frame_num", "81", "--sample_steps", "20",
                         "--ulysses_size", "4", "--dit_fsdp", "--t5_fsdp", "--vae_parallel", "--serialize_comm", "--base_seed", "42",
                         "--profile_stage", "--profile_attn"]
    cmd = command(r, "/runs/x", ckpt_dir="/apps/sharedstorage/Wan2.1-T2V-14B", devices="0,1,2,3",
                    master_port_=29555, save_file="output.mp4")
    assert cmd["env"]["ASCEND_RT_VISIBLE_DEVICES"] == "0,1,2,3"
    assert cmd["argv"][:7] == ["torchrun", "--nproc_per_node=4", "--master_addr", "127.0.0.1",
                               "--master_port", "29555", "generate.py"]
    tail = cmd["argv"][-8:]
    assert tail == ["--ckpt_dir", "/apps/sharedstorage/Wan2.1-T2V-14B", "--profile_stage_file",
                    "/runs/x/perf.csv", "--save_file", "/runs/x/output.mp4", "--prompt", "A boy plays piano."]
    words = shlex.split(cmd["command_line"])
    assert words[len(cmd["env"]):] == cmd["argv"]
    assert words[:len(cmd["env"])] == [f"{k}={v}" for k, v in cmd["env"].items()]


def test_derived_variant_changes_one_thing(cat):
    base, ffn = C.resolve(cat, "baseline"), C.resolve(cat, "ffn_only")
    assert ffn["base"] == "baseline"
    assert {k: v for k, v in ffn["env"].items() if base["env"].get(k) != v} == {"WAN_FSDP_WRAP_MODE": "ffn_only"}
    assert ffn["args"] == base["args"]
    nofsdp = C.resolve(cat, "nofsdp")
    assert "--dit_fsdp" not in nofsdp["args"] and "--t5_fsdp" not in nofsdp["args"]


def test_platform_settings_and_modes(cat):
    ref = C.resolve(cat, "baseline", platform="reference")
    assert ref["settings"]["task"] == "t2v-tiny" and ref["steps"] == 20
    assert command(ref, "/r", devices="0,1")["env"].get("CUDA_VISIBLE_DEVICES") is None
    cuda = command(C.resolve(cat, "baseline", platform="cuda"), "/r", devices="0,1,2,3")
    assert cuda["env"]["CUDA_VISIBLE_DEVICES"] == "0,1,2,3" and "ASCEND_RT_VISIBLE_DEVICES" not in cuda["env"]
    rt = C.resolve(cat, "ffn_only", mode="runtime_only")
    assert "--profile_stage" not in rt["args"] and rt["env"]["WAN_SLOW_CARD_DIAG"] == "0"
    assert "piano's" in rt["settings"]["prompt"]
    assert "--profile_stage_file" not in command(rt, "/r")["argv"]


def test_fingerprints_separate_what_matters(cat):
    a = C.resolve(cat, "baseline", platform="reference")
    assert a["fingerprint"] == C.resolve(cat, "baseline", platform="reference")["fingerprint"]
    assert a["fingerprint"] != C.resolve(cat, "baseline", platform="npu")["fingerprint"]
    assert a["fingerprint"] != C.resolve(cat, "baseline", platform="reference", overrides={"prompt": "x"})["fingerprint"]
    assert a["fingerprint"] != C.resolve(cat, "baseline", platform="reference", mode="runtime_only")["fingerprint"]
    assert a["common_fingerprint"] == C.resolve(cat, "ffn_only", platform="reference")["common_fingerprint"]


def test_value_flags_and_dropped_flags(cat):
    cat["variants"]["offload"] = {"base": "baseline", "flags": {"offload_model": False, "base_seed": 7}}
    r = C.resolve(cat, "offload")
    i = r["args"].index("--offload_model")
    assert r["args"][i:i + 2] == ["--offload_model", "False"]
    i = r["args"].index("--base_seed")  # a variant's value replaces the inherited one
    assert r["args"][i:i + 2] == ["--base_seed", "7"] and r["args"].count("--base_seed") == 1


# ------------------------------------------------------------------ selection errors
def test_unknown_variant_lists_the_known_ones(cat):
    with pytest.raises(C.CatalogError) as exc:
        C.select(cat, "ffn_only,nope")
    msg = str(exc.value)
    assert "unknown variant 'nope'" in msg and "baseline" in msg and "group2" in msg


@pytest.mark.parametrize("spec", ["", " , ", None])
def test_no_variant_is_an_error(cat, spec):
    with pytest.raises(C.CatalogError, match="no variant given"):
        C.select(cat, spec)


def test_selection_keeps_order_and_drops_repeats(cat):
    assert C.select(cat, "ffn_only, nofsdp,ffn_only") == ["ffn_only", "nofsdp"]
    with pytest.raises(C.CatalogError, match="unknown family"):
        C.select(cat, "all", family="nope")


# ------------------------------------------------------------------ catalog errors
def test_unknown_switch_and_flag(cat):
    cat["variants"]["bad"] = {"base": "baseline", "env": {"WAN_A2A_FENSE": 1}, "flags": {"dit_fdsp": True}}
    errs = errors_of(cat)
    assert any("unknown switch 'WAN_A2A_FENSE'" in e for e in errs)
    assert any("unknown generate.py flag 'dit_fdsp'" in e for e in errs)


@pytest.mark.parametrize("env,flags,needle", [
    ({"WAN_FSDP_BLOCK_GROUP_SIZE": "two"}, {}, "expected int, got str"),
    ({"WAN_FSDP_BLOCK_GROUP_SIZE": 0}, {}, "below the minimum 1"),
    ({"WAN_A2A_EVENT_GATE": True}, {}, "expected int, got bool"),
    ({"WAN_FSDP_WRAP_MODE": "ffn"}, {}, "not one of block, ffn_only"),
    ({}, {"dit_fsdp": "yes"}, "expected bool, got str"),
    ({}, {"cfg_size": 3}, "not one of 1, 2"),
    ({}, {"sparsity": "high"}, "expected float"),
])
def test_wrong_types(cat, env, flags, needle):
    cat["variants"]["bad"] = {"base": "baseline", "env": env, "flags": flags}
    assert any(needle in e and "wanbench_variants.bad" in e for e in errors_of(cat))


@pytest.mark.parametrize("env", [{"WAN_FSDP_BLOCK_GROUP_SIZE": 2}, {"WAN_FSDP_WRAP_MODE": "ffn_only"}])
def test_block_group_or_wrap_reaching_t5_is_refused(cat, env):
    cat["variants"]["t5only"] = {"base": "baseline", "env": env, "flags": {"dit_fsdp": False}}
    assert any("must never reach T5" in e for e in errors_of(cat))
    cat["variants"]["t5only"]["flags"]["t5_fsdp"] = False  # no FSDP at all: nothing reaches T5
    C.check_catalog(cat)


def test_steps_other_than_the_family_are_refused(cat):
    cat["variants"]["fifty"] = {"base": "baseline", "steps": 50}
    assert any("steps 50 differ from family 'fsdp'" in e for e in errors_of(cat))
    cat["variants"]["fifty"] = {"family": "framework", "mode": "profiled", "steps": 20}
    assert any("steps 20 differ from family 'framework'" in e for e in errors_of(cat))


def test_managed_and_mode_flags_are_refused(cat):
    cat["variants"]["bad"] = {"base": "baseline", "flags": {"sample_steps": 10, "prompt": "x", "profile_stage": False}}
    errs = errors_of(cat)
    assert any("'sample_steps' is set by the family" in e for e in errs)
    assert any("'prompt' is set by common settings" in e for e in errs)
    assert any("'profile_stage' belongs to the measurement mode" in e for e in errs)


def test_structure_errors(cat):
    cat["variants"]["loop_a"] = {"base": "loop_b"}
    cat["variants"]["loop_b"] = {"base": "loop_a"}
    cat["variants"]["orphan"] = {"base": "nope"}
    cat["variants"]["typo"] = {"base": "baseline", "envs": {}}
    cat["variants"]["root"] = {"env": {}}
    errs = errors_of(cat)
    assert any("unknown key 'envs'" in e for e in errs)
    assert any("root variant (no base:) needs 'family'" in e for e in errs)
    del cat["variants"]["typo"], cat["variants"]["root"]
    errs = errors_of(cat)
    assert any("base cycle" in e for e in errs)
    assert any("unknown base 'nope'" in e for e in errs)


def test_common_settings_are_checked(cat):
    cat["common"]["frame_num"] = 80
    cat["common"]["size"] = "832x480"
    errs = errors_of(cat)
    assert any("80 is not 4n+1" in e for e in errs) and any("is not W*H" in e for e in errs)


def test_parallel_sizes_must_match_nproc(cat):
    cat["variants"]["cfg2"] = {"base": "baseline", "flags": {"cfg_size": 2}}
    with pytest.raises(C.CatalogError, match="= 8, but nproc = 4"):
        C.resolve(cat, "cfg2")


def test_rainfusion_needs_the_non_fused_cfg_path(cat):
    cat["variants"]["bad"] = {"base": "fw_rainfusion", "flags": {"cfg_fused_forward": True}}
    assert any("--use_rainfusion requires the non-fused CFG path" in e for e in errors_of(cat))


def test_missing_catalog_parts_point_at_group_vars():
    with pytest.raises(C.CatalogError, match="group_vars/all/catalog.yml"):
        C.check_catalog({"common": {}})


# ------------------------------------------------------------------ warnings
def test_more_than_one_main_variable_warns(cat):
    cat["variants"]["two"] = {"base": "baseline", "env": {"WAN_A2A_FENCE": 1, "WAN_A2A_EVENT_GATE": 1}}
    warnings = C.check_catalog(cat)
    assert len(warnings) == 1 and "'two' differs from its base 'baseline' in 2 main variables" in warnings[0]
    assert C.plan(cat, "two", platform="reference")["warnings"] == warnings
    assert C.plan(cat, "ffn_only", platform="reference")["warnings"] == []


def test_grouped_switches_count_once(cat):
    # nofsdp turns two flags off but changes one main variable (FSDP); diagnostics are not main variables
    cat["variants"]["diag"] = {"base": "baseline", "env": {"WAN_SLOW_CARD_DIAG": 1, "WAN_SLOW_CARD_OP_DIAG": 1}}
    cat["variants"]["cache"] = {"base": "fw_baseline",
                                "flags": {"use_attentioncache": True, "attentioncache_ratio": 1.5}}
    assert C.check_catalog(cat) == []


# ------------------------------------------------------------------ plan and schedule
def test_plan_runs_the_selected_baseline_as_the_control(cat):
    p = C.plan(cat, "ffn_only,baseline", platform="reference")
    assert [r["variant"] for r in p["variants"]] == ["baseline", "ffn_only"]
    s = schedule(p, repeats=1, warmup=0, seed=0)
    assert sorted((r["variant"], r["role"]) for r in s["runs"]) == [("baseline", "control"), ("ffn_only", "candidate")]
    assert s["controls"]["fsdp:profiled"]["source"] == "selected"


def test_control_matches_the_candidates_mode_and_family(cat):
    p = C.plan(cat, "ffn_only,fw_algo1", platform="reference", mode="runtime_only")
    assert set(p["controls"]) == {"fsdp:runtime_only", "framework:runtime_only"}
    assert p["controls"]["framework:runtime_only"]["variant"] == "fw_baseline"
    assert p["controls"]["fsdp:runtime_only"]["mode"] == "runtime_only"


def test_aa_is_reserved(cat):
    bad = {**cat, "variants": {**cat["variants"], "aa": {"base": "baseline", "env": {"WAN_A2A_FENCE": 1}}}}
    with pytest.raises(C.CatalogError, match="'aa' is a reserved selection name"):
        C.check_catalog(bad)
    assert "aa = the baseline against itself" in str(pytest.raises(C.CatalogError, C.plan, cat, "nope").value)


def test_run_id_and_port():
    rid = run_id("ffn_only", now=datetime(2026, 11, 26, 12, 0, 0, tzinfo=timezone.utc), token="abc123")
    assert rid == "20261126T120000Z-ffn_only-abc123"
    assert run_id("x") != run_id("x")
    assert 20000 <= master_port(rid) < 30000 and master_port(rid) == master_port(rid)


def test_hostile_prompt_stays_one_argv_element(cat):
    prompt = "It's \"$(touch /tmp/pwned)\" `id` 钢琴\nline two"
    r = C.resolve(cat, "baseline", platform="reference", overrides={"prompt": prompt})
    cmd = command(r, "/r")
    assert cmd["argv"][-2:] == ["--prompt", prompt]
    assert shlex.split(cmd["command_line"])[-1] == prompt


def test_detailed_profile_mode_and_its_steps_are_flags(cat):
    cat = copy.deepcopy(cat)
    cat["variants"]["detail"] = {"base": "baseline", "flags": {"profile_mode": "detailed", "profile_mode_steps": 2}}
    r = C.resolve(cat, "detail", platform="reference")
    assert r["args"][r["args"].index("--profile_mode"):][:4] == ["--profile_mode", "detailed", "--profile_mode_steps", "2"]
    assert not [w for w in C.check_catalog(cat) if "'detail'" in w]  # diagnostics, not a main variable
    cat["variants"]["detail"]["flags"]["profile_mode_steps"] = 0
    with pytest.raises(C.CatalogError, match="profile_mode_steps"):
        C.check_catalog(cat)
