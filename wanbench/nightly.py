"""The night's summary and exit code, and the scheduled entry that drives the nightly play.

``wanbench nightly-summary RESULTS_DIR --play P ... [--host H ...] [--dropped H ...]``
(the last play of ``playbooks/nightly.yml``) brings the index up to date,
judges the history and prints one line for the night, which it also appends
to ``RESULTS_DIR/nightly.log``; the open alarms follow, one a line.  It exits
with :func:`wanbench.history.exit_code`'s code: 0 ok, 2 invalid setup
(nothing was measured), 3 regression (an open alarm that is not acked), 4
broken run (a run that did not finish cleanly, or a host that dropped out).

Only tonight's series can alarm: a series whose last night is not one of
tonight's plays (a variant that left the matrix, a host that dropped out) is
not judged again.  Acks come from ``--ack FILE``, else ``RESULTS_DIR/acks.yml``
when it exists (docs/history.md).

``wanbench nightly [--matrix NAME] [--inventory INV] [-e KEY=VALUE ...]`` is
the scheduled entry (playbooks/schedule.yml): it runs the nightly play through
ansible-runner in a fresh private data dir, reads the summary from the
runner's events (not from scraped output) and exits with the night's code.
When the play ends before its summary (bad inputs, every host unreachable) it
writes the summary line itself: invalid setup, with the first failure.
"""

from __future__ import annotations

import os
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from . import history, index

LOG_NAME = "nightly.log"
ACKS_NAME = "acks.yml"
SUMMARY_TASK = "Sum up the night"
MEANING = {history.EXIT_OK: "ok", history.EXIT_INVALID_SETUP: "invalid setup",
           history.EXIT_REGRESSION: "regression", history.EXIT_BROKEN_RUN: "broken run"}


def summarize(results_dir, plays, hosts=(), dropped=(), matrix="", acks=None, now=None):
    """Judge tonight: {code, meaning, line, alarms, broken, runs, dropped}.

    ``plays``: tonight's play ids (one a host); ``hosts``: every host meant
    to run (default: those of the plays); ``dropped``: hosts that left the
    play (unreachable or failed).  ``acks``: history.load_acks' entries.
    """
    results_dir = os.fspath(results_dir)
    index.build(results_dir)
    plays = [p for p in dict.fromkeys(plays) if p]
    tonight = [r for p in plays for r in index.runs(results_dir, night=p)]
    measured = sorted({r["host"] for r in tonight})
    hosts = list(dict.fromkeys([*hosts, *measured]))
    dropped = [h for h in dict.fromkeys(dropped) if h]
    broken = [b for p in plays for b in index.broken_runs(results_dir, night=p)]
    found = []
    for h in measured:
        for a in history.alarms(history.load(results_dir, host=h), acks=acks or []):
            if a["nights"][-1]["night"] in plays:
                found.append(a)
    invalid = not tonight
    code = history.exit_code(found, broken + [{"host": h} for h in dropped], invalid)
    open_, acked = [a for a in found if not a["acked"]], [a for a in found if a["acked"]]
    parts = [f"{len(measured)}/{len(hosts) or len(measured)} host(s) measured",
             f"{len(tonight)} run(s)", f"{len(broken)} broken"]
    if broken:
        parts[-1] += " (" + ", ".join(f"{b['host']} {b['variant']}: {b['why']}" for b in broken[:3]) + \
            (f", {len(broken) - 3} more" if len(broken) > 3 else "") + ")"
    if dropped:
        parts.append("dropped out: " + ", ".join(dropped))
    parts.append(f"alarms: {len(open_)} open, {len(acked)} acked")
    if open_:
        parts[-1] += " (" + ", ".join(f"{a['host']} {a['variant']} {a['metric']} {a['change_pct']:+.1f} %"
                                      for a in open_) + ")"
    parts.append("plays " + (", ".join(plays) if plays else "none"))
    line = _head(code, matrix, now) + "; ".join(parts)
    return {"code": code, "meaning": MEANING[code], "line": line, "alarms": found, "broken": broken,
            "runs": len(tonight), "dropped": dropped}


def _head(code, matrix, now=None):
    """The start of a night's line: ``2026-11-27 nightly ci: exit 4 (broken run); ``."""
    day = (now or datetime.now(timezone.utc)).strftime("%Y-%m-%d")
    return f"{day} nightly{' ' + matrix if matrix else ''}: exit {code} ({MEANING[code]}); "


def append_log(results_dir, line):
    """Append one summary line to RESULTS_DIR/nightly.log (one write, so concurrent lines never interleave)."""
    os.makedirs(results_dir, exist_ok=True)
    fd = os.open(os.path.join(results_dir, LOG_NAME), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line.rstrip("\n") + "\n").encode())
    finally:
        os.close(fd)


def _acks(results_dir, path):
    if path:
        return history.load_acks(path)
    default = os.path.join(results_dir, ACKS_NAME)
    return history.load_acks(default) if os.path.isfile(default) else []


def _summary_handler(args):
    out = summarize(args.results_dir, args.play or [], args.host or [], args.dropped or [], args.matrix,
                    _acks(args.results_dir, args.ack))
    append_log(args.results_dir, out["line"])
    args.exit_code = out["code"]
    return [], "\n".join([out["line"], *map(history._alarm_line, out["alarms"])]), []


# ---------------------------------------------------------------- the scheduled entry

def _first_failure(events):
    for e in events:
        if e.get("event") in ("runner_on_failed", "runner_on_unreachable") and not e["event_data"].get("ignore_errors"):
            res = e["event_data"].get("res", {})
            msg = str(res.get("msg") or res.get("stderr") or "failed").strip().splitlines()
            return f"{e['event_data'].get('host', '?')}: {e['event_data'].get('task', '?')}: {msg[0] if msg else 'failed'}"
    return None


def summary_from_events(events):
    """(code, text) of the summary task in ansible-runner events, or None when the play never got there."""
    for e in events:
        data = e.get("event_data", {})
        if e.get("event") in ("runner_on_ok", "runner_on_failed") and data.get("task") == SUMMARY_TASK:
            res = data.get("res", {})
            if isinstance(res.get("rc"), int) and res.get("stdout"):
                return res["rc"], res["stdout"]
    return None


def run(checkout, matrix, inventory, results_dir, extravars=None, data_dir=None, quiet=False):
    """Run playbooks/nightly.yml through ansible-runner; (code, summary text)."""
    import ansible_runner

    checkout = Path(checkout).resolve()
    playbook = checkout / "playbooks" / "nightly.yml"
    if not playbook.is_file():
        raise ValueError(f"{checkout}: not a wanbench checkout (no playbooks/nightly.yml); pass --checkout DIR")
    inv = Path(inventory) if os.path.isabs(inventory) else checkout / inventory
    if not inv.exists():
        raise ValueError(f"{inventory}: no such inventory (relative paths are under {checkout})")
    extravars = {**(extravars or {}), "matrix": matrix}
    if results_dir:
        extravars["wanbench_results_dir"] = os.path.abspath(results_dir)
    results = extravars.get("wanbench_results_dir") or str(checkout / "results")
    bindir = os.path.dirname(sys.executable)
    env = {"ANSIBLE_CONFIG": str(checkout / "ansible.cfg"), "ANSIBLE_FORCE_COLOR": "0",
           "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}"}
    with tempfile.TemporaryDirectory(prefix="wanbench-nightly-", dir=data_dir) as pdd:
        r = ansible_runner.run(private_data_dir=pdd, project_dir=str(checkout), playbook=str(playbook),
                               inventory=str(inv), extravars=extravars, envvars=env, quiet=quiet)
        events = list(r.events)
        status, rc = r.status, r.rc
    found = summary_from_events(events)
    if found:
        return found
    why = _first_failure(events) or f"ansible-runner {status}, rc {rc}"
    line = _head(history.EXIT_INVALID_SETUP, matrix) + f"the play ended before its summary: {why}"
    append_log(results, line)
    return history.EXIT_INVALID_SETUP, line


def _extra(text):
    """-e KEY=VALUE (a string) or -e @FILE (a YAML or JSON mapping): a dict of extra vars."""
    import argparse

    if text.startswith("@"):
        import yaml

        try:
            with open(text[1:], encoding="utf-8") as fh:
                data = yaml.safe_load(fh)
        except OSError as e:
            raise argparse.ArgumentTypeError(f"{text[1:]}: {e.strerror}") from None
        except yaml.YAMLError:
            raise argparse.ArgumentTypeError(f"{text[1:]}: not YAML or JSON") from None
        except ValueError as e:  # a YAML value that is no value, e.g. the date 2026-13-45
            raise argparse.ArgumentTypeError(f"{text[1:]}: a value YAML cannot read ({e})") from None
        if not isinstance(data, dict):
            raise argparse.ArgumentTypeError(f"{text[1:]}: expected a mapping of extra vars")
        return data
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE or @FILE, got {text!r}")
    return {key: value}


def _run_handler(args):
    extra = {}
    for e in args.extra or []:
        extra.update(e)
    code, text = run(args.checkout, args.matrix, args.inventory, args.results, extra, quiet=args.quiet)
    args.exit_code = code
    return [], text, []


def add_cli(subparsers):
    """Add ``nightly-summary`` (the play's last step) and ``nightly`` (the scheduled entry) to argparse subparsers."""
    p = subparsers.add_parser("nightly-summary", help="index, judge and sum up tonight's plays in one line")
    p.add_argument("results_dir", metavar="RESULTS_DIR")
    p.add_argument("--play", action="append", metavar="P", help="a play id of tonight (repeat it)")
    p.add_argument("--host", action="append", metavar="H", help="a host meant to run tonight (repeat it)")
    p.add_argument("--dropped", action="append", metavar="H", help="a host that dropped out (repeat it)")
    p.add_argument("--matrix", default="", metavar="NAME", help="the matrix, named in the summary line")
    p.add_argument("--ack", metavar="FILE", help=f"ack file (default: RESULTS_DIR/{ACKS_NAME} when present)")
    p.set_defaults(func=_summary_handler)

    p = subparsers.add_parser("nightly", help="run the nightly play through ansible-runner; exit with the night's code")
    p.add_argument("--matrix", default="nightly", metavar="NAME", help="matrix of wanbench_matrices (default nightly)")
    p.add_argument("--inventory", default="inventory/production", metavar="INV",
                   help="inventory, relative to the checkout (default inventory/production)")
    p.add_argument("--results", metavar="DIR", help="results folder (default: the inventory's wanbench_results_dir)")
    p.add_argument("--checkout", default=str(Path(__file__).resolve().parents[1]), metavar="DIR",
                   help="the wanbench checkout (default: the one this package lives in)")
    p.add_argument("-e", "--extra", action="append", type=_extra, metavar="KEY=VALUE|@FILE",
                   help="extra vars: KEY=VALUE or @FILE (YAML/JSON mapping); repeat it")
    p.add_argument("--quiet", action="store_true", help="do not echo the play's output")
    p.set_defaults(func=_run_handler)
