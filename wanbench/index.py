"""An SQLite index of the stored runs, rebuilt from the run directories at any time.

Run directories (``<results>/<host>/<run_id>/``) are immutable and are the
truth; the index (``<results>/index.sqlite``) is a cache of what they say, made
for queries over many runs (history, alarms, reports):

* ``runs``: one row per finished run: host (its directory), run id, variant,
  role, control key, settings fingerprint, commit and dirty flag, play, block,
  position, warm-up flag, started/ended at, night (the play, else the UTC date
  of ``started_at``), exit code, parsed status and reason, whether it was
  imported, the warnings and the whole manifest (JSON);
* ``metrics``: the nine decision metrics of each run (a metric that was not
  read has no row);
* views ``hosts``, ``variants``, ``commits``, ``plays``, ``nights``.

Writes are atomic: the new index is written to a temporary file in the same
folder and moved over the old one with ``os.replace``; a lock file
(``.index.lock``) keeps two writers from losing each other's runs.  A run is
indexed only once it is complete: ``exit_code`` present, ``manifest.json``
readable with ``ended_at``, no in-progress marker (``.partial``,
``.in-progress``, ``.collecting``, a ``*.tmp`` left by the run script) and no
``<run_id>.tar.gz`` beside it (the collect role is still unpacking).  An
update drops the runs whose directory is gone (deleted or moved away).  The
content does not depend on the order runs were added: :func:`dump` of an index
built in one go equals that of one built run by run.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sqlite3
import tempfile
from datetime import datetime, timezone

from .parse import METRICS, parse_run
from .manifest import EXIT_CODE, MANIFEST, ManifestError, exit_code, workload, workload_id
from .manifest import read as read_manifest

__all__ = ["INDEX_NAME", "add_cli", "build", "dump", "open_index", "rebuild", "run_state", "runs",
           "series", "update"]

INDEX_NAME = "index.sqlite"
SCHEMA_VERSION = "2"  # 2: runs.workload (the workload identity, wanbench.manifest)
MARKERS = (".partial", ".in-progress", ".collecting", MANIFEST + ".tmp", EXIT_CODE + ".tmp")

_RUN_COLUMNS = (
    "host", "run_id", "variant", "role", "control_key", "fingerprint", "sha", "dirty", "play",
    "block", "position", "warmup", "started_at", "ended_at", "date", "night", "exit_code",
    "status", "reason", "imported", "memory_measured", "warnings", "manifest", "workload",
)
_SCHEMA = f"""
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE runs (
    host TEXT NOT NULL, run_id TEXT NOT NULL, variant TEXT, role TEXT, control_key TEXT,
    fingerprint TEXT, sha TEXT, dirty INTEGER, play TEXT, block INTEGER, position INTEGER,
    warmup INTEGER NOT NULL, started_at TEXT, ended_at TEXT, date TEXT, night TEXT NOT NULL,
    exit_code INTEGER, status TEXT NOT NULL, reason TEXT NOT NULL, imported INTEGER NOT NULL,
    memory_measured INTEGER NOT NULL, warnings TEXT NOT NULL, manifest TEXT NOT NULL, workload TEXT NOT NULL,
    PRIMARY KEY (host, run_id));
CREATE TABLE metrics (
    host TEXT NOT NULL, run_id TEXT NOT NULL, metric TEXT NOT NULL, value REAL NOT NULL,
    PRIMARY KEY (host, run_id, metric));
CREATE INDEX runs_series ON runs (host, variant, night);
CREATE VIEW hosts AS SELECT host, COUNT(*) AS runs, MIN(started_at) AS first, MAX(started_at) AS last
    FROM runs GROUP BY host;
CREATE VIEW variants AS SELECT host, variant, COUNT(*) AS runs FROM runs GROUP BY host, variant;
CREATE VIEW commits AS SELECT sha, MIN(started_at) AS first, MAX(started_at) AS last, COUNT(*) AS runs
    FROM runs WHERE sha IS NOT NULL GROUP BY sha;
CREATE VIEW plays AS SELECT host, play, MIN(started_at) AS started_at, COUNT(*) AS runs
    FROM runs WHERE play IS NOT NULL GROUP BY host, play;
CREATE VIEW nights AS SELECT host, night, MIN(date) AS date, COUNT(*) AS runs,
    SUM(status != 'ok' OR exit_code IS NOT 0) AS broken FROM runs GROUP BY host, night;
INSERT INTO meta VALUES ('schema_version', '{SCHEMA_VERSION}');
"""


# ---------------------------------------------------------------- run directories

def run_state(run_dir):
    """None when ``run_dir`` is a complete run, else why it is not indexed (one phrase)."""
    for name in MARKERS:
        if os.path.lexists(os.path.join(run_dir, name)):
            return f"in progress ({name} present)"
    if os.path.lexists(os.path.normpath(run_dir) + ".tar.gz"):
        return "still being collected (its archive is beside it)"
    try:
        manifest = read_manifest(run_dir)
    except ManifestError as e:  # a field of the wrong type: skipped and listed, the rest is indexed
        return str(e).split(": ", 2)[-1].join((f"{MANIFEST}: ", ""))
    if manifest is None:
        return f"no readable {MANIFEST}"
    if not os.path.lexists(os.path.join(run_dir, EXIT_CODE)):
        return f"no {EXIT_CODE} (running or half-collected)"
    if exit_code(run_dir) is None:
        return f"{EXIT_CODE} is not a number"
    if not manifest.get("ended_at"):
        return f"{MANIFEST} has no ended_at (not finished)"
    return None


def run_dirs(results_dir):
    """Every candidate run directory ``<results>/<host>/<run_id>``, sorted (dot names skipped)."""
    found = []
    try:
        hosts = sorted(os.listdir(results_dir))
    except OSError as e:
        raise ValueError(f"{results_dir}: cannot list the results folder ({e.strerror})") from None
    for host in hosts:
        base = os.path.join(results_dir, host)
        if host.startswith(".") or not os.path.isdir(base):
            continue
        for name in sorted(os.listdir(base)):
            path = os.path.join(base, name)
            if not name.startswith(".") and os.path.isdir(path):
                found.append(path)
    return found


def _utc(stamp):
    """(ISO text, UTC date) of a manifest time stamp, or (text, None) when it is not one."""
    if not isinstance(stamp, str) or not stamp:
        return None, None
    try:
        t = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return stamp, None
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    return stamp, t.astimezone(timezone.utc).date().isoformat()


def _int(v):
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _text(v):
    return v if isinstance(v, str) and v else None


def _bool(v):
    return int(v) if isinstance(v, bool) else None


def _record(run_dir):
    """(runs row, {metric: value}) of a complete run directory."""
    run_dir = os.path.normpath(run_dir)
    r = parse_run(run_dir)
    m = r["manifest"]
    sched = m.get("schedule") if isinstance(m.get("schedule"), dict) else {}
    repo = m.get("repo") if isinstance(m.get("repo"), dict) else {}
    started, date = _utc(m.get("started_at"))
    ended, end_date = _utc(m.get("ended_at"))
    play = _text(sched.get("play"))
    night = play or date or end_date or "unknown"
    row = {
        "host": os.path.basename(os.path.dirname(run_dir)), "run_id": os.path.basename(run_dir),
        "variant": _text(m.get("variant")), "role": _text(m.get("role")),
        "control_key": _text(m.get("control_key")), "fingerprint": _text(m.get("fingerprint")),
        "sha": _text(repo.get("sha")), "dirty": _bool(repo.get("dirty")), "play": play,
        "block": _int(sched.get("block")), "position": _int(sched.get("position")),
        "warmup": int(bool(sched.get("warmup") or m.get("warmup"))),
        "started_at": started, "ended_at": ended, "date": date or end_date, "night": night,
        "exit_code": _int(r["extra"].get("exit_code")), "status": r["status"], "reason": r["reason"],
        "imported": int(m.get("imported") is True), "memory_measured": int(r["memory_measured"]),
        "warnings": json.dumps(r["warnings"]), "manifest": json.dumps(m, sort_keys=True),
        "workload": workload_id(workload(r)),  # what ran (its log over its manifest): the history's series key
    }
    return row, {k: v for k, v in r["metrics"].items() if v is not None}


# ---------------------------------------------------------------- writing

@contextlib.contextmanager
def _locked(results_dir):
    with open(os.path.join(results_dir, ".index.lock"), "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _index_path(results_dir):
    if not os.path.isdir(results_dir):
        raise ValueError(f"{results_dir}: not a folder")
    path = os.path.join(results_dir, INDEX_NAME)
    if os.path.lexists(path) and not os.path.isfile(path):
        raise ValueError(f"{path}: not a file (the index is one file; move this away)")
    return path


def _write(results_dir, fill, start_from=None):
    """Write a new index: copy ``start_from`` (or an empty schema), ``fill(db)``, move into place."""
    path = _index_path(results_dir)
    fd, tmp = tempfile.mkstemp(prefix=".index.", suffix=".tmp", dir=results_dir)
    os.close(fd)
    try:
        db = sqlite3.connect(tmp)
        try:
            if start_from:
                src = sqlite3.connect(f"file:{start_from}?mode=ro", uri=True)
                try:
                    src.backup(db)
                finally:
                    src.close()
            else:
                db.executescript(_SCHEMA)
            result = fill(db)
            db.commit()
        except sqlite3.Error as e:
            raise ValueError(f"{path}: cannot write the index ({e})") from None
        finally:
            db.close()
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)  # mkstemp makes it 0600
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return result


def _add(db, dirs, results_dir):
    """Index the complete runs among ``dirs`` not indexed yet; {"added": [...], "skipped": [(dir, why)]}."""
    known = set(db.execute("SELECT host, run_id FROM runs"))
    added, skipped = [], []
    for d in sorted(os.path.normpath(os.fspath(d)) for d in dirs):
        key = (os.path.basename(os.path.dirname(d)), os.path.basename(d))
        if key in known:
            continue
        if os.path.realpath(os.path.dirname(os.path.dirname(d))) != os.path.realpath(results_dir):
            why = f"not a run directory of {results_dir} (<results>/<host>/<run_id>)"
        else:
            why = run_state(d) if os.path.isdir(d) else "not a directory"
        if why:
            skipped.append((d, why))
            continue
        row, metrics = _record(d)
        db.execute(f"INSERT INTO runs ({', '.join(_RUN_COLUMNS)}) VALUES ({', '.join('?' * len(_RUN_COLUMNS))})",
                   [row[c] for c in _RUN_COLUMNS])
        db.executemany("INSERT INTO metrics VALUES (?, ?, ?, ?)",
                       [(*key, k, v) for k, v in metrics.items()])
        known.add(key)
        added.append(d)
    return {"added": added, "skipped": skipped}


def _drop_gone(db, results_dir):
    """Remove the indexed runs whose directory is gone (deleted, moved away); their paths, sorted."""
    gone = [(h, r) for h, r in db.execute("SELECT host, run_id FROM runs ORDER BY host, run_id")
            if not os.path.isdir(os.path.join(results_dir, h, r))]
    for table in ("runs", "metrics"):
        db.executemany(f"DELETE FROM {table} WHERE host = ? AND run_id = ?", gone)
    return [os.path.join(results_dir, h, r) for h, r in gone]


def _usable(path):
    """True when ``path`` is an index of this schema version."""
    if not os.path.isfile(path):
        return False
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        finally:
            db.close()
    except sqlite3.Error:
        return False
    return row is not None and row[0] == SCHEMA_VERSION


def rebuild(results_dir):
    """Build the index from scratch from every run directory; returns {path, added, skipped, runs}."""
    results_dir = os.fspath(results_dir)
    with _locked_dir(results_dir):
        out = _write(results_dir, lambda db: _add(db, run_dirs(results_dir), results_dir))
    return _summary(results_dir, out)


def build(results_dir):
    """Bring the index up to date: add the complete runs it lacks (a full rebuild if there is none)."""
    results_dir = os.fspath(results_dir)
    return update(results_dir, None)


def update(results_dir, dirs=None):
    """Add the complete runs among ``dirs`` (default: every run directory) to the index, atomically.

    Runs already indexed are left as they are (run directories are
    immutable); a missing or outdated index is rebuilt from all directories.
    """
    results_dir = os.fspath(results_dir)
    path = _index_path(results_dir)
    with _locked_dir(results_dir):
        if not _usable(path):
            out = _write(results_dir, lambda db: _add(db, run_dirs(results_dir), results_dir))
        else:
            todo = run_dirs(results_dir) if dirs is None else list(dirs)
            out = _write(results_dir, lambda db: {"dropped": _drop_gone(db, results_dir),
                                                  **_add(db, todo, results_dir)}, start_from=path)
    return _summary(results_dir, out)


@contextlib.contextmanager
def _locked_dir(results_dir):
    _index_path(results_dir)
    with _locked(results_dir):
        yield


def _summary(results_dir, out):
    with contextlib.closing(open_index(results_dir)) as db:
        total = db.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
    return {"path": os.path.join(results_dir, INDEX_NAME), "added": out["added"],
            "dropped": out.get("dropped", []), "skipped": out["skipped"], "runs": total}


# ---------------------------------------------------------------- reading

def open_index(where):
    """A read-only connection to the index of a results folder (or an index file)."""
    where = os.fspath(where)
    path = os.path.join(where, INDEX_NAME) if os.path.isdir(where) else where
    if not os.path.isfile(path):
        raise ValueError(f"{path}: no index (run `wanbench index {os.path.dirname(path) or '.'}`)")
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    db.row_factory = sqlite3.Row
    return db


@contextlib.contextmanager
def _connection(db):
    """A connection to ``db`` (a connection, a results folder or an index file); sqlite errors become ValueError."""
    where = "index" if isinstance(db, sqlite3.Connection) else os.fspath(db)
    try:
        if isinstance(db, sqlite3.Connection):
            yield db
        else:
            conn = open_index(db)
            try:
                yield conn
            finally:
                conn.close()
    except sqlite3.Error as e:
        raise ValueError(f"{where}: not a readable wanbench index ({e});"
                         " rebuild it with `wanbench index --rebuild`") from None


def dump(db):
    """The index's content as sorted lines (tables and rows), for comparing two indexes."""
    lines = []
    with _connection(db) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type IN ('table', 'view', 'index') ORDER BY name")]
        lines += [f"object {t}" for t in tables]
        for table in ("meta", "runs", "metrics"):
            rows = conn.execute(f"SELECT * FROM {table}").fetchall()
            lines += sorted(f"{table} {json.dumps(list(r))}" for r in rows)
    return lines


def series(db, host, variant, metric, fingerprint=None, workload=None):
    """One entry per night of ``metric`` for ``variant`` on ``host``, oldest first.

    Only judged runs count: exit code 0, parsed status ``ok``, not a warm-up.
    Each entry: {night, date, started_at, commit (the night's last run's
    commit), commits (all, in run order), fingerprints, n, median, cv_pct,
    values, runs}.  ``fingerprint`` keeps the runs of those settings only,
    ``workload`` those of that workload identity (:func:`keys` gives them).
    """
    if metric not in METRICS:
        raise ValueError(f"metric {metric!r}: expected one of {', '.join(METRICS)}")
    from .stats import summary

    query = ("SELECT r.night, r.date, r.started_at, r.sha, r.fingerprint, r.run_id, m.value"
             " FROM runs r JOIN metrics m ON m.host = r.host AND m.run_id = r.run_id"
             " WHERE r.host = ? AND r.variant = ? AND m.metric = ? AND r.exit_code = 0"
             " AND r.status = 'ok' AND r.warmup = 0")
    query, params = _filtered(query, "r.started_at, r.run_id", **{"r.fingerprint": fingerprint,
                                                                    "r.workload": workload})
    params = [host, variant, metric, *params]
    nights = {}
    with _connection(db) as conn:
        for night, date, started, sha, fp, run_id, value in conn.execute(query, params):
            n = nights.setdefault(night, {"night": night, "date": date, "started_at": started,
                                          "commits": [], "fingerprints": [], "values": [], "runs": []})
            if sha and sha not in n["commits"]:
                n["commits"].append(sha)
            if fp and fp not in n["fingerprints"]:
                n["fingerprints"].append(fp)
            n["values"].append(value)
            n["runs"].append(run_id)
    out = []
    for n in nights.values():
        s = summary(n["values"])
        out.append({**n, "commit": n["commits"][-1] if n["commits"] else None,
                    "n": s["n"], "median": s["median"], "cv_pct": s["cv_pct"]})
    return out


def _filtered(query, order, **equal):
    """``query`` with an ``AND column = ?`` for each given (truthy) filter, then ``order``; (sql, params)."""
    given = {k: v for k, v in equal.items() if v}
    return query + "".join(f" AND {k} = ?" for k in given) + f" ORDER BY {order}", list(given.values())


def keys(db, host=None, variant=None):
    """The (host, variant, workload) series that have indexed runs, sorted; optionally only some.

    A variant's runs of another workload (task, size, steps, ranks...) are another series."""
    sql, params = _filtered("SELECT host, variant, workload FROM runs WHERE variant IS NOT NULL",
                            "host, variant, MIN(started_at), workload", host=host, variant=variant)
    sql = sql.replace(" ORDER BY ", " GROUP BY host, variant, workload ORDER BY ")
    with _connection(db) as conn:
        return [tuple(r) for r in conn.execute(sql, params)]


def broken_runs(db, host=None, night=None):
    """Runs that did not finish cleanly (exit code not 0 or status not ok): [{host, run_id, variant, night, why}]."""
    sql, params = _filtered("SELECT host, run_id, variant, night, exit_code, status, reason FROM runs"
                            " WHERE (exit_code IS NOT 0 OR status != 'ok')", "host, run_id", host=host, night=night)
    with _connection(db) as conn:
        return [{"host": h, "run_id": r, "variant": v, "night": n, "why": reason or f"{status}, exit code {code}"}
                for h, r, v, n, code, status, reason in conn.execute(sql, params)]


def runs(db, host=None, night=None):
    """The indexed runs, optionally of one host and/or night: [{host, run_id, variant, role, night, warmup,
    exit_code, status}] in start order."""
    sql, params = _filtered("SELECT host, run_id, variant, role, night, warmup, exit_code, status FROM runs"
                            " WHERE 1 = 1", "started_at, host, run_id", host=host, night=night)
    cols = ("host", "run_id", "variant", "role", "night", "warmup", "exit_code", "status")
    with _connection(db) as conn:
        return [dict(zip(cols, r)) for r in conn.execute(sql, params)]


def imported_files(results_dir, names=("run.log", "perf.csv")):
    """{SHA-256 of a file: its run directory} of the imported runs' ``names`` files (the index updated first)."""
    build(results_dir)
    found = {}
    with _connection(results_dir) as conn:
        for host, run_id, manifest in conn.execute(
                "SELECT host, run_id, manifest FROM runs WHERE imported = 1 ORDER BY started_at, host, run_id"):
            files = (json.loads(manifest).get("import") or {}).get("files") or {}
            for name in names:
                digest = (files.get(name) or {}).get("sha256")
                if isinstance(digest, str):
                    found.setdefault(digest, os.path.join(results_dir, host, run_id))
    return found


# ---------------------------------------------------------------- CLI

def _handler(args):
    out = (rebuild if args.rebuild else build)(args.results_dir)
    verb = "rebuilt" if args.rebuild else "updated"
    lines = [f"{out['path']}: {verb}, {len(out['added'])} run(s) added, {out['runs']} indexed"]
    lines += [dropped_line(out)] * bool(out["dropped"])
    lines += [f"  skipped {d}: {why}" for d, why in out["skipped"]]
    return [], "\n".join(lines), []


def dropped_line(out):
    """The note on indexed runs whose directories are gone, from an update's result."""
    return (f"{len(out['dropped'])} run(s) dropped: directory gone ("
            + ", ".join(os.path.relpath(d, os.path.dirname(out["path"])) for d in out["dropped"]) + ")")


def add_cli(subparsers):
    """Add ``index [--rebuild] RESULTS_DIR`` to an argparse subparsers object."""
    p = subparsers.add_parser("index", help="build or update the SQLite index of a results folder")
    p.add_argument("results_dir", metavar="RESULTS_DIR")
    p.add_argument("--rebuild", action="store_true",
                   help="rebuild from the run directories from scratch (default: add new runs)")
    p.set_defaults(func=_handler)
    return p
