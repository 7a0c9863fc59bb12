"""The order of a play's runs, and the grouping of its collected runs for the report.

A play compares arms (the control baseline and each candidate variant) of one
control key (``family:mode``).  Run order biases a comparison: on a 2-core
machine the second run of a play is ~19 % faster than the first, and hosts
drift over minutes.  So :func:`schedule`, for each control key,

* starts with ``warmup`` warm-up rounds: every arm runs once, in the first
  block's order, recorded but never judged (each arm's first run is
  discarded, so a cold start or a carry-over favours none of them);
* then runs ``repeats`` blocks in pairs; each block runs every arm once, the
  second block of a pair reverses the first (ABBA or BAAB with two arms), so
  a linear drift and an effect of running first in a block add the same to
  both sides of every pair; pair j's order is the seeded shuffle rotated j
  times, so over as many pairs as arms each arm runs in each position
  equally often.  With two arms or more an odd ``repeats`` of 3 or more is
  rounded up to the next even number (``balanced``; the schedule's ``note``
  says so); ``repeats=1`` stays one block, unbalanced.

Every run carries ``schedule``: play id, seed, block, position in the play,
the block's order, whether it is a warm-up and the design; the render role
writes it into the run's manifest.  The analysis (``stats.change``) reads the
blocks and positions back: ABBA pairs are analysed together, so the order
effect cancels.
"""

from __future__ import annotations

import random
import secrets
from datetime import datetime, timezone

from .inputs import count
from .stats import CONFIDENCE, SPENDING, look_levels, spent_alpha

BASELINE_POLICIES = ("rerun", "skip", "stored")
BASELINE_HELP = ("rerun: fresh control runs in this play (default); skip: no control, raw metrics only; "
                 "stored: judge against the newest stored control of this host, commit and settings")


class ScheduleError(ValueError):
    """A schedule input is wrong; the message names it."""


DESIGN = "ABBA pairs, rotated"


def block_orders(arms, repeats, seed):
    """The arm order of each of ``repeats`` blocks: pairs of an order and its reverse; pair j takes a seeded
    shuffle of the arms rotated j times (each arm in each position equally often over len(arms) pairs)."""
    base = list(arms)
    random.Random(seed).shuffle(base)
    orders = []
    for block in range(repeats):
        if block % 2:
            orders.append(orders[-1][::-1])
        else:
            turn = (block // 2) % len(base) if base else 0
            orders.append(base[turn:] + base[:turn])
    return orders


def _positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ScheduleError(f"{name}={value!r}: expected a whole number >= 0")
    return value


def play_id(now=None, token=None):
    """``<UTCstamp>-<short random>``: names one play; every run of it records the id."""
    now = now or datetime.now(timezone.utc)
    return f"{now.strftime('%Y%m%dT%H%M%SZ')}-{token or secrets.token_hex(3)}"


def schedule(selection, baseline="rerun", stored=None, repeats=1, seed=None, warmup=1, play=None, adaptive=False,
             spending="obrien-fleming", balanced=True):
    """Order the runs of a play.

    ``selection`` is :func:`wanbench.catalog.plan`'s result; ``stored`` maps a
    control key (``family:mode``) to a stored control run directory (used only
    with ``baseline=stored``).  Returns {"runs": [...], "controls": {key:
    {"variant", "source", "path"}}, "play", "seed", "repeats", "warmup"}; each
    run is a resolved variant plus role (control|candidate), control_key,
    repeat (1-based per arm; 0 for a warm-up), warmup and schedule.
    ``warmup``: warm-up rounds, each one run of every arm of a control key
    (block 0, discarded by the report).  ``balanced``: an odd ``repeats`` of
    3 or more becomes the next even number when a control key has two arms
    or more (``repeats_asked`` and ``note`` keep what was asked).  A control
    source is "selected" (the baseline was asked for by name), "rerun",
    "stored" or "none".  ``adaptive``: ``repeats`` is a budget (rounded up to
    an even number); the play looks after every pair of blocks (``look`` on
    the pair's last run: ABBA pairs complete) and stops a control key's
    blocks once its verdicts are decided; each run records its block's look level
    (``confidence``: Lan-DeMets alpha spending of ``spending`` shape,
    O'Brien-Fleming or Pocock, ``stats.look_levels``), the alpha spent by
    then (``spent_alpha``) and ``last_in_block``.  The schedule's own
    ``confidence`` is the last look's level (the final report's).
    """
    if baseline not in BASELINE_POLICIES:
        raise ScheduleError(f"baseline={baseline!r}: expected one of {', '.join(BASELINE_POLICIES)} ({BASELINE_HELP})")
    try:
        repeats = count("repeats", repeats)  # what -e repeats means: wanbench.inputs.repeats_plan
    except ValueError as exc:
        raise ScheduleError(str(exc)) from None
    warmup = _positive_int("warmup", warmup)
    seed = secrets.randbelow(2 ** 31) if seed in (None, "") else _positive_int("order_seed", seed)
    play = play or play_id()
    if spending not in SPENDING:
        raise ScheduleError(f"alpha_spending={spending!r}: expected one of {', '.join(SPENDING)}")
    stored = stored or {}
    controls, groups = {}, []
    for key, control in selection["controls"].items():
        arms = [r for r in selection["variants"] if f"{r['family']}:{r['mode']}" == key]
        selected = any(r["variant"] == control["variant"] for r in arms)
        if selected:
            source, path = "selected", None
        elif baseline == "rerun":
            source, path = "rerun", None
            arms.insert(0, control)
        elif baseline == "stored" and stored.get(key):
            source, path = "stored", stored[key]
        else:
            source, path = "none", None
        controls[key] = {"variant": control["variant"], "source": source, "path": path}
        groups.append((key, arms))
    asked, note = repeats, None
    several = any(len(arms) > 1 for _, arms in groups)
    if repeats % 2 and (adaptive or balanced and repeats > 1 and several):  # adaptive: a look ends each pair
        repeats += 1
        note = (f"{'max_runs' if adaptive else 'repeats'}={asked} rounded up to {repeats}: blocks run in ABBA pairs,"
                f" so that a drift or an order effect favours no arm")
    elif repeats == 1 and several:
        note = "repeats=1: one block, its order not balanced (one run a side; a measured noise decides)"
    # adaptive: a look after every pair of blocks, Lan-DeMets spending over the pairs
    levels = {2 * pair: level for pair, level in look_levels(repeats // 2, CONFIDENCE, spending, first=1).items()} \
        if adaptive and repeats > 1 else {}
    looks = len(levels) if adaptive else 1
    confidence = levels.get(repeats, CONFIDENCE)

    runs = []

    def add(arm, key, repeat, block, order, is_warmup):
        role = "control" if arm["variant"] == arm["family_baseline"] and not arm.get("aa") else "candidate"
        last = not is_warmup and arm["variant"] == order[-1]
        runs.append({**arm, "role": role, "control_key": key, "repeat": repeat, "warmup": is_warmup,
                     "schedule": {"play": play, "seed": seed, "block": block, "position": len(runs),
                                  "order": order, "warmup": is_warmup, "repeats": repeats, "adaptive": adaptive,
                                  "design": DESIGN, "warmup_rounds": warmup,
                                  "confidence": levels.get(block, confidence),
                                  **({"spending": spending, "spent_alpha": spent_alpha(
                                      max(2, block + block % 2) / repeats, 1 - CONFIDENCE, spending)}
                                     if adaptive else {}),
                                  "last_in_block": last, "look": adaptive and last and block in levels}})

    for key, arms in groups:
        names = [a["variant"] for a in arms]
        orders = block_orders(names, repeats, seed)
        for _ in range(warmup):
            for name in orders[0]:
                add(arms[names.index(name)], key, 0, 0, orders[0], True)
        for block, order in enumerate(orders, start=1):
            for name in order:
                add(arms[names.index(name)], key, block, block, order, False)
    return {"runs": runs, "controls": controls, "play": play, "seed": seed, "repeats": repeats,
            "repeats_asked": asked, "note": note, "design": DESIGN,
            "warmup": warmup, "adaptive": adaptive, "looks": looks, "confidence": confidence,
            "spending": spending if adaptive else None, "levels": levels}


def decided(results):
    """Whether a look settles a control key: every candidate group pass, fail or equivalent.

    ``invalid`` never settles it: the final report would not give that
    verdict as a decision (a busy machine, a mismatch); the play runs on.
    """
    return bool(results) and all(r["verdict"] in ("pass", "fail")
                                 or (r["verdict"] == "inconclusive" and r["equivalent"]) for r in results)


def plan_text(sched):
    """One line that says what the play will run, in which order, against which controls."""
    order = ", ".join(f"{r['variant']}{' (warm-up)' if r['warmup'] else ''}" for r in sched["runs"])
    ctl = ", ".join(f"{k} = {c['variant']} ({c['source']}{': ' + c['path'] if c['path'] else ''})"
                    for k, c in sched["controls"].items())
    levels = sched.get("levels") or {}
    looks = (f"{sched['looks']} looks, alpha spent {sched['spending']}-shaped: "
             + ", ".join(f"{levels[b] * 100:.4g} %" for b in sorted(levels))) if levels else ""
    budget = (f"up to {sched['repeats']} repeats an arm, stopping once decided ({looks})") if sched["adaptive"] \
        else f"{sched['repeats']} repeat(s) an arm"
    note = f" ({sched['note']})" if sched.get("note") else ""
    return (f"play {sched['play']}: {len(sched['runs'])} runs, {budget}{note}, {sched['design']},"
            f" {sched['warmup']} warm-up round(s) (one discarded run of every arm), order seed {sched['seed']}:"
            f" {order}; controls: {ctl}")


def report_groups(collected, controls, out_root=None):
    """Group collected runs by control for the report.

    ``collected``: [{"variant", "role", "control_key", "path"}] in run order;
    ``controls``: :func:`schedule`'s controls.  Returns one group per control
    key: {"key", "family", "mode", "controls": [paths], "control_source",
    "candidates": [paths], "out": <out_root>/<family>-<mode>, "across_plays"}.  Fresh control
    runs (warm-ups included: the report lists and discards them by their
    manifest) form the control side; else the stored one, if any (from another
    play by design: ``across_plays``).
    """
    groups = []
    for key, ctl in controls.items():
        mine = [c for c in collected if c["control_key"] == key and c.get("path")]
        fresh = [c["path"] for c in mine if c["role"] == "control"]
        paths = fresh or ([ctl["path"]] if ctl.get("path") else [])
        source = ctl["source"] if fresh or ctl["source"] in ("stored", "none") else "missing"
        family, _, mode = key.partition(":")
        groups.append({"key": key, "family": family, "mode": mode, "controls": paths,
                       "control_source": source if paths else "none",
                       "candidates": [c["path"] for c in mine if c["role"] == "candidate"],
                       "out": f"{out_root}/{family}-{mode}" if out_root else None,
                       "across_plays": not fresh and bool(paths)})
    return groups
