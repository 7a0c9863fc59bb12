"""Per-process runtime: parallel groups, the collectives of sequence and CFG parallelism, and
where sampling is (step, CFG branch) for the per-step profilers and caches."""
import math
from collections import Counter

import torch
import torch.distributed as dist
import torch.nn.functional as F

from .profiler import Profiler


class Runtime:
    """Rank layout: rank = ((cfg * tp + tp_idx) * ring + ring_idx) * ulysses + ulysses_idx.

    The sequence is split over ring*ulysses ranks (the "sp" group); Ulysses exchanges heads for
    sequence with all-to-all, ring ranks all-gather K and V, CFG ranks run one branch each.
    tp ranks hold replicas (the reference has no tensor parallelism).
    """

    def __init__(self, args, switches, device):
        self.args, self.switches, self.device = args, switches, device
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()
        self.cuda = device.type == "cuda"
        grid = torch.arange(self.world_size).reshape(args.cfg_size, args.tp_size, args.ring_size, args.ulysses_size)
        self.cfg_group, self.cfg_rank, self.cfg_size = self._group(grid, [0])
        self.ring_group, self.ring_rank, self.ring_size = self._group(grid, [2])
        self.ulysses_group, self.ulysses_rank, self.ulysses_size = self._group(grid, [3])
        self.sp_group, self.sp_rank, self.sp_size = self._group(grid, [2, 3])
        self.counters = Counter()  # mechanism evidence for tests: collectives, fences, cache hits
        self.a2a_stream = torch.cuda.Stream(device) if self.cuda and switches.a2a_event_gate else None
        self.last_out_a2a = None  # CUDA event after the latest out_all_to_all (WAN_FSDP_ALLGATHER_WAIT_A2A)
        self.begin_request(Profiler(), Profiler())

    def _group(self, grid, dims):
        """(group, index in it, size) of this rank's group along `dims`; no group when size is 1."""
        size = math.prod(grid.shape[d] for d in dims)
        if size == 1:
            return None, 0, 1
        keep = [d for d in range(grid.dim()) if d not in dims]
        mine = None
        for ranks in grid.permute(*keep, *dims).reshape(-1, size).tolist():
            group = dist.new_group(ranks)
            if self.rank in ranks:
                mine = group, ranks.index(self.rank), size
        return mine

    def begin_request(self, stage_prof, attn_prof):
        self.stage_prof, self.attn_prof = stage_prof, attn_prof
        self.step, self.branch = None, None
        self.attn_cache, self.cross_kv = {}, {}

    def sync(self):
        if self.cuda:
            torch.cuda.synchronize(self.device)

    # ---- collectives -------------------------------------------------------------------------
    def all_gather_list(self, x, group, size):
        parts = [torch.empty_like(x) for _ in range(size)]
        dist.all_gather(parts, x.contiguous(), group=group)
        self.counters["all_gather"] += 1
        return parts

    def all_gather(self, x, group, size, dim):
        return x if size == 1 else torch.cat(self.all_gather_list(x, group, size), dim)

    def _fence(self):
        """WAN_A2A_FENCE: device synchronisation; on CPU, where work is synchronous, a barrier."""
        self.counters["a2a_fence"] += 1
        if self.cuda:
            torch.cuda.synchronize(self.device)
        else:
            dist.barrier(group=self.ulysses_group)

    def _all_to_all(self, send, name):
        fence = self.switches.a2a_fence
        if fence == 2 or (fence == 1 and name in ("qkv_all_to_all", "q_all_to_all")):
            self._fence()
        self.counters["all_to_all"] += 1
        recv = torch.empty_like(send)
        with self.attn_prof.stage(name):
            if self.a2a_stream is None:
                dist.all_to_all_single(recv, send, group=self.ulysses_group)
            else:  # WAN_A2A_EVENT_GATE: own stream, ordered by events both ways
                current = torch.cuda.current_stream(self.device)
                ready = torch.cuda.Event()
                ready.record(current)
                self.a2a_stream.wait_event(ready)
                with torch.cuda.stream(self.a2a_stream):
                    dist.all_to_all_single(recv, send, group=self.ulysses_group)
                    done = torch.cuda.Event()
                    done.record(self.a2a_stream)
                current.wait_event(done)
                send.record_stream(self.a2a_stream)
        if name == "out_all_to_all" and self.cuda and self.switches.allgather_wait_a2a:
            self.last_out_a2a = torch.cuda.Event()
            self.last_out_a2a.record()
        return recv

    def _ulysses(self, x, scatter_dim, gather_dim, name):
        """all-to-all over the Ulysses group: split `scatter_dim`, concatenate received parts on `gather_dim`."""
        send = x.unflatten(scatter_dim, (self.ulysses_size, -1)).movedim(scatter_dim, 0).contiguous()
        return self._all_to_all(send, name).movedim(0, gather_dim).flatten(gather_dim, gather_dim + 1)

    def gate_fsdp_allgather(self, streams):
        """CUDA pre-forward of an FSDP unit: order its all-gather streams (see sharding.shard)."""
        self.counters["allgather_gate"] += 1
        for stream in streams:
            if self.args.serialize_comm:
                stream.wait_stream(torch.cuda.current_stream(self.device))
            if self.switches.allgather_wait_a2a and self.last_out_a2a is not None:
                stream.wait_event(self.last_out_a2a)

    # ---- attention ---------------------------------------------------------------------------
    def attention(self, q, k, v, key_mask):
        """Self-attention of local sequence chunks q, k, v [B, s, H, D] -> [B, s, H, D] (xDiT's USP)."""
        prof, args = self.attn_prof, self.args
        with prof.stage("attn_forward_total"):
            if self.ulysses_size > 1 and self.switches.packed_qkv_a2a:
                with prof.stage("qkv_concat"):
                    qkv = torch.cat([q, k, v], dim=-1)
                qkv = self._ulysses(qkv, 2, 1, "qkv_all_to_all")
                with prof.stage("qkv_split"):
                    q, k, v = qkv.split(q.shape[-1], dim=-1)
            elif self.ulysses_size > 1:
                q, k, v = (self._ulysses(t, 2, 1, f"{n}_all_to_all") for n, t in zip("qkv", (q, k, v)))
            if self.ring_size > 1:
                k, v = (self._ring_gather(t, f"kv_ring_{n}_all_gather") for n, t in zip("kv", (k, v)))
            if args.use_rainfusion and self.step is not None and self.step >= args.sparse_start_step:
                stride = max(1, round(1 / (1 - args.sparsity)))  # strided sparse keys
                k, v = k[:, ::stride], v[:, ::stride]
                key_mask = None if key_mask is None else key_mask[..., ::stride]
            with prof.stage("attn_kernel"):
                out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                                     attn_mask=key_mask).transpose(1, 2)
            if self.ulysses_size > 1:
                out = self._ulysses(out, 1, 2, "out_all_to_all")
        return out

    def _ring_gather(self, x, name):
        with self.attn_prof.stage(name):
            return self.all_gather(x, self.ring_group, self.ring_size, dim=1)

    def cached_self_attention(self, block_idx, compute):
        """--use_attentioncache: inside [start_step, end_step), only every attentioncache_interval-th
        step computes self-attention; the others reuse the block's output of the same CFG branch."""
        args = self.args
        key = (self.branch, block_idx)
        if (args.use_attentioncache and self.step is not None and key in self.attn_cache
                and args.start_step <= self.step < args.end_step
                and (self.step - args.start_step) % args.attentioncache_interval):
            self.counters["attn_cache_hit"] += 1
            return self.attn_cache[key]
        out = compute()
        if args.use_attentioncache:
            self.attn_cache[key] = out
        return out

    def cross_kv_for(self, block_idx, compute):
        """--cache_cross_kv: the text K/V projections are computed once per request and CFG branch."""
        key = (self.branch, block_idx)
        if self.args.cache_cross_kv and key in self.cross_kv:
            return self.cross_kv[key]
        self.counters["cross_kv"] += 1
        kv = compute()
        if self.args.cache_cross_kv:
            self.cross_kv[key] = kv
        return kv
