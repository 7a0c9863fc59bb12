"""The ``wanbench`` command: parse, compare and report Wan2.1 benchmark runs.

Exit codes: 0 done; 1 only with ``--check`` when a verdict is fail or
invalid; 2 bad usage or an unreadable input (one line on stderr each).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import pandas as pd

from . import report
from .compare import NOISE_PCT, RESERVED_TOLERANCE_PCT, compare
from .parse import METRICS, parse_file, parse_run


def _non_negative(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _parser():
    parser = argparse.ArgumentParser(prog="wanbench", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def thresholds(p):
        p.add_argument("--noise-pct", type=_non_negative, default=NOISE_PCT, metavar="X",
                       help=f"request_total noise threshold in %% (default {NOISE_PCT})")
        p.add_argument("--reserved-tolerance-pct", type=_non_negative, default=RESERVED_TOLERANCE_PCT,
                       metavar="Y", help=f"reserved_peak tolerance in %% (default {RESERVED_TOLERANCE_PCT})")
        p.add_argument("--check", action="store_true",
                       help="exit 1 when any verdict is fail or invalid")

    p = sub.add_parser("parse", help="parse logs, profile files, time files or run directories")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--json", action="store_true", help="print a JSON list, one object per file")
    p.add_argument("--block", type=int, metavar="N",
                   help="block of an appended profile file (0-based, negative from the end;"
                        " default: the last complete one)")

    p = sub.add_parser("compare", help="judge candidate runs against a baseline")
    p.add_argument("--baseline", required=True, metavar="PATH")
    p.add_argument("candidates", nargs="+", metavar="CANDIDATE")
    p.add_argument("--json", action="store_true", help="print a JSON list, one object per candidate")
    thresholds(p)

    p = sub.add_parser("report", help="render the raw and percent-change tables")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--baseline", metavar="PATH")
    p.add_argument("--format", choices=report.FORMATS, default="md")
    p.add_argument("--out", metavar="DIR", help="write report.md, report.csv and report.json here")
    thresholds(p)
    return parser


def _table(columns):
    """A plain text table, one column per (header, {row name: cell}); headers may repeat."""
    headers, cells = zip(*columns)
    return pd.DataFrame(list(cells), index=list(headers)).T.to_markdown(tablefmt="simple", disable_numparse=True)


def _parse(args):
    results = [parse_run(f) if os.path.isdir(f) else parse_file(f, block=args.block)
               for f in args.files]
    if args.json:
        return results, json.dumps(results, indent=2), []
    table = _table([(r["path"], {"kind": r["kind"] or "", "status": r["status"], "reason": r["reason"],
                                 **{m: report.fmt_value(m, r["metrics"][m]) for m in METRICS}})
                    for r in results])
    notes = [f"{r['path']}: warning: {w}" for r in results for w in r["warnings"]]
    return results, "\n".join([table, *notes]), []


def _compare(args):
    baseline = parse_run(args.baseline)
    runs = [parse_run(c) for c in args.candidates]
    results = [compare(baseline, r, args.noise_pct, args.reserved_tolerance_pct) for r in runs]
    verdicts = [r["verdict"] for r in results]
    if args.json:
        return [baseline, *runs], json.dumps(results, indent=2), verdicts
    table = _table([(r["candidate"], {**{m: report.fmt_pct(r["diff_pct"][m]) for m in METRICS},
                                      "verdict": r["verdict"]}) for r in results])
    lines = [f"% change vs {results[0]['baseline']}", table]
    for r in results:
        lines += ["", f"{r['candidate']}: {r['verdict']}", *[f"  - {why}" for why in r["reasons"]]]
    return [baseline, *runs], "\n".join(lines), verdicts


def _report(args):
    runs = [parse_run(p) for p in args.paths]
    baseline = parse_run(args.baseline) if args.baseline else None
    data = report.build(runs, baseline, args.noise_pct, args.reserved_tolerance_pct)
    if args.out:
        text = "\n".join(report.write(data, args.out).values())
    else:
        text = report.render(data, args.format).rstrip("\n")
    verdicts = [r["verdict"] for r in data["rows"] if r["verdict"] not in (None, "baseline")]
    return runs + ([baseline] if baseline else []), text, verdicts


_COMMANDS = {"parse": _parse, "compare": _compare, "report": _report}


def _error(message):
    print(f"wanbench: {message}", file=sys.stderr)


def main(argv=None):
    args = _parser().parse_args(argv)
    try:
        inputs, text, verdicts = _COMMANDS[args.command](args)
    except OSError as e:
        _error(f"{e.filename}: {e.strerror}" if e.filename else e)
        return 2
    except ValueError as e:
        _error(e)
        return 2
    print(text)
    unreadable = [r for r in inputs if r["status"] == "unreadable"]
    for r in unreadable:
        _error(f"{r['path']}: {r['reason']}")
    if unreadable:
        return 2
    return 1 if getattr(args, "check", False) and {"fail", "invalid"} & set(verdicts) else 0


if __name__ == "__main__":
    sys.exit(main())
