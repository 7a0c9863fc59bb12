"""Bring the team's old hand-made logs and profile files into proper run directories.

Before the suite, runs were kept as loose files in one folder, one name per
run: ``run_NAME.log`` (torchrun output), ``perf_NAME.csv`` (the profile file)
and, when ``/usr/bin/time`` was used, ``time_NAME.txt`` (or ``NAME.time``).
:func:`import_dir` groups the files of a folder by NAME, tells each file's
kind by its content (as the parser does; a name only groups files), and
writes one run directory per NAME under ``<results>/<host>/`` with
``run.log``, ``perf.csv``, ``time.txt``, ``exit_code`` and a ``manifest.json``
marked ``"imported": true``.  The source files are only read.

What an old file cannot say is recorded as unknown, never made up: no
commit (unless given), no settings fingerprint, no play.  ``started_at`` is
taken from the profile file's ``RUN`` line, else the log's first time stamp
(both in the host's local time, taken as UTC; the manifest says where it
came from), else the given ``started_at``.  The exit code is the time file's
(``Command exited with non-zero status N``) when it has one; otherwise it is
inferred (0 when the parsed run is ``ok``, else 1) and the manifest says so
(``exit_code_source``).

Importing is idempotent: the run id ends in a digest of the files' content,
so importing the same folder twice adds nothing; a log or profile file whose
content was imported before under any name is refused (unless ``again``), so
the same run never counts twice in a night.  Each run directory is
written under a dot name and renamed into place, so the index never sees a
half-written import.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from datetime import datetime, timedelta, timezone

from .manifest import EXIT_CODE, MANIFEST
from .parse import parse_file, parse_run

__all__ = ["add_cli", "first_stamp", "import_dir"]

_NAME = re.compile(r"^(?:run_(?P<a>.+)\.log|perf_(?P<b>.+)\.csv|profile_(?P<c>.+)\.csv"
                   r"|time_(?P<d>.+)\.txt|(?P<e>.+)\.time)$")
_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_TARGET = {"log": "run.log", "profile": "perf.csv", "time": "time.txt"}
_STAMPS = {
    "profile": re.compile(rb"^RUN,(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)", re.M),
    "log": re.compile(rb"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)[,.]?\d*\] ", re.M),
}


def _name_of(filename):
    m = _NAME.match(filename)
    return next((v for v in m.groupdict().values() if v), None) if m else None


def _safe(what, value):
    if not isinstance(value, str) or not _SAFE.match(value):
        raise ValueError(f"{what} {value!r}: expected letters, digits, '_', '.', '-' (no '/')")
    return value


def _digest(path):
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def first_stamp(kind, path):
    """The first time stamp of a profile file or log (``kind``), as a datetime marked UTC, or None.

    The workload writes the host's local time; it is taken as UTC (say so where it is shown)."""
    rx = _STAMPS.get(kind)
    if rx is None:
        return None
    with open(path, "rb") as fh:
        m = rx.search(fh.read(1 << 16))
    if not m:
        return None
    return datetime.strptime(m.group(1).decode(), "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc)


def _mode(full):
    mask = os.umask(0)
    os.umask(mask)
    return full & ~mask


def _iso(t):
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _groups(src):
    """({NAME: {kind: path}}, [(file, why not imported)]) of a folder of old files."""
    groups, skipped = {}, []
    for filename in sorted(os.listdir(src)):
        path = os.path.join(src, filename)
        if filename.startswith(".") or not os.path.isfile(path):
            continue
        name = _name_of(filename)
        if name is None:
            skipped.append((path, "name is not run_NAME.log, perf_NAME.csv, time_NAME.txt or NAME.time"))
            continue
        parsed = parse_file(path)
        if parsed["kind"] is None or parsed["status"] == "unreadable":
            skipped.append((path, f"unreadable: {parsed['reason']}"))
            continue
        have = groups.setdefault(name, {})
        if parsed["kind"] in have:
            skipped.append((path, f"a second {parsed['kind']} file for {name!r}"
                                  f" (first: {os.path.basename(have[parsed['kind']])})"))
            continue
        have[parsed["kind"]] = path
    return groups, skipped


def _manifest(name, files, variant, host, sha, started_at):
    stamps = [(kind, first_stamp(kind, files[kind])) for kind in ("profile", "log") if kind in files]
    stamps = [(k, t) for k, t in stamps if t]
    if stamps:
        started, source = stamps[0][1], f"first time stamp of the {stamps[0][0]} file (local time, taken as UTC)"
    elif started_at is not None:
        started, source = started_at, "given at import"
    else:
        return None, "no time stamp in the files; pass started_at"
    return {"variant": variant, "host": host, "role": None, "imported": True,
            "import": {"name": name, "files": {_TARGET[k]: {"source": os.path.basename(p), "sha256": _digest(p)}
                                               for k, p in sorted(files.items())}},
            "repo": {"sha": sha, "dirty": None}, "fingerprint": None,
            "started_at": _iso(started), "started_at_source": source}, None


def _finish(manifest, tmp):
    """Fill exit code and ended_at from the parsed run in ``tmp``; write manifest.json and exit_code."""
    run = parse_run(tmp)
    time_src = next((s for s in run["sources"] if s["kind"] == "time"), None)
    if time_src is not None and EXIT_CODE in time_src["extra"]:
        code, source = time_src["extra"][EXIT_CODE], "time file"
    elif time_src is not None and "signal" in time_src["extra"]:
        code, source = 128 + time_src["extra"]["signal"], "time file (signal)"
    else:
        code = 0 if run["status"] == "ok" else 1
        source = f"inferred: parsed status {run['status']}" + (f" ({run['reason']})" if run["reason"] else "")
    started = datetime.strptime(manifest["started_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    real = run["metrics"]["real_time"]
    manifest.update({"ended_at": _iso(started + timedelta(seconds=real or 0)), EXIT_CODE: code,
                     "exit_code_source": source})
    with open(os.path.join(tmp, MANIFEST), "w", encoding="utf-8") as fh:
        json.dump(manifest, fh, indent=2, sort_keys=True)
        fh.write("\n")
    with open(os.path.join(tmp, EXIT_CODE), "w", encoding="utf-8") as fh:
        fh.write(f"{code}\n")


def import_dir(src, results_dir, variant, host="imported", sha=None, started_at=None, again=False):
    """Import the old-style run files of folder ``src`` as runs of ``variant`` on ``host``.

    ``sha``: the commit the runs were made at, when known; ``started_at``: a
    UTC datetime for files without a time stamp.  A NAME whose log or profile
    file has the content of one imported before (any name, variant or host;
    :func:`wanbench.index.imported_files`) is skipped unless ``again``.
    Returns {"imported": [run dirs], "existing": [run dirs already there],
    "skipped": [(file or NAME, why)]}.  Raises ValueError for a bad folder,
    variant or host.
    """
    from . import index

    src, results_dir = os.fspath(src), os.fspath(results_dir)
    _safe("variant", variant)
    _safe("host", host)
    if not os.path.isdir(src):
        raise ValueError(f"{src}: not a folder")
    if not os.path.isdir(results_dir):
        raise ValueError(f"{results_dir}: not a folder")
    if started_at is not None and started_at.tzinfo is None:
        started_at = started_at.replace(tzinfo=timezone.utc)
    groups, skipped = _groups(src)
    seen = {} if again else index.imported_files(results_dir)  # {sha256: run dir}
    base = os.path.join(results_dir, host)
    os.makedirs(base, exist_ok=True)
    imported, existing = [], []
    for name, files in sorted(groups.items()):
        if "log" not in files and "profile" not in files:
            skipped.append((name, "no run log or profile file, only a time file"))
            continue
        manifest, why = _manifest(name, files, variant, host, sha, started_at)
        if manifest is None:
            skipped.append((name, why))
            continue
        digest = hashlib.sha256(json.dumps(manifest["import"]["files"], sort_keys=True).encode()).hexdigest()
        stamp = manifest["started_at"].replace("-", "").replace(":", "")
        run_id = f"{stamp}-{variant}-imported-{digest[:10]}"
        final = os.path.join(base, run_id)
        manifest["run_id"] = run_id
        if os.path.exists(final):
            existing.append(final)
            continue
        digests = [f["sha256"] for t, f in sorted(manifest["import"]["files"].items()) if t != "time.txt"]
        same = next((seen[d] for d in digests if d in seen), None)
        if same:
            skipped.append((name, f"already imported as {same} (same content; --again imports it anyway)"))
            continue
        tmp = tempfile.mkdtemp(prefix=f".import-{run_id}.", dir=base)
        try:
            for kind, path in files.items():
                shutil.copyfile(path, os.path.join(tmp, _TARGET[kind]))
            _finish(manifest, tmp)
            os.chmod(tmp, _mode(0o777))  # mkdtemp makes it 0700
            os.rename(tmp, final)
        except OSError as e:
            shutil.rmtree(tmp, ignore_errors=True)
            if os.path.isdir(final):  # imported by someone else meanwhile
                existing.append(final)
                continue
            raise OSError(e.errno, e.strerror, final) from None  # the run meant, not its dot name
        imported.append(final)
        if not again:
            seen.update(dict.fromkeys(digests, final))
    return {"imported": imported, "existing": existing, "skipped": skipped}


# ---------------------------------------------------------------- CLI

def _started(text):
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"--started-at {text!r}: expected an ISO date or time, e.g. 2026-03-04T09:12:00Z") from None
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def _handler(args):
    from . import index

    out = import_dir(args.dir, args.results, args.variant, host=args.host, sha=args.sha,
                     started_at=_started(args.started_at) if args.started_at else None, again=args.again)
    done = index.update(args.results, out["imported"] + out["existing"])
    runs = [parse_run(d) for d in out["imported"]]
    lines = [f"{args.dir}: {len(out['imported'])} run(s) imported, {len(out['existing'])} already there;"
             f" index {done['path']}: {done['runs']} run(s)"]
    lines += [f"  imported {d}" for d in out["imported"]]
    lines += [f"  skipped {what}: {why}" for what, why in out["skipped"]]
    return runs, "\n".join(lines), []


def add_cli(subparsers):
    """Add ``import DIR --variant NAME --results RESULTS_DIR [--host H]`` to an argparse subparsers object."""
    p = subparsers.add_parser("import", help="turn old hand-made logs and profile files into run directories")
    p.add_argument("dir", metavar="DIR", help="folder of run_NAME.log, perf_NAME.csv, time_NAME.txt files")
    p.add_argument("--variant", required=True, metavar="NAME")
    p.add_argument("--results", required=True, metavar="RESULTS_DIR")
    p.add_argument("--host", default="imported", metavar="H", help="host the runs ran on (default: imported)")
    p.add_argument("--sha", metavar="SHA", help="commit the runs were made at, when known")
    p.add_argument("--started-at", metavar="TIME", help="UTC start for files without a time stamp")
    p.add_argument("--again", action="store_true",
                   help="import a log or profile file even when one of the same content was imported before")
    p.set_defaults(func=_handler)
    return p
