"""Parse speed and peak memory of ``wanbench.parse.parse_file`` on generated run logs.

Not a pass/fail test.  For each size it writes a log built from the sample
baseline log (torchrun warnings, prompt echo, then repeated generations:
long tqdm bars written with \\r, NPU runtime warning noise, a full
StageProfile + AttnProfile report) and parses it in a fresh child process,
so that the peak RSS (VmHWM) reported is that parse's alone.  Throughput is
given by wall-clock time and by the parse's CPU time (the better figure on a
machine shared with other work).

    .venv/bin/python benchmarks/bench_parse.py [--sizes 50 200] [--repeat 3]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SAMPLES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "samples"
MB = 1 << 20

CHILD = """
import json, sys, time
from wanbench.parse import parse_file
started, cpu = time.perf_counter(), time.process_time()
result = parse_file(sys.argv[1]) if len(sys.argv) > 1 else None
seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({"seconds": seconds, "cpu": cpu, "peak_rss_kib": hwm,
                  "status": result and result["status"], "request_total": result and result["metrics"]["request_total"]}))
"""


def generate(path, size_mb, samples):
    log = (samples / "run_sample_baseline.log").read_text()
    start, report = log.index("] INFO: Generating video ..."), log.index("] INFO: [T2V StageProfile]")
    head = log[:log.rindex("\n", 0, start) + 1]
    tail = log[log.index("[", log.index("Generating video used time")):]
    report = log[log.rindex("\n", 0, report) + 1:log.index("[", log.index("Generating video used time"))]
    tqdm = "".join(f"{i * 5:3d}%|{'#' * (i // 2):10s}| {i}/20 [00:{i:02d}<01:00,  5.01s/it]\r"
                   for i in range(21)) + "\n"
    noise = "".join(f"[W compiler_depend.ts:{i}] Warning: NPU runtime warning number {i}, nothing to see here\n"
                    f"W0211 14:04:{i % 60:02d}.000000 2451 torch/distributed/run.py:793] torchrun notice {i}\n"
                    for i in range(15))
    unit = ("[2026-02-11 14:04:28,593] INFO: Generating video ...\n" + tqdm + noise + report
            + "[2026-02-11 14:04:29,785] INFO: Generating video used time  101.3012s\n").encode()
    with open(path, "wb") as f:
        f.write(head.encode())
        for _ in range(size_mb * MB // len(unit)):
            f.write(unit)
        f.write(tail.encode())
    return os.path.getsize(path)


def child(*args):
    done = subprocess.run([sys.executable, "-c", CHILD, *map(str, args)], capture_output=True, text=True,
                          check=True)
    return json.loads(done.stdout)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[50, 200], metavar="MB")
    parser.add_argument("--repeat", type=int, default=3, help="parses per size; the fastest is shown")
    parser.add_argument("--samples", type=Path, default=SAMPLES)
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPU(s)")
    print(f"interpreter + wanbench.parse imported: peak RSS {child()['peak_rss_kib'] / 1024:.1f} MiB")
    print(f"{'log size':>10} {'wall s':>7} {'MB/s':>6} {'cpu s':>6} {'MB/s':>6} {'peak RSS':>10}  result")
    with tempfile.TemporaryDirectory() as tmp:
        for size_mb in args.sizes:
            path = Path(tmp) / f"run_{size_mb}mb.log"
            size = generate(path, size_mb, args.samples)
            runs = [child(path) for _ in range(args.repeat)]
            wall = min(r["seconds"] for r in runs)
            cpu = min(r["cpu"] for r in runs)
            peak = max(r["peak_rss_kib"] for r in runs)
            print(f"{size / MB:7.1f} MiB {wall:7.2f} {size / 1e6 / wall:6.1f} {cpu:6.2f} {size / 1e6 / cpu:6.1f}"
                  f" {peak / 1024:6.1f} MiB  {runs[0]['status']}, request_total {runs[0]['request_total']}")
            path.unlink()


if __name__ == "__main__":
    start = time.perf_counter()
    main()
    print(f"total {time.perf_counter() - start:.1f} s")
