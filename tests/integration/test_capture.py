"""Machine state and output check end to end (docs/health.md), on the embedded default
(inventory/local: this machine, reference workload on CPU ranks, no container) and on the test host
(SSH + docker).

Neither has an accelerator: the platform is `reference`, whose stand-in for "a device held by
another process" is a process using CPU. A spinner started before the play (in the container on the
test host) is that stand-in; it must make the verdict `invalid`, never pass or fail.
"""

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

from wanbench.parse import parse_run

from .testhost_lib import CONTAINER, REPO, docker, manifest

INVENTORIES = ["local", "testhost"]

# The catalog as users have it, plus a fixed seed (the output check needs one) and a real flag that
# changes the numerics (the catalog's env switches leave the reference's output bit-identical).
SEED = 42


def _variants():
    variants = yaml.safe_load((REPO / "group_vars/all/catalog.yml").read_text())["wanbench_variants"]
    variants["baseline"].setdefault("flags", {})["base_seed"] = SEED
    variants["shifted"] = {"description": "flow shift 7 instead of 5 (changes the output)", "base": "baseline",
                           "flags": {"sample_shift": 7.0}}
    return variants


# The workload's Python (this checkout's .venv; on the test host bind-mounted at the same path by
# tests/testhost/up.sh): the container's own python3 has no numpy for the output check.
COMMON = {"baseline": "rerun", "repeats": "1", "wanbench_warmup_runs": 0,
          "wanbench_health_python": str(REPO / ".venv" / "bin" / "python")}
# This development machine is shared with other jobs: on inventory/local `ps` sees them all, and any
# at 50 % CPU would make the run invalid (rightly). The output-check play turns the busy rule off
# there (the spinner test below turns it on).
QUIET = {"local": {"wanbench_health_busy_cpu_pct": 1000}, "testhost": {}}


def _run_root(inventory, folder):
    """inventory/local keeps its runs under build/local/runs; the tests keep theirs in a temp folder."""
    return {"wanbench_run_root": str(folder)} if inventory == "local" else {}


def _report(result):
    (cmd,) = [r["cmd"] for r in result.task_results("Write report.md, report.csv, report.json, summary.txt, share.md and report.html")]
    out = Path(cmd[cmd.index("--out") + 1])
    return out, json.loads((out / "report.json").read_text())


def _runs(result):
    """The play's collected run directories, in run order (from its report)."""
    _, data = _report(result)
    return [Path(row["log_file"]).parent for row in data["rows"]]


@pytest.fixture(scope="module", params=INVENTORIES)
def outputs_play(request, tmp_path_factory):
    """baseline, ffn_only (a real switch: same output) and shifted (another flow shift: output changed),
    at a fixed seed, with -e require_same_output=true."""
    from .conftest import run_playbook

    if request.param == "testhost":
        request.getfixturevalue("testhost")
    return run_playbook(tmp_path_factory.mktemp("outputs"), inventory=request.param, extravars={
        **COMMON, **QUIET[request.param], **_run_root(request.param, tmp_path_factory.mktemp("runs")), "variant": "ffn_only,shifted", "wanbench_variants": _variants(),
        "require_same_output": True})


def test_capture_lands_in_the_run_directory_and_the_report(outputs_play):
    result = outputs_play
    assert result.rc == 0, result.stdout[-4000:]
    runs = _runs(result)
    assert len(runs) == 3, runs
    for run_dir in runs:
        for phase in ("before", "after"):
            files = {p.name for p in (run_dir / "health" / phase).iterdir()}
            assert {"ps.out", "ps.rc", "loadavg.out", "kernel.out"} <= files and "python.out" not in files, files
            assert (run_dir / "health" / phase / "ps.rc").read_text().strip() == "0"
        assert (run_dir / "health" / "host" / "python.out").is_file()  # the versions: once per play
        parsed = parse_run(run_dir)
        before = parsed["devices"]["before"]
        assert before["platform"] == "reference" and before["status"] == "ok", before["errors"]
        assert before["host"]["ncpu"] >= 1 and len(before["host"]["loadavg"]) == 3
        assert before["versions"]["kernel"] and before["versions"]["torch"] and before["versions"]["numpy"]
        assert parsed["devices"]["after"]["status"] == "ok"
        if manifest(run_dir)["container"]:  # the test host: the image, read on the host once per play
            assert re.fullmatch(r"sha256:[0-9a-f]{64}", before["versions"]["image"])
            assert before["versions"]["image_name"] == "wanbench/testhost:bookworm"
        assert not (run_dir / "output.npy").exists()  # scored where it ran, not kept (keep_outputs=false)
    out, data = _report(result)
    md = (out / "report.md").read_text()
    assert "## Machine state (before and after each run)" in md and "other processes:" in md
    assert all(row["machine"] and row["machine"][0].startswith("before: cpu") for row in data["rows"]), data["rows"]


def test_the_output_check_passes_a_real_switch_and_fails_a_changed_output(outputs_play):
    result = outputs_play
    out, data = _report(result)
    groups = {g["variant"]: g for g in data["groups"]}
    same, changed = groups["ffn_only"], groups["shifted"]
    assert same["output"]["checked"] == 1 and same["output"]["changed"] == [] and same["output_flag"] is None
    (score,) = same["output"]["scores"]
    assert score["identical"] is True and score["control_sha256"] == score["candidate_sha256"]
    assert same["verdict"] != "fail" or not any("output" in r for r in same["reasons"]), same["reasons"]
    assert changed["verdict"] == "fail", changed["reasons"]
    assert re.fullmatch(r"output changed: PSNR \d+\.\d dB", changed["output_flag"]), changed["output_flag"]
    assert any(r.startswith("output changed: PSNR") and r.endswith("(require_same_output)") for r in changed["reasons"])
    (score,) = changed["output"]["scores"]
    assert score["psnr_db"] < 40 and score["max_abs_diff"] > 0 and not score["identical"]
    summary = (out / "summary.txt").read_text()
    assert re.search(r"^shifted: FAIL \(output changed: PSNR \d+\.\d dB\) \(request_total", summary, re.M), summary
    md = (out / "report.md").read_text()
    assert "## Output vs the control (same --base_seed)" in md and "- ffn_only: identical" in md
    for run_dir in _runs(result):  # the candidates carry their score; digests only, no output file
        check = run_dir / "output_check.json"
        if manifest(run_dir)["role"] == "candidate":
            recorded = json.loads(check.read_text())
            assert recorded["base_seed"] == str(SEED) and recorded["score"]["candidate_sha256"]
        else:
            assert not check.exists()


def test_an_environment_that_differs_from_the_control_makes_the_run_invalid(outputs_play, tmp_path):
    """The collected runs of the play, with the candidate's recorded torch version changed (as after a
    container upgrade between the control and the candidate): the report lists the differing key."""
    runs = {manifest(p)["variant"]: p for p in _runs(outputs_play)}
    control, candidate = tmp_path / "control", tmp_path / "candidate"
    shutil.copytree(runs["baseline"], control)
    shutil.copytree(runs["ffn_only"], candidate)
    probe = candidate / "health" / "host" / "python.out"
    torch = re.search(r"^torch=(.+)$", probe.read_text(), re.M).group(1)
    probe.write_text(re.sub(r"^torch=.*$", "torch=9.9.9", probe.read_text(), flags=re.M))
    proc = subprocess.run([str(REPO / ".venv/bin/python"), "-m", "wanbench.cli", "compare", str(candidate),
                           "--baseline", str(control), "--json"], capture_output=True, text=True, cwd=REPO, check=True)
    (group,) = json.loads(proc.stdout)
    assert group["verdict"] == "invalid"
    assert f"candidate run candidate: environment differs from the control: torch: {torch} (control) vs 9.9.9 (run)" \
        in group["reasons"], group["reasons"]
    assert group["env_diff"] == [f"candidate run candidate: torch: {torch} (control) vs 9.9.9 (run)"]


@pytest.fixture(params=INVENTORIES)
def spinner(request):
    """The documented stand-in for a busy device on CPU: a process spinning where the workload runs
    (this machine for inventory/local, the container on the test host). Yields (inventory, pid, name)."""
    if request.param == "local":
        # not a child of this test process: the controller's own children are not another load
        started = subprocess.run(["sh", "-c", f'{shlex.quote(sys.executable)} -c "while True: pass" '
                                  '</dev/null >/dev/null 2>&1 & echo $!'], capture_output=True, text=True, check=True)
        pid = int(started.stdout.strip())
        yield "local", pid, Path(sys.executable).name[:15]
        os.kill(pid, signal.SIGKILL)
        return
    request.getfixturevalue("testhost")
    started = docker("exec", CONTAINER, "sh", "-c",
                     "nohup python3 -c 'while True: pass' </dev/null >/dev/null 2>&1 & echo $!").stdout
    pid = int(started.strip())
    yield "testhost", pid, "python3"
    docker("exec", CONTAINER, "kill", str(pid), check=False)


def test_a_busy_host_makes_the_verdict_invalid_not_pass_or_fail(spinner, playbook, tmp_path):
    inventory, pid, name = spinner
    # on this 2-core machine shared with other jobs the spinner got as little as 14 % of a core
    # (recorded on inventory/local while other plays ran), so the play asks for 5 %, as
    # tests/test_devices.py does (docs/health.md).
    result = playbook(inventory=inventory, extravars={**COMMON, **_run_root(inventory, tmp_path), "variant": "ffn_only",
                                                      "wanbench_health_busy_cpu_pct": 5})
    assert result.rc == 0, result.stdout[-4000:]
    _, data = _report(result)
    (group,) = data["groups"]
    assert group["verdict"] == "invalid", group["reasons"]
    busy = [r for r in group["health"] if "host busy before the run: " in r and f"pid {pid} {name} at" in r]
    # every reason names the spinner and a measured run; on inventory/local one CI run (2026-11-27) saw it
    # before the baseline run only, not before the candidate: not yet explained (ps's lifetime %CPU?)
    assert busy and {r.split(" run ")[0] for r in busy} <= {"baseline", "candidate"}, group["health"]


# ------------------------------------------------------------------ capture where the tools are (npu, test host)
# The test host has no NPU and its container no npu-smi. Stand-ins, each removed after the module:
# - npu-smi "on the host": a script that prints a real npu-smi output (tests/fixtures/real/npu-smi, its
#   source in its header: 8x 910ProB, idle), in a temporary folder of this machine that only the play's
#   wanbench_host_tools_path puts on PATH;
# - the CANN environment in the container's login shell: ASCEND_OPP_PATH / ASCEND_AICPU_PATH set and a
#   stand-in torch_npu package on PYTHONPATH (/etc/profile.d/ of the container, read by its login shell).
# The workload is the zero-work fake (tests/testhost/fake_torchrun): the capture is the point.
NPU_FIXTURE = REPO / "tests" / "fixtures" / "real" / "npu-smi" / "910prob-24.1.0-idle.txt"
NPU_OUTPUT = "".join(line for line in NPU_FIXTURE.read_text().splitlines(True) if not line.startswith("# "))
CANN_DIR = "/opt/wanbench-cann-standin"
CANN_PROFILE = "/etc/profile.d/wanbench-cann-standin.sh"


@pytest.fixture(scope="module")
def npu_stand_ins(testhost):
    from .conftest import FakeWorkload

    # the test host logs in as its own user (tests/testhost/up.sh): the folder and the output it prints
    # must be readable by that user, so both live in a world-readable temporary folder of their own
    tools = Path(tempfile.mkdtemp(prefix="wanbench-host-tools-"))
    tools.chmod(0o755)
    (tools / "npu-smi.out").write_text(NPU_OUTPUT)
    (tools / "npu-smi").write_text(f"#!/bin/sh\n# stand-in npu-smi: a real output, its source header left out\n"
                                   f"cat {shlex.quote(str(tools / 'npu-smi.out'))}\n")
    (tools / "npu-smi").chmod(0o755)
    profile = (f"export ASCEND_OPP_PATH={CANN_DIR} ASCEND_AICPU_PATH={CANN_DIR}\n"
               f"export PYTHONPATH={CANN_DIR}/py${{PYTHONPATH:+:$PYTHONPATH}}\n")
    docker("exec", CONTAINER, "sh", "-c", f'mkdir -p {CANN_DIR}/py/torch_npu && : > {CANN_DIR}/py/torch_npu/__init__.py'
                                          f' && printf "%s" "$1" > {CANN_PROFILE}', "sh", profile)
    fake = FakeWorkload()
    try:
        assert docker("exec", CONTAINER, "bash", "-lc", "command -v npu-smi", check=False).returncode != 0
        yield tools, fake
    finally:
        fake.clear()
        docker("exec", CONTAINER, "rm", "-rf", CANN_DIR, CANN_PROFILE, check=False)
        shutil.rmtree(tools, ignore_errors=True)


def _npu_play(playbook, fake, tmp_path, **extravars):
    return playbook(extravars={"variant": "ffn_only", "baseline": "rerun", "repeats": "1", "wanbench_warmup_runs": 0,
                               "wanbench_platform": "npu", "wanbench_visible_devices": "0,1,2,3",
                               "wanbench_torchrun": fake.torchrun, **extravars})


def test_npu_smi_absent_in_the_container_runs_on_the_host_and_says_so(npu_stand_ins, playbook, tmp_path):
    tools, fake = npu_stand_ins
    result = _npu_play(playbook, fake, tmp_path, wanbench_host_tools_path=str(tools))
    assert result.rc == 0, result.stdout[-4000:]
    runs = _runs(result)
    assert len(runs) == 2, runs
    for run_dir in runs:
        for phase in ("before", "after"):
            folder = run_dir / "health" / phase
            assert (folder / "npu_smi.where").read_text() == "host\n" and (folder / "npu_smi.rc").read_text() == "0\n"
            assert (folder / "npu_smi.out").read_text() == NPU_OUTPUT
            assert (folder / "kernel.out").is_file() and not (folder / "kernel.where").exists()  # in the container
        snap = parse_run(run_dir)["devices"]["before"]
        assert snap["where"] == {"npu_smi": "host"} and snap["status"] == "ok" and len(snap["devices"]) == 8
    out, data = _report(result)
    (group,) = data["groups"]
    assert not group["health"], group["health"]
    assert "ran on host: npu_smi" in (out / "report.md").read_text()


def test_npu_smi_absent_everywhere_is_invalid_or_with_optional_a_warning(npu_stand_ins, playbook, tmp_path):
    _, fake = npu_stand_ins
    result = _npu_play(playbook, fake, tmp_path)
    assert result.rc == 0, result.stdout[-4000:]
    assert "every run will be invalid (-e device_state=optional measures without it)" in re.sub(r"\s+", " ", result.stdout)
    _, data = _report(result)
    (group,) = data["groups"]
    assert group["verdict"] == "invalid"
    assert any("device state before the run unknown: npu-smi info: exit status 127" in r for r in group["health"]), \
        group["health"]
    runs = {manifest(p)["variant"]: p for p in _runs(result)}
    proc = subprocess.run([str(REPO / ".venv/bin/python"), "-m", "wanbench.cli", "compare", str(runs["ffn_only"]),
                           "--baseline", str(runs["baseline"]), "--json", "--device-state", "optional"],
                          capture_output=True, text=True, cwd=REPO, check=True)
    (group,) = json.loads(proc.stdout)
    assert not any("device state" in r for r in group["health"]), group["health"]
    assert any(r.startswith("warning: candidate run ") and "device state before the run unknown" in r
               and r.endswith("(device_state=optional)") for r in group["reasons"]), group["reasons"]
