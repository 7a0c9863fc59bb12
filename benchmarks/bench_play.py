"""The play's own cost on the SSH + Docker test host, with a zero-work fake workload.

Not a pass/fail test: it prints figures (and, with --json, writes them). The workload is
tests/testhost/fake_torchrun copied into the container, so what is measured is the suite's
own time: bench.yml over SSH into the container, around runs that do nothing.

    .venv/bin/python benchmarks/bench_play.py [--matrix 6] [--loops 3] [--repeat 1] [--json FILE]

Figures:
  one-run play          wall time of `bench.yml -e variant=ffn_only -e baseline=skip`
  per-run overhead      what each further run adds: (matrix wall - its workload time - one-run
                        play overhead) / (matrix size - 1), the workload's REAL_TIME taken out
  fixed cost            one-run play overhead minus the per-run overhead (validate, preflight,
                        sync, plan, report, lock release); cross-check: a play with
                        --tags preflight,repo_sync (no run, no report)
  matrix overhead/run   the issue's form: (matrix wall - workload sum - fixed cost) / matrix size
  shell loop            the same steps by hand, per run: one ssh running docker exec (mkdir,
                        the fake workload under /usr/bin/time, tar), the archive back over the
                        same ssh, unpacked; and the per-run overhead's ratio to it
  noticing latency      how late the wait noticed a run's exit_code (the module's
                        noticed_after) while it was already polling: runs whose fake workload
                        sleeps --notice-sleep s (zero-work runs end before the wait starts)
With --repeat N the one-run play and the matrix run N times: the figures are medians, with their
range; the load average before and after is printed (the figures are only comparable at like load).
Targets (issue 8): per-run overhead <= 5 s and <= 5x the shell loop, fixed cost <= 10 s,
noticing <= 2 s.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STATE = REPO / "build" / "testhost"
CONTAINER = "mindie-wan2.1-xysheng"
FAKE_DIR = "/opt/wanbench-fake"
RUN_ROOT = "/root/wanbench/runs"  # wanbench_run_root of inventory/testhost
MATRIX = ["baseline", "gate0", "gate1", "fence1", "nofsdp", "ffn_only", "reshard0", "group2", "agwait1"]


def say(msg):
    print(f"[bench_play] {msg}", flush=True)


def sh(*argv, **kw):
    return subprocess.run(list(argv), cwd=REPO, capture_output=True, text=True, check=True, **kw)


def ssh_argv():
    port = os.environ.get("WANBENCH_TESTHOST_PORT", "2222")
    return ["ssh", "-q", "-p", port, "-i", str(STATE / "id_ed25519"), "-o", "BatchMode=yes",
            "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "wanbench-testhost@127.0.0.1"]


def play(extravars, tags=None):
    """Run bench.yml on the test host with ansible-runner; returns (wall s, events)."""
    import ansible_runner

    with tempfile.TemporaryDirectory(prefix="bench-play-") as pdd:
        cmdline = f"--tags {tags}" if tags else None
        started = time.monotonic()
        runner = ansible_runner.run(
            private_data_dir=pdd, project_dir=str(REPO), playbook=str(REPO / "bench.yml"),
            inventory=str(REPO / "inventory" / "testhost"), extravars=extravars, cmdline=cmdline,
            envvars={"ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "PATH": os.environ["PATH"]}, quiet=True)
        wall = time.monotonic() - started
        events = list(runner.events)
        if runner.rc != 0:
            raise SystemExit(f"bench.yml failed (rc {runner.rc}):\n{runner.stdout.read()[-4000:]}")
    return wall, events


def waits(events):
    return [e["event_data"]["res"] for e in events if e.get("event") == "runner_on_ok"
            and e["event_data"].get("task") == "Wait for the run" and "done" in e["event_data"].get("res", {})]


def workload_seconds(results_dir):
    times = []
    for path in sorted(Path(results_dir).glob("testhost/*/time.txt")):
        text = path.read_text()
        times.append(float(text.split("REAL_TIME_SECONDS=")[1].split()[0]) if "REAL_TIME_SECONDS=" in text else 0.0)
    return times


def bench_once(variants, results_dir, fake):
    # one run of each variant, no warm-up: the figures are per run of the suite itself
    wall, events = play({"variant": ",".join(variants), "baseline": "skip", "repeats": "1", "wanbench_warmup_runs": "0",
                         "wanbench_torchrun": fake, "wanbench_results_dir": results_dir})
    work = workload_seconds(results_dir)
    if len(work) != len(variants):
        raise SystemExit(f"expected {len(variants)} collected runs, found {len(work)} in {results_dir}")
    return wall, work, [w.get("noticed_after") for w in waits(events)]


def shell_loop(fake, out_dir):
    """One run by hand: one ssh running docker exec for the whole run, the archive back, unpacked."""
    run_dir = f"/root/wanbench/handloop/run-{os.getpid()}-{time.monotonic_ns()}"
    script = (f"docker exec {CONTAINER} sh -c 'mkdir -p {run_dir} && cd {run_dir} && "
              f"/usr/bin/time -f REAL_TIME_SECONDS=%e -o time.txt {fake} </dev/null >run.log 2>&1; "
              f"echo $? > exit_code; tar -C {os.path.dirname(run_dir)} -cz {os.path.basename(run_dir)}; "
              f"rm -rf {run_dir}'")
    started = time.monotonic()
    with open(out_dir / "run.tar.gz", "wb") as archive:
        subprocess.run([*ssh_argv(), script], stdout=archive, check=True)
    subprocess.run(["tar", "-C", str(out_dir), "-xzf", str(out_dir / "run.tar.gz")], check=True)
    wall = time.monotonic() - started
    work = float((next(out_dir.glob("run-*/time.txt"))).read_text().split("=")[1])
    for p in out_dir.glob("run-*"):
        subprocess.run(["rm", "-rf", str(p)], check=True)
    return wall, work


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--matrix", type=int, default=6, help="runs in the matrix play (default 6)")
    ap.add_argument("--loops", type=int, default=3, help="hand-loop repetitions (default 3)")
    ap.add_argument("--repeat", type=int, default=1,
                    help="one-run play + matrix pairs; medians reported with their range (default 1)")
    ap.add_argument("--notice-runs", type=int, default=3, help="runs of the noticing play (default 3)")
    ap.add_argument("--notice-sleep", type=float, default=7, help="their workload's sleep in s (default 7)")
    ap.add_argument("--json", help="also write the figures to this file")
    ap.add_argument("--no-up", action="store_true", help="do not run tests/testhost/up.sh first")
    args = ap.parse_args()
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"

    if not args.no_up:
        say("bringing the test host up (tests/testhost/up.sh)")
        sh("bash", "tests/testhost/up.sh", timeout=1800)
    runs_before = set(sh("docker", "exec", CONTAINER, "sh", "-c", f"ls {RUN_ROOT} 2>/dev/null || true").stdout.split())
    sh("docker", "exec", CONTAINER, "mkdir", "-p", FAKE_DIR)
    sh("docker", "cp", str(REPO / "tests" / "testhost" / "fake_torchrun"), f"{CONTAINER}:{FAKE_DIR}/torchrun")
    fake = f"{FAKE_DIR}/torchrun"

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-play-results-") as tmp:
        tmp = Path(tmp)
        say("cross-check: a play without runs (--tags preflight,repo_sync)")
        no_runs, _ = play({"variant": "ffn_only", "baseline": "skip", "wanbench_torchrun": fake,
                           "wanbench_results_dir": str(tmp / "none")}, tags="preflight,repo_sync")
        rounds = []  # (one-run wall, its workload, matrix wall, its workload) per repetition
        for r in range(args.repeat):
            say(f"one-run play (ffn_only), then a {args.matrix}-run matrix ({r + 1}/{args.repeat})")
            wall1, work1, _ = bench_once(["ffn_only"], str(tmp / f"one-{r}"), fake)
            wall_m, work_m, _ = bench_once(MATRIX[:args.matrix], str(tmp / f"matrix-{r}"), fake)
            rounds.append((wall1, sum(work1), wall_m, sum(work_m)))
        say(f"noticing: {args.notice_runs} runs of {args.notice_sleep:g} s")
        sh("docker", "exec", CONTAINER, "sh", "-c", f'echo {args.notice_sleep:g} > {FAKE_DIR}/sleep-seconds')
        try:
            _, _, noticed = bench_once(MATRIX[:args.notice_runs], str(tmp / "notice"), fake)
        finally:
            sh("docker", "exec", CONTAINER, "rm", "-f", f"{FAKE_DIR}/sleep-seconds")
        say(f"hand loop x{args.loops}")
        (tmp / "hand").mkdir()
        loops = [shell_loop(fake, tmp / "hand") for _ in range(args.loops)]
    # the benchmark's runs leave the test host's run root as they found it
    left = set(sh("docker", "exec", CONTAINER, "sh", "-c", f"ls {RUN_ROOT}").stdout.split()) - runs_before
    if left:
        sh("docker", "exec", CONTAINER, "rm", "-rf", "--", *(f"{RUN_ROOT}/{r}" for r in sorted(left)))

    # each repetition's figures; the median is reported, the range beside it (a loaded machine is noisy)
    per_runs = [(wm - km - (w1 - k1)) / (args.matrix - 1) for w1, k1, wm, km in rounds]
    fixeds = [(w1 - k1) - pr for (w1, k1, _, _), pr in zip(rounds, per_runs)]
    wall1, work1, wall_m, work_m = (statistics.median(x) for x in zip(*rounds))
    per_run, fixed = statistics.median(per_runs), statistics.median(fixeds)
    matrix_per_run = (wall_m - work_m - fixed) / args.matrix
    hand = statistics.median(w - k for w, k in loops)
    noticed = [n for n in noticed if n is not None]
    figures = {
        "machine": f"{os.uname().nodename}, {os.cpu_count()} CPUs, {os.uname().sysname} {os.uname().release}",
        "load_before": [round(x, 2) for x in load_before], "load_after": [round(x, 2) for x in os.getloadavg()],
        "repeats": args.repeat, "per_run_overhead_range_s": [round(min(per_runs), 2), round(max(per_runs), 2)],
        "fixed_cost_range_s": [round(min(fixeds), 2), round(max(fixeds), 2)],
        "one_run_play_wall_s": round(wall1, 2), "one_run_workload_s": round(work1, 2),
        "matrix_runs": args.matrix, "matrix_wall_s": round(wall_m, 2), "matrix_workload_s": round(work_m, 2),
        "per_run_overhead_s": round(per_run, 2), "fixed_cost_s": round(fixed, 2),
        "fixed_cost_crosscheck_no_run_play_s": round(no_runs, 2),
        "matrix_overhead_per_run_s": round(matrix_per_run, 2),
        "hand_loop_per_run_s": round(hand, 2), "ratio_to_hand_loop": round(per_run / hand, 1) if hand > 0 else None,
        "noticing_latency_max_s": max(noticed) if noticed else None,
        "noticing_latency_median_s": statistics.median(noticed) if noticed else None,
    }
    targets = [("per-run overhead <= 5 s", per_run <= 5), ("per-run overhead <= 5x hand loop", per_run <= 5 * hand),
               ("fixed cost <= 10 s", fixed <= 10), ("matrix overhead per run <= 5 s", matrix_per_run <= 5),
               ("noticing <= 2 s", bool(noticed) and max(noticed) <= 2)]

    def spread(xs):
        return f", {min(xs):.1f}..{max(xs):.1f} over {len(xs)}" if len(xs) > 1 else ""

    print(f"\nbench.yml on the SSH + Docker test host, zero-work fake workload ({figures['machine']})")
    print(f"  one-run play            {wall1:6.1f} s wall ({work1:.2f} s workload)")
    print(f"  {args.matrix}-run matrix            {wall_m:6.1f} s wall ({work_m:.2f} s workload)")
    print(f"  load average (1/5/15 min) {' '.join(f'{x:.1f}' for x in load_before)} before, "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())} after")
    print(f"  per-run overhead        {per_run:6.1f} s   (target <= 5 s{spread(per_runs)})")
    print(f"  fixed cost of a play    {fixed:6.1f} s   (target <= 10 s; a play without runs: {no_runs:.1f} s{spread(fixeds)})")
    print(f"  matrix overhead / run   {matrix_per_run:6.1f} s   (target <= 5 s)")
    print(f"  hand loop per run       {hand:6.2f} s   (ratio {figures['ratio_to_hand_loop']}x, target <= 5x)")
    print(f"  noticing latency        max {figures['noticing_latency_max_s']} s, median "
          f"{figures['noticing_latency_median_s']} s (target <= 2 s)")
    for name, ok in targets:
        print(f"  {'met   ' if ok else 'MISSED'}  {name}")
    if args.json:
        Path(args.json).write_text(json.dumps({**figures, "targets": dict(targets)}, indent=2) + "\n")


if __name__ == "__main__":
    main()
