"""StageProfile / AttnProfile of the perf branch: timers, memory, reduction over ranks, reports.

Semantics follow the branch's profilers: timers synchronise the device; a stage's memory is the
allocator state when it ends (max over its calls), delta against its start; the request peak is
the allocator peak since the profiler was created (reset right before the timed request); per-step
series are reduced element-wise (max and mean over ranks); p50/p90 index int((n-1)*q).
On CPU "memory" is the process RSS from /proc/self/status: reserved = peak RSS (VmHWM, reset via
/proc/self/clear_refs), alloc = current RSS (VmRSS).
"""
import ctypes
import logging
import time
from collections import defaultdict
from contextlib import contextmanager

import torch
import torch.distributed as dist

MB = 1024.0 * 1024.0
TOP_K = 5


def return_freed_host_memory():
    """Make glibc serve allocations of 64 KiB and more with mmap (and disable its adaptive threshold),
    so freed tensors go back to the OS at once and RSS follows live memory, as an allocator's
    counters do on a device; without it, freed FSDP all-gather buffers stay in the heap and RSS
    says nothing about sharding."""
    M_MMAP_THRESHOLD = -3
    ctypes.CDLL(None).mallopt(M_MMAP_THRESHOLD, 64 << 10)


class MemoryMeter:
    def __init__(self, device):
        self.device = device
        self.cuda = device.type == "cuda"

    def reset_peak(self):
        if self.cuda:
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")

    @staticmethod
    def _rss():
        values = {}
        with open("/proc/self/status") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    values[key] = float(rest.split()[0]) * 1024.0
        return values["VmRSS"], values["VmHWM"]

    def current(self):
        """(alloc, reserved) bytes now."""
        if self.cuda:
            return float(torch.cuda.memory_allocated(self.device)), float(torch.cuda.memory_reserved(self.device))
        rss, _ = self._rss()
        return rss, rss

    def peak(self):
        """(alloc, reserved) peak bytes since reset_peak (alloc: current RSS on CPU)."""
        if self.cuda:
            return (float(torch.cuda.max_memory_allocated(self.device)),
                    float(torch.cuda.max_memory_reserved(self.device)))
        return self._rss()


class Profiler:
    """Timers of one request; disabled (the default) it only runs the timed code."""

    def __init__(self, enabled=False, device=None, step_of=lambda: None, memory=False):
        self.enabled, self.device, self.step_of = enabled, device, step_of
        self.totals = defaultdict(float)
        self.calls = defaultdict(int)
        self.call_max = defaultdict(float)
        self.steps = defaultdict(lambda: defaultdict(float))  # stage -> step -> ms
        self.meter = MemoryMeter(device) if enabled and memory else None
        self.mem = {}  # stage -> [alloc, reserved, delta_alloc] bytes
        self.request_peak = [0.0, 0.0]
        if self.meter:
            self.meter.reset_peak()

    def _sync(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    @contextmanager
    def stage(self, name):
        if not self.enabled:
            yield
            return
        self._sync()
        start_alloc = self.meter.current()[0] if self.meter else 0.0
        start = time.perf_counter()
        yield
        self._sync()
        ms = (time.perf_counter() - start) * 1000.0
        self.totals[name] += ms
        self.calls[name] += 1
        self.call_max[name] = max(self.call_max[name], ms)
        step = self.step_of()
        if step is not None:
            self.steps[name][step] += ms
        if self.meter:
            alloc, reserved = self.meter.current()
            old = self.mem.get(name, [0.0, 0.0, 0.0])
            self.mem[name] = [max(old[0], alloc), max(old[1], reserved), max(old[2], alloc - start_alloc)]
            self.request_peak = [max(a, b) for a, b in zip(self.request_peak, self.meter.peak())]

    def payload(self):
        """This rank's raw figures (plain data, for all_gather_object)."""
        return None if not self.enabled else {
            "totals": dict(self.totals), "calls": dict(self.calls), "call_max": dict(self.call_max),
            "steps": {name: dict(series) for name, series in self.steps.items()},
            "mem": dict(self.mem), "request_peak": list(self.request_peak)}


def _max_avg(values):
    values = list(values)
    return max(values), sum(values) / len(values)


def _dense(step_map, length):
    return [step_map.get(i, 0.0) for i in range(length)]


def _step_summaries(per_rank_maps):
    """per_rank_maps: [{metric: {step: ms}}] -> [(metric, avg, p50, p90, min, max, avg_rank_avg, slowest)]"""
    out = []
    for metric in sorted(set().union(*per_rank_maps)):
        maps = [m.get(metric, {}) for m in per_rank_maps]
        length = 1 + max(max(m, default=-1) for m in maps)
        rows = [_dense(m, length) for m in maps]
        max_series = [max(col) for col in zip(*rows)]
        avg_series = [sum(col) / len(col) for col in zip(*rows)]
        ordered = sorted(max_series)
        pick = lambda q: ordered[int((len(ordered) - 1) * q)]  # noqa: E731
        slowest = sorted(enumerate(max_series), key=lambda x: x[1], reverse=True)[:TOP_K]
        out.append((metric, sum(max_series) / length, pick(0.5), pick(0.9), ordered[0], ordered[-1],
                    sum(avg_series) / length, slowest))
    return out


def _step_lines(summaries, log, rec, rec_prefix):
    for metric, avg, p50, p90, lo, hi, rank_avg, slowest in summaries:
        log.append(f"{metric}: avg={avg:.3f}, p50={p50:.3f}, p90={p90:.3f}, min={lo:.3f}, max={hi:.3f}, "
                   f"avg_rank_avg={rank_avg:.3f}")
        log.append(f"{metric} slowest {TOP_K}: " + ", ".join(f"step{i}:{v:.3f}" for i, v in slowest))
        rec.append(f"{rec_prefix}STEP,{metric},{avg:.3f},{p50:.3f},{p90:.3f},{lo:.3f},{hi:.3f},{rank_avg:.3f}")
        rec.append(f"{rec_prefix}SLOW,{metric}," + ";".join(f"step{i}:{v:.3f}" for i, v in slowest))


def _run_line(kind, tag, world_size, run_info=None):
    fields = "".join(f",{k}={str(v).replace(',', '_')}" for k, v in sorted((run_info or {}).items()))
    return f"{kind},{time.strftime('%Y-%m-%d %H:%M:%S')},{tag},world_size={world_size}{fields}"


def stage_report(payloads, run_info):
    """(log lines, profile-file records) of the StageProfile from every rank's payload."""
    log, rec = [], [_run_line("RUN", "T2V", len(payloads), run_info)]
    names = sorted(set().union(*(p["totals"] for p in payloads)))
    totals = {n: _max_avg(p["totals"].get(n, 0.0) for p in payloads) for n in names}
    log.append("==== Stage Totals (ms, max_rank / avg_rank) ====")
    for n in names:
        log.append(f"{n}: {totals[n][0]:.3f} / {totals[n][1]:.3f}")
        rec.append(f"TOTAL,{n},{totals[n][0]:.3f},{totals[n][1]:.3f}")
    log.append("==== Stage Memory (MB, max_rank / avg_rank) ====")
    for n in names:
        (am, aa), (rm, ra), (dm, da) = (_max_avg(p["mem"].get(n, (0.0,) * 3)[i] / MB for p in payloads)
                                        for i in range(3))
        log.append(f"{n}: alloc_peak={am:.1f}/{aa:.1f}, reserved_peak={rm:.1f}/{ra:.1f}, "
                   f"delta_alloc_peak={dm:.1f}/{da:.1f}")
        rec.append(f"MEM,{n},{am:.3f},{aa:.3f},{rm:.3f},{ra:.3f},{dm:.3f},{da:.3f}")
    (am, aa), (rm, ra) = (_max_avg(p["request_peak"][i] / MB for p in payloads) for i in range(2))
    log.append(f"request_peak_mem: alloc={am:.1f}/{aa:.1f}, reserved={rm:.1f}/{ra:.1f} MB")
    rec.append(f"MEM_REQUEST,{am:.3f},{aa:.3f},{rm:.3f},{ra:.3f}")

    steps = _step_summaries([p["steps"] for p in payloads])
    request_ms = totals.get("request_total", (0.0,))[0]
    denoise_ms = totals.get("denoise_loop_total", (0.0,))[0]
    perf = []
    if request_ms > 0 and denoise_ms > 0:
        perf.append(("denoise_share_pct", denoise_ms / request_ms * 100.0, "pct"))
    step_avg = next((s[1] for s in steps if s[0] == "denoise_step_total"), 0.0)
    if step_avg > 0:
        perf += [("denoise_step_avg_ms", step_avg, "ms"), ("denoise_steps_per_s", 1000.0 / step_avg, "step/s")]
    if request_ms > 0:
        seconds = request_ms / 1000.0
        frames = run_info["frame_num"]
        perf += [("frames_per_s", frames / seconds, "frame/s"),
                 ("megapixel_per_s", frames * run_info["width"] * run_info["height"] / 1e6 / seconds, "MP/s")]
    if perf:
        log.append("==== Derived Perf Metrics (max_rank) ====")
    for metric, value, unit in perf:
        log.append(f"{metric}: {value:.3f} {unit}")
        rec.append(f"PERF,{metric},{value:.6f},{unit}")
    if request_ms > 0:
        log.append("==== Stage Hotspots (max_rank) ====")
        hot = sorted(((n, totals[n][0]) for n in names if n != "request_total"), key=lambda x: x[1], reverse=True)
        for k, (n, ms) in enumerate(hot[:TOP_K], start=1):
            log.append(f"top{k}: {n} {ms:.3f} ms ({ms / request_ms * 100.0:.2f}%)")
            rec.append(f"HOT,{k},{n},{ms:.3f},{ms / request_ms * 100.0:.3f}")
    if steps:
        log.append("==== Per-Step Breakdown (max_rank) ====")
        _step_lines(steps, log, rec, "")
    rec.append("END")
    return log, rec


def _comm_keys(names):
    a2a = ("qkv_all_to_all",) if "qkv_all_to_all" in names else ("q_all_to_all", "k_all_to_all", "v_all_to_all")
    return a2a + ("kv_ring_k_all_gather", "kv_ring_v_all_gather", "out_all_to_all")


def attn_report(payloads):
    """(log lines, profile-file records) of the AttnProfile from every rank's payload."""
    log, rec = ["==== Attention Internal Breakdown (ms) ===="], [_run_line("ATTN_RUN", "T2V", len(payloads))]
    names = sorted(set().union(*(p["totals"] for p in payloads)))
    totals = {}
    for n in names:
        totals[n] = _max_avg(p["totals"].get(n, 0.0) for p in payloads)
        calls = sum(p["calls"].get(n, 0) for p in payloads)
        call_avg = sum(p["totals"].get(n, 0.0) for p in payloads) / max(calls, 1)
        call_max = max(p["call_max"].get(n, 0.0) for p in payloads)
        log.append(f"{n}: total={totals[n][0]:.3f}/{totals[n][1]:.3f}, call_avg={call_avg:.3f}, "
                   f"call_max={call_max:.3f}, calls={calls}")
        rec.append(f"ATTN,{n},{totals[n][0]:.3f},{totals[n][1]:.3f},{call_avg:.3f},{call_max:.3f},{calls}")

    def summed(keys):
        return [sum(totals[k][i] for k in keys if k in totals) for i in (0, 1)]

    whole = totals.get("attn_forward_total", (0.0, 0.0))
    if whole[0] > 0 and whole[1] > 0:
        kernel, comm, pack = summed(["attn_kernel"]), summed(_comm_keys(names)), summed(["qkv_concat", "qkv_split"])
        ratios = [("kernel_share", kernel), ("comm_share", comm)]
        if pack[0] > 0 or pack[1] > 0:
            ratios.append(("pack_overhead_share", pack))
        ratios.append(("uncovered_share", [max(whole[i] - kernel[i] - comm[i], 0.0) for i in (0, 1)]))
        log.append("==== Attention Ratios ====")
        for key, (mx, av) in ratios:
            log.append(f"{key}: max_ratio={mx / whole[0]:.2%}, avg_ratio={av / whole[1]:.2%}")
            rec.append(f"ATTN_RATIO,{key},{mx / whole[0]:.6f},{av / whole[1]:.6f}")

    per_rank = []
    for p in payloads:
        maps = dict(p["steps"])
        comm = defaultdict(float)
        for key in _comm_keys(maps):
            for step, ms in maps.get(key, {}).items():
                comm[step] += ms
        if comm:
            maps["comm_total"] = dict(comm)
        per_rank.append(maps)
    steps = _step_summaries(per_rank)
    if steps:
        log.append("==== Attention Per-Step Breakdown (ms, max_rank) ====")
        _step_lines(steps, log, rec, "ATTN_")
    rec.append("ATTN_END")
    return log, rec


def report(stage_prof, attn_prof, run_info, stage_file, attn_file):
    """Reduce both profilers over all ranks (collective); rank 0 logs and appends the records."""
    gathered = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, (stage_prof.payload(), attn_prof.payload()))
    if dist.get_rank() != 0:
        return
    stage_payloads, attn_payloads = zip(*gathered)
    sections = (("StageProfile", stage_payloads, lambda p: stage_report(p, run_info), stage_file),
                ("AttnProfile", attn_payloads, attn_report, attn_file))
    for title, payloads, build, path in sections:
        if payloads[0] is None or not any(p["totals"] for p in payloads):  # disabled, or nothing timed
            continue
        log, rec = build(payloads)
        for line in log:
            logging.info(f"[T2V {title}] {line}")
        if path:
            with open(path, "a", encoding="utf-8") as f:
                f.write("".join(line + "\n" for line in rec))
