"""The run-directory contract: its file names, the manifest reader, the exit-code reader, the workload identity.

A run directory (written by the rendered run script, collected to
``<results>/<host>/<run_id>/``) holds the run's outputs and, by these names:
:data:`MANIFEST` (what ran; completed by the run script), :data:`EXIT_CODE`
(one integer line, written last: the run has ended), :data:`OUTPUT_CHECK` (the
output's score against the control, written by the report role),
:data:`CANCELLED` (a cancelled run: never judged) and :data:`LINKS` (the
symbolic links as collected).  Every module reads them through this one.

:func:`read` returns a run directory's ``manifest.json`` as a dict (None when
missing or not a JSON object); a field the tools use with the wrong type is a
:class:`ManifestError` (a ValueError: one line naming the file and the key).
Manifests written before ``manifest_version`` existed are read alike.
:func:`exit_code` is the one exit-code reader: the ``exit_code`` file, else the
manifest's ``exit_code`` (the run script writes both), else None.

The **workload identity** (:func:`workload`) is what a run measured: task,
size, frames, steps, ranks and parallel sizes, platform, mode, prompt and
seed.  The render step records it (``workload`` and its ``workload_id``);
for older manifests it is computed from their settings and flags, and the
workload's own log (its ``Generation job args: Namespace(...)`` line) fills
in and overrides what the manifest says: the log is what ran.
:func:`log_disagreement` names the keys where log and manifest differ (the run
is ``invalid`` then); :func:`mismatch` names the keys where a run differs
from its control (plus ``commit``); :func:`duplicates` finds a run given twice.
"""

from __future__ import annotations

import hashlib
import json
import os

import re

__all__ = ["CANCELLED", "EXIT_CODE", "LINKS", "MANIFEST", "MANIFEST_VERSION", "OUTPUT_CHECK", "RUN_SCRIPT",
           "WORKLOAD_KEYS", "ManifestError", "digest", "duplicates", "exit_code", "job_args", "log_disagreement",
           "mismatch", "read", "workload", "workload_id", "workload_of_settings"]

MANIFEST_VERSION = 1
# the run directory's files read by name
MANIFEST = "manifest.json"          # what ran (render role), completed by the run script
EXIT_CODE = "exit_code"             # the run's exit status, one integer line, written last
RUN_SCRIPT = "run.sh"               # the rendered run script
OUTPUT_CHECK = "output_check.json"  # the output's score against the control (report role), on the controller
CANCELLED = "cancelled"             # the run was cancelled: status "cancelled", never judged
LINKS = "links.json"                # the run directory's symbolic links as collected: {name: target}, never followed
# the workload identity; the log's job-args field of each (None: the log does not say)
WORKLOAD_KEYS = {"task": "task", "size": "size", "frame_num": "frame_num", "steps": "sample_steps",
                 "nproc": None, "ulysses_size": "ulysses_size", "ring_size": "ring_size", "cfg_size": "cfg_size",
                 "platform": None, "mode": None, "prompt": "prompt", "seed": "base_seed"}
MISMATCH_KEYS = (*WORKLOAD_KEYS, "commit", "play")


class ManifestError(ValueError):
    """A manifest field of the wrong type (one line naming the file and the key)."""


_MAPPING, _INT, _BOOL, _TEXT = "a mapping", "a whole number", "true or false", "a string"
# key (dotted below a mapping) -> what it must be; a key absent or null is not checked
FIELDS = {
    "manifest_version": _INT, "run_id": _TEXT, "variant": _TEXT, "family": _TEXT, "role": _TEXT,
    "control_key": _TEXT, "mode": _TEXT, "fingerprint": _TEXT, "common_fingerprint": _TEXT, "workload_id": _TEXT,
    "host": _TEXT, "platform": _TEXT, "started_at": _TEXT, "ended_at": _TEXT, "play_id": _TEXT,
    "settings": _MAPPING, "flags": _MAPPING, "workload": _MAPPING,
    "repo": _MAPPING, "repo.sha": _TEXT, "repo.dirty": _BOOL,
    "schedule": _MAPPING, "schedule.block": _INT, "schedule.position": _INT, "schedule.warmup": _BOOL,
    "schedule.play": _TEXT, "schedule.repeats": _INT,
}
_CHECK = {_MAPPING: lambda v: isinstance(v, dict), _INT: lambda v: isinstance(v, int) and not isinstance(v, bool),
          _BOOL: lambda v: isinstance(v, bool), _TEXT: lambda v: isinstance(v, str)}


def check(data, where="manifest.json"):
    """``data`` when every known field has its type; ManifestError naming ``where`` and the key otherwise."""
    for key, kind in FIELDS.items():
        parent, _, leaf = key.rpartition(".")
        holder = data.get(parent) if parent else data
        value = holder.get(leaf) if isinstance(holder, dict) else None
        if value is not None and not _CHECK[kind](value):
            shown = repr(value)
            shown = shown if len(shown) <= 60 else shown[:57] + "..."
            raise ManifestError(f"{where}: {key} must be {kind}, got {shown}")
    return data


def read(run_dir):
    """The run directory's manifest (checked, see :func:`check`); None when missing or not a JSON object."""
    try:
        with open(os.path.join(run_dir, MANIFEST), encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return None
    return check(data, f"{run_dir}: {MANIFEST}") if isinstance(data, dict) else None


def exit_code(run_dir, manifest=None):
    """The run's exit code: the ``exit_code`` file's number; when that is missing or not a number, the
    ``manifest``'s ``exit_code`` (a dict, when given); None when neither says."""
    try:
        with open(os.path.join(run_dir, EXIT_CODE), encoding="utf-8") as fh:
            return int(fh.read().strip())
    except (OSError, ValueError):
        code = (manifest or {}).get(EXIT_CODE)
        return code if isinstance(code, int) and not isinstance(code, bool) else None


# ---------------------------------------------------------------- the workload identity

def _norm(value):
    return None if value is None else str(value)


def workload_of_settings(settings, flags=None):
    """The workload identity from resolved settings (catalog.resolve) and flags: {key: text or None}."""
    settings, flags = settings or {}, flags or {}
    out = {k: _norm(settings.get(k)) for k in WORKLOAD_KEYS}
    for k in ("ring_size", "cfg_size"):
        out[k] = _norm(flags.get(k, 1 if settings else None))
    out["seed"] = _norm(flags.get("base_seed"))
    return out


def workload_id(identity):
    """A short hash of a workload identity (the keys it knows)."""
    known = {k: v for k, v in sorted(identity.items()) if v is not None}
    return hashlib.sha256(json.dumps(known, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:16]


def _recorded(manifest):
    w = manifest.get("workload")
    if isinstance(w, dict):
        return {k: _norm(w.get(k)) for k in WORKLOAD_KEYS}
    return workload_of_settings(manifest.get("settings") if isinstance(manifest.get("settings"), dict) else {},
                                manifest.get("flags") if isinstance(manifest.get("flags"), dict) else {})


# one field of the job-args Namespace: name=value (quoted, bracketed or bare), then ', ' or the closing ')'
_NS_ITEM = re.compile(r"""(\w+)=('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|\[[^\]]*\]|[^,()]*)(?:, |\)$)""")


def job_args(text):
    """Every field of the job-args Namespace (``Generation job args: Namespace(...)``) as {name: text}, unquoted."""
    text = text or ""
    start = text.find("Namespace(")
    fields, pos = {}, start + len("Namespace(")
    while start >= 0 and (m := _NS_ITEM.match(text, pos)):
        value = m.group(2)
        fields[m.group(1)] = value[1:-1] if value[:1] in "'\"" else value
        pos = m.end()
    return fields


def _logged(run):
    fields = job_args((run.get("extra") or {}).get("job_args"))
    return {k: fields.get(arg) for k, arg in WORKLOAD_KEYS.items() if arg and fields.get(arg) not in (None, "None")}


def log_disagreement(run):
    """{key: (manifest's, log's)} where the workload's log says it ran something else than the manifest."""
    recorded, logged = _recorded(run.get("manifest") or {}), _logged(run)
    return {k: (recorded[k], v) for k, v in logged.items() if recorded.get(k) is not None and recorded[k] != v}


def workload(run):
    """A parsed run's workload identity: the manifest's, with what its log says it ran on top."""
    return {**_recorded(run.get("manifest") or {}), **_logged(run)}


def _commit(run):
    repo = (run.get("manifest") or {}).get("repo")
    return repo.get("sha") or None if isinstance(repo, dict) else None


def _play(run):
    schedule = (run.get("manifest") or {}).get("schedule")
    return schedule.get("play") or None if isinstance(schedule, dict) else None


def mismatch(control, run, allow=()):
    """{key: (control's, run's)} of the workload keys (and ``commit``, ``play``) both know and that differ."""
    a = {**workload(control), "commit": _commit(control), "play": _play(control)}
    b = {**workload(run), "commit": _commit(run), "play": _play(run)}
    return {k: (a[k], b[k]) for k in MISMATCH_KEYS
            if k not in allow and a[k] is not None and b[k] is not None and a[k] != b[k]}


def digest(run):
    """sha256 of a run's log and profile files (its measured content), or None without them."""
    files = sorted(s["path"] for s in run.get("sources") or [run] if s.get("kind") in ("log", "profile"))
    if not files:
        return None
    h = hashlib.sha256()
    for path in files:
        try:
            with open(path, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
        except OSError:
            return None
        h.update(b"\0")
    return h.hexdigest()


def duplicates(runs):
    """'A and B are the same run (same ...)' for each run given twice: same directory, run id or content."""
    seen, out = {}, []
    for r in runs:
        rid = (r.get("manifest") or {}).get("run_id")
        for what, key in (("directory", os.path.realpath(r["path"])), ("run id", rid), ("content", digest(r))):
            if not key:
                continue
            other = seen.setdefault((what, key), r)
            if other is not r:
                out.append(f"{other['path']} and {r['path']} are the same run (same {what})")
                break
    return out
