"""What the play computes on the controller: run outcomes, the host lock's holder, git and df output.

The filter plugin ``filter_plugins/wanbench_play.py`` and the ``wanbench_preflight`` module's
action plugin are thin skins over these functions; Jinja only renders their results.
"""

from __future__ import annotations

STATUSES = ("ok", "failed", "died", "timeout", "not-started", "unreadable", "error", "not-run")


def run_outcome(run, run_id, wait=None, collected=None, failure=None):
    """One entry of bench_collected for a scheduled run, whatever happened to it.

    ``wait`` is the wait role's result, ``collected`` the collect role's, ``failure`` what the
    play's rescue noted (status, cause, log_tail, collect_error); results that belong to another
    run (left from an earlier loop item) are ignored.
    """
    wait = wait if (wait or {}).get("run_dir", "").rstrip("/").endswith("/" + run_id) else {}
    collected = collected if (collected or {}).get("run_id") == run_id else {}
    failure = failure or {}
    if failure.get("status"):
        status, cause = failure["status"], failure.get("cause", "")
    elif wait.get("done"):
        status, cause = wait.get("status") or ("ok" if wait.get("exit_code") == 0 else "failed"), wait.get("cause", "")
    else:
        status, cause = "not-run", "the run was not waited for (tags or check mode)"
    if failure.get("collect_error"):
        cause = "; ".join(c for c in (cause, "not collected: " + failure["collect_error"]) if c)
    return {
        "variant": run["variant"], "role": run["role"], "control_key": run["control_key"],
        "run_id": run_id, "path": collected.get("path"), "exit_code": wait.get("exit_code"),
        "status": status, "cause": cause,
        "log_tail": list(failure.get("log_tail") or wait.get("log_tail") or []),
    }


GIT_SEPARATOR = "--wanbench-log--"


def git_state(text, log_lines=8, width=80):
    """{sha, subject, dirty, log} from the output of repo_sync's record command.

    The command prints ``git status --porcelain``, a line GIT_SEPARATOR, then
    ``git log --format='%H %h %s'``; an empty or missing log means no commit.
    """
    status, sep, log = str(text or "").partition(GIT_SEPARATOR + "\n")
    if not sep:
        status, log = str(text or ""), ""
    commits = [line.split(" ", 2) + ["", ""] for line in log.splitlines() if line.strip()][:log_lines]
    entries = [f"{c[1]} {c[2]}".rstrip() for c in commits]
    return {
        "sha": commits[0][0] if commits else "",
        "subject": commits[0][2] if commits else "",
        "dirty": bool(status.strip()),
        "log": [e if len(e) <= width else e[: width - 3] + "..." for e in entries],
    }
