"""wanbench.store: finding a reusable control run among stored results."""

import json

import pytest

from wanbench import store


def make_run(root, host, run_id, *, sha="a" * 40, fingerprint="fp1", variant="baseline", dirty=False,
             exit_code=0, ended="2026-11-26T12:00:00Z", log=True, manifest=True):
    d = root / host / run_id
    d.mkdir(parents=True)
    if manifest:
        (d / "manifest.json").write_text(json.dumps({
            "run_id": run_id, "variant": variant, "host": host, "fingerprint": fingerprint,
            "repo": {"sha": sha, "dirty": dirty}, "ended_at": ended, "exit_code": exit_code}))
    if exit_code is not None:
        (d / "exit_code").write_text(f"{exit_code}\n")
    if log:
        (d / "run.log").write_text("Finished.\n")
    return d


def find(root, **kw):
    args = {"host": "npu", "sha": "a" * 40, "fingerprint": "fp1", "variant": "baseline", **kw}
    return store.find_baseline(str(root), args["host"], args["sha"], args["fingerprint"], variant=args["variant"])


def test_finds_the_newest_matching_run(tmp_path):
    make_run(tmp_path, "npu", "20261126T100000Z-baseline-aaaaaa", ended="2026-11-26T10:02:00Z")
    newest = make_run(tmp_path, "npu", "20261126T110000Z-baseline-bbbbbb", ended="2026-11-26T11:02:00Z")
    assert find(tmp_path) == str(newest)


@pytest.mark.parametrize("change", [
    {"host": "other"}, {"sha": "b" * 40}, {"fingerprint": "fp2"}, {"variant": "ffn_only"},
    {"dirty": True}, {"dirty": None}, {"exit_code": 1}, {"exit_code": None}, {"log": False}, {"manifest": False},
])
def test_ignores_runs_that_do_not_match(tmp_path, change):
    make_run(tmp_path, change.pop("host", "npu"), "20261126T100000Z-baseline-aaaaaa", **change)
    assert find(tmp_path) is None


def test_exit_code_file_wins_over_the_manifest(tmp_path):
    d = make_run(tmp_path, "npu", "r1")
    (d / "exit_code").write_text("137\n")
    assert find(tmp_path) is None


def test_unknown_commit_or_missing_results_never_match(tmp_path):
    make_run(tmp_path, "npu", "r1", sha="")
    assert find(tmp_path, sha="") is None
    assert find(tmp_path / "nowhere") is None
    (tmp_path / "npu" / "broken").mkdir()
    (tmp_path / "npu" / "broken" / "manifest.json").write_text("{not json")
    (tmp_path / "npu" / "file").write_text("x")
    assert list(store.runs(str(tmp_path), "npu"))[0][0].endswith("r1")


def test_a_warmup_is_never_a_stored_control(tmp_path):
    run = tmp_path / "h" / "20261127T000000Z-baseline-aaaaaa"
    run.mkdir(parents=True)
    (run / "run.log").write_text("Finished.\n")
    (run / "exit_code").write_text("0\n")
    manifest = {"host": "h", "variant": "baseline", "fingerprint": "fp", "repo": {"sha": "s", "dirty": False},
                "schedule": {"warmup": True}}
    (run / "manifest.json").write_text(json.dumps(manifest))
    assert store.find_baseline(str(tmp_path), "h", "s", "fp", variant="baseline") is None
    (run / "manifest.json").write_text(json.dumps({**manifest, "schedule": {"warmup": False}}))
    assert store.find_baseline(str(tmp_path), "h", "s", "fp", variant="baseline") == str(run)
