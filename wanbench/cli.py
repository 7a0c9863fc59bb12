"""The ``wanbench`` command: parse, compare and report Wan2.1 benchmark runs.

Exit codes: 0 done; 1 only with ``--check`` when a verdict is fail or
invalid; 2 bad usage or an unreadable input (one line on stderr each).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from . import devices, history, importer, index, inventory, nightly, report, share, store
from .compare import RESERVED_TOLERANCE_PCT, THRESHOLD_PCT
from .parse import METRICS, parse_file, parse_run
from .stats import CONFIDENCE, MIN_NOISE_DF


def _non_negative(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _fraction(text):
    value = _non_negative(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def _parser():
    parser = argparse.ArgumentParser(prog="wanbench", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def thresholds(p):
        p.add_argument("--baseline", action="append", metavar="PATH",
                       help="a baseline run; repeat it for repeated runs (all form the baseline side)")
        p.add_argument("--threshold-pct", "--noise-pct", dest="threshold_pct", type=_non_negative,
                       default=THRESHOLD_PCT, metavar="X",
                       help=f"smallest request_total change that counts, in %% (default {THRESHOLD_PCT})")
        p.add_argument("--reserved-tolerance-pct", type=_non_negative, default=RESERVED_TOLERANCE_PCT,
                       metavar="Y", help=f"reserved_peak tolerance in %% (default {RESERVED_TOLERANCE_PCT})")
        p.add_argument("--noise-store", metavar="DIR",
                       help="the host's run directories (results/<host>): its stored runs with the baseline's"
                            " settings give the noise when a side has one run")
        p.add_argument("--noise-cv-pct", type=_non_negative, metavar="CV",
                       help="prior request_total noise (CV in %%) when a side has one run and no stored noise")
        p.add_argument("--confidence", type=_fraction, default=CONFIDENCE, metavar="C",
                       help=f"level of the request_total interval (default {CONFIDENCE}); the play lowers"
                            " alpha with repeats=auto, which looks after every block")
        p.add_argument("--check", action="store_true",
                       help="exit 1 when any verdict is fail or invalid")
        h = p.add_argument_group("machine state and output (docs/health.md)")
        h.add_argument("--idle-util-pct", type=_non_negative, metavar="U",
                       help="npu/cuda: utilisation above U %% before a run makes it invalid (default 10)")
        h.add_argument("--idle-mem-mb", type=_non_negative, metavar="M",
                       help="npu/cuda: memory in use above M MB before a run makes it invalid"
                            " (default per platform: npu 4096, cuda 1024)")
        h.add_argument("--busy-cpu-pct", type=_non_negative, metavar="C",
                       help="reference: another process at C %% CPU or more before a run makes it invalid (default 50)")
        h.add_argument("--ignore-process", action="append", default=[], metavar="NAME",
                       help="a process name never counted as another user of the machine (repeatable)")
        h.add_argument("--min-psnr-db", type=_non_negative, metavar="DB",
                       help="an output at or above DB dB PSNR vs the control counts as the same"
                            " (default: any difference counts)")
        h.add_argument("--require-same-output", action="store_true",
                       help="a changed output fails the verdict (an output not compared is invalid)")

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
    p.add_argument("--out", metavar="DIR", help="write report.md, report.csv and report.json here")
    thresholds(p)
    for module in (index, importer, history, share, inventory, nightly):
        module.add_cli(sub)  # index, import, history, share, validate, nightly, nightly-summary: handlers as args.func
    return parser


def _table(columns):
    """A plain text table, one column per (header, {row name: cell}); headers may repeat."""
    import pandas as pd  # only where tables are built

    headers, cells = zip(*columns)
    return pd.DataFrame(list(cells), index=list(headers)).T.to_markdown(tablefmt="simple", disable_numparse=True)


def _noise(args, baselines, others):
    """The noise for a side of one run (or a control from another play), with its degrees of freedom.

    The host's stored runs in the window (``store.stored_noise``) when they have
    enough degrees of freedom, else a measurement given with its df
    (``--noise-cv-pct`` with ``--noise-df``), else what the store has, else a
    prior (``--noise-cv-pct`` alone: df None, informs the runs needed only).
    """
    manifests = [b["manifest"] for b in baselines if b.get("manifest")]
    fingerprint = next((m.get("fingerprint") for m in manifests if m.get("fingerprint")), None)
    found = None
    if getattr(args, "noise_store", None) and fingerprint:
        host = next((m.get("host") for m in manifests if isinstance(m.get("host"), str)), None)
        dates = [d for d in (store._when(m) for m in manifests) if d is not None]
        found = store.stored_noise(args.noise_store, fingerprint, exclude=[r["path"] for r in baselines + others],
                                   host=host, window_days=getattr(args, "noise_window_days", None),
                                   window_commits=getattr(args, "noise_window_commits", None),
                                   now=max(dates) if dates else None)
    min_df = getattr(args, "min_noise_df", MIN_NOISE_DF)
    if found and found["cv_pct"] and found["df"] >= min_df:
        return found
    cv, df = getattr(args, "noise_cv_pct", None), getattr(args, "noise_df", None)
    if cv and df is not None:
        when = getattr(args, "noise_measured", None)
        return {"cv_pct": cv, "df": df, "source": f"measured{' ' + when if when else ''}: CV {cv:g} %, {df:g} df"
                                                   " (--noise-cv-pct/--noise-df, the inventory's wanbench_noise)"}
    if found:
        return found
    if cv:
        return {"cv_pct": cv, "df": None,
                "source": "prior (--noise-cv-pct, the inventory's wanbench_noise_cv_pct): planning only"}
    return None


def _build(args, paths):
    baselines = [parse_run(b) for b in args.baseline or []]
    runs = [parse_run(p) for p in paths]
    # limits not given (or commands of other modules, e.g. share, without these options): judge's defaults
    health = {k: getattr(args, k) for k in ("idle_util_pct", "idle_mem_mb", "busy_cpu_pct")
              if getattr(args, k, None) is not None}
    health["ignore_names"] = tuple(getattr(args, "ignore_process", None) or ())
    health["own_pids"] = devices.controller_pids()  # the play's processes, where it runs on the measured host
    data = report.build(runs, baselines, args.threshold_pct, args.reserved_tolerance_pct,
                        _noise(args, baselines, runs) if baselines else None, args.confidence,
                        health=health, min_psnr_db=getattr(args, "min_psnr_db", None),
                        require_same_output=getattr(args, "require_same_output", False),
                        judge={"min_noise_df": getattr(args, "min_noise_df", MIN_NOISE_DF)})
    return baselines + runs, data


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
    inputs, data = _build(args, args.candidates)
    results = data["groups"]
    verdicts = [r["verdict"] for r in results]
    if args.json:
        return inputs, json.dumps(results, indent=2), verdicts
    table = _table([(r["variant"], {"n (base/cand)": f"{r['n']['baseline']}/{r['n']['candidate']}",
                                    **{m: report.fmt_pct(r["diff_pct"][m]) for m in METRICS},
                                    "95 % CI (request_total)": report.fmt_ci(r["ci_pct"]["request_total"]),
                                    "verdict": r["verdict"],
                                    "runs needed a side": str(r["runs_needed"] or "n/a")}) for r in results])
    lines = [f"% change vs {results[0]['baseline']}", table, ""] + report.summary(data).splitlines()
    for r in results:
        lines += ["", f"{r['variant']}: {r['verdict']}", *[f"  - {why}" for why in r["reasons"]],
                  *[f"  - excluded {e['role']} run {e['path']}: {e['why']}" for e in r["excluded"]]]
    return inputs, "\n".join(lines), verdicts


def _report(args):
    inputs, data = _build(args, args.paths)
    if args.out:
        text = "\n".join(report.write(data, args.out).values())
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


def main(argv=None):
    args = _parser().parse_args(argv)
    try:
        inputs, text, verdicts = (getattr(args, "func", None) or _COMMANDS[args.command])(args)
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
