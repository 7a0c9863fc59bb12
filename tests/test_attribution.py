"""wanbench.attribution: which stage moved, on the real GPU runs and on real runs with one stage slowed on purpose."""

import io
import json
import math
import re
import shutil
from pathlib import Path

import pytest

from wanbench import attribution, report, share
from wanbench.parse import parse_run

REPO = Path(__file__).resolve().parents[1]
GPU = REPO / "docs" / "gpu-runs"
PLAY = GPU / "h100x4-2026-11-27-1.3B-aa-nofsdp" / "runs"  # the 1.3B play: 3 ABBA blocks after a warm-up
BASELINES = ["00-baseline", "03-baseline", "04-baseline", "08-baseline"]  # 00 is the warm-up
NOFSDP = ["01-nofsdp", "06-nofsdp", "07-nofsdp"]
AA = ["02-aa", "05-aa", "09-aa"]
SESSIONS = [GPU / "h100x4-2026-11-26-run1", GPU / "h100x4-2026-11-26-run2"]  # 14B, one run a variant each


def load(names, root=PLAY):
    return [parse_run(root / n) for n in names]


def clear(att):
    return {r["part"] for r in att["rows"] if r["clear"]}


def row(att, part):
    return next(r for r in att["rows"] if r["part"] == part)


def test_parts_add_up_to_their_parent():
    att = attribution.attribute(load(BASELINES), load(NOFSDP))
    for parent in ("request_total", "denoise", "all_to_all"):
        kids = [r["change_ms"] for r in att["rows"] if r["parent"] == parent]
        assert sum(kids) == pytest.approx(row(att, parent)["change_ms"], abs=1e-6)
    assert sum(r["share_pct"] for r in att["rows"] if r["parent"] == "request_total") == pytest.approx(100)


def test_nofsdp_vs_baseline_1_3b_play_names_the_denoise_loop_and_its_other_compute():
    """Without FSDP no parameter all-gather runs inside the DiT forward: the denoise loop's other compute
    moves; the attention kernel and the all-to-alls do not (their intervals include 0)."""
    att = attribution.attribute(load(BASELINES), load(NOFSDP))
    assert att["n"] == {"baseline": 3, "candidate": 3}  # the warm-up left out as the verdict leaves it out
    assert clear(att) == {"request_total", "denoise", "other_compute"}
    den = row(att, "denoise")
    assert den["change_ms"] == pytest.approx(-1528, abs=1) and den["ci_ms"][1] < 0
    assert att["headline"] == ("denoise loop: -1528 ms (95 % CI -2085 .. -972), 92 % of the change:"
                               " other compute -1393 ms")
    assert json.loads(json.dumps(att)) == att  # plain JSON types (wanbench compare --json dumps it as it is)


def test_aa_names_no_stage():
    att = attribution.attribute(load(BASELINES), load(AA))
    assert "request_total" not in clear(att)
    assert att["headline"].startswith("no stage's interval excludes 0")


def test_14b_sessions_one_run_a_side_has_no_interval_and_pooled_names_the_denoise_loop():
    one = attribution.attribute(parse_run(SESSIONS[0] / "baseline"), parse_run(SESSIONS[0] / "nofsdp"))
    assert all(r["ci_ms"] is None and not r["clear"] for r in one["rows"])
    assert [r for r in attribution.table(one)[1] if r[0] == "denoise loop"][0][4] == "n/a"
    assert one["headline"] == "no interval (one run a side); largest stage change: denoise loop -3347 ms"
    both = attribution.attribute([parse_run(s / "baseline") for s in SESSIONS],
                                 [parse_run(s / "nofsdp") for s in SESSIONS])
    assert clear(both) == {"request_total", "denoise", "other_compute"}
    assert both["headline"].startswith("denoise loop: -3843 ms (95 % CI -5940 .. -1745), 97 % of the change")


# ------------------------------------------------------------- one stage slowed on purpose

# (file, record) -> the line holding a stage's (max, avg) totals
_LINES = {
    ("perf.csv", "TOTAL"): r"(?m)^(TOTAL,{},)([\d.]+),([\d.]+)$",
    ("perf.csv", "ATTN"): r"(?m)^(ATTN,{},)([\d.]+),([\d.]+)(?=,)",
    ("run.log", "TOTAL"): r"(?m)(\[T2V StageProfile\] {}: )([\d.]+) / ([\d.]+)$",
    ("run.log", "ATTN"): r"(?m)(\[T2V AttnProfile\] {}: total=)([\d.]+)/([\d.]+)(?=,)",
}
_SEP = {("perf.csv", "TOTAL"): ",", ("perf.csv", "ATTN"): ",", ("run.log", "TOTAL"): " / ", ("run.log", "ATTN"): "/"}


def _edit(text, key, stage, how):
    """Replace a stage's (max, avg) by how(max, avg); returns (text, (delta max, delta avg))."""
    rx = re.compile(_LINES[key].format(re.escape(stage)))
    m = rx.search(text)
    assert m, (key, stage)
    old = (float(m.group(2)), float(m.group(3)))
    new = how(*old)
    text = text[:m.start()] + m.group(1) + _SEP[key].join(f"{v:.3f}" for v in new) + text[m.end(3):]
    return text, (new[0] - old[0], new[1] - old[1])


def slowed(src, dst, record, stage, factor=1.0, wait_ms=0.0):
    """A copy of a real run directory with one stage ``factor`` times slower plus ``wait_ms`` (an extra wait in
    the stage), in its log and its profile file: the stages holding it (request_total; the denoise loop for
    an attention stage) grow by the same ms."""
    shutil.copytree(src, dst)
    holders = ["request_total"] + (["denoise_loop_total", "denoise_step_total", "dit_forward"]
                                   if record == "ATTN" else [])
    for name in ("perf.csv", "run.log"):
        path = dst / name
        text, delta = _edit(path.read_text(), (name, record), stage, lambda a, b: (a * factor + wait_ms, b * factor + wait_ms))
        for h in holders:
            text, _ = _edit(text, (name, "TOTAL"), h, lambda a, b: (a + delta[0], b + delta[1]))
        path.write_text(text)
    manifest = json.loads((dst / "manifest.json").read_text())
    manifest.update(variant="slowed", role="candidate")
    manifest["schedule"]["warmup"] = False
    (dst / "manifest.json").write_text(json.dumps(manifest))
    return parse_run(dst)


@pytest.mark.parametrize("record, stage, slow, part, named", [
    ("TOTAL", "vae_decode", {"factor": 40}, "vae_decode", "VAE decode: +"),
    # text encode varies 51..151 ms between these runs: scaled, its noise would scale too; a wait adds ms
    ("TOTAL", "text_encode_pos", {"wait_ms": 1500}, "text_encode", "text encode: +"),
    ("ATTN", "out_all_to_all", {"factor": 4}, "out_all_to_all", "denoise loop: +"),
    ("ATTN", "attn_kernel", {"factor": 1.5}, "attn_kernel", "denoise loop: +"),
])
def test_one_stage_slowed_on_purpose_is_the_one_named(tmp_path, record, stage, slow, part, named):
    """The control's own three runs, copied with one stage slowed: that stage (and the stages that hold it)
    is the only one whose interval excludes 0, and the headline names it."""
    base = load(BASELINES)
    cand = [slowed(PLAY / n, tmp_path / n, record, stage, **slow) for n in BASELINES[1:]]
    assert all(r["status"] == "ok" for r in cand)
    att = attribution.attribute(base, cand)
    chain, p = set(), part
    while p:
        chain.add(p)
        p = attribution.PARENT[p]
    assert clear(att) == chain
    assert att["headline"].startswith(named)
    if part in ("out_all_to_all", "attn_kernel"):
        assert att["headline"].endswith(f": {attribution.LABELS[part]} {attribution.fmt_ms(row(att, part)['change_ms'])} ms")
    for r in att["rows"]:
        if r["part"] not in chain:  # the untouched stages: no change (the files print 3 decimals)
            assert r["change_ms"] == pytest.approx(0, abs=0.01)


def test_a_stage_missing_on_a_side_is_not_measured_never_zero(tmp_path):
    """A candidate run without the attention profile (no --profile_attn): its parts are not measured."""
    cand = []
    for n in BASELINES[1:]:
        shutil.copytree(PLAY / n, tmp_path / n)
        for name in ("perf.csv", "run.log"):
            path = tmp_path / n / name
            path.write_text("".join(line for line in path.read_text().splitlines(keepends=True)
                                    if not re.match(r"ATTN|.*\[T2V AttnProfile\]", line)))
        cand.append(parse_run(tmp_path / n))
    att = attribution.attribute(load(BASELINES), cand)
    for part in ("attn_kernel", "all_to_all", "qkv_all_to_all", "out_all_to_all", "other_compute"):
        assert row(att, part)["change_ms"] is None and row(att, part)["note"] == "not measured (candidate)"
    assert row(att, "denoise")["change_ms"] is not None
    cells = {r[0]: r for r in attribution.table(att)[1]}
    assert cells["· attention kernel"][3] == "not measured (candidate)"


def test_q_k_v_sent_apart_count_as_the_qkv_all_to_all():
    run = parse_run(PLAY / "03-baseline")
    packed = attribution.parts(run)
    at = run["extra"]["attn_totals"]
    qkv = at.pop("qkv_all_to_all")
    for c in "qkv":
        at[f"{c}_all_to_all"] = {**qkv, "total_max": qkv["total_max"] / 3}
    legacy = attribution.parts(run)
    assert legacy["qkv_all_to_all"] == pytest.approx(packed["qkv_all_to_all"])
    assert legacy["other_compute"] == pytest.approx(packed["other_compute"])


# ------------------------------------------------------------- in the reports

def test_report_share_and_html_carry_the_attribution():
    data = report.build(load(NOFSDP + AA), load(BASELINES))
    md = report.render(data, "md")
    assert "## Where the time went" in md
    assert "denoise loop: -1528 ms (95 % CI -2085 .. -972), 92 % of the change: other compute -1393 ms" in md
    assert "| · other compute" in md and "| -1578 .. -1208 |" in md
    groups = json.loads(report.render(data, "json"))["groups"]
    other = next(r for r in groups[0]["attribution"]["rows"] if r["part"] == "other_compute")
    assert other["change_ms"] == pytest.approx(-1393, abs=1) and len(other["ci_ms"]) == 2
    assert math.isfinite(other["share_pct"])
    text = share.markdown(data)
    assert "**nofsdp: where the time went**" in text and "| · other compute | 6621 | 5228 | -1393 |" in text
    page = share.html(data)
    assert "Where the time went" in page and 'alt="nofsdp: change of request_total by stage (waterfall)"' in page
    import matplotlib.image

    png = share.waterfall_plot(data["groups"][0])
    assert matplotlib.image.imread(io.BytesIO(png), format="png").shape[:2] == (340, 900)  # 9 x 3.4 in, 100 dpi
    assert share.waterfall_plot({"variant": "x", "attribution": attribution.attribute([], [])}) is None
