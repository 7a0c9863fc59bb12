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
from .parse import parse_run
from .stats import CONFIDENCE

__all__ = ["OPTIONS", "add_arguments", "argv", "judge", "non_negative", "fraction"]


def non_negative(text):
    """A number >= 0 from text (argparse type); ArgumentTypeError otherwise."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def fraction(text):
    """A number strictly between 0 and 1 from text (argparse type)."""
    value = non_negative(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def _text(text):
    text = str(text)
    if not text:
        raise argparse.ArgumentTypeError("must not be empty")
    return text


@dataclass(frozen=True)
class Option:
    """One verdict option: its flags, how it is read, its default and help; ``health``: listed under machine state."""

    dest: str
    flags: tuple
    kind: str  # number | fraction | text | choice | list (repeatable text) | flag (store_true)
    default: object
    metavar: str
    help: str
    health: bool = False
    choices: tuple = ()


_TYPES = {"number": non_negative, "fraction": fraction, "text": _text, "choice": _text, "list": _text}

OPTIONS = (
    Option("threshold_pct", ("--threshold-pct", "--noise-pct"), "number", THRESHOLD_PCT, "X",
           f"smallest request_total change that counts, in %% (default {THRESHOLD_PCT})"),
    Option("reserved_tolerance_pct", ("--reserved-tolerance-pct",), "number", RESERVED_TOLERANCE_PCT, "Y",
           f"reserved_peak tolerance in %% (default {RESERVED_TOLERANCE_PCT})"),
    Option("noise_store", ("--noise-store",), "text", None, "DIR",
           "the host's run directories (results/<host>): its stored runs with the baseline's"
           " settings give the noise when a side has one run"),
    Option("noise_cv_pct", ("--noise-cv-pct",), "number", None, "CV",
           "prior request_total noise (CV in %%) when a side has one run and no stored noise"),
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
            elif value is not None and str(value) != "":
                _TYPES[o.kind](value)
                if o.choices and str(value) not in o.choices:
                    raise argparse.ArgumentTypeError(f"must be one of {', '.join(o.choices)}, got {value!r}")
                out += [flag, str(value)]
        except argparse.ArgumentTypeError as e:
            raise ValueError(f"judging option {o.dest}: {e}") from None
    return out


def _noise(args, baselines, others):
    """The known noise for a side of one run: the host's stored runs, else the prior, else None."""
    fingerprint = next((b["manifest"].get("fingerprint") for b in baselines if b.get("manifest")), None)
    if args.noise_store and fingerprint:
        found = store.stored_noise(args.noise_store, fingerprint, exclude=[r["path"] for r in baselines + others])
        if found:
            return found
    if args.noise_cv_pct:
        return {"cv_pct": args.noise_cv_pct, "source": "prior (--noise-cv-pct, the inventory's wanbench_noise_cv_pct)"}
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
    health["own_pids"] = devices.controller_pids()  # the play's processes, where it runs on the measured host
    data = report.build(runs, baselines, args.threshold_pct, args.reserved_tolerance_pct,
                        _noise(args, baselines, runs) if baselines else None, args.confidence,
                        health=health, min_psnr_db=args.min_psnr_db,
                        require_same_output=args.require_same_output,
                        allow_mismatch=tuple(args.allow_mismatch) + (("play",) if args.across_plays else ()),
                        on_mismatch=args.on_mismatch)
    return baselines + runs, data


def values_of(args):
    """{option name: value} of a parsed command line (what :func:`argv` takes back)."""
    return {n: getattr(args, n) for n in NAMES}

