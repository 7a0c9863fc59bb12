"""bench.yml on the embedded default with a stand-in workload: the order of the runs, as the manifests
record it, and the warm-up left out of the verdict. The stand-in (a script in torchrun's place) prints a
real-format log whose request_total differs by at most 0.002 % between runs (identical times would give no
interval), so only the play's logic is under test."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from test_share import PNG_RE, plot_area, screenshot  # headless Chromium, as the share tests use it

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ENV = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
       "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_FORCE_COLOR": "0", "NO_COLOR": "1"}

# The stand-in is not the workload: it leaves out the sample's job-args line (a 14B run's, which the manifest's
# reference workload would disagree with) and ends each log with its pid (byte-identical runs are one run).
STUB = """#!/bin/sh
n=$(cat {count} 2>/dev/null || echo 0)
echo $((n + 1)) > {count}
grep -v "Generation job args" {log} | sed "s/request_total: 104321.987/request_total: 10432$((n % 3)).987/"
echo "stand-in run $$"
"""


def play(tmp_path, samples, *args):
    """bench.yml -e variant=gate1 with the stand-in; (exit code, output with its lines joined)."""
    stub = tmp_path / "torchrun"
    stub.write_text(STUB.format(log=samples / "run_sample_baseline.log", count=tmp_path / "count"))
    stub.chmod(0o755)
    res = subprocess.run(
        [str(BIN / "ansible-playbook"), "bench.yml", "-e", "variant=gate1", *args,
         "-e", f"wanbench_torchrun={stub}", "-e", f"wanbench_run_root={tmp_path / 'runs'}",
         "-e", f"wanbench_results_dir={tmp_path / 'results'}",
         "-e", "wanbench_health_busy_cpu_pct=100000"],  # the play's logic under test, not how busy the machine is
        cwd=REPO, env=ENV, capture_output=True, text=True, timeout=600)
    return res.returncode, " ".join((res.stdout + res.stderr).replace("'", " ").split())


def test_warmup_round_then_abba_blocks_recorded_in_manifests(tmp_path, samples):
    """A warm-up round (every arm once, discarded), then an ABBA pair; the report names the design and warm-up."""
    rc, out = play(tmp_path, samples, "-e", "repeats=2", "-e", "order_seed=4")
    assert rc == 0, out[-5000:]
    manifests = [json.loads(p.read_text()) for p in (tmp_path / "results" / "localhost").glob("*/manifest.json")]
    manifests.sort(key=lambda m: m["schedule"]["position"])
    order = [(m["variant"], m["schedule"]["block"], m["schedule"]["warmup"]) for m in manifests]
    assert [m["schedule"]["position"] for m in manifests] == [0, 1, 2, 3, 4, 5]
    blocks = [[v for v, b, _ in order if b == k] for k in (0, 1, 2)]
    assert [w for _, b, w in order if b == 0] == [True, True] and blocks[0] == blocks[1]  # every arm warms up
    assert blocks[2] == blocks[1][::-1] and sorted(blocks[1]) == ["baseline", "gate1"]  # ABBA or BAAB
    assert {(m["schedule"]["seed"], m["schedule"]["play"], m["schedule"]["design"]) for m in manifests} == {
        (4, manifests[0]["schedule"]["play"], "ABBA pairs, rotated")}
    (summary,) = (tmp_path / "results" / "localhost" / "reports").glob("*/*/summary.txt")
    # near-identical runs: change ~0, inside +-threshold: never pass or fail
    assert summary.read_text().startswith("gate1: INCONCLUSIVE (request_total ")
    report = (summary.parent / "report.md").read_text()
    assert report.count("warm-up (discarded)") >= 2 and "baseline: 2 of 2 runs used" in report
    assert "ABBA pairs, rotated, 1 warm-up round(s) of every arm:" in report
    assert (f"play {manifests[0]['schedule']['play']}: 6 runs, 2 repeat(s) an arm, ABBA pairs, rotated,"
            " 1 warm-up round(s) (one discarded run of every arm), order seed 4") in out
    # beside report.md: share.md and report.html, whose paths are the play's last message
    pages = [summary.parent / name for name in ("share.md", "report.html")]
    assert f"- {pages[0]} - {pages[1]}" in out and out.rindex("msg:") < out.index(str(pages[1])), out[-3000:]
    assert pages[0].read_text().startswith("**wanbench** · host localhost · commit ")
    # the page shows its plots in headless Chromium (the same page with broken images shows none)
    img = screenshot(pages[1], tmp_path / "shot.png", tmp_path / "profile")
    rows, ink = plot_area(img)
    assert rows > 50 and ink > 3000, (rows, ink)  # the change plot: threshold band, intervals, labels
    broken = tmp_path / "broken.html"
    broken.write_text(PNG_RE.sub('<img alt="x" src="data:image/png;base64,AAAA">', pages[1].read_text()))
    assert plot_area(screenshot(broken, tmp_path / "broken.png", tmp_path / "profile")) == (0, 0)


def test_adaptive_repeats_stop_once_decided(tmp_path, samples):
    """repeats=auto with a budget of 4 blocks: near-identical runs are equivalent at the look after the first
    ABBA pair, so blocks 3 and 4 are skipped and the report says why it stopped and the alpha it spent."""
    rc, out = play(tmp_path, samples, "-e", "repeats=auto", "-e", "max_runs=4")
    assert rc == 0, out[-5000:]
    manifests = [json.loads(p.read_text()) for p in (tmp_path / "results" / "localhost").glob("*/manifest.json")]
    assert sorted(m["schedule"]["block"] for m in manifests) == [0, 0, 1, 1, 2, 2]
    # O'Brien-Fleming-shaped alpha spending over the looks after blocks 2 and 4: 0.56 % spent by block 2
    assert [m["schedule"]["confidence"] for m in manifests if m["schedule"]["block"] == 2] == [
        pytest.approx(0.994425, abs=1e-6)] * 2
    assert "fsdp:profiled after block 2 of 4: decided, remaining blocks skipped" in out
    (report,) = (tmp_path / "results" / "localhost" / "reports").glob("*/*/report.md")
    assert ("- repeats=auto: 2 of 4 blocks run, stopped: decided; alpha spent 0.005575 of 0.05 (obrien-fleming,"
            " Lan-DeMets); this report at 95.56 %") in report.read_text()
