"""Real outputs from public sources (tests/fixtures/real/, SOURCES.md names each one's source).

Each fixture starts with header lines beginning with "# " (source, what it shows, what was trimmed);
``real`` strips them, so the parsers see the text as it was pasted.
"""

from pathlib import Path

import pytest

from wanbench import devices as D
from wanbench.parse import parse_file

REAL = Path(__file__).parent / "fixtures" / "real"


def real(kind, name):
    lines = (REAL / kind / name).read_text(encoding="utf-8").split("\n")
    while lines and lines[0].startswith("# "):
        lines.pop(0)
    return "\n".join(lines)


@pytest.mark.parametrize("path", sorted(p for p in REAL.glob("*/*") if p.is_file()), ids=lambda p: p.name)
def test_every_fixture_names_its_public_source(path):
    head = path.read_text(encoding="utf-8").split("\n")[:3]
    assert head[0].startswith("# source: https://github.com/"), head[0]
    assert head[1].startswith("# shows: ") and head[2].startswith("# trimmed: ")
    assert path.name in (REAL / "SOURCES.md").read_text(encoding="utf-8")


# ------------------------------------------------------------------ npu-smi info of every generation

def smi(name):
    return D.snapshot("npu", {"npu_smi": real("npu-smi", name)})


def seen(snap):
    return [(d["index"], d["npu"], d["chip"], d["name"], d["health"], d["power_w"], d["mem_used_mb"],
             d["mem_total_mb"]) for d in snap["devices"]]


NO_PROCESS_TABLE = "npu-smi info: this npu-smi prints no process table; processes on the NPUs unknown"


@pytest.mark.parametrize("name, count, first, processes, driver", [
    ("910prob-24.1.0-idle.txt", 8, (0, 0, 0, "910ProB", "OK", 78.0, 18.0, 32768.0), [], "24.1.0"),
    ("910b2c-23.0.2.1-busy.txt", 2, (0, 0, 0, "910B2C", "OK", 88.6, 20701.0, 65536.0),
     [{"device": 0, "pid": 124528, "name": "python3.8", "mem_mb": 17400.0}], "23.0.2.1"),
    ("910b3-25.2.3-container.txt", 1, (3, 3, 0, "910B3", "OK", 92.8, 3198.0, 65536.0), [], "25.2.3"),
    ("a3-25.2.0-one-process.txt", 4, (0, 0, 0, "Ascend910", "OK", 162.8, 3133.0, 65536.0),
     [{"device": 3, "pid": 990711, "name": "python", "mem_mb": 7746.0}], "25.2.0"),  # NPU 1 chip 1 = Phy-ID 3
    ("310p3-duo-24.1.0.1-busy.txt", 4, (0, 1, 0, "310P3", "OK", None, 16302.0, 44280.0),
     [{"device": 0, "pid": 3277562, "name": "mindie_llm_back", "mem_mb": 14513.0},
      {"device": 1, "pid": 3277565, "name": "mindie_llm_back", "mem_mb": 14513.0},
      {"device": 2, "pid": 3034986, "name": "mindie_llm_back", "mem_mb": 34207.0},
      {"device": 3, "pid": 3034989, "name": "mindie_llm_back", "mem_mb": 33740.0}], "24.1.0.1"),
    ("310p3-25.5.2-large-npu-id.txt", 1, (0, 32896, 0, "310P3", "OK", None, 1904.0, 44213.0), [], "25.5.2"),
    ("a5-ascend950-vendor-doc.txt", 1, (0, 0, 0, "xxx", "OK", 204.4, 4439.0, 86016.0), [], "x.x.x"),
])
def test_complete_tables(name, count, first, processes, driver):
    snap = smi(name)
    assert (snap["status"], snap["errors"], snap["notes"]) == ("ok", [], [])
    assert len(snap["devices"]) == count and seen(snap)[0] == first
    assert snap["processes"] == processes and snap["versions"]["driver"] == driver


def test_a3_second_chip_has_no_power_and_its_own_phy_id():
    assert [d[:3] + d[5:6] for d in seen(smi("a3-25.2.0-one-process.txt"))] == [
        (0, 0, 0, 162.8), (1, 0, 1, None), (2, 1, 0, 167.1), (3, 1, 1, None)]


def test_a5_table_with_the_npu_id_in_its_own_column():
    snap = smi("a5-ascend950-vendor-doc.txt")
    assert snap["devices"][0]["bus_id"] == "0000:91:00.0" and snap["devices"][0]["util_pct"] == 0.0


def test_310b_without_a_process_table_is_a_note_not_an_error():
    snap = smi("310b4-23.0.0-alarm-no-process-table.txt")
    assert (snap["status"], snap["errors"], snap["notes"], snap["processes"]) == ("ok", [], [NO_PROCESS_TABLE], None)
    assert seen(snap) == [(0, 0, 0, "310B4", "Alarm", 0.0, 3628.0, 15609.0)]
    assert snap["devices"][0]["bus_id"] is None  # "NA"
    assert D.judge(snap) == ["device 0 health before the run: Alarm"]  # the alarm, not the missing table


@pytest.mark.parametrize("name, count, error, processes", [
    ("a3-cut-inside-chip-rows.txt", 3, "npu-smi info: output cut off at line 14: '| 1     Ascend910", None),
    ("910b4-24.1.1-cut-border.txt", 2, "npu-smi info: output cut off at line 12: '+=====", None),
    ("910b4-1-25.2.0-cut.txt", 2, "npu-smi info: output cut off at line 13: '|'", None),
    ("910b2-24.1.rc3-cut-at-process-table.txt", 2, "npu-smi info: output cut off at line 13: '+-----", None),
    ("a3-process-table-cut.txt", 2, "npu-smi info: output cut off at line 12: '| 0       1 ", None),
    ("a3-26.0.rc2-tail-cut.txt", 1, "npu-smi info: output cut off at line 12: '| No running processes found", None),
])
def test_cut_captures_are_incomplete_and_judged(name, count, error, processes):
    snap = smi(name)
    assert snap["status"] == "incomplete" and snap["errors"][0].startswith(error), snap["errors"]
    assert len(snap["devices"]) == count and snap["processes"] is processes
    assert NO_PROCESS_TABLE not in snap["notes"]  # a cut table is not a version without one
    reasons = D.judge(snap)
    assert reasons[0].startswith("device state before the run incomplete, processes unknown: npu-smi info: "
                                 "output cut off at line"), reasons


@pytest.mark.parametrize("output", [
    None,  # the text as npu-smi printed it, handed over as text
    {"rc": 248, "stdout": None, "stderr": ""},  # as Ansible registers it: npu-smi exits non-zero
])
def test_the_drivers_own_error_is_the_reason(output):
    text = real("npu-smi", "dcmi-8005-driver-error.txt")
    if output is not None:
        output["stdout"] = text
    snap = D.snapshot("npu", {"npu_smi": output or text})
    assert snap["status"] == "unreadable" and snap["devices"] == []
    assert "dcmi module initialize failed. ret is -8005" in snap["errors"][0], snap["errors"]
    assert D.judge(snap)[0].endswith("dcmi module initialize failed. ret is -8005")


# ------------------------------------------------------------------ failure tails

def failure(tmp_path, name):
    path = tmp_path / name
    path.write_text(real("failures", name), encoding="utf-8")
    result = parse_file(path)
    assert (result["kind"], result["status"]) == ("log", "failed")
    return result["extra"]["failure"], result["reason"]


@pytest.mark.parametrize("name, cause, rank, more, reason", [
    # torch_npu / HCCL / ACL
    ("vllm-ascend-116-acl-507001-tqdm.log", "device", 0,
     {"code": "507001", "call": "c10_npu::acl::AclrtSynchronizeStreamWithTimeout(copy_stream)",
      "source": "torchrun root cause"},
     "device error on rank 0 (error code 507001 in c10_npu::acl::AclrtSynchronizeStreamWithTimeout(copy_stream)):"
     " RuntimeError: copy_d2d:"),
    ("vllm-ascend-382-hccl-watchdog-timeout.log", "timeout", 1, {"source": "traceback"},
     "timeout on rank 1: [Rank 1] Watchdog caught collective operation timeout: WorkHCCL(SeqNum=196,"),
    ("vllm-ascend-486-ei0006-socket-timeout.log", "timeout", 1, {"code": "EI0006"},
     "timeout on rank 1 (EI0006): EI0006: [PID: 1292363] 2025-04-08-18:07:20.444.436 Getting socket times out."),
    ("llamafactory-5071-ei0006-no-traceback.log", "timeout", None, {"code": "EI0006"},
     "timeout (EI0006): EI0006: 2024-08-05-18:15:21.270.506 Getting socket times out."),
    ("mindspore-docs-ei0002-notify-timeout.log", "timeout", None, {"code": "EI0002"},
     "timeout (EI0002): EI0002: The wait execution of the Notify register times out."),
    ("llamafactory-3839-ej0001-hccp-init.log", "comm", 3, {"code": "EJ0001"},
     "communication error on rank 3 (EJ0001): EJ0001: 2024-05-21-11:57:54.167.645 Failed to initialize the HCCP"),
    ("touchnet-100-npu-oom.log", "oom", None, {"device": 3, "size": "5.03 GiB"},
     "out of memory: RuntimeError: NPU out of memory. Tried to allocate 5.03 GiB (NPU 3;"),
    ("x-oscar-4-cann-env-missing.log", "startup", None, {},
     "start-up failure: ImportError: libhccl.so: cannot open shared object file"),
    # torchrun's agent line (both logger formats) for a rank killed by a signal
    ("time-r1-9-rank-sigkill.log", "killed", 2, {"signal": "SIGKILL", "exitcode": -9, "source": "torchrun agent"},
     "rank 2 killed by SIGKILL"),
    ("cuda-colossalai-3514-rank-sigkill.log", "killed", 3, {"signal": "SIGKILL", "source": "torchrun agent"},
     "rank 3 killed by SIGKILL"),
    # the CUDA / NCCL equivalents
    ("cuda-picotron-6-nccl-watchdog-timeout.log", "timeout", 2, {},
     "timeout on rank 2: [Rank 2] NCCL watchdog thread terminated with exception: [Rank 2] Watchdog caught"),
    ("cuda-neurolens-2-oom.log", "oom", None, {"device": 0, "size": "55.57 GiB"},
     "out of memory: torch.cuda.OutOfMemoryError: CUDA out of memory. Tried to allocate 55.57 GiB."),
    ("cuda-gs-livm-12-illegal-memory-access.log", "device", None, {"code": "CUDA"},
     "device error (CUDA error): CUDA error: an illegal memory access was encountered"),
])
def test_failure_tails(tmp_path, name, cause, rank, more, reason):
    got, said = failure(tmp_path, name)
    assert (got["cause"], got["rank"]) == (cause, rank), said
    assert {k: got[k] for k in more} == more
    assert said.startswith(reason), said


def test_a_call_named_timeout_is_not_a_timeout(tmp_path):
    got, _ = failure(tmp_path, "vllm-ascend-116-acl-507001-tqdm.log")
    assert "Timeout" in got["call"] and got["cause"] == "device"


def test_a_traceback_glued_to_a_tqdm_bar_is_read(tmp_path):
    path = tmp_path / "x.log"
    path.write_text(real("failures", "vllm-ascend-116-acl-507001-tqdm.log"), encoding="utf-8")
    tracebacks = parse_file(path)["extra"]["tracebacks"]
    assert tracebacks[0].startswith("RuntimeError: copy_d2d:")  # the glued one, before rank 0's own copy
    assert len(tracebacks) == 3
