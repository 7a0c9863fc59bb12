"""Size presets keyed by --task, and the constants Wan2.1 shares between them."""
from dataclasses import dataclass


@dataclass(frozen=True)
class ModelConfig:
    name: str
    # DiT
    dim: int
    ffn_dim: int
    num_heads: int
    num_layers: int
    # T5 text encoder (umT5-XXL shaped for the real presets)
    text_len: int
    t5_dim: int
    t5_ffn_dim: int
    t5_heads: int
    t5_layers: int
    t5_vocab: int
    # VAE decoder channels, latent resolution first
    vae_channels: tuple
    # shared by all presets (Wan2.1 values)
    in_dim: int = 16  # latent channels
    freq_dim: int = 256
    patch_size: tuple = (1, 2, 2)
    vae_stride: tuple = (4, 8, 8)
    num_train_timesteps: int = 1000


_UMT5_XXL = dict(text_len=512, t5_dim=4096, t5_ffn_dim=10240, t5_heads=64, t5_layers=24, t5_vocab=256384)

WAN_CONFIGS = {
    # CPU preset: a 20-step run on 4 gloo ranks of a 2-core machine stays well under a minute;
    # the T5 holds most weights (as umT5 does for the 1.3B model) so FSDP visibly lowers peak RSS
    # while the DiT's per-forward all-gathers stay cheap.
    "t2v-tiny": ModelConfig("Config: Wan T2V tiny (reference)", dim=256, ffn_dim=1024, num_heads=8, num_layers=4,
                            text_len=64, t5_dim=512, t5_ffn_dim=2048, t5_heads=8, t5_layers=6, t5_vocab=4096,
                            vae_channels=(32, 16, 8)),
    "t2v-1.3B": ModelConfig("Config: Wan T2V 1.3B", dim=1536, ffn_dim=8960, num_heads=12, num_layers=30,
                            vae_channels=(256, 128, 64), **_UMT5_XXL),
    "t2v-14B": ModelConfig("Config: Wan T2V 14B", dim=5120, ffn_dim=13824, num_heads=40, num_layers=40,
                           vae_channels=(256, 128, 64), **_UMT5_XXL),
}

# None: any W*H whose sides are multiples of vae_stride * patch_size (16).
SUPPORTED_SIZES = {
    "t2v-tiny": None,
    "t2v-1.3B": ("480*832", "832*480"),
    "t2v-14B": ("720*1280", "1280*720", "480*832", "832*480"),
}

EXAMPLE_PROMPT = ("Two anthropomorphic cats in comfy boxing gear and bright gloves fight intensely "
                  "on a spotlighted stage.")

SAMPLE_NEG_PROMPT = ("色调艳丽，过曝，静态，细节模糊不清，字幕，风格，作品，画作，画面，静止，整体发灰，"
                     "最差质量，低质量，JPEG压缩残留，丑陋的，残缺的，多余的手指，画得不好的手部，"
                     "画得不好的脸部，畸形的，毁容的，形态畸形的肢体，手指融合，静止不动的画面，"
                     "杂乱的背景，三条腿，背景人很多，倒着走")


def latent_shape(cfg, width, height, frame_num):
    """(C, F, H, W) of the latent Wan samples for a W*H video of frame_num frames."""
    st, sh, sw = cfg.vae_stride
    return (cfg.in_dim, (frame_num - 1) // st + 1, height // sh, width // sw)


def token_count(cfg, width, height, frame_num):
    _, f, h, w = latent_shape(cfg, width, height, frame_num)
    pt, ph, pw = cfg.patch_size
    return (f // pt) * (h // ph) * (w // pw)
