"""wanbench.report: the raw and percent-change tables as markdown, CSV and JSON."""

import csv
import io
import json
import os

import pytest

from wanbench.parse import METRICS, parse_run
from wanbench.report import RAW_COLUMNS, build, fmt_pct, fmt_value, render_report, write_report


@pytest.fixture
def runs(samples):
    return {name: parse_run(samples / f"run_sample_{name}.log") for name in ("baseline", "variant", "crash")}


def make_run_dir(tmp_path, samples, name, sample, manifest):
    run = tmp_path / name
    run.mkdir()
    (run / "run.log").write_bytes((samples / f"run_sample_{sample}.log").read_bytes())
    (run / "perf.csv").write_bytes((samples / f"perf_sample_{sample}.csv").read_bytes())
    (run / "manifest.json").write_text(json.dumps(manifest))
    return parse_run(run)


def test_formatting():
    assert [fmt_pct(v) for v in (-1.3398, 0.5, 0.0, 125.7851, None)] == ["-1.34", "+0.50", "+0.00", "+125.79", "n/a"]
    assert [fmt_value(m, 18050.0) for m in ("request_total", "reserved_peak", "gen_time", "real_time")] == [
        "18050.000", "18050.0", "18050.0000", "18050.00"]
    assert fmt_value("request_total", None) == "n/a"


def test_markdown_report(runs):
    text = render_report([runs["variant"], runs["crash"]], runs["baseline"])
    lines = text.splitlines()
    assert lines[:6] == ["# wanbench report", "", "- commit: unknown", "- host: unknown", "- date: unknown",
                         "- baseline: run_sample_baseline (noise threshold 0.50 %, reserved_peak tolerance 1.00 %)"]
    header = next(line for line in lines if line.startswith("| variant ") and "log_file" in line)
    assert [c.strip() for c in header.strip("|").split("|")] == list(RAW_COLUMNS)

    def row(section, variant):
        start = lines.index(section)
        line = next(line for line in lines[start:] if line.startswith(f"| {variant} "))
        return [c.strip() for c in line.strip("|").split("|")]

    assert row("## Raw metrics", "run_sample_baseline")[2:] == [
        "104321.987", "5163.402", "2811.276", "978.514", "574.908", "403.606", "19792.0", "104.4187", "n/a",
        "ok", "baseline"]
    assert row("## Raw metrics", "run_sample_crash")[-3:] == ["n/a", "failed", "fail"]
    assert row("## Change vs baseline (%)", "run_sample_variant") == [
        "run_sample_variant", "-1.34", "-1.23", "+0.18", "-7.39", "-10.77", "-2.42", "+0.28", "-1.34", "n/a", "pass"]
    assert not any(line.startswith("| run_sample_baseline ")
                   for line in lines[lines.index("## Change vs baseline (%)"):])
    notes = lines[lines.index("## Verdicts and notes"):]
    assert notes[2:6] == ["- run_sample_variant (pass)", "  - reserved_peak +0.28 % within 1.00 % tolerance",
                          "  - request_total -1.34 % beyond the 0.50 % noise threshold",
                          "  - warning (candidate): negative stage time in stage_totals: vae_decode"
                          " max=-38.172, avg=-38.106"]
    assert notes[6:8] == ["- run_sample_crash (fail)",
                          "  - candidate failed: out of memory: RuntimeError: NPU out of memory. Tried to allocate 2.00 GiB"]


def test_report_without_baseline(runs):
    text = render_report([runs["variant"], runs["crash"]])
    assert "## Change vs baseline" not in text and "- baseline:" not in text
    assert text.endswith("- run_sample_variant\n  - warning: negative stage time in stage_totals: vae_decode"
                         " max=-38.172, avg=-38.106\n- run_sample_crash\n"
                         "  - failed: out of memory: RuntimeError: NPU out of memory. Tried to allocate 2.00 GiB\n")


def test_header_and_variant_names_come_from_manifests(tmp_path, samples):
    baseline = make_run_dir(tmp_path, samples, "r1", "baseline",
                            {"variant": "baseline", "host": "npu", "repo": {"sha": "abc123"},
                             "started_at": "2026-02-11T14:03:10Z"})
    variant = make_run_dir(tmp_path, samples, "r2", "variant",
                           {"variant": "agwait1", "host": "npu", "repo": {"sha": "def456"}})
    data = build([baseline, variant], baseline)  # the baseline listed again is not repeated
    assert [r["variant"] for r in data["rows"]] == ["baseline", "agwait1"]
    assert {k: data["header"][k] for k in ("commit", "host", "date", "baseline")} == {
        "commit": "abc123, def456", "host": "npu", "date": "2026-02-11T14:03:10Z, unknown", "baseline": "baseline"}
    assert data["rows"][1]["log_file"] == str(tmp_path / "r2" / "run.log")
    assert data["rows"][1]["notes"][-1] == ("warning (candidate): negative stage time in stage_totals:"
                                            " vae_decode max=-38.172, avg=-38.106 (perf.csv, run.log)")


def test_csv_and_json_keep_full_precision(runs):
    rows = list(csv.DictReader(io.StringIO(render_report([runs["variant"]], runs["baseline"], fmt="csv"))))
    assert [r["variant"] for r in rows] == ["run_sample_baseline", "run_sample_variant"]
    assert list(rows[0])[:len(RAW_COLUMNS)] == list(RAW_COLUMNS)
    assert (rows[1]["request_total"], rows[1]["reserved_peak"], rows[1]["real_time"]) == ("102922.546", "19847.0", "")
    assert float(rows[1]["request_total_pct"]) == pytest.approx(-1.34146313758383, rel=1e-12)
    assert (rows[0]["request_total_pct"], rows[1]["verdict"], rows[1]["commit"]) == ("", "pass", "")
    assert rows[1]["notes"].startswith("reserved_peak +0.28 % within 1.00 % tolerance; request_total -1.34 %")

    data = json.loads(render_report([runs["variant"]], runs["baseline"], fmt="json"))
    assert data["header"] == {"commit": "unknown", "host": "unknown", "date": "unknown",
                              "baseline": "run_sample_baseline", "noise_pct": 0.5, "reserved_tolerance_pct": 1.0}
    variant = data["rows"][1]
    assert {m: variant[m] for m in METRICS}["gen_time"] == 103.0168
    assert variant["reserved_peak_pct"] == pytest.approx(0.27789005658852, rel=1e-12)
    assert (variant["real_time"], variant["real_time_pct"], variant["verdict"]) == (None, None, "pass")


def test_write_report_replaces_files_atomically(tmp_path, runs):
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.md").write_text("old")
    paths = write_report([runs["variant"]], runs["baseline"], out, noise_pct=2.0)
    assert paths == {fmt: str(out / f"report.{fmt}") for fmt in ("md", "csv", "json")}
    for fmt, path in paths.items():
        with open(path) as f:
            assert f.read() == render_report([runs["variant"]], runs["baseline"], fmt=fmt, noise_pct=2.0)
    assert sorted(os.listdir(out)) == ["report.csv", "report.json", "report.md"]  # no temporary file left
    assert "inconclusive" in (out / "report.md").read_text()


def test_unknown_format(runs):
    with pytest.raises(ValueError, match="unknown report format 'html'; choose one of md, csv, json"):
        render_report([runs["variant"]], fmt="html")
