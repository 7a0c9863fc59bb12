"""wanbench.report: the raw and percent-change tables as markdown, CSV and JSON."""

import csv
import io
import json
import os

import pytest

from wanbench.parse import METRICS, parse_run
from wanbench.report import (RAW_COLUMNS, build, fmt_pct, fmt_value, render, render_report, summary, write,
                             write_report)


@pytest.fixture
def runs(samples):
    return {name: parse_run(samples / f"run_sample_{name}.log") for name in ("baseline", "variant", "crash")}


def make_run_dir(tmp_path, samples, name, sample, manifest):
    run = tmp_path / name
    run.mkdir()
    # each run its own content: byte-identical runs are one run given twice
    (run / "run.log").write_bytes((samples / f"run_sample_{sample}.log").read_bytes() + f"run {name}\n".encode())
    (run / "perf.csv").write_bytes((samples / f"perf_sample_{sample}.csv").read_bytes())
    (run / "manifest.json").write_text(json.dumps(manifest))
    return parse_run(run)


def test_formatting():
    assert [fmt_pct(v) for v in (-1.3398, 0.5, 0.0, 125.7851, None)] == ["-1.34", "+0.50", "+0.00", "+125.79", "n/a"]
    assert [fmt_value(m, 18050.0) for m in ("request_total", "reserved_peak", "gen_time", "real_time")] == [
        "18050.000", "18050.0", "18050.0000", "18050.00"]
    assert fmt_value("request_total", None) == "n/a"


def cells(lines, section, first):
    start = lines.index(section)
    line = next(line for line in lines[start:] if line.startswith(f"| {first} "))
    return [c.strip() for c in line.strip("|").split("|")]


def test_markdown_report(runs):
    text = render_report([runs["variant"], runs["crash"]], runs["baseline"], noise={"cv_pct": 0.2, "df": 12, "source": "measured"})
    lines = text.splitlines()
    assert lines[:6] == ["# wanbench report", "", "- commit: not recorded", "- host: not recorded",
                         "- date: 2026-03-04 09:12:43 .. 2026-03-04 09:31:17 (log time stamps, the host's local time)",
                         "- baseline: run_sample_baseline (threshold 0.50 %, reserved_peak tolerance 1.00 %; 95 % CI:"
                         " Welch t on log request_total, paired by block where every block has both arms (ABBA pairs together, the order effect removed, from 4 blocks), with one run a side a measured noise, t with its df: CV 0.20 % (measured))"]
    assert cells(lines, "## Verdicts", "run_sample_variant") == [
        "run_sample_variant", "1/1", "-1.34", "-2.05 .. -0.63 (Holm: 97.5 %)", "+0.28", "pass", ""]
    assert cells(lines, "## Verdicts", "run_sample_crash") == [
        "run_sample_crash", "1/0", "n/a", "n/a (Holm: 95 %)", "n/a", "fail", ""]
    assert cells(lines, "## Statistics per variant (runs used)", "run_sample_baseline")[:4] == [
        "run_sample_baseline", "request_total", "1", "104321.987"]
    assert cells(lines, "## Change vs baseline (%, of the means; sub-metrics are diagnostics)",
                 "run_sample_variant") == [
        "run_sample_variant", "-1.34", "-1.23", "+0.18", "-7.39", "-10.77", "-2.42", "+0.28", "-1.34", "n/a", "pass"]
    assert cells(lines, "## Runs", "run_sample_baseline")[1:4] == ["baseline", runs["baseline"]["path"], "104321.987"]
    assert cells(lines, "## Runs", "run_sample_crash")[-2:] == [
        "failed", "failed: out of memory: RuntimeError: NPU out of memory. Tried to allocate 2.00 GiB"]
    notes = lines[lines.index("## Verdicts and notes"):]
    assert notes[2:5] == ["- run_sample_variant (pass)", "  - reserved_peak +0.28 % within 1.00 % tolerance",
                          "  - request_total -1.34 % (97.5 % CI -2.05 .. -0.63 %, n=1/1, noise CV 0.2 %, 12 df (measured)):"
                          " the interval is below 0 and the change at or beyond -0.50 %"]
    assert "- run_sample_crash (fail)" in notes
    # two candidates against one control are one family: Holm puts the smaller p at 97.5 %
    assert ("run_sample_variant: PASS (request_total -1.34 %, 97.5 % CI -2.05 .. -0.63 %, n=1/1; reserved_peak +0.28 %);"
            " family of 2 candidates, Holm at 95 % family-wise") in lines


def test_report_without_baseline(runs):
    text = render_report([runs["variant"], runs["crash"]])
    assert "## Verdicts\n" not in text and "- baseline:" not in text
    assert text.endswith("- run_sample_variant\n  - warning: negative stage time in stage_totals: vae_decode"
                         " max=-38.172, avg=-38.106\n- run_sample_crash\n"
                         "  - failed: out of memory: RuntimeError: NPU out of memory. Tried to allocate 2.00 GiB\n")


def test_header_groups_and_order_come_from_manifests(tmp_path, samples):
    sched = {"play": "P", "seed": 9}
    warm = make_run_dir(tmp_path, samples, "r0", "baseline", {"variant": "baseline", "host": "npu",
                        "repo": {"sha": "abc123"}, "schedule": {**sched, "position": 0, "warmup": True}})
    baseline = make_run_dir(tmp_path, samples, "r1", "baseline",
                            {"variant": "baseline", "host": "npu", "repo": {"sha": "abc123"},
                             "started_at": "2026-02-11T14:03:10Z", "schedule": {**sched, "position": 2}})
    variants = [make_run_dir(tmp_path, samples, f"r{i}", "variant",
                             {"variant": "agwait1", "host": "npu", "repo": {"sha": "abc123"},
                              "schedule": {**sched, "position": p}}) for i, p in ((2, 1), (3, 3))]
    data = build([baseline, *variants], [warm, baseline])  # a baseline listed again is not repeated
    assert [(r["variant"], r["role"], r["excluded"]) for r in data["rows"]] == [
        ("baseline", "baseline", "warm-up (discarded)"), ("agwait1", "candidate", ""),
        ("baseline", "baseline", ""), ("agwait1", "candidate", "")]
    (g,) = data["groups"]
    assert (g["variant"], g["n"]) == ("agwait1", {"baseline": 1, "candidate": 2})
    assert {k: data["header"][k] for k in ("commit", "host", "date", "baseline")} == {
        "commit": "abc123", "host": "npu", "baseline": "baseline",
        # r1's start is recorded; the others' come from their logs (the workload's local time stamps)
        "date": "2026-02-11T14:03:10Z .. 2026-03-04 09:22:08 (log time stamps, the host's local time)"}
    assert data["header"]["order"] == {"play": "P", "seed": 9, "design": None, "warmup": None,  # an older play
                                       "runs": ["baseline (warm-up)", "agwait1", "baseline", "agwait1"],
                                       "adaptive": None}
    assert "- order: play P, seed 9: baseline (warm-up), agwait1, baseline, agwait1" in render(data)
    with pytest.raises(ValueError, match="manifest.json: variant must be a string, got 7"):
        build([make_run_dir(tmp_path, samples, "bad", "variant", {"variant": 7})], [baseline])


def test_header_says_what_the_runs_do_not_record(tmp_path, samples):
    """A run without manifest whose log has no time stamps: counted as not recorded, never 'unknown'."""
    import re

    a = make_run_dir(tmp_path, samples, "a", "baseline", {"variant": "baseline", "host": "npu",
                                                           "repo": {"sha": "abc123"}, "started_at": "2026-02-11T14:03:10Z"})
    b = tmp_path / "b"
    b.mkdir()
    log = (samples / "run_sample_variant.log").read_text()
    (b / "run.log").write_text(re.sub(r"^\[[0-9 :,-]+\] ", "", log, flags=re.M))
    (b / "perf.csv").write_bytes((samples / "perf_sample_variant.csv").read_bytes())
    h = build([parse_run(b)], [a])["header"]
    assert {k: h[k] for k in ("commit", "host", "date")} == {
        "commit": "abc123 (not recorded for 1 of 2 runs)", "host": "npu (not recorded for 1 of 2 runs)",
        "date": "2026-02-11T14:03:10Z (not recorded for 1 of 2 runs)"}
    assert build([parse_run(b)])["header"]["commit"] == "not recorded"


def test_csv_and_json_keep_full_precision(runs):
    rows = list(csv.DictReader(io.StringIO(render_report([runs["variant"]], runs["baseline"], fmt="csv"))))
    assert [r["variant"] for r in rows] == ["run_sample_baseline", "run_sample_variant"]
    assert list(rows[0])[:len(RAW_COLUMNS) - 1] == list(RAW_COLUMNS[:-2]) + ["status"]
    assert (rows[1]["request_total"], rows[1]["reserved_peak"], rows[1]["real_time"]) == ("102922.546", "19847.0", "")
    assert float(rows[1]["request_total_pct"]) == pytest.approx(-1.34146313758383, rel=1e-12)
    assert (rows[0]["request_total_pct"], rows[1]["verdict"], rows[1]["commit"]) == ("", "inconclusive", "")

    data = json.loads(render_report([runs["variant"]], runs["baseline"], fmt="json"))
    assert {k: data["header"][k] for k in ("baseline", "threshold_pct", "reserved_tolerance_pct", "noise")} == {
        "baseline": "run_sample_baseline", "threshold_pct": 0.5, "reserved_tolerance_pct": 1.0, "noise": None}
    variant = data["rows"][1]
    assert {m: variant[m] for m in METRICS}["gen_time"] == 103.0168
    (g,) = data["groups"]
    assert g["diff_pct"]["reserved_peak"] == pytest.approx(0.27789005658852, rel=1e-12)
    assert (g["verdict"], g["n"], g["ci_pct"], g["noise_source"]) == (
        "inconclusive", {"baseline": 1, "candidate": 1}, {"request_total": None}, "none")


def test_write_report_replaces_files_atomically(tmp_path, runs):
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.md").write_text("old")
    paths = write_report([runs["variant"]], runs["baseline"], out, threshold_pct=2.0)
    names = ("report.md", "report.csv", "report.json", "summary.txt")
    assert paths == {name: str(out / name) for name in names}
    data = build([runs["variant"]], runs["baseline"], threshold_pct=2.0)
    for fmt in ("md", "csv", "json"):
        with open(paths[f"report.{fmt}"]) as f:
            assert f.read() == render(data, fmt)
    assert (out / "summary.txt").read_text() == summary(data)
    assert sorted(os.listdir(out)) == sorted(names)  # no temporary file left
    assert "inconclusive" in (out / "report.md").read_text()


def test_unknown_format(runs):
    with pytest.raises(ValueError, match="unknown report format 'html'; choose one of md, csv, json"):
        render_report([runs["variant"]], fmt="html")


def test_report_shows_diagnostics_and_skips_the_memory_rule_when_memory_was_not_measured(tmp_path, fixtures):
    diag = parse_run(fixtures / "diag" / "run_diag.log")
    text = render_report([diag])
    section = text[text.index("## Diagnostics (never part of a verdict)"):]
    assert "Slow-card collective launch skew" in section and "| collective |" in section
    assert "Slow-card compute op skew" in section and "DiT block hotspots" in section
    nomem = parse_run(fixtures / "diag" / "run_no_memory.log")
    assert nomem["memory_measured"] is False and nomem["metrics"]["reserved_peak"] is None
    other = tmp_path / "run_no_memory.log"  # another run of the same log: its own content
    other.write_bytes((fixtures / "diag" / "run_no_memory.log").read_bytes() + b"another run\n")
    data = build([nomem], [parse_run(other)])
    (g,) = data["groups"]
    assert g["verdict"] != "invalid" and g["diff_pct"]["reserved_peak"] is None
    assert "reserved_peak not measured (all memory figures 0.0 or absent): no memory verdict" in g["reasons"]


def test_machine_state_environment_and_output_in_the_report(tmp_path, samples):
    """Run directories with a raw capture (the recorded H100 outputs) and an output check, end to end
    through parse_run and build: the report shows the state, the differences and the scores."""
    dev = samples.parent / "devices"

    def capture(run, phase, driver=None):
        folder = run / "health" / phase
        folder.mkdir(parents=True)
        query = (dev / "nvidia-smi-query-h100x4-idle.csv").read_text()
        table = (dev / "nvidia-smi-h100x4-idle.txt").read_text()
        if driver:
            query, table = query.replace("580.159.04", driver), table.replace("580.159.04", driver)
        for name, text in (("nvidia_query", query), ("nvidia_table", table), ("kernel", "6.8.0-49-generic\n")):
            (folder / f"{name}.out").write_text(text)
            (folder / f"{name}.rc").write_text("0\n")

    def run_dir(name, sample, variant, driver=None, check=None):
        run = tmp_path / name
        run.mkdir()
        (run / "run.log").write_bytes((samples / f"run_sample_{sample}.log").read_bytes() + f"run {name}\n".encode())
        (run / "manifest.json").write_text(json.dumps({"variant": variant, "platform": "cuda"}))
        capture(run, "before", driver)
        capture(run, "after", driver)
        if check:
            (run / "output_check.json").write_text(json.dumps(check))
        return parse_run(run)

    score = {"status": "ok", "reason": "", "kind": "video", "psnr_db": 31.24, "ssim": 0.912, "max_abs_diff": 40.0,
             "identical": False}
    base = run_dir("b", "baseline", "baseline")
    cand = run_dir("c", "variant", "fw_w8a8", check={"control_run": "b", "score": score})
    newer = run_dir("d", "variant", "gate1", driver="580.95.05")
    data = build([cand, newer], [base], min_psnr_db=60)
    groups = {g["variant"]: g for g in data["groups"]}
    assert groups["fw_w8a8"]["output_flag"] == "output changed: PSNR 31.2 dB, SSIM 0.912"
    assert groups["gate1"]["verdict"] == "invalid"
    assert groups["gate1"]["env_diff"] == ["candidate run d: driver: 580.159.04 (control) vs 580.95.05 (run)"]
    text = summary(data)
    assert "fw_w8a8: INCONCLUSIVE (output changed: PSNR 31.2 dB, SSIM 0.912) (request_total" in text
    assert ("gate1: INVALID (request_total" in text and "; machine not fit: candidate run d: environment differs"
            " from the control: driver: 580.159.04 (control) vs 580.95.05 (run)" in text)
    md = render(data, "md").splitlines()
    assert cells(md, "## Verdicts", "fw_w8a8")[-2] == "inconclusive (output changed: PSNR 31.2 dB, SSIM 0.912)"
    start = md.index("## Machine state (before and after each run)")
    assert md[start + 2] == "- baseline (baseline)"
    assert md[start + 3].startswith("  - before: 4 device(s); util max 0 %; mem in use max 0 MB; temp max ")
    assert "other processes: none" in md[start + 3] and "driver 580.159.04, cuda 13.0" in md[start + 3]
    assert "kernel 6.8.0-49-generic" in md[start + 3]
    env = md.index("## Environment differences from the control")
    assert md[env + 2:env + 4] == ["- gate1", "  - candidate run d: driver: 580.159.04 (control) vs 580.95.05 (run)"]
    out = md.index("## Output vs the control (same --base_seed)")
    assert md[out + 2] == "- fw_w8a8: PSNR 31.2 dB, SSIM 0.912, max abs diff 40"
    rows = list(csv.DictReader(io.StringIO(render(data, "csv"))))
    (w8,) = [r for r in rows if r["variant"] == "fw_w8a8"]
    assert w8["output_flag"] == "output changed: PSNR 31.2 dB, SSIM 0.912" and w8["machine"].startswith("before: 4 device")
    assert json.loads(render(data, "json"))["groups"][0]["output"]["scores"][0]["psnr_db"] == 31.24


def test_write_on_a_full_disk_writes_nothing_and_names_the_file(small_fs, runs):
    """All or none: a disk that holds report.md and report.csv but not report.json keeps none of them."""
    mnt, fill = small_fs
    out = mnt / "report"
    out.mkdir()
    data = build([runs["variant"], runs["crash"]], [runs["baseline"]])
    pages = [-(-len(render(data, fmt).encode()) // 4096) * 4096 for fmt in ("md", "csv", "json")]
    assert pages[2] > 4096  # report.json needs more than the page left over
    fill(leave=pages[0] + pages[1] + 4096)  # report.md and report.csv fit, report.json does not
    with pytest.raises(OSError) as e:
        write(data, out)
    assert e.value.filename == str(out / "report.json") and "No space left" in e.value.strerror
    assert os.listdir(out) == []
