"""Attribution: which stage moved.  The change of request_total split into its stages, with intervals.

For a verdict (a control side and a candidate side, lists of ``parse_run``
results; warm-ups and unhealthy runs left out as :mod:`wanbench.compare`
leaves them out) each run's request_total is split into parts, all read from
the StageProfile / AttnProfile tables that :mod:`wanbench.parse` keeps in
``extra`` (a ``T2V`` or ``I2V`` prefix makes no difference there):

* **text encode** (every ``text_encode_*`` stage), **denoise loop**
  (``denoise_loop_total``), **VAE decode** (``vae_decode``) and **the rest**
  = request_total minus those three (setup, noise init, gaps between stages);
* the denoise loop into **attention kernel** (``attn_kernel``),
  **all-to-all** (``qkv_all_to_all`` -- or ``q_``/``k_``/``v_all_to_all``
  when q, k, v were sent apart -- plus ``out_all_to_all``; both shown as
  rows of their own), **all-gather** (``cfg_allgather`` and the ring's
  ``kv_ring_*_all_gather`` where the profile has them; FSDP's own parameter
  all-gather is no stage of the profiler and stays in other compute) and
  **other compute** = the denoise loop minus those three.

All figures are totals over the request in ms, the max-rank values the
profiler prints (the rank-max of a sum is not the sum of rank-maxes: the
difference lands in "the rest" or "other compute").

Each part's change is the **difference of means in ms** (candidate minus
control).  Means, not geometric means: differences of means add up, so the
parts of a level sum to their parent's change exactly, which a ratio of
geometric means would not; the verdict itself stays on the log scale
(:mod:`wanbench.stats`).  The interval is Welch's t interval on the ms values
(the same family as the verdict's: t, unpooled variances) when both sides
have two runs or more; with one run a side there is no interval ("n/a"):
the host's known noise is a noise of request_total, not of each stage, and
is not spread over the stages.  The share is the part's change over
request_total's change, in %.

A part whose inputs are missing in any used run of either side is "not
measured" (no change, no share), never 0; a derived part (the rest, other
compute, all-to-all) is not measured when one of its terms is not.

The headline names the stages whose interval excludes 0 and that move with
the total, largest first, until they explain at least half of the change,
each with its clearest sub-part ("denoise loop: -412 ms (95 % CI -530 ..
-290), 87 % of the change: out all-to-all -390 ms").
"""

from __future__ import annotations

import math
import statistics

from .compare import is_warmup
from . import stats
from .stats import CONFIDENCE

# (key, label, parent); a parent's children add up to it
PARTS = (
    ("request_total", "request_total", None),
    ("text_encode", "text encode", "request_total"),
    ("denoise", "denoise loop", "request_total"),
    ("attn_kernel", "attention kernel", "denoise"),
    ("all_to_all", "all-to-all", "denoise"),
    ("qkv_all_to_all", "qkv all-to-all", "all_to_all"),
    ("out_all_to_all", "out all-to-all", "all_to_all"),
    ("all_gather", "all-gather", "denoise"),
    ("other_compute", "other compute", "denoise"),
    ("vae_decode", "VAE decode", "request_total"),
    ("rest", "the rest", "request_total"),
)
LABELS = {k: label for k, label, _ in PARTS}
PARENT = {k: parent for k, _, parent in PARTS}
NOT_MEASURED = "not measured"


def _get(table, name, field):
    row = table.get(name) if isinstance(table, dict) else None
    v = row.get(field) if isinstance(row, dict) else None
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _sum(values):
    return None if not values or None in values else sum(values)


def parts(run):
    """{part: ms or None} of one run (``parse_run`` result)."""
    extra = run.get("extra") or {}
    st, at = extra.get("stage_totals") or {}, extra.get("attn_totals") or {}
    total = run.get("metrics", {}).get("request_total")
    p = {"request_total": total,
         "text_encode": _sum([_get(st, k, "max") for k in sorted(st) if k.startswith("text_encode")]),
         "denoise": _get(st, "denoise_loop_total", "max"),
         "vae_decode": _get(st, "vae_decode", "max"),
         "attn_kernel": _get(at, "attn_kernel", "total_max"),
         "out_all_to_all": _get(at, "out_all_to_all", "total_max")}
    qkv = _get(at, "qkv_all_to_all", "total_max")
    if qkv is None:  # q, k, v sent apart (WAN_PACKED_QKV_A2A=0)
        qkv = _sum([_get(at, f"{c}_all_to_all", "total_max") for c in "qkv"])
    p["qkv_all_to_all"] = qkv
    p["all_to_all"] = _sum([qkv, p["out_all_to_all"]])
    gathers = [_get(st, "cfg_allgather", "max")] if "cfg_allgather" in st else []
    gathers += [_get(at, k, "total_max") for k in sorted(at) if k.endswith("_all_gather")]
    p["all_gather"] = _sum(gathers)
    p["rest"] = _minus(total, [p["text_encode"], p["denoise"], p["vae_decode"]])
    p["other_compute"] = _minus(p["denoise"], [p["attn_kernel"], p["all_to_all"], p["all_gather"]])
    return p


def _minus(whole, terms):
    return None if whole is None or None in terms else whole - sum(terms)


def used(runs):
    """The runs a verdict's statistics use: warm-ups and unhealthy runs left out (as compare does)."""
    runs = list(runs) if isinstance(runs, (list, tuple)) else [runs]
    return [r for r in runs if not is_warmup(r) and r.get("status") == "ok"]


def _welch(b, c, confidence):
    """Difference of means c - b and its Welch t interval (None with fewer than 2 runs a side)."""
    d = statistics.fmean(c) - statistics.fmean(b)
    if len(b) < 2 or len(c) < 2:
        return d, None
    var, df = stats.welch(b, c)
    if not var:
        return d, (d, d)
    q = stats.t_quantile((1 + confidence) / 2, df)  # a plain float: the result goes to JSON as it is
    se = math.sqrt(var)
    return d, (d - q * se, d + q * se)


def attribute(baseline, candidate, confidence=CONFIDENCE):
    """The attribution of a verdict: {confidence, n, rows, headline}.

    ``rows``: one per part in :data:`PARTS` order, {part, label, parent,
    baseline_ms, candidate_ms (means), change_ms, ci_ms ([low, high] or
    None), share_pct, clear (the interval excludes 0), note ("" or
    "not measured: ...")}.
    """
    sides = {"baseline": used(baseline), "candidate": used(candidate)}
    values = {role: [parts(r) for r in runs] for role, runs in sides.items()}
    rows = []
    for key, label, parent in PARTS:
        row = {"part": key, "label": label, "parent": parent, "baseline_ms": None, "candidate_ms": None,
               "change_ms": None, "ci_ms": None, "share_pct": None, "clear": False, "note": ""}
        b, c = ([v[key] for v in values[role]] for role in sides)
        missing = [role for role, xs in (("baseline", b), ("candidate", c)) if not xs or None in xs]
        if missing:
            row["note"] = f"{NOT_MEASURED} ({' and '.join(missing)})"
        else:
            d, ci = _welch(b, c, confidence)
            row.update(baseline_ms=statistics.fmean(b), candidate_ms=statistics.fmean(c), change_ms=d,
                       ci_ms=list(ci) if ci else None, clear=bool(ci and (ci[0] > 0 or ci[1] < 0)))
        rows.append(row)
    total = rows[0]["change_ms"]
    for row in rows:
        if total and row["change_ms"] is not None:
            row["share_pct"] = row["change_ms"] / total * 100
    return {"confidence": confidence, "n": {role: len(runs) for role, runs in sides.items()},
            "rows": rows, "headline": headline(rows, confidence)}


def fmt_ms(v, sign="+"):
    """Whole ms (a figure that rounds to 0 is "+0", never "-0"); "n/a" for None."""
    return "n/a" if v is None else f"{round(v) or 0:{sign}d}"


def _level(confidence):
    return f"{confidence * 100:.4g} %"


def headline(rows, confidence=CONFIDENCE):
    """One line: the stage(s) that moved clearly and explain most of the change, with their clearest sub-part."""
    by = {r["part"]: r for r in rows}
    total = by["request_total"]
    if total["change_ms"] is None:
        return f"request_total {total['note'] or NOT_MEASURED}: no attribution"
    kids = {}
    for r in rows:
        if r["parent"]:
            kids.setdefault(r["parent"], []).append(r)
    sign = math.copysign(1, total["change_ms"])

    def moved(r):
        return r["clear"] and math.copysign(1, r["change_ms"]) == sign

    stages = sorted((r for r in kids["request_total"] if moved(r)), key=lambda r: -abs(r["change_ms"]))
    if not stages:
        measured = [r for r in kids["request_total"] if r["change_ms"] is not None]
        if not measured:
            return "no stage measured on both sides"
        top = max(measured, key=lambda r: abs(r["change_ms"]))
        why = ("no interval (one run a side)" if total["ci_ms"] is None
               else "no stage's interval excludes 0 in the direction of the change")
        return f"{why}; largest stage change: {top['label']} {fmt_ms(top['change_ms'])} ms"
    named, explained = [], 0.0
    for r in stages:
        if explained >= 50:
            break
        explained += r["share_pct"] or 0
        text = (f"{r['label']}: {fmt_ms(r['change_ms'])} ms ({_level(confidence)} CI {fmt_ms(r['ci_ms'][0])} .."
                f" {fmt_ms(r['ci_ms'][1])}), {fmt_ms(r['share_pct'], '')} % of the change")
        deepest = None
        node = r
        while True:
            clear = [k for k in kids.get(node["part"], []) if moved(k)]
            if not clear:
                break
            node = deepest = max(clear, key=lambda k: abs(k["change_ms"]))
        if deepest is not None:
            text += f": {deepest['label']} {fmt_ms(deepest['change_ms'])} ms"
        named.append(text)
    return "; ".join(named)


def depth(part):
    n, p = 0, PARENT[part]
    while p:
        n, p = n + 1, PARENT[p]
    return n


def table(att):
    """(header, rows of text cells) of an attribution, for markdown and HTML alike."""
    level = _level(att["confidence"])
    header = ["part", "baseline ms (mean)", "candidate ms (mean)", "change ms", f"{level} CI ms", "share of change"]
    rows = []
    for r in att["rows"]:
        label = "· " * max(0, depth(r["part"]) - 1) + r["label"]
        if r["change_ms"] is None:
            rows.append([label, "n/a", "n/a", r["note"], "n/a", "n/a"])
            continue
        ci = r["ci_ms"]
        rows.append([label, fmt_ms(r["baseline_ms"], ""), fmt_ms(r["candidate_ms"], ""), fmt_ms(r["change_ms"]),
                     f"{fmt_ms(ci[0])} .. {fmt_ms(ci[1])}" if ci else "n/a",
                     "n/a" if r["share_pct"] is None else f"{fmt_ms(r['share_pct'], '')} %"])
    return header, rows
