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

from . import manifest as _manifest

__all__ = ["find_baseline", "read_manifest", "runs", "stored_noise"]


def read_manifest(run_dir):
    """The run's manifest as a dict, or None when missing or not JSON; a field of the wrong type is a
    ManifestError naming the file and the key (the one reader: :func:`wanbench.manifest.read`)."""
    return _manifest.read(run_dir)


def _exit_code(run_dir, manifest):
    try:
        with open(os.path.join(run_dir, "exit_code"), encoding="utf-8") as fh:
            return int(fh.read().strip())
    except (OSError, ValueError):
        code = manifest.get("exit_code")
        return code if isinstance(code, int) else None


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


def stored_noise(host_dir, fingerprint, exclude=()):
    """The host's noise from its stored healthy runs with this settings ``fingerprint``.

    ``host_dir`` holds the host's run directories (``<results>/<host>``).  The
    request_total CV is pooled within plays (each play's own level removed, so
    a slower evening does not count as noise); warm-ups, failed runs and the
    paths in ``exclude`` are left out.  Returns {"cv_pct", "runs", "df",
    "source"} or None with fewer than ``stats.MIN_STORED_RUNS`` (3) usable runs.
    """
    from .parse import parse_run  # parse imports this module
    from .stats import MIN_STORED_RUNS, pooled_cv_pct

    if not fingerprint:
        return None
    skip = {os.path.realpath(p) for p in exclude}
    plays = {}
    for path in sorted(os.listdir(host_dir)) if os.path.isdir(host_dir) else []:
        path = os.path.join(host_dir, path)
        m = read_manifest(path) if os.path.isdir(path) else None
        schedule = (m or {}).get("schedule") or {}
        if (m is None or m.get("fingerprint") != fingerprint or schedule.get("warmup") is True
                or os.path.realpath(path) in skip or _exit_code(path, m) != 0):
            continue
        run = parse_run(path)
        value = run["metrics"]["request_total"]
        if run["status"] == "ok" and value and not _manifest.log_disagreement(run):  # it ran what it says
            plays.setdefault(schedule.get("play") or path, []).append(value)
    n = sum(len(v) for v in plays.values())
    cv, df = pooled_cv_pct(list(plays.values()))
    if n < MIN_STORED_RUNS or cv is None:
        return None
    return {"cv_pct": cv, "runs": n, "df": df,
            "source": f"stored: {n} runs of this host and settings, {len(plays)} play(s)"}
