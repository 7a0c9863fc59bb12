"""wanbench.diagnostics: slow-card and block diagnostics as markdown."""

import pytest

from wanbench.diagnostics import markdown
from wanbench.parse import parse_run


def test_every_section(fixtures):
    lines = markdown(parse_run(fixtures / "diag" / "perf_diag.csv"))
    collective = lines.index("**Slow-card collective launch skew (ms, diagnostics)**")
    op = lines.index("**Slow-card compute op skew (ms, diagnostics)**")
    blocks = lines.index("**DiT block hotspots (max rank, diagnostics)**: 40 blocks, 103966.875 ms in all")
    assert collective == 0 < op < blocks
    assert lines[collective + 2:collective + 6] == [
        "| collective | calls | launch avg | launch p90 | launch max | finish avg | finish p90 | finish max"
        " | dur avg | dur max | dur min | latest-launch ranks (calls) |",
        "|:---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---|",
        "| out_all_to_all | 1600 | 0.412 | 0.903 | 3.817 | 0.127 | 0.241 | 1.092 | 5.006 | 11.873 | 4.114"
        " | rank2: 911, rank0: 402, rank3: 201, rank1: 86 |",
        "| qkv_all_to_all | 1600 | 0.538 | 1.126 | 4.402 | 0.139 | 0.262 | 1.305 | 7.127 | 16.385 | 6.030"
        " | rank2: 988, rank3: 317, rank0: 209, rank1: 86 |"]
    assert lines[collective + 6] == "" and lines[op - 1] == ""
    assert lines[op + 4] == ("| attn_kernel | 1600 | 0.251 | 0.488 | 2.905 | 0.602 | 1.174 | 4.338 | 34.812 | 35.406"
                             " | 78.120 | 33.905 | rank2: 1187, rank1: 244, rank0: 101, rank3: 68 |")
    assert lines[blocks + 2:blocks + 5] == [
        "| top | block | total max ms | share % | call avg ms | call max ms | calls |",
        "|:---|:---|---:|---:|---:|---:|---:|",
        "| 1 | block_27 | 2662.250 | 2.56 | 66.322 | 141.432 | 160 |"]
    assert len(lines) == blocks + 4 + 8  # the eight top blocks, nothing after them


def test_the_log_shows_the_same(fixtures):
    from_log = markdown(parse_run(fixtures / "diag" / "run_diag.log"))
    from_csv = markdown(parse_run(fixtures / "diag" / "perf_diag.csv"))
    assert from_log == from_csv  # the log's 2.56 % and the file's 0.025607 render alike


@pytest.mark.parametrize("run", [
    {}, None, "run", {"extra": None}, {"extra": {"collective_skew": {}, "block_hotspots": {}}},
])
def test_nothing_to_show(samples, run):
    assert markdown(run) == []
    assert markdown(parse_run(samples / "run_sample_baseline.log")) == []


def test_partial_rows_show_n_a():
    run = {"extra": {"op_skew": {"attn_kernel": {"calls": 3, "launch_skew_avg": None}, "odd": "x"},
                     "block_hotspots": {"1": {"block": "block_00", "ms": 5.0, "share": None}}}}
    lines = markdown(run)
    assert lines[4] == "| attn_kernel | 3 | n/a | n/a | n/a | n/a | n/a | n/a | n/a | n/a | n/a | n/a | n/a |"
    assert lines[-1] == "| 1 | block_00 | 5.000 | n/a | n/a | n/a | n/a |"
    assert lines[-5] == "**DiT block hotspots (max rank, diagnostics)**"
