"""The wanbench command, run as a real process."""

import io
import json
import os
import subprocess
import sys
from pathlib import Path

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
        (str(s["run_sample_variant.log"]), "inconclusive"), (str(s["run_sample_crash.log"]), "fail")]
    assert results[0]["diff_pct"]["request_total"] == pytest.approx(-1.34146313758383, rel=1e-12)
    assert {k: results[0][k] for k in ("n", "ci_pct", "noise_source", "runs_needed")} == {
        "n": {"baseline": 1, "candidate": 1}, "ci_pct": {"request_total": None}, "noise_source": "none",
        "runs_needed": None}
    assert wanbench(*args, "--check").returncode == 1
    # a prior (a CV without degrees of freedom) informs the runs needed only: it never lets one run a side decide
    prior = json.loads(wanbench(*args, "--noise-cv-pct", "0.01").stdout)
    assert (prior[0]["verdict"], prior[0]["ci_pct"]["request_total"]) == ("inconclusive", None)
    assert "a prior noise (no degrees of freedom) informs planning only" in prior[0]["reasons"][1]
    assert prior[0]["runs_needed"] == 2  # planning still uses it
    # a measurement with its df and date decides (two candidates: a Holm family, this one at 97.5 %)
    known = json.loads(wanbench(*args, "--noise-measured", "cv_pct=0.2,df=12,measured=2026-11-27").stdout)
    assert (known[0]["verdict"], known[0]["noise_source"], known[0]["confidence"]) == (
        "pass", "measured 2026-11-27 (--noise-measured, the inventory's wanbench_noise)", 0.975)
    bad = wanbench(*args, "--noise-measured", "cv_pct=0.2,measured=2026-11-27")
    assert bad.returncode == 2 and "df missing in 'cv_pct=0.2,measured=2026-11-27'" in bad.stderr


def manifest_run(tmp_path, s, name, sample, variant, factor=1.0):
    """A run directory whose manifest names its variant; request_total scaled by factor."""
    run = tmp_path / name
    run.mkdir()
    text = s[f"run_sample_{sample}.log"].read_text()
    value = "102922.546" if sample == "variant" else "104321.987"
    text = text.replace(f"request_total: {value}", f"request_total: {float(value) * factor:.3f}")
    (run / "run.log").write_text(text + f"run {name}\n")  # each run its own content (identical = the same run)
    (run / "manifest.json").write_text(json.dumps({"variant": variant, "host": "h", "fingerprint": "fp"}))
    (run / "exit_code").write_text("0\n")
    return run


def test_compare_groups_candidates_by_variant(tmp_path, s):
    base = [manifest_run(tmp_path, s, f"b{i}", "baseline", "baseline", f) for i, f in enumerate((1.0, 1.002, 0.999))]
    cand = [manifest_run(tmp_path, s, f"c{i}", "variant", "gate1", f) for i, f in enumerate((1.0, 1.001, 0.998))]
    other = manifest_run(tmp_path, s, "o", "variant", "fence1")
    done = wanbench("compare", *[f"--baseline={b}" for b in base], *cand, other, "--json")
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)
    assert [(r["variant"], r["n"]) for r in results] == [("gate1", {"baseline": 3, "candidate": 3}),
                                                          ("fence1", {"baseline": 3, "candidate": 1})]
    assert results[0]["verdict"] == "pass" and results[0]["noise_source"] == "data"
    low, high = results[0]["ci_pct"]["request_total"]
    assert low < results[0]["diff_pct"]["request_total"] < high < 0
    assert results[1]["noise_source"] == "none" and results[1]["verdict"] == "inconclusive"
    # the host's stored runs of the same settings give the noise for the one-run side
    text = wanbench("compare", f"--baseline={base[0]}", other, "--noise-store", tmp_path)
    assert text.returncode == 0
    assert "stored: 5 runs of this host and settings" not in text.stdout  # no play id: each run its own play
    bad = manifest_run(tmp_path, s, "x", "variant", "gate1")
    (bad / "manifest.json").write_text(json.dumps({"variant": ["not", "a", "string"]}))
    done = wanbench("compare", f"--baseline={base[0]}", bad)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == f"wanbench: {bad}: manifest.json: variant must be a string, got ['not', 'a', 'string']\n"


def test_compare_text_with_thresholds(s):
    done = wanbench("compare", "--baseline", s["perf_sample_baseline.csv"], s["perf_sample_variant.csv"],
                    "--threshold-pct", "1.5", "--reserved-tolerance-pct", "0.1", "--check")
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert lines[0] == f"% change vs {s['perf_sample_baseline.csv']}"
    assert lines[1].split() == ["perf_sample_variant"]
    assert lines[4].split() == ["request_total", "-1.34"]
    assert lines[-4:-1] == ["perf_sample_variant: fail",
                          "  - reserved_peak +0.28 % > 0.10 % tolerance",
                          "  - request_total -1.34 % (n=1/1): no interval, the noise is unknown with one run a side;"
                          " repeat the runs (-e repeats=N), or measure the host (-e variant=aa)"]


@pytest.mark.parametrize("args, message", [
    (("compare", "--baseline", "a.log", "b.log", "--noise-pct", "-1"),
     "argument --threshold-pct/--noise-pct: must be >= 0, got -1"),
    (("compare", "b.log"), "wanbench: compare needs --baseline PATH (repeat it for repeated baseline runs)"),
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
    assert md.stdout.startswith("# wanbench report\n\n- commit: not recorded\n- host: not recorded\n")
    assert "| run_sample_variant |             1/1 |             -1.34 |         n/a |" in md.stdout
    csv_rows = wanbench(*base, "--format", "csv").stdout.splitlines()
    assert csv_rows[0].startswith("variant,log_file,request_total,") and len(csv_rows) == 3
    out = tmp_path / "out"
    done = wanbench(*base, "--out", out, "--check", "--threshold-pct", "5", "--noise-cv-pct", "0.5")
    assert (done.returncode, done.stdout.split()) == (
        0, [str(out / f) for f in ("report.md", "report.csv", "report.json", "summary.txt", "share.md", "report.html")])
    assert (out / "share.md").read_text().startswith("**wanbench** · host not recorded · commit not recorded")
    assert (out / "report.html").read_text().count('src="data:image/png;base64,') >= 1  # the change plot
    assert json.loads((out / "report.json").read_text())["groups"][0]["verdict"] == "inconclusive"
    assert (out / "summary.txt").read_text().startswith("run_sample_variant: INCONCLUSIVE (request_total -1.34 %")
    blocked = wanbench(*base, "--out", s["run_sample_crash.log"])
    assert (blocked.returncode, blocked.stderr) == (2, f"wanbench: {s['run_sample_crash.log']}: File exists\n")


def test_python_dash_m(s):
    done = wanbench("parse", s["perf_sample_baseline.csv"], "--json", command=(sys.executable, "-m", "wanbench"))
    assert done.returncode == 0
    assert json.loads(done.stdout)[0]["metrics"]["request_total"] == 104321.987


def test_write_records_writes_whole_files_below_the_folder_only(tmp_path):
    runs = tmp_path / "results" / "host"
    records = [{"dest": str(runs / "r1" / "health" / "host" / "image.out"), "content": "sha256:abc\n"},
               {"dest": str(runs / "r2" / "output_check.json"), "content": {"score": {"psnr_db": 31.2}}}]
    done = subprocess.run([sys.executable, "-m", "wanbench", "write-records", "--under", str(tmp_path / "results")],
                          input=json.dumps(records), capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "2 file(s) written", done.stderr
    assert (runs / "r1" / "health" / "host" / "image.out").read_text() == "sha256:abc\n"
    assert json.loads((runs / "r2" / "output_check.json").read_text()) == {"score": {"psnr_db": 31.2}}
    assert not list(runs.rglob("*.tmp"))
    outside = [{"dest": str(tmp_path / "elsewhere" / "x"), "content": "x"}, *records]
    done = subprocess.run([sys.executable, "-m", "wanbench", "write-records", "--under", str(tmp_path / "results")],
                          input=json.dumps(outside), capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.strip() == (
        f"wanbench: write-records: {tmp_path / 'elsewhere' / 'x'} is not below {tmp_path / 'results'}")
    assert not (tmp_path / "elsewhere").exists()
    done = subprocess.run([sys.executable, "-m", "wanbench", "write-records", "--under", str(tmp_path)],
                          input="not json", capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.startswith("wanbench: write-records: stdin is not JSON")


@pytest.mark.parametrize("command", [["parse", "SAMPLE"], ["index", "RESULTS"], ["history", "RESULTS"]])
def test_a_reader_that_closed_the_pipe_ends_the_command_quietly(tmp_path, samples, command):
    # `wanbench history | head`: a real pipe whose reading end is closed before the command writes
    (tmp_path / "results").mkdir()
    argv = [{"SAMPLE": str(samples / "run_sample_baseline.log"), "RESULTS": str(tmp_path / "results")}.get(a, a)
            for a in command]
    read, write = os.pipe()
    os.close(read)
    try:
        done = subprocess.run([sys.executable, "-m", "wanbench", *argv], stdout=write, stderr=subprocess.PIPE,
                              text=True, timeout=60)
    finally:
        os.close(write)
    assert done.stderr == ""  # no traceback, no "Exception ignored"
    assert done.returncode == 141  # as a shell reports a command killed by SIGPIPE


SAMPLES = Path(__file__).parent / "fixtures" / "samples"


# Each case: (argv, the path the user gave that the one error line must name).
def _bad_index(tmp):
    (tmp / "index.sqlite").mkdir()
    return ["index", tmp], tmp / "index.sqlite"


def _bad_ack(text):
    def make(tmp):
        (tmp / "acks.yml").write_text(text)
        return ["history", tmp, "--ack", tmp / "acks.yml"], tmp / "acks.yml"
    return make


def _bad_dest(tmp):
    (tmp / "run" / "exit_code").mkdir(parents=True)
    return ["write-records", "--under", tmp], tmp / "run" / "exit_code"


def _bad_out(tmp):
    (tmp / "out" / "report.md").mkdir(parents=True)
    return ["report", SAMPLES / "run_sample_baseline.log", "--out", tmp / "out"], tmp / "out" / "report.md"


@pytest.mark.parametrize("case", [_bad_index, _bad_ack("- {host: '*', variant: '*', metric: '*', until: 2026-13-45,"
                                                       " reason: r}\n"),
                                  _bad_ack("- {host: [npu1], variant: '*', metric: '*', until: 2026-12-01,"
                                           " reason: r}\n"), _bad_dest, _bad_out],
                         ids=["index-a-folder", "ack-date", "ack-host-a-list", "record-dest-a-folder",
                              "report-file-a-folder"])
def test_a_bad_input_is_one_line_naming_the_file_given(tmp_path, capsys, monkeypatch, case):
    from wanbench import cli

    argv, named = case(tmp_path)
    records = json.dumps([{"dest": str(named), "content": "0\n"}])
    monkeypatch.setattr(sys, "stdin", io.StringIO(records))  # what write-records reads
    assert cli.main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"wanbench: {named}: "), err


def test_cli_options_have_one_home_that_imports_nothing_back():
    """Option types and the --baseline/--check pair live in wanbench/options.py; share and judging use them and
    import nothing of the command (no share -> cli circle); options imports nothing of the package."""
    import ast

    package = Path(__file__).resolve().parents[1] / "wanbench"

    def imports(name):
        tree = ast.parse((package / f"{name}.py").read_text())
        found = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                found |= {node.module.split(".")[0]} if node.module else {a.name for a in node.names}
        return found

    assert "cli" not in imports("share") | imports("judging") and imports("options") == set()
    assert "options" in imports("share") & imports("cli") & imports("judging")
    for cmd in ("compare", "report", "share"):
        assert "--check" in wanbench(cmd, "--help").stdout
