"""wanbench.index and wanbench.importer: the SQLite run index and the import of old-style files."""

import argparse
import hashlib
import json
import os
import shutil
import sqlite3

import pytest

from wanbench import importer, index
from wanbench.parse import parse_run

PROFILE = """RUN,{day} 02:00:00,T2V,world_size=4
TOTAL,request_total,{ms:.3f},{ms:.3f}
MEM_REQUEST,16234.500,15890.200,19792.000,19310.600
END
"""


def make_run(root, host, run_id, *, variant="baseline", day="2026-11-20", ms=104000.0, sha="a" * 40,
             exit_code=0, ended=True, play="play1", warmup=False, files=True):
    d = root / host / run_id
    d.mkdir(parents=True)
    m = {"variant": variant, "host": host, "role": "control", "repo": {"sha": sha, "dirty": False},
         "fingerprint": "fp1", "started_at": f"{day}T02:00:00Z",
         "schedule": {"play": play, "seed": 1, "block": 1, "position": 0, "warmup": warmup}}
    if ended:
        m.update(ended_at=f"{day}T02:10:00Z", exit_code=exit_code)
    (d / "manifest.json").write_text(json.dumps(m))
    if files:
        (d / "perf.csv").write_text(PROFILE.format(day=day, ms=ms))
        (d / "run.log").write_text(f"[{day} 02:00:00,000] INFO: Finished.\n")
    if exit_code is not None:
        (d / "exit_code").write_text(f"{exit_code}\n")
    return d


def stocked(root):
    make_run(root, "npu1", "r1", ms=100000.0)
    make_run(root, "npu1", "r2", ms=101000.0, variant="ffn_only", sha="b" * 40)
    make_run(root, "npu1", "r0", ms=130000.0, warmup=True)
    make_run(root, "npu2", "r1", ms=99000.0, day="2026-11-21", play=None)
    make_run(root, "npu2", "r2", exit_code=1)
    return root


def test_build_indexes_runs_metrics_and_verdict_facts(tmp_path):
    out = index.build(stocked(tmp_path))
    assert out["runs"] == 5 and out["skipped"] == [] and out["path"] == str(tmp_path / "index.sqlite")
    db = sqlite3.connect(out["path"])
    rows = db.execute("SELECT host, run_id, variant, sha, night, date, warmup, exit_code, status, imported"
                      " FROM runs ORDER BY host, run_id").fetchall()
    assert rows == [
        ("npu1", "r0", "baseline", "a" * 40, "play1", "2026-11-20", 1, 0, "ok", 0),
        ("npu1", "r1", "baseline", "a" * 40, "play1", "2026-11-20", 0, 0, "ok", 0),
        ("npu1", "r2", "ffn_only", "b" * 40, "play1", "2026-11-20", 0, 0, "ok", 0),
        ("npu2", "r1", "baseline", "a" * 40, "2026-11-21", "2026-11-21", 0, 0, "ok", 0),
        ("npu2", "r2", "baseline", "a" * 40, "play1", "2026-11-20", 0, 1, "failed", 0),
    ]
    assert db.execute("SELECT value FROM metrics WHERE host = 'npu1' AND run_id = 'r1' AND metric = 'request_total'"
                      ).fetchone() == (100000.0,)
    assert db.execute("SELECT value FROM metrics WHERE run_id = 'r1' AND metric = 'reserved_peak'"
                      ).fetchall() == [(19792.0,), (19792.0,)]
    assert db.execute("SELECT sha, runs FROM commits ORDER BY sha").fetchall() == [("a" * 40, 4), ("b" * 40, 1)]
    assert db.execute("SELECT host, night, broken FROM nights ORDER BY host, night").fetchall() == [
        ("npu1", "play1", 0), ("npu2", "2026-11-21", 0), ("npu2", "play1", 1)]
    assert [(b["host"], b["run_id"]) for b in index.broken_runs(str(tmp_path))] == [("npu2", "r2")]
    assert index.broken_runs(str(tmp_path), host="npu2", night="play1")[0]["why"].startswith("exit code 1")
    assert index.broken_runs(str(tmp_path), host="npu1") == [] == index.broken_runs(str(tmp_path), night="2026-11-21")
    assert [k[:2] for k in index.keys(str(tmp_path), variant="ffn_only")] == [("npu1", "ffn_only")]  # + workload
    s, = index.series(str(tmp_path), "npu1", "baseline", "request_total")  # the warm-up is left out
    assert (s["night"], s["values"], s["commit"], s["n"]) == ("play1", [100000.0], "a" * 40, 1)
    assert index.series(str(tmp_path), "npu2", "baseline", "request_total")[0]["values"] == [99000.0]
    assert index.series(str(tmp_path), "npu1", "baseline", "request_total", fingerprint="fp2") == []


def test_rebuild_from_the_directories_gives_the_same_content(tmp_path):
    stocked(tmp_path)
    index.build(tmp_path)
    first = index.dump(str(tmp_path))
    assert any(line.startswith("runs ") for line in first) and any(line.startswith("metrics ") for line in first)
    os.unlink(tmp_path / "index.sqlite")
    index.rebuild(tmp_path)
    assert index.dump(str(tmp_path)) == first
    index.rebuild(tmp_path)  # over an existing index
    assert index.dump(str(tmp_path)) == first


def test_run_by_run_updates_equal_one_build(tmp_path):
    res = stocked(tmp_path / "res")
    dirs = index.run_dirs(str(res))
    index.update(res, dirs[:1])  # no index yet: builds from every directory
    whole = index.dump(str(res))
    assert sum(line.startswith("runs ") for line in whole) == 5
    shutil.move(res, tmp_path / "held")
    for host in ("npu1", "npu2"):
        (res / host).mkdir(parents=True)
    index.rebuild(res)
    assert index.build(res)["runs"] == 0
    for d in reversed(dirs):  # newest first, one at a time
        shutil.move(d.replace(str(res), str(tmp_path / "held")), d)
        assert index.update(res, [d])["added"] == [d]
    assert index.dump(str(res)) == whole
    new = make_run(res, "npu1", "r9", ms=105000.0)
    out = index.update(res, [new, new])
    assert out["added"] == [str(new)] and out["runs"] == 6
    assert index.update(res, [new])["added"] == []


@pytest.mark.parametrize("how, why", [
    ({"exit_code": None}, "no exit_code"),
    ({"ended": False}, "no ended_at"),
    ({"marker": ".partial"}, ".partial present"),
    ({"marker": ".in-progress"}, ".in-progress present"),
    ({"marker": "exit_code.tmp"}, "exit_code.tmp present"),
    ({"archive": True}, "archive is beside it"),
    ({"manifest": "{not json"}, "no readable manifest.json"),
    ({"exit_text": "zero"}, "exit_code is not a number"),
])
def test_a_half_collected_run_is_never_indexed(tmp_path, how, why):
    make_run(tmp_path, "npu1", "done")
    kw = {k: how[k] for k in ("exit_code", "ended") if k in how}
    d = make_run(tmp_path, "npu1", "half", **kw)
    if "marker" in how:
        (d / how["marker"]).write_text("")
    if how.get("archive"):
        (tmp_path / "npu1" / "half.tar.gz").write_text("")
    if "manifest" in how:
        (d / "manifest.json").write_text(how["manifest"])
    if "exit_text" in how:
        (d / "exit_code").write_text(how["exit_text"])
    out = index.build(tmp_path)
    assert out["runs"] == 1 and [os.path.basename(p) for p in out["added"]] == ["done"]
    (skipped, reason), = out["skipped"]
    assert skipped == str(d) and why in reason
    # once collection finished, the next build adds it
    for name in (".partial", ".in-progress", "exit_code.tmp"):
        if (d / name).exists():
            os.unlink(d / name)
    if (tmp_path / "npu1" / "half.tar.gz").exists():
        os.unlink(tmp_path / "npu1" / "half.tar.gz")
    shutil.rmtree(d)
    make_run(tmp_path, "npu1", "half")
    assert [os.path.basename(p) for p in index.build(tmp_path)["added"]] == ["half"]


def test_a_failed_write_leaves_the_old_index_and_no_temporary_file(tmp_path, monkeypatch):
    stocked(tmp_path)
    index.build(tmp_path)
    before = index.dump(str(tmp_path))
    make_run(tmp_path, "npu3", "r1")
    make_run(tmp_path, "npu3", "r2")
    real, calls = index._record, []

    def dies_on_second(d):
        calls.append(d)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(d)

    monkeypatch.setattr(index, "_record", dies_on_second)
    with pytest.raises(KeyboardInterrupt):
        index.build(tmp_path)
    assert index.dump(str(tmp_path)) == before
    assert sorted(p for p in os.listdir(tmp_path) if p.startswith(".index.") and p != ".index.lock") == []
    assert oct(os.stat(tmp_path / "index.sqlite").st_mode & 0o044) == oct(0o044)  # readable, not mkstemp's 0600


def test_update_refuses_directories_outside_the_results_folder(tmp_path):
    stocked(tmp_path / "res")
    other = make_run(tmp_path / "elsewhere", "npu1", "x")
    index.build(tmp_path / "res")
    out = index.update(tmp_path / "res", [other])
    assert out["added"] == [] and "not a run directory of" in out["skipped"][0][1]


def test_an_outdated_index_is_rebuilt(tmp_path):
    stocked(tmp_path)
    (tmp_path / "index.sqlite").write_text("not a database")
    assert index.build(tmp_path)["runs"] == 5


@pytest.mark.parametrize("call", [index.build, index.rebuild])
def test_a_missing_results_folder_is_one_line(tmp_path, call):
    with pytest.raises(ValueError, match="not a folder$"):
        call(tmp_path / "none")
    with pytest.raises(ValueError, match=r"no index \(run `wanbench index"):
        index.series(str(tmp_path), "h", "v", "request_total")
    with pytest.raises(ValueError, match="metric 'speed'"):
        index.series(str(tmp_path), "h", "v", "speed")


# ---------------------------------------------------------------- import

OLD = {"run_march04.log": "run_sample_baseline.log", "perf_march04.csv": "perf_sample_baseline.csv",
       "run_oom.log": "run_sample_crash.log"}


@pytest.fixture
def old_dir(tmp_path, fixtures):
    """The old-style files: tests/fixtures/imported/ plus logs and profiles copied from samples/."""
    src = tmp_path / "old"
    shutil.copytree(fixtures / "imported", src)
    for name, sample in OLD.items():
        shutil.copyfile(fixtures / "samples" / sample, src / name)
    return src


def snapshot(folder):
    return {p: (hashlib.sha256((folder / p).read_bytes()).hexdigest(), (folder / p).stat().st_mtime_ns)
            for p in sorted(os.listdir(folder))}


def test_import_makes_run_directories_and_leaves_the_source_alone(tmp_path, old_dir, fixtures):
    results = tmp_path / "results"
    results.mkdir()
    before = snapshot(old_dir)
    out = importer.import_dir(old_dir, results, "baseline", host="npu1", sha="c" * 40)
    assert snapshot(old_dir) == before
    ok, oom = out["imported"]
    assert sorted(why for _, why in out["skipped"]) == [
        "name is not run_NAME.log, perf_NAME.csv, time_NAME.txt or NAME.time"] * 2 + [
        "no run log or profile file, only a time file"]
    assert sorted(os.listdir(ok)) == ["exit_code", "manifest.json", "perf.csv", "run.log", "time.txt"]
    assert (os.path.join(ok, "run.log"), open(os.path.join(ok, "run.log"), "rb").read()) == (
        os.path.join(ok, "run.log"), (fixtures / "samples" / "run_sample_baseline.log").read_bytes())
    m = json.load(open(os.path.join(ok, "manifest.json")))
    assert m["imported"] is True and m["variant"] == "baseline" and m["host"] == "npu1"
    assert m["repo"] == {"sha": "c" * 40, "dirty": None} and m["fingerprint"] is None
    assert (m["started_at"], m["ended_at"]) == ("2026-03-04T09:14:31Z", "2026-03-04T09:16:29Z")  # + 118.42 s
    assert (m["exit_code"], m["exit_code_source"]) == (0, "inferred: parsed status ok")
    assert m["import"]["files"]["perf.csv"]["source"] == "perf_march04.csv"
    assert os.path.basename(ok) == m["run_id"] and m["run_id"].startswith("20260304T091431Z-baseline-imported-")
    r = parse_run(ok)
    assert r["status"] == "ok" and r["metrics"]["request_total"] == 104321.987 and r["metrics"]["real_time"] == 118.42
    mo = json.load(open(os.path.join(oom, "manifest.json")))
    assert (mo["exit_code"], mo["exit_code_source"]) == (1, "time file")
    assert parse_run(oom)["status"] == "failed"
    assert not [p for p in os.listdir(results / "npu1") if p.startswith(".")]
    # indexed like any run; importing again adds nothing
    assert index.build(results)["runs"] == 2
    s, = index.series(str(results), "npu1", "baseline", "request_total")
    assert (s["night"], s["values"], s["commit"]) == ("2026-03-04", [104321.987], "c" * 40)
    again = importer.import_dir(old_dir, results, "baseline", host="npu1", sha="c" * 40)
    assert again["imported"] == [] and sorted(again["existing"]) == sorted(out["imported"])


def test_import_without_a_time_stamp_needs_started_at(tmp_path):
    from datetime import datetime

    src = tmp_path / "old"
    src.mkdir()
    (src / "run_x.log").write_text("no stamp here\n")
    (tmp_path / "res").mkdir()
    out = importer.import_dir(src, tmp_path / "res", "baseline")
    assert out["imported"] == [] and out["skipped"] == [("x", "no time stamp in the files; pass started_at")]
    out = importer.import_dir(src, tmp_path / "res", "baseline", started_at=datetime(2026, 3, 1, 8))
    m = json.load(open(os.path.join(out["imported"][0], "manifest.json")))
    assert m["started_at"] == "2026-03-01T08:00:00Z" and m["started_at_source"] == "given at import"
    assert m["exit_code"] == 1 and m["host"] == "imported"  # no `Finished.`: not ok, so not 0


@pytest.mark.parametrize("kw, message", [
    ({"variant": "../x"}, "variant '../x'"),
    ({"host": "a/b"}, "host 'a/b'"),
    ({"src": "missing"}, "missing: not a folder"),
    ({"results": "missing"}, "missing: not a folder"),
])
def test_import_bad_inputs_are_one_line(tmp_path, old_dir, kw, message):
    (tmp_path / "res").mkdir()
    args = {"src": old_dir, "results_dir": tmp_path / "res", "variant": "baseline", "host": "npu1"}
    if "src" in kw:
        args["src"] = tmp_path / kw["src"]
    if "results" in kw:
        args["results_dir"] = tmp_path / kw["results"]
    args.update({k: v for k, v in kw.items() if k in ("variant", "host")})
    with pytest.raises(ValueError, match=message.replace(".", r"\.")):
        importer.import_dir(**args)


def test_a_second_file_of_one_kind_is_skipped(tmp_path, fixtures):
    src = tmp_path / "old"
    src.mkdir()
    shutil.copyfile(fixtures / "samples" / "run_sample_baseline.log", src / "run_a.log")
    shutil.copyfile(fixtures / "samples" / "run_sample_variant.log", src / "a.time")  # a log under a time name
    (tmp_path / "res").mkdir()
    out = importer.import_dir(src, tmp_path / "res", "baseline")
    assert len(out["imported"]) == 1
    assert out["skipped"] == [(str(src / "run_a.log"), "a second log file for 'a' (first: a.time)")]


# ---------------------------------------------------------------- CLI handlers

def parser():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers()
    index.add_cli(sub)
    importer.add_cli(sub)
    return p


def test_index_handler(tmp_path):
    stocked(tmp_path)
    make_run(tmp_path, "npu1", "half", exit_code=None)
    args = parser().parse_args(["index", str(tmp_path)])
    inputs, text, verdicts = args.func(args)
    assert (inputs, verdicts) == ([], [])
    assert text.splitlines()[0] == f"{tmp_path}/index.sqlite: updated, 5 run(s) added, 5 indexed"
    assert f"skipped {tmp_path}/npu1/half: no exit_code" in text
    args = parser().parse_args(["index", "--rebuild", str(tmp_path)])
    assert args.func(args)[1].startswith(f"{tmp_path}/index.sqlite: rebuilt, 5 run(s) added, 5 indexed")


def test_import_handler_imports_and_indexes(tmp_path, old_dir):
    (tmp_path / "res").mkdir()
    args = parser().parse_args(["import", str(old_dir), "--variant", "baseline", "--results",
                                str(tmp_path / "res"), "--host", "npu1"])
    inputs, text, verdicts = args.func(args)
    assert [r["status"] for r in inputs] == ["ok", "failed"] and verdicts == []
    assert text.splitlines()[0].startswith(f"{old_dir}: 2 run(s) imported, 0 already there; index ")
    assert index.open_index(str(tmp_path / "res")).execute("SELECT COUNT(*) FROM runs WHERE imported = 1"
                                                           ).fetchone()[0] == 2
    args = parser().parse_args(["import", str(old_dir), "--variant", "baseline", "--results",
                                str(tmp_path / "res"), "--started-at", "March"])
    with pytest.raises(ValueError, match="--started-at 'March'"):
        args.func(args)


def test_a_corrupt_index_reads_as_one_line(tmp_path):
    (tmp_path / "index.sqlite").write_bytes(b"SQLite format 3\0" + b"\xff" * 200)
    with pytest.raises(ValueError, match="not a readable wanbench index .*wanbench index --rebuild"):
        index.series(str(tmp_path), "h", "v", "request_total")
    assert index.build(tmp_path)["runs"] == 0  # a build replaces it


def test_runs_whose_directories_are_gone_are_dropped_and_history_stops_counting_them(tmp_path):
    from wanbench import history

    stocked(tmp_path)
    make_run(tmp_path, "npu1", "r3", ms=102000.0)  # a second judged run of npu1's baseline night
    index.build(tmp_path)
    shutil.rmtree(tmp_path / "npu1" / "r3")
    shutil.rmtree(tmp_path / "npu1" / "r2")
    args = parser().parse_args(["index", str(tmp_path)])
    lines = args.func(args)[1].splitlines()
    assert lines[:2] == [f"{tmp_path}/index.sqlite: updated, 0 run(s) added, 4 indexed",
                         "2 run(s) dropped: directory gone (npu1/r2, npu1/r3)"]
    assert sorted((r["host"], r["run_id"]) for r in index.runs(tmp_path)) == [("npu1", "r0"), ("npu1", "r1"),
                                                                               ("npu2", "r1"), ("npu2", "r2")]
    assert index.open_index(tmp_path).execute("SELECT COUNT(*) FROM metrics WHERE run_id = 'r3'").fetchone()[0] == 0
    make_run(tmp_path, "npu1", "r4", ms=103000.0)
    shutil.rmtree(tmp_path / "npu2" / "r1")
    series = {(s["host"], s["metric"]): s for s in history.load(str(tmp_path), variant="baseline")}
    assert series[("npu1", "request_total")]["nights"][0]["runs"] == ["r1"]  # history reads, the next build drops
    hist = argparse.ArgumentParser().add_subparsers()
    history.add_cli(hist)
    args = hist.choices["history"].parse_args([str(tmp_path), "--metric", "request_total"])
    text = args.func(args)[1]
    assert "note: 1 run(s) dropped: directory gone (npu2/r1)" in text
    assert [n["runs"] for s in history.load(str(tmp_path)) if s["host"] == "npu1" and s["variant"] == "baseline"
            for n in s["nights"]] == [["r1", "r4"]] * 2
    assert not any(s["host"] == "npu2" and s["variant"] == "baseline" for s in history.load(str(tmp_path)))


def test_import_refuses_content_it_imported_before_under_another_name_unless_again(tmp_path, old_dir, fixtures):
    results = tmp_path / "res"
    results.mkdir()
    first = importer.import_dir(old_dir, results, "baseline", host="npu1")["imported"]
    copy = tmp_path / "copy"  # the same logs kept a second time under other names
    copy.mkdir()
    shutil.copyfile(old_dir / "run_march04.log", copy / "run_again.log")
    shutil.copyfile(old_dir / "perf_march04.csv", copy / "perf_again.csv")
    shutil.copyfile(old_dir / "run_oom.log", copy / "run_oom2.log")
    shutil.copyfile(fixtures / "samples" / "run_sample_variant.log", copy / "run_new.log")
    args = parser().parse_args(["import", str(copy), "--variant", "baseline", "--results", str(results),
                                "--host", "npu1"])
    text = args.func(args)[1]
    assert text.splitlines()[0].startswith(f"{copy}: 1 run(s) imported, 0 already there")
    assert f"  skipped again: already imported as {first[0]} (same content; --again imports it anyway)" in text
    assert f"  skipped oom2: already imported as {first[1]} (same content; --again imports it anyway)" in text
    s, = index.series(str(results), "npu1", "baseline", "request_total")
    assert s["n"] == 2 and s["runs"] == [os.path.basename(first[0]), s["runs"][1]]  # march04 once, plus `new`
    other = importer.import_dir(copy, results, "ffn_only", host="npu2")  # another variant or host: still the same run
    assert len(other["imported"]) == 0 and len(other["skipped"]) == 3
    again = importer.import_dir(copy, results, "baseline", host="npu1", again=True)
    assert len(again["imported"]) == 2 and len(again["existing"]) == 1


def test_import_on_a_full_disk_leaves_no_run_and_names_it(small_fs, old_dir):
    mnt, fill = small_fs
    fill()
    with pytest.raises(OSError) as e:
        importer.import_dir(old_dir, mnt, "baseline", host="npu1", again=True)
    assert e.value.filename.startswith(f"{mnt}/npu1/20260304T091431Z-baseline-imported-"), e.value.filename
    assert "No space left" in e.value.strerror and os.listdir(mnt / "npu1") == []
