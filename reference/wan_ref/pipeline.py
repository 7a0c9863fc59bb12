"""WanT2V: text encoding, flow-matching sampling with classifier-free guidance, VAE decode."""
import sys
import time

import torch
import torch.nn.functional as F
from torch.distributed.device_mesh import init_device_mesh

from .configs import SAMPLE_NEG_PROMPT, latent_shape
from .modules import T5Encoder, VAEDecoder, WanModel, tokenize
from .sharding import fsdp_units, materialize, shard

try:
    from tqdm import tqdm
except ImportError:  # the GPU hosts may lack it
    tqdm = None

WEIGHT_SEED = 2025  # weights play the checkpoint: fixed, independent of --base_seed
PERTURB_SEED = 7    # WAN_REF_PERTURB's noise: fixed, so a perturbed run is reproducible too


def model_dtype(device):
    return torch.bfloat16 if device.type == "cuda" else torch.float32


def parse_size(size):
    width, height = (int(v) for v in size.split("*"))
    return width, height


def progress(n):
    if tqdm is not None:
        return tqdm(range(n), ascii=True, file=sys.stderr)
    return _bar(n)


def _bar(n):
    """tqdm-like '\\r' progress on stderr."""
    start = time.time()
    clock = lambda s: f"{int(s) // 60:02d}:{int(s) % 60:02d}"  # noqa: E731
    for i in range(n + 1):
        elapsed = time.time() - start
        rate = elapsed / i if i else 0.0
        sys.stderr.write(f"\r{100 * i // n:3d}%|{'#' * (10 * i // n):<10}| {i}/{n} "
                         f"[{clock(elapsed)}<{clock(rate * (n - i))}, {rate:5.2f}s/it]")
        sys.stderr.flush()
        if i < n:
            yield i
    sys.stderr.write("\n")


def flow_sigmas(steps, shift, device):
    """Shifted flow-matching noise levels, 1 -> 0, steps + 1 of them."""
    s = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64)
    return (shift * s / (1 + (shift - 1) * s)).to(device=device, dtype=torch.float32)


class WanT2V:
    def __init__(self, cfg, args, rt):
        self.cfg, self.args, self.rt = cfg, args, rt
        sw = rt.switches
        mesh = init_device_mesh(rt.device.type, (rt.world_size,)) if args.dit_fsdp or args.t5_fsdp else None
        gate = rt.gate_fsdp_allgather if rt.cuda and (args.serialize_comm or sw.allgather_wait_a2a) else None

        def build(make, device, fsdp_kind, dtype):
            with torch.device("meta"):
                module = make().to(dtype).requires_grad_(False)
            if fsdp_kind:
                units = fsdp_units(fsdp_kind, len(module.blocks), sw.wrap_mode, sw.block_group_size)
                shard(module, units, mesh, sw.fsdp_reshard, gate)
            materialize(module, device, WEIGHT_SEED)
            return module.eval()

        # --t5_cpu keeps an unsharded T5 on the host (with --t5_fsdp, FSDP places it on the device, as in Wan)
        self.t5_device = torch.device("cpu") if args.t5_cpu and not args.t5_fsdp else rt.device
        self.text_encoder = build(lambda: T5Encoder(cfg), self.t5_device, "t5" if args.t5_fsdp else None,
                                  model_dtype(self.t5_device))
        self.model = build(lambda: WanModel(cfg, rt), rt.device, "dit" if args.dit_fsdp else None,
                           model_dtype(rt.device))
        self.vae = build(lambda: VAEDecoder(cfg), rt.device, None, torch.float32)

    def encode(self, text):
        ids, mask = tokenize(text, self.cfg.text_len, self.t5_device)
        return self.text_encoder(ids, mask).to(self.rt.device)

    @torch.no_grad()
    def generate(self, prompt, sampling_steps, seed, stage_prof, attn_prof, show_progress):
        """One request; returns the decoded video [3, F, H, W] fp32 (None on ranks that do not decode)."""
        args, cfg, rt = self.args, self.cfg, self.rt
        rt.begin_request(stage_prof, attn_prof)
        stage = stage_prof.stage
        width, height = parse_size(args.size)
        with stage("request_total"):
            with stage("text_encode_pos"):
                context = self.encode(prompt)
            with stage("text_encode_neg"):
                context_null = self.encode(SAMPLE_NEG_PROMPT)
            with stage("noise_init"):
                generator = torch.Generator(device=rt.device).manual_seed(seed)
                latents = torch.randn(latent_shape(cfg, width, height, args.frame_num), generator=generator,
                                      device=rt.device)
            with stage("scheduler_setup"):
                sigmas = flow_sigmas(sampling_steps, args.sample_shift, rt.device)
            with stage("denoise_loop_total"):
                for i in (progress(sampling_steps) if show_progress else range(sampling_steps)):
                    rt.step = i
                    with stage("denoise_step_total"):
                        t = sigmas[i:i + 1] * cfg.num_train_timesteps
                        with stage("dit_forward"):
                            preds = self._dit_forward(latents, t, context, context_null)
                        with stage("cfg_allgather"):
                            if rt.cfg_size > 1:
                                preds = rt.all_gather(preds, rt.cfg_group, rt.cfg_size, dim=0)
                            cond, uncond = preds
                        noise_pred = uncond + args.sample_guide_scale * (cond - uncond)
                        with stage("scheduler_step"):
                            latents = latents + (sigmas[i + 1] - sigmas[i]) * noise_pred
                            if rt.switches.step_delay_ms:  # WAN_REF_STEP_DELAY_MS: a slowdown on purpose
                                time.sleep(rt.switches.step_delay_ms / 1000)
                    rt.step = None
            if rt.switches.perturb:  # every rank holds the whole latent and adds the same noise
                generator = torch.Generator(device=rt.device).manual_seed(PERTURB_SEED)
                latents = latents + rt.switches.perturb * torch.randn(latents.shape, generator=generator,
                                                                      device=rt.device, dtype=latents.dtype)
            with stage("vae_decode"):
                video = self._decode(latents)
        return video

    def _dit_forward(self, x, t, context, context_null):
        """Noise predictions [branches, C, F, H, W]: cond and uncond, or this CFG rank's branch."""
        rt = self.rt
        if rt.cfg_size > 1:
            rt.branch = ("cond", "uncond")[rt.cfg_rank]
            return self.model(x[None], t, (context, context_null)[rt.cfg_rank])
        if self.args.cfg_fused_forward:
            rt.branch = "fused"
            return self.model(x[None].expand(2, *x.shape), t.expand(2), torch.cat([context, context_null]))
        rt.branch = "cond"
        cond = self.model(x[None], t, context)
        rt.branch = "uncond"
        return torch.cat([cond, self.model(x[None], t, context_null)])

    def _decode(self, latents):
        """Rank 0 decodes; with --vae_parallel every rank decodes a slice of latent frames (plus a halo
        so the convolutions see their true neighbours) and the slices are all-gathered."""
        rt = self.rt
        if not self.args.vae_parallel:
            return VAEDecoder.expand_time(self.vae(latents)) if rt.rank == 0 else None
        frames, n = latents.shape[1], rt.world_size
        bounds = [(frames * r // n, frames * (r + 1) // n) for r in range(n)]
        lo, hi = bounds[rt.rank]
        first = max(lo - VAEDecoder.HALO, 0)
        part = self.vae(latents[:, first:min(hi + VAEDecoder.HALO, frames)])[:, lo - first:hi - first]
        longest = max(b - a for a, b in bounds)
        parts = rt.all_gather_list(F.pad(part, (0, 0, 0, 0, 0, longest - part.shape[1])), None, n)
        return VAEDecoder.expand_time(torch.cat([p[:, :b - a] for p, (a, b) in zip(parts, bounds)], dim=1))
