"""Run directories left on a host: which are live, collected, cancelled; the lock holder's liveness.

The ``wanbench_runs`` module lists the run root (``name``, ``live``, ``ended``, ``cancelled``,
``play``); the action plugins of ``wanbench_runs`` and ``wanbench_preflight`` decide on the
controller with these functions what to cancel, what to collect and when a holder is stale;
``report_inputs`` rebuilds the report role's inputs from collected run directories (their
manifests), for runs whose play died before its report.
"""

from __future__ import annotations

import getpass
import json
import os
import re
import socket
import tarfile

from .manifest import CANCELLED, LINKS, exit_code
from .manifest import read as read_manifest

RUN_ID = re.compile(r"^\d{8}T\d{6}Z-[A-Za-z0-9_,-]+-[0-9a-f]{6}$")
PLAY_ID = re.compile(r"^[A-Za-z0-9_.:-]+$")
SHOWN = 10               # run ids named in one line


def controller():
    """user@host of this controller, as a lock holder names it."""
    return f"{getpass.getuser()}@{socket.gethostname()}"


def pid_alive(pid):
    """Whether a process of this machine runs (a zombie, exited but not yet reaped, does not)."""
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError, TypeError, OverflowError):
        return True
    try:
        with open(f"/proc/{int(pid)}/stat", encoding="utf-8", errors="replace") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def boot_id():
    """This machine's boot id (/proc/sys/kernel/random/boot_id), or '' where there is none."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
            return f.read().strip()
    except OSError:
        return ""


def pid_start(pid):
    """A process's start time (/proc/<pid>/stat field 22, clock ticks since boot), or None when gone."""
    try:
        with open(f"/proc/{int(pid)}/stat", encoding="utf-8", errors="replace") as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, TypeError, IndexError):
        return None


def process_identity(pid):
    """{pid, pid_start, boot_id}: what the lock's holder record names its process by (a pid alone
    may be reused by another process)."""
    return {"pid": int(pid), "pid_start": pid_start(pid), "boot_id": boot_id()}


def stale_reason(holder, age, stale_after, here):
    """Why a lock holder is stale, or '' when it may still be alive.

    A holder of this controller is stale when its process is gone, or when the pid now names
    another process: another start time, or another boot (records with ``pid_start`` and
    ``boot_id``; older records are judged by the pid alone).
    """
    if not isinstance(holder, dict) or "play_id" not in holder:
        return ""
    if holder.get("controller") == here and not pid_alive(holder.get("pid")):
        return f"its ansible-playbook (pid {holder.get('pid')} on {here}) is gone"
    if holder.get("controller") == here and holder.get("pid_start") is not None:
        if holder.get("boot_id") and holder["boot_id"] != boot_id():
            return f"its ansible-playbook (pid {holder.get('pid')} on {here}) ran before this machine's last boot"
        if holder["pid_start"] != pid_start(holder.get("pid")):
            return (f"its ansible-playbook (pid {holder.get('pid')} on {here}) is gone: the pid now names "
                    f"another process (started at tick {pid_start(holder.get('pid'))}, not {holder['pid_start']})")
    if age is not None and age > stale_after:
        return f"it was last seen {age} s ago (more than {stale_after} s)"
    return ""


def ids_arg(text, what="run_id"):
    """A comma-separated -e value -> list of ids; ValueError naming the bad one."""
    ids = [t.strip() for t in str(text or "").split(",") if t.strip()]
    pattern = RUN_ID if what == "run_id" else PLAY_ID
    for i in ids:
        if not pattern.match(i):
            raise ValueError(f"{what} {i!r} is not a {what.replace('_', ' ')} (e.g. "
                             f"{'20261127T101500Z-ffn_only-a1b2c3' if what == 'run_id' else '20261127T101500Z-a1b2c3'})")
    return ids


def collected(results_host_dir, run_id):
    """Whether the controller holds this run already (results/<host>/<run_id>/ with its files)."""
    return os.path.isdir(os.path.join(results_host_dir, run_id))


def uncollected(runs, results_host_dir):
    """The started runs of the run root that this controller has not collected, in name order."""
    return [r for r in sorted(runs, key=lambda r: r["name"]) if not collected(results_host_dir, r["name"])]


def name_ids(ids):
    """'a, b, c' with at most SHOWN ids, then 'and N more'."""
    ids = list(ids)
    more = f" and {len(ids) - SHOWN} more" if len(ids) > SHOWN else ""
    return ", ".join(ids[:SHOWN]) + more


def leftover_warning(runs, results_host_dir, run_root):
    """The preflight's one line about run directories left uncollected, or ''."""
    left = uncollected(runs, results_host_dir)
    if not left:
        return ""
    live = [r["name"] for r in left if r["live"]]
    return (f"{len(left)} run(s) in {run_root} not collected: {name_ids(r['name'] for r in left)}"
            + (f" ({len(live)} still running)" if live else "")
            + "; collect and report them with `ansible-playbook playbooks/collect.yml`"
            + (", or stop them with `ansible-playbook playbooks/cancel.yml`" if live else ""))


def cancel_summary(res, stopped_play=""):
    """One line about a cancel: the runs stopped, those that had ended, the play and the lock."""
    done = res.get("cancelled") or {}
    parts = [("cancelled " + ", ".join(f"{n} ({k} processes killed)" for n, k in done.items())) if done
             else "no live run to cancel"]
    if res.get("ended"):
        parts.append(f"already ended, left as they are: {name_ids(res['ended'])}")
    if stopped_play:
        parts.append(f"bench play {stopped_play} stopped")
    parts.append("host lock released" if res.get("released") else "host lock unchanged")
    return "; ".join(parts)


def select(runs, run_ids=(), play_ids=(), holder=None, holder_alive=False, live_only=False):
    """(selected, skipped) from the listed runs.

    ``run_ids`` / ``play_ids`` pick runs by id or by play (unknown ids raise ValueError);
    without either every run is a candidate. ``live_only`` keeps runs still running. Runs of
    a live lock holder's play are skipped (that play collects its own runs): skipped is
    [(name, why)].
    """
    by_name = {r["name"]: r for r in runs}
    missing = [i for i in run_ids if i not in by_name]
    if missing:
        raise ValueError(f"no run {name_ids(missing)} in the run root")
    picked = [by_name[i] for i in run_ids] if run_ids else list(runs)
    if play_ids:
        picked = [r for r in picked if r.get("play") in play_ids]
        if not picked:
            raise ValueError(f"no run of play {name_ids(play_ids)} in the run root")
    if live_only:
        picked = [r for r in picked if r["live"]]
    selected, skipped = [], []
    busy = (holder or {}).get("play_id") if holder_alive else None
    for r in picked:
        if busy and r.get("play") == busy:
            skipped.append((r["name"], f"play {busy} is still running and collects it"))
        else:
            selected.append(r)
    return selected, skipped


def report_inputs(paths, results_host_dir=None):
    """The report role's inputs for collected run directories whose play ended without a report.

    With ``results_host_dir``, the already collected runs of the same plays join them (the
    control runs a cancelled play had finished).  Runs of several plays are kept apart: their
    control keys get ``@<play>``, so that the report judges each play on its own. Returns {runs: [{variant, role, control_key,
    path, exit_code, cancelled}] in run order, controls: {key: {variant, source, path}},
    confidence, unhealthy: [paths that failed, cancelled ones left out]}.
    """
    found = {os.path.realpath(p): read_manifest(p) or {} for p in paths}
    plays = {m.get("schedule", {}).get("play") for m in found.values() if isinstance(m.get("schedule"), dict)}
    plays.discard(None)
    if results_host_dir and plays and os.path.isdir(results_host_dir):
        for name in sorted(os.listdir(results_host_dir)):
            path = os.path.realpath(os.path.join(results_host_dir, name))
            if path in found or not os.path.isdir(path):
                continue
            m = read_manifest(path)
            if m and isinstance(m.get("schedule"), dict) and m["schedule"].get("play") in plays:
                found[path] = m

    def order(item):
        s = item[1].get("schedule") if isinstance(item[1].get("schedule"), dict) else {}
        return (str(s.get("play", "")), s.get("position") if isinstance(s.get("position"), int) else 10 ** 9, item[0])

    def play_of(m):
        return m["schedule"].get("play") if isinstance(m.get("schedule"), dict) else None

    several = len({play_of(m) for m in found.values()}) > 1  # each play judged on its own (its own report)
    runs, controls, confidence = [], {}, None
    for path, m in sorted(found.items(), key=order):
        key = str(m.get("control_key") or "unknown")
        key += f"@{play_of(m) or 'no-play'}" if several else ""
        role = m.get("role") if m.get("role") in ("control", "candidate") else "candidate"
        runs.append({"variant": str(m.get("variant") or os.path.basename(path)), "role": role, "control_key": key,
                     "path": path, "exit_code": exit_code(path, m),
                     "cancelled": os.path.exists(os.path.join(path, CANCELLED))})
        controls.setdefault(key, {"variant": None, "source": "rerun", "path": None})
        if role == "control":
            controls[key]["variant"] = runs[-1]["variant"]
        s = m.get("schedule")
        if confidence is None and isinstance(s, dict) and isinstance(s.get("confidence"), (int, float)):
            confidence = s["confidence"]
    unhealthy = [r["path"] for r in runs if r["exit_code"] != 0 and not r["cancelled"]]
    return {"runs": runs, "controls": controls, "confidence": confidence or 0.95, "unhealthy": unhealthy}


def unpack(archive, work, run_id):
    """Unpack a run directory's archive (tar, as collect packs it) into ``work``; returns its links.

    Symbolic links are recorded, never followed or made: ``{name in the run directory: target}``,
    written to ``<run_id>/links.json`` when there are any (after the files are counted). Everything
    else comes out through tarfile's "data" filter (no absolute paths, devices, links out of the tree).
    Raises ValueError naming the member and the cause when the archive cannot be unpacked whole.
    """
    try:
        with tarfile.open(archive) as tar:
            members = tar.getmembers()
            tops = {m.name.split("/", 1)[0] for m in members}
            if tops != {run_id}:
                raise ValueError(f"the archive holds {sorted(tops)}, not {run_id}")
            links = {m.name.split("/", 1)[1] if "/" in m.name else m.name: m.linkname
                     for m in members if m.issym()}
            tar.extractall(work, members=[m for m in members if not m.issym()], filter="data")
    except (tarfile.TarError, OSError) as exc:  # FilterError is a TarError: a member the data filter refuses
        raise ValueError(f"cannot unpack: {exc}") from exc
    return links


def write_links(run_dir, links):
    """Record a collected run directory's links (rundirs.unpack) in its links.json; nothing when none."""
    if links:
        with open(os.path.join(run_dir, LINKS), "w", encoding="utf-8") as f:
            json.dump(dict(sorted(links.items())), f, indent=1)
            f.write("\n")
