"""wanbench.share: the paste-ready markdown, the self-contained HTML report, its plots in Chromium."""

import argparse
import base64
import io
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from wanbench import history, report, share
from wanbench.parse import parse_run

from test_history import results_with_history, sha, synthetic  # the synthetic 10-night history

REPO = Path(__file__).resolve().parents[1]
GPU = REPO / "docs" / "gpu-runs" / "h100x4-2026-11-27-1.3B-aa-nofsdp" / "runs"
BASELINES = ["00-baseline", "03-baseline", "04-baseline", "08-baseline"]  # 00 is the warm-up
CANDIDATES = ["01-nofsdp", "02-aa", "05-aa", "06-nofsdp", "07-nofsdp", "09-aa"]
WINDOW = (1000, 2000)
PNG_RE = re.compile(r'<img alt="([^"]*)" src="data:image/png;base64,([A-Za-z0-9+/=]+)">')


def gpu_data(candidates=None):
    runs = [parse_run(p) for p in candidates or [GPU / c for c in CANDIDATES]]
    return report.build(runs, [parse_run(GPU / b) for b in BASELINES])


def parser():
    p = argparse.ArgumentParser()
    share.add_cli(p.add_subparsers())
    return p


def share_args(out, *extra, candidates=None):
    paths = [str(c) for c in candidates or [GPU / c for c in CANDIDATES]]
    base = [x for b in BASELINES for x in ("--baseline", str(GPU / b))]
    return parser().parse_args(["share", *paths, *base, "--out", str(out), *extra])


def images(text):
    """[(alt, png bytes)] of the HTML's embedded images, the attribution's waterfalls left out (test_attribution)."""
    return [(alt, base64.b64decode(data)) for alt, data in PNG_RE.findall(text) if not alt.endswith("(waterfall)")]


def read_png(png):
    """An RGB(A) float array of PNG bytes (matplotlib's reader)."""
    import matplotlib.image

    return matplotlib.image.imread(io.BytesIO(png), format="png")


def colour_pixels(img, hex_colour, tol=0.03):
    """Number of pixels of ``hex_colour`` (#rrggbb) in an image array."""
    import numpy as np

    rgb = np.array([int(hex_colour[i:i + 2], 16) / 255 for i in (1, 3, 5)])
    return int((np.abs(img[..., :3] - rgb) < tol).all(axis=-1).sum())


# ---------------------------------------------------------------- markdown share report

def test_share_markdown_on_the_real_gpu_runs():
    text = share.markdown(gpu_data())
    lines = text.splitlines()
    # the manifests record the host but no commit or start: the date comes from the logs' time stamps
    assert lines[0] == ("**wanbench** · host vm · commit not recorded · date 2026-11-27 07:53:19 .. 2026-11-27 07:58:46"
                        " (log time stamps, the host's local time)")
    assert lines[1] == ("baseline baseline; request_total change with its 95 % interval (paired t on log differences"
                        " within blocks; Holm over 2 candidates (95 % family-wise)), threshold ±0.50 %; reserved_peak"
                        " tolerance +1.00 %; 1 warm-up run(s) discarded")
    verdicts = text.split("\n\n**", 1)[0].splitlines()  # the verdict table; the attribution tables follow
    rows = [line for line in verdicts if line.startswith("| ")]
    assert rows == [
        "| variant | n base/cand | request_total ms (mean) | change | 95 % CI | reserved_peak MB (max) | change"
        " | verdict |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
        "| nofsdp | 3/3 | 11775.118 → 10108.306 | -14.17 % | -17.67 .. -10.52 % | 10854.0 → 19394.0 | +78.68 %"
        " | FAIL: reserved_peak +78.68 % > 1.00 % tolerance |",
        "| aa | 3/3 | 11775.118 → 11945.730 | +1.43 % | -1.78 .. +4.75 % | 10854.0 → 10854.0 | +0.00 %"
        " | inconclusive: 344 runs a side needed |",
    ]
    assert "- noise, request_total CV: baseline 1.78 % (n=3); nofsdp 2.76 % (n=3); aa 2.79 % (n=3)" in lines
    assert ("- host noise (A/A, 3 + 3 runs): request_total CV 2.36 % (baseline 1.78 %, aa 2.79 %), spread 6.23 %"
            " of the mean; resolving 0.50 % needs 344 runs a side (80 % power): not stable enough at 3 run(s)"
            " a side") in lines
    assert len(verdicts) < 15 and "history" not in text  # short; then where the time went; the long report is report.md


def test_share_markdown_states_a_pass_an_equivalence_and_no_baseline():
    data = gpu_data()
    nofsdp, aa = data["groups"]
    nofsdp.update(verdict="pass")
    aa.update(equivalent=True)
    assert [share.verdict_text(g) for g in data["groups"]] == ["PASS", "inconclusive: equivalent within ±0.50 %"]
    aa.update(equivalent=False, runs_needed=None)
    aa["ci_pct"]["request_total"] = None
    assert share.verdict_text(aa) == "inconclusive: no interval"
    alone = report.build([parse_run(GPU / "02-aa")])
    assert share.markdown(alone).splitlines()[2:] == ["no baseline runs: no change to report"]


def test_a_failed_candidate_run_is_the_reason_of_its_fail(tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(GPU / "06-nofsdp", bad)
    (bad / "exit_code").write_text("1\n")
    g, = gpu_data([bad])["groups"]
    assert g["verdict"] == "fail" and share.verdict_text(g).startswith("FAIL: candidate failed: ")
    assert len(share.verdict_text(g)) <= len("FAIL: ") + 60


# ---------------------------------------------------------------- HTML report

def test_html_is_self_contained_and_holds_the_change_plot():
    text = share.html(gpu_data())
    for outside in ("http://", "https://", 'src="/', "src='/", "<script", "url(", "<link"):
        assert outside not in text.lower()
    (alt, png), = images(text)
    assert alt.startswith("request_total change vs baseline")
    img = read_png(png)
    assert img.shape[:2] == (270, 900)  # (1.6 + 0.55 x 2 variants) inches at 100 dpi
    assert colour_pixels(img, share.BAND_COLOR) > 1000  # the +-threshold band
    assert colour_pixels(img, share.VERDICT_COLORS["fail"]) > 100  # nofsdp's interval, in its verdict's colour
    assert '<td class="l fail">FAIL: reserved_peak +78.68 % &gt; 1.00 % tolerance</td>' in text
    assert "host <b>vm</b> · commit <b>not recorded</b> · date <b>2026-11-27 07:53:19 .. " in text
    assert "<h2>History</h2>" not in text


def hostile(tmp_path):
    """The three nofsdp runs with a variant name made to break HTML, markdown and matplotlib's mathtext."""
    name = '<script>alert("x")</script> | $x_1$ & co'
    out = []
    for c in ("01-nofsdp", "06-nofsdp", "07-nofsdp"):
        d = tmp_path / c
        shutil.copytree(GPU / c, d)
        manifest = json.loads((d / "manifest.json").read_text())
        manifest["variant"] = name
        manifest["repo"] = {"sha": "<b>deadbeef</b>"}
        (d / "manifest.json").write_text(json.dumps(manifest))
        out.append(d)
    return name, out


def test_html_escapes_names_commits_and_reasons_from_the_manifests(tmp_path):
    name, runs = hostile(tmp_path)
    text = share.html(gpu_data(runs))
    assert "<script" not in text and "<b>deadbeef" not in text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; | $x_1$ &amp; co" in text
    assert "&lt;b&gt;deadbeef&lt;/b&gt;" in text
    assert len(images(text)) == 1  # the plot survived the '$' (no mathtext)
    md = share.markdown(gpu_data(runs))
    assert "| &lt;script>alert(\"x\")&lt;/script> \\| $x_1$ &amp; co | 3/3 |" in md  # the table keeps its columns


UNESCAPED_PIPE = re.compile(r"(?<!\\)\|")


@pytest.mark.parametrize("render", [share.markdown, lambda data: report.render(data, "md")], ids=["share.md", "report.md"])
def test_markdown_escapes_pipes_newlines_html_and_images_from_the_manifests(tmp_path, render):
    name = 'a|b\n<script>alert(1)</script> ![x](http://evil.example/x.png)'
    runs = []
    for c in ("01-nofsdp", "06-nofsdp", "07-nofsdp"):
        shutil.copytree(GPU / c, tmp_path / c)
        manifest = json.loads((tmp_path / c / "manifest.json").read_text())
        manifest.update(variant=name, host="vm\n| host |", repo={"sha": "<img src=x onerror=alert(1)>"})
        (tmp_path / c / "manifest.json").write_text(json.dumps(manifest))
        runs.append(tmp_path / c)
    md = render(gpu_data(runs))
    assert "<script" not in md and "<img" not in md and "![x](" not in md and "\n| host |" not in md
    escaped = "a\\|b &lt;script>alert(1)&lt;/script> !\\[x\\](http://evil.example/x.png)"
    assert escaped in md
    tables = [[]]
    for line in md.splitlines():  # each table: every row has the header's columns
        if line.startswith("|"):
            tables[-1].append(len(UNESCAPED_PIPE.findall(line)))
        elif tables[-1]:
            tables.append([])
    assert [t for t in tables if t] and all(len(set(t)) == 1 for t in tables if t), tables
    assert any(escaped in line and line.startswith("|") for line in md.splitlines())


def test_write_is_atomic_and_writes_nothing_when_a_part_fails(tmp_path, monkeypatch):
    data = gpu_data()
    paths = share.write(data, tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["report.html", "share.md"]
    assert Path(paths["share.md"]).read_text() == share.markdown(data)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if matplotlib were not installed
    with pytest.raises(ValueError, match="the HTML report needs matplotlib: pip install matplotlib"):
        share.write(data, tmp_path / "new")
    assert not (tmp_path / "new").exists()


def test_matplotlib_is_imported_only_to_plot():
    code = ("import sys, wanbench.share, wanbench.report, wanbench.cli; assert 'matplotlib' not in sys.modules;"
            " wanbench.share.markdown(wanbench.report.build([]));"
            " assert 'matplotlib' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


# ---------------------------------------------------------------- the CLI handler

def test_share_handler_writes_both_files_and_returns_the_verdicts(tmp_path):
    args = share_args(tmp_path / "out", "--check")
    inputs, text, verdicts = args.func(args)
    assert len(inputs) == 10 and verdicts == ["fail", "inconclusive"] and args.check
    assert text.splitlines()[:2] == [str(tmp_path / "out" / "share.md"), str(tmp_path / "out" / "report.html")]
    assert text.splitlines()[2].startswith("nofsdp: FAIL (request_total -14.17 %")
    assert (tmp_path / "out" / "share.md").read_text() == share.markdown(gpu_data())


def test_share_handler_bad_usage_is_one_line(tmp_path):
    args = parser().parse_args(["share", str(GPU / "02-aa"), "--out", str(tmp_path)])
    with pytest.raises(ValueError, match=r"^share needs --baseline PATH"):
        args.func(args)
    args = share_args(tmp_path, "--host", "npu1")
    with pytest.raises(ValueError, match=r"^--host selects the history of --results DIR"):
        args.func(args)
    args = share_args(tmp_path, "--results", str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="missing: not a folder"):
        args.func(args)
    for argv, message in (([str(GPU / "02-aa"), "--baseline", str(GPU / "03-baseline")], "share needs --out DIR"),
                          (["--baseline", str(GPU / "03-baseline"), "--out", str(tmp_path)], "share needs candidate"),
                          ([str(GPU / "02-aa"), "--play", "P", "--out", str(tmp_path)],
                           r"share takes one of: .* \(got PATH --baseline PATH and --play\)"),
                          (["--out", str(tmp_path)], "share takes one of: "),
                          (["--report", str(tmp_path / "none")], "none: no report.json"),
                          (["--play", "P", "--results", str(tmp_path / "none"), "--out", str(tmp_path)],
                           "none: not a folder"),
                          (["--play", "P", "--results", str(GPU.parent), "--out", str(tmp_path)],
                           "play P: no collected run of it under ")):  # (the runs' own play has another id)
        args = parser().parse_args(["share", *argv])
        with pytest.raises(ValueError, match=message):
            args.func(args)
    assert list(tmp_path.iterdir()) == [] and not (GPU.parent / "index.sqlite").exists()  # nothing written


def test_share_finds_a_plays_runs_and_rerenders_a_report_folder(tmp_path):
    """--play ID: the play's collected runs (results/<host>/<run>/, by manifest) judged as the play grouped
    them, as the explicit form judges them; --report DIR: a report folder's verdicts rendered as they are."""
    explicit = share_args(tmp_path / "explicit")
    explicit.func(explicit)
    results = tmp_path / "results"
    for run in BASELINES + CANDIDATES:
        shutil.copytree(GPU / run, results / "vm" / run)
    args = parser().parse_args(["share", "--play", "20261127T075306Z-gpu", "--results", str(results),
                                "--out", str(tmp_path / "play")])
    inputs, text, verdicts = args.func(args)
    assert len(inputs) == 10 and verdicts == ["fail", "inconclusive"]
    played = (tmp_path / "play" / "share.md").read_text()
    # the same verdicts; --results also gives the history (one play: no alarm)
    assert played == (tmp_path / "explicit" / "share.md").read_text() + "\nhistory: no open alarms\n"
    # a report folder as a play leaves it (report.json among its files), rendered again elsewhere
    data = gpu_data()
    report.write(data, tmp_path / "rep")
    args = parser().parse_args(["share", "--report", str(tmp_path / "rep"), "--out", str(tmp_path / "again")])
    inputs, text, verdicts = args.func(args)
    assert inputs == [] and verdicts == ["fail", "inconclusive"]
    assert (tmp_path / "again" / "share.md").read_text() == share.markdown(data)
    assert images((tmp_path / "again" / "report.html").read_text())  # the change plot, from report.json alone
    args = parser().parse_args(["share", "--report", str(tmp_path / "rep")])  # default: into the report folder
    assert args.func(args)[1].splitlines()[:2] == [str(tmp_path / "rep" / "share.md"),
                                                  str(tmp_path / "rep" / "report.html")]


# ---------------------------------------------------------------- history plots

def test_history_plots_from_a_synthetic_10_night_index_mark_the_alarm(tmp_path):
    results_with_history(tmp_path / "results")  # 5 % regression from night 7, 3 runs + a warm-up a night
    args = share_args(tmp_path / "out", "--results", str(tmp_path / "results"), "--host", "npu1")
    _, _, verdicts = args.func(args)
    assert verdicts == ["fail", "inconclusive", "fail"]  # the open alarm counts as a fail
    md = (tmp_path / "out" / "share.md").read_text()
    alarm, = [line for line in md.splitlines() if line.startswith("- OPEN: ")]
    assert "history: 1 open alarm(s)" in md
    assert alarm.startswith("- OPEN: npu1 baseline request_total +") and "since play07 (2026-11-07)" in alarm
    assert f"commits {sha(6)[:12]}..{sha(7)[:12]}; bisect: ansible-playbook playbooks/bisect.yml -e alarm=" in alarm
    text = (tmp_path / "out" / "report.html").read_text()
    (_, change), (alt, past) = images(text)
    assert alt == "npu1 / baseline: request_total and reserved_peak over nights"
    img = read_png(past)
    assert img.shape[:2] == (540, 900)  # two panels: request_total, reserved_peak
    assert colour_pixels(img, share.ALARM_COLOR) > 5000  # nights 7..10 of request_total shaded
    assert "OPEN: npu1 baseline request_total" in text and "playbooks/bisect.yml -e alarm=" in text


def test_history_without_a_regression_has_no_alarm_marked():
    data = synthetic(seed=3)
    series = [{"host": "npu1", "variant": "baseline", "metric": m, "nights": data[m]} for m in data]
    assert history.alarms(series) == []
    (host, variant, png), = share.history_plots(series)
    img = read_png(png)
    assert (host, variant) == ("npu1", "baseline") and img.shape[:2] == (540, 900)
    assert colour_pixels(img, share.ALARM_COLOR) == 0
    assert colour_pixels(img, "#1f5f99") > 200  # the medians' line
    assert '<p class="meta">no open alarms</p>' in share.html(report.build([]), series)


def test_an_acked_alarm_is_listed_greyed_and_not_open():
    data = synthetic(seed=7, regression_from=7)
    series = [{"host": "npu1", "variant": "baseline", "metric": m, "nights": data[m]} for m in data]
    acks = [{"host": "npu1", "variant": "*", "metric": "*", "until": "2026-12-01", "reason": "known <slow> kernel"}]
    alarm, = history.alarms(series, acks=acks)
    md = share.markdown(report.build([]), [alarm])
    assert md.splitlines()[-1] == "history: no open alarms"
    (_, _, png), = share.history_plots(series, [alarm])
    img = read_png(png)
    assert colour_pixels(img, share.ALARM_COLOR) == 0 and colour_pixels(img, "#e6e6e6") > 5000
    text = share.html(report.build([]), series, [alarm])
    assert "acked (known &lt;slow&gt; kernel (until 2026-12-01)): npu1 baseline request_total" in text


def test_one_run_a_side_without_noise_is_plotted_without_an_interval():
    data = report.build([parse_run(GPU / "02-aa")], [parse_run(GPU / "03-baseline")])
    g, = data["groups"]
    assert g["ci_pct"]["request_total"] is None and share.verdict_text(g) == "inconclusive: no interval"
    img = read_png(share.change_plot(data))
    assert img.shape[:2] == (215, 900) and colour_pixels(img, share.BAND_COLOR) > 1000
    assert "| aa | 1/1 | 11591.939 → 11765.991 | +1.50 % | n/a |" in share.markdown(data)


def test_a_known_noise_for_one_run_sides_is_named_with_its_source():
    noise = {"cv_pct": 0.59, "df": 11, "source": "measured 2026-11-27"}
    data = report.build([parse_run(GPU / "06-nofsdp")], [parse_run(GPU / "03-baseline")], noise=noise)
    md = share.markdown(data).splitlines()
    assert "- noise, request_total CV: baseline n/a (n=1); nofsdp n/a (n=1)" in md
    assert "- known noise for one-run sides: CV 0.59 % (measured 2026-11-27)" in md
    row, = [line for line in md if line.startswith("| nofsdp")]
    assert row.split(" | ")[3:5] == ["-10.51 %", "-12.13 .. -8.86 %"]  # exp(log(c/b) +- t[11] log1p(CV) sqrt 2) - 1
    assert "known noise" not in share.markdown(gpu_data())  # both sides have their own spread there


# ---------------------------------------------------------------- Chromium renders it

def chromium():
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if not exe:
        pytest.fail("chromium not found: the screenshot test needs Debian's chromium package"
                    " (apt-get install -y chromium); CI installs it", pytrace=False)
    return exe


def screenshot(html_path, png_path, profile):
    w, h = WINDOW
    cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
           "--force-device-scale-factor=1", "--virtual-time-budget=5000", f"--user-data-dir={profile}",
           f"--screenshot={png_path}", f"--window-size={w},{h}", html_path.as_uri()]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and png_path.is_file(), f"chromium failed ({done.returncode}): {done.stderr[-2000:]}"
    return read_png(png_path.read_bytes())


def plot_area(img):
    """(rows with the threshold band, non-white pixels over those rows) of a screenshot."""
    import numpy as np

    rgb = np.array([int(share.BAND_COLOR[i:i + 2], 16) / 255 for i in (1, 3, 5)])
    band = (np.abs(img[..., :3] - rgb) < 0.03).all(axis=-1)
    rows = np.flatnonzero(band.sum(axis=1) >= 6)  # the band is 7-12 px wide (by the axis range); stray text is not
    if not len(rows):
        return 0, 0
    area = img[rows.min():rows.max() + 1, :, :3]
    return len(rows), int((area < 0.9).any(axis=-1).sum())


def test_chromium_renders_the_plots(tmp_path):
    data = synthetic(seed=7, regression_from=7)
    series = [{"host": "npu1", "variant": "baseline", "metric": m, "nights": data[m]} for m in data]
    page = tmp_path / "report.html"
    page.write_text(share.html(gpu_data(), series))
    img = screenshot(page, tmp_path / "shot.png", tmp_path / "profile")
    assert img.shape[:2] == (WINDOW[1], WINDOW[0])
    rows, ink = plot_area(img)
    assert rows > 100 and ink > 3000  # the change plot: band across the axes, intervals, labels
    assert colour_pixels(img, share.ALARM_COLOR) > 5000  # the history plot with its alarm
    # the same page with broken images: no plot area, so the checks above can fail
    broken = tmp_path / "broken.html"
    broken.write_text(PNG_RE.sub('<img alt="x" src="data:image/png;base64,AAAA">', page.read_text()))
    img = screenshot(broken, tmp_path / "broken.png", tmp_path / "profile")
    assert plot_area(img) == (0, 0) and colour_pixels(img, share.ALARM_COLOR) < 1000  # anti-aliased red text


def test_a_missing_chromium_fails_naming_the_install_step(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(pytest.fail.Exception, match=r"apt-get install -y chromium"):
        chromium()
