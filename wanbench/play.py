"""What the play computes on the controller: a run's files, run outcomes, the host lock's holder, git output.

The filter plugin ``filter_plugins/wanbench_play.py`` and the ``wanbench_preflight`` module's
action plugin are thin skins over these functions; Jinja only renders their results.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone

from . import command, outputs
from . import manifest as _manifest

STATUSES = ("ok", "failed", "died", "timeout", "not-started", "unreadable", "error", "not-run")


def render_run(run, run_id, run_root, *, generate="generate.py", torchrun="torchrun", model_dir="", devices="",
               save_file="output.npy", repo=None, host="", address="", connection="", container="", platform="",
               play_id="", now=None):
    """What the render role writes for one scheduled run: its directory, command and manifest.

    Returns ``{run_id, run_dir, script, master_port, command, command_line, manifest}``;
    ``command`` is ``{env, argv, command_line}`` (command.command), ``manifest`` the
    manifest.json the run script completes with its start, end and exit code.
    """
    run_dir = f"{str(run_root).rstrip('/')}/{run_id}"
    port = command.master_port(run_id)
    cmd = command.command(run, run_dir, generate=generate, torchrun=torchrun, master_port_=port,
                          ckpt_dir=model_dir, devices=devices, save_file=save_file)
    manifest = {key: run[key] for key in ("variant", "family", "base", "role", "control_key", "description", "mode",
                                          "steps", "settings", "fingerprint", "common_fingerprint")}
    workload = _manifest.workload_of_settings(run["settings"], run["flags"])
    manifest = {
        "run_id": run_id, **manifest, "env": cmd["env"], "flags": run["flags"], "argv": cmd["argv"],
        "command": cmd["command_line"], "repo": dict(repo or {}), "host": host, "address": address or host,
        "connection": connection, "container": container, "platform": platform, "run_dir": run_dir,
        "master_port": port,
        "rendered_at": (now or datetime.now(timezone.utc)).strftime("%Y-%m-%dT%H:%M:%SZ"), "play_id": play_id,
        # what the run measures (wanbench.manifest): every comparison and history series checks it
        "manifest_version": _manifest.MANIFEST_VERSION, "workload": workload,
        "workload_id": _manifest.workload_id(workload), "schedule": dict(run.get("schedule") or {}),
    }
    return {"run_id": run_id, "run_dir": run_dir, "script": f"{run_dir}/run.sh", "master_port": port,
            "command": cmd, "command_line": cmd["command_line"], "manifest": manifest}


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
        "collect_error": failure.get("collect_error") or "",
    }


def parse_fail_on(value):
    """The verdicts of ``fail_on`` (``-e fail_on=fail,invalid``, a list, or "" = none) as a tuple.

    Raises ValueError naming the unknown one.
    """
    from .compare import VERDICTS  # here: filter plugins import this module in every worker

    items = value if isinstance(value, (list, tuple)) else str(value or "").split(",")
    verdicts = tuple(dict.fromkeys(str(v).strip().lower() for v in items if str(v).strip()))
    unknown = [v for v in verdicts if v not in VERDICTS]
    if unknown:
        raise ValueError(f"fail_on: unknown verdict(s) {', '.join(unknown)}; choose from {', '.join(VERDICTS)}")
    return verdicts


def play_failures(runs, groups=(), fail_on="", unhealthy=True):
    """Why the play fails at its end, after reporting everything: one line per cause ([] = it does not).

    ``runs`` are bench_collected entries (run_outcome); ``groups`` the report groups
    (wanbench_report_groups: a group with runs and an ``out`` folder has its report.json); a run that could not be collected always fails the play, one that
    exited non-zero when ``unhealthy``, and a verdict of ``fail_on`` (parse_fail_on).
    """
    lines = [f"{r['run_id']} not collected ({r['collect_error']}); it stays on the host: collect it with "
             f"playbooks/collect.yml" for r in runs if r.get("collect_error")]
    if unhealthy:
        bad = [r.get("path") or r["run_id"] for r in runs if r.get("exit_code") != 0 and not r.get("collect_error")]
        if bad:
            lines.append(f"runs that exited non-zero (see their run.log): {', '.join(bad)}")
    wanted = parse_fail_on(fail_on)
    folders = [g["out"] for g in groups if g.get("out") and (g.get("controls") or g.get("candidates"))]
    for folder in folders if wanted else ():
        path = os.path.join(folder, "report.json")
        try:
            with open(path, encoding="utf-8") as f:
                groups = json.load(f)["groups"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            lines.append(f"fail_on: cannot read the verdicts of {path}: {exc}")
            continue
        lines += [f"{g['variant']}: verdict {g['verdict']} (fail_on={','.join(wanted)}; {path})"
                  for g in groups if g.get("verdict") in wanted]
    return lines


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


# ---------------------------------------------------------------- the output check's pairs and records

def _arg(argv, flag):
    argv = argv if isinstance(argv, list) else []
    return str(argv[argv.index(flag) + 1]) if flag in argv[:-1] else None


def output_pairs(collected):
    """The (control, candidate) pairs of a play's collected runs (``bench_collected``: variant, role,
    control_key, run_id, path on the controller), with the outputs' paths where the runs ran.

    A candidate is paired with the control of its schedule block (else the first other control of its
    control key); a pair whose runs have no saved output, no fixed ``--base_seed`` or different seeds is
    a ``skip`` with the reason.  Returns [{"id", "control_run", "candidate_run", "control", "candidate",
    "base_seed", "dest"} or {"id", "control_run", "candidate_run", "skip", "dest"}].
    """
    runs = []
    for c in collected or []:
        if not c.get("path"):
            continue
        m = _manifest.read(c["path"]) or {}  # runs collected later (collect.yml) carry only what the manifest says
        c = {"run_id": os.path.basename(str(c["path"]).rstrip("/")), "role": m.get("role"),
             "control_key": m.get("control_key"), **c}
        if c["role"] in ("control", "candidate"):
            runs.append({**c, "manifest": m, "schedule": m.get("schedule") if isinstance(m.get("schedule"), dict)
                         else {}})
    pairs = []
    for cand in (r for r in runs if r["role"] == "candidate" and r.get("status") in (None, "ok")):
        controls = [r for r in runs if r["role"] == "control" and r["control_key"] == cand["control_key"]
                    and r.get("status") in (None, "ok")]
        controls.sort(key=lambda r: (r["schedule"].get("block") != cand["schedule"].get("block"),
                                     bool(r["schedule"].get("warmup")), r["schedule"].get("position") or 0))
        item = {"id": cand["run_id"], "candidate_run": cand["run_id"],
                "dest": os.path.join(cand["path"], _manifest.OUTPUT_CHECK)}
        if not controls:
            pairs.append({**item, "control_run": None, "skip": "no control run that finished"})
            continue
        ctl = controls[0]
        item["control_run"] = ctl["run_id"]
        a, b = ctl["manifest"].get("argv"), cand["manifest"].get("argv")
        files = (_arg(a, "--save_file"), _arg(b, "--save_file"))
        seeds = (_arg(a, "--base_seed"), _arg(b, "--base_seed"))
        if None in files:
            pairs.append({**item, "skip": "no saved output (--save_file not passed)"})
        elif seeds[0] is None or seeds[0] == "-1":
            pairs.append({**item, "skip": "no fixed --base_seed: the outputs are of random seeds (set flags.base_seed"
                                          " in the family's baseline)"})
        elif seeds[0] != seeds[1]:
            pairs.append({**item, "skip": f"--base_seed differs: {seeds[0]} (control) vs {seeds[1]} (candidate)"})
        else:
            pairs.append({**item, "control": files[0], "candidate": files[1], "base_seed": seeds[0]})
    return pairs


def output_records(pairs, printed):
    """What to write per candidate (``dest``, ``content``) from the pairs and the script's printed JSON."""
    try:
        result = json.loads(printed) if isinstance(printed, str) else printed
        scores, python = result["scores"], result.get("python")
    except (ValueError, TypeError, KeyError):
        scores, python = {}, None
    records = []
    for p in pairs:
        score_ = scores.get(p["id"]) or outputs.result("error", p.get("skip") or "the output check printed no score")
        content = {k: p.get(k) for k in ("control_run", "candidate_run", "control", "candidate", "base_seed")}
        records.append({"dest": p["dest"], "content": {**content, "python": python, "score": score_}})
    return records
