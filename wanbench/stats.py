"""Statistics of repeated runs: summaries, the change with its interval, the decision, runs needed.

Timing noise is multiplicative (a slower host stretches every stage by a
factor), so a change is computed on the log scale: the estimate is the ratio
of geometric means minus one, and its interval comes from

* a **paired t interval** on the log differences within blocks when every
  block of the play holds one run of each side (drift between blocks
  cancels); with the runs' positions, 4 blocks or more and both orders
  equally often (the play's ABBA pairs), the **crossover** analysis of the
  pairs together, which removes an order effect from the variance too;
* else **Welch's t interval** on the log times when both sides have at least two
  runs: small samples (3 a side) need t, not z, and a variant may change the
  spread, so the variances are not pooled.  A rank test alone cannot serve:
  with 3 runs a side its smallest two-sided p-value is 0.10.
* a **t interval with a measured noise** (``noise``: the host's stored runs,
  or an inventory measurement with its degrees of freedom) when a side has one
  run, or when the control comes from another play (then the play-to-play
  variance estimated from the store is added): the t quantile takes the
  noise's degrees of freedom, and a noise with fewer than ``min_df`` decides
  nothing.  A prior (a CV without degrees of freedom) never makes an
  interval: it only informs the runs needed.
* **no interval** otherwise, or when both sides have zero spread (identical
  times are a copy or a stuck clock, not a measured noise of 0): then nothing
  is decided, and ``why`` says so.

The decision (:func:`decide`) needs both: the whole interval on one side of 0
*and* the estimate at or beyond the threshold.  :func:`runs_needed` is the
per-side sample size of a two-sided t test that finds a change of the
threshold's size with 80 % power at the observed noise; :func:`runs_to_decide` the
runs for the verdict the observation points to (at the block differences'
spread when the analysis is by block).  :func:`holm_levels`
corrects several candidates judged against one control (Holm's step-down).
"""

from __future__ import annotations

import math
import statistics

CONFIDENCE = 0.95
POWER = 0.80
MIN_NOISE_DF = 10  # degrees of freedom a measured noise needs before one-run sides decide


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


def _variance(xs):
    mean = sum(xs) / len(xs)
    return sum((x - mean) ** 2 for x in xs) / (len(xs) - 1)


def welch(base, cand):
    """(variance of the difference of means, Welch-Satterthwaite df) of two samples of 2+ values each;
    df is None when both have zero spread."""
    vb, vc = _variance(base) / len(base), _variance(cand) / len(cand)
    var = vb + vc
    return var, (var ** 2 / (vb ** 2 / (len(base) - 1) + vc ** 2 / (len(cand) - 1)) if var else None)


def t_quantile(p, df):
    """The p quantile of Student's t with df degrees of freedom (scipy.special: cheap enough to simulate with)."""
    from scipy import special

    return float(special.stdtrit(df, p))


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


def noise_from_plays(groups):
    """The noise of stored runs grouped by play: within-play CV with its df, and the play-to-play part.

    ``groups`` is a list of lists of positive numbers (one list per play).
    Returns None when no play has two runs, else {"cv_pct", "df", "runs",
    "plays", "between"}: ``cv_pct``/``df`` the within-play noise pooled over
    the plays (each play's own level removed; 0 when every play's runs are
    identical); ``between`` the one-way random-effects mean squares on the log
    scale ({"ms_within", "ms_between", "df_between", "n0", "cv_pct"}; cv_pct is
    the between-play CV, 0 when no larger than the within-play spread), or
    None with fewer than two plays.
    """
    groups = [list(g) for g in groups if g]
    cv, df = pooled_cv_pct(groups)
    if cv is None:
        return None
    n = sum(len(g) for g in groups)
    out = {"cv_pct": cv, "df": df, "runs": n, "plays": len(groups), "between": None}
    k = len(groups)
    if k > 1:
        logs = [_logs(g) for g in groups]
        grand = statistics.fmean([x for g in logs for x in g])
        msb = sum(len(g) * (statistics.fmean(g) - grand) ** 2 for g in logs) / (k - 1)
        msw = _sigma(cv) ** 2
        n0 = (n - sum(len(g) ** 2 for g in logs) / n) / (k - 1)
        out["between"] = {"ms_within": msw, "ms_between": msb, "df_between": k - 1, "n0": n0,
                          "cv_pct": _pct(math.sqrt(max(0.0, (msb - msw) / n0)))}
    return out


def _noise_variance(noise, nb, nc, cross_play):
    """(variance of the log change, its df, None) from a measured noise, or (None, None, why)."""
    cv, df = noise.get("cv_pct"), noise.get("df")
    if df is None:
        return None, None, "a prior noise (no degrees of freedom) informs planning only"
    if not cv:
        return None, None, "the noise's runs have zero spread (identical times): no noise estimate"
    msw, coef_w = _sigma(cv) ** 2, 1 / nb + 1 / nc
    if not cross_play:
        return msw * coef_w, df, None
    between = noise.get("between")
    if not between:
        return None, None, ("the control comes from another play and the store has no play-to-play"
                            " estimate (runs of two plays or more)")
    # Var(d) = 2 s_b^2 + s_w^2 (1/nb + 1/nc); E[MSB] = n0 s_b^2 + s_w^2, so
    # 2 s_b^2 = 2 (MSB - MSW) / n0: a linear combination of two mean squares, df by Satterthwaite.
    n0, msb, dfb = between["n0"], between["ms_between"], between["df_between"]
    a_b, a_w = 2 / n0, coef_w - 2 / n0
    var = a_b * msb + a_w * msw
    floor = msw * coef_w
    if var <= floor:  # the plays agree better than their runs: no smaller than the within-play part
        return floor, min(df, dfb), None
    return var, min(dfb, var ** 2 / ((a_b * msb) ** 2 / dfb + (a_w * msw) ** 2 / df)), None


def complete_blocks(base_blocks, cand_blocks):
    """The blocks of a paired analysis: every block holds one run of each side, two blocks or more; else None."""
    if not base_blocks or not cand_blocks or None in base_blocks or None in cand_blocks:
        return None
    if len(set(base_blocks)) != len(base_blocks) or sorted(base_blocks) != sorted(cand_blocks):
        return None
    return sorted(base_blocks) if len(base_blocks) > 1 else None


def _crossover(diffs, firsts):
    """(estimate, variance, df) of the change from block differences with the order removed, or None.

    ``firsts``: for each block, whether the candidate ran before the control.
    A two-period crossover analysis: the mean difference of the blocks where
    the candidate ran first and of those where the control did, averaged; the
    variance pooled within the two groups (df = blocks - 2).  An order effect
    (a linear trend within the block, a first-in-block effect, a carry-over)
    adds +e to one group and -e to the other: it cancels in the estimate and
    leaves the variance.  None unless both orders occur equally often and
    there are 4 blocks or more.
    """
    groups = [[d for d, f in zip(diffs, firsts) if f is first] for first in (True, False)]
    if len(diffs) < 4 or len(groups[0]) != len(groups[1]):
        return None
    means = [statistics.fmean(g) for g in groups]
    ss = sum((d - m) ** 2 for g, m in zip(groups, means) for d in g)
    df = len(diffs) - 2
    return (means[0] + means[1]) / 2, ss / df * (1 / len(groups[0]) + 1 / len(groups[1])) / 4, df


def change(base, cand, noise=None, confidence=CONFIDENCE, cross_play=False, min_df=MIN_NOISE_DF, blocks=None,
           positions=None):
    """Percent change from ``base`` to ``cand`` (positive numbers), with its interval.

    ``noise``: a measured noise {"cv_pct", "df", "between" (optional:
    :func:`noise_from_plays`)}, used when a side has one run or when
    ``cross_play`` (the control ran in another play: its play-to-play part is
    added, and needed).  ``blocks``: (the block of each base value, of each
    cand value) from the play's schedule; ``positions``: (the position in
    the play of each base value, of each cand value), when known.  Returns
    {pct, ci (low, high) or None, method, df, p, why, unit_sd}: with every
    block holding one run of each side, the log differences within blocks
    (drift between blocks cancels): ``crossover`` when the positions show
    both orders equally often in 4 blocks or more (the order effect removed,
    :func:`_crossover`), else ``paired`` (a t on the differences); else Welch t on the logs when both sides have two
    runs or more (and the control is from this play), else a t interval from
    the noise with its df, else no interval with ``why`` the reason.
    """
    from scipy import special

    if not base or not cand or min(base) <= 0 or min(cand) <= 0:
        raise ValueError("change needs at least one positive value a side")
    lb, lc = _logs(base), _logs(cand)
    d = statistics.fmean(lc) - statistics.fmean(lb)
    nb, nc = len(lb), len(lc)
    pct = (math.exp(d) - 1) * 100

    def none(why):
        return {"pct": pct, "ci": None, "method": "none", "df": None, "p": None, "why": why, "unit_sd": None}

    pairs = None if cross_play or not blocks else complete_blocks(*blocks)
    unit_sd = None
    if pairs:
        by_block = dict(zip(blocks[0], lb))
        diffs = [c - by_block[k] for k, c in zip(blocks[1], lc)]
        var, df, method = _variance(diffs) / len(diffs), len(diffs) - 1, "paired"
        if positions and None not in positions[0] + positions[1]:
            where = dict(zip(blocks[0], positions[0]))
            crossed = _crossover(diffs, [p < where[k] for k, p in zip(blocks[1], positions[1])])
            if crossed:
                (d, var, df), method = crossed, "crossover"
                pct = (math.exp(d) - 1) * 100
        if var == 0:
            return none("the block differences have zero spread (identical times): no interval")
        unit_sd = math.sqrt(var * len(diffs))  # one block's difference: the standard error is unit_sd / sqrt(blocks)
    elif nb > 1 and nc > 1 and not cross_play:
        var, df = welch(lb, lc)
        if not var:
            return none("both sides have zero spread (identical times): no interval")
        method = "welch"
    elif noise:
        var, df, why = _noise_variance(noise, nb, nc, cross_play)
        if var is None:
            return none(why)
        if df < min_df:
            return none(f"the noise has {df:.3g} degrees of freedom, fewer than the {min_df:g} needed")
        method = "stored-noise+between" if cross_play else "known-noise"
    else:
        return none("the control comes from another play and no noise is known" if cross_play else
                    "the noise is unknown with one run a side")
    se = math.sqrt(var)
    q = t_quantile((1 + confidence) / 2, df)
    low, high = d - q * se, d + q * se
    bound = 50.0  # a log interval beyond +-50 (a look at a tiny alpha with 1 df) is capped: e^50 stays finite
    return {"pct": pct, "ci": ((math.exp(max(-bound, low)) - 1) * 100, (math.exp(min(bound, high)) - 1) * 100),
            "method": method, "df": df, "p": float(2 * special.stdtr(df, -abs(d) / se)), "why": None,
            "unit_sd": unit_sd}


def holm_levels(p_values, confidence=CONFIDENCE):
    """Holm's step-down for a family of tests against one control: the interval level of each.

    ``p_values`` (None: not tested, ranked last) in family order.  Sorted by
    p, rank i of m is tested at alpha / (m - i + 1) while every smaller p was
    rejected; after the first one that is not, the rest keep that level (so
    they cannot be rejected either).  The family-wise chance of any false
    verdict stays at or below 1 - ``confidence``.  Returns one level a test,
    in the given order.
    """
    m = len(p_values)
    alpha = 1 - confidence
    order = sorted(range(m), key=lambda i: (p_values[i] is None, p_values[i] or 0.0))
    levels, stop = [None] * m, None
    for rank, i in enumerate(order, start=1):
        level = stop if stop is not None else 1 - alpha / (m - rank + 1)
        levels[i] = level
        p = p_values[i]
        if stop is None and (p is None or p > 1 - level):
            stop = level
    return levels


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
    from scipy import special

    if not noise_cv_pct or not threshold_pct or threshold_pct <= 0:
        return None
    ratio = _sigma(noise_cv_pct) / abs(math.log1p(threshold_pct / 100))
    z = float(special.ndtri((1 + confidence) / 2) + special.ndtri(power))
    n = max(2, math.ceil(2 * z ** 2 * ratio ** 2))  # t > z: the answer is no smaller
    while n < cap:
        df = 2 * n - 2
        if n >= 2 * (t_quantile((1 + confidence) / 2, df) + t_quantile(power, df)) ** 2 * ratio ** 2:
            return n
        n += 1
    return cap


def runs_to_decide(change_pct, noise_cv_pct, n, threshold_pct, confidence=CONFIDENCE, power=POWER, cap=10 ** 4,
                   paired=None):
    """Runs a side to add so that a verdict is likely, if the true change is the one observed.

    ``change_pct`` the observed change, ``noise_cv_pct`` the run-to-run noise,
    ``n`` the runs a side so far.  With N runs a side the change's standard
    error is s sqrt(2 / N) and its interval t[1 - alpha/2, 2N - 2] times that
    (Welch's, equal sides); with ``paired`` = (sd, df lost), the analysis by
    block (``change``'s ``unit_sd`` on the log scale, and 1 for ``paired``, 2
    for ``crossover``), it is sd / sqrt(N) and t[1 - alpha/2, N - df lost]
    (``noise_cv_pct`` is then not used); a verdict is pass or fail (the interval beyond 0 and
    the change at or beyond the threshold) or equivalent (the interval inside
    +-threshold).  Returns {"more", "runs", "outcome", "chance", "cannot"}: the
    fewest runs a side to add (0: as many as now already give that chance)
    for ``power`` chance of the likely outcome ("pass", "fail" or
    "equivalent"; ``more`` None when none reaches it within ``cap`` runs a
    side), and ``cannot`` "pass" (or "fail") when the observed change lies
    inside +-threshold: then no number of runs makes it pass (fail).  None
    when the noise is unknown.
    """
    from scipy import special

    if not (paired and paired[0] or noise_cv_pct) or n < 1 or threshold_pct is None:
        return None
    d, thr = abs(math.log1p(change_pct / 100)), math.log1p(threshold_pct / 100)
    if paired and paired[0]:
        sd, first, dof = paired[0], paired[1] + 1, lambda runs: runs - paired[1]
    else:  # Welch's, equal sides: a run's difference from the other side's mean has sd sigma sqrt(2)
        sd, first, dof = _sigma(noise_cv_pct) * math.sqrt(2), 2, lambda runs: 2 * runs - 2
    outcome = ("pass" if change_pct < 0 else "fail") if d >= thr else "equivalent"
    cannot = ("pass" if change_pct < 0 else "fail") if outcome == "equivalent" and d > 0 else None
    def chance(runs):
        se = sd / math.sqrt(runs)
        q = t_quantile((1 + confidence) / 2, dof(runs))
        if outcome == "equivalent":  # the interval inside +-thr: |estimate| + q se < thr
            return float(special.ndtr((thr - q * se - d) / se))
        return float(special.ndtr((d - max(q * se, thr)) / se))  # beyond 0 and at or beyond the threshold

    low, high = max(first, n), cap  # the chance grows with the runs: the fewest that reach power, by bisection
    if chance(high) < power:
        return {"more": None, "runs": None, "outcome": outcome, "chance": None, "cannot": cannot}
    while low < high:
        mid = (low + high) // 2
        low, high = (mid + 1, high) if chance(mid) < power else (low, mid)
    return {"more": max(0, low - n), "runs": low, "outcome": outcome, "chance": chance(low), "cannot": cannot}


SPENDING = ("obrien-fleming", "pocock")


def spent_alpha(fraction, alpha=1 - CONFIDENCE, shape="obrien-fleming"):
    """Lan-DeMets alpha spending: the alpha spent by information ``fraction`` (0..1) of the planned runs.

    O'Brien-Fleming shape 2 - 2 Phi(z[1 - alpha/2] / sqrt(t)): almost nothing
    early, most at the end; Pocock shape alpha ln(1 + (e - 1) t): evenly.
    """
    from scipy import special

    if shape not in SPENDING:
        raise ValueError(f"alpha spending {shape!r}: expected one of {', '.join(SPENDING)}")
    if fraction <= 0:
        return 0.0
    fraction = min(1.0, fraction)
    if shape == "pocock":
        return alpha * math.log(1 + (math.e - 1) * fraction)
    return float(2 - 2 * special.ndtr(special.ndtri(1 - alpha / 2) / math.sqrt(fraction)))


def look_levels(blocks, confidence=CONFIDENCE, shape="obrien-fleming", first=2):
    """The interval level of the look after each block ``first`` .. ``blocks`` of an adaptive play: {block: level}.

    The information fraction of a look is its blocks over the planned
    ``blocks``; each look spends the alpha the spending function
    (:func:`spent_alpha`) adds since the previous look (blocks before the
    first look add theirs to it), and uses it as its interval's two-sided
    level.  The looks' alphas sum to 1 - ``confidence``, so the chance of any
    false verdict, wherever the play stops, stays at or below it (a union
    bound: conservative, and simple to state in a report).
    """
    alpha, levels, spent = 1 - confidence, {}, 0.0
    for block in range(first, blocks + 1):
        total = spent_alpha(block / blocks, alpha, shape)
        levels[block] = 1 - (total - spent)
        spent = total
    return levels
