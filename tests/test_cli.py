"""The wanbench command, run as a real process."""

import json
import os
import subprocess
import sys

import pytest

from wanbench.parse import METRICS

WANBENCH = os.path.join(os.path.dirname(sys.executable), "wanbench")


def wanbench(*args, command=(WANBENCH,)):
    if not os.path.exists(command[0]):
        pytest.skip(f"console script {command[0]} not installed (pip install -e .)")
    return subprocess.run([*command, *map(str, args)], capture_output=True, text=True, timeout=60)


@pytest.fixture
def s(samples):
    return {name: samples / name for name in os.listdir(samples)}


def test_parse_json(s):
    done = wanbench("parse", s["run_sample_baseline.log"], s["perf_sample_variant.csv"], s["run_sample_crash.log"],
                    "--json")
    assert (done.returncode, done.stderr) == (0, "")
    results = json.loads(done.stdout)
    assert [(r["kind"], r["status"]) for r in results] == [("log", "ok"), ("profile", "ok"), ("log", "failed")]
    assert all({"path", "kind", "status", "reason", "metrics", "extra"} <= r.keys() for r in results)
    assert all(list(r["metrics"]) == list(METRICS) for r in results)
    assert results[0]["metrics"]["request_total"] == 104321.987
    assert results[1]["metrics"]["reserved_peak"] == 19847.0
    assert results[1]["extra"]["blocks"] == 1
    assert results[2]["reason"] == "out of memory: RuntimeError: NPU out of memory. Tried to allocate 2.00 GiB"


def test_parse_table(s):
    done = wanbench("parse", s["run_sample_variant.log"])
    assert done.returncode == 0
    lines = done.stdout.splitlines()
    assert lines[2].split() == ["kind", "log"]
    assert "request_total       102922.546" in done.stdout and "real_time           n/a" in done.stdout
    assert lines[-1] == (f"{s['run_sample_variant.log']}: warning: negative stage time in stage_totals:"
                         " vae_decode max=-38.172, avg=-38.106")


def test_unreadable_inputs_exit_2_with_one_line_each(tmp_path, s):
    empty = tmp_path / "empty.log"
    empty.write_bytes(b"")
    done = wanbench("parse", empty, tmp_path / "absent.log", s["run_sample_baseline.log"], "--json")
    assert done.returncode == 2
    assert done.stderr.splitlines() == [f"wanbench: {empty}: empty file",
                                        f"wanbench: {tmp_path / 'absent.log'}: No such file or directory"]
    assert [r["status"] for r in json.loads(done.stdout)] == ["unreadable", "unreadable", "ok"]


def test_block_out_of_range(s):
    done = wanbench("parse", s["perf_sample_baseline.csv"], "--block", "-2")
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (f"wanbench: {s['perf_sample_baseline.csv']}: block -2 out of range"
                           " (the file holds 1 block(s))\n")


def test_compare_json_and_check(s):
    args = ("compare", "--baseline", s["run_sample_baseline.log"], s["run_sample_variant.log"],
            s["run_sample_crash.log"], "--json")
    done = wanbench(*args)
    assert (done.returncode, done.stderr) == (0, "")
    results = json.loads(done.stdout)
    assert [(r["candidate"], r["verdict"]) for r in results] == [
        (str(s["run_sample_variant.log"]), "pass"), (str(s["run_sample_crash.log"]), "fail")]
    assert results[0]["diff_pct"]["request_total"] == pytest.approx(-1.34146313758383, rel=1e-12)
    assert results[0]["reasons"][:2] == ["reserved_peak +0.28 % within 1.00 % tolerance",
                                         "request_total -1.34 % beyond the 0.50 % noise threshold"]
    assert wanbench(*args, "--check").returncode == 1


def test_compare_text_with_thresholds(s):
    done = wanbench("compare", "--baseline", s["perf_sample_baseline.csv"], s["perf_sample_variant.csv"],
                    s["perf_sample_variant.csv"], "--noise-pct", "1.5", "--reserved-tolerance-pct", "0.1", "--check")
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert lines[0] == f"% change vs {s['perf_sample_baseline.csv']}"
    assert lines[1].split() == [str(s["perf_sample_variant.csv"])] * 2  # one column per candidate
    assert lines[3].split() == ["request_total", "-1.34", "-1.34"]
    assert lines[-4:-1] == [f"{s['perf_sample_variant.csv']}: fail",
                            "  - reserved_peak +0.28 % > 0.10 % tolerance",
                            "  - request_total -1.34 % within the 1.50 % noise threshold"]


@pytest.mark.parametrize("args, message", [
    (("compare", "--baseline", "a.log", "b.log", "--noise-pct", "-1"), "argument --noise-pct: must be >= 0, got -1"),
    (("compare", "b.log"), "the following arguments are required: --baseline"),
    (("report", "x", "--format", "html"), "argument --format: invalid choice: 'html'"),
    ((), "the following arguments are required: command"),
])
def test_bad_usage_exits_2(args, message):
    done = wanbench(*args)
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr


def test_report_formats_and_out(tmp_path, s):
    base = ("report", s["run_sample_variant.log"], "--baseline", s["run_sample_baseline.log"])
    md = wanbench(*base)
    assert md.returncode == 0
    assert md.stdout.startswith("# wanbench report\n\n- commit: unknown\n")
    assert "| run_sample_variant |           -1.34 |" in md.stdout
    csv_rows = wanbench(*base, "--format", "csv").stdout.splitlines()
    assert csv_rows[0].startswith("variant,log_file,request_total,") and len(csv_rows) == 3
    out = tmp_path / "out"
    done = wanbench(*base, "--out", out, "--check", "--noise-pct", "5")
    assert (done.returncode, done.stdout.split()) == (0, [str(out / f"report.{f}") for f in ("md", "csv", "json")])
    assert json.loads((out / "report.json").read_text())["rows"][1]["verdict"] == "inconclusive"
    blocked = wanbench(*base, "--out", s["run_sample_crash.log"])
    assert (blocked.returncode, blocked.stderr) == (2, f"wanbench: {s['run_sample_crash.log']}: File exists\n")


def test_python_dash_m(s):
    done = wanbench("parse", s["perf_sample_baseline.csv"], "--json", command=(sys.executable, "-m", "wanbench"))
    assert done.returncode == 0
    assert json.loads(done.stdout)[0]["metrics"]["request_total"] == 104321.987
