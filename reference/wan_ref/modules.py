"""Wan2.1-shaped networks: umT5-like text encoder, DiT with Ulysses/ring self-attention, VAE decoder.

Modules are built on the meta device and materialised by sharding.materialize; none holds buffers.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class RMSNorm(nn.Module):
    def __init__(self, dim, eps=1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.empty(dim))

    def forward(self, x):
        return (x.float() * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + self.eps)).type_as(x) * self.weight


def _sdpa(q, k, v, mask):
    """[B, S, H, D] layout in and out."""
    return F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                          attn_mask=mask).transpose(1, 2)


# ---- text encoder --------------------------------------------------------------------------------
def tokenize(text, text_len, device):
    """UTF-8 bytes as token ids (0 = padding), truncated and padded to text_len."""
    ids = [b + 1 for b in text.encode("utf-8")][:text_len]
    mask = [True] * len(ids) + [False] * (text_len - len(ids))
    return (torch.tensor([ids + [0] * (text_len - len(ids))], device=device),
            torch.tensor([mask], device=device))


class T5Block(nn.Module):
    def __init__(self, dim, ffn_dim, heads):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = RMSNorm(dim), RMSNorm(dim)
        self.q, self.k, self.v, self.o = (nn.Linear(dim, dim, bias=False) for _ in range(4))
        self.wi_0, self.wi_1 = nn.Linear(dim, ffn_dim, bias=False), nn.Linear(dim, ffn_dim, bias=False)
        self.wo = nn.Linear(ffn_dim, dim, bias=False)

    def forward(self, x, mask):
        h = self.norm1(x)
        q, k, v = (proj(h).unflatten(2, (self.heads, -1)) for proj in (self.q, self.k, self.v))
        x = x + self.o(_sdpa(q, k, v, mask[:, None, None, :]).flatten(2))
        h = self.norm2(x)
        return x + self.wo(F.gelu(self.wi_0(h), approximate="tanh") * self.wi_1(h))


class T5Encoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.token_embedding = nn.Embedding(cfg.t5_vocab, cfg.t5_dim, _weight=torch.empty(cfg.t5_vocab, cfg.t5_dim))
        self.blocks = nn.ModuleList(T5Block(cfg.t5_dim, cfg.t5_ffn_dim, cfg.t5_heads) for _ in range(cfg.t5_layers))
        self.norm = RMSNorm(cfg.t5_dim)

    def forward(self, ids, mask):
        x = self.token_embedding(ids)
        for block in self.blocks:
            x = block(x, mask)
        return self.norm(x) * mask[..., None]  # padding positions are zeros, as Wan pads the context


# ---- DiT -----------------------------------------------------------------------------------------
def sinusoidal_embedding(dim, t):
    half = dim // 2
    x = torch.outer(t.double(), torch.pow(10000.0, -torch.arange(half, device=t.device, dtype=torch.float64) / half))
    return torch.cat([torch.cos(x), torch.sin(x)], dim=1)


def rope_cos_sin(positions, grid, head_dim):
    """Wan's 3-D RoPE angles for flat token indices of an (f, h, w) grid -> cos, sin [S, head_dim/2]."""
    _, h, w = grid
    parts = (head_dim - 4 * (head_dim // 6), 2 * (head_dim // 6), 2 * (head_dim // 6))
    coords = (positions // (h * w), positions // w % h, positions % w)
    angles = torch.cat([c[:, None].double() * torch.pow(10000.0, -torch.arange(0, n, 2, device=c.device).double() / n)
                        for c, n in zip(coords, parts)], dim=1)
    return angles.cos().float(), angles.sin().float()


def apply_rope(x, cos, sin):
    a, b = x.float().unflatten(-1, (-1, 2)).unbind(-1)
    cos, sin = cos[:, None], sin[:, None]
    return torch.stack((a * cos - b * sin, a * sin + b * cos), dim=-1).flatten(-2).type_as(x)


class SelfAttention(nn.Module):
    def __init__(self, dim, heads, rt):
        super().__init__()
        self.heads, self.rt = heads, rt
        self.q, self.k, self.v, self.o = (nn.Linear(dim, dim) for _ in range(4))
        self.norm_q, self.norm_k = RMSNorm(dim), RMSNorm(dim)

    def forward(self, x, rope, key_mask):
        q = apply_rope(self.norm_q(self.q(x)).unflatten(2, (self.heads, -1)), *rope)
        k = apply_rope(self.norm_k(self.k(x)).unflatten(2, (self.heads, -1)), *rope)
        v = self.v(x).unflatten(2, (self.heads, -1))
        return self.o(self.rt.attention(q, k, v, key_mask).flatten(2))


class CrossAttention(nn.Module):
    def __init__(self, dim, heads, rt, idx):
        super().__init__()
        self.heads, self.rt, self.idx = heads, rt, idx
        self.q, self.k, self.v, self.o = (nn.Linear(dim, dim) for _ in range(4))
        self.norm_q, self.norm_k = RMSNorm(dim), RMSNorm(dim)

    def forward(self, x, context):
        q = self.norm_q(self.q(x)).unflatten(2, (self.heads, -1))
        k, v = self.rt.cross_kv_for(self.idx, lambda: (self.norm_k(self.k(context)).unflatten(2, (self.heads, -1)),
                                                       self.v(context).unflatten(2, (self.heads, -1))))
        return self.o(_sdpa(q, k, v, None).flatten(2))


class WanAttentionBlock(nn.Module):
    def __init__(self, cfg, rt, idx):
        super().__init__()
        self.rt, self.idx = rt, idx
        self.norm1 = nn.LayerNorm(cfg.dim, eps=1e-6, elementwise_affine=False)
        self.self_attn = SelfAttention(cfg.dim, cfg.num_heads, rt)
        self.norm3 = nn.LayerNorm(cfg.dim, eps=1e-6)
        self.cross_attn = CrossAttention(cfg.dim, cfg.num_heads, rt, idx)
        self.norm2 = nn.LayerNorm(cfg.dim, eps=1e-6, elementwise_affine=False)
        self.ffn = nn.Sequential(nn.Linear(cfg.dim, cfg.ffn_dim), nn.GELU(approximate="tanh"),
                                 nn.Linear(cfg.ffn_dim, cfg.dim))
        self.modulation = nn.Parameter(torch.empty(1, 6, cfg.dim))

    def forward(self, x, e, rope, key_mask, context):
        e = (self.modulation + e).chunk(6, dim=1)
        y = self.rt.cached_self_attention(
            self.idx, lambda: self.self_attn(self.norm1(x) * (1 + e[1]) + e[0], rope, key_mask))
        x = x + y * e[2]
        x = x + self.cross_attn(self.norm3(x), context)
        return x + self.ffn(self.norm2(x) * (1 + e[4]) + e[3]) * e[5]


class Head(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.norm = nn.LayerNorm(cfg.dim, eps=1e-6, elementwise_affine=False)
        self.head = nn.Linear(cfg.dim, cfg.in_dim * math.prod(cfg.patch_size))
        self.modulation = nn.Parameter(torch.empty(1, 2, cfg.dim))

    def forward(self, x, e):
        shift, scale = (self.modulation + e[:, None]).chunk(2, dim=1)
        return self.head(self.norm(x) * (1 + scale) + shift)


class WanModel(nn.Module):
    def __init__(self, cfg, rt):
        super().__init__()
        self.cfg, self.rt = cfg, rt
        self.patch_embedding = nn.Conv3d(cfg.in_dim, cfg.dim, kernel_size=cfg.patch_size, stride=cfg.patch_size)
        self.text_embedding = nn.Sequential(nn.Linear(cfg.t5_dim, cfg.dim), nn.GELU(approximate="tanh"),
                                            nn.Linear(cfg.dim, cfg.dim))
        self.time_embedding = nn.Sequential(nn.Linear(cfg.freq_dim, cfg.dim), nn.SiLU(), nn.Linear(cfg.dim, cfg.dim))
        self.time_projection = nn.Sequential(nn.SiLU(), nn.Linear(cfg.dim, cfg.dim * 6))
        self.blocks = nn.ModuleList(WanAttentionBlock(cfg, rt, i) for i in range(cfg.num_layers))
        self.head = Head(cfg)

    def forward(self, x, t, context):
        """x [B, C, F, H, W] latents, t [B] timesteps, context [B, text_len, t5_dim] -> [B, C, F, H, W] fp32."""
        rt, cfg = self.rt, self.cfg
        dtype = self.head.head.weight.dtype
        x = self.patch_embedding(x.to(dtype))
        grid = tuple(x.shape[2:])
        x = x.flatten(2).transpose(1, 2)
        seq = x.shape[1]
        local = -(-seq // rt.sp_size)  # this rank's chunk of the sequence, padded to sp_size chunks
        x = F.pad(x, (0, 0, 0, local * rt.sp_size - seq)).narrow(1, rt.sp_rank * local, local)
        positions = torch.arange(rt.sp_rank * local, (rt.sp_rank + 1) * local, device=x.device)
        rope = rope_cos_sin(positions, grid, cfg.dim // cfg.num_heads)
        key_mask = None if local * rt.sp_size == seq else (torch.arange(local * rt.sp_size, device=x.device) < seq
                                                           ).view(1, 1, 1, -1)  # padding keys masked
        e = self.time_embedding(sinusoidal_embedding(cfg.freq_dim, t).to(dtype))
        e0 = self.time_projection(e).unflatten(1, (6, cfg.dim))
        context = self.text_embedding(context.to(dtype))
        for block in self.blocks:
            x = block(x, e0, rope, key_mask, context)
        x = self.head(x, e)
        x = rt.all_gather(x, rt.sp_group, rt.sp_size, dim=1)[:, :seq]
        return self.unpatchify(x, grid).float()

    def unpatchify(self, x, grid):
        pt, ph, pw = self.cfg.patch_size
        x = x.unflatten(2, (pt, ph, pw, -1)).unflatten(1, grid)  # [B, f, h, w, pt, ph, pw, C]
        x = x.permute(0, 7, 1, 4, 2, 5, 3, 6)
        return x.reshape(x.shape[0], x.shape[1], grid[0] * pt, grid[1] * ph, grid[2] * pw)


# ---- VAE decoder ---------------------------------------------------------------------------------
class VAEDecoder(nn.Module):
    """Four 3x3x3 convolutions with x2 spatial upsampling between them, then Wan's x4 temporal
    expansion (1 + 4 (f - 1) frames). Each conv reaches one latent frame further: HALO frames."""
    HALO = 4

    def __init__(self, cfg):
        super().__init__()
        channels = (cfg.in_dim,) + tuple(cfg.vae_channels) + (3,)
        self.convs = nn.ModuleList(nn.Conv3d(a, b, 3, padding=1) for a, b in zip(channels, channels[1:]))

    def forward(self, z):
        """[C, f, h, w] latents -> [3, f, 8h, 8w] frames at the latent frame rate."""
        x = z[None].to(self.convs[0].weight.dtype)
        for i, conv in enumerate(self.convs):
            if i:
                x = F.interpolate(x, scale_factor=(1, 2, 2), mode="nearest")
            x = conv(x)
            x = torch.tanh(x) if i == len(self.convs) - 1 else F.silu(x)
        return x[0]

    @staticmethod
    def expand_time(x):
        return torch.cat([x[:, :1], x[:, 1:].repeat_interleave(4, dim=1)], dim=1)
