"""Issue 10's "done when", end to end on the embedded default (reference workload, real torchrun):
a 2-variant x 3-repeat matrix split between two local hosts with their own run roots (plus a third
host that is unreachable and drops out), run by the scheduled entry `wanbench nightly` through
ansible-runner; the index, rebuilt from the directories with the same content; old-style files
imported; the share report as markdown and HTML, screenshotted in Chromium.

Covered elsewhere, not repeated here: the 10-night synthetic history with a 5 % regression on night
7, its alarm, commit range and ack (tests/test_history.py); index atomicity and half-collected runs
(tests/test_index.py); the plots' pixels in detail (tests/test_share.py); the summary's exit codes
(tests/test_nightly.py).
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from wanbench import index

from test_index import OLD
from test_share import PNG_RE, images, plot_area, screenshot

REPO = Path(__file__).resolve().parents[1]
HOSTS = {"nightly-a": "ffn_only", "nightly-b": "gate1"}  # the round-robin share of each host
ENV = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_FORCE_COLOR": "0",
       "PYTHONPATH": str(REPO), "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}


def wanbench(*argv, timeout=120):
    return subprocess.run([sys.executable, "-m", "wanbench.cli", *map(str, argv)], cwd=REPO, env=ENV,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    """One nightly: matrix ci (ffn_only, gate1; 2 repeats: one ABBA pair) over nightly-a, nightly-b and nightly-gone."""
    tmp = tmp_path_factory.mktemp("nightly")
    extra = tmp / "extra.yml"
    extra.write_text(yaml.safe_dump({
        # the test's own matrix and a small workload shape: -e values, nothing users edit changes
        "wanbench_matrices": {"ci": {"variants": ["ffn_only", "gate1"], "repeats": 2}},
        "wanbench_platform_settings": {"npu": {}, "cuda": {}, "reference": {
            "task": "t2v-tiny", "size": "32*32", "frame_num": 5}},
        "wanbench_warmup_runs": 0,  # the warm-up is bench.yml's (tests/test_bench_order.py); not needed here
        "nightly_test_root": str(tmp / "roots")}))
    res = wanbench("nightly", "--matrix", "ci", "--inventory", "tests/fixtures/nightly-dropout",
                   "--results", tmp / "results", "-e", f"@{extra}", "--quiet", timeout=1500)
    return res, tmp / "results"


def _blank_like(match):
    """An <img> of a white PNG as large as the matched one (its IHDR width and height)."""
    import base64
    import io
    import struct

    import matplotlib.pyplot as plt
    import numpy as np

    w, h = struct.unpack(">II", base64.b64decode(match.group(2))[16:24])
    buf = io.BytesIO()
    plt.imsave(buf, np.ones((h, w, 3)), format="png")
    return f'<img alt="x" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'


def runs_of(results, host):
    out = {}
    for d in sorted(p for p in (results / host).iterdir() if p.name != "reports"):
        m = json.loads((d / "manifest.json").read_text())
        out.setdefault(m["variant"], []).append((d, m))
    return out


def test_the_matrix_is_split_and_a_dropped_host_does_not_stop_the_others(night):
    res, results = night
    assert res.returncode == 4, res.stdout + res.stderr  # broken: a host dropped out; every run is fine
    line = res.stdout.splitlines()[0]
    assert " nightly ci: exit 4 (broken run); 2/3 host(s) measured; 8 run(s); 0 broken;" in line
    assert "dropped out: nightly-gone; alarms: 0 open, 0 acked; plays " in line
    assert (results / "nightly.log").read_text() == line + "\n"
    assert not (results / "nightly-gone").exists()
    plays = set()
    for host, candidate in HOSTS.items():
        runs = runs_of(results, host)
        assert sorted(runs) == sorted(["baseline", candidate])  # its share, with its own fresh controls
        assert [len(v) for v in runs.values()] == [2, 2]
        manifests = [m for v in runs.values() for _, m in v]
        assert {m["exit_code"] for m in manifests} == {0}
        play, = {m["schedule"]["play"] for m in manifests}
        plays.add(play)
        # interleaved: ABBA or BAAB blocks of control and candidate
        order = [m["variant"] for m in sorted(manifests, key=lambda m: m["schedule"]["position"])]
        assert order[:2] == order[2:4][::-1] and set(order[:2]) == {"baseline", candidate}
        # comparisons stay within the host: its report names only its own runs
        report, = (results / host / "reports").glob("*/*/report.json")
        paths = json.dumps(json.loads(report.read_text()))
        assert str(results / host) in paths and all(str(results / h) not in paths for h in HOSTS if h != host)
    assert line.endswith("plays " + ", ".join(sorted(plays))) or set(line.rsplit("plays ", 1)[1].split(", ")) == plays


def test_the_index_rebuilt_from_the_directories_has_the_same_content(night):
    _, results = night
    built = index.dump(results)  # the nightly's summary built it, run directory by run directory
    assert sum(line.startswith("runs ") for line in built) == 8
    res = wanbench("index", "--rebuild", results)
    assert res.returncode == 0 and "rebuilt, 8 run(s) added, 8 indexed" in res.stdout, res.stderr
    assert index.dump(results) == built


def test_old_style_files_are_imported_into_the_same_index(night, fixtures, tmp_path):
    _, results = night
    old = tmp_path / "old"
    shutil.copytree(fixtures / "imported", old)
    for name, sample in OLD.items():
        shutil.copyfile(fixtures / "samples" / sample, old / name)
    res = wanbench("import", old, "--variant", "baseline", "--results", results, "--host", "imported")
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith(f"{old}: 2 run(s) imported, 0 already there")
    db = index.open_index(results)
    assert tuple(db.execute("SELECT COUNT(*), SUM(imported) FROM runs").fetchone()) == (10, 2)
    incremental = index.dump(results)
    index.rebuild(results)
    assert index.dump(results) == incremental


def test_share_report_md_and_html_render_in_chromium(night, tmp_path):
    _, results = night
    runs = runs_of(results, "nightly-a")
    out = tmp_path / "share"
    res = wanbench("share", *[d for d, _ in runs["ffn_only"]],
                   *[x for d, _ in runs["baseline"] for x in ("--baseline", d)],
                   "--results", results, "--host", "nightly-a", "--noise-cv-pct", "12.5", "--out", out)
    assert res.returncode == 0, res.stdout + res.stderr
    md = (out / "share.md").read_text()
    assert "ffn_only" in md and "nightly-a" in md
    page = out / "report.html"
    html = page.read_text()
    # the change plot; request_total and reserved_peak of baseline, ffn_only (the attribution's waterfall aside)
    assert len(images(html)) == 3 and len(PNG_RE.findall(html)) == 4
    img = screenshot(page, tmp_path / "shot.png", tmp_path / "profile")
    # the same page with its images blank: what the plots add to the screenshot
    broken = tmp_path / "broken.html"
    broken.write_text(PNG_RE.sub(_blank_like, html))  # same sizes, so the page keeps its layout
    bare = screenshot(broken, tmp_path / "broken.png", tmp_path / "profile")
    assert plot_area(img)[0] > 0 and plot_area(bare) == (0, 0)  # the threshold band of the change plot was drawn
    ink, bare_ink = ((i[..., :3] < 0.9).any(axis=-1).sum() for i in (img, bare))
    assert ink - bare_ink > 20000, (ink, bare_ink)  # axes, intervals, history points: ~45000 px on 2026-11-27
