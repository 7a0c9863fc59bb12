"""Statistics of repeated runs: summaries, the change with its interval, the decision, runs needed.

Timing noise is multiplicative (a slower host stretches every stage by a
factor), so a change is computed on the log scale: the estimate is the ratio
of geometric means minus one, and its interval comes from

* **Welch's t interval** on the log times when both sides have at least two
  runs: small samples (3 a side) need t, not z, and a variant may change the
  spread, so the variances are not pooled.  A rank test alone cannot serve:
  with 3 runs a side its smallest two-sided p-value is 0.10.
* a **z interval with a known noise** (``noise_cv_pct``: the host's stored
  control runs, or the inventory's prior) when a side has one run and no
  spread of its own.
* **no interval** otherwise: then nothing is decided.

The decision (:func:`decide`) needs both: the whole interval on one side of 0
*and* the estimate at or beyond the threshold.  :func:`runs_needed` is the
per-side sample size of a two-sided t test that finds a change of the
threshold's size with 80 % power at the observed noise.
"""

from __future__ import annotations

import math
import statistics

CONFIDENCE = 0.95
POWER = 0.80
MIN_STORED_RUNS = 3


def summary(values):
    """{n, median, mean, sd, cv_pct, min, max, range_pct} of the numbers (sd and cv need n >= 2)."""
    xs = [float(v) for v in values if v is not None]
    n = len(xs)
    if not n:
        return {"n": 0, "median": None, "mean": None, "sd": None, "cv_pct": None,
                "min": None, "max": None, "range_pct": None}
    mean = statistics.fmean(xs)
    sd = statistics.stdev(xs) if n > 1 else None
    return {"n": n, "median": statistics.median(xs), "mean": mean, "sd": sd,
            "cv_pct": sd / mean * 100 if sd is not None and mean else None,
            "min": min(xs), "max": max(xs),
            "range_pct": (max(xs) - min(xs)) / mean * 100 if mean else None}


def _logs(values):
    return [math.log(v) for v in values]


def pooled_cv_pct(groups):
    """Noise as a CV in %, pooled over groups of runs (each group's own level removed).

    ``groups`` is a list of lists of positive numbers; returns (cv_pct, degrees
    of freedom), or (None, 0) when no group has two runs.
    """
    ss, df = 0.0, 0
    for g in groups:
        if len(g) > 1:
            logs = _logs(g)
            mean = statistics.fmean(logs)
            ss += sum((x - mean) ** 2 for x in logs)
            df += len(g) - 1
    if not df:
        return None, 0
    return _pct(math.sqrt(ss / df)), df


def _pct(sigma):
    return (math.exp(sigma) - 1) * 100


def _sigma(cv_pct):
    return math.log1p(cv_pct / 100)


def change(base, cand, noise_cv_pct=None, confidence=CONFIDENCE):
    """Percent change from ``base`` to ``cand`` (positive numbers), with its interval.

    Returns {pct, ci (low, high) or None, method, df}: Welch t on the logs when
    both sides have two runs or more, else a z interval from ``noise_cv_pct``
    when given, else no interval.
    """
    from scipy import stats as st

    if not base or not cand or min(base) <= 0 or min(cand) <= 0:
        raise ValueError("change needs at least one positive value a side")
    lb, lc = _logs(base), _logs(cand)
    d = statistics.fmean(lc) - statistics.fmean(lb)
    nb, nc = len(lb), len(lc)
    if nb > 1 and nc > 1:
        vb, vc = statistics.variance(lb) / nb, statistics.variance(lc) / nc
        se = math.sqrt(vb + vc)
        if se == 0:
            df, q = math.inf, 0.0
        else:
            df = (vb + vc) ** 2 / (vb ** 2 / (nb - 1) + vc ** 2 / (nc - 1))
            q = st.t.ppf((1 + confidence) / 2, df)
        method = "welch"
    elif noise_cv_pct:
        se = _sigma(noise_cv_pct) * math.sqrt(1 / nb + 1 / nc)
        df, q, method = math.inf, st.norm.ppf((1 + confidence) / 2), "known-noise"
    else:
        return {"pct": (math.exp(d) - 1) * 100, "ci": None, "method": "none", "df": None}
    low, high = d - q * se, d + q * se
    return {"pct": (math.exp(d) - 1) * 100, "ci": ((math.exp(low) - 1) * 100, (math.exp(high) - 1) * 100),
            "method": method, "df": None if math.isinf(df) else df}


def decide(pct, ci, threshold_pct):
    """pass, fail, equivalent or inconclusive for a change ``pct`` with interval ``ci`` (in %).

    pass: the interval is below 0 and the estimate at or beyond -threshold;
    fail: above 0 and at or beyond +threshold; equivalent: the interval lies
    inside +-threshold (a two one-sided tests reading, at the interval's own
    level, so stricter than TOST's usual 90 %); otherwise inconclusive.
    """
    if ci is None:
        return "inconclusive"
    low, high = ci
    if high < 0 and pct <= -threshold_pct:
        return "pass"
    if low > 0 and pct >= threshold_pct:
        return "fail"
    if -threshold_pct < low and high < threshold_pct:
        return "equivalent"
    return "inconclusive"


def runs_needed(noise_cv_pct, threshold_pct, confidence=CONFIDENCE, power=POWER, cap=10 ** 7):
    """Runs per side that resolve a change of ``threshold_pct`` at ``noise_cv_pct`` (two-sided t test).

    n = 2 (t[1 - alpha/2, 2n-2] + t[power, 2n-2])^2 (sigma / delta)^2, solved
    for the smallest such n >= 2; None when the noise is unknown or the
    threshold is 0.
    """
    from scipy import stats as st

    if not noise_cv_pct or not threshold_pct or threshold_pct <= 0:
        return None
    ratio = _sigma(noise_cv_pct) / abs(math.log1p(threshold_pct / 100))
    z = st.norm.ppf((1 + confidence) / 2) + st.norm.ppf(power)
    n = max(2, math.ceil(2 * z ** 2 * ratio ** 2))  # t > z: the answer is no smaller
    while n < cap:
        df = 2 * n - 2
        if n >= 2 * (st.t.ppf((1 + confidence) / 2, df) + st.t.ppf(power, df)) ** 2 * ratio ** 2:
            return n
        n += 1
    return cap


def look_confidence(looks, confidence=CONFIDENCE):
    """The interval level for each of ``looks`` planned looks at growing data (adaptive repeats).

    Looking after every block and stopping at the first decided verdict would
    inflate false verdicts; splitting alpha evenly over the planned looks
    (Bonferroni) keeps the chance of any false verdict at or below
    1 - ``confidence`` whatever the stopping point.  Conservative, and simple
    enough to state in a report.
    """
    return 1 - (1 - confidence) / max(1, looks)
