"""Diagnostics of one run as markdown: slow-card skew and DiT block times.

These come from ``extra`` of a parsed run (``wanbench.parse``):
``collective_skew`` (WAN_SLOW_CARD_DIAG=1), ``op_skew``
(WAN_SLOW_CARD_OP_DIAG=1), ``block_totals`` and ``block_hotspots``
(--profile_block).  They explain a result; they never decide one, so no
verdict reads them.

    from wanbench.diagnostics import markdown
    lines = markdown(run)   # [] when the run has none of them
"""

from __future__ import annotations

__all__ = ["markdown"]

_SKEW = ("launch_skew_avg", "launch_skew_p90", "launch_skew_max", "finish_skew_avg", "finish_skew_p90",
         "finish_skew_max")
_SKEW_HEAD = ("calls", "launch avg", "launch p90", "launch max", "finish avg", "finish p90", "finish max")


def _num(value, spec=".3f"):
    return "n/a" if not isinstance(value, (int, float)) or isinstance(value, bool) else format(value, spec)


def _ranks(pairs):
    if not isinstance(pairs, list) or not pairs:
        return "n/a"
    return ", ".join(f"rank{rank}: {count}" for rank, count in pairs)


def _table(header, rows, numbers):
    """A markdown table; the columns in the slice ``numbers`` are right-aligned."""
    right = range(len(header))[numbers]
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---:" if i in right else ":---" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(str(cell).replace("|", "\\|") for cell in row) + " |" for row in rows]
    return lines


def _skew(table, what, durations, ranks_key, ranks_title):
    rows = [[name, _num(row.get("calls"), "d"), *(_num(row.get(k)) for k in _SKEW),
             *(_num(row.get(f"dur_{d}")) for d in durations), _ranks(row.get(ranks_key))]
            for name, row in sorted(table.items()) if isinstance(row, dict)]
    return _table((what, *_SKEW_HEAD, *(f"dur {d}" for d in durations), ranks_title), rows,
                  slice(1, -1))


def _blocks(totals, hotspots):
    rows = []
    for k, top in sorted(hotspots.items(), key=lambda item: int(item[0]) if str(item[0]).isdigit() else 0):
        if not isinstance(top, dict):
            continue
        block = totals.get(top.get("block"), {})
        share = top.get("share")
        rows.append([k, top.get("block", "n/a"), _num(top.get("ms")),
                     _num(share * 100, ".2f") if isinstance(share, (int, float)) else "n/a",
                     _num(block.get("call_avg")), _num(block.get("call_max")), _num(block.get("calls"), "d")])
    return _table(("top", "block", "total max ms", "share %", "call avg ms", "call max ms", "calls"), rows,
                  slice(2, None))


def markdown(run) -> list[str]:
    """Markdown lines showing the run's slow-card and block diagnostics; [] when it has none.

    One bold caption and one small table per section present, sections
    separated by a blank line; no heading for the run itself.
    """
    extra = run.get("extra") if isinstance(run, dict) else None
    if not isinstance(extra, dict):
        return []
    sections = []
    collective, op = extra.get("collective_skew"), extra.get("op_skew")
    if isinstance(collective, dict) and collective:
        sections.append(["**Slow-card collective launch skew (ms, diagnostics)**", "",
                         *_skew(collective, "collective", ("avg", "max", "min"), "latest_launch_ranks",
                                "latest-launch ranks (calls)")])
    if isinstance(op, dict) and op:
        sections.append(["**Slow-card compute op skew (ms, diagnostics)**", "",
                         *_skew(op, "op", ("avg", "p90", "max", "min"), "slowest_ranks", "slowest ranks (calls)")])
    totals, hotspots = extra.get("block_totals"), extra.get("block_hotspots")
    if isinstance(hotspots, dict) and hotspots:
        total = sum(row.get("total_max", 0.0) for row in totals.values()) if isinstance(totals, dict) else None
        caption = "**DiT block hotspots (max rank, diagnostics)**"
        if isinstance(totals, dict) and totals:
            caption += f": {len(totals)} blocks, {total:.3f} ms in all"
        sections.append([caption, "", *_blocks(totals if isinstance(totals, dict) else {}, hotspots)])
    lines = []
    for section in sections:
        lines += ([""] if lines else []) + section
    return lines
