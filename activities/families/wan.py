"""Wan 2.1 / 2.2 (diffusers ``WanPipeline``): text-to-video, no frame-rate input, no soundtrack."""

from __future__ import annotations

from typing import Any

import torch
from diffusers import AutoencoderKLWan, FlowMatchEulerDiscreteScheduler, WanPipeline, WanTransformer3DModel
from transformers import ByT5Tokenizer, UMT5Config, UMT5EncoderModel

from sorapi.activities.encode import Soundtrack
from sorapi.activities.families.tiny_text import tiny_t5_encoder

PIPELINE = WanPipeline
TINY_TEXT_WIDTH = 32
"""The tiny text encoder's width (`tiny_text.tiny_t5_encoder`); UMT5-XXL's is 4096."""
TINY_SEQUENCE_LENGTH = 128
"""Prompt tokens the tiny model reads (byte-level: 128 bytes, LTX-Video's own window). diffusers' 512
made the text encoder a third of a tiny render's CPU (py-spy, bench.queue's drain); real weights keep it."""


def tiny(seed: int) -> WanPipeline:
    """Wan 2.1 architecture at toy width: 8x spatial / 4x temporal VAE, patch (1, 2, 2)."""
    torch.manual_seed(seed)
    transformer = WanTransformer3DModel(
        patch_size=(1, 2, 2),
        num_attention_heads=2,
        attention_head_dim=12,
        in_channels=16,
        out_channels=16,
        text_dim=32,
        freq_dim=256,
        ffn_dim=32,
        num_layers=2,
        cross_attn_norm=True,
        qk_norm="rms_norm_across_heads",
        rope_max_seq_len=32,
    )
    torch.manual_seed(seed)
    vae = AutoencoderKLWan(
        base_dim=3,
        z_dim=16,
        dim_mult=[1, 1, 1, 1],
        num_res_blocks=1,
        temperal_downsample=[False, True, True],
    )
    tokenizer = ByT5Tokenizer()
    return WanPipeline(
        tokenizer=tokenizer,
        text_encoder=tiny_t5_encoder(UMT5Config, UMT5EncoderModel, seed, len(tokenizer)),
        transformer=transformer,
        vae=vae,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=7.0),
    )


def from_pretrained(weights_dir: str, dtype: torch.dtype) -> WanPipeline:
    """Real weights, strictly offline.

    The VAE stays float32 whatever ``dtype``: it is small and degrades in half precision.
    """
    vae = AutoencoderKLWan.from_pretrained(weights_dir, subfolder="vae", dtype=torch.float32, local_files_only=True)
    pipe: WanPipeline = WanPipeline.from_pretrained(weights_dir, vae=vae, dtype=dtype, local_files_only=True)
    return pipe


def compression(pipe: Any) -> tuple[int, int]:
    """(spatial, temporal) latent-to-pixel factors; Wan 2.2's MoE checkpoints may hold only ``transformer_2``."""
    transformer = pipe.transformer if pipe.transformer is not None else pipe.transformer_2
    return pipe.vae_scale_factor_spatial * transformer.config.patch_size[1], pipe.vae_scale_factor_temporal


def call_kwargs(pipe: Any, fps: int | None) -> dict[str, Any]:
    """Wan takes no frame rate (the video's timing is the container's alone); the tiny model a short prompt window."""
    tiny_text = pipe.text_encoder is not None and pipe.text_encoder.config.d_model <= TINY_TEXT_WIDTH
    return {"max_sequence_length": TINY_SEQUENCE_LENGTH} if tiny_text else {}


def soundtrack(pipe: Any, result: Any) -> Soundtrack | None:
    """Wan makes no audio."""
    return None
