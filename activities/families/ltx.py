"""LTX-Video (diffusers ``LTXPipeline``): text-to-video conditioned on the frame rate, no soundtrack.

Its image-to-video and extension pipelines (``LTXImageToVideoPipeline``, ``LTXConditionPipeline``)
are built from the same components by ``activities.conditioning``.
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers import AutoencoderKLLTXVideo, FlowMatchEulerDiscreteScheduler, LTXPipeline, LTXVideoTransformer3DModel
from transformers import ByT5Tokenizer, T5Config, T5EncoderModel

from sorapi.activities.encode import Soundtrack
from sorapi.activities.families.tiny_text import tiny_t5_encoder

PIPELINE = LTXPipeline


def tiny(seed: int) -> LTXPipeline:
    """LTX-Video architecture at toy width, keeping the real 32x spatial / 8x temporal VAE ratios."""
    torch.manual_seed(seed)
    transformer = LTXVideoTransformer3DModel(
        in_channels=8,
        out_channels=8,
        patch_size=1,
        patch_size_t=1,
        num_attention_heads=2,
        attention_head_dim=8,
        cross_attention_dim=16,
        num_layers=1,
        caption_channels=32,
    )
    torch.manual_seed(seed)
    vae = AutoencoderKLLTXVideo(
        latent_channels=8,
        block_out_channels=(8, 8, 8, 8),
        decoder_block_out_channels=(8, 8, 8, 8),
        layers_per_block=(1, 1, 1, 1, 1),
        decoder_layers_per_block=(1, 1, 1, 1, 1),
        spatio_temporal_scaling=(True, True, True, False),
        decoder_spatio_temporal_scaling=(True, True, True, False),
        patch_size=4,
        patch_size_t=1,
        encoder_causal=True,
        decoder_causal=False,
    )
    tokenizer = ByT5Tokenizer()
    return LTXPipeline(
        tokenizer=tokenizer,
        text_encoder=tiny_t5_encoder(T5Config, T5EncoderModel, seed, len(tokenizer)),
        transformer=transformer,
        vae=vae,
        scheduler=FlowMatchEulerDiscreteScheduler(),
    )


def from_pretrained(weights_dir: str, dtype: torch.dtype) -> LTXPipeline:
    """Real weights, strictly offline."""
    pipe: LTXPipeline = LTXPipeline.from_pretrained(weights_dir, dtype=dtype, local_files_only=True)
    return pipe


def compression(pipe: Any) -> tuple[int, int]:
    """(spatial, temporal) latent-to-pixel factors: the VAE's ratios times the transformer's patch."""
    return pipe.vae_spatial_compression_ratio * pipe.transformer_spatial_patch_size, pipe.vae_temporal_compression_ratio


def call_kwargs(pipe: Any, fps: int | None) -> dict[str, Any]:
    """The frame rate conditions LTX-Video's motion (its ``frame_rate``, default 25)."""
    return {"frame_rate": fps} if fps else {}


def soundtrack(pipe: Any, result: Any) -> Soundtrack | None:
    """LTX-Video makes no audio."""
    return None
