"""Run history over nights, and regression alarms with a persistence rule.

A **series** is one metric of one variant on one host over nights (a night
is a play, or the UTC date of ``started_at`` for runs without one; see
:func:`wanbench.index.series`): each night has its runs' values, median and
CV.  Only runs that exited 0, parsed ``ok`` and are not warm-ups count.

**Alarm rule** (timings: every metric but ``reserved_peak``; all of them are
worse when higher).  Night *i* is *bad* when its median exceeds the median of
the reference nights by more than

    limit = max(threshold_pct, noise_k x noise_cv_pct)

where the reference is the ``window`` (W, default 7) nights before *i* --
or, while a streak of bad nights runs, the W nights before the streak began,
so that a lasting regression never becomes its own reference -- and
``noise_cv_pct`` is the larger of (a) the pooled within-night CV of the
reference runs (:func:`wanbench.stats.pooled_cv_pct`) and (b) the CV of the
reference nights' medians (night-to-night drift, which the within-night
noise does not see).  A night is judged only with at least ``min_history``
(default 3) reference nights.  An alarm is open when the last night ends a
streak of at least ``persist`` (K, default 2) bad nights.

Why ``noise_k`` = 2: the noise CV is that of a single run; a night's median
of n = 3 runs scatters by about 1.2 CV / sqrt(3) ~ 0.7 CV, and the reference
median by less, so a difference of 2 CV is about 2.5 to 3 standard
deviations of the difference: one night crosses it by chance well under 1 %
of the time, and K = 2 nights in a row well under 1 in 10 000 -- a quiet
nightly on many series.  At the measured noise of the reference workload
(CV 0.59 %) the limit is ~1.2 %, so a 5 % regression is caught on its K-th
night.  ``threshold_pct`` (default 1 %) is the floor: a very quiet history
must not alarm on a change too small for anyone to act on.

**Memory**: ``reserved_peak`` is deterministic (identical in repeated runs),
so it has no noise term: a night is bad when its median rises above the
reference median by more than ``reserved_tolerance_pct`` (default 1 %, as in
compare), and ``reserved_persist`` defaults to 1 night.

Each alarm names the commit range between the last good night (the night
before the streak) and the first bad night.  An **ack file** (YAML or JSON: a
list of ``{host, variant, metric, until, reason}``, ``"*"`` matching any)
silences a matching alarm while the alarm's last night is on or before
``until``: the alarm is still listed, with ``acked: true``.

**Exit codes of a nightly** (:func:`exit_code`): 0 ok; 2 invalid setup
(nothing could be measured: bad inputs, inventory, unreachable hosts); 3
regression (an open alarm that is not acked); 4 broken run (a run that did
not exit 0 or did not parse ``ok``).  When several apply, the first in the
order 2, 3, 4 wins: a setup error makes every other finding moot, and a
regression confirmed on K nights says more than tonight's broken run; the
one-line summary names all of them.
"""

from __future__ import annotations

import json
import os
import statistics
from datetime import date as _date
from datetime import datetime, timezone

from .compare import RESERVED_TOLERANCE_PCT
from .parse import METRICS
from .stats import pooled_cv_pct, summary

__all__ = ["EXIT_BROKEN_RUN", "EXIT_INVALID_SETUP", "EXIT_OK", "EXIT_REGRESSION", "add_cli", "alarms",
           "exit_code", "judge", "load", "load_acks"]

WINDOW = 7
PERSIST = 2
THRESHOLD_PCT = 1.0
NOISE_K = 2.0
MIN_HISTORY = 3
RESERVED_PERSIST = 1
DEFAULT_METRICS = ("request_total", "reserved_peak")

EXIT_OK = 0
EXIT_INVALID_SETUP = 2
EXIT_REGRESSION = 3
EXIT_BROKEN_RUN = 4


def load(db, host=None, variant=None, metrics=DEFAULT_METRICS):
    """The series of an index (a results folder, an index file or a connection).

    Returns [{host, variant, workload, metric, nights}] for every (host,
    variant, workload identity) with runs (optionally one host and/or one
    variant), one per metric, leaving out series without a night: a change
    of workload starts a new series instead of an alarm.
    """
    from . import index

    for m in metrics:
        if m not in METRICS:
            raise ValueError(f"metric {m!r}: expected one of {', '.join(METRICS)}")
    out = []
    for h, v, w in index.keys(db, host, variant):
        for m in metrics:
            nights = index.series(db, h, v, m, workload=w)
            if nights:
                out.append({"host": h, "variant": v, "workload": w, "metric": m, "nights": nights})
    return out


def judge(nights, metric, window=WINDOW, threshold_pct=THRESHOLD_PCT, noise_k=NOISE_K,
          reserved_tolerance_pct=RESERVED_TOLERANCE_PCT, min_history=MIN_HISTORY):
    """One verdict per night: {state (bad, good, unjudged), reference_median, change_pct, limit_pct,
    noise_cv_pct, streak_start (index of the streak's first night, for a bad night)}."""
    if window < 1 or min_history < 1:
        raise ValueError(f"window={window}, min_history={min_history}: expected whole numbers >= 1")
    out, start = [], None
    for i, night in enumerate(nights):
        end = i if start is None else start
        ref = [n for n in nights[max(0, end - window):end] if n["median"]]
        if night["median"] is None or len(ref) < min_history:
            out.append({"state": "unjudged", "reference_median": None, "change_pct": None,
                        "limit_pct": None, "noise_cv_pct": None, "streak_start": None})
            start = None
            continue
        medians = [n["median"] for n in ref]
        ref_median = statistics.median(medians)
        if metric == "reserved_peak":
            noise, limit = None, reserved_tolerance_pct
        else:
            within, _ = pooled_cv_pct([n["values"] for n in ref])
            between = summary(medians)["cv_pct"]
            noise = max((c for c in (within, between) if c is not None), default=0.0)
            limit = max(threshold_pct, noise_k * noise)
        change = (night["median"] / ref_median - 1) * 100
        bad = change > limit
        start = (i if start is None else start) if bad else None
        out.append({"state": "bad" if bad else "good", "reference_median": ref_median, "change_pct": change,
                    "limit_pct": limit, "noise_cv_pct": noise, "streak_start": start})
    return out


def _night(n, verdict=None):
    d = {"night": n["night"], "date": n["date"], "commit": n["commit"], "n": n["n"], "median": n["median"]}
    if verdict is not None:
        d["change_pct"] = verdict["change_pct"]
    return d


def _settings_changed(before, after):
    """True when both nights know their settings fingerprints and they differ (not a code regression then)."""
    a, b = before.get("fingerprints") or [], after.get("fingerprints") or []
    return bool(a and b and set(a) != set(b))


def _as_list(series):
    return [series] if isinstance(series, dict) else list(series)


def alarms(series, window=WINDOW, persist=PERSIST, threshold_pct=THRESHOLD_PCT, noise_k=NOISE_K,
           reserved_tolerance_pct=RESERVED_TOLERANCE_PCT, reserved_persist=RESERVED_PERSIST,
           min_history=MIN_HISTORY, acks=None):
    """Open alarms of one series or a list of them ({host, variant, metric, nights}), as of each last night.

    Returns [{host, variant, metric, first_bad, last_good, commits: [last good
    night's sha, first bad night's sha], change_pct (last night vs the
    reference median), limit_pct, noise_cv_pct, reference_median, nights (the
    bad streak: night, date, commit, n, median, change_pct), settings_changed
    (the settings fingerprint differs between the two nights: look at the
    settings before the code), acked, ack_reason}].
    """
    if persist < 1 or reserved_persist < 1:
        raise ValueError(f"persist={persist}, reserved_persist={reserved_persist}: expected whole numbers >= 1")
    found = []
    for s in _as_list(series):
        nights = s["nights"]
        if not nights:
            continue
        verdicts = judge(nights, s["metric"], window, threshold_pct, noise_k, reserved_tolerance_pct, min_history)
        last = verdicts[-1]
        need = reserved_persist if s["metric"] == "reserved_peak" else persist
        if last["state"] != "bad" or len(nights) - last["streak_start"] < need:
            continue
        start = last["streak_start"]
        first_bad, last_good = nights[start], nights[start - 1]
        alarm = {"host": s["host"], "variant": s["variant"], "workload": s.get("workload"), "metric": s["metric"],
                 "first_bad": first_bad["night"], "first_bad_date": first_bad["date"],
                 "last_good": last_good["night"], "last_good_date": last_good["date"],
                 "commits": [last_good["commit"], first_bad["commit"]],
                 "change_pct": last["change_pct"], "limit_pct": last["limit_pct"],
                 "noise_cv_pct": last["noise_cv_pct"], "reference_median": last["reference_median"],
                 "nights": [_night(n, v) for n, v in zip(nights[start:], verdicts[start:])],
                 "settings_changed": _settings_changed(last_good, first_bad), "acked": False, "ack_reason": None}
        ack = _ack_for(alarm, nights[-1]["date"], acks or [])
        if ack:
            alarm.update(acked=True, ack_reason=f"{ack['reason']} (until {ack['until']})")
        found.append(alarm)
    return found


# ---------------------------------------------------------------- acks

def _ack_for(alarm, night_date, acks):
    today = night_date or datetime.now(timezone.utc).date().isoformat()
    for a in acks:
        if all(a[k] in ("*", alarm[k]) for k in ("host", "variant", "metric")) and today <= a["until"]:
            return a
    return None


def load_acks(path):
    """The entries of an ack file (YAML or JSON): [{host, variant, metric, until (YYYY-MM-DD), reason}].

    The file holds a list of entries, or a mapping with the list under
    ``acks``.  Raises ValueError naming the file and entry on a bad one.
    """
    import yaml

    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)  # JSON is YAML
    except OSError as e:
        raise ValueError(f"{path}: cannot read the ack file ({e.strerror})") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ValueError(f"{path}: not YAML or JSON{where}") from None
    except ValueError as e:  # a YAML value that is no value, e.g. the date 2026-13-45
        raise ValueError(f"{path}: a value YAML cannot read ({e})") from None
    if isinstance(data, dict) and "acks" in data:
        data = data["acks"]
    if data is None:
        return []
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a list of acks (or a mapping with 'acks:')")
    acks = []
    for i, entry in enumerate(data, start=1):
        where = f"{path}: ack {i}"
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: expected a mapping with host, variant, metric, until, reason")
        missing = [k for k in ("host", "variant", "metric", "until", "reason") if not entry.get(k)]
        if missing:
            raise ValueError(f"{where}: missing {', '.join(missing)}")
        not_text = [k for k in ("host", "variant", "metric", "reason") if not isinstance(entry[k], (str, int, float))]
        if not_text:
            raise ValueError(f"{where}: {', '.join(not_text)}: expected text, got a list or mapping")
        if entry["metric"] != "*" and entry["metric"] not in METRICS:
            raise ValueError(f"{where}: metric {entry['metric']!r}: expected one of {', '.join(METRICS)} or '*'")
        until = entry["until"]
        if isinstance(until, datetime):
            until = until.date()
        if not isinstance(until, _date):
            try:
                until = _date.fromisoformat(str(until))
            except ValueError:
                raise ValueError(f"{where}: until {entry['until']!r}: expected a date YYYY-MM-DD") from None
        acks.append({"host": str(entry["host"]), "variant": str(entry["variant"]), "metric": entry["metric"],
                     "until": until.isoformat(), "reason": str(entry["reason"])})
    return acks


# ---------------------------------------------------------------- nightly exit code

def exit_code(alarms, broken_runs, invalid_setup):
    """The nightly's exit code: 2 invalid setup, else 3 an open unacked alarm, else 4 a broken run, else 0.

    ``alarms``: :func:`alarms`' result; ``broken_runs`` and
    ``invalid_setup``: a count, a list or a flag (anything truthy counts).
    """
    if invalid_setup:
        return EXIT_INVALID_SETUP
    if any(not a["acked"] for a in alarms):
        return EXIT_REGRESSION
    if broken_runs:
        return EXIT_BROKEN_RUN
    return EXIT_OK


# ---------------------------------------------------------------- CLI

def _fmt(v, digits=3):
    return "-" if v is None else f"{v:.{digits}f}"


def _table(header, rows):
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


def _alarm_line(a):
    sign = lambda v: f"{v:+.2f} %"  # noqa: E731
    noise = f", noise CV {a['noise_cv_pct']:.2f} %" if a["noise_cv_pct"] is not None else ""
    commits = "..".join((c or "unknown")[:12] for c in a["commits"])
    state = f"acked: {a['ack_reason']}" if a["acked"] else "OPEN"
    commits += "; the settings fingerprint changed between these nights" if a["settings_changed"] else ""
    return (f"{state}: {a['host']} {a['variant']} {a['metric']} {sign(a['change_pct'])} vs the reference"
            f" (limit {a['limit_pct']:.2f} %{noise}) for {len(a['nights'])} night(s) since {a['first_bad']}"
            f" ({a['first_bad_date']}); last good {a['last_good']} ({a['last_good_date']}); commits {commits}"
            + (f"\n  {a['link']}" if a.get("link") else ""))


def _handler(args):
    from . import index

    acks = load_acks(args.ack) if args.ack else []
    note = []
    try:
        built = index.build(args.results_dir)
        note = [f"note: {index.dropped_line(built)}"] * bool(built["dropped"])
    except PermissionError as e:  # a read-only results folder: read the index as it is
        if not os.path.isfile(os.path.join(args.results_dir, index.INDEX_NAME)):
            raise
        note = [f"note: index not updated ({e.strerror}); showing it as it is"]
    metrics = [args.metric] if args.metric else list(DEFAULT_METRICS)
    all_series = load(args.results_dir, args.host, args.variant, metrics)
    opts = {"window": args.window, "threshold_pct": args.threshold_pct, "noise_k": args.noise_k,
            "min_history": args.min_history}
    found = alarms(all_series, persist=args.persist, acks=acks, **opts)
    if args.annotate:  # wanbench.bisect.annotate: the bisect command, or the culprit once bisected
        found = args.annotate(found, args.results_dir)
    verdicts = ["fail" for a in found if not a["acked"]]
    if args.json:
        return [], json.dumps({"series": all_series, "alarms": found}, indent=2), verdicts
    if not all_series:
        return [], "\n\n".join([f"{args.results_dir}: no judged runs for that selection", *note]), verdicts
    blocks = []
    for s in all_series:
        verdict = judge(s["nights"], s["metric"], **opts)
        rows = [[n["night"], n["date"] or "-", (n["commit"] or "-")[:12], n["n"], _fmt(n["median"]),
                 _fmt(n["cv_pct"], 2), "-" if v["change_pct"] is None else f"{v['change_pct']:+.2f}", v["state"]]
                for n, v in zip(s["nights"], verdict)]
        blocks.append(f"{s['host']} / {s['variant']} / {s['metric']}\n" + _table(
            ["night", "date", "commit", "n", "median", "CV %", "vs ref %", "state"], rows))
    blocks.append("\n".join(map(_alarm_line, found)) if found else "no open alarms")
    blocks += note
    return [], "\n\n".join(blocks), verdicts


def _positive(kind):
    def check(text):
        import argparse

        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not value >= (1 if kind is int else 0):
            raise argparse.ArgumentTypeError(f"must be >= {1 if kind is int else 0}, got {text}")
        return value
    return check


def add_cli(subparsers, annotate=None):
    """Add ``history RESULTS_DIR [--host H] [--variant V] [--metric M] [--ack FILE]`` to argparse subparsers.

    ``annotate(alarms, results_dir)``: adds to each alarm what a line shows after it (``link``).
    """
    p = subparsers.add_parser("history", help="series over nights and open regression alarms")
    p.add_argument("results_dir", metavar="RESULTS_DIR")
    p.add_argument("--host", metavar="H")
    p.add_argument("--variant", metavar="V")
    p.add_argument("--metric", metavar="M", choices=METRICS,
                   help=f"one metric (default: {', '.join(DEFAULT_METRICS)})")
    p.add_argument("--ack", metavar="FILE", help="YAML/JSON list of {host, variant, metric, until, reason}")
    p.add_argument("--window", type=_positive(int), default=WINDOW, metavar="W",
                   help=f"reference nights (default {WINDOW})")
    p.add_argument("--persist", type=_positive(int), default=PERSIST, metavar="K",
                   help=f"consecutive bad nights before an alarm (default {PERSIST})")
    p.add_argument("--threshold-pct", type=_positive(float), default=THRESHOLD_PCT, metavar="X",
                   help=f"smallest change that can alarm, in %% (default {THRESHOLD_PCT})")
    p.add_argument("--noise-k", type=_positive(float), default=NOISE_K, metavar="k",
                   help=f"alarm beyond k x the noise CV (default {NOISE_K})")
    p.add_argument("--min-history", type=_positive(int), default=MIN_HISTORY, metavar="N",
                   help=f"reference nights needed to judge a night (default {MIN_HISTORY})")
    p.add_argument("--json", action="store_true", help="print the series and alarms as JSON")
    p.add_argument("--check", action="store_true", help="exit 1 when an alarm is open and not acked")
    p.set_defaults(func=_handler, annotate=annotate)
    return p
