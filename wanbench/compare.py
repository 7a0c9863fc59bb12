"""A candidate against its baseline: percent changes, the interval, the verdict.

The rules follow WAN_TARGET.md "How a result is judged", in this order:
the baseline has no healthy run or lacks a required metric (invalid); a
candidate run is unhealthy (fail: runs must be healthy); the candidate lacks
a required metric (invalid); reserved_peak, the maximum over the candidate's
runs against the baseline's maximum, rises above the tolerance (fail);
request_total decides by its change and 95 % interval (:mod:`wanbench.stats`):
pass when the whole interval is below 0 and the change is at or beyond
-threshold, fail when above 0 and at or beyond +threshold, else inconclusive
with the runs a side that would resolve a change of the threshold's size.
Sub-metrics are diagnostics only.

Before all of these, the machine (docs/health.md): a run (either side,
warm-ups aside) whose devices were busy, held by another process, throttled
or erroring, or whose environment differs from the control's (the first
baseline run with a snapshot), makes the verdict ``invalid`` with the
reason (``devices.judge``); the differing environment keys are listed in
``env_diff``.  Then the output: a candidate run whose output differs from its
control's (``output_check``, scored on the host by ``wanbench.outputs``) is
noted in ``output_flag`` (``pass (output changed: PSNR 31.2 dB)`` in the
summary); with ``require_same_output`` it is ``fail`` (an output that could
not be compared is ``invalid`` then).

Each side is a run or a list of repeated runs (``parse_run`` results).
Warm-up runs (manifest ``schedule.warmup``) and unhealthy runs are left out
of the statistics and listed in ``excluded``.  With one run on a side the
interval needs a measured noise (``noise``: the host's stored runs, or an
inventory measurement, each with its degrees of freedom, at least
``min_noise_df``); a control from another play (``baseline=stored``) needs
the store's play-to-play estimate too; without them nothing is decided.
Several candidates against one control are judged as a family
(:func:`judge_family`: Holm's step-down on request_total).
"""

from __future__ import annotations

import os

from . import devices, manifest, outputs, stats
from .parse import METRICS

THRESHOLD_PCT = 0.5           # request_total: smallest change that counts, in %
RESERVED_TOLERANCE_PCT = 1.0  # % rise of reserved_peak still accepted
VERDICTS = ("pass", "fail", "inconclusive", "invalid")
NOT_MEASURED = "memory not measured"


def label(run):
    """The name of a run in a comparison: its manifest's variant, else its path."""
    variant = run.get("manifest", {}).get("variant")
    return variant if isinstance(variant, str) and variant else run["path"]


def is_warmup(run):
    schedule = run.get("manifest", {}).get("schedule")
    return isinstance(schedule, dict) and schedule.get("warmup") is True


def _runs(x):
    runs = list(x) if isinstance(x, (list, tuple)) else [x]
    if not runs:
        raise ValueError("a side of a comparison needs at least one run")
    return runs


def _memory_unmeasured(runs):
    return any(w.startswith(NOT_MEASURED) for r in runs for w in r["warnings"])


def _side(x, role):
    """Split a side into healthy runs (the statistics) and excluded ones (with why)."""
    runs = _runs(x)
    used, excluded, unhealthy = [], [], []
    for r in runs:
        if is_warmup(r):
            excluded.append({"path": r["path"], "role": role, "why": "warm-up (discarded)"})
        elif r["status"] != "ok":
            unhealthy.append(r)
            excluded.append({"path": r["path"], "role": role, "why": f"{r['status']}: {r['reason']}"})
        else:
            used.append(r)
    label_runs = [r for r in runs if not is_warmup(r)] or runs
    values = {m: [r["metrics"][m] for r in used] for m in METRICS}
    return {"label": ", ".join(dict.fromkeys(label(r) for r in label_runs)), "n": len(used), "used": used,
            "total": len(label_runs), "values": values, "unhealthy": unhealthy, "excluded": excluded,
            "memory_unmeasured": _memory_unmeasured(used or unhealthy),
            "warnings": list(dict.fromkeys(w for r in used + unhealthy for w in r["warnings"]))}


def _mean(values):
    return None if not values or None in values else sum(values) / len(values)


def _pct(b, c):
    return None if b is None or c is None or b == 0 else (c - b) / b * 100


def _check_number(name, value, positive=False):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or (positive and value == 0):
        raise ValueError(f"{name} must be a number {'>' if positive else '>='} 0, got {value!r}")


def _short(run):
    return os.path.basename(os.path.normpath(run["path"]))


def _health(baseline, candidate, limits):
    """(invalid reasons, environment differences, warnings) of the runs of both sides (warm-ups left out);
    with ``device_state`` optional in ``limits`` a device state that could not be read is a warning."""
    runs = [("baseline", r) for r in _runs(baseline) if not is_warmup(r)] + \
           [("candidate", r) for r in _runs(candidate) if not is_warmup(r)]
    snaps = {id(r): (r.get("devices") or {}) for _, r in runs}
    control = next((r for role, r in runs if role == "baseline"
                    and (snaps[id(r)].get("before") or snaps[id(r)].get("after"))), None)
    control_env = None
    if control is not None:
        control_env = snaps[id(control)].get("before") or snaps[id(control)].get("after")
    reasons, diffs, warnings = [], [], []
    for role, r in runs:
        snap = snaps[id(r)]
        if not snap:
            continue
        if limits.get("device_state") == "optional":
            warnings += [f"{role} run {_short(r)}: {line} (device_state=optional)"
                         for line in devices.unknown_state(snap.get("before"), snap.get("after"), snap.get("during"))]
        env = None if r is control else control_env
        own = devices.own_pids_of(r, limits.get("own_pids"))
        for why in devices.judge(snap.get("before"), snap.get("after"), env,
                                 **{**limits, "own_pids": own, "during": snap.get("during")}):
            reasons.append(f"{role} run {_short(r)}: {why}")
        if env is not None:
            mine = snap.get("before") or snap.get("after")
            diffs += [f"{role} run {_short(r)}: {line}" for line in devices.env_diff(env, mine)]
    return reasons, diffs, warnings


def _output(candidate, min_psnr_db):
    """The candidate runs' output checks: {checked, changed, not_compared, unchecked, flag, worst_psnr_db,
    min_psnr_db, scores}; ``changed`` and ``not_compared`` hold ``outputs.flag`` notes."""
    scores, changed, missing, unchecked, psnrs = [], [], [], [], []
    for r in _runs(candidate):
        if is_warmup(r) or r["status"] != "ok":
            continue
        check = r.get("output_check")
        score = check.get("score") if isinstance(check, dict) else None
        if score is None:
            unchecked.append(f"{_short(r)}: output not checked")
            continue
        note = outputs.flag(score, min_psnr_db)
        scores.append({"run": _short(r), "control_run": check.get("control_run"), **score})
        if isinstance(score.get("psnr_db"), (int, float)):
            psnrs.append(score["psnr_db"])
        if note and note.startswith("output changed"):
            changed.append(note)
        elif note:
            missing.append(f"{_short(r)}: {note}")
    flag = None
    if changed:  # the worst PSNR speaks for the group
        flag = min(changed, key=_psnr_of)
    return {"checked": len(scores), "changed": changed, "not_compared": missing, "unchecked": unchecked, "flag": flag,
            "worst_psnr_db": min(psnrs) if psnrs else None, "min_psnr_db": min_psnr_db, "scores": scores}


def _psnr_of(note):
    """The PSNR a flag names; a shape or frame-count change ranks below any PSNR."""
    try:
        return float(note.split("PSNR ", 1)[1].split(" dB", 1)[0])
    except (IndexError, ValueError):
        return float("-inf")


def _pairs(diffs):
    return ", ".join(f"{k} ({a} vs {b})" for k, (a, b) in diffs.items())


def comparability(baseline, candidate, allow_mismatch=()):
    """(invalid reasons, {key: (control's, other's)} not allowed, allowed notes) of the runs of both sides.

    Every run (warm-ups aside) is held against the control (the first
    baseline run): its workload identity and commit (``manifest.mismatch``);
    a run whose log says it ran another workload than its manifest is invalid.
    ValueError when a run is given twice (same directory, run id or content).
    """
    runs = [("baseline", r) for r in _runs(baseline)] + [("candidate", r) for r in _runs(candidate)]
    same = manifest.duplicates([r for _, r in runs])
    if same:
        raise ValueError("; ".join(same) + ": give each run once")
    runs = [(role, r) for role, r in runs if not is_warmup(r)]
    reasons, diffs, allowed = [], {}, {}
    for role, r in runs:
        told = manifest.log_disagreement(r)
        if told:
            reasons.append(f"{role} run {_short(r)}: the workload's log disagrees with its manifest:"
                           f" {_pairs({k: (f'manifest {a}', f'log {b}') for k, (a, b) in told.items()})}")
    control = next((r for role, r in runs if role == "baseline"), None)
    for _, r in runs:
        if control is not None and r is not control:
            for k, v in manifest.mismatch(control, r).items():
                (allowed if k in allow_mismatch else diffs).setdefault(k, v)
    notes = [f"allowed mismatch (--{'across-plays' if k == 'play' else 'allow-mismatch ' + k}): {_pairs({k: v})}"
             for k, v in allowed.items()]
    return reasons, diffs, notes


def compare(baseline, candidate, threshold_pct=THRESHOLD_PCT, reserved_tolerance_pct=RESERVED_TOLERANCE_PCT,
            noise=None, confidence=stats.CONFIDENCE, health=None, min_psnr_db=None, require_same_output=False,
            min_noise_df=stats.MIN_NOISE_DF, allow_mismatch=(), on_mismatch="error"):
    """Judge candidate against baseline; each may be a run dict or a list of repeated runs.

    ``noise`` is the known noise for a side of one run or a control from
    another play: ``{"cv_pct": x, "df": n or None (a prior), "source": "...",
    "between": ...}`` (``stats.noise_from_plays``; or None); it decides only
    with ``min_noise_df`` degrees of freedom or more.  ``health``: keyword limits of
    ``devices.judge`` (idle_util_pct, idle_mem_mb, busy_cpu_pct, ignore_names);
    ``min_psnr_db``: an output at or above this PSNR counts as the same (None:
    any difference counts); ``require_same_output``: a changed output fails.
    Both sides must measure the same workload (:func:`comparability`): a
    difference in a key not in ``allow_mismatch`` is a ValueError with
    ``on_mismatch="error"`` (the CLI) or makes the verdict invalid with
    ``"invalid"`` (a play's own report and look).
    Returns {candidate, baseline, diff_pct, verdict, reasons, n, ci_pct,
    noise_cv_pct, noise_source, runs_needed, equivalent, stats, excluded,
    threshold_pct, confidence, health, env_diff, output, output_flag}.
    """
    _check_number("threshold_pct", threshold_pct)
    _check_number("reserved_tolerance_pct", reserved_tolerance_pct)
    if noise is not None:
        _check_number("noise cv_pct", noise.get("cv_pct"))
        if noise.get("df") is not None:
            _check_number("noise df", noise["df"])
    if on_mismatch not in ("error", "invalid"):
        raise ValueError(f"on_mismatch must be error or invalid, got {on_mismatch!r}")
    told, diffs, allowed = comparability(baseline, candidate, allow_mismatch)
    if diffs and on_mismatch == "error":
        escape = " ".join("--across-plays" if k == "play" else f"--allow-mismatch {k}" for k in diffs)
        raise ValueError(f"not comparable: the runs differ in {_pairs(diffs)} (the control first);"
                         f" {escape} compares them anyway")
    base, cand = _side(baseline, "baseline"), _side(candidate, "candidate")
    verdicts, reasons = [], []

    def rule(verdict, reason):
        verdicts.append(verdict)
        reasons.append(reason)

    if diffs:
        rule("invalid", f"not comparable: the runs differ in {_pairs(diffs)} (the control first)")
    for why in told:
        rule("invalid", why)
    reasons += allowed
    unfit, env_diff, unread = _health(baseline, candidate, health or {})
    for why in unfit:
        rule("invalid", why)
    reasons += [f"warning: {w}" for w in unread]
    output = _output(candidate, min_psnr_db)
    for role, side in (("baseline", base), ("candidate", cand)):
        if side["total"] > 1:
            reasons.append(f"{role}: {side['n']} of {side['total']} runs used")
    # both sides unmeasured: no memory verdict (said below); one side only: the memory rule cannot be judged
    required = ("request_total",) if base["memory_unmeasured"] and cand["memory_unmeasured"] else \
        ("request_total", "reserved_peak")
    for role, side in (("baseline", base), ("candidate", cand)):
        if side["memory_unmeasured"] and not (base["memory_unmeasured"] and cand["memory_unmeasured"]):
            rule("invalid", f"memory not measured for the {role} (all memory figures 0.0 or absent),"
                            " measured for the other side: no memory verdict")
    if not base["n"]:
        worst = base["unhealthy"][0] if base["unhealthy"] else None
        rule("invalid", f"baseline {worst['status']}: {worst['reason']}" if worst else "no baseline run")
    for m in required:
        vals = base["values"][m]
        if base["n"] and None in vals:
            rule("invalid", f"{m} missing in baseline")
        elif base["n"] and 0 in vals:
            rule("invalid", f"{m} is 0 in baseline: no percent change")
    for r in cand["unhealthy"]:
        of = f" ({r['path']})" if cand["total"] > 1 else ""
        rule("fail", f"candidate {r['status']}: {r['reason']}{of}")
    for m in required:
        if not cand["n"] or None in cand["values"][m]:
            rule("invalid", f"{m} missing in candidate")
    if require_same_output:
        for note in output["changed"]:
            rule("fail", f"{note} (require_same_output)")
        for note in output["not_compared"] + output["unchecked"]:
            rule("invalid", f"{note} (require_same_output needs a score)")
    else:
        reasons += output["changed"] + output["not_compared"]

    diff = {m: _pct(_mean(base["values"][m]), _mean(cand["values"][m])) for m in METRICS}
    if "reserved_peak" not in required:
        diff["reserved_peak"] = None
        reasons.append("reserved_peak not measured (all memory figures 0.0 or absent): no memory verdict")
    else:
        bmax, cmax = (max(s["values"]["reserved_peak"]) if s["n"] and None not in s["values"]["reserved_peak"]
                      else None for s in (base, cand))
        rp = diff["reserved_peak"] = _pct(bmax, cmax)
        if rp is not None:
            if rp > reserved_tolerance_pct:
                rule("fail", f"reserved_peak {rp:+.2f} % > {reserved_tolerance_pct:.2f} % tolerance")
            else:
                reasons.append(f"reserved_peak {rp:+.2f} % within {reserved_tolerance_pct:.2f} % tolerance")

    decision = _request_total(base, cand, threshold_pct, noise, confidence, min_noise_df)
    if decision["change"] is not None:
        diff["request_total"] = decision["change"]["pct"]
        rule(decision["verdict"], decision["reason"])
    if decision["needed_reason"]:
        reasons.append(decision["needed_reason"])
    for role, side in (("baseline", base), ("candidate", cand)):
        reasons += [f"warning ({role}): {w}" for w in side["warnings"]]
    ci = decision["change"]["ci"] if decision["change"] else None
    return {"candidate": cand["label"], "baseline": base["label"], "diff_pct": diff,
            "verdict": verdicts[0] if verdicts else "invalid", "reasons": reasons,
            "n": {"baseline": base["n"], "candidate": cand["n"]},
            "ci_pct": {"request_total": list(ci) if ci else None},
            "noise_cv_pct": {**{role: stats.summary(s["values"]["request_total"])["cv_pct"]
                                if None not in s["values"]["request_total"] else None
                                for role, s in (("baseline", base), ("candidate", cand))},
                             "pooled": decision["pooled_cv"]},
            "noise_source": decision["source"], "runs_needed": decision["runs_needed"],
            "runs_to_decide": decision["to_decide"],
            "method": decision["change"]["method"] if decision["change"] else None,
            "p_value": decision["change"]["p"] if decision["change"] else None,
            "equivalent": decision["equivalent"],
            "stats": {role: {m: stats.summary(s["values"][m]) for m in METRICS}
                      for role, s in (("baseline", base), ("candidate", cand))},
            "excluded": base["excluded"] + cand["excluded"],
            "threshold_pct": threshold_pct, "confidence": confidence,
            "health": unfit, "env_diff": env_diff, "output": output, "output_flag": output["flag"]}


def _plays(side):
    """The play ids of a side's used runs (None when any run has none)."""
    plays = set()
    for r in side["used"]:
        schedule = r.get("manifest", {}).get("schedule")
        play = schedule.get("play") if isinstance(schedule, dict) else None
        if not isinstance(play, str) or not play:
            return None
        plays.add(play)
    return plays


def _scheduled(side, key):
    """The schedule's ``key`` (block, position) of each used run of a side (None where a run has none)."""
    out = []
    for r in side["used"]:
        schedule = r.get("manifest", {}).get("schedule")
        value = schedule.get(key) if isinstance(schedule, dict) else None
        out.append(value if isinstance(value, int) and not isinstance(value, bool) else None)
    return out


def _request_total(base, cand, threshold_pct, noise, confidence, min_noise_df=stats.MIN_NOISE_DF):
    """The request_total decision: change, interval, verdict, noise used and runs needed."""
    out = {"change": None, "verdict": "inconclusive", "reason": "", "source": "none", "runs_needed": None,
           "equivalent": False, "needed_reason": "", "pooled_cv": None, "to_decide": None}
    b, c = base["values"]["request_total"], cand["values"]["request_total"]
    if not b or not c or None in b or None in c or min(b) <= 0 or min(c) <= 0:
        return out
    pb, pc = _plays(base), _plays(cand)
    cross_play = bool(pb and pc and not pb & pc)  # the control ran in another play (baseline=stored)
    one_play = pb and pb == pc and len(pb) == 1
    blocks = (_scheduled(base, "block"), _scheduled(cand, "block")) if one_play else None  # one play's blocks
    positions = (_scheduled(base, "position"), _scheduled(cand, "position")) if one_play else None
    change = stats.change(b, c, noise=noise, confidence=confidence, cross_play=cross_play, min_df=min_noise_df,
                          blocks=blocks, positions=positions)
    out["change"] = change
    noise_source = noise["source"] if noise else ""
    out["source"] = ("data" if change["method"] in ("welch", "paired", "crossover")
                     else "none" if change["method"] == "none" else noise_source)
    pct, ci = change["pct"], change["ci"]
    level = f"{confidence * 100:.4g} %"
    if ci is None:
        of = f" ({noise_source})" if noise else ""
        out["reason"] = (f"request_total {pct:+.2f} % (n={len(b)}/{len(c)}): no interval, {change['why']}{of};"
                         " repeat the runs (-e repeats=N), or measure the host (-e variant=aa)")
    else:
        verdict = out["verdict"] = stats.decide(pct, ci, threshold_pct)
        if change["method"] == "paired":
            how = f"paired by block, t on log differences, {len(b)} blocks"
        elif change["method"] == "crossover":
            how = (f"paired by block, order effect removed (ABBA pairs together: crossover t,"
                   f" {change['df']} df), {len(b)} blocks")
        elif change["method"] == "welch":
            how = "Welch t on log times" + (" (blocks incomplete)" if blocks and len(b) > 1 else "")
        else:
            part = " within and the play-to-play part" if change["method"] == "stored-noise+between" else ""
            how = f"noise CV {noise['cv_pct']:.3g} %{part}, {change['df']:.4g} df ({noise_source})"
        why = {"pass": f"the interval is below 0 and the change at or beyond -{threshold_pct:.2f} %",
               "fail": f"the interval is above 0 and the change at or beyond +{threshold_pct:.2f} %"}.get(verdict)
        if verdict == "equivalent":
            out["verdict"], out["equivalent"] = "inconclusive", True
            why = f"equivalent: the interval lies inside +-{threshold_pct:.2f} %"
        elif why is None:
            why = ("the interval includes 0" if ci[0] <= 0 <= ci[1]
                   else f"a real change, but smaller than the {threshold_pct:.2f} % threshold")
        out["reason"] = (f"request_total {pct:+.2f} % ({level} CI {ci[0]:+.2f} .. {ci[1]:+.2f} %,"
                         f" n={len(b)}/{len(c)}, {how}): {why}")
    pooled, df = stats.pooled_cv_pct([b, c])
    out["pooled_cv"] = pooled
    cv, source = (pooled, "observed") if df and pooled else \
        ((noise["cv_pct"], noise["source"]) if noise and noise.get("cv_pct") else (None, None))
    out["runs_needed"] = stats.runs_needed(cv, threshold_pct, confidence)
    if out["runs_needed"] is not None and out["verdict"] == "inconclusive" and not out["equivalent"]:
        out["needed_reason"] = (f"runs needed to resolve {threshold_pct:.2f} % (80 % power): {out['runs_needed']}"
                                f" a side at noise CV {cv:.2f} % ({source})")
        by_block = (change["unit_sd"], 2 if change["method"] == "crossover" else 1) if change["unit_sd"] else None
        sought = out["to_decide"] = stats.runs_to_decide(change["pct"], cv, min(len(b), len(c)), threshold_pct,
                                                          confidence, paired=by_block)
        if sought:
            more = (f"{sought['more']} more run(s) a side ({sought['runs']} in all) give 80 % chance of"
                    f" {sought['outcome']} if the change is the {change['pct']:+.2f} % observed"
                    + (f" (at the spread of the block differences, {change['method']})" if by_block else "")
                    if sought["more"] is not None else f"no {sought['outcome']} within 10000 runs a side")
            cannot = (f"cannot {sought['cannot']} at this threshold (the change observed is inside"
                      f" +-{threshold_pct:.2f} %); " if sought["cannot"] else "")
            out["needed_reason"] += f"; for this verdict: {cannot}{more}"
    return out


def judge_family(baseline, groups, confidence=stats.CONFIDENCE, **kw):
    """Judge each candidate group (a list of runs) against one control: :func:`compare` for each.

    With two candidates or more they form one family: Holm's step-down on
    their request_total tests (``stats.holm_levels``) sets each one's interval
    level, so that the chance of any false verdict in the family stays at or
    below 1 - ``confidence``; each result's ``family`` says the family's size,
    the level asked and the candidate's own level.  One candidate: unchanged.
    """
    results = [compare(baseline, members, confidence=confidence, **kw) for members in groups]
    if len(results) < 2:
        return results
    levels = stats.holm_levels([r["p_value"] for r in results], confidence)
    out = []
    for members, first, level in zip(groups, results, levels):
        r = compare(baseline, members, confidence=level, **kw) if level != confidence else first
        r["family"] = {"size": len(results), "method": "Holm", "confidence": confidence, "level": level}
        r["reasons"].append(f"family of {len(results)} candidates against one control: Holm step-down at"
                            f" {confidence * 100:.4g} % family-wise, this interval at {level * 100:.4g} %")
        out.append(r)
    return out
