"""Stored results: a stored control run (``baseline=stored``) and the host's measured noise.

Collected runs live in ``<results>/<host>/<run_id>/`` with the run's
``manifest.json`` (written by the render role, completed by the run script)
and ``exit_code``.  A stored run can stand in for a fresh control run when it
ran on the same host, at the same commit (from a clean tree), with the same
resolved settings (the catalog fingerprint: common settings, mode, switches,
flags), and finished with exit code 0.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone

from . import manifest as _manifest
from .manifest import exit_code as _exit_code
from .manifest import read as read_manifest
from .parse import parse_run
from .stats import noise_from_plays

__all__ = ["find_baseline", "runs", "stored_noise"]


def runs(results_dir, host):
    """Yield (run_dir, manifest) for every stored run of ``host``, oldest first."""
    base = os.path.join(results_dir, host)
    try:
        names = sorted(os.listdir(base))
    except OSError:
        return
    for name in names:
        path = os.path.join(base, name)
        if not os.path.isdir(path):
            continue
        manifest = read_manifest(path)
        if manifest is not None:
            yield path, manifest


def find_baseline(results_dir, host, sha, fingerprint, variant=None):
    """Newest reusable stored run for ``host`` at commit ``sha`` with ``fingerprint``.

    Returns its directory, or None.  Runs from a dirty tree, of an unknown
    commit, warm-ups, or runs that did not exit 0 are never reused.
    """
    if not sha or not fingerprint:
        return None
    best = None
    for path, m in runs(results_dir, host):
        repo = m.get("repo") or {}
        if m.get("host") != host or repo.get("sha") != sha or repo.get("dirty") is not False:
            continue
        if m.get("fingerprint") != fingerprint:
            continue
        if variant is not None and m.get("variant") != variant:
            continue
        if (m.get("schedule") or {}).get("warmup") is True:
            continue  # a warm-up is never a control
        if _exit_code(path, m) != 0 or not os.path.isfile(os.path.join(path, "run.log")):
            continue
        key = (str(m.get("ended_at") or ""), os.path.basename(path))
        if best is None or key > best[0]:
            best = (key, path)
    return best[1] if best else None


def run_time(manifest):
    """The run's start (or end) as an aware datetime, or None."""
    for key in ("started_at", "ended_at"):
        text = manifest.get(key)
        if isinstance(text, str) and text:
            try:
                when = datetime.fromisoformat(text.replace("Z", "+00:00"))
            except ValueError:
                continue
            return when if when.tzinfo else when.replace(tzinfo=timezone.utc)
    return None


def stored_noise(host_dir, fingerprint, exclude=(), host=None, window_days=None, window_commits=None, now=None):
    """The host's noise from its stored healthy runs with this settings ``fingerprint``, in a window.

    ``host_dir`` holds the host's run directories (``<results>/<host>``).  The
    window: runs of ``host`` (when given), started within ``window_days`` days
    before ``now`` (an aware datetime; default the current time), and at one of
    the ``window_commits`` newest commits among them (None: no limit).  Warm-ups,
    failed runs and the paths in ``exclude`` are left out.  The runs are
    grouped by play (``stats.noise_from_plays``: the within-play CV with its
    degrees of freedom, and the play-to-play part).  Returns {"cv_pct", "df",
    "runs", "plays", "between", "source"}, or None when no play has two usable
    runs.  A store whose runs have zero spread is returned with cv_pct 0 and
    says so (it decides nothing).
    """
    if not fingerprint:
        return None
    skip = {os.path.realpath(p) for p in exclude}
    now = now or datetime.now(timezone.utc)
    since = now - timedelta(days=window_days) if window_days else None
    found = []
    for path in sorted(os.listdir(host_dir)) if os.path.isdir(host_dir) else []:
        path = os.path.join(host_dir, path)
        m = read_manifest(path) if os.path.isdir(path) else None
        schedule = (m or {}).get("schedule")
        schedule = schedule if isinstance(schedule, dict) else {}
        if (m is None or m.get("fingerprint") != fingerprint or schedule.get("warmup") is True
                or os.path.realpath(path) in skip or (host and m.get("host") != host)
                or _exit_code(path, m) != 0):
            continue
        when = run_time(m)
        if since is not None and (when is None or not since <= when <= now):
            continue
        repo = m.get("repo")
        found.append((when, path, schedule.get("play") or path, repo.get("sha") if isinstance(repo, dict) else None))
    if window_commits:
        newest = []
        for when, _, _, sha in sorted(found, key=lambda f: (f[0] is not None, f[0] or now), reverse=True):
            if sha not in newest:
                newest.append(sha)
        found = [f for f in found if f[3] in newest[:window_commits]]
    plays = {}
    for _, path, play, _ in found:
        run = parse_run(path)
        value = run["metrics"]["request_total"]
        if run["status"] == "ok" and value and not _manifest.log_disagreement(run):  # it ran what it says
            plays.setdefault(play, []).append(value)
    noise = noise_from_plays(list(plays.values()))
    if noise is None:
        return None
    window = ", ".join(w for w in (f"last {window_days:g} days" if window_days else "",
                                   f"last {window_commits} commits" if window_commits else "") if w)
    spread = "zero spread (identical times): no noise estimate" if not noise["cv_pct"] else \
        f"{noise['df']} df"
    return {**noise, "source": f"stored: {noise['runs']} runs of this host and settings, {noise['plays']} play(s)"
                               f"{', ' + window if window else ''}; {spread}"}
