"""Output equivalence: scores of arrays and videos, and the reference workload's perturb switch."""

import json
import math
import os
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from wanbench import manifest, play
from wanbench import outputs as O

REPO = Path(__file__).resolve().parents[1]
GENERATE = REPO / "reference" / "generate.py"


def save(path, array):
    np.save(path, array)
    return path


def video(seed=0, frames=5, h=32, w=48):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(frames, h, w, 3), dtype=np.uint8)


# ------------------------------------------------------------------ arrays

def test_identical_arrays_score_inf_and_are_not_flagged(tmp_path):
    a = np.random.default_rng(1).uniform(-1, 1, (3, 5, 16, 16)).astype(np.float32)
    s = O.score(save(tmp_path / "a.npy", a), save(tmp_path / "b.npy", a.copy()))
    assert s["status"] == "ok" and s["identical"] and s["psnr_db"] == math.inf and s["max_abs_diff"] == 0.0
    assert s["ssim"] is None and s["kind"] == "array" and s["control_sha256"] == O.digest(tmp_path / "a.npy")
    assert O.flag(s, 60) is None and O.flag(s) is None


def test_psnr_and_max_abs_diff_follow_their_definitions(tmp_path):
    a = np.linspace(-1, 1, 1000, dtype=np.float32).reshape(10, 100)
    b = a.copy()
    b[0, 0] += 0.5
    s = O.score(save(tmp_path / "a.npy", a), save(tmp_path / "b.npy", b))
    mse = 0.25 / 1000
    assert s["max_abs_diff"] == pytest.approx(0.5)
    assert s["psnr_db"] == pytest.approx(10 * math.log10(2.0 ** 2 / mse), rel=1e-6)  # range of a: 2
    assert not s["identical"]
    assert O.flag(s, 60) == f"output changed: PSNR {s['psnr_db']:.1f} dB"
    assert O.flag(s, 30) is None
    chunked = O.compare_arrays(a, b, chunk=7)  # memory-mapped files are read in chunks: same figures
    assert chunked["psnr_db"] == pytest.approx(s["psnr_db"]) and chunked["max_abs_diff"] == s["max_abs_diff"]
    assert O.flag(s) == f"output changed: PSNR {s['psnr_db']:.1f} dB"  # no threshold: any difference


def test_shape_change_and_broken_files_say_why(tmp_path):
    a = save(tmp_path / "a.npy", np.zeros((3, 5, 8, 8), np.float32))
    b = save(tmp_path / "b.npy", np.zeros((3, 9, 8, 8), np.float32))
    s = O.score(a, b)
    assert s["status"] == "differs" and s["reason"] == "shapes differ: (3, 5, 8, 8) (control) vs (3, 9, 8, 8) (candidate)"
    assert O.flag(s, 60) == "output changed: shapes differ: (3, 5, 8, 8) (control) vs (3, 9, 8, 8) (candidate)"
    missing = O.score(a, tmp_path / "nope.npy")
    assert missing["status"] == "error" and missing["reason"] == "cannot read the candidate's output nope.npy"
    assert O.flag(missing, 60) == "output not compared: cannot read the candidate's output nope.npy"
    assert O.digest(tmp_path / "nope.npy") is None
    text = tmp_path / "c.txt"
    text.write_text("hello")
    assert O.score(a, text)["reason"] == "c.txt: neither .npy data nor an mp4 video"
    raw = a.read_bytes()
    for cut in (len(raw) - 1, len(raw) // 2, 20, 7):
        (tmp_path / "cut.npy").write_bytes(raw[:cut])
        s = O.score(a, tmp_path / "cut.npy")
        assert s["status"] == "error" and s["reason"].startswith("cannot load .npy: "), (cut, s)
    s = O.score(a, save(tmp_path / "nan.npy", np.zeros((3, 5, 8, 8), np.float32) + np.float32(np.nan)))
    assert s["status"] == "differs" and s["reason"] == "non-finite values differ"


# ------------------------------------------------------------------ SSIM and frames

def test_ssim_properties():
    rng = np.random.default_rng(3)
    x = rng.uniform(0, 255, (40, 40))
    assert O.ssim(x, x) == pytest.approx(1.0)
    noisy = np.clip(x + rng.normal(0, 20, x.shape), 0, 255)
    worse = np.clip(x + rng.normal(0, 60, x.shape), 0, 255)
    assert 0 < O.ssim(x, worse) < O.ssim(x, noisy) < 1
    assert O.ssim(x, noisy) == pytest.approx(O.ssim(noisy, x))  # symmetric
    assert O.ssim(x[:5, :5], x[:5, :5]) == pytest.approx(1.0)  # smaller than the window
    # a constant shift keeps structure: SSIM stays high while PSNR drops
    shifted = np.clip(x + 10, 0, 255)
    assert O.ssim(x, shifted) > 0.95


def test_compare_frames_streams_and_reports_counts():
    a = video(1)
    same = O.compare_frames(iter(a), iter(a.copy()))
    assert same["identical"] and same["ssim"] == 1.0 and same["psnr_db"] == math.inf
    b = a.copy()
    b[2, 0, 0, 0] ^= 0xFF
    s = O.compare_frames(a, b)
    assert s["status"] == "ok" and not s["identical"] and s["max_abs_diff"] == abs(int(a[2, 0, 0, 0]) - int(b[2, 0, 0, 0]))
    assert 0 < s["ssim"] < 1 and s["psnr_db"] > 40
    assert O.flag(s, 99) == f"output changed: PSNR {s['psnr_db']:.1f} dB, SSIM {s['ssim']:.3f}"
    assert O.compare_frames(a, a[:4])["reason"] == "frame counts differ: the control has more than 4 frames"
    assert O.compare_frames(a[:, :16], a)["reason"].startswith("frame sizes differ: (16, 48, 3)")
    assert O.compare_frames([], [])["status"] == "error"


def _fake_mp4(tmp_path, name, seed):
    path = tmp_path / name
    path.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes([seed]) * 64)
    return path


class FakeReader(list):
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_mp4_through_an_imageio_stand_in(tmp_path):
    frames = {"a.mp4": video(1), "b.mp4": video(1), "c.mp4": video(2)}
    fake = types.SimpleNamespace(get_reader=lambda path, fmt: FakeReader(frames[os.path.basename(path)]))
    a, b, c = (_fake_mp4(tmp_path, n, i) for i, n in enumerate(frames))
    same = O.score(a, b, iio=fake)  # different bytes, same frames
    assert same["kind"] == "video" and same["identical"] and same["ssim"] == 1.0
    diff = O.score(a, c, iio=fake)
    assert diff["status"] == "ok" and diff["psnr_db"] < 20 and diff["ssim"] < 0.2
    assert O.score(a, a, iio=fake)["ssim"] == 1.0  # same file: not decoded at all


def test_mp4_without_a_decoder_is_a_status_not_a_crash(tmp_path, monkeypatch):
    a, b = _fake_mp4(tmp_path, "a.mp4", 1), _fake_mp4(tmp_path, "b.mp4", 2)
    monkeypatch.setattr(O, "_imageio", lambda: None)
    s = O.score(a, b)
    assert s["status"] == "error" and s["reason"] == O.NO_DECODER == "cannot decode mp4: install imageio[ffmpeg]"
    assert O.flag(s, 40) == "output not compared: cannot decode mp4: install imageio[ffmpeg]"

    def no_plugin(path, fmt):
        raise ImportError("The `FFMPEG` plugin is not installed. Use `pip install imageio[ffmpeg]` to install it.")
    assert O.score(a, b, iio=types.SimpleNamespace(get_reader=no_plugin))["reason"] == O.NO_DECODER

    def broken(path, fmt):
        raise OSError("moov atom not found")
    assert O.score(a, b, iio=types.SimpleNamespace(get_reader=broken))["reason"] == \
        "cannot decode mp4: OSError: moov atom not found"


def test_real_mp4_round_trip(tmp_path):
    """Encode with imageio's ffmpeg plugin and score the decoded frames (needs imageio[ffmpeg])."""
    iio = pytest.importorskip("imageio.v2")
    pytest.importorskip("imageio_ffmpeg")
    frames = video(4, frames=6, h=64, w=64)
    smooth = np.repeat(np.repeat(frames[:, ::8, ::8], 8, axis=1), 8, axis=2)  # blocks survive compression
    for name, data in (("a.mp4", smooth), ("b.mp4", smooth), ("c.mp4", 255 - smooth)):
        iio.mimwrite(tmp_path / name, list(data), fps=8, codec="libx264", quality=10, macro_block_size=16)
    same = O.score(tmp_path / "a.mp4", tmp_path / "b.mp4")
    assert same["status"] == "ok" and same["psnr_db"] > 40 and same["ssim"] > 0.95, same
    other = O.score(tmp_path / "a.mp4", tmp_path / "c.mp4")
    assert other["status"] == "ok" and other["psnr_db"] < 15 and other["ssim"] < 0.5, other
    assert O.flag(other, 35).startswith("output changed: PSNR ")


# ------------------------------------------------------------------ the reference workload's perturb switch

def _generate(tmp_path, name, perturb=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WAN_", "ALGO"))}
    if perturb is not None:
        env["WAN_REF_PERTURB"] = perturb
    out = tmp_path / f"{name}.npy"
    proc = subprocess.run([sys.executable, str(GENERATE), "--task", "t2v-tiny", "--size", "32*32", "--frame_num",
                           "5", "--sample_steps", "2", "--base_seed", "42", "--prompt", "A boy plays piano.",
                           "--save_file", str(out)], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return out, proc.stdout


def test_perturb_switch_fires_the_guard_and_plain_runs_are_bit_identical(tmp_path):
    a, _ = _generate(tmp_path, "a")
    b, _ = _generate(tmp_path, "b")
    c, log = _generate(tmp_path, "c", perturb="5e-2")
    same = O.score(a, b)
    assert same["identical"] and same["psnr_db"] == math.inf and O.flag(same, 60) is None
    changed = O.score(a, c)
    assert changed["status"] == "ok" and 0 < changed["max_abs_diff"] < 0.2
    assert 30 < changed["psnr_db"] < 60, changed
    assert O.flag(changed, 60) == f"output changed: PSNR {changed['psnr_db']:.1f} dB"
    assert "Reference: WAN_REF_PERTURB=0.05 adds noise of that scale to the final latent" in log


@pytest.mark.parametrize("value", ["-1", "abc", "nan", "inf"])
def test_perturb_switch_refuses_bad_values(value):
    sys.path.insert(0, str(REPO / "reference"))
    try:
        from wan_ref.switches import SwitchError, Switches
    finally:
        sys.path.remove(str(REPO / "reference"))
    assert Switches.from_env({}).perturb == 0.0
    assert Switches.from_env({"WAN_REF_PERTURB": "1e-3"}).perturb == 1e-3
    with pytest.raises(SwitchError, match=f"WAN_REF_PERTURB='{value}' is not a valid value; expected a finite"):
        Switches.from_env({"WAN_REF_PERTURB": value})


# ------------------------------------------------------------------ the play's output check

def _script(*args, python=sys.executable):
    """outputs.py as the play runs it where the outputs are: its text through `python -c`, isolated
    (-I: no wanbench package, no PYTHONPATH)."""
    return subprocess.run([python, "-I", "-c", (REPO / "wanbench" / "outputs.py").read_text(), *args],
                          capture_output=True, text=True, timeout=120, cwd="/")


def test_the_script_scores_pairs_without_the_wanbench_package(tmp_path):
    rng = np.random.default_rng(0)
    a = save(tmp_path / "a.npy", rng.uniform(-1, 1, (3, 5, 8, 8)).astype(np.float32))
    b = save(tmp_path / "b.npy", np.load(a))
    c = save(tmp_path / "c.npy", np.load(a) + np.float32(1e-2))
    pairs = [{"id": "same", "control": str(a), "candidate": str(b)},
             {"id": "shifted", "control": str(a), "candidate": str(c)},
             {"id": "gone", "control": str(a), "candidate": str(tmp_path / "missing.npy")},
             {"id": "seedless", "skip": "no fixed --base_seed"}]
    proc = _script(json.dumps(pairs))
    assert proc.returncode == 0, proc.stderr
    printed = json.loads(proc.stdout)
    scores = printed["scores"]
    assert printed["python"] == sys.executable
    assert scores["same"]["identical"] and scores["same"]["psnr_db"] == math.inf
    assert scores["same"]["control_sha256"] == O.digest(a)
    assert scores["shifted"]["max_abs_diff"] == pytest.approx(1e-2, rel=1e-3)
    assert scores["shifted"]["psnr_db"] == pytest.approx(O.score(a, c)["psnr_db"])
    assert scores["gone"]["status"] == "error" and scores["gone"]["reason"] == "cannot read the candidate's output missing.npy"
    assert scores["seedless"] == {**O.result("error", "no fixed --base_seed")}


@pytest.mark.parametrize("args", [[], ["not json"], ['{"id": 1}'], ['[{"control": "a"}]'], ["[]", "extra"]])
def test_the_script_refuses_bad_arguments_in_one_line(args):
    proc = _script(*args)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == "outputs: expected one argument, a JSON list of {id, control, candidate} (or {id, skip})\n"


def _collected_run(root, run_id, variant, role, block, seed="42", save="output.npy", warmup=False):
    path = root / run_id
    path.mkdir()
    argv = ["torchrun", "generate.py"] + (["--base_seed", seed] if seed else []) + \
        (["--save_file", f"/host/runs/{run_id}/{save}"] if save else [])
    (path / "manifest.json").write_text(json.dumps({"argv": argv, "schedule": {"block": block, "warmup": warmup,
                                                                                "position": len(list(root.iterdir()))}}))
    if save:
        (path / save).write_bytes(b"collected copy")
    return {"variant": variant, "role": role, "control_key": "fsdp:profiled", "run_id": run_id, "path": str(path),
            "status": "ok"}


def test_play_pairs_match_each_candidate_with_the_control_of_its_block(tmp_path):
    runs = [_collected_run(tmp_path, "w", "baseline", "control", 0, warmup=True),
            _collected_run(tmp_path, "b1", "baseline", "control", 1),
            _collected_run(tmp_path, "c1", "ffn_only", "candidate", 1),
            _collected_run(tmp_path, "c2", "ffn_only", "candidate", 2),
            _collected_run(tmp_path, "b2", "baseline", "control", 2),
            _collected_run(tmp_path, "s", "gate1", "candidate", 2, seed="7"),
            {"variant": "gate0", "role": "candidate", "control_key": "fsdp:profiled", "run_id": "x", "path": None,
             "status": "failed"}]
    pairs = {p["id"]: p for p in play.output_pairs(runs)}
    assert sorted(pairs) == ["c1", "c2", "s"]  # a run that was not collected has nothing to compare
    assert pairs["c1"] == {"id": "c1", "candidate_run": "c1", "control_run": "b1", "base_seed": "42",
                           "control": "/host/runs/b1/output.npy", "candidate": "/host/runs/c1/output.npy",
                           "dest": str(tmp_path / "c1" / manifest.OUTPUT_CHECK)}
    assert pairs["c2"]["control_run"] == "b2"
    assert pairs["s"]["skip"] == "--base_seed differs: 42 (control) vs 7 (candidate)"


def test_play_pairs_of_runs_collected_later_come_from_their_manifests(tmp_path):
    """collect.yml hands the report only {path, status}: role, control key and run id are the manifest's."""
    runs = [_collected_run(tmp_path, "b1", "baseline", "control", 1), _collected_run(tmp_path, "c1", "ffn_only",
                                                                                       "candidate", 1)]
    for r in runs:
        m = json.loads(open(os.path.join(r["path"], "manifest.json")).read())
        open(os.path.join(r["path"], "manifest.json"), "w").write(json.dumps(
            {**m, "role": r["role"], "control_key": r["control_key"]}))
    (pair,) = play.output_pairs([{"path": r["path"], "status": "ok"} for r in runs])
    assert (pair["candidate_run"], pair["control_run"], pair["candidate"]) == ("c1", "b1", "/host/runs/c1/output.npy")


def test_play_pairs_say_why_a_pair_cannot_be_compared(tmp_path):
    seedless = [_collected_run(tmp_path, "b", "baseline", "control", 1, seed=None),
                _collected_run(tmp_path, "c", "ffn_only", "candidate", 1, seed=None)]
    (pair,) = play.output_pairs(seedless)
    assert pair["skip"].startswith("no fixed --base_seed: the outputs are of random seeds")
    (tmp_path / "u").mkdir()
    unsaved = [_collected_run(tmp_path / "u", "b", "baseline", "control", 1, save=None),
               _collected_run(tmp_path / "u", "c", "ffn_only", "candidate", 1, save=None)]
    assert play.output_pairs(unsaved)[0]["skip"] == "no saved output (--save_file not passed)"
    (tmp_path / "n").mkdir()
    alone = [_collected_run(tmp_path / "n", "c", "ffn_only", "candidate", 1)]
    assert play.output_pairs(alone)[0]["skip"] == "no control run that finished"


def test_check_records_carry_scores_or_the_reason_there_is_none(tmp_path):
    pairs = [{"id": "c1", "candidate_run": "c1", "control_run": "b1", "control": "/b1/o.npy",
              "candidate": "/c1/o.npy", "base_seed": "42", "dest": "/r/c1/output_check.json"},
             {"id": "c2", "candidate_run": "c2", "control_run": "b1", "skip": "no fixed --base_seed",
              "dest": "/r/c2/output_check.json"}]
    ident = O.result("ok", "", "array", psnr_db=math.inf, identical=True)
    records = play.output_records(pairs, json.dumps({"python": "/py", "scores": {"c1": ident}}))
    assert records[0] == {"dest": "/r/c1/output_check.json", "content": {
        "control_run": "b1", "candidate_run": "c1", "control": "/b1/o.npy", "candidate": "/c1/o.npy",
        "base_seed": "42", "python": "/py", "score": ident}}
    assert records[1]["content"]["score"]["reason"] == "no fixed --base_seed"
    broken = play.output_records(pairs[:1], "Traceback (most recent call last):")
    assert broken[0]["content"]["score"]["reason"] == "the output check printed no score"


# ------------------------------------------------------------------ 4 CPU ranks: real variants vs the perturb switch

TORCHRUN = Path(sys.executable).with_name("torchrun")


def _torchrun(tmp_path, name, env_extra, port):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WAN_", "ALGO"))}
    env.update(env_extra)
    out = tmp_path / f"{name}.npy"
    proc = subprocess.run([str(TORCHRUN), "--nproc_per_node=4", "--master_addr", "127.0.0.1", "--master_port", str(port),
                           str(GENERATE), "--task", "t2v-tiny", "--size", "32*32", "--frame_num", "5",
                           "--sample_steps", "2", "--base_seed", "42", "--ulysses_size", "4", "--dit_fsdp",
                           "--t5_fsdp", "--prompt", "A boy plays piano.", "--save_file", str(out)],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return out


def test_real_fsdp_variants_keep_the_output_and_the_perturb_switch_changes_it(tmp_path):
    """The guard on the workload as the play runs it (torchrun, 4 gloo ranks, FSDP, Ulysses 4), scored by
    the script as the play runs it: the catalog's switches leave the output bit-identical, the
    perturb switch is flagged at the default threshold (group_vars: wanbench_output_min_psnr_db 60)."""
    base = _torchrun(tmp_path, "baseline", {"WAN_FSDP_WRAP_MODE": "block"}, 29611)
    ffn = _torchrun(tmp_path, "ffn_only", {"WAN_FSDP_WRAP_MODE": "ffn_only"}, 29612)
    reshard = _torchrun(tmp_path, "reshard0", {"WAN_FSDP_RESHARD_AFTER_FORWARD": "0"}, 29613)
    perturbed = _torchrun(tmp_path, "perturbed", {"WAN_REF_PERTURB": "5e-2"}, 29614)
    pairs = [{"id": n, "control": str(base), "candidate": str(p)}
             for n, p in (("ffn_only", ffn), ("reshard0", reshard), ("perturbed", perturbed))]
    proc = _script(json.dumps(pairs))
    assert proc.returncode == 0, proc.stderr
    scores = json.loads(proc.stdout)["scores"]
    assert scores["ffn_only"]["identical"] and scores["reshard0"]["identical"], scores
    assert O.flag(scores["ffn_only"], 60) is None and O.flag(scores["reshard0"], 60) is None
    assert O.flag(scores["perturbed"], 60) == f"output changed: PSNR {scores['perturbed']['psnr_db']:.1f} dB"
    assert 30 < scores["perturbed"]["psnr_db"] < 60, scores["perturbed"]
