"""wanbench.parse on the project's fixtures (tests/fixtures) and on cases generated here."""

import json
import os

import pytest

from wanbench.parse import CUT_OFF, EMPTY, METRICS, NO_FINISHED, NOT_TEXT, parse_file, parse_run

BASELINE = {"request_total": 104321.987, "denoise_step_avg": 5163.402, "attn_kernel_avg": 2811.276,
            "comm_total_avg": 978.514, "qkv_all_to_all_avg": 574.908, "out_all_to_all_avg": 403.606,
            "reserved_peak": 19792.0, "gen_time": 104.4187, "real_time": None}
VARIANT = {"request_total": 102922.546, "denoise_step_avg": 5099.693, "attn_kernel_avg": 2816.366,
           "comm_total_avg": 906.201, "qkv_all_to_all_avg": 513.006, "out_all_to_all_avg": 393.819,
           "reserved_peak": 19847.0, "gen_time": 103.0168, "real_time": None}
NEGATIVE_VAE = "negative stage time in stage_totals: vae_decode max=-38.172, avg=-38.106"
OOM = "out of memory: RuntimeError: NPU out of memory. Tried to allocate 2.00 GiB"
NOTHING = dict.fromkeys(METRICS)


def no_gen_time(metrics):
    return {**metrics, "gen_time": None}


def write(tmp_path, name, content):
    path = tmp_path / name
    if isinstance(content, str):
        content = content.encode()
    path.write_bytes(content)
    return path


def line_at(text, part):
    """The index of the start of the (first) line holding part."""
    return text.rindex("\n", 0, text.index(part)) + 1


@pytest.fixture
def log(samples):
    return (samples / "run_sample_baseline.log").read_text()


@pytest.fixture
def csv(samples):
    return (samples / "perf_sample_baseline.csv").read_text()


# ------------------------------------------------------------------ samples

@pytest.mark.parametrize("name, expected", [
    ("run_sample_baseline.log", BASELINE), ("run_sample_variant.log", VARIANT),
    ("perf_sample_baseline.csv", no_gen_time(BASELINE)), ("perf_sample_variant.csv", no_gen_time(VARIANT)),
])
def test_samples_give_exact_metrics(samples, name, expected):
    result = parse_file(samples / name)
    assert (result["kind"], result["status"], result["reason"]) == (
        "log" if name.endswith(".log") else "profile", "ok", "")
    assert result["metrics"] == expected


def test_log_extra_holds_every_section(samples):
    result = parse_file(samples / "run_sample_baseline.log")
    x = result["extra"]
    assert x["stage_totals"]["vae_decode"] == {"max": 73.519, "avg": 73.447}
    assert x["stage_memory"]["request_total"] == {
        "alloc_peak_max": 16234.5, "alloc_peak_avg": 15890.2, "reserved_peak_max": 19792.0,
        "reserved_peak_avg": 19310.6, "delta_alloc_peak_max": 2011.5, "delta_alloc_peak_avg": 1840.7}
    assert x["request_peak_mem"] == {"alloc_max": 16234.5, "alloc_avg": 15890.2,
                                     "reserved_max": 19792.0, "reserved_avg": 19310.6}
    assert x["derived"]["frames_per_s"] == {"value": 0.776, "unit": "frame/s"}
    assert x["hotspots"]["1"] == {"stage": "denoise_loop_total", "ms": 103268.044, "share_pct": 98.99}
    assert x["step_stats"]["denoise_step_total"]["slowest"][:2] == [[3, 5214.056], [11, 5206.318]]
    assert x["step_stats"]["scheduler_step"]["p90"] == 2.322
    assert x["attn_totals"]["qkv_all_to_all"] == {"total_max": 11498.16, "total_avg": 11383.072,
                                                  "call_avg": 7.114, "call_max": 16.047, "calls": 6400}
    assert x["attn_ratios"]["comm_share"] == {"max_ratio": 0.2558, "avg_ratio": 0.255}  # 25.58 %, 25.50 %
    assert x["attn_step_stats"]["qkv_split"]["slowest"][0] == [13, 11.937]
    assert (x["task"], x["finished"], x["reports"]) == ("T2V", True, 1)
    assert x["prompt"] == "A girl plays violin. It's request_total: 1.0 / 2.0 and reserved=9/9 MB"
    assert x["saved_video"].endswith("_20260304_091432.mp4")
    assert (result["warnings"], result["memory_measured"]) == ([], True)
    json.dumps(result)


def test_profile_extra_holds_every_record(samples):
    result = parse_file(samples / "perf_sample_baseline.csv")
    x = result["extra"]
    assert x["run_info"]["time"] == "2026-03-04 09:14:31"
    assert (x["run_info"]["task"], x["run_info"]["world_size"], x["run_info"]["sampling_steps"]) == ("T2V", "4", "20")
    assert x["attn_run_info"] == {"time": "2026-03-04 09:14:31", "task": "T2V", "world_size": "4"}
    assert x["stage_memory"]["vae_decode"]["reserved_peak_max"] == 13854.4
    assert x["derived"]["denoise_step_avg_ms"] == {"value": 5163.402, "unit": "ms"}
    assert x["hotspots"]["5"] == {"stage": "text_encode_neg", "ms": 398.225, "share_pct": 0.382}
    assert x["step_stats"]["cfg_allgather"]["slowest"][0] == [6, 3.612]
    assert x["attn_ratios"]["comm_share"] == {"max_ratio": 0.25578, "avg_ratio": 0.255009}
    assert x["attn_step_stats"]["comm_total"]["max"] == 990.218
    assert (x["blocks"], x["block"]) == (1, 0)
    assert (result["warnings"], result["memory_measured"]) == ([], True)


@pytest.mark.parametrize("name", ["run_sample_variant.log", "perf_sample_variant.csv"])
def test_negative_stage_time_is_warned(samples, name):
    result = parse_file(samples / name)
    assert result["status"] == "ok"
    assert result["warnings"] == [NEGATIVE_VAE]


def test_crash_log_fails_with_the_traceback(samples):
    result = parse_file(samples / "run_sample_crash.log")
    assert (result["kind"], result["status"]) == ("log", "failed")
    assert result["reason"] == OOM
    assert (result["metrics"], result["memory_measured"]) == (NOTHING, False)
    assert result["extra"]["tracebacks"] == ["RuntimeError: NPU out of memory. Tried to allocate 2.00 GiB"]
    assert result["extra"]["failure"] == {
        "cause": "oom", "rank": None, "exitcode": None, "signal": None, "source": "traceback",
        "error": "RuntimeError: NPU out of memory. Tried to allocate 2.00 GiB", "code": None, "call": None,
        "device": None, "size": "2.00 GiB", "where": None}


# ------------------------------------------------------------------ generated logs

def test_crlf_log(tmp_path, log):
    result = parse_file(write(tmp_path, "crlf.log", log.replace("\n", "\r\n")))
    assert (result["status"], result["metrics"]) == ("ok", BASELINE)


def test_i2v_prefix(tmp_path, log):
    result = parse_file(write(tmp_path, "i2v.log", log.replace("[T2V ", "[I2V ")))
    assert (result["status"], result["metrics"], result["extra"]["task"]) == ("ok", BASELINE, "I2V")


def test_prompt_echoes_never_feed_metrics(tmp_path, log):
    stamp = "[2026-03-04 09:15:41,358] INFO: "
    echo = (f"{stamp}Input prompt: [T2V StageProfile] ==== Stage Totals (ms, max_rank / avg_rank) ====\n"
            f"{stamp}Input prompt: [T2V StageProfile] request_total: 1.0 / 2.0\n"
            f"{stamp}Input prompt: it's\nrequest_peak_mem: alloc=9.0/9.0, reserved=9.0/9.0 MB\n"
            "[T2V StageProfile] request_total: 3.0 / 4.0\n")
    at = line_at(log, "] denoise_loop_total: 103268.044")  # inside Stage Totals
    result = parse_file(write(tmp_path, "echo.log", log[:at] + echo + log[at:]))
    assert (result["status"], result["metrics"]) == ("ok", BASELINE)


def test_names_are_taken_from_their_own_section(tmp_path, log):
    kept = [line for line in log.splitlines(keepends=True)
            if "] request_total: 104321.987" not in line and "] qkv_all_to_all: avg=" not in line]
    result = parse_file(write(tmp_path, "sections.log", "".join(kept)))
    # Stage Memory still has request_total and the Internal Breakdown qkv_all_to_all: not used
    assert result["metrics"] == {**BASELINE, "request_total": None, "qkv_all_to_all_avg": None}
    assert result["extra"]["attn_totals"]["qkv_all_to_all"]["total_max"] == 11498.16


LEGACY = ("qkv_all_to_all_avg not measured: q, k and v were sent apart (WAN_PACKED_QKV_A2A=0), and the report"
          " has no per-step q+k+v; not comparable with packed runs (sum of the q, k, v per-step averages, an upper"
          " bound: 587.658 ms)")


@pytest.mark.parametrize("name, gen_time", [("run_legacy_qkv.log", 104.4187), ("perf_legacy_qkv.csv", None)])
def test_legacy_q_k_v_all_to_all_is_not_summed(fixtures, name, gen_time):
    result = parse_file(fixtures / "diag" / name)
    assert result["status"] == "ok"
    assert result["metrics"] == {**BASELINE, "qkv_all_to_all_avg": None, "gen_time": gen_time}
    assert result["warnings"] == [LEGACY]
    steps = result["extra"]["attn_step_stats"]
    assert "qkv_all_to_all" not in steps
    assert [steps[f"{c}_all_to_all"]["avg"] for c in "qkv"] == [197.994, 195.694, 193.97]  # 587.658 in all
    assert result["extra"]["attn_totals"]["k_all_to_all"]["calls"] == 6400


@pytest.mark.parametrize("cut_after", [
    "] request_total: alloc_peak=",        # Stage Memory without request_peak_mem
    "] dit_forward: avg=",                 # mid Per-Step Breakdown
    "] qkv_split slowest 5:",              # whole report, no "Generating video used time"
])
def test_truncated_report_is_incomplete(tmp_path, log, cut_after):
    at = log.index(cut_after)
    result = parse_file(write(tmp_path, "cut.log", log[:log.index("\n", at) + 1]))
    assert (result["status"], result["reason"]) == ("incomplete", CUT_OFF)
    assert result["metrics"]["request_total"] == 104321.987  # what was there is kept
    assert result["metrics"]["gen_time"] is None


def test_missing_finished_fails(tmp_path, log):
    result = parse_file(write(tmp_path, "nofinish.log", log[:line_at(log, "INFO: Finished.")]))
    assert (result["status"], result["reason"]) == ("failed", NO_FINISHED)
    assert result["metrics"] == BASELINE


def test_traceback_from_another_rank(tmp_path, log):
    crash = ("[rank1]: Traceback (most recent call last):\n"
             "[rank1]:   File \"generate.py\", line 10, in <module>\n"
             "W0304 09:16:11.000000 3187 torch/distributed/elastic/api.py:897] Sending SIGTERM\n"
             "[rank1]: torch.OutOfMemoryError: NPU out of memory on rank 1\n"
             "Traceback (most recent call last):\r\n"
             "  File \"/usr/bin/torchrun\", line 8, in <module>\r\n"
             "torch.distributed.elastic.multiprocessing.errors.ChildFailedError: \r\n")
    result = parse_file(write(tmp_path, "rank.log", log[:line_at(log, "INFO: Generating video ...")] + crash))
    assert (result["status"], result["reason"]) == (
        "failed", "out of memory on rank 1: torch.OutOfMemoryError: NPU out of memory on rank 1")
    assert result["extra"]["tracebacks"] == [
        "torch.OutOfMemoryError: NPU out of memory on rank 1",
        "torch.distributed.elastic.multiprocessing.errors.ChildFailedError:"]


def test_traceback_in_a_finished_run_is_a_warning(tmp_path, log):
    at = line_at(log, "INFO: Finished.")
    text = log[:at] + "Traceback (most recent call last):\n  File \"x.py\", line 1\nValueError: late\n" + log[at:]
    result = parse_file(write(tmp_path, "tb.log", text))
    assert (result["status"], result["warnings"]) == ("ok", ["traceback in a finished run: ValueError: late"])


def test_several_reports_take_the_last(tmp_path, samples, log):
    variant = (samples / "run_sample_variant.log").read_text()
    report = variant[line_at(variant, "] ==== Stage Totals"):line_at(variant, "Generating video used time")]
    report = report.replace("] cfg_allgather: 70.519", "] only_in_first: 1.000 / 1.000\n"
                            "[2026-03-04 09:23:22,437] INFO: [T2V StageProfile] cfg_allgather: 70.519")
    at = line_at(log, "] ==== Stage Totals")
    result = parse_file(write(tmp_path, "two.log", log[:at] + report + log[at:]))  # one run of lines
    assert result["metrics"] == BASELINE
    assert "only_in_first" not in result["extra"]["stage_totals"]
    assert result["extra"]["reports"] == 2
    assert result["warnings"] == ["the log holds 2 profile reports; took the last"]


def test_odd_lines_are_reported(tmp_path, log):
    at = line_at(log, "Generating video used time")
    skew = ("[2026-03-04 09:15:41,590] INFO: [T2V AttnProfile] ==== Slow-Card Collective Launch Skew (ms) ====\n"
            "[2026-03-04 09:15:41,591] INFO: [T2V AttnProfile] out_all_to_all: skew_max=1.250 rank=3\n")
    odd = "[2026-03-04 09:15:41,358] INFO: [T2V StageProfile] request_total: fast / slow\n"
    totals = line_at(log, "] cfg_allgather: 71.448")
    text = log[:totals] + odd + log[totals:at] + skew + log[at:]
    result = parse_file(write(tmp_path, "odd.log", text))
    assert "collective_skew" not in result["extra"]
    assert result["extra"]["other_records"] == ["request_total: fast / slow", "out_all_to_all: skew_max=1.250 rank=3"]
    assert result["warnings"] == ["2 profile line(s) not understood, kept in extra.other_records"
                                  " (first: 'request_total: fast / slow')"]
    assert result["metrics"] == BASELINE


def test_lines_across_read_boundaries(tmp_path, log):
    at = line_at(log, "Generation job args")
    head, tail = log[:at], log[at:]
    long_line = "x" * (3 << 19) + "\r"  # 1.5 MiB: crosses the first 1 MiB read, kept cut at 64 KiB
    boundary = 2 << 20                  # the second read ends inside a Stage Totals line
    size = boundary - 9 - len(head) - len(long_line) - tail.index("cfg_allgather: 71.448")
    filler = ("NPU warning: noise\n" * (size // 19 + 1))[:size - 1] + "\n"
    text = head + long_line + filler + tail
    assert text.index("cfg_allgather: 71.448") == boundary - 9
    result = parse_file(write(tmp_path, "big.log", text))
    assert (result["status"], result["metrics"]) == ("ok", BASELINE)
    assert result["extra"]["stage_totals"]["cfg_allgather"] == {"max": 71.448, "avg": 71.302}


def test_report_larger_than_the_flush_size(tmp_path, log):
    at = line_at(log, "] denoise_loop_total: 103268.044")  # inside Stage Totals
    many = "".join(f"[2026-03-04 09:15:41,358] INFO: [T2V StageProfile] {'s' * 200}{i}: {i}.000 / 1.000\n"
                   for i in range(12000))  # ~3 MiB of one section: parsed in two passes
    result = parse_file(write(tmp_path, "huge.log", log[:at] + many + log[at:]))
    assert (result["status"], result["metrics"], result["warnings"]) == ("ok", BASELINE, [])
    assert len(result["extra"]["stage_totals"]) == 13 + 12000
    assert result["extra"]["stage_totals"]["s" * 200 + "11999"] == {"max": 11999.0, "avg": 1.0}


@pytest.mark.parametrize("content, reason", [
    (b"", EMPTY), (b"\n\r\n  \n", EMPTY),
    (b"RUN,2026\x00\x00\x01\x02", NOT_TEXT), (bytes(range(128, 256)) * 64, NOT_TEXT),
])
def test_unreadable_files(tmp_path, content, reason):
    result = parse_file(write(tmp_path, "bad", content))
    assert (result["kind"], result["status"], result["reason"]) == (None, "unreadable", reason)
    assert result["metrics"] == NOTHING


def test_missing_file(tmp_path):
    result = parse_file(tmp_path / "absent.log")
    assert (result["status"], result["reason"]) == ("unreadable", "No such file or directory")
    assert parse_file(f"{tmp_path}/a\0b.log")["reason"] == "embedded null byte"


# ------------------------------------------------------------------ generated profile files

def test_appended_blocks(tmp_path, samples, csv):
    path = write(tmp_path, "perf.csv", csv + (samples / "perf_sample_variant.csv").read_text())
    last = parse_file(path)
    assert (last["status"], last["metrics"]) == ("ok", no_gen_time(VARIANT))
    assert (last["extra"]["blocks"], last["extra"]["block"]) == (2, 1)
    assert last["warnings"] == [NEGATIVE_VAE, "2 runs appended in one profile file; took block 1"]
    for block in (0, -2):
        first = parse_file(path, block=block)
        assert (first["metrics"], first["extra"]["block"]) == (no_gen_time(BASELINE), 0)
    assert parse_file(path, block=-1)["metrics"] == no_gen_time(VARIANT)
    for block in (2, -3):
        with pytest.raises(ValueError, match=rf"perf.csv: block {block} out of range \(the file holds 2 block\(s\)\)"):
            parse_file(path, block=block)


def test_half_written_last_block(tmp_path, samples, csv):
    variant = (samples / "perf_sample_variant.csv").read_text()
    path = write(tmp_path, "perf.csv", csv + variant[:variant.index("STEP,")])
    result = parse_file(path)
    assert (result["status"], result["metrics"]) == ("ok", no_gen_time(BASELINE))
    assert result["warnings"] == ["the last block (1) is cut off; took block 0",
                                  "2 runs appended in one profile file; took block 0"]
    cut = parse_file(path, block=1)
    assert (cut["status"], cut["reason"]) == ("incomplete", CUT_OFF)
    assert cut["metrics"]["request_total"] == 102922.546


@pytest.mark.parametrize("keep, expected_status, present", [
    (lambda lines: lines[:20], "incomplete", {"request_total"}),                     # cut in MEM
    (lambda lines: lines[:-1], "incomplete", set(BASELINE) - {"gen_time", "real_time"}),  # no ATTN_END
    (lambda lines: lines[:lines.index("END") + 1], "ok",                              # no attention profile
     {"request_total", "denoise_step_avg", "reserved_peak"}),
    (lambda lines: lines[lines.index("END") + 1:], "ok",                             # --profile_attn_file
     {"attn_kernel_avg", "comm_total_avg", "qkv_all_to_all_avg", "out_all_to_all_avg"}),
    (lambda lines: [line for line in lines if line.startswith("TOTAL,")], "ok", {"request_total"}),  # legacy
])
def test_partial_and_old_profile_files(tmp_path, csv, keep, expected_status, present):
    result = parse_file(write(tmp_path, "perf.csv", "\n".join(keep(csv.splitlines())) + "\n"))
    assert result["status"] == expected_status
    assert result["reason"] == ("" if expected_status == "ok" else CUT_OFF)
    assert result["metrics"] == {m: BASELINE[m] if m in present else None for m in METRICS}


ATTENTION = ("attn_kernel_avg", "comm_total_avg", "qkv_all_to_all_avg", "out_all_to_all_avg")


@pytest.mark.parametrize("record, present", [
    ("TOTAL,", ("request_total",)),  # old files: TOTAL records only, no RUN / END
    ("ATTN", ATTENTION),             # --profile_attn_file: ATTN_RUN .. ATTN_END blocks only
])
def test_appended_partial_formats(tmp_path, samples, csv, record, present):
    both = csv + (samples / "perf_sample_variant.csv").read_text()
    lines = "".join(line for line in both.splitlines(True) if line.startswith(record))
    result = parse_file(write(tmp_path, "old.csv", lines.replace("\n", "\r\n")))
    assert (result["status"], result["extra"]["blocks"], result["extra"]["block"]) == ("ok", 2, 1)
    assert result["metrics"] == {m: VARIANT[m] if m in present else None for m in METRICS}


def test_malformed_records_are_kept_and_reported(tmp_path, csv):
    text = csv.replace("TOTAL,request_total,104321.987,", "TOTAL,request_total,nan,") + "SKEW_X,1,2\n"
    result = parse_file(write(tmp_path, "perf.csv", text))
    assert result["metrics"] == {**no_gen_time(BASELINE), "request_total": None}
    assert result["extra"]["other_records"] == ["TOTAL,request_total,nan,104229.661", "SKEW_X,1,2"]
    assert result["warnings"] == ["2 profile line(s) not understood, kept in extra.other_records"
                                  " (first: 'TOTAL,request_total,nan,104229.661')"]


def test_step_jitter(tmp_path, csv):
    text = csv.replace("STEP,denoise_step_total,5163.402,5158.117,5199.630,5121.884,5214.056,",
                       "STEP,denoise_step_total,5163.402,5158.117,5199.630,5121.884,8000.000,")
    path = write(tmp_path, "perf.csv", text)
    assert parse_file(path)["warnings"] == [
        "abnormal step jitter: denoise_step_total max 8000.0 ms > 1.5 x p50 5158.117 ms"]
    assert parse_file(path, jitter_factor=2.0)["warnings"] == []


# ------------------------------------------------------------------ time files

@pytest.mark.parametrize("content, status, reason, extra", [
    ("REAL_TIME_SECONDS=123.45\n", "ok", "", {}),
    ("Command exited with non-zero status 1\nREAL_TIME_SECONDS=12.00\n", "failed", "exit code 1", {"exit_code": 1}),
    ("Command terminated by signal 9\r\nREAL_TIME_SECONDS=3.5\r\n", "failed", "killed by SIGKILL (signal 9)",
     {"signal": 9}),
])
def test_time_file(tmp_path, content, status, reason, extra):
    result = parse_file(write(tmp_path, "time.txt", content))
    assert (result["kind"], result["status"], result["reason"], result["extra"]) == ("time", status, reason, extra)
    assert result["metrics"] == {**NOTHING, "real_time": float(content.split("REAL_TIME_SECONDS=")[1])}


# ------------------------------------------------------------------ run directories

def make_run(tmp_path, files, name="run1"):
    run = tmp_path / name
    run.mkdir()
    for file_name, content in files.items():
        write(run, file_name, content)
    return run


def test_run_directory_is_merged(tmp_path, log, csv):
    manifest = {"variant": "baseline", "host": "npu", "repo": {"sha": "abc123"}}
    run = make_run(tmp_path, {"run.log": log, "perf.csv": csv, "time.txt": "REAL_TIME_SECONDS=130.25\n",
                              "manifest.json": json.dumps(manifest), "exit_code": "0\n",
                              "run.sh": "#!/bin/bash\necho request_total: 1.0 / 2.0\n",
                              "video.mp4": b"\x00\x00\x00\x18ftypmp42"})
    result = parse_run(run)
    assert (result["kind"], result["status"], result["reason"], result["warnings"]) == ("run", "ok", "", [])
    assert result["metrics"] == {**BASELINE, "real_time": 130.25}
    assert [s["path"] for s in result["sources"]] == [str(run / n) for n in ("perf.csv", "run.log", "time.txt")]
    assert result["manifest"] == manifest
    assert (result["extra"]["exit_code"], result["extra"]["skipped"]) == (0, ["video.mp4"])
    assert result["extra"]["attn_ratios"]["comm_share"]["max_ratio"] == 0.25578  # the profile's precision
    assert result["memory_measured"] is True
    json.loads(json.dumps(result))


def test_single_file_run(samples):
    result = parse_run(samples / "run_sample_baseline.log")
    assert result["sources"] == [parse_file(samples / "run_sample_baseline.log")]
    assert (result["manifest"], result["metrics"]) == ({}, BASELINE)


@pytest.mark.parametrize("files, status, reason", [
    ({"crash.log": "crash", "exit_code": "1"}, "failed", f"exit code 1: {OOM}"),
    ({"crash.log": "crash", "exit_code": "0"}, "failed", f"crash.log: {OOM}"),
    ({"run.log": "killed", "exit_code": "1"}, "failed", "exit code 1: rank 2 killed by SIGKILL"),
    ({"run.log": "killed", "exit_code": "137"}, "failed",
     "exit code 137 (killed by SIGKILL): rank 2 killed by SIGKILL"),
    ({"run.log": "log-unfinished", "exit_code": "124"}, "failed", "exit code 124 (timeout)"),
    ({"run.log": "log", "exit_code": "3"}, "failed", "exit code 3"),
    ({"run.log": "log-unfinished", "perf.csv": "csv"}, "failed", f"run.log: {NO_FINISHED}"),
    ({"run.log": "log", "time.txt": "Command exited with non-zero status 2\n"}, "failed", "time.txt: exit code 2"),
    ({"run.log": ""}, "unreadable", f"run.log: {EMPTY}"),
    ({"perf.csv": "csv"}, "failed", "no run log in the directory"),
    ({}, "unreadable", "no run files in the directory"),
])
def test_run_directory_health(tmp_path, samples, fixtures, log, csv, files, status, reason):
    named = {"crash": (samples / "run_sample_crash.log").read_text(), "log": log, "csv": csv,
             "killed": (fixtures / "torchrun" / "run_rank_killed.log").read_text(),
             "log-unfinished": log[:line_at(log, "INFO: Finished.")]}
    result = parse_run(make_run(tmp_path, {n: named.get(c, c) for n, c in files.items()}))
    assert (result["status"], result["reason"]) == (status, reason)


def test_log_and_profile_disagreeing_is_said(tmp_path, log, csv):
    log = log.replace("request_total: 104321.987 / 104229.661", "request_total: 104330.000 / 104229.661")
    csv = csv.replace("MEM_REQUEST,16234.500,15890.200,19792.000,", "MEM_REQUEST,16234.500,15890.200,19792.040,")
    result = parse_run(make_run(tmp_path, {"run.log": log, "perf.csv": csv}))
    assert result["metrics"] == {**BASELINE, "reserved_peak": 19792.04}  # within .1f rounding: no warning
    assert result["warnings"] == ["request_total differs: 104321.987 in perf.csv vs 104330.0 in run.log;"
                                  " took perf.csv (the profile file is more precise)"]


def test_run_warnings_name_their_files_once(tmp_path, samples):
    run = make_run(tmp_path, {"run.log": (samples / "run_sample_variant.log").read_text(),
                              "perf.csv": (samples / "perf_sample_variant.csv").read_text(),
                              "exit_code": "zero", "manifest.json": "{not json"})
    result = parse_run(run)
    assert result["status"] == "ok"
    assert result["warnings"] == [
        f"{NEGATIVE_VAE} (perf.csv, run.log)",
        "manifest.json is not a readable JSON object; ignored",
        "exit_code unreadable or not a number; exit status unknown"]
    assert result["manifest"] == {}


# ------------------------------------------------------------------ slow-card and block diagnostics

OUT_SKEW = {"calls": 1600, "launch_skew_avg": 0.412, "launch_skew_p90": 0.903, "launch_skew_max": 3.817,
            "finish_skew_avg": 0.127, "finish_skew_p90": 0.241, "finish_skew_max": 1.092,
            "dur_avg": 5.006, "dur_max": 11.873, "dur_min": 4.114,
            "latest_launch_ranks": [[2, 911], [0, 402], [3, 201], [1, 86]]}
KERNEL_SKEW = {"calls": 1600, "launch_skew_avg": 0.251, "launch_skew_p90": 0.488, "launch_skew_max": 2.905,
               "finish_skew_avg": 0.602, "finish_skew_p90": 1.174, "finish_skew_max": 4.338,
               "dur_avg": 34.812, "dur_p90": 35.406, "dur_max": 78.12, "dur_min": 33.905,
               "slowest_ranks": [[2, 1187], [1, 244], [0, 101], [3, 68]]}


@pytest.mark.parametrize("name, gen_time, share", [("run_diag.log", 104.4187, 0.0256),  # the log's 2.56 %
                                                   ("perf_diag.csv", None, 0.025607)])
def test_slow_card_and_block_diagnostics(fixtures, name, gen_time, share):
    result = parse_file(fixtures / "diag" / name)
    assert (result["status"], result["warnings"]) == ("ok", [])  # every line understood
    assert result["metrics"] == {**BASELINE, "gen_time": gen_time}
    x = result["extra"]
    assert sorted(x["collective_skew"]) == ["out_all_to_all", "qkv_all_to_all"]
    assert x["collective_skew"]["out_all_to_all"] == OUT_SKEW
    assert x["collective_skew"]["qkv_all_to_all"]["latest_launch_ranks"][0] == [2, 988]
    assert x["op_skew"] == {"attn_kernel": KERNEL_SKEW}
    assert sorted(x["block_totals"]) == [f"block_{i:02d}" for i in range(40)]
    assert x["block_totals"]["block_27"] == {"total_max": 2662.25, "total_avg": 2652.875, "call_avg": 66.322,
                                             "call_max": 141.432, "calls": 160}
    assert sorted(x["block_hotspots"]) == [str(k) for k in range(1, 9)]
    assert x["block_hotspots"]["1"] == {"block": "block_27", "ms": 2662.25, "share": share}
    assert "other_records" not in x


def test_block_records_in_their_own_file(tmp_path, fixtures):
    """--profile_block_file: BLOCK_RUN..BLOCK_END blocks only, appended run after run."""
    lines = [line for line in (fixtures / "diag" / "perf_diag.csv").read_text().splitlines(True)
             if line.startswith("BLOCK")]
    second = "".join(lines).replace("BLOCK,block_27,2662.250,", "BLOCK,block_27,2700.000,")
    path = write(tmp_path, "blocks.csv", "".join(lines) + second)
    result = parse_file(path)
    assert (result["status"], result["extra"]["blocks"], result["extra"]["block"]) == ("ok", 2, 1)
    assert result["extra"]["block_totals"]["block_27"]["total_max"] == 2700.0
    assert (result["metrics"], result["memory_measured"]) == (NOTHING, False)
    assert result["warnings"] == ["2 runs appended in one profile file; took block 1"]
    cut = parse_file(write(tmp_path, "cut.csv", "".join(lines[:-1])))  # no BLOCK_END
    assert (cut["status"], cut["reason"]) == ("incomplete", CUT_OFF)


def test_empty_rank_list_and_bad_skew_records(tmp_path, fixtures):
    text = (fixtures / "diag" / "perf_diag.csv").read_text()
    text = text.replace("ATTN_SKEW_RANK,out_all_to_all,rank2:911;rank0:402;rank3:201;rank1:86",
                        "ATTN_SKEW_RANK,out_all_to_all,")  # no late rank counted: the branch writes nothing
    text = text.replace("ATTN_OP_SKEW_RANK,attn_kernel,rank2:1187;", "ATTN_OP_SKEW_RANK,attn_kernel,slow;")
    result = parse_file(write(tmp_path, "perf.csv", text))
    assert result["extra"]["collective_skew"]["out_all_to_all"]["latest_launch_ranks"] == []
    assert "slowest_ranks" not in result["extra"]["op_skew"]["attn_kernel"]
    assert result["extra"]["other_records"] == ["ATTN_OP_SKEW_RANK,attn_kernel,slow;rank1:244;rank0:101;rank3:68"]


# ------------------------------------------------------------------ memory not measured, detailed mode

@pytest.mark.parametrize("name, gen_time", [("run_no_memory.log", 104.4187), ("perf_no_memory.csv", None)])
def test_all_zero_memory_is_not_measured(fixtures, name, gen_time):
    result = parse_file(fixtures / "diag" / name)
    assert result["status"] == "ok"
    assert result["metrics"] == {**BASELINE, "reserved_peak": None, "gen_time": gen_time}
    assert result["memory_measured"] is False
    assert result["warnings"] == ["memory not measured (every memory figure is 0.0)"]
    assert result["extra"]["request_peak_mem"]["reserved_max"] == 0.0  # the figures are kept


def test_one_memory_figure_is_enough(tmp_path, fixtures):
    text = (fixtures / "diag" / "perf_no_memory.csv").read_text()
    text = text.replace("MEM,vae_decode,0.000,0.000,0.000,", "MEM,vae_decode,0.000,0.000,0.500,")
    result = parse_file(write(tmp_path, "perf.csv", text))
    assert (result["metrics"]["reserved_peak"], result["memory_measured"], result["warnings"]) == (0.0, True, [])


def test_absent_memory_beside_stage_totals(tmp_path, csv):
    old = "".join(line for line in csv.splitlines(True) if line.startswith("TOTAL,"))
    result = parse_file(write(tmp_path, "old.csv", old))
    assert (result["status"], result["metrics"]["request_total"], result["memory_measured"]) == (
        "ok", 104321.987, False)
    assert result["warnings"] == ["memory not measured (memory figures absent)"]


def test_memory_measured_of_a_run_directory(tmp_path, fixtures, log, csv):
    zero = make_run(tmp_path, {"run.log": (fixtures / "diag" / "run_no_memory.log").read_text(),
                               "perf.csv": (fixtures / "diag" / "perf_no_memory.csv").read_text()})
    result = parse_run(zero)
    assert (result["status"], result["metrics"]["reserved_peak"], result["memory_measured"]) == ("ok", None, False)
    assert result["warnings"] == ["memory not measured (every memory figure is 0.0) (perf.csv, run.log)"]
    attn_only = "".join(line for line in csv.splitlines(True) if line.startswith("ATTN"))
    measured = parse_run(make_run(tmp_path, {"run.log": log, "attn.csv": attn_only}, name="run2"))
    assert (measured["metrics"]["reserved_peak"], measured["memory_measured"]) == (19792.0, True)
    assert parse_run(tmp_path / "absent")["memory_measured"] is False


def test_detailed_profile_mode_is_warned(fixtures):
    result = parse_file(fixtures / "diag" / "run_detailed.log")
    assert (result["status"], result["metrics"]) == ("ok", BASELINE)
    assert result["extra"]["profile_mode"] == "detailed"
    assert result["warnings"] == [
        "the log holds 2 profile reports; took the last",
        "detailed profile mode (--profile_mode detailed): generate ran twice and gen_time covers both"
        " generations; not comparable with normal runs"]


def test_detailed_mode_in_the_prompt_is_no_mode(tmp_path, log):
    trap = log.replace("and reserved=9/9 MB\", base_seed", "and reserved=9/9 MB, profile_mode='detailed'\", base_seed")
    assert trap != log
    result = parse_file(write(tmp_path, "trap.log", trap))
    assert (result["warnings"], "profile_mode" in result["extra"]) == ([], False)


# ------------------------------------------------------------------ failed runs: the root cause

@pytest.mark.parametrize("name, reason, failure", [
    ("run_rank_killed.log", "rank 2 killed by SIGKILL",
     {"cause": "killed", "rank": 2, "exitcode": -9, "signal": "SIGKILL", "error": None,
      "source": "torchrun root cause"}),
    ("run_rank_oom.log", "out of memory on rank 3: torch.OutOfMemoryError: NPU out of memory. Tried to allocate"
     " 3.16 GiB (NPU 3; 60.96 GiB total capacity; 57.80 GiB already allocated)",
     {"cause": "oom", "rank": 3, "exitcode": 1, "signal": None, "source": "torchrun root cause"}),
    ("run_timeout.log", "timeout on rank 0, killed by SIGABRT: torch.distributed.DistBackendError: [Rank 0] Watchdog"
     " caught collective operation timeout: WorkHCCL(SeqNum=4811, OpType=ALLTOALL_BASE, Timeout(ms)=600000) ran"
     " for 600021 milliseconds before timing out.",
     {"cause": "timeout", "rank": 0, "exitcode": -6, "signal": "SIGABRT", "source": "torchrun root cause"}),
])
def test_torchrun_root_cause_wins(fixtures, name, reason, failure):
    result = parse_file(fixtures / "torchrun" / name)
    assert (result["kind"], result["status"], result["reason"]) == ("log", "failed", reason)
    assert {k: v for k, v in result["extra"]["failure"].items() if k in failure} == failure
    assert result["extra"]["tracebacks"][-1] == "torch.distributed.elastic.multiprocessing.errors.ChildFailedError:"


def test_the_victims_traceback_is_not_the_cause(fixtures):
    result = parse_file(fixtures / "torchrun" / "run_rank_killed.log")
    assert "Connection reset by peer" in result["extra"]["tracebacks"][0]  # the first traceback in the log ...
    assert "Connection reset" not in result["reason"]                      # ... is not the root


def test_root_cause_without_the_roots_traceback(tmp_path, fixtures):
    text = (fixtures / "torchrun" / "run_rank_oom.log").read_text()
    text = text.replace("[rank3]: ", "[rank1]: ")  # only another rank's traceback is in the log
    result = parse_file(write(tmp_path, "x.log", text))
    assert result["reason"] == "rank 3 failed with exit code 1"


@pytest.mark.parametrize("content, reason", [
    ("Traceback (most recent call last):\n  File \"x\"\n"
     "torch.distributed.elastic.multiprocessing.api.SignalException: Process 3187 got signal: 15\n",
     "killed by SIGTERM: torch.distributed.elastic.multiprocessing.api.SignalException: Process 3187 got signal: 15"),
    ("[rank2]: Traceback (most recent call last):\n[rank2]: ValueError: bad shape\n", "rank 2: ValueError: bad shape"),
    ("Traceback (most recent call last):\nRuntimeError: HCCL function error: hcclAllToAll, timed out\n",
     "timeout: RuntimeError: HCCL function error: hcclAllToAll, timed out"),
])
def test_failure_kinds_without_torchrun_summary(tmp_path, log, content, reason):
    result = parse_file(write(tmp_path, "x.log", log[:line_at(log, "INFO: Generating video ...")] + content))
    assert (result["status"], result["reason"]) == ("failed", reason)


# ------------------------------------------------------------------ what is not a regular file

def test_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "run.log"
    os.mkfifo(fifo)
    result = parse_file(fifo)  # no writer: opening it for reading in the usual way would wait forever
    assert (result["kind"], result["status"], result["reason"]) == (None, "unreadable", "not a regular file (a FIFO)")
    assert parse_run(fifo)["reason"] == "not a regular file (a FIFO)"


@pytest.mark.parametrize("path, reason", [
    ("/dev/null", "not a regular file (a character device)"), (".", "not a regular file (a directory)"),
])
def test_other_non_regular_files(path, reason):
    assert (parse_file(path)["status"], parse_file(path)["reason"]) == ("unreadable", reason)


def test_a_fifo_in_a_run_directory_is_not_read(tmp_path, log):
    run = make_run(tmp_path, {"run.log": log})
    os.mkfifo(run / "perf.csv")
    result = parse_run(run)
    assert (result["status"], [os.path.basename(s["path"]) for s in result["sources"]]) == ("ok", ["run.log"])


def test_torchrun_agent_line_when_its_report_is_missing(fixtures, tmp_path):
    text = (fixtures / "torchrun" / "run_rank_killed.log").read_text()
    cut = text[:text.index("Traceback (most recent call last):\n  File \"/usr/local/bin/torchrun\"")]
    result = parse_file(write(tmp_path, "cut.log", cut))  # torchrun died before its ChildFailedError report
    assert (result["status"], result["reason"]) == ("failed", "rank 2 killed by SIGKILL")
    assert result["extra"]["failure"]["source"] == "torchrun agent"


def test_unnamed_traceback_is_the_roots_when_no_rank_is_named(fixtures, tmp_path):
    text = (fixtures / "torchrun" / "run_rank_oom.log").read_text().replace("[rank3]: ", "")
    result = parse_file(write(tmp_path, "x.log", text))
    assert result["reason"].startswith("out of memory on rank 3: torch.OutOfMemoryError: NPU out of memory.")


def test_root_cause_cut_before_its_rank(fixtures, tmp_path):
    text = (fixtures / "torchrun" / "run_rank_oom.log").read_text()
    cut = text[:text.index("  rank      : 3 (local_rank: 3)")]
    result = parse_file(write(tmp_path, "cut.log", cut))
    assert result["reason"].startswith("out of memory on rank 3: torch.OutOfMemoryError:")
    assert result["extra"]["failure"]["source"] == "traceback"


def test_agent_line_of_an_exit_code_is_no_traceback(tmp_path, log):
    """torchrun's agent line for a child that exited with a code: no root of its own, and not a traceback."""
    agent = ("E0304 09:16:12.311000 3187 torch/distributed/elastic/multiprocessing/api.py:869] failed"
             " (exitcode: 1) local_rank: 0 (pid: 3194) of binary: /usr/bin/python3\nValueError: not an error line\n")
    result = parse_file(write(tmp_path, "x.log", log[:line_at(log, "INFO: Generating video ...")] + agent))
    assert (result["status"], result["reason"], "failure" in result["extra"]) == ("failed", NO_FINISHED, False)
