"""Only comparable runs are judged (issue 16 items 1 and 4), on the real GPU runs in docs/gpu-runs.

docs/gpu-runs/h100x4-2026-11-26-run{1,2}: 14B-shape runs (no manifest; their logs say what ran);
docs/gpu-runs/h100x4-2026-11-27-1.3B-aa-nofsdp/runs: 1.3B-shape runs of one play, with manifests.
Changed copies are made in a temporary folder.
"""

import json
import os
import re
import shutil
from pathlib import Path

import pytest

from wanbench import cli
from wanbench.compare import compare
from wanbench.parse import parse_run

GPU = Path(__file__).resolve().parents[1] / "docs" / "gpu-runs"
B14 = [GPU / "h100x4-2026-11-26-run1" / "baseline", GPU / "h100x4-2026-11-26-run2" / "baseline"]
RUNS13 = GPU / "h100x4-2026-11-27-1.3B-aa-nofsdp" / "runs"
BASE13 = [RUNS13 / n for n in ("03-baseline", "04-baseline", "08-baseline")]
NOFSDP13 = [RUNS13 / n for n in ("01-nofsdp", "06-nofsdp", "07-nofsdp")]


def wanbench(capsys, *argv):
    rc = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def copy(tmp_path, run, name=None, manifest=None):
    """A copy of a run directory, its manifest updated with ``manifest``."""
    dst = tmp_path / (name or run.name)
    shutil.copytree(run, dst)
    if manifest is not None:
        path = dst / "manifest.json"
        data = json.loads(path.read_text()) if path.exists() else {}
        path.write_text(json.dumps({**data, **manifest}))
    return dst


def test_the_same_run_twice_a_side_is_an_error_not_a_zero_width_pass(capsys):
    # main: PASS (-3.61 %, CI -3.61 .. -3.61), exit 0
    rc, out, err = wanbench(capsys, "compare", "--baseline", B14[0], "--baseline", B14[0], B14[1], B14[1])
    assert (rc, out) == (2, "")
    assert err.startswith(f"wanbench: {B14[0]} and {B14[0]} are the same run (same directory)")
    assert err.rstrip().endswith("give each run once") and len(err.splitlines()) == 1


def test_a_run_as_its_own_baseline_is_an_error(capsys):
    rc, _, err = wanbench(capsys, "compare", "--baseline", B14[0], B14[0])  # main: "not enough values to unpack"
    assert rc == 2 and err == f"wanbench: {B14[0]} is given as a baseline and as a candidate: the same run\n"


def test_byte_identical_copies_are_the_same_run(tmp_path, capsys):
    a, b = copy(tmp_path, B14[0], "a"), copy(tmp_path, B14[0], "b")
    c, d = copy(tmp_path, B14[1], "c"), copy(tmp_path, B14[1], "d")
    rc, _, err = wanbench(capsys, "compare", "--baseline", a, "--baseline", b, c, d)
    assert rc == 2 and f"{a} and {b} are the same run (same content)" in err


def test_14b_controls_against_1_3b_candidates_are_not_comparable(capsys):
    # main: PASS -74 %, no warning
    rc, out, err = wanbench(capsys, "compare", *[f"--baseline={b}" for b in B14], *NOFSDP13)
    assert (rc, out) == (2, "")
    assert err == ("wanbench: not comparable: the runs differ in task (t2v-14B vs t2v-1.3B) (the control first);"
                   " --allow-mismatch task compares them anyway\n")
    # in a play's own report: an invalid verdict naming the key
    rc, out, _ = wanbench(capsys, "compare", "--json", "--on-mismatch", "invalid",
                          *[f"--baseline={b}" for b in B14], *NOFSDP13)
    (group,) = json.loads(out)
    assert group["verdict"] == "invalid"
    assert group["reasons"][0] == "not comparable: the runs differ in task (t2v-14B vs t2v-1.3B) (the control first)"


def test_allow_mismatch_compares_and_is_logged(tmp_path, capsys):
    base = [copy(tmp_path, b, manifest={"repo": {"sha": "a" * 40, "dirty": False}}) for b in BASE13]
    cand = [copy(tmp_path, c, manifest={"repo": {"sha": "b" * 40, "dirty": False}}) for c in NOFSDP13]
    rc, _, err = wanbench(capsys, "compare", *[f"--baseline={b}" for b in base], *cand)
    assert rc == 2 and "the runs differ in commit (aaaaaaaaaaaa" in err and "--allow-mismatch commit" in err
    rc, out, _ = wanbench(capsys, "compare", "--json", "--allow-mismatch", "commit",
                          *[f"--baseline={b}" for b in base], *cand)
    (group,) = json.loads(out)
    assert rc == 0 and group["verdict"] == "fail"  # reserved_peak +78.68 %
    assert f"allowed mismatch (--allow-mismatch commit): commit ({'a' * 40} vs {'b' * 40})" in group["reasons"]


def test_a_log_that_disagrees_with_its_manifest_makes_the_run_invalid(tmp_path):
    # the history case: the manifest said t2v-tiny, the workload's log said what really ran
    told = copy(tmp_path, NOFSDP13[1], manifest={"settings": {"task": "t2v-tiny", "size": "64*64", "frame_num": 5,
                                                              "steps": 20}})
    result = compare([parse_run(b) for b in BASE13], [parse_run(told), parse_run(NOFSDP13[2])])
    assert result["verdict"] == "invalid"
    assert result["reasons"][0] == ("candidate run 06-nofsdp: the workload's log disagrees with its manifest:"
                                    " task (manifest t2v-tiny vs log t2v-1.3B), size (manifest 64*64 vs log 832*480),"
                                    " frame_num (manifest 5 vs log 81)")


def _zero_memory(run_dir):
    """The profiler's memory figures of a run set to 0.0 (what a run without memory profiling prints)."""
    number = re.compile(r"\d+\.\d+")
    csv = run_dir / "perf.csv"
    csv.write_text("".join(number.sub("0.000", line) if line.startswith("MEM") else line
                           for line in csv.read_text().splitlines(True)))
    log = run_dir / "run.log"
    log.write_text("".join(
        line[:line.index("StageProfile]")] + number.sub("0.0", line[line.index("StageProfile]"):])
        if "alloc_peak=" in line or "request_peak_mem" in line else line for line in log.read_text().splitlines(True)))


@pytest.mark.parametrize("unmeasured", ["candidate", "baseline"])
def test_memory_measured_on_one_side_only_is_invalid_never_skipped(tmp_path, unmeasured):
    # main: the memory rule was skipped, and nofsdp turned from FAIL (+78.68 %) to PASS
    base = [copy(tmp_path, b) for b in BASE13]
    cand = [copy(tmp_path, c) for c in NOFSDP13]
    for run_dir in (cand if unmeasured == "candidate" else base):
        _zero_memory(run_dir)
    result = compare([parse_run(b) for b in base], [parse_run(c) for c in cand])
    assert all(not r["memory_measured"] for r in map(parse_run, cand if unmeasured == "candidate" else base))
    assert result["verdict"] == "invalid"
    assert (f"memory not measured for the {unmeasured} (all memory figures 0.0 or absent),"
            " measured for the other side: no memory verdict") in result["reasons"]

    # both sides unmeasured (e.g. runs of a profiler without memory): no memory verdict, as before
    for run_dir in (base if unmeasured == "candidate" else cand):
        _zero_memory(run_dir)
    result = compare([parse_run(b) for b in base], [parse_run(c) for c in cand])
    assert result["diff_pct"]["reserved_peak"] is None and result["verdict"] != "invalid"
    assert "reserved_peak not measured (all memory figures 0.0 or absent): no memory verdict" in result["reasons"]


def test_a_change_of_workload_starts_a_new_history_series_instead_of_an_alarm(tmp_path):
    """Nights 1-4 ran the 1.3B shape; nights 5-6 printed a 14B-shape run in their log while the manifest
    still said t2v-1.3B (the issue's history case). main: one series, ALARM on request_total and reserved_peak."""
    from wanbench import history, index

    host = tmp_path / "vm"
    template = json.loads((BASE13[0] / "manifest.json").read_text())
    nights = [(k, BASE13) for k in (1, 2, 3, 4)] + [(5, B14), (6, B14)]
    for k, runs in nights:
        for i, run in enumerate(runs):
            stamp = f"2026-11-{k:02d}T02:{i:02d}:00Z"
            copy(host, run, f"n{k}-{i}", manifest={
                **template, "started_at": stamp, "ended_at": stamp, "repo": {"sha": f"{k:040d}", "dirty": False},
                "schedule": {**template["schedule"], "play": f"play{k}", "warmup": False, "position": i}})
    index.build(tmp_path)
    series = history.load(str(tmp_path))
    assert history.alarms(series) == []
    lengths = sorted((len(s["nights"]), s["metric"]) for s in series)
    assert lengths == [(2, "request_total"), (2, "reserved_peak"), (4, "request_total"), (4, "reserved_peak")]


def test_the_render_step_records_the_workload_identity_old_manifests_get_the_same():
    import yaml

    from wanbench import catalog, manifest, play

    cat = yaml.safe_load((GPU.parents[1] / "group_vars/all/catalog.yml").read_text())
    resolved = catalog.resolve({k.removeprefix("wanbench_"): v for k, v in cat.items()}, "ffn_only", platform="cuda")
    m = play.render_run({**resolved, "role": "candidate", "control_key": "fsdp:profiled"}, "r1", "/runs")["manifest"]
    assert m["manifest_version"] == manifest.MANIFEST_VERSION == 1
    assert m["workload"] == {"task": "t2v-14B", "size": "832*480", "frame_num": "81", "steps": "20", "nproc": "4",
                             "ulysses_size": "4", "ring_size": "1", "cfg_size": "1", "platform": "cuda",
                             "mode": "profiled", "prompt": "A boy plays piano.", "seed": "42"}
    old = {k: v for k, v in m.items() if k not in ("manifest_version", "workload", "workload_id")}
    run = {"path": "x", "manifest": old, "extra": {}}
    assert manifest.workload_id(manifest.workload(run)) == m["workload_id"]  # computed from the settings


def test_runs_of_two_plays_are_not_judged_together_unless_asked(tmp_path, capsys):
    base = [copy(tmp_path, b) for b in BASE13]
    template = json.loads((NOFSDP13[0] / "manifest.json").read_text())
    cand = [copy(tmp_path, c, manifest={"schedule": {**template["schedule"], "play": "another-play"}})
            for c in NOFSDP13]
    rc, _, err = wanbench(capsys, "compare", *[f"--baseline={b}" for b in base], *cand)
    assert rc == 2 and err == ("wanbench: not comparable: the runs differ in play (20261127T075306Z-gpu vs"
                               " another-play) (the control first); --across-plays compares them anyway\n")
    rc, out, _ = wanbench(capsys, "compare", "--json", "--across-plays", *[f"--baseline={b}" for b in base], *cand)
    (group,) = json.loads(out)
    assert rc == 0 and "allowed mismatch (--across-plays): play (20261127T075306Z-gpu vs another-play)" \
        in group["reasons"]


def test_collect_without_ids_judges_each_play_on_its_own(tmp_path):
    """collect.yml without ids gathers the runs of every play; each play gets its own control key (own report)."""
    from wanbench import rundirs, schedule

    template = json.loads((BASE13[0] / "manifest.json").read_text())
    paths = []
    for play in ("P1", "P2"):
        for run in (BASE13[0], NOFSDP13[0]):
            m = json.loads((run / "manifest.json").read_text())
            paths.append(str(copy(tmp_path, run, f"{play}-{run.name}", manifest={
                "schedule": {**m["schedule"], "play": play, "warmup": False}})))
    got = rundirs.report_inputs(paths, str(tmp_path))
    assert sorted(got["controls"]) == [f"{template['control_key']}@P1", f"{template['control_key']}@P2"]
    groups = schedule.report_groups(got["runs"], got["controls"], out_root="/r")
    assert [(len(g["controls"]), len(g["candidates"]), g["across_plays"]) for g in groups] == [(1, 1, False)] * 2
    assert {os.path.basename(p).split("-")[0] for g in groups for p in g["controls"] + g["candidates"]} == {"P1", "P2"}
    assert all(len({os.path.basename(p).split("-")[0] for p in g["controls"] + g["candidates"]}) == 1 for g in groups)


def test_the_noise_store_leaves_out_runs_whose_log_says_another_workload(tmp_path):
    from wanbench import store

    def stored(task):
        host = tmp_path / task
        for run in BASE13:
            m = json.loads((run / "manifest.json").read_text())
            copy(host, run, manifest={"fingerprint": "fp", "settings": {**m["settings"], "task": task}})
        return store.stored_noise(str(host), "fp")

    assert stored("t2v-1.3B")["runs"] == 3
    assert stored("t2v-tiny") is None  # the logs say t2v-1.3B: not this settings' noise
