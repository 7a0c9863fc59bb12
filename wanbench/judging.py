"""One home for the verdict options: their names, defaults and checks, the CLI and the play's argv.

:data:`OPTIONS` lists every option a verdict depends on.  :func:`add_arguments`
adds them to an argparse parser (``wanbench compare``, ``report``, ``share``);
:func:`argv` builds the same options' argument list from the play's variables
(the filter ``wanbench_judging_argv``, used by the adaptive look and by the
report role, so that both judge alike); :func:`judge` parses the runs and
judges them with the options of a parsed command line.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass

from . import devices, report, store
from .compare import RESERVED_TOLERANCE_PCT, THRESHOLD_PCT
from .options import MEASURED_KEYS as _MEASURED_KEYS, fraction, measurement, non_negative, text as _text, whole
from .parse import parse_run
from .stats import CONFIDENCE, MIN_NOISE_DF

__all__ = ["OPTIONS", "add_arguments", "argv", "judge"]


@dataclass(frozen=True)
class Option:
    """One verdict option: its flags, how it is read, its default and help; ``health``: listed under machine state."""

    dest: str
    flags: tuple
    kind: str  # number | fraction | whole | measurement | text | choice | list (repeatable text) | flag (store_true)
    default: object
    metavar: str
    help: str
    health: bool = False
    choices: tuple = ()


_TYPES = {"number": non_negative, "fraction": fraction, "whole": whole, "measurement": measurement,
          "text": _text, "choice": _text, "list": _text}

OPTIONS = (
    Option("threshold_pct", ("--threshold-pct", "--noise-pct"), "number", THRESHOLD_PCT, "X",
           f"smallest request_total change that counts, in %% (default {THRESHOLD_PCT})"),
    Option("reserved_tolerance_pct", ("--reserved-tolerance-pct",), "number", RESERVED_TOLERANCE_PCT, "Y",
           f"reserved_peak tolerance in %% (default {RESERVED_TOLERANCE_PCT})"),
    Option("noise_store", ("--noise-store",), "text", None, "DIR",
           "the host's run directories (results/<host>): its stored runs with the baseline's"
           " settings give the noise when a side has one run"),
    Option("noise_cv_pct", ("--noise-cv-pct",), "number", None, "CV",
           "prior request_total noise (CV in %%): informs the runs needed only, never decides"),
    Option("noise", ("--noise-measured",), "measurement", None, "cv_pct=X,df=N,measured=DATE",
           "a measured request_total noise with its degrees of freedom and date (the inventory's"
           " wanbench_noise): decides for one-run sides when the store has too few df"),
    Option("min_noise_df", ("--min-noise-df",), "number", MIN_NOISE_DF, "DF",
           f"degrees of freedom a stored or measured noise needs to decide (default {MIN_NOISE_DF})"),
    Option("noise_window_days", ("--noise-window-days",), "number", None, "DAYS",
           "stored noise only from runs of the last DAYS days before the baseline (default: no limit)"),
    Option("noise_window_commits", ("--noise-window-commits",), "whole", None, "N",
           "stored noise only from runs at the N newest commits of the store (default: no limit)"),
    Option("confidence", ("--confidence",), "fraction", CONFIDENCE, "C",
           f"level of the request_total interval (default {CONFIDENCE}); the play lowers"
           " alpha with repeats=auto, which looks after every block"),
    Option("allow_mismatch", ("--allow-mismatch",), "list", [], "KEY",
           "compare runs whose workload identity differs in KEY (e.g. commit); repeatable, logged in the report"),
    Option("across_plays", ("--across-plays",), "flag", False, None,
           "judge runs of different plays together (a report keeps each play apart otherwise); logged in the"
           " report, as --allow-mismatch play"),
    Option("on_mismatch", ("--on-mismatch",), "choice", "error", "HOW",
           "runs of different workloads: error (default: one line, exit 2) or invalid (the verdict; a play's"
           " own look and report)", choices=("error", "invalid")),
    Option("idle_util_pct", ("--idle-util-pct",), "number", None, "U",
           "npu/cuda: utilisation above U %% before a run makes it invalid (default 10)", health=True),
    Option("idle_mem_mb", ("--idle-mem-mb",), "number", None, "M",
           "npu/cuda: memory in use above M MB before a run makes it invalid"
           " (default per platform: npu 4096, cuda 1024)", health=True),
    Option("busy_cpu_pct", ("--busy-cpu-pct",), "number", None, "C",
           "reference: another process at C %% CPU or more before a run makes it invalid (default 50)", health=True),
    Option("device_state", ("--device-state",), "choice", "required", "HOW",
           "required (default): a device state that could not be read makes a run invalid; optional: a warning",
           health=True, choices=("required", "optional")),
    Option("ignore_process", ("--ignore-process",), "list", [], "NAME",
           "a process name never counted as another user of the machine (repeatable)", health=True),
    Option("min_psnr_db", ("--min-psnr-db",), "number", None, "DB",
           "an output at or above DB dB PSNR vs the control counts as the same"
           " (default: any difference counts)", health=True),
    Option("require_same_output", ("--require-same-output",), "flag", False, None,
           "a changed output fails the verdict (an output not compared is invalid)", health=True),
)
NAMES = tuple(o.dest for o in OPTIONS)


def add_arguments(parser):
    """Add every verdict option to an argparse parser (machine-state ones in their own group)."""
    health = parser.add_argument_group("machine state and output (docs/health.md)")
    for o in OPTIONS:
        target = health if o.health else parser
        if o.kind == "flag":
            target.add_argument(*o.flags, dest=o.dest, action="store_true", help=o.help)
        elif o.kind == "list":
            target.add_argument(*o.flags, dest=o.dest, action="append", default=[], type=_TYPES[o.kind],
                                metavar=o.metavar, help=o.help)
        else:
            target.add_argument(*o.flags, dest=o.dest, type=_TYPES[o.kind], default=o.default,
                                metavar=o.metavar, help=o.help, **({"choices": o.choices} if o.choices else {}))
    return parser


_TRUE, _FALSE = {"true", "yes", "on", "1"}, {"false", "no", "off", "0", ""}


def run_args(controls=(), candidates=()):
    """The runs of a ``wanbench compare``/``report`` command line: the candidates, each control as
    ``--baseline=PATH``; the controls alone (as runs) when there is no candidate."""
    controls, candidates = [str(c) for c in controls or ()], [str(c) for c in candidates or ()]
    return candidates + [f"--baseline={c}" for c in controls] if candidates else controls


def argv(values):
    """The command-line arguments of ``values`` ({option name: value}, every option named once).

    An empty text or None leaves an option at its default; a list (or a
    comma-separated text, as ``-e allow_mismatch=commit`` gives it) gives the
    option once per item; a flag is given when true.  Every value is checked
    as the CLI would check it: ValueError naming the option otherwise.
    """
    if not isinstance(values, dict):
        raise ValueError(f"judging options must be a mapping, got {type(values).__name__}")
    missing, unknown = [n for n in NAMES if n not in values], sorted(set(values) - set(NAMES))
    if missing or unknown:
        raise ValueError("judging options: " + "; ".join(
            part for part in (f"missing {', '.join(missing)}" if missing else "",
                              f"unknown {', '.join(unknown)}" if unknown else "") if part))
    out = []
    for o in OPTIONS:
        value, flag = values[o.dest], o.flags[0]
        try:
            if o.kind == "flag":
                text = str(value).strip().lower()
                if not isinstance(value, bool) and text not in _TRUE | _FALSE:
                    raise argparse.ArgumentTypeError(f"must be true or false, got {value!r}")
                out += [flag] if (value if isinstance(value, bool) else text in _TRUE) else []
            elif o.kind == "list":
                items = [] if value is None else value.split(",") if isinstance(value, str) else value
                if not isinstance(items, (list, tuple)):
                    raise argparse.ArgumentTypeError(f"must be a list, got {value!r}")
                items = [item for item in items if str(item).strip()]
                out += [f"{flag}={_text(item)}" for item in items]
            elif o.kind == "measurement":
                if value not in (None, "", {}):
                    if isinstance(value, dict):
                        unknown = sorted(set(value) - set(_MEASURED_KEYS))
                        if unknown:
                            raise argparse.ArgumentTypeError(f"unknown key(s) {', '.join(map(str, unknown))};"
                                                             f" expected {', '.join(_MEASURED_KEYS)}")
                        value = ",".join(f"{k}={value[k]}" for k in _MEASURED_KEYS if k in value)
                    out += [flag, ",".join(f"{k}={v}" for k, v in measurement(value).items())]
            elif value is not None and str(value) != "":
                _TYPES[o.kind](value)
                if o.choices and str(value) not in o.choices:
                    raise argparse.ArgumentTypeError(f"must be one of {', '.join(o.choices)}, got {value!r}")
                out += [flag, str(value)]
        except argparse.ArgumentTypeError as e:
            raise ValueError(f"judging option {o.dest}: {e}") from None
    return out


def _noise(args, baselines, others):
    """The noise for a side of one run (or a control from another play), with its degrees of freedom.

    The host's stored runs in the window (``store.stored_noise``) when they have
    enough degrees of freedom, else the measurement (``--noise-measured``), else
    what the store has (it says why it cannot decide), else the prior
    (``--noise-cv-pct``: df None, informs the runs needed only), else None.
    """
    manifests = [b["manifest"] for b in baselines if isinstance(b.get("manifest"), dict)]
    fingerprint = next((m.get("fingerprint") for m in manifests if m.get("fingerprint")), None)
    found = None
    if args.noise_store and fingerprint:
        host = next((m.get("host") for m in manifests if isinstance(m.get("host"), str)), None)
        dates = [d for d in (store.run_time(m) for m in manifests) if d is not None]
        found = store.stored_noise(args.noise_store, fingerprint, exclude=[r["path"] for r in baselines + others],
                                   host=host, window_days=args.noise_window_days,
                                   window_commits=args.noise_window_commits, now=max(dates) if dates else None)
    if found and found["cv_pct"] and found["df"] >= args.min_noise_df:
        return found
    if args.noise:
        m = args.noise
        return {**m, "source": f"measured {m['measured']} (--noise-measured, the inventory's wanbench_noise)"}
    if found:
        return found
    if args.noise_cv_pct:
        return {"cv_pct": args.noise_cv_pct, "df": None,
                "source": "prior (--noise-cv-pct, the inventory's wanbench_noise_cv_pct): planning only"}
    return None


def judge(args, paths):
    """Parse the baseline (``args.baseline``) and candidate runs and judge them with ``args``' options.

    Returns (every parsed run, :func:`wanbench.report.build`'s data).
    """
    if args.noise_store and not os.path.isdir(args.noise_store):
        raise ValueError(f"--noise-store {args.noise_store}: not a folder (give the host's results folder,"
                         " results/<host>)")
    baselines = [parse_run(b) for b in args.baseline or []]
    runs = [parse_run(p) for p in paths]
    health = {k: getattr(args, k) for k in ("idle_util_pct", "idle_mem_mb", "busy_cpu_pct")
              if getattr(args, k) is not None}
    health["ignore_names"] = tuple(args.ignore_process or ())
    health["device_state"] = args.device_state
    health["own_pids"] = devices.controller_pids()  # the play's processes, where it runs on the measured host
    data = report.build(runs, baselines, args.threshold_pct, args.reserved_tolerance_pct,
                        _noise(args, baselines, runs) if baselines else None, args.confidence,
                        health=health, min_psnr_db=args.min_psnr_db,
                        require_same_output=args.require_same_output,
                        allow_mismatch=tuple(args.allow_mismatch) + (("play",) if args.across_plays else ()),
                        on_mismatch=args.on_mismatch, judge={"min_noise_df": args.min_noise_df})
    return baselines + runs, data


def values_of(args):
    """{option name: value} of a parsed command line (what :func:`argv` takes back)."""
    return {n: getattr(args, n) for n in NAMES}

