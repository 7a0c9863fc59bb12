"""Streaming parsers for what a Wan2.1 perf-branch run leaves behind.

Three kinds of file, told apart by content (never by name):

* the run log (torchrun stdout + stderr): StageProfile / AttnProfile /
  BlockProfile reports (slow-card skew sections included),
  ``Generating video used time``, ``Finished.``, tracebacks, torchrun's
  failure report (its root cause names the failed rank);
* the profile file (``--profile_stage_file``): CSV-like records, possibly
  several runs appended (stage, attention, skew and block records);
* the ``/usr/bin/time -o`` file: ``REAL_TIME_SECONDS=<s>``.

Every file parses into one shape (see ``parse_file``).  Both profile formats
fill the same tables in ``extra`` (a log line is translated into the profile
record it mirrors), so the nine decision metrics are read in one place.

Files are read in binary, 1 MiB at a time, lines ending at \n or \r.  In a
log, one regular-expression scan per block finds the only lines Python looks
at: runs of profile lines (kept as text; only the last report is parsed),
known markers behind the logging prefix, traceback headers and torchrun's
root-cause header.  Memory stays flat in the file size.  Only regular files
are opened, never in a way that waits (a FIFO is refused).
"""

from __future__ import annotations

import collections
import json
import math
import os
import re
import signal
import stat

from . import devices
from .manifest import CANCELLED, EXIT_CODE, LINKS, MANIFEST, OUTPUT_CHECK, RUN_SCRIPT, exit_code as read_exit_code, job_args
from .manifest import read as read_manifest

METRICS = (
    "request_total",       # ms
    "denoise_step_avg",    # ms
    "attn_kernel_avg",     # ms
    "comm_total_avg",      # ms
    "qkv_all_to_all_avg",  # ms
    "out_all_to_all_avg",  # ms
    "reserved_peak",       # MB
    "gen_time",            # s
    "real_time",           # s
)
# Decimals the workload prints a metric with (the rest are .3f); used for
# rounding tolerance when two files disagree and for rendering.
DECIMALS = {"reserved_peak": 1, "gen_time": 4, "real_time": 2}
STATUSES = ("ok", "incomplete", "failed", "unreadable")  # best to worst
JITTER_FACTOR = 1.5  # warn when denoise_step_total max > factor x p50

NOT_TEXT = "not text"
EMPTY = "empty file"
CUT_OFF = "report cut off"
NO_FINISHED = "no `Finished.`"

_CHUNK = 1 << 20
_HEAD = 1 << 16
_MAX_LINE = 1 << 16   # longer lines keep their first 64 KiB (only line heads matter)
_KEEP = 200           # raw lines kept per list (unparsed records, tracebacks, ...)
_FLUSH = 1 << 20      # parse a log's pending profile text once it holds this many bytes

_STEP = ("avg", "p50", "p90", "min", "max", "avg_rank_avg")
_SKEW = ("calls", "launch_skew_avg", "launch_skew_p90", "launch_skew_max",
         "finish_skew_avg", "finish_skew_p90", "finish_skew_max")
_CALLS = ("total_max", "total_avg", "call_avg", "call_max", "calls")
# profile record -> (table in extra, value names); every record but MEM_REQUEST
# is keyed by its first field (stage, metric, hotspot rank).
_RECORDS = {
    "TOTAL": ("stage_totals", ("max", "avg")),
    "MEM": ("stage_memory", ("alloc_peak_max", "alloc_peak_avg", "reserved_peak_max",
                             "reserved_peak_avg", "delta_alloc_peak_max", "delta_alloc_peak_avg")),
    "MEM_REQUEST": ("request_peak_mem", ("alloc_max", "alloc_avg", "reserved_max", "reserved_avg")),
    "PERF": ("derived", ("value", "unit")),
    "HOT": ("hotspots", ("stage", "ms", "share_pct")),
    "STEP": ("step_stats", _STEP),
    "SLOW": ("step_stats", ("slowest",)),
    "ATTN": ("attn_totals", _CALLS),
    "ATTN_RATIO": ("attn_ratios", ("max_ratio", "avg_ratio")),  # fractions, as in the file
    "ATTN_STEP": ("attn_step_stats", _STEP),
    "ATTN_SLOW": ("attn_step_stats", ("slowest",)),
    # slow-card diagnostics (WAN_SLOW_CARD_DIAG=1 / WAN_SLOW_CARD_OP_DIAG=1), inside ATTN_RUN..ATTN_END
    "ATTN_SKEW": ("collective_skew", (*_SKEW, "dur_avg", "dur_max", "dur_min")),
    "ATTN_SKEW_RANK": ("collective_skew", ("latest_launch_ranks",)),
    "ATTN_OP_SKEW": ("op_skew", (*_SKEW, "dur_avg", "dur_p90", "dur_max", "dur_min")),
    "ATTN_OP_SKEW_RANK": ("op_skew", ("slowest_ranks",)),
    # the block profiler (--profile_block), BLOCK_RUN..BLOCK_END
    "BLOCK": ("block_totals", _CALLS),
    "BLOCK_TOP": ("block_hotspots", ("block", "ms", "share")),  # share: a fraction, as in the file
}
_MARKERS = ("RUN", "END", "ATTN_RUN", "ATTN_END", "BLOCK_RUN", "BLOCK_END")
_PAIRS = (("RUN", "END"), ("ATTN_RUN", "ATTN_END"), ("BLOCK_RUN", "BLOCK_END"))
_PROFILE_TAGS = {t.encode() for t in (*_RECORDS, *_MARKERS)}

_METRIC_PATHS = {
    "request_total": ("stage_totals", "request_total", "max"),
    "denoise_step_avg": ("step_stats", "denoise_step_total", "avg"),
    "attn_kernel_avg": ("attn_step_stats", "attn_kernel", "avg"),
    "comm_total_avg": ("attn_step_stats", "comm_total", "avg"),
    "qkv_all_to_all_avg": ("attn_step_stats", "qkv_all_to_all", "avg"),
    "out_all_to_all_avg": ("attn_step_stats", "out_all_to_all", "avg"),
    "reserved_peak": ("request_peak_mem", "reserved_max"),
}

# The log: "[asctime] LEVEL: [T2V StageProfile] <body>"; section headers
# "==== <title> (...) ====" decide which record a body line mirrors.
_LOG_SECTIONS = {
    b"Stage Totals": "TOTAL",
    b"Stage Memory": "MEM",
    b"Derived Perf Metrics": "PERF",
    b"Stage Hotspots": "HOT",
    b"Per-Step Breakdown": "STEP",
    b"Attention Internal Breakdown": "ATTN",
    b"Attention Ratios": "ATTN_RATIO",
    b"Attention Per-Step Breakdown": "ATTN_STEP",
    b"Slow-Card Collective Launch Skew": "ATTN_SKEW",
    b"Slow-Card Compute Op Skew": "ATTN_OP_SKEW",
    b"DiT Block Breakdown": "BLOCK",
    b"DiT Block Hotspots": "BLOCK_TOP",
}
_N = rb"(-?\d+(?:\.\d+)?)"
_NAME = rb"([^\s:]+)"


def _rx(pattern):
    return re.compile(pattern.replace(b"{NAME}", _NAME).replace(b"{N}", _N) + rb"$")


_STEP_LINE = _rx(b"{NAME}: avg={N}, p50={N}, p90={N}, min={N}, max={N}, avg_rank_avg={N}")
_SLOW_LINE = _rx(rb"{NAME} slowest \d+: (.+)")
_CALLS_LINE = _rx(rb"{NAME}: total={N}/{N}, call_avg={N}, call_max={N}, calls=(\d+)")
_SKEW_LINE = (rb"{NAME}: calls=(\d+), launch_skew\(avg/p90/max\)={N}/{N}/{N}, "
              rb"finish_skew\(avg/p90/max\)={N}/{N}/{N}, ")
_LOG_LINES = {
    "TOTAL": ((_rx(b"{NAME}: {N} / {N}"), "TOTAL"),),
    "MEM": ((_rx(b"request_peak_mem: alloc={N}/{N}, reserved={N}/{N} MB"), "MEM_REQUEST"),
            (_rx(b"{NAME}: alloc_peak={N}/{N}, reserved_peak={N}/{N}, delta_alloc_peak={N}/{N}"), "MEM")),
    "PERF": ((_rx(rb"{NAME}: {N} (\S+)"), "PERF"),),
    "HOT": ((_rx(rb"top(\d+): (\S+) {N} ms \({N}%\)"), "HOT"),),
    "STEP": ((_STEP_LINE, "STEP"), (_SLOW_LINE, "SLOW")),
    "ATTN": ((_CALLS_LINE, "ATTN"),),
    "ATTN_RATIO": ((_rx(b"{NAME}: max_ratio={N}%, avg_ratio={N}%"), "ATTN_RATIO"),),
    "ATTN_STEP": ((_STEP_LINE, "ATTN_STEP"), (_SLOW_LINE, "ATTN_SLOW")),
    "ATTN_SKEW": ((_rx(_SKEW_LINE + rb"dur\(avg/max/min\)={N}/{N}/{N}"), "ATTN_SKEW"),
                  (_rx(rb"{NAME} latest-launch rank top: (.*)"), "ATTN_SKEW_RANK")),
    "ATTN_OP_SKEW": ((_rx(_SKEW_LINE + rb"dur\(avg/p90/max/min\)={N}/{N}/{N}/{N}"), "ATTN_OP_SKEW"),
                     (_rx(rb"{NAME} slowest-rank top: (.*)"), "ATTN_OP_SKEW_RANK")),
    "BLOCK": ((_CALLS_LINE, "BLOCK"),),
    "BLOCK_TOP": ((_rx(rb"top(\d+): (\S+) {N} ms \({N}%\)"), "BLOCK_TOP"),),
}
_SLOW_ITEM = re.compile(rb"step(\d+):" + _N)
_RANK_ITEM = re.compile(rb"rank(\d+):(\d+)")
_RANK_LIST = re.compile(rb"\s*(?:rank\d+:\d+(?:(?:;|, )rank\d+:\d+)*)?\s*")
_GEN_TIME = re.compile(rb"\s+" + _N + rb"s")
_TIME_EXIT = re.compile(rb"Command exited with non-zero status (\d+)")
_TIME_SIGNAL = re.compile(rb"Command terminated by signal (\d+)")
_TIME_MARKERS = (b"REAL_TIME_SECONDS=", b"Command exited with", b"Command terminated by")
_LOG_INFO = {  # log message prefix -> key in extra (kept as text, never read for metrics)
    b"Generation job args: ": "job_args",
    b"Input prompt: ": "prompt",
    b"Saving generated video to ": "saved_video",
}
# The only log lines Python looks at, found by one scan of each block (every
# line starts after a \n): a run of consecutive profile lines ("[asctime]
# LEVEL: [T2V StageProfile] ..."), kept as text; a logging line whose message
# starts with a known marker; a traceback header (maybe behind "[rank1]: ").
# Groups: profile run, marker, rest of the marker line.
_LOGGED = rb"\[[^\]\n]{1,40}\] [A-Z]+: "
_PROFILE_TAG = _LOGGED + rb"\[[TI]2V (?:Stage|Attn|Block)Profile\] "
# Groups: profile run, marker, rest of the marker line; a traceback header (its rank prefix
# "rank1", maybe behind a tqdm bar that ate its newline: "...122.42s/it]Traceback"); torchrun's
# root-cause header; the exit code and local rank of the first child torchrun's agent saw fail (the
# "E0304 ... [site-packages/]torch/distributed/elastic/multiprocessing/api.py:869] failed (exitcode:
# -9) local_rank: 2" and the older "ERROR:torch.distributed.elastic.multiprocessing.api:failed ..."
# forms); a failure line read even when no traceback follows (its rank prefix, its text): a C++
# exception's "what():", a c10d "[E ...] [Rank N] ..." line (watchdog), an Ascend error code line
# ("EI0006: ...", "EJ0001: ..."), torch_npu's "[ERROR] ... (PID:1, Device:0, RankID:0) ERR00100 ..."
# line, MindSpore's "[CRITICAL] ..." line, or an exception line at the start of a line.
_RANK_TAG = rb"(?:\[([^\]\s]{1,20})\]: ?)?"
_LOG_LINE = re.compile(
    rb"\n(?:(" + _PROFILE_TAG + rb"[^\n]*(?:\n+" + _PROFILE_TAG + rb"[^\n]*)*)"
    rb"|" + _LOGGED + rb"(Generating video used time|Finished\.|" + b"|".join(_LOG_INFO) + rb")([^\n]*)"
    rb"|(?:\[([^\]\s]{1,20})\]: ?| *\d{1,3}%\|[^\n]{0,300}?\])?Traceback \(most recent call last\)[^\n]*"
    rb"|(Root Cause \(first observed failure\):)"
    rb"|(?:E\d{4} [\d:.]+ +\d+ (?:\S*/)?torch/distributed/elastic/multiprocessing/api\.py:\d+\] "
    rb"|ERROR:torch\.distributed\.elastic\.multiprocessing\.api:)failed \(exitcode: (-?\d+)\) local_rank: (\d+)"
    rb"|" + _RANK_TAG + rb"(  what\(\): [^\n]*|\[[EF][^\]\n]{0,80}\] \[(?:PG [^\]\n]{1,40} )?Rank \d+\] [^\n]*"
    rb"|E[A-Z]\d{4}: [^\n]*|\[ERROR\] [\d-]+:[\d:]+ \(PID:[^\n]*|\[CRITICAL\] [^\n]*"
    rb"|(?:[A-Za-z_][\w.]*\.)?[A-Z]\w*(?:Error|Exception): [^\n]*))")
_PROFILE_LINE = re.compile(_PROFILE_TAG + rb"(.*)")
_HEADER = re.compile(rb"\[([TI])2V (?:Stage|Attn|Block)Profile\] (====[^\n]*)")
_RANK_PREFIX = re.compile(rb"\[[^\]\s]{1,20}\]: ?")
_RANK_NAME = re.compile(rb"rank(\d+)$")
# torchrun's ChildFailedError report: "Root Cause (first observed failure):", "[0]:", then
# "  rank      : 2 (local_rank: 2)", "  exitcode  : -9 (pid: 3196)", "  traceback : ..." lines.
_ROOT_FIELD = re.compile(rb"  (\w+)\s*: ?(.*)")
_ROOT_INT = re.compile(r"(-?\d+)")
# What a failure's lines say (read in this order; the first that matches names the cause).
_OOM = re.compile(r"out of memory|OutOfMemory", re.I)
_STARTUP = re.compile(r"\b(?:ImportError|ModuleNotFoundError)\b|cannot open shared object file|set_env\.sh")
# a timeout said in words ("times out", "timed out", a watchdog), never a call named ...Timeout(...)
_TIMEOUT = re.compile(r"Watchdog caught collective operation timeout|\b(?:times|timed|timing) out\b"
                      r"|(?<![A-Za-z])time ?out(?![A-Za-z(])|\bE[IJ]00(?:02|06)\b", re.I)
_ACL = re.compile(r"(?:NPU|ACL|HCCL|OPS) function error: (.+?), error code is (\d{6})\b")
_CUDA = re.compile(r"CUDA error: ([^.\n]*)")
_ASCEND_CODE = re.compile(r"\b(E[IJ](?!9999)\d{4})\b")
_COMM = re.compile(r"\bHCC[LP]\b|\bNCCL\b.*\b(?:error|failed)\b|\b[Cc]ommunicat\w* (?:error|failed)", re.I)
_OOM_SIZE = re.compile(r"Tried to allocate ([\d.]+ ?[KMGT]i?B)")
_OOM_DEVICE = re.compile(r"\((?:NPU|GPU) (\d+);|(?:NPU|GPU) (\d+) has a total")
_GOT_SIGNAL = re.compile(r"got signal: (\d+)")
_PTA_RANK = re.compile(r"\(PID:\d+, Device:-?\d+, RankID:(\d+)\)")
_RANK_OF = re.compile(r"\[(?:PG [^\]]{1,40} )?Rank (\d+)\]")
_FRAME = re.compile(rb'\s*File "([^"]+)", line (\d+)')
# what comes before a failure's own words: a C++ exception's "what():", a c10d log prefix, MindSpore's
_LEAD_NOISE = re.compile(r"^(?:what\(\):\s*|\[[EF][^\]]{0,80}\] |\[CRITICAL\] .*?Error Message:\s*)")
# a field of argparse's Namespace repr in the job-args line (quoted strings may hold ", x=")
DETAILED = ("detailed profile mode (--profile_mode detailed): generate ran twice and gen_time covers both"
            " generations; not comparable with normal runs")


# ---------------------------------------------------------------- helpers

def _text(b):
    return b.decode("utf-8", "replace") if isinstance(b, bytes) else str(b)


def _float(b):
    v = float(b)
    if not math.isfinite(v):
        raise ValueError(f"not a finite number: {b!r}")
    return v


def _slowest(b):
    pairs = [[int(step), float(ms)] for step, ms in _SLOW_ITEM.findall(b)]
    if not pairs:
        raise ValueError(f"no step:ms items in {b!r}")
    return pairs


def _ranks(b):
    """[[rank, count], ...] from "rank2:911;rank0:402" (file) or "rank2:911, rank0:402" (log); may be empty."""
    if not _RANK_LIST.fullmatch(b):
        raise ValueError(f"not a list of rank:count items: {b!r}")
    return [[int(rank), int(count)] for rank, count in _RANK_ITEM.findall(b)]


_CONVERT = {"unit": _text, "stage": _text, "block": _text, "calls": int, "slowest": _slowest,
            "latest_launch_ranks": _ranks, "slowest_ranks": _ranks}


def _tables():
    tables = {table: {} for table, _ in _RECORDS.values()}
    tables["other_records"] = []
    return tables


def _keep(lst, raw):
    if len(lst) < _KEEP:
        lst.append(_text(raw).strip())


def _unparsed(x, raw):
    x["unparsed"] = x.get("unparsed", 0) + 1
    _keep(x["other_records"], raw)


def _store(x, rec, fields):
    """Store one profile record (file fields or a translated log line) in x."""
    table, names = _RECORDS[rec]
    if rec != "MEM_REQUEST":
        if not fields:
            return False
        key, fields = _text(fields[0]), fields[1:]
    if len(fields) != len(names):
        return False
    try:
        values = {n: _CONVERT.get(n, _float)(v) for n, v in zip(names, fields)}
    except ValueError:
        return False
    if rec == "MEM_REQUEST":
        x[table] = values
    else:
        x[table].setdefault(key, {}).update(values)
    return True


def _dig(d, keys):
    for k in keys:
        d = d.get(k) if isinstance(d, dict) else None
    return d


MEMORY_ZERO = "memory not measured (every memory figure is 0.0)"
MEMORY_ABSENT = "memory not measured (memory figures absent)"
LEGACY_QKV = ("qkv_all_to_all_avg not measured: q, k and v were sent apart (WAN_PACKED_QKV_A2A=0), and the"
              " report has no per-step q+k+v; not comparable with packed runs (sum of the q, k, v per-step"
              " averages, an upper bound: {} ms)")


def _metrics(x, complete=True):
    """(metrics, warnings) of one report or profile block.

    All-zero memory (no device) and memory absent beside stage totals mean
    "not measured": reserved_peak is None then, never 0.
    """
    m = dict.fromkeys(METRICS)
    for name, keys in _METRIC_PATHS.items():
        m[name] = _dig(x, keys)
    warnings = []
    if m["qkv_all_to_all_avg"] is None:  # q, k, v not packed: no per-step q+k+v in the report
        legacy = [_dig(x, ("attn_step_stats", f"{c}_all_to_all", "avg")) for c in "qkv"]
        if None not in legacy:
            warnings.append(LEGACY_QKV.format(f"{sum(legacy):.3f}"))
    if x.get("request_peak_mem"):
        figures = [*x["request_peak_mem"].values()]
        figures += [v for row in x.get("stage_memory", {}).values() for v in row.values()]
        if not any(figures):
            m["reserved_peak"] = None
            warnings.append(MEMORY_ZERO)
    elif x.get("stage_totals") and not x.get("stage_memory") and complete:
        warnings.append(MEMORY_ABSENT)
    return m, warnings


def _health(x, jitter_factor):
    """Warnings about numbers that cannot be right or that show an unstable run."""
    warnings = []
    for table in ("stage_totals", "attn_totals", "step_stats", "attn_step_stats", "block_totals"):
        for name, row in x.get(table, {}).items():
            neg = [f"{k}={v}" for k, v in row.items() if isinstance(v, float) and v < 0]
            if neg:
                warnings.append(f"negative stage time in {table}: {name} {', '.join(neg)}")
    step = x.get("step_stats", {}).get("denoise_step_total", {})
    if step.get("max") is not None and step.get("p50") is not None \
            and step["max"] > jitter_factor * step["p50"]:
        warnings.append(f"abnormal step jitter: denoise_step_total max {step['max']} ms"
                        f" > {jitter_factor} x p50 {step['p50']} ms")
    if x.get("unparsed"):
        warnings.append(f"{x['unparsed']} profile line(s) not understood, kept in"
                        f" extra.other_records (first: {x['other_records'][0]!r})")
    return warnings


def _prune(x):
    return {k: v for k, v in x.items() if v not in ({}, [])}


def _chunks(f):
    """(buf, end) of a binary file: buf[:end] is whole lines, each after a \\n.

    \\r ends a line too (tqdm bars, CRLF).  A line still open at the end of
    buf goes on in the next block.
    """
    rest = b""
    while chunk := f.read(_CHUNK):
        buf = (b"\n" + rest + chunk).replace(b"\r", b"\n")
        end = buf.rfind(b"\n") + 1
        rest = buf[end:end + _MAX_LINE]
        yield buf, end
    if rest:
        yield b"\n" + rest + b"\n", len(rest) + 2


def _lines(f):
    for buf, end in _chunks(f):
        yield from buf[1:end - 1].split(b"\n")


def _sniff(head):
    """(kind, None) or (None, reason the file is unreadable) from its first bytes."""
    if not head.strip():
        return None, EMPTY
    text = head.decode("utf-8", "replace")
    if b"\0" in head[:8192] or text.count("\ufffd") * 10 > len(text) * 3:
        return None, NOT_TEXT
    first = next(line for line in head.replace(b"\r", b"\n").split(b"\n") if line.strip()).strip()
    if first.split(b",", 1)[0] in _PROFILE_TAGS:
        return "profile", None
    if first.startswith(_TIME_MARKERS):
        return "time", None
    return "log", None


def _result(path, kind=None, status="ok", reason="", metrics=None, extra=None, warnings=None):
    metrics = metrics or dict.fromkeys(METRICS)
    return {"path": path, "kind": kind, "status": status, "reason": reason,
            "metrics": metrics, "extra": extra or {}, "warnings": warnings or [],
            "memory_measured": metrics["reserved_peak"] is not None}


# ---------------------------------------------------------------- log

def _pct_to_fraction(b):
    decimals = len(b) - b.index(b".") - 1 if b"." in b else 0
    return round(float(b) / 100, decimals + 2)


def _section(header):
    return _LOG_SECTIONS.get(header.strip(b"= ").split(b" (")[0], "OTHER")


class _Report:
    """The last profile report of a log, kept as text and parsed only when needed."""

    def __init__(self):
        self.x, self.pending, self.size = _tables(), [], 0
        self.seen = set()     # its sections, by header: a repeated one starts a new report
        self.section = None   # the section the next line is in

    def add(self, text):
        self.pending.append(text)
        self.size += len(text)
        if self.size >= _FLUSH:
            self.flush()

    def flush(self):
        """Translate the pending lines into profile records, by the section they are in."""
        for line in b"\n".join(self.pending).split(b"\n"):
            m = _PROFILE_LINE.match(line)
            if not m:
                continue
            body = m.group(1).rstrip()
            if body.startswith(b"===="):
                self.section = _section(body)
                continue
            for rx, rec in _LOG_LINES.get(self.section, ()):
                m = rx.match(body)
                if m:
                    fields = m.groups()
                    if rec == "ATTN_RATIO":
                        fields = (fields[0], *map(_pct_to_fraction, fields[1:]))
                    elif rec == "BLOCK_TOP":
                        fields = (*fields[:3], _pct_to_fraction(fields[3]))
                    if _store(self.x, rec, fields):
                        break
            else:
                _unparsed(self.x, body)
        self.pending, self.size = [], 0


class _Events:
    """The failure lines of a log, in order, grouped: a traceback's error line, a C++ exception's
    ``what():``, a c10d ``[E ...] [Rank N]`` line (watchdog) or an exception line opens a group; the
    lines that only explain it (Ascend codes ``EI0006: ...``, torch_npu's ``[ERROR] ... RankID:N``
    line) join the open group.  Kept: the first ``_KEEP`` lines."""

    def __init__(self):
        self.items = []   # {"rank", "text", "group", "where"}
        self.group = 0

    def add(self, prefix, line, lead, where=None):
        text = _LEAD_NOISE.sub("", _text(line).strip(), count=1)
        m = _RANK_NAME.match(prefix or b"")
        rank = int(m.group(1)) if m else None
        if rank is None and (m := _RANK_OF.search(text)):
            rank = int(m.group(1))
        if lead or not self.group:
            self.group += 1
        elif m := _PTA_RANK.search(text):  # torch_npu names the rank of the error it explains
            for e in self.items:
                if e["group"] == self.group and e["rank"] is None:
                    e["rank"] = int(m.group(1))
            rank = int(m.group(1)) if rank is None else rank
        if len(self.items) < _KEEP:
            self.items.append({"rank": rank, "text": text, "group": self.group, "where": where})

    def first(self, rank=None, any_rank=True):
        """The lines of the first group: of ``rank`` when given (any rank's when ``any_rank`` and that rank
        has none)."""
        leads = self.items if rank is None else [e for e in self.items if e["rank"] == rank] or (
            self.items if any_rank else [])
        if not leads:
            return []
        group = leads[0]["group"]
        return [e for e in self.items if e["group"] == group]


def _exception_line(buf, pos, end):
    """(error line, its offset in buf, 'file:line' of the last frame) of the traceback whose header ends
    at pos; (None, None, frame) if buf ends first."""
    where = None
    while pos < end:
        nl = buf.index(b"\n", pos)
        line, start, pos = buf[pos:nl], pos, nl + 1
        m = _RANK_PREFIX.match(line)
        line = line[m.end():] if m else line
        if f := _FRAME.match(line):
            where = f"{_text(f.group(1))}:{_text(f.group(2))}"
        elif line and line[0] not in b" \t[" and not (line[:1] in b"IWEF" and line[1:5].isdigit()):
            return line, start, where
    return None, None, where


def _root_cause(buf, pos, end, root):
    """Read torchrun's root-cause fields from pos into root; True when the section ended in buf."""
    while pos < end:
        nl = buf.index(b"\n", pos)
        line, pos = buf[pos:nl], nl + 1
        m = _ROOT_FIELD.match(line)
        if m:
            root.setdefault(_text(m.group(1)), _text(m.group(2)).strip())
        elif not line.startswith(b"[") or root:
            return True
    return False


def _signal_name(number):
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _classify(lines):
    """(cause, the line that says so, details) of one failure's lines (see ``_failure``)."""
    texts = [e["text"] for e in lines]
    for t in texts:
        if _OOM.search(t):
            size, dev = _OOM_SIZE.search(t), _OOM_DEVICE.search(t)
            return "oom", t, {"size": size and size.group(1), "device": dev and int(dev.group(1) or dev.group(2))}
    for t in texts:
        if _STARTUP.search(t):
            return "startup", t, {}
    for t in texts:
        if _TIMEOUT.search(t):
            code = _ASCEND_CODE.search(t)
            return "timeout", t, {"code": code and code.group(1)}
    for t in texts:
        if m := _ACL.search(t):
            return "device", t, {"code": m.group(2), "call": m.group(1)}
        if m := _CUDA.search(t):
            return "device", t, {"code": "CUDA", "call": None}
    for t in texts:
        if m := _ASCEND_CODE.search(t):
            return "comm", t, {"code": m.group(1)}
    for t in texts:
        if _COMM.search(t):
            return "comm", t, {}
    return "error", texts[0] if texts else None, {}


def _failure(root, events, source):
    """What made the run fail: the first observed failure.

    ``root``: torchrun's fields (rank, exitcode) of the failed child (its root-cause report, or its
    agent's line for a child killed by a signal), or empty; ``events``: the log's failure lines
    (``_Events``); ``source`` says where ``root`` comes from.  The root's rank gives the lines (its
    first group; when no line names a rank, the first group); without a root, the first group.
    Cause, in this order: ``oom``, ``startup`` (import / CANN environment), ``timeout`` (a watchdog,
    "times out", "timed out", EI0002/EI0006), ``device`` (an ACL error code and its call, a CUDA
    error), ``comm`` (an HCCL/HCCP code such as EJ0001, or HCCL/NCCL named), ``killed`` (a signal),
    ``error`` (anything else).
    """
    rank = exitcode = sig = None
    if root:
        m = _ROOT_INT.match(root.get("rank", ""))
        rank = int(m.group(1)) if m else None
        m = _ROOT_INT.match(root.get("exitcode", ""))
        exitcode = int(m.group(1)) if m else None
        named = any(e["rank"] is not None for e in events.items)
        lines = events.first(rank, any_rank=not named)
        if exitcode is not None and exitcode < 0:
            sig = _signal_name(-exitcode)
            lines = [e for e in lines if e["rank"] == rank]  # a killed rank leaves no lines of its own
    else:
        source, lines = "traceback", events.first()
        rank = lines[0]["rank"] if lines else None
        ranks = [e["rank"] for e in lines if e["rank"] is not None]
        rank = rank if rank is not None else (ranks[0] if ranks else None)
    cause, error, more = _classify(lines)
    if error and (m := _GOT_SIGNAL.search(error)):
        sig = sig or _signal_name(int(m.group(1)))
    if cause == "error" and sig:
        cause = "killed"
    where = next((e["where"] for e in lines if e["where"]), None) if cause == "error" else None
    return {"cause": cause, "rank": rank, "exitcode": exitcode, "signal": sig, "error": error, "source": source,
            "code": more.get("code"), "call": more.get("call"), "device": more.get("device"),
            "size": more.get("size"), "where": where}


def _failure_reason(failure):
    """One line naming the root of a failure (see ``_failure``)."""
    rank, error, sig, cause = failure["rank"], failure["error"], failure["signal"], failure["cause"]
    on = f" on rank {rank}" if rank is not None else ""
    killed = f", killed by {sig}" if sig else ""
    if cause == "oom":  # the line names the device and the size (also in failure["device"], ["size"])
        return f"out of memory{on}{killed}: {error}"
    if cause == "timeout":
        return f"timeout{on}" + (f" ({failure['code']})" if failure["code"] else "") + killed + f": {error}"
    if cause == "device":
        what = "CUDA error" if failure["code"] == "CUDA" else f"error code {failure['code']}" + (
            f" in {failure['call']}" if failure["call"] else "")
        return f"device error{on} ({what}){killed}: {error}"
    if cause == "comm":
        return f"communication error{on}" + (f" ({failure['code']})" if failure["code"] else "") + killed + \
            f": {error}"
    if cause == "startup":
        return f"start-up failure{on}{killed}: {error}"
    who = f"rank {rank} " if rank is not None else ""
    if cause == "killed":
        return f"{who}killed by {sig}" + (f": {error}" if error else "")
    if error:
        return (f"rank {rank}: " if rank is not None else "") + error + \
            (f" (at {failure['where']})" if failure["where"] else "")
    if failure["exitcode"] is None:
        return f"{who}failed (torchrun root cause)"
    return f"{who}failed with exit code {failure['exitcode']}"


def _parse_log(path, f, jitter_factor):
    report = _Report()
    info = {"reports": 0, "tracebacks": []}
    events = _Events()  # the failure lines, grouped (tracebacks' error lines among them)
    root = {}         # torchrun's root-cause fields
    agent = None      # the first child torchrun's agent saw killed by a signal: the root if its report is missing
    gen_time = None
    finished = report_open = in_root = False
    in_tb = None      # the rank prefix of a traceback whose error line is in the next block
    for buf, end in _chunks(f):
        skip = -1        # the offset of a traceback's error line already read (not read twice)
        if in_tb is not None:  # a traceback header ended the previous block
            line, at, where = _exception_line(buf, 0, end)
            if line:
                _keep(info["tracebacks"], line)
                events.add(in_tb, line, True, where)
                skip = at - 1
            in_tb = None if line else in_tb
        if in_root:
            in_root = not _root_cause(buf, 0, end, root)
        for m in _LOG_LINE.finditer(buf, 0, end):
            run, marker, rest, prefix, root_header, agent_exit, agent_rank, tag, alert = m.groups()
            if alert:
                explains = alert[:1] == b"E" and alert[6:8] == b": " or alert.startswith(b"[ERROR]")
                if m.start() == skip or alert.startswith(b"[CRITICAL]") and b"Error Message:" not in alert:
                    continue
                # an exception line outside a traceback counts when it names a known failure (out of
                # memory, an import, a device or communication error, a timeout), not any "XError: ..."
                if explains or alert[:1] in b"[ " or _classify([{"text": _text(alert)}])[0] != "error":
                    events.add(tag, alert, not explains)
            elif run:
                report_open, start = True, 0
                for h in _HEADER.finditer(run):
                    sec = _section(h.group(2))
                    if sec in report.seen:  # a new report: forget the previous one
                        report, start = _Report(), run.rfind(b"\n", 0, h.start()) + 1
                    if not report.seen:
                        info["reports"] += 1
                        info["task"] = _text(h.group(1)) + "2V"
                    report.seen.add(sec)
                report.add(run[start:])
            elif marker == b"Generating video used time":
                t = _GEN_TIME.match(rest)
                gen_time = float(t.group(1)) if t else gen_time
                report_open = False
            elif marker == b"Finished.":
                finished = True
            elif marker:
                info[_LOG_INFO[marker]] = _text(rest).strip()
            elif root_header:
                if not root:  # the first report of a root cause counts
                    in_root = not _root_cause(buf, m.end() + 1, end, root)
            elif agent_exit:
                if agent_exit.startswith(b"-") and agent is None:  # a signal: that rank left no traceback
                    agent = {"rank": _text(agent_rank), "exitcode": _text(agent_exit)}
            else:
                line, at, where = _exception_line(buf, m.end() + 1, end)
                if line:
                    _keep(info["tracebacks"], line)
                    events.add(prefix, line, True, where)
                    skip = at - 1
                in_tb = (prefix or b"") if line is None else None
    report.flush()
    x = report.x

    cut = report_open or (x["stage_totals"] and not x["request_peak_mem"])
    metrics, notes = _metrics(x, not cut)
    metrics["gen_time"] = gen_time
    warnings = _health(x, jitter_factor) + notes
    tracebacks = info["tracebacks"]
    if info["reports"] > 1:
        warnings.append(f"the log holds {info['reports']} profile reports; took the last")
    if job_args(info.get("job_args")).get("profile_mode") == "detailed":
        info["profile_mode"] = "detailed"
        if gen_time is not None:
            warnings.append(DETAILED)
    if not ({"rank", "exitcode"} & root.keys()):  # cut off before it named anything
        root = {}
    if (events.items or root or agent) and not finished:
        failure = _failure(root or agent, events, "torchrun root cause" if root else "torchrun agent")
        info["failure"] = failure
        status, reason = "failed", _failure_reason(failure)
    elif cut:
        status, reason = "incomplete", CUT_OFF
    elif not finished:
        status, reason = "failed", NO_FINISHED
    else:
        status, reason = "ok", ""
        warnings += [f"traceback in a finished run: {tb}" for tb in tracebacks]
    extra = _prune({**x, **info, "finished": finished})
    return _result(path, "log", status, reason, metrics, extra, warnings)


# ---------------------------------------------------------------- profile file

def _run_info(fields):
    info = {"time": _text(fields[1]), "task": _text(fields[2])}
    info.update(_text(f).partition("=")[::2] for f in fields[3:])
    return info


def _blocks(lines):
    """Yield each block (one run: RUN..END and its ATTN_RUN..ATTN_END) as it closes."""
    block = None
    for line in lines:
        line = line.strip()
        if not line:
            continue
        fields = line.split(b",")
        rec = _text(fields[0])
        if block is None or rec == "RUN" \
                or (rec in ("ATTN_RUN", "BLOCK_RUN") and rec in block["marks"]) \
                or (rec == "TOTAL" and not block["marks"] and len(fields) > 1  # legacy files
                    and _text(fields[1]) in block["x"]["stage_totals"]):
            if block is not None:
                yield block
            block = {"index": block["index"] + 1 if block else 0, "x": _tables(), "marks": set()}
        x = block["x"]
        if rec in _MARKERS:
            block["marks"].add(rec)
            if rec.endswith("RUN") and len(fields) >= 3:
                x[rec.lower() + "_info"] = _run_info(fields)
                x["task"] = _text(fields[2])
        elif rec not in _RECORDS or not _store(x, rec, fields[1:]):
            _unparsed(x, line)
    if block is not None:
        yield block


def _complete(block):
    marks = block["marks"]
    return all(start not in marks or end in marks for start, end in _PAIRS)


def _parse_profile(path, lines, block, jitter_factor):
    n, last, last_ok, picked = 0, None, None, None
    tail = collections.deque(maxlen=-block) if block is not None and block < 0 else None
    for b in _blocks(lines):
        n, last = n + 1, b
        if _complete(b):
            last_ok = b
        if tail is not None:
            tail.append(b)
        elif block == b["index"]:
            picked = b
    warnings = []
    if block is None:
        picked = last_ok or last
        if last_ok is not None and last_ok is not last:
            warnings.append(f"the last block ({last['index']}) is cut off; took block {last_ok['index']}")
    elif tail is not None:
        picked = tail[0] if len(tail) == -block else None
    if picked is None:
        raise ValueError(f"{path}: block {block} out of range (the file holds {n} block(s))")
    if n > 1:
        warnings.append(f"{n} runs appended in one profile file; took block {picked['index']}")
    x = picked["x"]
    status, reason = ("ok", "") if _complete(picked) else ("incomplete", CUT_OFF)
    metrics, notes = _metrics(x, status == "ok")
    extra = _prune({**x, "blocks": n, "block": picked["index"]})
    return _result(path, "profile", status, reason, metrics, extra,
                   _health(x, jitter_factor) + notes + warnings)


# ---------------------------------------------------------------- time file

def _exit_reason(code):
    """``exit code N``, naming a timeout (124, coreutils timeout) or a signal (128 + N, as bash reports it)."""
    if code == 124:
        return "exit code 124 (timeout)"
    if 128 < code <= 128 + 64:
        return f"exit code {code} (killed by {_signal_name(code - 128)})"
    return f"exit code {code}"


def _parse_time(path, lines):
    real_time, extra, other = None, {}, []
    for line in lines:
        line = line.strip()
        if line.startswith(b"REAL_TIME_SECONDS="):
            try:
                real_time = _float(line[18:])
            except ValueError:
                _keep(other, line)
        elif m := _TIME_EXIT.match(line):
            extra[EXIT_CODE] = int(m.group(1))
        elif m := _TIME_SIGNAL.match(line):
            extra["signal"] = int(m.group(1))
        elif line:
            _keep(other, line)
    if other:
        extra["other_lines"] = other
    status, reason = "ok", ""
    if "signal" in extra:
        status, reason = "failed", f"killed by {_signal_name(extra['signal'])} (signal {extra['signal']})"
    elif EXIT_CODE in extra:
        status, reason = "failed", _exit_reason(extra[EXIT_CODE])
    metrics = dict.fromkeys(METRICS)
    metrics["real_time"] = real_time
    return _result(path, "time", status, reason, metrics, extra)


# ---------------------------------------------------------------- public API

def parse_file(path, block=None, jitter_factor=JITTER_FACTOR):
    """Parse one log, profile file or time file.

    Returns ``{"path", "kind", "status", "reason", "metrics", "extra",
    "warnings", "memory_measured"}``; ``kind`` is None when the file could
    not be read (a missing file, not a regular file, not text).
    ``memory_measured`` is True when ``metrics["reserved_peak"]`` was read.
    ``block`` picks a run of an appended profile file (0-based, negative
    from the end; default: the last complete one) and raises ValueError
    when out of range; it is ignored for other kinds.
    """
    path = os.fspath(path)
    try:
        f, why = _open_regular(path)
    except (OSError, ValueError) as e:  # ValueError: a NUL byte in the path
        return _result(path, status="unreadable", reason=getattr(e, "strerror", None) or str(e))
    if f is None:
        return _result(path, status="unreadable", reason=why)
    try:
        with f:
            kind, why = _sniff(f.read(_HEAD))
            if kind is None:
                return _result(path, status="unreadable", reason=why)
            f.seek(0)
            if kind == "log":
                return _parse_log(path, f, jitter_factor)
            if kind == "profile":
                return _parse_profile(path, _lines(f), block, jitter_factor)
            return _parse_time(path, _lines(f))
    except OSError as e:
        return _result(path, status="unreadable", reason=e.strerror or str(e))


def _open_regular(path):
    """(binary reader, None) for a regular file, else (None, why not); never waits for a FIFO's writer."""
    what = _not_regular(os.stat(path).st_mode)  # first: a socket cannot even be opened
    if not what:
        # O_NONBLOCK: should a FIFO replace the file after the check, opening it does not wait
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
        what = _not_regular(os.fstat(fd).st_mode)
        if not what:
            return os.fdopen(fd, "rb"), None
        os.close(fd)
    return None, f"not a regular file ({what})"


def _not_regular(mode):
    """None for a regular file, else what it is."""
    if stat.S_ISREG(mode):
        return None
    kinds = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
             (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))
    return next((name for test, name in kinds if test(mode)), "not a file")


_NOT_OUTPUTS = {MANIFEST, EXIT_CODE, RUN_SCRIPT, OUTPUT_CHECK, CANCELLED, LINKS}  # read by name, or not a run output
_PRECEDENCE = {"profile": 0, "log": 1, "time": 2}  # the profile file is the most precise


def _cancel_note(path):
    """'cancelled at <when> by <who>' from a run directory's cancelled file (one JSON line)."""
    try:
        with open(path, encoding="utf-8") as f:
            note = json.loads(f.read(4096) or "{}")
    except (OSError, ValueError):
        note = {}
    note = note if isinstance(note, dict) else {}
    return f"cancelled at {note.get('cancelled_at', '?')} by {note.get('by', '?')}"


def parse_run(path, jitter_factor=JITTER_FACTOR):
    """Parse one run: a single file, or a run directory whose files are merged.

    Returns the keys of ``parse_file`` plus ``sources`` (the per-file
    results) and ``manifest``; a directory's ``kind`` is ``"run"``.  A run
    directory adds ``devices`` (:func:`wanbench.devices.run_health`: the
    snapshots before and after the run, None without a ``health/`` folder)
    and ``output_check`` (``output_check.json``: the output's score against
    the control's, None when not checked).
    """
    path = os.fspath(path)
    if not os.path.isdir(path):
        result = parse_file(path, jitter_factor=jitter_factor)
        return {**result, "sources": [result], "manifest": {}, "devices": None, "output_check": None}
    warnings, sources, skipped = [], [], []
    manifest = read_manifest(path)
    if manifest is None:
        manifest = {}
        if os.path.exists(os.path.join(path, MANIFEST)):
            warnings.append(f"{MANIFEST} is not a readable JSON object; ignored")
    exit_code = read_exit_code(path, manifest)
    if exit_code is None and os.path.exists(os.path.join(path, EXIT_CODE)):
        warnings.append(f"{EXIT_CODE} unreadable or not a number; exit status unknown")
    for name in sorted(os.listdir(path)):
        p = os.path.join(path, name)
        if name.startswith(".") or not os.path.isfile(p):
            continue
        if name not in _NOT_OUTPUTS:
            src = parse_file(p, jitter_factor=jitter_factor)
            if src["reason"] == NOT_TEXT:  # a video or an archive beside the outputs
                skipped.append(name)
            else:
                sources.append(src)
    sources.sort(key=lambda s: _PRECEDENCE.get(s["kind"], 3))

    def name(s):
        return os.path.basename(s["path"])

    metrics, origin = dict.fromkeys(METRICS), {}
    for s in sources:
        for m, v in s["metrics"].items():
            if v is None:
                continue
            if metrics[m] is None:
                metrics[m], origin[m] = v, s
            elif abs(v - metrics[m]) > 0.5 * 10 ** -DECIMALS.get(m, 3) + 1e-9:
                o = origin[m]
                why = " (the profile file is more precise)" if o["kind"] == "profile" != s["kind"] else ""
                warnings.append(f"{m} differs: {metrics[m]} in {name(o)} vs {v} in {name(s)};"
                                f" took {name(o)}{why}")

    logs = [s for s in sources if s["kind"] == "log"]
    problems = []
    if exit_code:
        failure = logs[0]["extra"].get("failure") if logs else None
        problems.append(("failed", _exit_reason(exit_code) + (f": {_failure_reason(failure)}" if failure else "")))
    problems += [(s["status"], f"{name(s)}: {s['reason']}") for s in sources if s["status"] != "ok"]
    if not sources:
        problems.append(("unreadable", "no run files in the directory"))
    elif not logs:
        problems.append(("failed", "no run log in the directory"))
    status, reason = max(problems, key=lambda p: STATUSES.index(p[0]), default=("ok", ""))
    if os.path.isfile(os.path.join(path, CANCELLED)):  # stopped on purpose: never judged (wanbench.rundirs)
        status, reason = "cancelled", _cancel_note(os.path.join(path, CANCELLED))

    notes = {}
    for s in sources:
        for w in s["warnings"]:
            notes.setdefault(w, []).append(name(s))
    warnings = [f"{w} ({', '.join(files)})" for w, files in notes.items()] + warnings

    extra = {}
    for s in reversed(sources):
        extra.update(s["extra"])
    if exit_code is not None:
        extra[EXIT_CODE] = exit_code
    if skipped:
        extra["skipped"] = skipped
    output_check = _read_output_check(os.path.join(path, OUTPUT_CHECK), warnings)
    return {**_result(path, "run", status, reason, metrics, extra, warnings),
            "sources": sources, "manifest": manifest,
            "devices": devices.run_health(path, manifest.get("platform")), "output_check": output_check}


def _read_output_check(path, warnings):
    """``output_check.json`` as a dict, None when absent; a bad file is a warning, never an error."""
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        warnings.append(f"{OUTPUT_CHECK} unreadable ({e}); output not judged")
        return None
    if not isinstance(data, dict):
        warnings.append(f"{OUTPUT_CHECK} is not a JSON object; output not judged")
        return None
    return data
