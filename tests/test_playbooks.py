"""Playbooks, roles, inventories and lint: static checks plus the controller-only validation play."""

import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ENV = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
       "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_FORCE_COLOR": "0", "NO_COLOR": "1"}
PLAYBOOKS = [REPO / "bench.yml", *sorted((REPO / "playbooks").glob("*.yml"))]
INVENTORIES = ["local", "testhost", "production"]
ROLES = sorted(p.name for p in (REPO / "roles").iterdir() if p.is_dir())


def run(*argv, timeout=300):
    return subprocess.run([str(BIN / argv[0]), *argv[1:]], cwd=REPO, env=ENV, capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.parametrize("playbook", PLAYBOOKS, ids=lambda p: str(p.relative_to(REPO)))
@pytest.mark.parametrize("inventory", INVENTORIES)
def test_syntax_check(playbook, inventory):
    res = run("ansible-playbook", "-i", f"inventory/{inventory}", "--syntax-check", str(playbook))
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.parametrize("inventory,host", [("local", "localhost"), ("testhost", "testhost"), ("production", "npu")])
def test_inventories_put_one_host_in_group_wanbench(inventory, host):
    res = run("ansible-inventory", "-i", f"inventory/{inventory}", "--list")
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert data["wanbench"]["hosts"] == [host]


@pytest.mark.parametrize("inventory", ["production", "testhost", "local"])
def test_shipped_inventories_pass_the_validator(inventory):
    # what ops may edit is checked by the same validator the play runs, not pinned to today's values
    res = subprocess.run([sys.executable, "-m", "wanbench", "validate", "-i", f"inventory/{inventory}"],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "inventory and catalog ok" in res.stdout


def test_lint_production_profile_without_skips():
    cfg = yaml.safe_load((REPO / ".ansible-lint").read_text())
    assert cfg["profile"] == "production"
    assert not cfg.get("skip_list") and not cfg.get("warn_list")
    res = run("ansible-lint", "--nocolor", timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Profile 'production' was required, and it passed" in res.stdout + res.stderr


def test_every_noqa_carries_its_reason():
    for path in [*REPO.glob("roles/**/*.yml"), *REPO.glob("playbooks/**/*.yml"), *REPO.glob("molecule/**/*.yml"),
                 REPO / "bench.yml"]:
        for n, line in enumerate(path.read_text().splitlines(), 1):
            m = re.search(r"#\s*noqa:?\s*([\w\[\]-]*)(.*)", line)
            if m:
                assert m.group(1) and len(m.group(2).strip(" -:")) >= 10, f"{path}:{n}: # noqa without a reason"


@pytest.mark.parametrize("role", ROLES)
def test_role_layout_and_documented_knobs(role):
    base = REPO / "roles" / role
    for part in ("defaults/main.yml", "meta/main.yml", "meta/argument_specs.yml", "tasks/main.yml"):
        assert (base / part).is_file(), f"{role}: missing {part}"
    defaults = yaml.safe_load((base / "defaults/main.yml").read_text()) or {}
    options = yaml.safe_load((base / "meta/argument_specs.yml").read_text())["argument_specs"]["main"]["options"]
    assert all(k.startswith(role + "_") for k in [*defaults, *options]), f"{role}: knob without the role prefix"
    assert set(defaults) <= set(options), f"{role}: defaults not in argument_specs: {set(defaults) - set(options)}"
    required = {k for k, v in options.items() if v.get("required")}
    assert set(options) - set(defaults) <= required, f"{role}: optional knobs without a default"
    for k, v in options.items():
        assert v.get("description"), f"{role}: {k} has no description"
    text = (base / "defaults/main.yml").read_text()
    for k in defaults:  # every knob carries a comment where it is defined
        line = next(line for line in text.splitlines() if line.startswith(k + ":"))
        block = text.split(line)[0].rstrip().splitlines()[-1:] or [""]
        assert "#" in line or block[0].lstrip().startswith("#") or line.endswith(">-") or line.endswith(":"), \
            f"{role}: {k} is not documented in defaults/main.yml"
    main = yaml.safe_load((base / "tasks/main.yml").read_text())
    assert all(t.get("tags") and t.get("name") for t in main), f"{role}: tasks/main.yml must be named, tagged includes"


def test_every_command_task_declares_changed_when():
    for path in REPO.glob("roles/*/tasks/*.yml"):
        for task in _tasks(yaml.safe_load(path.read_text()) or []):
            if any(k in task for k in ("ansible.builtin.command", "ansible.builtin.shell")):
                assert "changed_when" in task, f"{path}: {task.get('name')} has no changed_when"


def _tasks(items):
    for t in items:
        yield t
        for key in ("block", "rescue", "always"):
            yield from _tasks(t.get(key, []))


# ------------------------------------------------------------------ the validation play (controller only)
def validate(*extra, inventory="production"):
    return run("ansible-playbook", "-i", f"inventory/{inventory}", "playbooks/validate.yml", *extra)


def test_validation_never_touches_the_host():
    # `npu` is an SSH alias that does not resolve here: any task that connected would fail.
    res = validate("-e", "variant=ffn_only,nofsdp")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "ffn_only, nofsdp on npu (profiled); baseline=rerun" in res.stdout


@pytest.mark.parametrize("extra,needle", [
    (["-e", "variant=nope"], "unknown variant 'nope' (known: agwait1, agwait1_lasta2a, baseline"),
    ([], "no variant given"),
    (["-e", "variant=ffn_only", "-e", "baseline=sometimes"], "value of validate_baseline must be one of: rerun, skip, stored, got: sometimes"),
    (["-e", "variant=ffn_only", "-e", "wanbench_visible_devices=0,1"], "must list 4 device ids"),
    (["-e", "variant=ffn_only", "-e", "wanbench_repo_dir=relative/path"], "wanbench_repo_dir must be an absolute path"),
    (["-e", "variant=all", "-e", "family=nope"], "unknown family 'nope'"),
])
def test_validation_errors_are_clear(extra, needle):
    res = validate(*extra)
    out = re.sub(r"\s+", " ", res.stdout + res.stderr)
    assert res.returncode != 0 and needle in out, out[-3000:]
    assert "PLAY [Validate the catalog and the inventory]" in res.stdout


# ------------------------------------------------------------------ device checks (stand-in npu-smi / nvidia-smi)
# Stand-ins for the device tools: scripts that print recorded outputs (tests/fixtures/devices/README.md)
# and a stand-in torch_npu module with the ASCEND_* variables (the CANN environment preflight checks on npu).
DEVICES = REPO / "tests" / "fixtures" / "devices"
STAND_INS = {
    ("npu", False): {"npu-smi": ["npu-smi-info-910b-idle.txt"]},
    ("npu", True): {"npu-smi": ["npu-smi-info-910b-busy.txt"]},
    ("cuda", False): {"nvidia-smi": ["nvidia-smi-query-h100x4-idle.csv", "nvidia-smi-h100x4-idle.txt",
                                     "nvidia-smi-query-compute-apps-idle.csv"]},
    ("cuda", True): {"nvidia-smi": ["nvidia-smi-query-h100x4-loaded.csv", "nvidia-smi-h100x4-loaded.txt",
                                    "nvidia-smi-query-compute-apps-h100x4-loaded.csv"]},
}


def _stand_in(folder, tool, outputs):
    """tool prints outputs[0] for --query-gpu, [1] plain, [2] for --query-compute-apps (npu-smi: [0])."""
    q, plain, apps = (DEVICES / (outputs + outputs * 2)[i] for i in range(3))
    (folder / tool).write_text(f"""#!/bin/sh
case "$*" in --query-gpu*) cat {shlex.quote(str(q))} ;; --query-compute-apps*) cat {shlex.quote(str(apps))} ;;
  *) cat {shlex.quote(str(plain))} ;; esac
""")
    (folder / tool).chmod(0o755)


@pytest.mark.parametrize("platform,busy,needle", [
    ("npu", False, None),
    ("npu", True, "device 0 held by another process before the run: pid 2718281 python3.10 (37888 MB)"),
    ("cuda", False, None),
    ("cuda", True, "device 0 held by another process before the run: pid 944 python3"),
    ("npu", None, "device state before the run unknown: npu-smi info: exit status 127"),
])
def test_preflight_device_idle_checks(tmp_path, platform, busy, needle):
    for tool, outputs in STAND_INS.get((platform, busy), {}).items():
        _stand_in(tmp_path, tool, outputs)
    (tmp_path / "py" / "torch_npu").mkdir(parents=True)
    (tmp_path / "py" / "torch_npu" / "__init__.py").write_text("# stand-in: the CANN environment preflight checks\n")
    env = {**ENV, "PATH": f"{tmp_path}{os.pathsep}{ENV['PATH']}", "PYTHONPATH": os.pathsep.join([str(tmp_path / "py"), *filter(None, [ENV.get("PYTHONPATH")])]),
           "ASCEND_OPP_PATH": str(tmp_path), "ASCEND_AICPU_PATH": str(tmp_path)}
    res = subprocess.run([str(BIN / "ansible-playbook"), "playbooks/preflight.yml", "--tags", "validate,preflight",
                          "-e", f"wanbench_platform={platform}", "-e", "wanbench_visible_devices=0,1,2,3"],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    out = re.sub(r"\s+", " ", res.stdout + res.stderr)
    if busy is None:  # no npu-smi anywhere: a warning (every run will be invalid), not a failed preflight
        assert res.returncode == 0 and needle in out and "every run will be invalid" in out, out[-3000:]
    elif needle is None:
        assert res.returncode == 0, out[-3000:]
    else:
        assert res.returncode != 0 and needle in out, out[-3000:]


def test_preflight_names_the_missing_cann_environment(tmp_path):
    _stand_in(tmp_path, "npu-smi", ["npu-smi-info-910b-idle.txt"])
    env = {k: v for k, v in ENV.items() if not k.startswith("ASCEND_")}
    res = subprocess.run([str(BIN / "ansible-playbook"), "playbooks/preflight.yml", "--tags", "validate,preflight",
                          "-e", "wanbench_platform=npu", "-e", "wanbench_visible_devices=0,1,2,3"],
                         cwd=REPO, env={**env, "PATH": f"{tmp_path}{os.pathsep}{ENV['PATH']}"},
                         capture_output=True, text=True, timeout=300)
    out = re.sub(r"\s+", " ", res.stdout + res.stderr)
    assert res.returncode != 0, out[-3000:]
    assert re.search(r"the login shell where the repo lives lacks the npu environment: ASCEND_OPP_PATH not set; "
                     r"ASCEND_AICPU_PATH not set; \S*python\S* cannot import torch_npu: ModuleNotFoundError", out), out[-3000:]


# ------------------------------------------------------------------ bench.yml on the embedded default
# A zero-work fake torchrun (tests/testhost/fake_torchrun, copied beside its control files) and
# temporary run and result folders: these plays write nothing into the checkout.
FAKE = REPO / "tests" / "testhost" / "fake_torchrun"


@pytest.fixture
def bench(tmp_path):
    """bench(*args, wait=True) runs bench.yml on the embedded default with a fake workload."""
    import shutil

    fake = tmp_path / "bin" / "torchrun"
    fake.parent.mkdir()
    shutil.copy(FAKE, fake)
    paths = {"runs": tmp_path / "runs", "results": tmp_path / "results", "bin": fake.parent}

    def bench(*args, wait=True):
        argv = [str(BIN / "ansible-playbook"), "bench.yml", "-e", "baseline=skip", "-e", "repeats=1",
                "-e", "wanbench_warmup_runs=0", "-e", f"wanbench_torchrun={fake}",
                "-e", f"wanbench_run_root={paths['runs']}", "-e", f"wanbench_results_dir={paths['results']}", *args]
        if not wait:
            return subprocess.Popen(argv, cwd=REPO, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    text=True)
        return subprocess.run(argv, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)

    bench.paths = paths
    return bench


def run_dirs(paths):
    return sorted(p for p in paths["runs"].iterdir() if p.is_dir()) if paths["runs"].is_dir() else []


def collected(paths):
    base = paths["results"] / "localhost"
    return sorted(p for p in base.iterdir() if p.is_dir() and p.name != "reports") if base.is_dir() else []


def reports(paths):
    return sorted((paths["results"] / "localhost" / "reports").glob("*/*/report.json"))


@pytest.mark.parametrize("args,rendered,ran,reported", [
    (["--tags", "preflight"], False, False, False),
    (["--tags", "repo_sync"], False, False, False),
    (["--tags", "render"], True, False, False),
    (["--tags", "run"], True, True, False),
    (["--tags", "wait"], True, True, False),
    (["--tags", "collect"], True, True, False),
    (["--tags", "report"], True, True, True),
    (["--skip-tags", "preflight,repo_sync"], True, True, True),
    (["-e", "collect_inline_max=0"], True, True, True),  # the archive is fetched, not inlined
    (["--check"], False, False, False),
], ids=lambda v: " ".join(v) if isinstance(v, list) else None)
def test_each_advertised_tag_and_check_mode(bench, args, rendered, ran, reported):
    """docs/ansible.md, "Tags": what each tag and --check runs, and the lock freed after each."""
    res = bench("-e", "variant=ffn_only", *args)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-4000:]
    runs = run_dirs(bench.paths)
    assert len(runs) == (1 if rendered else 0), runs
    if rendered:
        files = {p.name for p in runs[0].iterdir()}
        assert {"run.sh", "manifest.json"} <= files
        assert ("exit_code" in files) == ran and (".pid" in files) == ran, files  # --tags render starts nothing
    got = collected(bench.paths)
    assert len(got) == (1 if ran else 0), got
    if ran:
        assert (got[0] / "exit_code").read_text() == "0\n"
        assert "ffn_only (candidate): finished with exit code 0" in out
    assert bool(reports(bench.paths)) == reported
    assert not (bench.paths["runs"] / ".holder").exists(), "the host lock was not released"
    assert "Validating arguments against arg spec 'main' - Resolve" in out or "Resolve the selected" in out


def test_a_failed_run_does_not_stop_the_play(bench):
    """The first run fails: it is collected with its cause, the second still runs, the report is
    written, and the play fails only at its very end."""
    (bench.paths["bin"] / "fail-variants").write_text("ffn_only\n")
    res = bench("-e", "variant=ffn_only,nofsdp")
    out = res.stdout + res.stderr
    assert res.returncode != 0, out[-4000:]
    got = sorted(collected(bench.paths), key=lambda p: p.name.split("-")[1])  # the order is shuffled
    assert [p.name.split("-")[1] for p in got] == ["ffn_only", "nofsdp"]
    assert [(p / "exit_code").read_text() for p in got] == ["1\n", "0\n"]
    assert "RuntimeError: fake failure of ffn_only" in (got[0] / "run.log").read_text()
    assert len(reports(bench.paths)) == 1, "the report did not run"
    assert "ffn_only (candidate): finished with exit code 1" in out and "nofsdp (candidate): finished" in out
    assert out.index("Write report.md") < out.index("Fail when a run did not finish cleanly")
    assert not (bench.paths["runs"] / ".holder").exists()


def test_a_load_started_with_the_run_is_caught_mid_run(bench):
    """A spinner started once the first run has started (a concurrent job): that run's before-sample did
    not see it, the wait loop's mid-run sample does (health/during/), and the verdict is invalid."""
    (bench.paths["bin"] / "sleep-seconds").write_text("8\n")
    play = bench("-e", "variant=ffn_only", "-e", "baseline=rerun", "-e", "wanbench_health_busy_cpu_pct=5", wait=False)
    spinner = None
    try:
        deadline = time.monotonic() + 240
        while spinner is None and time.monotonic() < deadline and play.poll() is None:
            if any((d / ".pid").exists() for d in run_dirs(bench.paths)):
                spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
            time.sleep(0.1)
        out = play.communicate(timeout=300)[0]
    finally:
        if spinner:
            spinner.kill()
            spinner.wait()
    assert spinner is not None and play.returncode == 0, out[-4000:]
    first = min(collected(bench.paths), key=lambda p: json.loads((p / "manifest.json").read_text())["started_at"])
    assert (first / "health" / "during" / "ps.rc").read_text() == "0\n"
    (report_json,) = reports(bench.paths)
    (group,) = json.loads(report_json.read_text())["groups"]
    assert group["verdict"] == "invalid", group["reasons"]
    mine = [r for r in group["health"] if first.name in r and f"pid {spinner.pid} " in r]
    assert any("host busy during the run: " in r for r in mine), group["health"]
    assert not any("host busy before the run: " in r for r in mine), mine


def holder_of(paths):
    return json.loads((paths["runs"] / ".holder").read_text())


def test_two_benches_at_once(bench):
    """The second bench fails at preflight within seconds naming the first (play id, variant,
    controller, PID, start); the first is untouched; a lock clash is never a run result."""
    import getpass
    import socket
    import time

    (bench.paths["bin"] / "sleep-seconds").write_text("15\n")
    first = bench("-e", "variant=ffn_only", wait=False)
    try:
        deadline = time.monotonic() + 120
        while not any((d / ".pid").exists() for d in run_dirs(bench.paths)):
            assert first.poll() is None and time.monotonic() < deadline, first.stdout.read()[-3000:] if first.stdout else ""
            time.sleep(0.2)
        holder = holder_of(bench.paths)
        started = time.monotonic()
        second = bench("-e", "variant=nofsdp")
        took = time.monotonic() - started
        out = re.sub(r"\s+", " ", second.stdout + second.stderr)
        first_out = first.communicate(timeout=300)[0]
    finally:
        if first.poll() is None:
            first.kill()
    assert second.returncode != 0
    assert holder["pid"] == first.pid and holder["variant"] == "ffn_only"
    assert holder["controller"] == f"{getpass.getuser()}@{socket.gethostname()}"
    assert (f"the host is locked by play {holder['play_id']} (variant ffn_only, {holder['controller']}, "
            f"pid {first.pid}, since {holder['started_at']}); a run of it is still running") in out, out[-3000:]
    assert took < 30, f"the second bench took {took:.0f} s to fail"
    assert first.returncode == 0, first_out[-3000:]
    assert [p.name.split("-")[1] for p in run_dirs(bench.paths)] == ["ffn_only"], "the second bench started a run"
    assert [p.name.split("-")[1] for p in collected(bench.paths)] == ["ffn_only"]


def write_holder(paths, age_s=0, **fields):
    paths["runs"].mkdir(parents=True, exist_ok=True)
    holder = {"play_id": "20261127T000000Z-dead00", "variant": "gate1", "controller": "someone@elsewhere",
              "pid": 999999, "started_at": "2026-11-27T00:00:00Z", **fields}
    (paths["runs"] / ".holder").write_text(json.dumps(holder, sort_keys=True) + "\n")
    if age_s:
        stamp = __import__("time").time() - age_s
        os.utime(paths["runs"] / ".holder", (stamp, stamp))
    return holder


@pytest.mark.parametrize("case,fields,age_s,taken", [
    ("dead pid on this controller", {"controller": "HERE", "pid": 999999}, 0, True),
    # pid 1 is alive: only its start time tells that it is another process now
    ("pid reused by another process on this controller", {"controller": "HERE", "pid": 1, "pid_start": 123456789,
                                                          "boot_id": "BOOT"}, 0, True),
    ("old record without a start time, pid alive on this controller", {"controller": "HERE", "pid": 1}, 0, False),
    ("another controller, not seen for 20 min", {}, 1200, True),
    ("another controller, seen just now", {}, 0, False),
])
def test_a_stale_lock_is_taken_over_with_a_warning(bench, case, fields, age_s, taken):
    import getpass
    import socket

    if fields.get("controller") == "HERE":
        fields["controller"] = f"{getpass.getuser()}@{socket.gethostname()}"
    if fields.get("boot_id") == "BOOT":
        fields["boot_id"] = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    holder = write_holder(bench.paths, age_s=age_s, **fields)
    res = bench("-e", "variant=ffn_only", "--tags", "preflight")
    out = re.sub(r"\s+", " ", res.stdout + res.stderr)
    if taken:
        assert res.returncode == 0, out[-3000:]
        assert f"took over the stale lock of play {holder['play_id']} (variant gate1, {holder['controller']})" in out
        assert not (bench.paths["runs"] / ".holder").exists()
    else:
        assert res.returncode != 0 and f"the host is locked by play {holder['play_id']} (variant gate1" in out
        assert holder_of(bench.paths) == holder


def test_the_run_script_refuses_to_start_without_the_lock(bench):
    res = bench("-e", "variant=ffn_only", "--tags", "render")
    assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]
    (run_dir,) = run_dirs(bench.paths)
    done = subprocess.run(["bash", str(run_dir / "run.sh")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 75 and (run_dir / "exit_code").read_text() == "75\n"
    assert "is not held by play" in (run_dir / "run.log").read_text()
