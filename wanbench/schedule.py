"""The order of a play's runs, and the grouping of its collected runs for the report.

A play compares arms (the control baseline and each candidate variant) of one
control key (``family:mode``).  Run order biases a comparison: on a 2-core
machine the second run of a play is ~19 % faster than the first, and hosts
drift over minutes.  So :func:`schedule`

* starts with ``warmup`` runs of the first arm, which are recorded but never
  judged;
* then runs ``repeats`` blocks; each block runs every arm once, in a shuffled
  order (seeded, recorded), and every second block reverses the one before,
  so that with two arms the order is ABBA or BAAB: a linear drift adds the
  same to both sides of every pair of blocks.

Every run carries ``schedule``: play id, seed, block, position in the play,
the block's order and whether it is a warm-up; the render role writes it into
the run's manifest.
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


def block_orders(arms, repeats, seed):
    """The arm order of each of ``repeats`` blocks: a seeded shuffle, every second block reversed."""
    rng = random.Random(seed)
    orders = []
    for block in range(repeats):
        if block % 2:
            orders.append(orders[-1][::-1])
        else:
            order = list(arms)
            rng.shuffle(order)
            orders.append(order)
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
             spending="obrien-fleming"):
    """Order the runs of a play.

    ``selection`` is :func:`wanbench.catalog.plan`'s result; ``stored`` maps a
    control key (``family:mode``) to a stored control run directory (used only
    with ``baseline=stored``).  Returns {"runs": [...], "controls": {key:
    {"variant", "source", "path"}}, "play", "seed", "repeats", "warmup"}; each
    run is a resolved variant plus role (control|candidate), control_key,
    repeat (1-based per arm; 0 for a warm-up), warmup and schedule.  A control
    source is "selected" (the baseline was asked for by name), "rerun",
    "stored" or "none".  ``adaptive``: ``repeats`` is a budget; the play looks
    after every block from the second on and stops a control key's blocks once
    its verdicts are decided; each run records its block's look level
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
    looks = max(1, repeats - 1) if adaptive else 1
    levels = look_levels(repeats, CONFIDENCE, spending) if adaptive and repeats > 1 else {}
    confidence = levels.get(repeats, CONFIDENCE)
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

    runs = []

    def add(arm, key, repeat, block, order, is_warmup):
        role = "control" if arm["variant"] == arm["family_baseline"] and not arm.get("aa") else "candidate"
        runs.append({**arm, "role": role, "control_key": key, "repeat": repeat, "warmup": is_warmup,
                     "schedule": {"play": play, "seed": seed, "block": block, "position": len(runs),
                                  "order": order, "warmup": is_warmup, "repeats": repeats, "adaptive": adaptive,
                                  "confidence": levels.get(block, confidence),
                                  **({"spending": spending, "spent_alpha": spent_alpha(
                                      max(block, 2) / repeats, 1 - CONFIDENCE, spending)} if adaptive else {}),
                                  "last_in_block": not is_warmup and arm["variant"] == order[-1]}})

    first = groups[0] if groups and groups[0][1] else None
    for _ in range(warmup if first else 0):
        add(first[1][0], first[0], 0, 0, [first[1][0]["variant"]], True)
    for key, arms in groups:
        names = [a["variant"] for a in arms]
        for block, order in enumerate(block_orders(names, repeats, seed), start=1):
            for name in order:
                add(arms[names.index(name)], key, block, block, order, False)
    return {"runs": runs, "controls": controls, "play": play, "seed": seed, "repeats": repeats,
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
    return (f"play {sched['play']}: {len(sched['runs'])} runs, {budget},"
            f" {sched['warmup']} warm-up, order seed {sched['seed']}: {order}; controls: {ctl}")


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
