"""The one manifest reader (wanbench.manifest): a field of the wrong type is one line naming the file and
the key in every command that reads manifests (main: a TypeError traceback), on copies of the real 1.3B runs
in docs/gpu-runs; manifests without manifest_version keep working."""

import json
import shutil
from pathlib import Path

import pytest

from wanbench import cli, manifest

RUNS = Path(__file__).resolve().parents[1] / "docs" / "gpu-runs" / "h100x4-2026-11-27-1.3B-aa-nofsdp" / "runs"


def copies(tmp_path, change):
    """results/<host>/ with copies of three baseline and three nofsdp runs; the first nofsdp run's manifest changed."""
    host = tmp_path / "vm"
    out = {}
    for name in ("03-baseline", "04-baseline", "08-baseline", "01-nofsdp", "06-nofsdp", "07-nofsdp"):
        shutil.copytree(RUNS / name, host / name)
        out[name] = host / name
    path = out["01-nofsdp"] / "manifest.json"
    path.write_text(json.dumps(change(json.loads(path.read_text()))))
    return host, out


@pytest.mark.parametrize("change, message", [
    (lambda m: {**m, "schedule": {**m["schedule"], "block": "2"}}, "schedule.block must be a whole number, got '2'"),
    (lambda m: {**m, "schedule": "block 2"}, "schedule must be a mapping, got 'block 2'"),
    (lambda m: {**m, "schedule": {**m["schedule"], "warmup": "no"}}, "schedule.warmup must be true or false, got 'no'"),
    (lambda m: {**m, "repo": "abc"}, "repo must be a mapping, got 'abc'"),
    (lambda m: {**m, "fingerprint": 7}, "fingerprint must be a string, got 7"),
])
@pytest.mark.parametrize("command", ["compare", "report", "share", "noise-store"])
def test_a_field_of_the_wrong_type_is_one_line_naming_file_and_key(tmp_path, capsys, change, message, command):
    host, runs = copies(tmp_path, change)
    base = [f"--baseline={runs[n]}" for n in ("03-baseline", "04-baseline", "08-baseline")]
    if command == "noise-store":  # the bad run is only in the store: one run a side asks the store for the noise
        argv = ["compare", base[0], str(runs["06-nofsdp"]), "--noise-store", str(host)]
    else:
        argv = [command, *base, *(str(runs[n]) for n in ("01-nofsdp", "06-nofsdp", "07-nofsdp"))]
        argv += ["--out", str(tmp_path / "out")] if command == "share" else []
    template = json.loads((runs["03-baseline"] / "manifest.json").read_text())
    if command == "noise-store":  # stored runs are matched by their fingerprint
        for d in runs.values():
            m = json.loads((d / "manifest.json").read_text())
            if not isinstance(m.get("fingerprint"), int):
                (d / "manifest.json").write_text(json.dumps({**m, "fingerprint": "fp"}))
    rc = cli.main(argv)
    out, err = capsys.readouterr()
    assert (rc, out) == (2, "")
    assert err == f"wanbench: {runs['01-nofsdp']}: manifest.json: {message}\n"
    assert template.get("manifest_version") is None  # the real runs' manifests predate the version: still read


def test_old_manifests_without_a_version_are_read_as_before():
    m = manifest.read(RUNS / "03-baseline")
    assert m["variant"] == "baseline" and "manifest_version" not in m
    assert manifest.read(RUNS / "absent") is None


def test_the_index_skips_a_run_with_a_bad_manifest_and_indexes_the_rest(tmp_path):
    from wanbench import index

    host, runs = copies(tmp_path, lambda m: {**m, "schedule": {**m["schedule"], "block": "2"}})
    for d in runs.values():  # the index takes finished runs only
        m = json.loads((d / "manifest.json").read_text())
        (d / "manifest.json").write_text(json.dumps({**m, "ended_at": "2026-11-27T08:00:00Z"}))
    assert index.run_state(str(runs["01-nofsdp"])) == "manifest.json: schedule.block must be a whole number, got '2'"
    index.build(str(tmp_path))
    assert len(index.runs(str(tmp_path))) == 5
