"""Percent change of a candidate run against a baseline, and the verdict.

The rules follow WAN_TARGET.md "How a result is judged": request_total must
fall by more than the noise threshold, reserved_peak must not rise above the
tolerance, and both runs must be healthy.  Sub-metrics are diagnostics only.
"""

from __future__ import annotations

from .parse import METRICS, STATUSES

NOISE_PCT = 0.5               # % of request_total, single runs
RESERVED_TOLERANCE_PCT = 1.0  # % rise of reserved_peak still accepted
VERDICTS = ("pass", "fail", "inconclusive", "invalid")
REQUIRED = ("request_total", "reserved_peak")


def label(run):
    """The name of a run in a comparison: its manifest's variant, else its path."""
    return run.get("manifest", {}).get("variant") or run["path"]


def _side(x):
    """One side of a comparison: a run, or a list of repeated runs.

    Repeats are reduced to the mean of each metric (None when any run lacks
    it); this is the place where real statistics will go.
    """
    runs = list(x) if isinstance(x, (list, tuple)) else [x]
    if not runs:
        raise ValueError("a side of a comparison needs at least one run")
    worst = max(runs, key=lambda r: STATUSES.index(r["status"]))
    metrics = {}
    for m in METRICS:
        values = [r["metrics"][m] for r in runs]
        metrics[m] = None if None in values else sum(values) / len(values)
    return {"label": ", ".join(dict.fromkeys(label(r) for r in runs)), "n": len(runs),
            "metrics": metrics, "status": worst["status"], "reason": worst["reason"],
            "warnings": list(dict.fromkeys(w for r in runs for w in r["warnings"]))}


def _pct(b, c):
    return None if b is None or c is None or b == 0 else (c - b) / b * 100


def compare(baseline, candidate, noise_pct=NOISE_PCT, reserved_tolerance_pct=RESERVED_TOLERANCE_PCT):
    """Judge candidate against baseline; each may be a run dict or a list of them.

    Returns ``{"candidate", "baseline", "diff_pct", "verdict", "reasons"}``.
    The verdict is the first rule that applies, in this order: baseline
    unhealthy or missing a required metric (invalid), candidate unhealthy
    (fail), candidate missing a required metric (invalid), reserved_peak
    above tolerance (fail), request_total beyond noise (fail if it rose,
    pass if it fell), else inconclusive.  ``reasons`` say all that applied.
    """
    for name, value in (("noise_pct", noise_pct), ("reserved_tolerance_pct", reserved_tolerance_pct)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ValueError(f"{name} must be a number >= 0, got {value!r}")
    base, cand = _side(baseline), _side(candidate)
    diff = {m: _pct(base["metrics"][m], cand["metrics"][m]) for m in METRICS}
    verdicts, reasons = [], []

    def rule(verdict, reason):
        verdicts.append(verdict)
        reasons.append(reason)

    for role, side in (("baseline", base), ("candidate", cand)):
        if side["n"] > 1:
            reasons.append(f"{role}: mean of {side['n']} runs")
    if base["status"] != "ok":
        rule("invalid", f"baseline {base['status']}: {base['reason']}")
    for m in REQUIRED:
        if base["metrics"][m] is None:
            rule("invalid", f"{m} missing in baseline")
        elif base["metrics"][m] == 0:
            rule("invalid", f"{m} is 0 in baseline: no percent change")
    if cand["status"] != "ok":
        rule("fail", f"candidate {cand['status']}: {cand['reason']}")
    for m in REQUIRED:
        if cand["metrics"][m] is None:
            rule("invalid", f"{m} missing in candidate")
    rt, rp = diff["request_total"], diff["reserved_peak"]
    if rp is not None:
        if rp > reserved_tolerance_pct:
            rule("fail", f"reserved_peak {rp:+.2f} % > {reserved_tolerance_pct:.2f} % tolerance")
        else:
            reasons.append(f"reserved_peak {rp:+.2f} % within {reserved_tolerance_pct:.2f} % tolerance")
    if rt is not None:
        beyond = abs(rt) > noise_pct
        rule("fail" if beyond and rt > 0 else "pass" if beyond else "inconclusive",
             f"request_total {rt:+.2f} % {'beyond' if beyond else 'within'}"
             f" the {noise_pct:.2f} % noise threshold")
    for role, side in (("baseline", base), ("candidate", cand)):
        reasons += [f"warning ({role}): {w}" for w in side["warnings"]]
    return {"candidate": cand["label"], "baseline": base["label"], "diff_pct": diff,
            "verdict": verdicts[0], "reasons": reasons}
