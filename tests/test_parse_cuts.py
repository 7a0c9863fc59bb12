"""The parsers never crash: every cut point of real outputs, mangled outputs and random bytes.

Each input must give a result with a status from STATUSES (and JSON-safe),
never an exception.  A cut point is a byte prefix: what a reader sees of a
file that is still being written, or of a run that died.
"""

import json
import random

import pytest

from wanbench.parse import METRICS, STATUSES, parse_file, parse_run

FIXTURES = ("samples/run_sample_baseline.log", "samples/run_sample_crash.log", "samples/perf_sample_baseline.csv",
            "diag/run_diag.log", "diag/perf_diag.csv", "diag/perf_legacy_qkv.csv",
            "torchrun/run_rank_killed.log", "torchrun/run_timeout.log")  # every format and failure kind once
TAGS = [b"RUN", b"END", b"TOTAL", b"MEM", b"MEM_REQUEST", b"PERF", b"HOT", b"STEP", b"SLOW", b"ATTN_RUN",
        b"ATTN", b"ATTN_RATIO", b"ATTN_STEP", b"ATTN_SLOW", b"ATTN_SKEW", b"ATTN_SKEW_RANK", b"ATTN_OP_SKEW",
        b"ATTN_OP_SKEW_RANK", b"ATTN_END", b"BLOCK_RUN", b"BLOCK", b"BLOCK_TOP", b"BLOCK_END"]


def check(result, path):
    assert result["status"] in STATUSES, (path, result["status"])
    assert isinstance(result["reason"], str) and "\n" not in result["reason"]
    assert list(result["metrics"]) == list(METRICS)
    assert isinstance(result["memory_measured"], bool)
    json.dumps(result)


@pytest.mark.parametrize("name", FIXTURES)
def test_every_cut_point(tmp_path, fixtures, name):
    data = (fixtures / name).read_bytes()
    path = tmp_path / "cut"
    for n in range(len(data) + 1):
        path.write_bytes(data[:n])
        check(parse_file(path), n)


def test_every_cut_point_of_a_run_directory(tmp_path, samples):
    """The log cut while the profile file is whole, then the reverse (every third byte, to keep it short)."""
    log, csv = ((samples / n).read_bytes() for n in ("run_sample_baseline.log", "perf_sample_baseline.csv"))
    run = tmp_path / "run"
    run.mkdir()
    (run / "exit_code").write_text("1\n")
    for cut, whole, cut_name, whole_name in ((log, csv, "run.log", "perf.csv"), (csv, log, "perf.csv", "run.log")):
        (run / whole_name).write_bytes(whole)
        for n in range(0, len(cut) + 1, 3):
            (run / cut_name).write_bytes(cut[:n])
            result = parse_run(run)
            check(result, n)
            assert result["status"] == ("unreadable" if n == 0 else "failed")  # else exit code 1 wins
        (run / whole_name).unlink()


def test_a_record_tag_without_fields(tmp_path):
    """The case of the bug report: the file ends right after a record tag."""
    for tag in TAGS:
        path = tmp_path / "t.csv"
        path.write_bytes(b"RUN,2026-02-11 14:05:12,T2V,world_size=4\n" + tag + b"\n")
        result = parse_file(path)
        check(result, tag)
        assert (result["kind"], result["status"]) == ("profile", "ok" if tag == b"END" else "incomplete")


def test_random_bytes_and_mangled_outputs(tmp_path, fixtures):
    rng = random.Random(20260227)
    sources = [(fixtures / name).read_bytes() for name in FIXTURES]
    path = tmp_path / "random"
    for i in range(600):
        kind = i % 4
        if kind == 0:    # random bytes, some of them text-like
            alphabet = bytes(range(256)) if rng.random() < 0.5 else b"RUNTOAL_EMS,.:;=-0123456789 \n\r[]"
            data = bytes(rng.choice(alphabet) for _ in range(rng.randrange(0, 2048)))
        elif kind == 1:  # random profile records: known tags with random fields
            data = b"\n".join(rng.choice(TAGS) + b"".join(
                b"," + rng.choice([b"", b"x", b"1", b"-2.5", b"nan", b"inf", b"step1:2", b"rank0:3", b"a=b"])
                for _ in range(rng.randrange(0, 14))) for _ in range(rng.randrange(1, 40)))
        elif kind == 2:  # a real output with bytes replaced
            data = bytearray(rng.choice(sources))
            for _ in range(rng.randrange(1, 30)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            data = bytes(data)
        else:            # a real output with its lines shuffled, dropped and repeated
            lines = rng.choice(sources).splitlines(True)
            data = b"".join(rng.choice(lines) for _ in range(rng.randrange(0, len(lines) * 2)))
        path.write_bytes(data)
        check(parse_file(path), i)
        check(parse_run(path), i)
