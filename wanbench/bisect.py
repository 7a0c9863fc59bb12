"""Bisect a regression to its commit (playbooks/bisect.yml; docs/bisect.md).

The play measures one commit at a time against the known-good commit, in
interleaved blocks with the adaptive repeats and the play's own verdict
(``schedule.schedule``, ``compare``); this module decides what a step's
verdict means for the search, which commit to measure next, and keeps the
bisect's record, so that a second invocation over the same range reuses what
is measured.

A step is **bad** when the candidate's request_total is slower than the good
commit's with the 95 % interval above 0 and the change at or beyond the
threshold (the verdict ``fail`` of that rule); **good** when the interval's
upper end lies below the threshold (the commit cannot hold a regression of
that size); anything else (an interval that straddles the threshold, an
invalid verdict) is **undecided**: the search stops there and says which
range remains.

The search assumes ``good`` good and ``bad`` bad (the alarm's evidence) and
halves the commits between them; when the range has shrunk to one commit
that was never measured (``bad`` itself) it measures it too, so that the
culprit always comes with its own evidence.  Steps: at most
ceil(log2(commits)) + 1.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import tempfile

SHA = re.compile(r"^[0-9a-f]{7,40}$")
RECORD_DIR = "bisect"  # <results>/<host>/bisect/<variant>-<good12>-<bad12>.json


class BisectError(ValueError):
    """A bisect input is wrong; the message names it."""


# ---------------------------------------------------------------- inputs

def check_sha(name, value):
    """A commit given with -e: hex, 7 to 40 characters (a ref name would move under the search)."""
    text = str(value or "").strip().lower()
    if not SHA.match(text):
        raise BisectError(f"{name}={value!r}: expected a commit SHA (7 to 40 hex digits)")
    return text


def commits_from_log(text):
    """[{sha, subject}] from ``git log --reverse --format='%H %s' GOOD..BAD`` (oldest first)."""
    out = []
    for line in str(text or "").splitlines():
        if line.strip():
            sha, _, subject = line.strip().partition(" ")
            out.append({"sha": sha, "subject": subject})
    return out


def start_state(text):
    """{branch, head, dirty, good, good_subject, bad} from the play's read of the repository (key=value lines)."""
    out = {"branch": "", "head": "", "dirty": "", "good": "", "good_subject": "", "bad": ""}
    for line in str(text or "").splitlines():
        key, sep, value = line.partition("=")
        if sep and key in ("branch", "head", "dirty", "bad"):
            out[key] = value.strip()
        elif sep and key == "good":
            out["good"], _, out["good_subject"] = value.strip().partition(" ")
    return out


def record_path(results_dir, host, variant, good, bad):
    """Where the bisect of (host, variant, good..bad) keeps its record."""
    return os.path.join(str(results_dir), str(host), RECORD_DIR, f"{variant}-{good[:12]}-{bad[:12]}.json")


def load_record(path):
    """The stored record, or a fresh one when there is none; a broken one is one line naming the file."""
    try:
        with open(path, encoding="utf-8") as fh:
            record = json.load(fh)
    except FileNotFoundError:
        return {"measured": {}}
    except (OSError, json.JSONDecodeError) as e:
        raise BisectError(f"{path}: not a readable bisect record ({e}); move it away to start the bisect afresh") from None
    if not isinstance(record, dict) or not isinstance(record.get("measured"), dict):
        raise BisectError(f"{path}: not a bisect record (no 'measured' map); move it away to start afresh")
    return record


def save_record(path, record):
    """Write the record atomically (a reader never sees half of it)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".bisect.", suffix=".tmp", dir=os.path.dirname(path))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(record, fh, indent=2, sort_keys=True)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


# ---------------------------------------------------------------- one step

def classify(result, threshold_pct):
    """(state, why) of one step's verdict (compare's result for the candidate commit against good)."""
    if not isinstance(result, dict):
        return "undecided", "no verdict"
    ci = (result.get("ci_pct") or {}).get("request_total")
    change = (result.get("diff_pct") or {}).get("request_total")
    if result.get("verdict") == "invalid":
        why = next((r for r in result.get("reasons") or [] if "not comparable" in r or "invalid" in r), "invalid verdict")
        return "undecided", f"invalid: {why}"
    if not ci or change is None:
        return "undecided", "no interval for request_total"
    lo, hi = ci
    if lo > 0 and change >= threshold_pct:
        return "bad", f"slower: interval {lo:+.2f} .. {hi:+.2f} % above 0, change at or beyond {threshold_pct:g} %"
    if hi < threshold_pct:
        return "good", f"interval {lo:+.2f} .. {hi:+.2f} % below the {threshold_pct:g} % threshold"
    return "undecided", f"interval {lo:+.2f} .. {hi:+.2f} % straddles the {threshold_pct:g} % threshold"


def add_step(record, sha, subject, result, runs, threshold_pct, play=""):
    """The record with one measured commit added: its state, evidence and run directories."""
    state, why = classify(result, threshold_pct)
    res = result if isinstance(result, dict) else {}
    entry = {"sha": sha, "subject": subject, "state": state, "why": why, "verdict": res.get("verdict"),
             "change_pct": (res.get("diff_pct") or {}).get("request_total"),
             "ci_pct": (res.get("ci_pct") or {}).get("request_total"), "n": res.get("n"),
             "threshold_pct": threshold_pct, "runs": list(runs), "play": play}
    return {**record, "measured": {**record.get("measured", {}), sha: entry}}


# ---------------------------------------------------------------- the search

def max_steps(n_commits):
    """ceil(log2(n)) + 1: the halving plus the measurement of ``bad`` itself."""
    return math.ceil(math.log2(n_commits)) + 1 if n_commits > 1 else 1


def search(commits, measured, threshold_pct=None, play=None):
    """Where the search stands: {done, next, culprit, undecided, range, steps, outcome}.

    ``commits``: the commits after good up to bad, oldest first; ``measured``:
    {sha: entry} (the record's).  An entry measured at another threshold than
    ``threshold_pct`` is measured again, and so is an undecided one of
    another play than ``play`` (a new invocation, perhaps with more runs).  outcome: ``culprit`` (the first bad
    commit, with its evidence), ``undecided`` (a step stayed undecided at its
    budget: ``range`` remains), ``not-reproduced`` (bad measured good: the
    range holds no regression of that size) or ``searching``.
    """
    if not commits:
        raise BisectError("no commits between good and bad: is good an ancestor of bad?")
    usable = {s: e for s, e in (measured or {}).items()
              if (threshold_pct is None or e.get("threshold_pct") == threshold_pct)
              and (play is None or e.get("state") != "undecided" or e.get("play") == play)}
    lo, hi = -1, len(commits) - 1  # lo: last known good (-1 = good itself); hi: first known or assumed bad
    steps = sum(1 for c in commits if c["sha"] in usable)
    while True:
        if hi - lo == 1:
            top = commits[hi]
            entry = usable.get(top["sha"])
            if entry is None:
                return _state("searching", commits, lo, hi, steps, nxt=top)
            if entry["state"] == "bad":
                return _state("culprit", commits, lo, hi, steps, culprit={**top, **entry})
            if entry["state"] == "good":
                return _state("not-reproduced", commits, lo, hi, steps)
            return _state("undecided", commits, lo, hi, steps, undecided={**top, **entry})
        mid = (lo + hi + 1) // 2
        entry = usable.get(commits[mid]["sha"])
        if entry is None:
            return _state("searching", commits, lo, hi, steps, nxt=commits[mid])
        if entry["state"] == "bad":
            hi = mid
        elif entry["state"] == "good":
            lo = mid
        else:
            return _state("undecided", commits, lo, hi, steps, undecided={**commits[mid], **entry})


def _state(outcome, commits, lo, hi, steps, nxt=None, culprit=None, undecided=None):
    first_good = commits[lo]["sha"] if lo >= 0 else None
    return {"outcome": outcome, "done": outcome != "searching", "next": nxt, "culprit": culprit,
            "undecided": undecided, "steps": steps, "max_steps": max_steps(len(commits)),
            "range": {"good": first_good, "bad": commits[hi]["sha"],
                      "commits": [c["sha"] for c in commits[lo + 1: hi + 1]]}}


# ---------------------------------------------------------------- text

def _short(sha):
    return (sha or "good")[:12]


def _evidence(e):
    ci = e.get("ci_pct")
    n = e.get("n") or {}
    change = "n/a" if e.get("change_pct") is None else f"{e['change_pct']:+.2f} %"
    interval = "n/a" if not ci else f"{ci[0]:+.2f} .. {ci[1]:+.2f} %"
    return (f"request_total {change} (95 % CI {interval}), runs {n.get('baseline', '?')} good /"
            f" {n.get('candidate', '?')} candidate")


def step_line(entry):
    """One measured commit in one line: state, commit, subject, evidence."""
    return f"{entry['state']:9} {_short(entry['sha'])} {entry['subject']}: {_evidence(entry)}; {entry['why']}"


def text(state, commits, measured, good, good_subject=""):
    """The bisect's transcript: the range with its subjects, each measured step, the outcome."""
    lines = [f"bisect of {len(commits)} commit(s) after good {_short(good)} {good_subject}".rstrip()
             + f" (at most {state['max_steps']} steps; {state['steps']} measured):"]
    for c in commits:
        e = measured.get(c["sha"])
        lines.append(f"  {step_line(e)}" if e else f"  {'-':9} {_short(c['sha'])} {c['subject']}")
    rng = state["range"]
    remain = f"{_short(rng['good'])}..{_short(rng['bad'])} ({len(rng['commits'])} commit(s))"
    if state["outcome"] == "culprit":
        c = state["culprit"]
        lines.append(f"first bad commit: {c['sha']} {c['subject']}: {_evidence(c)}")
    elif state["outcome"] == "undecided":
        u = state["undecided"]
        lines.append(f"undecided at {_short(u['sha'])} {u['subject']} ({u['why']}); the culprit lies in {remain}:"
                     f" measure again with more runs (-e max_runs=N) or a larger threshold")
    elif state["outcome"] == "not-reproduced":
        lines.append(f"not reproduced: bad {_short(rng['bad'])} measured good against {_short(good)}; no regression"
                     f" of that size in the range")
    else:
        nxt = state["next"]
        lines.append(f"the culprit lies in {remain}; next: {_short(nxt['sha'])} {nxt['subject']}")
    return "\n".join(lines)


# ---------------------------------------------------------------- the steps' schedule

def arms(resolved, sha):
    """The control arm (the variant at good) and the candidate arm (the same variant at ``sha``).

    Both arms run the same settings (same fingerprint): only the commit differs.
    """
    control = {**resolved, "family_baseline": resolved["variant"], "bisect_commit": "good"}
    candidate = {**resolved, "variant": f"{resolved['variant']}@{sha[:12]}", "aa": True, "bisect_commit": sha}
    return {"variants": [control, candidate], "controls": {f"{resolved['family']}:{resolved['mode']}": control},
            "warnings": []}


# ---------------------------------------------------------------- alarms

def alarm_id(alarm):
    """A short, stable id of an alarm: its host, variant, metric and first bad night."""
    key = "|".join(str(alarm.get(k)) for k in ("host", "variant", "metric", "first_bad"))
    return hashlib.sha256(key.encode()).hexdigest()[:8]


def bisect_command(alarm):
    """The command that would pin an alarm's regression to its commit."""
    return f"ansible-playbook playbooks/bisect.yml -e alarm={alarm_id(alarm)}"


def culprit_of(results_dir, alarm):
    """The culprit a finished bisect of the alarm's range found ({sha, subject, ...}), or None."""
    good, bad = alarm.get("commits") or [None, None]
    if not good or not bad:
        return None
    path = record_path(results_dir, alarm["host"], alarm["variant"], good, bad)
    try:
        record = load_record(path)
    except BisectError:
        return None
    return record.get("culprit")


def annotate(alarms, results_dir):
    """Each alarm with its id, the bisect command that would pin it, after a bisect its culprit, and ``link``:
    the line an alarm shows (history, share)."""
    out = [{**a, "id": alarm_id(a), "bisect": bisect_command(a), "culprit": culprit_of(results_dir, a)}
           for a in alarms]
    return [{**a, "link": link_text(a)} for a in out]


def link_text(alarm):
    """What an alarm line adds: the culprit once bisected, else the command that would find it."""
    c = alarm.get("culprit")
    if c:
        return f"culprit {c['sha'][:12]} {c['subject']} (bisected: {_evidence(c)})"
    return f"bisect: {alarm.get('bisect') or bisect_command(alarm)}"


def target(results_dir, alarm=None, good=None, bad=None, variant=None, metric="request_total"):
    """{good, bad, variant, host, threshold_pct, alarm}: from -e good/bad/variant, or from an alarm id.

    An alarm's range is (last good night's commit, first bad night's commit);
    its threshold is half its change (a commit that explains less than half of
    the regression is not the one that caused it).
    """
    if alarm:
        from . import history, index

        index.build(results_dir)
        found = [a for a in history.alarms(history.load(results_dir, metrics=(metric,)))
                 if alarm_id(a) == str(alarm).strip()]
        if not found:
            raise BisectError(f"alarm={alarm!r}: no open alarm with that id in {results_dir}"
                              f" (wanbench history {results_dir} lists them)")
        a = found[0]
        if not all(a["commits"]):
            raise BisectError(f"alarm={alarm!r}: its nights have no commit recorded; give -e good=SHA -e bad=SHA")
        return {"good": a["commits"][0], "bad": a["commits"][1], "variant": a["variant"], "host": a["host"],
                "threshold_pct": round(abs(a["change_pct"]) / 2, 2), "alarm": alarm_id(a)}
    if not variant:
        raise BisectError("bisect needs -e good=SHA -e bad=SHA -e variant=NAME, or -e alarm=ID (wanbench history)")
    return {"good": check_sha("good", good), "bad": check_sha("bad", bad), "variant": str(variant), "host": "",
            "threshold_pct": None, "alarm": ""}
