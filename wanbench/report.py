"""The team's report: verdicts with intervals, statistics per variant, every run, diagnostics.

``build`` groups candidate runs by their manifest's variant (a run without a
manifest is its own group), judges each group against all the baseline runs
(:func:`wanbench.compare.compare`), and gathers one row per run; ``render``
turns that into markdown, CSV or JSON, ``summary`` into one line per
candidate, and ``write`` writes all of them atomically.  Numbers keep full
precision in CSV and JSON; markdown rounds them as the workload prints them,
and percent changes to two signed decimals.  Every text from the runs in
markdown goes through :func:`md_text` (pipes, newlines, HTML, links).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile

from . import attribution, devices, diagnostics, importer, manifest, schedule
from .schema import AA
from .compare import RESERVED_TOLERANCE_PCT, THRESHOLD_PCT, is_warmup, judge_family
from .stats import CONFIDENCE
from .parse import DECIMALS, METRICS

RAW_COLUMNS = ("variant", "log_file", *METRICS, "status", "verdict")
FORMATS = ("md", "csv", "json")


def variant_name(run):
    """The manifest's variant, else the run directory's name or the file's stem."""
    variant = run.get("manifest", {}).get("variant")
    if isinstance(variant, str) and variant:
        return variant
    name = os.path.basename(os.path.normpath(run["path"]))
    return name if run.get("kind") == "run" else os.path.splitext(name)[0]


def check_manifest(run):
    """A manifest's variant must be a string; ValueError naming the run otherwise."""
    variant = run.get("manifest", {}).get("variant")
    if variant is not None and not isinstance(variant, str):
        raise ValueError(f"{run['path']}: manifest.json: variant must be a string, got {variant!r}")


def fmt_value(metric, value):
    return "n/a" if value is None else f"{value:.{DECIMALS.get(metric, 3)}f}"


def fmt_pct(value):
    return "n/a" if value is None else f"{value:+.2f}"


def _level(confidence):
    return f"{confidence * 100:.4g} %"


def _pct_text(value):
    return "n/a" if value is None else f"{value:+.2f} %"


def fmt_ci(ci):
    return "n/a" if not ci else f"{ci[0]:+.2f} .. {ci[1]:+.2f}"


def _log_file(run):
    return next((s["path"] for s in run.get("sources", [run]) if s["kind"] == "log"), None)


def _provenance(run):
    """Commit, host and start of a run from its manifest; without a recorded start, the log's first time
    stamp (the host's local time, as the workload logs it) and ``date_from_log`` true."""
    m = run.get("manifest", {})
    repo = m.get("repo")
    out = {"commit": repo.get("sha") if isinstance(repo, dict) else None, "host": m.get("host"),
           "date": m.get("started_at")}
    log = None if out["date"] else _log_file(run)
    stamp = importer.first_stamp("log", log) if log and os.path.isfile(log) else None
    if stamp:
        out["date"] = stamp.strftime("%Y-%m-%d %H:%M:%S")
    return out, stamp is not None


NOT_RECORDED = "not recorded"


def provenance_header(runs):
    """What the runs say about commit, host and date, one text each; what they do not say is said.

    Several values are listed (dates as first .. last); runs without a value are counted
    (``not recorded for 2 of 5 runs``); a date read from a log is marked as the host's local time.
    """
    found = [_provenance(r) for r in runs]
    out = {}
    for key in ("commit", "host", "date"):
        values = [str(p[key]) for p, _ in found if p[key] not in (None, "")]
        missing = len(found) - len(values)
        if not values:
            out[key] = NOT_RECORDED
            continue
        distinct = sorted(set(values)) if key == "date" else list(dict.fromkeys(values))
        text = f"{distinct[0]} .. {distinct[-1]}" if key == "date" and len(distinct) > 1 else ", ".join(distinct)
        if key == "date" and any(from_log for _, from_log in found):
            text += " (log time stamps, the host's local time)"
        out[key] = text + (f" ({NOT_RECORDED} for {missing} of {len(found)} runs)" if missing else "")
    return out


def _position(run):
    schedule = run.get("manifest", {}).get("schedule")
    pos = schedule.get("position") if isinstance(schedule, dict) else None
    return pos if isinstance(pos, int) else 10 ** 9


def group(runs):
    """Runs grouped by variant name, in order of first appearance: [(name, [runs])]."""
    groups = {}
    for run in runs:
        check_manifest(run)
        key = variant_name(run) if run.get("manifest", {}).get("variant") else run["path"]
        groups.setdefault(key, (variant_name(run), []))[1].append(run)
    return list(groups.values())


def _max(devs, key):
    vals = [d.get(key) for d in devs if isinstance(d.get(key), (int, float))]
    return max(vals) if vals else None


def machine(run, health=None):
    """One line per captured phase of a run: device state, other processes, environment; [] if none.

    ``health``: the limits given to the judgement; its ``own_pids`` and ``ignore_names`` are not listed
    as other processes (the controller, on the embedded default, is not another job)."""
    own = {"own_pids": devices.own_pids_of(run, (health or {}).get("own_pids")),
           "ignore_names": (health or {}).get("ignore_names", ())}
    captured = run.get("devices") or {}
    lines = []
    for phase in ("before", "during", "after"):
        snap = captured.get(phase)
        if not snap:
            continue
        devs = snap.get("devices") or []
        clocks = [d["clocks"]["sm_mhz"] for d in devs if isinstance(d.get("clocks"), dict)
                  and d["clocks"].get("sm_mhz") is not None]
        parts = [f"{len(devs)} device(s)" if snap.get("platform") in devices.DEVICE_PLATFORMS else
                 (devs[0]["name"] if devs else "cpu")]
        for label_, key, unit in (("util max", "util_pct", "%"), ("mem in use max", "mem_used_mb", "MB"),
                                  ("temp max", "temp_c", "C"), ("power max", "power_w", "W")):
            v = _max(devs, key)
            if v is not None:
                parts.append(f"{label_} {v:g} {unit}")
        if clocks:
            parts.append(f"SM clock {min(clocks):g}..{max(clocks):g} MHz")
        throttled = sorted({t for d in devs for t in d.get("throttle") or [] if t != "gpu_idle"})
        if throttled:
            parts.append("clock events " + ", ".join(throttled))
        procs = snap.get("processes")
        procs = None if procs is None else devices.others(procs, **own)
        parts.append("other processes: " + ("not read" if procs is None else
                                            ", ".join(f"{p.get('pid')} {p.get('name')}" for p in procs[:5]) or "none"))
        host = snap.get("host") or {}
        if host.get("loadavg"):
            parts.append("load " + "/".join(f"{x:g}" for x in host["loadavg"]))
        v = snap.get("versions") or {}
        env = ", ".join(f"{k} {v[k]}" for k in ("driver", "cuda", "cann", "torch", "torch_npu", "torch_cuda",
                                                 "python", "kernel", "governor", "image") if v.get(k))
        if env:
            parts.append(env)
        hosted = [n for n, w in (snap.get("where") or {}).items() if w == "host"]
        if hosted:
            parts.append("ran on host: " + ", ".join(hosted))
        if snap.get("status") != "ok":
            parts.append(f"capture {snap.get('status')}: " + "; ".join(snap.get("errors") or []))
        lines.append(f"{phase}: " + "; ".join(parts))
    return lines


def _output_cell(run):
    check = run.get("output_check")
    score = check.get("score") if isinstance(check, dict) else None
    if not isinstance(score, dict):
        return ""
    if score.get("status") == "error":
        return f"not compared: {score.get('reason')}"
    if score.get("identical"):
        return "identical"
    if score.get("status") == "differs":
        return f"differs: {score.get('reason')}"
    text = f"PSNR {score['psnr_db']:.1f} dB" if isinstance(score.get("psnr_db"), (int, float)) else "?"
    if score.get("ssim") is not None:
        text += f", SSIM {score['ssim']:.3f}"
    if score.get("max_abs_diff") is not None:
        text += f", max abs diff {score['max_abs_diff']:.3g}"
    return text


def verdict_text(g):
    """The verdict with its output note: ``pass (output changed: PSNR 31.2 dB)``."""
    return g["verdict"] + (f" ({g['output_flag']})" if g.get("output_flag") else "")


def build(runs, baselines=None, threshold_pct=THRESHOLD_PCT, reserved_tolerance_pct=RESERVED_TOLERANCE_PCT,
          noise=None, confidence=CONFIDENCE, health=None, min_psnr_db=None, require_same_output=False,
          allow_mismatch=(), on_mismatch="error", judge=None):
    """{"header", "groups", "rows"}: a comparison per candidate variant and one row per run.

    ``baselines`` is a list of baseline runs (or one run, or None).  ``noise``
    ({"cv_pct", "source"}) is used where a side has one run; ``confidence``
    is the interval's level (lower it only with a reason, e.g. repeated looks).
    ``health``, ``min_psnr_db`` and ``require_same_output`` go to
    :func:`wanbench.compare.compare` (machine state and output check), and so do
    ``allow_mismatch`` and ``on_mismatch`` (the workload identity both sides
    must share) and ``judge``'s further keywords (e.g. ``min_noise_df``).  A
    run given twice (same directory, run id or content) is a ValueError.  Two
    candidates or more are judged as one family (Holm: ``compare.judge_family``).
    """
    baselines = [] if baselines is None else baselines if isinstance(baselines, list) else [baselines]
    for run in baselines:
        check_manifest(run)
    # A cancelled run is never judged: it is listed as cancelled and left out of every comparison.
    cancelled = [(r, "baseline") for r in baselines if r["status"] == "cancelled"]
    baselines = [b for b in baselines if b["status"] != "cancelled"]
    cancelled += [(r, "candidate") for r in runs if r["status"] == "cancelled"
                  and os.path.realpath(r["path"]) not in {os.path.realpath(b["path"]) for b, _ in cancelled}]
    seen = {os.path.realpath(b["path"]) for b in baselines + [r for r, _ in cancelled]}
    candidates = [r for r in runs if os.path.realpath(r["path"]) not in seen]  # a baseline listed again: once
    same = manifest.duplicates(baselines + [r for r in candidates if r["status"] != "cancelled"])
    if same:
        raise ValueError("; ".join(same) + ": give each run once")
    candidates = group(candidates)
    groups, verdict_of = [], {}
    if baselines:  # the candidates against one control form one family (Holm), one candidate: unchanged
        results = judge_family(baselines, [members for _, members in candidates], confidence,
                               threshold_pct=threshold_pct, reserved_tolerance_pct=reserved_tolerance_pct,
                               noise=noise, health=health, min_psnr_db=min_psnr_db,
                               require_same_output=require_same_output, allow_mismatch=allow_mismatch,
                               on_mismatch=on_mismatch, **(judge or {}))
        for (name, members), result in zip(candidates, results):
            groups.append({"variant": name, **result,
                           "attribution": attribution.attribute(baselines, members, confidence)})
            verdict_of.update({m["path"]: result["verdict"] for m in members})
    excluded = {e["path"]: e["why"] for g in groups for e in g["excluded"]}
    rows = []
    ordered = sorted([(b, "baseline") for b in baselines] + [(r, "candidate") for _, rs in candidates for r in rs]
                     + cancelled, key=lambda x: _position(x[0]))
    for run, role in ordered:
        note = excluded.get(run["path"]) or ("warm-up (discarded)" if is_warmup(run) else "")
        note = "cancelled (never judged)" if run["status"] == "cancelled" else note
        rows.append({"variant": variant_name(run), "log_file": _log_file(run), **run["metrics"],
                     "status": run["status"], "role": role,
                     "verdict": None if run["status"] == "cancelled" else "baseline" if role == "baseline"
                     else verdict_of.get(run["path"]),
                     "excluded": note, **_provenance(run)[0],
                     "reason": run["reason"], "warnings": run["warnings"],
                     "output": _output_cell(run), "machine": machine(run, health),
                     "diagnostics": diagnostics.markdown(run)})
    header = provenance_header([run for run, _ in ordered])
    names = [variant_name(r) for r, _ in cancelled]
    header.update(cancelled={n: names.count(n) for n in dict.fromkeys(names)},
                  baseline=", ".join(dict.fromkeys(variant_name(b) for b in baselines)) or None,
                  threshold_pct=threshold_pct, reserved_tolerance_pct=reserved_tolerance_pct,
                  noise=noise, confidence=confidence, min_psnr_db=min_psnr_db,
                  require_same_output=require_same_output, allow_mismatch=list(allow_mismatch),
                  order=_order(baselines + [r for _, rs in candidates for r in rs]))
    return {"header": header, "groups": groups, "rows": rows}


def _order(runs):
    """Play, seed and run order from the manifests' schedule, or None."""
    scheduled = sorted((r for r in runs if _position(r) < 10 ** 9), key=_position)
    if not scheduled:
        return None
    s = scheduled[0]["manifest"]["schedule"]
    blocks = max((r["manifest"]["schedule"].get("block") or 0) for r in scheduled)
    return {"play": s.get("play"), "seed": s.get("seed"), "design": s.get("design"), "warmup": s.get("warmup_rounds"),
            "runs": [variant_name(r) + (" (warm-up)" if is_warmup(r) else "") for r in scheduled],
            "adaptive": {"blocks": blocks, "budget": s.get("repeats"), "spending": s.get("spending"),
                         "spent_alpha": max((r["manifest"]["schedule"].get("spent_alpha") or 0) for r in scheduled)}
            if s.get("adaptive") else None}


_MD_ESCAPES = str.maketrans({"\\": "\\\\", "|": "\\|", "`": "\\`", "[": "\\[", "]": "\\]",
                             "&": "&amp;", "<": "&lt;", "\r": " ", "\n": " "})  # no tag opens without <


def md_text(text):
    """Text from the runs, inert in a markdown table cell or list item: one line; no cell break (``|``),
    code span, link or image (``[``, ``]``); HTML shown as text, as report.html shows it."""
    return "" if text is None else str(text).translate(_MD_ESCAPES)


def _md_table(rows, left=("variant", "log_file", "status", "verdict", "role", "excluded", "metric")):
    import pandas as pd  # only where tables are built

    df = pd.DataFrame([{md_text(k): md_text(v) for k, v in r.items()} for r in rows])
    return df.to_markdown(index=False, disable_numparse=True,
                          colalign=["left" if c in left else "right" for c in df])


def aa_noise(g):
    """The host-noise statement of an A/A group: pooled CV, spread, runs needed, stable enough or not."""
    b, c = g["stats"]["baseline"]["request_total"], g["stats"]["candidate"]["request_total"]
    cv, need, n = g["noise_cv_pct"], g["runs_needed"], min(g["n"].values())
    if cv["pooled"] is None or need is None:
        return "host noise unknown: an A/A check needs at least 2 runs a side (-e repeats=2 or more)"
    spread = (max(b["max"], c["max"]) - min(b["min"], c["min"])) / ((b["mean"] + c["mean"]) / 2) * 100
    stable = "stable enough" if need <= n else "not stable enough"
    return (f"host noise (A/A, {g['n']['baseline']} + {g['n']['candidate']} runs): request_total CV {cv['pooled']:.2f} %"
            f" (baseline {cv['baseline']:.2f} %, aa {cv['candidate']:.2f} %), spread {spread:.2f} % of the mean;"
            f" resolving {g['threshold_pct']:.2f} % needs {need} runs a side (80 % power): {stable}"
            f" at {n} run(s) a side")


METHODS = {"paired": "paired t on log differences within blocks",
           "crossover": "paired by block, ABBA pairs together (order effect removed)", "welch": "Welch t on log times",
           "known-noise": "t from a measured noise", "stored-noise+between": "t from the store, play-to-play part added"}


def method_note(groups):
    """How the intervals were made: ``Welch t on log times``, ``paired ...``; and the Holm family, if any."""
    used = [METHODS[m] for m in dict.fromkeys(g.get("method") for g in groups) if m in METHODS]
    f = next((g["family"] for g in groups if g.get("family")), None)
    family = f"{f['method']} over {f['size']} candidates ({_level(f['confidence'])} family-wise)" if f else ""
    return "; ".join(used + ([family] if family else [])) or METHODS["welch"]


def summary(data):
    """One line per candidate variant: verdict, change with interval, memory, runs needed."""
    lines = []
    for g in data["groups"]:
        d = g["diff_pct"]
        ci = g["ci_pct"]["request_total"]
        flag = f" ({g['output_flag']})" if g.get("output_flag") else ""
        line = (f"{g['variant']}: {g['verdict'].upper()}{flag} (request_total {_pct_text(d['request_total'])},"
                f" {'%s CI %s %%' % (_level(g['confidence']), fmt_ci(ci)) if ci else 'no interval'}, n={g['n']['baseline']}/{g['n']['candidate']};"
                f" reserved_peak {_pct_text(d['reserved_peak'])})")
        if g["verdict"] == "inconclusive" and g["runs_needed"] and not g["equivalent"]:
            line += f"; runs needed to resolve {g['threshold_pct']:.2f} %: {g['runs_needed']} a side"
            sought = g.get("runs_to_decide")
            if sought:
                line += (f"; cannot {sought['cannot']} at this threshold" if sought["cannot"] else "") + (
                    f"; for a verdict: {sought['more']} more a side ({sought['outcome']} likely)"
                    if sought["more"] is not None else "")
        if g["equivalent"]:
            line += f"; equivalent within +-{g['threshold_pct']:.2f} %"
        if g.get("family"):
            f = g["family"]
            line += (f"; family of {f['size']} candidates, {f['method']} at {_level(f['confidence'])}"
                     f" family-wise")
        if g.get("health"):
            more = len(g["health"]) - 1
            line += f"; machine not fit: {g['health'][0]}" + (f" (+{more} more)" if more else "")
        lines.append(line)
        if g["variant"] == AA:
            lines.append(aa_noise(g))
    for name, n in data["header"].get("cancelled", {}).items():
        lines.append(f"{name}: {n} run(s) CANCELLED, not judged")
    if not data["groups"]:
        lines.append("nothing judged (no candidate, or no control run): raw metrics only")
    return "\n".join(lines) + "\n"


def _markdown(data):
    h, groups, rows = data["header"], data["groups"], data["rows"]
    lines = ["# wanbench report", "", f"- commit: {md_text(h['commit'])}", f"- host: {md_text(h['host'])}",
             f"- date: {md_text(h['date'])}"]
    if h["baseline"] is not None:
        noise = h["noise"]
        lines.append(f"- baseline: {md_text(h['baseline'])} (threshold {h['threshold_pct']:.2f} %, reserved_peak tolerance"
                     f" {h['reserved_tolerance_pct']:.2f} %; {_level(h['confidence'])} CI: Welch t on log request_total,"
                     f" paired by block where every block has both arms (ABBA pairs together, the order effect"
                     f" removed, from 4 blocks), with one run a side a measured noise,"
                     f" t with its df: {'CV %.2f %% (%s)' % (noise['cv_pct'], md_text(noise['source'])) if noise else 'none'})")
    if h["order"]:
        o = h["order"]
        design = (f", {md_text(o['design'])}, {md_text(o['warmup'])} warm-up round(s) of every arm"
                  if o.get("design") else "")  # older plays: one warm-up of the first control, no design recorded
        lines.append(f"- order: play {md_text(o['play'])}, seed {md_text(o['seed'])}{design}:"
                     f" {md_text(', '.join(o['runs']))}")
        if o.get("adaptive"):
            a = o["adaptive"]
            invalid = [g["variant"] for g in groups if g["verdict"] == "invalid"]
            lines.append(f"- repeats=auto: {a['blocks']} of {a['budget']} blocks run, "
                         + ("stopped: decided" if schedule.decided(groups) else "budget spent, not decided")
                         + (f" ({', '.join(invalid)} invalid: an invalid look never stops the play, it ran on)"
                            if invalid else "")
                         + (f"; alpha spent {a['spent_alpha']:.4g} of {1 - CONFIDENCE:.2g} ({a['spending']},"
                            f" Lan-DeMets); this report at {_level(h['confidence'])}" if a.get("spending") else
                            f"; each look at {_level(h['confidence'])} (alpha split over the looks)"))
    if groups:
        table = [{"variant": g["variant"], "n (base/cand)": f"{g['n']['baseline']}/{g['n']['candidate']}",
                  "request_total %": fmt_pct(g["diff_pct"]["request_total"]),
                  f"{_level(h['confidence'])} CI %": fmt_ci(g["ci_pct"]["request_total"])
                  + (f" (Holm: {_level(g['confidence'])})" if g.get("family") else ""),
                  "reserved_peak %": fmt_pct(g["diff_pct"]["reserved_peak"]), "verdict": verdict_text(g),
                  "runs needed a side": "" if g["verdict"] in ("pass", "fail", "invalid") or g["equivalent"]
                  else str(g["runs_needed"] or "n/a")} for g in groups]
        lines += ["", "## Verdicts", "", _md_table(table), "", *map(md_text, summary(data).splitlines())]
        stat_rows = []
        for role, g in [("baseline", groups[0])] + [("candidate", g) for g in groups]:
            for m in METRICS:
                s = g["stats"][role][m]
                if s["n"]:
                    stat_rows.append({"variant": h["baseline"] if role == "baseline" else g["variant"], "metric": m,
                                      "n": str(s["n"]), "median": fmt_value(m, s["median"]),
                                      "mean": fmt_value(m, s["mean"]), "sd": fmt_value(m, s["sd"]),
                                      "CV %": "n/a" if s["cv_pct"] is None else f"{s['cv_pct']:.2f}"})
        lines += ["", "## Statistics per variant (runs used)", "", _md_table(stat_rows)]
        pct = [{"variant": g["variant"], **{m: fmt_pct(g["diff_pct"][m]) for m in METRICS}, "verdict": g["verdict"]}
               for g in groups]
        lines += ["", "## Change vs baseline (%, of the means; sub-metrics are diagnostics)", "", _md_table(pct)]
        lines += attribution_md(groups)
    raw = [{"variant": r["variant"], "role": r["role"], "log_file": r["log_file"] or "",
            **{m: fmt_value(m, r[m]) for m in METRICS}, "status": r["status"], "excluded": r["excluded"]}
           for r in rows]
    lines += ["", "## Runs", "", _md_table(raw)]
    lines += _machine_md(groups, rows)
    notes = [(f"{g['variant']} ({g['verdict']})", g["reasons"] + [f"excluded {e['role']} run {e['path']}: {e['why']}"
                                                                  for e in g["excluded"]]) for g in groups]
    if not groups:
        notes = [(r["variant"], [f"{r['status']}: {r['reason']}"] * (r["status"] != "ok")
                  + [f"warning: {w}" for w in r["warnings"]]) for r in rows]
    notes = [(name, items) for name, items in notes if items]
    if notes:
        lines += ["", "## Verdicts and notes", ""]
        for name, items in notes:
            lines += [f"- {md_text(name)}", *[f"  - {md_text(n)}" for n in items]]
    diag = [r for r in rows if r["diagnostics"]]
    if diag:
        lines += ["", "## Diagnostics (never part of a verdict)"]
        for r in diag:
            lines += ["", f"### {md_text(r['variant'])}: {md_text(r['log_file'])}", "", *r["diagnostics"]]
    return "\n".join(lines) + "\n"


def attribution_md(groups):
    """The "Where the time went" section: per candidate, the headline and the stage table (wanbench.attribution)."""
    lines = ["", "## Where the time went (change of request_total by stage, ms; diagnostics)"]
    for g in groups:
        att = g.get("attribution")
        if att:
            header, rows = attribution.table(att)
            lines += ["", f"### {md_text(g['variant'])}", "", md_text(att["headline"]), "",
                      _md_table([dict(zip(header, r)) for r in rows], left=(header[0],))]
    return lines


def _machine_md(groups, rows):
    """Machine state per run, environment differences and output scores (docs/health.md)."""
    lines = []
    captured = [r for r in rows if r["machine"]]
    if captured:
        lines += ["", "## Machine state (before and after each run)", ""]
        for r in captured:
            lines.append(f"- {md_text(r['variant'])} ({r['role']}{', warm-up' if r['excluded'].startswith('warm-up') else ''})")
            lines += [f"  - {md_text(m)}" for m in r["machine"]]
    diffs = [(g["variant"], g.get("env_diff") or []) for g in groups]
    if any(d for _, d in diffs):
        lines += ["", "## Environment differences from the control", ""]
        for name, items in diffs:
            if items:
                lines += [f"- {md_text(name)}", *[f"  - {md_text(d)}" for d in items]]
    scored = [r for r in rows if r.get("output")]
    if scored:
        lines += ["", "## Output vs the control (same --base_seed)", ""]
        lines += [f"- {md_text(r['variant'])}: {md_text(r['output'])}" for r in scored]
    return lines


def _csv(data):
    import pandas as pd

    by_variant = {g["variant"]: g for g in data["groups"]}
    rows = []
    for r in data["rows"]:
        g = by_variant.get(r["variant"]) if r["role"] == "candidate" else None
        ci = g["ci_pct"]["request_total"] if g else None
        rows.append({**{k: v for k, v in r.items() if k not in ("diagnostics", "warnings", "machine")},
                     "warnings": "; ".join(r["warnings"]), "machine": " | ".join(r["machine"]),
                     "output_flag": g.get("output_flag") if g else None,
                     **{f"{m}_pct": g["diff_pct"][m] if g else None for m in METRICS},
                     "ci_low_pct": ci[0] if ci else None, "ci_high_pct": ci[1] if ci else None,
                     "runs_needed": g["runs_needed"] if g else None})
    return pd.DataFrame(rows).to_csv(index=False)


def _json(data):
    return json.dumps(data, indent=2, default=str) + "\n"


_RENDER = {"md": _markdown, "csv": _csv, "json": _json}


def render(data, fmt="md"):
    """Render ``build``'s result as markdown, CSV or JSON."""
    if fmt not in _RENDER:
        raise ValueError(f"unknown report format {fmt!r}; choose one of {', '.join(FORMATS)}")
    return _RENDER[fmt](data)


def write_atomic(path, text):
    """Write text to path whole: a temporary file beside it, renamed over it (never half-written)."""
    write_all({path: text})


def write_all(texts):
    """Write each ``{path: text}`` whole, all or none: every text goes to a temporary file beside its
    path first, and only then is each renamed into place, so a full disk fails before any file is
    replaced and leaves no temporary file.  An error names the path meant, never the temporary."""
    temps = []
    try:
        for path, text in texts.items():
            try:
                fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path) or ".", prefix=f".{os.path.basename(path)}.")
                temps.append((tmp, path))
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    f.write(text)
                os.chmod(tmp, 0o644)
            except OSError as e:
                raise OSError(e.errno, e.strerror, path) from None
        while temps:
            tmp, path = temps[0]
            try:
                os.replace(tmp, path)
            except OSError as e:
                raise OSError(e.errno, e.strerror, path) from None
            temps.pop(0)
    finally:
        for tmp, _ in temps:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def write(data, outdir, extra=None):
    """Write report.md, report.csv, report.json and summary.txt (and ``extra``'s {name: text}, e.g.
    :func:`wanbench.share.texts`) into outdir, all or none; {name: path}."""
    os.makedirs(outdir, exist_ok=True)
    texts = {f"report.{fmt}": _RENDER[fmt](data) for fmt in FORMATS}
    texts["summary.txt"] = summary(data)
    texts.update(extra or {})
    paths = {name: os.path.join(outdir, name) for name in texts}  # every text is built before any is written
    write_all({paths[name]: text for name, text in texts.items()})
    return paths


def render_report(runs, baselines=None, fmt="md", threshold_pct=THRESHOLD_PCT,
                  reserved_tolerance_pct=RESERVED_TOLERANCE_PCT, noise=None, confidence=CONFIDENCE):
    """The report for runs (``parse_run`` results) as a string."""
    return render(build(runs, baselines, threshold_pct, reserved_tolerance_pct, noise, confidence), fmt)


def write_report(runs, baselines, outdir, threshold_pct=THRESHOLD_PCT,
                 reserved_tolerance_pct=RESERVED_TOLERANCE_PCT, noise=None, confidence=CONFIDENCE):
    """Write the report for runs into outdir in every format; {name: path}."""
    return write(build(runs, baselines, threshold_pct, reserved_tolerance_pct, noise, confidence), outdir)
