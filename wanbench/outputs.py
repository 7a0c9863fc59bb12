"""Output equivalence: is a candidate's generated video the control's?

Runs on the host next to the files (only the scores travel back), so it needs
numpy and nothing else; mp4 decoding uses ``imageio`` (with its ffmpeg
plugin, ``imageio[ffmpeg]``) when it is importable and says so when it is not.

* ``.npy`` (the reference workload's ``--save_file``: [3, F, H, W] float32 in
  [-1, 1]): max abs diff (in the array's units) and PSNR in dB over the
  control's value range (max - min; 1 if constant);
* ``.mp4`` (the branch's output): decoded frames (uint8 RGB), PSNR in dB over
  255 and the mean SSIM over frames (Wang et al. 2004: Gaussian window 11,
  sigma 1.5, K1 0.01, K2 0.03, on luma);
* files with the same sha256 are identical without being decoded.

``score(control, candidate)`` returns::

    {"status": "ok" | "differs" | "error", "reason": "", "kind": "array" | "video" | None,
     "max_abs_diff": float | None, "psnr_db": float | None (inf: identical),
     "ssim": float | None (videos only), "identical": bool,
     "control_sha256": str | None, "candidate_sha256": str | None}

As a script (no wanbench package needed: the play runs this file's text with
``python -c`` where the outputs are)::

    python outputs.py '[{"id": "RUN", "control": "/a/output.npy", "candidate": "/b/output.npy"}, ...]'

prints ``{"python": ..., "scores": {"RUN": score, ...}}`` as JSON (an item
with a ``"skip"`` reason instead of paths is scored as an ``error`` with it);
exit 0 however the files compare, 2 on bad arguments.

``differs``: the outputs cannot be compared value by value (shape, dtype
kind or frame count differ), which is itself a changed output.
``error``: a file is missing or unreadable, or no decoder.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys

NPY_MAGIC = b"\x93NUMPY"
NO_DECODER = "cannot decode mp4: install imageio[ffmpeg]"
_CHUNK = 1 << 20


def digest(path):
    """sha256 of a file as hex, or None when it cannot be read."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(_CHUNK), b""):
                h.update(block)
    except OSError:
        return None
    return h.hexdigest()


def result(status="ok", reason="", kind=None, **values):
    """A score: {status, reason, kind, max_abs_diff, psnr_db, ssim, identical, control_sha256, candidate_sha256}."""
    out = {"status": status, "reason": reason, "kind": kind, "max_abs_diff": None, "psnr_db": None,
           "ssim": None, "identical": False, "control_sha256": None, "candidate_sha256": None}
    out.update(values)
    return out


def psnr(mse, data_range):
    """PSNR in dB; inf when mse is 0."""
    if mse <= 0:
        return math.inf
    return 10.0 * math.log10(data_range * data_range / mse)


def _kind(path):
    try:
        with open(path, "rb") as f:
            head = f.read(12)
    except OSError as exc:
        return None, f"cannot read {os.path.basename(str(path))}: {exc.strerror or exc}"
    if head.startswith(NPY_MAGIC):
        return "array", ""
    if head[4:8] == b"ftyp":
        return "video", ""
    return None, f"{os.path.basename(str(path))}: neither .npy data nor an mp4 video"


# ---------------------------------------------------------------------------------------------- arrays

def compare_arrays(control, candidate, chunk=1 << 22):
    """Max abs diff and PSNR of two numpy arrays (same shape; memory-mapped ones are read ``chunk``
    elements at a time, so memory stays flat). Returns a score dict (kind "array")."""
    import numpy as np

    a, b = np.asarray(control), np.asarray(candidate)
    if a.shape != b.shape:
        return result("differs", f"shapes differ: {a.shape} (control) vs {b.shape} (candidate)", "array")
    if a.dtype.kind not in "biuf" or b.dtype.kind not in "biuf":
        return result("error", f"not numeric arrays: {a.dtype} vs {b.dtype}", "array")
    fa, fb = a.reshape(-1), b.reshape(-1)
    sq, worst, lo, hi, identical, finite = 0.0, 0.0, math.inf, -math.inf, True, True
    for start in range(0, fa.size, chunk):
        x = np.asarray(fa[start:start + chunk], dtype=np.float64)
        y = np.asarray(fb[start:start + chunk], dtype=np.float64)
        identical = identical and bool(np.array_equal(x, y, equal_nan=True))
        if not (np.isfinite(x).all() and np.isfinite(y).all()):
            finite = False
            continue
        d = x - y
        sq += float(np.dot(d, d))
        worst = max(worst, float(np.abs(d).max()))
        lo, hi = min(lo, float(x.min())), max(hi, float(x.max()))
    if identical:
        return result("ok", "", "array", max_abs_diff=0.0, psnr_db=math.inf, identical=True)
    if not finite:
        return result("differs", "non-finite values differ", "array", max_abs_diff=math.inf, psnr_db=-math.inf)
    data_range = 255.0 if a.dtype == np.uint8 and b.dtype == np.uint8 else (hi - lo) or 1.0
    return result("ok", "", "array", max_abs_diff=worst, psnr_db=psnr(sq / fa.size, data_range), identical=False)


# ---------------------------------------------------------------------------------------------- video

def _gaussian(size=11, sigma=1.5):
    import numpy as np

    x = np.arange(size, dtype=np.float64) - (size - 1) / 2
    w = np.exp(-(x * x) / (2 * sigma * sigma))
    return w / w.sum()


def _filter(img, w):
    """Separable 'valid' filtering of a 2-D image with the 1-D window w (numpy only)."""
    n = len(w)
    h, wd = img.shape
    rows = sum(w[k] * img[k:h - n + 1 + k, :] for k in range(n))
    return sum(w[k] * rows[:, k:wd - n + 1 + k] for k in range(n))


def ssim(x, y, data_range=255.0):
    """Mean SSIM of two 2-D images (float arrays); images smaller than the window use one global window."""
    import numpy as np

    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    w = _gaussian()
    if min(x.shape) < len(w):
        mx, my = x.mean(), y.mean()
        vx, vy, cxy = x.var(), y.var(), ((x - mx) * (y - my)).mean()
    else:
        mx, my = _filter(x, w), _filter(y, w)
        vx = _filter(x * x, w) - mx * mx
        vy = _filter(y * y, w) - my * my
        cxy = _filter(x * y, w) - mx * my
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return float(np.mean(s))


def _luma(frame):
    import numpy as np

    f = np.asarray(frame, dtype=np.float64)
    if f.ndim == 3 and f.shape[2] >= 3:
        return 0.299 * f[..., 0] + 0.587 * f[..., 1] + 0.114 * f[..., 2]
    return f if f.ndim == 2 else f[..., 0]


def compare_frames(control_frames, candidate_frames, data_range=255.0):
    """PSNR (dB, over all frames), mean SSIM and max abs diff of two frame sequences (iterables of
    H x W [x C] arrays), streamed one frame pair at a time."""
    import numpy as np

    sq, count, worst, ssims, n = 0.0, 0, 0.0, [], 0
    a_it, b_it = iter(control_frames), iter(candidate_frames)
    while True:
        a, b = next(a_it, None), next(b_it, None)
        if a is None or b is None:
            if a is not None or b is not None:
                more = "control" if a is not None else "candidate"
                return result("differs", f"frame counts differ: the {more} has more than {n} frames", "video")
            break
        a, b = np.asarray(a), np.asarray(b)
        if a.shape != b.shape:
            return result("differs", f"frame sizes differ: {a.shape} (control) vs {b.shape} (candidate)", "video")
        d = a.astype(np.float64) - b.astype(np.float64)
        sq += float(np.sum(d * d))
        count += d.size
        worst = max(worst, float(np.abs(d).max()) if d.size else 0.0)
        ssims.append(1.0 if not d.any() else ssim(_luma(a), _luma(b), data_range))
        n += 1
    if n == 0:
        return result("error", "no frames decoded", "video")
    mse = sq / count if count else 0.0
    return result("ok", "", "video", max_abs_diff=worst, psnr_db=psnr(mse, data_range),
                   ssim=float(np.mean(ssims)), identical=mse == 0.0)


def _imageio():
    try:
        import imageio.v2 as iio
    except Exception:
        return None
    return iio


def read_frames(path, iio=None):
    """Frames of a video file through imageio's ffmpeg plugin (a generator); raises RuntimeError with
    NO_DECODER when imageio or its ffmpeg plugin is missing."""
    iio = iio or _imageio()
    if iio is None:
        raise RuntimeError(NO_DECODER)
    try:
        reader = iio.get_reader(str(path), "ffmpeg")
    except (ImportError, ValueError) as exc:
        if "ffmpeg" in str(exc).lower() or isinstance(exc, ImportError):
            raise RuntimeError(NO_DECODER) from None
        raise

    def frames():
        with reader:
            yield from reader
    return frames()


def compare_videos(control_path, candidate_path, iio=None):
    try:
        return compare_frames(read_frames(control_path, iio), read_frames(candidate_path, iio))
    except RuntimeError as exc:
        if str(exc) == NO_DECODER:
            return result("error", NO_DECODER, "video")
        return result("error", f"cannot decode mp4: {exc}", "video")
    except Exception as exc:  # a broken or cut-off file: the decoder's own words
        return result("error", f"cannot decode mp4: {type(exc).__name__}: {str(exc)[:200]}", "video")


# ---------------------------------------------------------------------------------------------- score

def score(control_path, candidate_path, iio=None):
    """Compare a candidate's output file with its control's (see the module docstring for the shape)."""
    sums = {"control_sha256": digest(control_path), "candidate_sha256": digest(candidate_path)}
    for who in ("control", "candidate"):
        if sums[f"{who}_sha256"] is None:
            path = control_path if who == "control" else candidate_path
            return result("error", f"cannot read the {who}'s output {os.path.basename(str(path))}", **sums)
    kinds = [_kind(control_path), _kind(candidate_path)]
    kind = kinds[0][0] if kinds[0][0] == kinds[1][0] else None
    if sums["control_sha256"] == sums["candidate_sha256"]:
        return result("ok", "", kinds[0][0], max_abs_diff=0.0, psnr_db=math.inf,
                       ssim=1.0 if kinds[0][0] == "video" else None, identical=True, **sums)
    for k, why in kinds:
        if k is None:
            return result("error", why, **sums)
    if kind is None:
        return result("differs", f"kinds differ: {kinds[0][0]} (control) vs {kinds[1][0]} (candidate)", **sums)
    if kind == "video":
        return {**compare_videos(control_path, candidate_path, iio), **sums}
    try:
        import numpy as np
    except ImportError:
        return result("error", f"cannot compare arrays: numpy is not importable by {sys.executable}", "array",
                       **sums)
    try:
        a = np.load(control_path, mmap_mode="r", allow_pickle=False)
        b = np.load(candidate_path, mmap_mode="r", allow_pickle=False)
    except Exception as exc:  # cut-off or corrupt .npy: numpy's own words
        return result("error", f"cannot load .npy: {type(exc).__name__}: {str(exc)[:200]}", "array", **sums)
    return {**compare_arrays(a, b), **sums}


def flag(result, min_psnr_db=None):
    """The verdict's note for a score: None when the output is the same (identical, or PSNR at or above
    ``min_psnr_db`` dB; None = any difference counts), else e.g. ``output changed: PSNR 31.2 dB``
    (``, SSIM 0.912`` for videos), ``output changed: shapes differ: ...``, or
    ``output not compared: <reason>`` when the files could not be compared."""
    if not isinstance(result, dict):
        return "output not compared: no score"
    status = result.get("status")
    if status == "error":
        return f"output not compared: {result.get('reason') or 'unknown error'}"
    if status == "differs":
        return f"output changed: {result.get('reason')}"
    if result.get("identical"):
        return None
    value = result.get("psnr_db")
    if value is None:
        return "output not compared: no PSNR"
    if min_psnr_db is not None and value >= min_psnr_db:
        return None
    note = f"output changed: PSNR {value:.1f} dB"
    if result.get("ssim") is not None:
        note += f", SSIM {result['ssim']:.3f}"
    return note


def score_pairs(pairs):
    """Score each {"id", "control", "candidate"} (or {"id", "skip": reason}): {id: score}."""
    scores = {}
    for item in pairs:
        if item.get("skip"):
            scores[item["id"]] = result("error", str(item["skip"]))
        else:
            scores[item["id"]] = score(item["control"], item["candidate"])
    return scores


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    try:
        pairs = json.loads(argv[0]) if len(argv) == 1 else None
        ok = isinstance(pairs, list) and all(isinstance(p, dict) and "id" in p and (
            p.get("skip") or ("control" in p and "candidate" in p)) for p in pairs)
    except ValueError:
        ok = False
    if not ok:
        print("outputs: expected one argument, a JSON list of {id, control, candidate} (or {id, skip})",
              file=sys.stderr)
        return 2
    print(json.dumps({"python": sys.executable, "scores": score_pairs(pairs)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
