"""The nightly: named matrices and their split (wanbench.matrix), the night's summary and exit code
(wanbench.nightly), the play's one-line refusals and the scheduled entry's invalid-setup path.

The matrix run itself (two hosts, index, import, share, screenshot) is tests/test_nightly_matrix.py;
the 10-night history with its night-7 regression and ack is tests/test_history.py.
"""

import copy
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from wanbench import cli, history, matrix, nightly

from test_history import make_run, results_with_history, sha

REPO = Path(__file__).resolve().parents[1]
CAT = yaml.safe_load((REPO / "group_vars/all/catalog.yml").read_text())
CATALOG = {"common": CAT["wanbench_common"], "platform_settings": CAT["wanbench_platform_settings"],
           "families": CAT["wanbench_families"], "modes": CAT["wanbench_modes"], "variants": CAT["wanbench_variants"]}
FSDP = [n for n in CAT["wanbench_variants"] if n != "baseline"
        and CAT["wanbench_variants"][n].get("family", "fsdp") == "fsdp" and not n.startswith("fw_")]
ENV = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_FORCE_COLOR": "0",
       "PYTHONPATH": str(REPO), "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}


# ---------------------------------------------------------------- matrices

def test_a_family_matrix_is_split_round_robin_and_every_host_keeps_its_controls():
    m = {"nightly": {"families": ["fsdp"], "repeats": 3}}
    got = matrix.plan(m, "nightly", CATALOG, ["h1", "h2", "h3"], platform="reference")
    assert got["variants"][0] == "baseline" and set(got["variants"][1:]) == set(FSDP)
    shares = got["hosts"]
    candidates = [n for n in got["variants"] if n != "baseline"]
    assert [shares[h]["candidates"] for h in ("h1", "h2", "h3")] == [candidates[i::3] for i in range(3)]
    assert all(s["repeats"] == 3 and "baseline" not in s["variants"] for s in shares.values())
    assert shares["h2"]["variant"] == ",".join(candidates[1::3])
    # the same matrix and hosts give the same split (a variant's history stays on one host)
    assert matrix.plan(m, "nightly", CATALOG, ["h1", "h2", "h3"])["hosts"] == shares


def test_a_host_without_a_candidate_runs_the_family_baselines_alone():
    m = {"ci": {"variants": ["ffn_only", "fw_algo1"], "repeats": 2}}
    shares = matrix.plan(m, "ci", CATALOG, ["a", "b", "c"])["hosts"]
    assert shares["a"]["variant"] == "ffn_only" and shares["b"]["variant"] == "fw_algo1"
    assert shares["c"] == {"variants": ["baseline", "fw_baseline"], "variant": "baseline,fw_baseline",
                           "repeats": 2, "candidates": []}


def test_a_listed_baseline_is_a_control_not_a_candidate():
    shares = matrix.plan({"m": {"variants": ["baseline", "gate1"]}}, "m", CATALOG, ["a", "b"])["hosts"]
    assert shares["a"]["candidates"] == ["gate1"] and shares["b"]["variant"] == "baseline"
    assert shares["a"]["repeats"] == 1  # repeats defaults to 1


@pytest.mark.parametrize("matrices,name,message", [
    ({}, "nightly", "no matrix defined: add one under wanbench_matrices (group_vars/all/site.yml)"),
    ({"nightly": {"families": ["fsdp"]}}, "", "no matrix given: pass -e matrix=NAME (known: nightly)"),
    ({"nightly": {"families": ["fsdp"]}}, "nigthly", "matrix 'nigthly': not in wanbench_matrices"),
    ({"m": {"variants": ["ffn_onyl"]}}, "m", "matrix 'm': unknown variant 'ffn_onyl' (known: "),
    ({"m": {"families": ["fdsp"]}}, "m", "matrix 'm': unknown family 'fdsp' (known: fsdp, framework)"),
    ({"m": {"variants": ["gate1"], "families": ["fsdp"]}}, "m", "give either variants or families"),
    ({"m": {"repeats": 2}}, "m", "give either variants or families"),
    ({"m": {"variants": ["gate1"], "repeats": 0}}, "m", "matrix 'm': repeats 0: expected a whole number >= 1"),
    ({"m": {"variants": ["gate1"], "repeats": "3"}}, "m", "repeats '3': expected a whole number"),
    ({"m": {"variants": "gate1"}}, "m", "matrix 'm': variants must be a non-empty list of names"),
    ({"m": {"variants": ["gate1", "gate1"]}}, "m", "matrix 'm': variants lists a name twice"),
    ({"m": {"variant": ["gate1"]}}, "m", "matrix 'm': unknown key variant (expected variants, families"),
    ({"m": ["gate1"]}, "m", "matrix 'm': expected a mapping"),
])
def test_a_wrong_matrix_is_one_line_naming_it(matrices, name, message):
    with pytest.raises(matrix.MatrixError) as e:
        matrix.plan(matrices, name, CATALOG, ["a"])
    assert message in str(e.value) and "\n" not in str(e.value)


def test_a_variant_with_a_matrix_and_an_empty_host_list_are_refused():
    m = {"m": {"variants": ["gate1"]}}
    with pytest.raises(matrix.MatrixError, match=r"variant='gate1' given with matrix='m': a matrix chooses"):
        matrix.plan(m, "m", CATALOG, ["a"], variant="gate1")
    with pytest.raises(matrix.MatrixError, match="no host to run it on"):
        matrix.plan(m, "m", CATALOG, [])


def test_the_site_matrices_resolve_against_the_catalog():
    site = yaml.safe_load((REPO / "group_vars/all/site.yml").read_text())
    for name in site["wanbench_matrices"]:
        assert matrix.resolve(site["wanbench_matrices"], name, CATALOG)["variants"]


# ---------------------------------------------------------------- the night's summary

def tonight(root, broken=False):
    """results_with_history (night 7 regresses by 5 %) plus, if asked, a broken run of night 10."""
    results_with_history(root)
    if broken:
        d = make_run(root, "npu1", "n10-crash", 10, sha(10), 1.0)
        (d / "exit_code").write_text("1\n")


def test_a_regression_tonight_exits_3_and_names_the_alarm(tmp_path):
    tonight(tmp_path)
    out = nightly.summarize(tmp_path, ["play10"], hosts=["npu1"], matrix="nightly")
    assert out["code"] == history.EXIT_REGRESSION and out["runs"] == 4  # a warm-up and 3 runs
    alarm, = out["alarms"]
    assert alarm["commits"] == [sha(6), sha(7)] and not alarm["acked"]
    assert " nightly nightly: exit 3 (regression); 1/1 host(s) measured; 4 run(s); 0 broken;" in out["line"]
    assert "alarms: 1 open, 0 acked (npu1 baseline request_total +" in out["line"]
    assert out["line"].endswith("plays play10") and "\n" not in out["line"]


def test_an_acked_regression_is_ok_and_a_broken_run_is_4(tmp_path):
    tonight(tmp_path, broken=True)
    (tmp_path / "acks.yml").write_text(
        "- {host: npu1, variant: baseline, metric: request_total, until: 2026-12-01, reason: known}\n")
    args = cli._parser().parse_args(["nightly-summary", str(tmp_path), "--play", "play10", "--host", "npu1"])
    _, text, _ = args.func(args)
    assert args.exit_code == history.EXIT_BROKEN_RUN
    line = text.splitlines()[0]
    assert "exit 4 (broken run)" in line and "1 broken (npu1 baseline: " in line and "alarms: 0 open, 1 acked" in line
    assert text.splitlines()[1].startswith("acked: known (until 2026-12-01): npu1 baseline request_total")
    # the line is appended to the results folder's summary log, one line a night
    args.func(args)
    assert (tmp_path / "nightly.log").read_text().splitlines() == [line, line]


def test_only_tonights_series_can_alarm(tmp_path):
    tonight(tmp_path)
    # night 5's play: the regression of nights 7-10 is history, and the last night of the series is not tonight
    assert nightly.summarize(tmp_path, ["play05"])["code"] == history.EXIT_OK
    # tonight only npu2 ran (play11): npu1's open alarm of night 10 is not tonight's
    make_run(tmp_path, "npu2", "x", 11, sha(11), 100000.0)
    out = nightly.summarize(tmp_path, ["play11"], hosts=["npu1", "npu2"])
    assert out["code"] == history.EXIT_OK and "1/2 host(s) measured; 1 run(s)" in out["line"]
    assert nightly.summarize(tmp_path, ["play10", "play11"])["code"] == history.EXIT_REGRESSION


def test_a_dropped_host_is_a_broken_night_and_nothing_measured_is_invalid_setup(tmp_path):
    tonight(tmp_path)
    (tmp_path / "acks.yml").write_text("- {host: '*', variant: '*', metric: '*', until: 2026-12-01, reason: r}\n")
    out = nightly.summarize(tmp_path, ["play10"], hosts=["npu1", "npu2"], dropped=["npu2"],
                            acks=history.load_acks(tmp_path / "acks.yml"))
    assert out["code"] == history.EXIT_BROKEN_RUN and "dropped out: npu2" in out["line"]
    out = nightly.summarize(tmp_path, [], hosts=["npu1"], dropped=["npu1"])
    assert out["code"] == history.EXIT_INVALID_SETUP and "0/1 host(s) measured; 0 run(s)" in out["line"]


def test_summary_cli_exit_codes_and_a_bad_ack_file(tmp_path, capsys):
    tonight(tmp_path)
    assert cli.main(["nightly-summary", str(tmp_path), "--play", "play10"]) == 3
    assert capsys.readouterr().out.splitlines()[1].startswith("OPEN: npu1 baseline request_total")
    (tmp_path / "acks.yml").write_text("- {host: npu1}\n")
    assert cli.main(["nightly-summary", str(tmp_path), "--play", "play10"]) == 2
    err = capsys.readouterr().err
    assert err == f"wanbench: {tmp_path / 'acks.yml'}: ack 1: missing variant, metric, until, reason\n"


def test_summary_of_the_events_of_a_run():
    events = [{"event": "runner_on_ok", "event_data": {"task": "Other", "res": {"rc": 0, "stdout": "x"}}},
              {"event": "runner_on_ok", "event_data": {"task": nightly.SUMMARY_TASK,
                                                       "res": {"rc": 4, "stdout": "line\nOPEN: a"}}}]
    assert nightly.summary_from_events(events) == (4, "line\nOPEN: a")
    assert nightly.summary_from_events(events[:1]) is None


# ---------------------------------------------------------------- the play and the scheduled entry

def test_the_play_refuses_a_variant_with_a_matrix_in_one_line():
    res = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", "tests/fixtures/nightly",
                          "playbooks/nightly.yml", "-e", "matrix=nightly", "-e", "variant=gate1",
                          "-e", "nightly_test_root=/nonexistent"],
                         cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    assert res.returncode == 2, res.stdout + res.stderr
    assert "msg: 'variant=''gate1'' given with matrix=''nightly'': a matrix chooses the variants;" in res.stdout
    assert "Traceback" not in res.stdout + res.stderr and "PLAY [Benchmark" not in res.stdout


def test_the_scheduled_entry_writes_invalid_setup_when_the_play_stops_early(tmp_path):
    """Through ansible-runner: an unknown matrix stops the first play; the entry sums it up itself."""
    res = subprocess.run([sys.executable, "-m", "wanbench.cli", "nightly", "--matrix", "nigthly",
                          "--inventory", "tests/fixtures/nightly", "--results", str(tmp_path), "--quiet",
                          "-e", "nightly_test_root=/nonexistent"],
                         cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    assert res.returncode == 2, res.stdout + res.stderr
    line, = (tmp_path / "nightly.log").read_text().splitlines()
    assert res.stdout.strip() == line
    assert " nightly nigthly: exit 2 (invalid setup); the play ended before its summary: nightly-" in line
    assert line.endswith("Refuse a wrong matrix: matrix 'nigthly': not in wanbench_matrices"
                         " (group_vars/all/site.yml) (known: framework, nightly)")
    assert not list(tmp_path.glob("nightly-*"))  # no run


def test_the_scheduled_entry_refuses_bad_arguments_in_one_line(tmp_path, capsys):
    assert cli.main(["nightly", "--inventory", "inventory/nope"]) == 2
    assert capsys.readouterr().err == f"wanbench: inventory/nope: no such inventory (relative paths are under {REPO})\n"
    assert cli.main(["nightly", "--checkout", str(tmp_path)]) == 2
    assert "not a wanbench checkout (no playbooks/nightly.yml)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["nightly", "-e", "novalue"])
    assert "expected KEY=VALUE or @FILE, got 'novalue'" in capsys.readouterr().err
    (tmp_path / "extra.yml").write_text("until: 2026-13-45\n")
    with pytest.raises(SystemExit):
        cli.main(["nightly", "-e", f"@{tmp_path / 'extra.yml'}"])
    assert f"{tmp_path / 'extra.yml'}: a value YAML cannot read (month must be in 1..12)" in capsys.readouterr().err


def test_resolving_a_matrix_leaves_the_catalog_as_it_was():
    """The play resolves the matrix, then validate resolves each share from the same catalog."""
    before = copy.deepcopy(CATALOG)
    matrix.plan({"m": {"families": ["fsdp", "framework"]}}, "m", CATALOG, ["a", "b"])
    assert CATALOG == before


# ---------------------------------------------------------------- the schedule's files (the cron path on a real
# host without systemd: tests/integration/test_schedule.py)

def schedule(tmp_path, *extra):
    argv = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "inventory/local", "playbooks/schedule.yml",
            "-e", f"schedule_unit_dir={tmp_path}", "-e", f"schedule_cron_dir={tmp_path}", "-e", "schedule_log=/l.log",
            "--skip-tags", "systemctl", *extra]
    return subprocess.run(argv, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)


def test_schedule_writes_a_systemd_timer_and_service_and_removes_them(tmp_path):
    res = schedule(tmp_path, "-e", "schedule_manager=systemd", "-e", "schedule_time=01:30", "-e", "schedule_matrix=ci")
    assert res.returncode == 0, res.stdout + res.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wanbench-nightly.service", "wanbench-nightly.timer"]
    timer = (tmp_path / "wanbench-nightly.timer").read_text()
    assert "OnCalendar=*-*-* 01:30:00\nPersistent=true\n" in timer and "WantedBy=timers.target" in timer
    service = (tmp_path / "wanbench-nightly.service").read_text().splitlines()
    assert f"WorkingDirectory={REPO}" in service and f"Environment=PYTHONPATH={REPO}" in service
    assert "StandardOutput=append:/l.log" in service and "Type=oneshot" in service
    exec_start, = [line for line in service if line.startswith("ExecStart=")]
    assert re.fullmatch(r"ExecStart=/usr/bin/flock -n /var/lock/wanbench-nightly.lock /\S+/python3? -m wanbench.cli"
                        f" nightly --checkout {REPO} --matrix ci --inventory inventory/production --quiet", exec_start)
    res = schedule(tmp_path, "-e", "schedule_manager=systemd", "-e", "state=absent")
    assert res.returncode == 0 and list(tmp_path.iterdir()) == [], res.stdout


def test_schedule_cron_entry_runs_the_scheduled_entry(tmp_path):
    res = schedule(tmp_path, "-e", "schedule_manager=cron")
    assert res.returncode == 0, res.stdout + res.stderr
    entry = (tmp_path / "wanbench-nightly").read_text().splitlines()[-1]
    command = entry.split(" root ", 1)[1]
    assert entry.startswith("0 2 * * * root cd ") and command.endswith(" >>/l.log 2>&1")
    # the entry's program really is the scheduled entry: its --help answers
    argv = command.split(" && ", 1)[1].split(" >>")[0].split()  # PYTHONPATH=.. flock -n LOCK PYTHON -m ...
    assert argv[1:4] == ["/usr/bin/flock", "-n", "/var/lock/wanbench-nightly.lock"]
    helped = subprocess.run([*argv[4:], "--help"], cwd=REPO, env=ENV, capture_output=True, text=True, timeout=60)
    assert helped.returncode == 0 and "--matrix NAME" in helped.stdout, helped.stderr
    assert schedule(tmp_path, "-e", "state=absent").returncode == 0 and list(tmp_path.iterdir()) == []
