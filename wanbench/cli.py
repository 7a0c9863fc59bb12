"""The ``wanbench`` command: parse, compare and report Wan2.1 benchmark runs.

Exit codes: 0 done; 1 only with ``--check`` when a verdict is fail or
invalid; 2 bad usage or an unreadable input (one line on stderr each);
141 the reader closed the pipe (as a shell reports SIGPIPE).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from . import bisect, history, importer, index, inventory, judging, nightly, options, report, share
from .parse import METRICS, parse_file, parse_run


def _parser():
    parser = argparse.ArgumentParser(prog="wanbench", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def thresholds(p):
        options.add_sides(p)
        judging.add_arguments(p)

    p = sub.add_parser("parse", help="parse logs, profile files, time files or run directories")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--json", action="store_true", help="print a JSON list, one object per file")
    p.add_argument("--block", type=int, metavar="N",
                   help="block of an appended profile file (0-based, negative from the end;"
                        " default: the last complete one)")

    p = sub.add_parser("compare", help="judge candidate runs (grouped by variant) against the baseline runs")
    p.add_argument("candidates", nargs="+", metavar="CANDIDATE")
    p.add_argument("--json", action="store_true", help="print a JSON list, one object per candidate")
    thresholds(p)

    p = sub.add_parser("write-records", help="write [{dest, content}] JSON from stdin into run directories"
                                             " (the play's once-per-play capture and output scores)")
    p.add_argument("--under", required=True, metavar="DIR", help="every dest must lie below this folder")
    p = sub.add_parser("report", help="render the raw and percent-change tables")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--format", choices=report.FORMATS, default="md")
    p.add_argument("--out", metavar="DIR", help="write report.md, report.csv, report.json, summary.txt, share.md"
                                                " and report.html here (all or none)")
    thresholds(p)
    for module in (index, importer, share, inventory, nightly):
        module.add_cli(sub)  # index, import, share, validate, nightly, nightly-summary: handlers as args.func
    history.add_cli(sub, annotate=bisect.annotate)  # each alarm's bisect command or culprit (bisect reads history)
    return parser


def _table(columns):
    """A plain text table, one column per (header, {row name: cell}); headers may repeat."""
    import pandas as pd  # only where tables are built

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
    if not args.baseline:
        raise ValueError("compare needs --baseline PATH (repeat it for repeated baseline runs)")
    both = {os.path.realpath(p) for p in args.baseline} & {os.path.realpath(p) for p in args.candidates}
    if both:
        raise ValueError(f"{sorted(both)[0]} is given as a baseline and as a candidate: the same run")
    inputs, data = judging.judge(args, args.candidates)
    results = data["groups"]
    verdicts = [r["verdict"] for r in results]
    if args.json:
        return inputs, json.dumps(results, indent=2), verdicts
    table = _table([(r["variant"], {"n (base/cand)": f"{r['n']['baseline']}/{r['n']['candidate']}",
                                    **{m: report.fmt_pct(r["diff_pct"][m]) for m in METRICS},
                                    "95 % CI (request_total)": report.fmt_ci(r["ci_pct"]["request_total"])
                                    + (f" (Holm: {r['confidence'] * 100:.4g} %)" if r.get("family") else ""),
                                    "verdict": r["verdict"],
                                    "runs needed a side": str(r["runs_needed"] or "n/a")}) for r in results])
    lines = [f"% change vs {results[0]['baseline']}", table, ""] + report.summary(data).splitlines()
    for r in results:
        lines += ["", f"{r['variant']}: {r['verdict']}", *[f"  - {why}" for why in r["reasons"]],
                  *[f"  - excluded {e['role']} run {e['path']}: {e['why']}" for e in r["excluded"]]]
    return inputs, "\n".join(lines), verdicts


def _report(args):
    inputs, data = judging.judge(args, args.paths)
    if args.out:
        text = "\n".join(report.write(data, args.out, share.texts(data)).values())
    else:
        text = report.render(data, args.format).rstrip("\n")
    return inputs, text, [g["verdict"] for g in data["groups"]]


def _write_records(args):
    """Each record's file, written whole (a temporary name, then renamed); a dest outside --under is refused."""
    under = os.path.realpath(args.under)
    try:
        records = json.load(sys.stdin)
    except json.JSONDecodeError as e:
        raise ValueError(f"write-records: stdin is not JSON ({e})") from None
    if not isinstance(records, list) or not all(isinstance(r, dict) and isinstance(r.get("dest"), str)
                                                and "content" in r for r in records):
        raise ValueError("write-records: expected a JSON list of {dest, content}")
    dests = [os.path.realpath(r["dest"]) for r in records]
    for r, dest in zip(records, dests):
        if not dest.startswith(under + os.sep):
            raise ValueError(f"write-records: {r['dest']} is not below {args.under}")
    for r, dest in zip(records, dests):
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        content = r["content"]  # text as it is; anything else as JSON
        report.write_atomic(dest, content if isinstance(content, str) else json.dumps(content, indent=2) + "\n")
    return [], f"{len(records)} file(s) written", []


_COMMANDS = {"parse": _parse, "compare": _compare, "report": _report, "write-records": _write_records}


def _error(message):
    for line in str(message).splitlines() or [""]:
        print(f"wanbench: {line}", file=sys.stderr)


EXIT_PIPE = 128 + 13  # what a shell reports for a command killed by SIGPIPE


def main(argv=None):
    """Run one command; a reader that closed the pipe (``wanbench history | head``) ends it quietly."""
    try:
        try:
            code = _main(argv)
        finally:  # also after --help (SystemExit): a closed pipe shows here, not at the interpreter's exit
            sys.stdout.flush()
    except BrokenPipeError:
        # nothing more can reach the reader; point stdout at /dev/null so the exit's flush is silent
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_PIPE
    return code


def _main(argv):
    args = _parser().parse_args(argv)
    try:
        inputs, text, verdicts = (getattr(args, "func", None) or _COMMANDS[args.command])(args)
    except BrokenPipeError:
        raise
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
    if getattr(args, "exit_code", None) is not None:  # nightly, nightly-summary: the night's code
        return args.exit_code
    return 1 if getattr(args, "check", False) and {"fail", "invalid"} & set(verdicts) else 0


if __name__ == "__main__":
    sys.exit(main())
