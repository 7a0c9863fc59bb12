"""The team's report: raw metrics per variant and percent change vs the baseline.

``build`` gathers one row per run (the baseline first) with its verdict;
``render`` turns that into markdown, CSV or JSON and ``write`` writes all
three atomically; ``render_report`` and ``write_report`` do both steps.
Numbers keep full precision in CSV and JSON; markdown rounds them as the
workload prints them, and percent changes to two signed decimals.
"""

from __future__ import annotations

import json
import os
import tempfile

import pandas as pd

from .compare import NOISE_PCT, RESERVED_TOLERANCE_PCT, compare
from .parse import DECIMALS, METRICS

RAW_COLUMNS = ("variant", "log_file", *METRICS, "status", "verdict")
PCT_COLUMNS = tuple(f"{m}_pct" for m in METRICS)
FORMATS = ("md", "csv", "json")
UNKNOWN = "unknown"


def variant_name(run):
    """The manifest's variant, else the run directory's name or the file's stem."""
    variant = run.get("manifest", {}).get("variant")
    if variant:
        return str(variant)
    name = os.path.basename(os.path.normpath(run["path"]))
    return name if run.get("kind") == "run" else os.path.splitext(name)[0]


def fmt_value(metric, value):
    return "n/a" if value is None else f"{value:.{DECIMALS.get(metric, 3)}f}"


def fmt_pct(value):
    return "n/a" if value is None else f"{value:+.2f}"


def _log_file(run):
    return next((s["path"] for s in run.get("sources", [run]) if s["kind"] == "log"), None)


def _provenance(manifest):
    repo = manifest.get("repo")
    return {"commit": repo.get("sha") if isinstance(repo, dict) else None,
            "host": manifest.get("host"), "date": manifest.get("started_at")}


def _health_notes(run):
    notes = [f"{run['status']}: {run['reason']}"] if run["status"] != "ok" else []
    return notes + [f"warning: {w}" for w in run["warnings"]]


def build(runs, baseline=None, noise_pct=NOISE_PCT, reserved_tolerance_pct=RESERVED_TOLERANCE_PCT):
    """{"header": {...}, "rows": [...]}: one row per run, the baseline first.

    A row holds the raw columns, the ``<metric>_pct`` changes vs the
    baseline (None for the baseline itself or without one), commit, host,
    date, and ``notes`` (verdict reasons, or the run's health and warnings).
    """
    runs = list(runs)
    if baseline is not None:
        seen = os.path.realpath(baseline["path"])
        runs = [baseline] + [r for r in runs if os.path.realpath(r["path"]) != seen]
    rows = []
    for run in runs:
        row = {"variant": variant_name(run), "log_file": _log_file(run), **run["metrics"],
               "status": run["status"], "verdict": None, **dict.fromkeys(PCT_COLUMNS),
               **_provenance(run.get("manifest", {})), "notes": _health_notes(run)}
        if baseline is run:
            row["verdict"] = "baseline"
        elif baseline is not None:
            result = compare(baseline, run, noise_pct, reserved_tolerance_pct)
            row["verdict"], row["notes"] = result["verdict"], result["reasons"]
            row.update({f"{m}_pct": v for m, v in result["diff_pct"].items()})
        rows.append(row)
    header = {key: ", ".join(dict.fromkeys(str(r[key] or UNKNOWN) for r in rows)) or UNKNOWN
              for key in ("commit", "host", "date")}
    header.update(baseline=variant_name(baseline) if baseline is not None else None,
                  noise_pct=noise_pct, reserved_tolerance_pct=reserved_tolerance_pct)
    return {"header": header, "rows": rows}


def _md_table(rows):
    df = pd.DataFrame(rows)
    align = ["left" if c in ("variant", "log_file", "status", "verdict") else "right" for c in df]
    return df.to_markdown(index=False, disable_numparse=True, colalign=align)


def _markdown(data):
    h, rows = data["header"], data["rows"]
    lines = ["# wanbench report", "", f"- commit: {h['commit']}", f"- host: {h['host']}",
             f"- date: {h['date']}"]
    if h["baseline"] is not None:
        lines.append(f"- baseline: {h['baseline']} (noise threshold {h['noise_pct']:.2f} %,"
                     f" reserved_peak tolerance {h['reserved_tolerance_pct']:.2f} %)")
    raw = [{c: fmt_value(c, r[c]) if c in METRICS else (r[c] or "") for c in RAW_COLUMNS}
           for r in rows]
    lines += ["", "## Raw metrics", "", _md_table(raw)]
    candidates = [r for r in rows if r["verdict"] not in (None, "baseline")]
    if candidates:
        pct = [{"variant": r["variant"], **{m: fmt_pct(r[f"{m}_pct"]) for m in METRICS},
                "verdict": r["verdict"]} for r in candidates]
        lines += ["", "## Change vs baseline (%)", "", _md_table(pct)]
    noted = [r for r in rows if r["notes"]]
    if noted:
        lines += ["", "## Verdicts and notes", ""]
        for r in noted:
            lines.append(f"- {r['variant']}" + (f" ({r['verdict']})" if r["verdict"] else ""))
            lines += [f"  - {n}" for n in r["notes"]]
    return "\n".join(lines) + "\n"


def _csv(data):
    rows = [{**r, "notes": "; ".join(r["notes"])} for r in data["rows"]]
    return pd.DataFrame(rows).to_csv(index=False)


def _json(data):
    return json.dumps(data, indent=2) + "\n"


_RENDER = {"md": _markdown, "csv": _csv, "json": _json}


def render(data, fmt="md"):
    """Render ``build``'s result as markdown, CSV or JSON."""
    if fmt not in _RENDER:
        raise ValueError(f"unknown report format {fmt!r}; choose one of {', '.join(FORMATS)}")
    return _RENDER[fmt](data)


def _write_atomic(path, text):
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=f".{os.path.basename(path)}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def write(data, outdir):
    """Write report.md, report.csv and report.json into outdir, each atomically; {fmt: path}."""
    os.makedirs(outdir, exist_ok=True)
    paths = {fmt: os.path.join(outdir, f"report.{fmt}") for fmt in FORMATS}
    for fmt, path in paths.items():
        _write_atomic(path, _RENDER[fmt](data))
    return paths


def render_report(runs, baseline=None, fmt="md", noise_pct=NOISE_PCT,
                  reserved_tolerance_pct=RESERVED_TOLERANCE_PCT):
    """The report for runs (``parse_run`` results) as a string."""
    return render(build(runs, baseline, noise_pct, reserved_tolerance_pct), fmt)


def write_report(runs, baseline, outdir, noise_pct=NOISE_PCT,
                 reserved_tolerance_pct=RESERVED_TOLERANCE_PCT):
    """Write the report for runs into outdir in every format; {fmt: path}."""
    return write(build(runs, baseline, noise_pct, reserved_tolerance_pct), outdir)
