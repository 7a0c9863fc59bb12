"""Reports people look at: a short markdown share report and a self-contained HTML report with plots.

Both are made from :func:`wanbench.report.build`'s result (``data``):

* :func:`markdown` -- the **share report**: a few lines to paste into a chat
  or an issue: commit, host and date, one table row per candidate variant
  (raw means, percent change with its interval, reserved_peak, verdict) and
  the noise behind the intervals.  The long report (``report.md``) stays the
  place for every statistic, run and diagnostic.
* :func:`html` -- one HTML file with everything inline: the share table,
  the plot of the change vs baseline (95 % interval error bars per variant,
  the +-threshold band shaded, the verdict in the label), the notes behind
  each verdict, the runs, and -- when a history is given
  (:func:`wanbench.history.load`) -- request_total and reserved_peak over
  nights per variant with commit labels and alarms marked.  Per candidate,
  both say where the time went (:mod:`wanbench.attribution`: the stage
  table; the HTML adds a waterfall plot).  Plots are PNG
  images embedded as base64 ``data:`` URIs; no JavaScript, no external URL.
  Every text from the runs (variant names, commits, reasons) is escaped.

:func:`texts` builds ``share.md`` and ``report.html``, :func:`write` writes
them atomically (a play's report writes them beside report.md through
``wanbench report --out``); :func:`add_cli` adds the ``wanbench share``
subcommand (the runs given, a play's runs found by its id, or a report folder).  matplotlib is
imported only inside the plotting functions, which draw on ``Agg``
canvases of their own (no pyplot: nothing global is switched or kept).
"""

from __future__ import annotations

import argparse
import base64
import html as _html
import io
import os

from . import attribution, bisect, report

__all__ = ["HISTORY_METRICS", "add_cli", "change_plot", "history_plots", "html", "markdown", "texts",
           "waterfall_plot", "write"]

HISTORY_METRICS = ("request_total", "reserved_peak")
UNITS = {"request_total": "ms", "reserved_peak": "MB"}
# Plot colours (the screenshot test looks for the band and the alarm span by colour).
BAND_COLOR = "#cfe3f7"
ALARM_COLOR = "#f6c6c6"
VERDICT_COLORS = {"pass": "#1a8a3a", "fail": "#c62828", "inconclusive": "#6d6d6d", "invalid": "#000000"}
STYLE = """
body { font-family: sans-serif; margin: 24px; color: #222; max-width: 1000px; }
h1 { font-size: 22px; margin: 0 0 8px 0; } h2 { font-size: 17px; margin: 24px 0 8px 0; }
table { border-collapse: collapse; font-size: 13px; margin: 8px 0; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; white-space: nowrap; }
th { background: #f2f2f2; } td.l, th.l { text-align: left; white-space: normal; }
.pass { color: #1a8a3a; font-weight: bold; } .fail { color: #c62828; font-weight: bold; }
.invalid { color: #000; font-weight: bold; } .inconclusive { color: #6d6d6d; }
.meta { font-size: 13px; color: #444; } ul { font-size: 13px; } img { display: block; margin: 8px 0; }
"""


class MissingDependency(ValueError):
    """A library a report needs is not installed (a ValueError, so the CLI prints one line)."""


# ---------------------------------------------------------------- shared pieces

_pct = report._pct_text      # "+1.43 %", "n/a"
_level = report._level       # "95 %"


def _ci(ci):
    return "n/a" if not ci else f"{report.fmt_ci(ci)} %"


def _raw(metric, g, key):
    """Baseline and candidate figure of a metric as 'a -> b' (key: mean or max)."""
    b, c = (g["stats"][role][metric][key] for role in ("baseline", "candidate"))
    return f"{report.fmt_value(metric, b)} → {report.fmt_value(metric, c)}"


def verdict_text(g):
    """The verdict as people read it: PASS, FAIL, INVALID, or inconclusive with what it lacks."""
    v = g["verdict"]
    if v in ("fail", "invalid"):
        why = deciding_reason(g)
        return f"{v.upper()}: {why}" if why else v.upper()
    if v != "inconclusive":
        return v.upper()
    if g["equivalent"]:
        return f"inconclusive: equivalent within ±{g['threshold_pct']:.2f} %"
    if g["ci_pct"]["request_total"] is None:
        return "inconclusive: no interval"
    if g["runs_needed"]:
        return f"inconclusive: {g['runs_needed']} runs a side needed"
    return "inconclusive"


def deciding_reason(g, width=60):
    """The reason behind a fail or invalid verdict, short (compare's first rule that fired), or None.

    compare lists notes (runs used, reserved_peak within tolerance or not
    measured) among the rules' reasons; the first reason that is not such a
    note is the rule that set the verdict.
    """
    for why in g["reasons"]:
        if why.endswith("runs used") or why.startswith(("reserved_peak not measured", "warning (")) or (
                why.startswith("reserved_peak") and "within" in why):
            continue
        if why.startswith("request_total"):
            why = why.split(" (")[0]
        return why if len(why) <= width else why[:width - 1] + "…"
    return None


def _warmups(data):
    return sum(1 for r in data["rows"] if r["excluded"] == "warm-up (discarded)")


def noise_lines(data):
    """The noise behind the intervals: request_total CV per side, the A/A statement, a known-noise prior."""
    groups = data["groups"]
    if not groups:
        return []
    g0 = groups[0]
    parts = [f"{data['header']['baseline']} {_cv(g0['noise_cv_pct']['baseline'])} (n={g0['n']['baseline']})"]
    parts += [f"{g['variant']} {_cv(g['noise_cv_pct']['candidate'])} (n={g['n']['candidate']})" for g in groups]
    lines = ["noise, request_total CV: " + "; ".join(parts)]
    noise = data["header"]["noise"]
    if noise and any(g["noise_source"] not in ("data", "none") for g in groups):
        lines.append(f"known noise for one-run sides: CV {noise['cv_pct']:.2f} % ({noise['source']})")
    lines += [report.aa_noise(g) for g in groups if g["variant"] == report.AA]
    return lines


def _cv(cv):
    return "n/a" if cv is None else f"{cv:.2f} %"


def _open_alarms(alarms):
    return [a for a in alarms or [] if not a["acked"]]


def alarm_text(a):
    """One alarm in one line: where, how much, since when, the commit range."""
    commits = "..".join((c or "unknown")[:12] for c in a["commits"])
    state = f"acked ({a['ack_reason']})" if a["acked"] else "OPEN"
    return (f"{state}: {a['host']} {a['variant']} {a['metric']} {a['change_pct']:+.2f} % vs the reference"
            f" (limit {a['limit_pct']:.2f} %) since {a['first_bad']} ({a['first_bad_date'] or 'no date'});"
            f" commits {commits}" + (f"; {a['link']}" if a.get("link") else ""))


# ---------------------------------------------------------------- markdown share report

_md_cell = report.md_text  # pipes, newlines, HTML, links and images: inert


def markdown(data, alarms=None):
    """The share report: short, paste-ready markdown (commit, host, date, verdict rows, noise)."""
    h, groups = data["header"], data["groups"]
    level = _level(h["confidence"])
    lines = [f"**wanbench** · host {_md_cell(h['host'])} · commit {_md_cell(h['commit'])}"
             f" · date {_md_cell(h['date'])}"]
    if not groups:
        lines += ["", "no baseline runs: no change to report"]
    else:
        warm = _warmups(data)
        lines.append(f"baseline {_md_cell(h['baseline'])}; request_total change with its {level} interval"
                     f" ({report.method_note(groups)}), threshold ±{h['threshold_pct']:.2f} %;"
                     f" reserved_peak tolerance +{h['reserved_tolerance_pct']:.2f} %"
                     + (f"; {warm} warm-up run(s) discarded" if warm else ""))
        lines += ["", f"| variant | n base/cand | request_total ms (mean) | change | {level} CI"
                      " | reserved_peak MB (max) | change | verdict |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for g in groups:
            lines.append(
                f"| {_md_cell(g['variant'])} | {g['n']['baseline']}/{g['n']['candidate']}"
                f" | {_raw('request_total', g, 'mean')} | {_pct(g['diff_pct']['request_total'])}"
                f" | {_ci(g['ci_pct']['request_total'])} | {_raw('reserved_peak', g, 'max')}"
                f" | {_pct(g['diff_pct']['reserved_peak'])} | {_md_cell(verdict_text(g))} |")
        lines += [""] + [f"- {_md_cell(x)}" for x in noise_lines(data)]
        lines += attribution_md(groups)
    if alarms is not None:
        found = _open_alarms(alarms)
        lines += ["", f"history: {len(found)} open alarm(s)" if found else "history: no open alarms"]
        lines += [f"- {_md_cell(alarm_text(a))}" for a in found]
    return "\n".join(lines) + "\n"


def attribution_md(groups):
    """Per candidate: where the time went (wanbench.attribution's headline and table), as markdown."""
    lines = []
    for g in groups:
        att = g.get("attribution")
        if not att:
            continue
        header, rows = attribution.table(att)
        lines += ["", f"**{_md_cell(g['variant'])}: where the time went** (ms, diagnostics):"
                      f" {_md_cell(att['headline'])}", "", "| " + " | ".join(header) + " |",
                  "| " + " | ".join("---" for _ in header) + " |"]
        lines += ["| " + " | ".join(_md_cell(c) for c in r) + " |" for r in rows]
    return lines


# ---------------------------------------------------------------- plots

def _matplotlib():
    """matplotlib and a maker of Agg figures (no pyplot: no global backend switch, no figure registry)."""
    try:
        import matplotlib
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise MissingDependency("the HTML report needs matplotlib: pip install matplotlib") from None

    def figure(**kw):
        fig = Figure(**kw)
        FigureCanvasAgg(fig)
        return fig

    return matplotlib, figure


def _png(fig):
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    return buf.getvalue()


def change_plot(data):
    """PNG bytes: request_total change vs baseline per variant, with its interval and the threshold band.

    None when there is no comparison (no baseline).
    """
    groups = data["groups"]
    if not groups:
        return None
    matplotlib, figure = _matplotlib()
    h = data["header"]
    thr = h["threshold_pct"]
    with matplotlib.rc_context({"text.parse_math": False, "font.size": 10}):  # a '$' in a name stays a '$'
        fig = figure(figsize=(9, 1.6 + 0.55 * len(groups)))
        ax = fig.subplots()
        ax.axvspan(-thr, thr, color=BAND_COLOR, zorder=0, label=f"±{thr:.2f} % threshold")
        ax.axvline(0, color="#555555", linewidth=0.8, zorder=1)
        labels, extent, marks = [], [thr * 1.5], []
        for y, g in enumerate(groups):
            pct, ci = g["diff_pct"]["request_total"], g["ci_pct"]["request_total"]
            color = VERDICT_COLORS.get(g["verdict"], "#000000")
            # the verdict's word (inconclusive: what it lacks); a fail's or invalid's reason is in the table
            labels.append(f"{g['variant']}: " + (verdict_text(g) if g["verdict"] in ("pass", "inconclusive")
                                                  else g["verdict"].upper()))
            if pct is None:
                ax.text(0, y, "  no request_total change", va="center", fontsize=9, color=color)
                continue
            extent.append(abs(pct))
            if ci:
                extent += [abs(ci[0]), abs(ci[1])]
                ax.errorbar(pct, y, xerr=[[pct - ci[0]], [ci[1] - pct]], fmt="o", color=color, ecolor=color,
                            elinewidth=2.5, capsize=6, markersize=7, zorder=3)
            else:
                ax.plot(pct, y, marker="x", color=color, markersize=9, zorder=3)
            marks.append((pct, y, f"{pct:+.2f} %" + ("" if ci else " (no interval)"), color))
        lim = max(extent) * 1.25
        for pct, y, text, color in marks:  # near an edge, the label grows inwards (never cut at the axes)
            ha = "right" if pct > lim / 2 else "left" if pct < -lim / 2 else "center"
            ax.annotate(text, (pct, y), xytext=(0, 9), textcoords="offset points", ha=ha, fontsize=8, color=color)
        ax.set_xlim(-lim, lim)
        ax.set_ylim(len(groups) - 0.4, -0.7)
        ax.set_yticks(range(len(groups)), labels)
        ax.set_xlabel(f"request_total change vs {h['baseline']} (%), {_level(h['confidence'])} interval")
        ax.grid(axis="x", color="#e0e0e0", linewidth=0.6)
        ax.legend(loc="lower right", fontsize=8, frameon=False)
        fig.tight_layout()
        return _png(fig)


def waterfall_plot(g):
    """PNG bytes: a candidate's change of request_total as a waterfall of its stages (ms), intervals as error
    bars; the denoise loop is shown by its parts where all of them were measured.  None without attribution."""
    att = g.get("attribution")
    rows = {r["part"]: r for r in (att or {}).get("rows", [])}
    if not rows or rows["request_total"]["change_ms"] is None:
        return None
    den = [rows[k] for k in ("attn_kernel", "all_to_all", "all_gather", "other_compute")]
    steps = [rows["text_encode"], *(den if all(r["change_ms"] is not None for r in den) else [rows["denoise"]]),
             rows["vae_decode"], rows["rest"]]
    matplotlib, figure = _matplotlib()
    with matplotlib.rc_context({"text.parse_math": False, "font.size": 9}):
        fig = figure(figsize=(9, 3.4))
        ax = fig.subplots()
        level, x = 0.0, 0
        labels = []
        for r in steps + [rows["request_total"]]:
            d, total = r["change_ms"], r is rows["request_total"]
            labels.append(("denoise: " if r["parent"] == "denoise" else "") + r["label"])
            if d is None:
                ax.text(x, level, "not\nmeasured", ha="center", va="center", fontsize=8, color="#6d6d6d")
            else:
                start = 0.0 if total else level
                color = "#1f5f99" if total else ("#c62828" if d > 0 else "#1a8a3a")
                ax.bar(x, d, bottom=start, color=color, alpha=0.85 if r["clear"] else 0.4, width=0.6)
                if r["ci_ms"]:
                    ax.errorbar(x, start + d, yerr=[[d - r["ci_ms"][0]], [r["ci_ms"][1] - d]], fmt="none",
                                ecolor="#222222", capsize=4, linewidth=1)
                ax.annotate(attribution.fmt_ms(d), (x, start + d), xytext=(0, 3 if d >= 0 else -10),
                            textcoords="offset points", ha="center", fontsize=8)
                level = level if total else level + d
            x += 1
        ax.axhline(0, color="#555555", linewidth=0.8)
        ax.use_sticky_edges = False  # a bar may start above 0: let the margin pass its edge
        ax.margins(y=0.15)  # room for the labels above and below the bars
        ax.set_xticks(range(len(labels)), labels, fontsize=8, rotation=20, ha="right")
        ax.set_ylabel("change (ms)")
        ax.set_title(f"{g['variant']}: where the time went (bars: change per stage;"
                     f" faint: interval includes 0 or n/a)", fontsize=10, loc="left")
        ax.grid(axis="y", color="#e0e0e0", linewidth=0.6)
        fig.tight_layout()
        return _png(fig)


def _tick_labels(nights):
    step = max(1, -(-len(nights) // 14))  # at most ~14 labels
    return [f"{n['date'] or n['night']}\n{(n['commit'] or 'unknown')[:7]}" if i % step == 0 else ""
            for i, n in enumerate(nights)]


def history_plots(series, alarms=None):
    """PNG bytes per (host, variant): request_total and reserved_peak over nights, alarms marked.

    ``series``: :func:`wanbench.history.load`'s list; ``alarms``:
    :func:`wanbench.history.alarms`' list (None: computed with the defaults).
    Returns [(host, variant, png)] in the series' order.
    """
    from . import history

    if alarms is None:
        alarms = history.alarms(series)
    by_key = {}
    for s in series:
        if s["metric"] in HISTORY_METRICS and s["nights"]:
            by_key.setdefault((s["host"], s["variant"], s.get("workload")), {})[s["metric"]] = s
    if not by_key:
        return []
    matplotlib, figure = _matplotlib()
    out = []
    with matplotlib.rc_context({"text.parse_math": False, "font.size": 9}):
        for (host, variant, workload), metrics in by_key.items():  # a variant's series of each workload: own plot
            shown = [m for m in HISTORY_METRICS if m in metrics]
            fig = figure(figsize=(9, 2.7 * len(shown)))
            axes = fig.subplots(len(shown), 1, squeeze=False)
            for ax, m in zip(axes[:, 0], shown):
                _history_axis(ax, metrics[m], [a for a in alarms if (a["host"], a["variant"], a.get("workload"),
                                                                     a["metric"]) == (host, variant, workload, m)])
            axes[0, 0].set_title(f"{host} / {variant}: median per night (dots: runs)", fontsize=10, loc="left")
            fig.tight_layout()
            out.append((host, variant, _png(fig)))
    return out


def _history_axis(ax, s, alarms):
    """One metric over nights: runs as dots, medians as a line, bad nights crossed, alarms shaded."""
    from . import history

    nights, metric = s["nights"], s["metric"]
    xs = list(range(len(nights)))
    for a in alarms:
        first = next((i for i, n in enumerate(nights) if n["night"] == a["first_bad"]), None)
        if first is not None:
            ax.axvspan(first - 0.5, len(nights) - 0.5, color=ALARM_COLOR if not a["acked"] else "#e6e6e6",
                       zorder=0)
            ax.text(first - 0.4, 0.04, ("acked " if a["acked"] else "ALARM ") + f"{a['change_pct']:+.2f} %,"
                    f" commits {(a['commits'][0] or 'unknown')[:7]}..{(a['commits'][1] or 'unknown')[:7]}",
                    transform=ax.get_xaxis_transform(), va="bottom", fontsize=8, color="#8b0000")
    for x, n in zip(xs, nights):
        ax.plot([x] * len(n["values"]), n["values"], ".", color="#9bb7d4", markersize=4, zorder=2)
    ax.plot(xs, [n["median"] for n in nights], "-o", color="#1f5f99", markersize=4, linewidth=1.2, zorder=3)
    states = history.judge(nights, metric)
    bad = [(x, n["median"]) for x, n, v in zip(xs, nights, states) if v["state"] == "bad"]
    if bad:
        ax.plot(*zip(*bad), "X", color="#c62828", markersize=8, zorder=4, label="bad night")
        ax.legend(loc="upper left", fontsize=8, frameon=False)
    ax.set_ylabel(f"{metric} ({UNITS.get(metric, '')})")
    ax.set_xticks(xs, _tick_labels(nights), fontsize=7)
    ax.set_xlim(-0.5, len(nights) - 0.5)
    ax.grid(axis="y", color="#e0e0e0", linewidth=0.6)
    ax.ticklabel_format(axis="y", useOffset=False, style="plain")


# ---------------------------------------------------------------- HTML report

def _e(text):
    return _html.escape("" if text is None else str(text), quote=True)


def _img(png, alt):
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'


def _table(header, rows, left=(0,)):
    head = "".join(f'<th class="{"l" if i in left else ""}">{_e(c)}</th>' for i, c in enumerate(header))
    body = "".join("<tr>" + "".join(c if isinstance(c, _Raw) else f'<td class="{"l" if i in left else ""}">{_e(c)}</td>'
                                    for i, c in enumerate(row)) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


class _Raw(str):
    """A cell that is already HTML (built from escaped parts)."""


def _history_html(series, alarms):
    parts = ["<h2>History</h2>"]
    plots = history_plots(series, alarms)
    if not plots:
        parts.append('<p class="meta">no judged runs in the history</p>')
    for host, variant, png in plots:
        parts.append(_img(png, f"{host} / {variant}: request_total and reserved_peak over nights"))
    found = alarms or []
    parts.append("<ul>" + "".join(f"<li>{_e(alarm_text(a))}</li>" for a in found) + "</ul>" if found
                 else '<p class="meta">no open alarms</p>')
    return parts


def _attribution_html(groups):
    """Per candidate: the attribution headline, its table and its waterfall plot."""
    parts = ["<h2>Where the time went</h2>"]
    for g in groups:
        att = g.get("attribution")
        if not att:
            continue
        header, rows = attribution.table(att)
        parts += [f'<p class="meta"><b>{_e(g["variant"])}</b>: {_e(att["headline"])}</p>', _table(header, rows)]
        png = waterfall_plot(g)
        if png:
            parts.append(_img(png, f"{g['variant']}: change of request_total by stage (waterfall)"))
    return parts


def html(data, series=None, alarms=None, title="wanbench report"):
    """The self-contained HTML report (a string): share table, change plot, notes, runs, history plots.

    ``series`` (optional): :func:`wanbench.history.load`'s list for the
    history plots; ``alarms``: their alarms (None: computed with the defaults).
    """
    from . import history

    h, groups = data["header"], data["groups"]
    if series is not None and alarms is None:
        alarms = history.alarms(series)
    level = _level(h["confidence"])
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">', f"<title>{_e(title)}</title>",
             f"<style>{STYLE}</style></head><body>", f"<h1>{_e(title)}</h1>",
             f'<p class="meta">host <b>{_e(h["host"])}</b> · commit <b>{_e(h["commit"])}</b>'
             f' · date <b>{_e(h["date"])}</b></p>']
    if groups:
        warm = _warmups(data)
        parts.append(f'<p class="meta">baseline <b>{_e(h["baseline"])}</b>; request_total change with its {level}'
                     f' interval ({_e(report.method_note(groups))}), threshold'
                     f' ±{h["threshold_pct"]:.2f} %; reserved_peak'
                     f' tolerance +{h["reserved_tolerance_pct"]:.2f} %'
                     + (f"; {warm} warm-up run(s) discarded" if warm else "") + "</p>")
        rows = [[g["variant"], f"{g['n']['baseline']}/{g['n']['candidate']}", _raw("request_total", g, "mean"),
                 _pct(g["diff_pct"]["request_total"]), _ci(g["ci_pct"]["request_total"]),
                 _raw("reserved_peak", g, "max"), _pct(g["diff_pct"]["reserved_peak"]),
                 _Raw(f'<td class="l {_e(g["verdict"])}">{_e(verdict_text(g))}</td>')] for g in groups]
        parts += ["<h2>Verdicts</h2>", _table(["variant", "n base/cand", "request_total ms (mean)", "change",
                                               f"{level} CI", "reserved_peak MB (max)", "change", "verdict"],
                                              rows, left=(0, 7))]
        parts += ["<ul>", *[f"<li>{_e(x)}</li>" for x in noise_lines(data)], "</ul>"]
        parts += ["<h2>Change vs baseline</h2>", _img(change_plot(data), "request_total change vs baseline per"
                                                      " variant with its interval and the threshold band")]
        if series is not None:
            parts += _history_html(series, alarms)
        parts += _attribution_html(groups)
        parts.append("<h2>Why each verdict</h2><ul>")
        for g in groups:
            notes = g["reasons"] + [f"excluded {x['role']} run {x['path']}: {x['why']}" for x in g["excluded"]]
            parts.append(f'<li><b>{_e(g["variant"])}</b> (<span class="{_e(g["verdict"])}">{_e(g["verdict"])}'
                         f'</span>)<ul>{"".join(f"<li>{_e(n)}</li>" for n in notes)}</ul></li>')
        parts.append("</ul>")
    else:
        parts.append('<p class="meta">no baseline runs: raw metrics only, no change plot</p>')
        if series is not None:
            parts += _history_html(series, alarms)
    metrics = ("request_total", "denoise_step_avg", "reserved_peak", "gen_time", "real_time")
    rows = [[r["variant"], r["role"], *[report.fmt_value(m, r[m]) for m in metrics], r["status"],
             r["excluded"] or (r["reason"] if r["status"] != "ok" else "")] for r in data["rows"]]
    parts += ["<h2>Runs</h2>", _table(["variant", "role", *metrics, "status", "note"], rows, left=(0, 1, 7, 8))]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def texts(data, series=None, alarms=None):
    """{"share.md": text, "report.html": text} of build's data (both built before either is written)."""
    from . import history

    if series is not None and alarms is None:
        alarms = history.alarms(series)
    return {"share.md": markdown(data, alarms if series is not None else None),
            "report.html": html(data, series, alarms)}


def write(data, outdir, series=None, alarms=None):
    """Write share.md and report.html into outdir, all or none; {name: path}."""
    built = texts(data, series, alarms)
    os.makedirs(outdir, exist_ok=True)
    paths = {name: os.path.join(outdir, name) for name in built}
    report.write_all({paths[name]: text for name, text in built.items()})
    return paths


# ---------------------------------------------------------------- CLI

def _history(args):
    """The history series and alarms of --results/--host, or (None, None)."""
    from . import history, index

    if not args.results:
        return None, None
    if not os.path.isdir(args.results):
        raise ValueError(f"{args.results}: not a folder (--results takes a results folder)")
    try:
        index.build(args.results)
    except PermissionError:  # a read-only results folder: read the index as it is
        if not os.path.isfile(os.path.join(args.results, index.INDEX_NAME)):
            raise
    series = history.load(args.results, args.host, None, HISTORY_METRICS)
    acks = history.load_acks(args.ack) if args.ack else []
    return series, bisect.annotate(history.alarms(series, acks=acks), args.results)  # + bisect command / culprit


def _from_report(folder):
    """The data of a report folder's report.json (the play's own verdicts, not judged again)."""
    import json

    path = os.path.join(folder, "report.json")
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        raise ValueError(f"{folder}: no report.json (--report takes a report folder:"
                         f" results/<host>/reports/<stamp>/<family>-<mode>)") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not JSON ({e})") from None
    if not (isinstance(data, dict) and {"header", "groups", "rows"} <= set(data)):
        raise ValueError(f"{path}: not a wanbench report (header, groups and rows expected)")
    return data


def _play_groups(results, play):
    """The play's collected runs under ``results`` grouped by control as the play's report groups them:
    ([(out name, controls, candidates, across_plays)], the play's recorded confidence, its host's folder)."""
    from . import index, rundirs, schedule, store

    if not os.path.isdir(results):
        raise ValueError(f"{results}: not a folder (--play looks for the play's runs in --results, default results)")
    paths = [d for d in index.run_dirs(results)
             if ((store.read_manifest(d) or {}).get("schedule") or {}).get("play") == play]
    if not paths:
        raise ValueError(f"play {play}: no collected run of it under {results}"
                         f" (its runs are results/<host>/<run>/ with schedule.play in manifest.json)")
    found = rundirs.report_inputs(paths)
    groups = [g for g in schedule.report_groups(found["runs"], found["controls"]) if g["controls"] + g["candidates"]]
    hosts = {os.path.dirname(p) for p in paths}
    return ([(f"{g['family']}-{g['mode']}", g["controls"] if g["candidates"] else [],
              g["candidates"] or g["controls"], g["across_plays"]) for g in groups], found["confidence"],
            hosts.pop() if len(hosts) == 1 else None)


def _handler(args):
    from . import judging
    from .stats import CONFIDENCE

    given = [name for name, v in (("PATH --baseline PATH", args.paths or args.baseline), ("--play", args.play),
                                  ("--report", args.report)) if v]
    if len(given) != 1:
        raise ValueError("share takes one of: candidate runs with --baseline PATH, --play ID or --report DIR"
                         + (f" (got {' and '.join(given)})" if given else ""))
    if args.paths and not args.baseline:
        raise ValueError("share needs --baseline PATH (repeat it for repeated baseline runs)")
    if args.baseline and not args.paths:
        raise ValueError("share needs candidate runs (PATH ...) besides --baseline")
    if args.host and not args.results:
        raise ValueError("--host selects the history of --results DIR; give --results too")
    out = args.out or args.report
    if not out:
        raise ValueError("share needs --out DIR (with --report, the report folder is the default)")
    inputs, written = [], []  # [(out folder, data)]
    if args.play:  # found first: a play that is not there writes nothing, not even the index
        groups, confidence, host_dir = _play_groups(args.results or "results", args.play)
    series, alarms = _history(args)
    if args.report:
        written.append((out, _from_report(args.report)))
    elif args.play:
        if args.confidence == CONFIDENCE:  # not given: the play's own (lowered by repeats=auto)
            args.confidence = confidence
        args.noise_store = args.noise_store or host_dir  # as the play's report: its host's stored runs
        for name, controls, candidates, across in groups:
            mine = argparse.Namespace(**{**vars(args), "baseline": controls,
                                         "across_plays": args.across_plays or across})
            parsed, data = judging.judge(mine, candidates)
            inputs += parsed
            written.append((out if len(groups) == 1 else os.path.join(out, name), data))
    else:
        inputs, data = judging.judge(args, args.paths)
        written.append((out, data))
    lines, verdicts = [], []
    for folder, data in written:
        lines += [*write(data, folder, series, alarms).values(), *report.summary(data).splitlines()]
        verdicts += [g["verdict"] for g in data["groups"]]
    return inputs, "\n".join(lines), verdicts + ["fail"] * len(_open_alarms(alarms))  # an open alarm: a fail


def add_cli(subparsers):
    """Add ``share`` to argparse subparsers: ``PATH... --baseline PATH``, ``--play ID`` or ``--report DIR``."""
    from . import judging, options

    p = subparsers.add_parser("share", help="write share.md (paste-ready) and report.html (self-contained, plots)",
                              description="The runs: candidate PATHs with --baseline PATH (repeatable), a play's"
                                          " collected runs (--play ID, judged as the play grouped them), or a"
                                          " report folder a play wrote (--report DIR: its verdicts as they are).")
    p.add_argument("paths", nargs="*", metavar="PATH", help="candidate runs (grouped by their manifest's variant)")
    p.add_argument("--play", metavar="ID", help="the play's collected runs under --results (default: results);"
                                                " several control groups: one folder each under --out")
    p.add_argument("--report", metavar="DIR", help="a report folder (report.json) a play or `wanbench report` wrote")
    p.add_argument("--out", metavar="DIR", help="write share.md and report.html here (default: the --report DIR)")
    p.add_argument("--results", metavar="DIR", help="results folder with an index: plot the history over nights"
                                                     " (and where --play looks)")
    p.add_argument("--host", metavar="H", help="only this host's history (default: every host in --results)")
    p.add_argument("--ack", metavar="FILE", help="ack file of the history's alarms (see wanbench history)")
    options.add_sides(p, check="exit 1 when a verdict is fail or invalid or an alarm is open")
    judging.add_arguments(p)
    p.set_defaults(func=_handler)
    return p
