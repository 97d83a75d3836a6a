"""LTX-2 (diffusers ``LTX2Pipeline``): the family that renders a video and its soundtrack together.

One transformer denoises video and audio latents jointly; the video VAE decodes the frames, the
audio VAE a mel spectrogram, and the vocoder turns that into a waveform. The soundtrack therefore
costs nothing extra to make: a request's ``audio`` only decides whether it is delivered.

Without weights, ``tiny`` builds the same classes at toy width (Gemma 3 text encoder, text
connectors, LTX-2 transformer, video VAE with the real 32x spatial / 8x temporal ratios, audio VAE
and vocoder) so the stack runs offline on a CPU.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from diffusers import (
    AutoencoderKLLTX2Audio,
    AutoencoderKLLTX2Video,
    FlowMatchEulerDiscreteScheduler,
    LTX2Pipeline,
    LTX2VideoTransformer3DModel,
)
from diffusers.pipelines.ltx2 import LTX2TextConnectors
from diffusers.pipelines.ltx2.vocoder import LTX2Vocoder
from transformers import (
    ByT5Tokenizer,
    Gemma3Config,
    Gemma3ForConditionalGeneration,
    Gemma3TextConfig,
    SiglipVisionConfig,
)

from sorapi.activities.encode import Soundtrack

PIPELINE = LTX2Pipeline
TEXT_WIDTH = 32
"""Gemma's hidden size in the tiny model: the connectors' width (4 heads x 8) and the transformer's captions."""
TEXT_LAYERS = 2
TINY_SEQUENCE_LENGTH = 128
"""Prompt tokens the tiny model reads (byte-level: 128 bytes); real weights keep diffusers' 1024."""
TINY_SAMPLE_RATE = 16000
"""The tiny audio VAE's mel rate: 16 kHz with a hop of 160 is 100 mel frames a second, as in LTX-2."""
TINY_VOCODER_UPSAMPLE = (8, 10)
"""80 waveform samples per mel frame: 8 kHz out, kept consistent so the audio lasts as long as the video."""
STG_BLOCKS = (28,)
"""diffusers' default blocks for spatio-temporal guidance; a transformer with fewer layers skips it."""


def _tiny_text_encoder(seed: int, vocab_size: int) -> Gemma3ForConditionalGeneration:
    """Gemma 3 (the class LTX-2 ships with) at width 32, with a one-layer 14-pixel vision tower it never uses."""
    text = Gemma3TextConfig(
        vocab_size=vocab_size,
        hidden_size=TEXT_WIDTH,
        intermediate_size=64,
        num_hidden_layers=TEXT_LAYERS,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=16,
        query_pre_attn_scalar=16,
        sliding_window=64,
        max_position_embeddings=512,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=2,
    )
    vision = SiglipVisionConfig(
        hidden_size=16,
        intermediate_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        image_size=14,
        patch_size=7,
    )
    config = Gemma3Config(
        text_config=text,
        vision_config=vision,
        mm_tokens_per_image=4,
        boi_token_index=vocab_size - 3,
        eoi_token_index=vocab_size - 2,
        image_token_index=vocab_size - 1,
    )
    torch.manual_seed(seed)
    return Gemma3ForConditionalGeneration(config)


def tiny(seed: int) -> LTX2Pipeline:
    """LTX-2 at toy width; deterministic given ``seed``. Stereo audio at 8 kHz."""
    tokenizer = ByT5Tokenizer()
    text_encoder = _tiny_text_encoder(seed, len(tokenizer))
    torch.manual_seed(seed)
    transformer = LTX2VideoTransformer3DModel(
        in_channels=4,
        out_channels=4,
        patch_size=1,
        patch_size_t=1,
        num_attention_heads=2,
        attention_head_dim=8,
        cross_attention_dim=16,
        audio_in_channels=4,  # audio latent channels (2) x latent mel bins (8 / 4)
        audio_out_channels=4,
        audio_num_attention_heads=2,
        audio_attention_head_dim=4,
        audio_cross_attention_dim=8,
        num_layers=2,
        qk_norm="rms_norm_across_heads",
        caption_channels=TEXT_WIDTH,
        rope_double_precision=False,
        rope_type="split",
    )
    torch.manual_seed(seed)
    connectors = LTX2TextConnectors(
        caption_channels=TEXT_WIDTH,
        text_proj_in_factor=TEXT_LAYERS + 1,
        video_connector_num_attention_heads=4,
        video_connector_attention_head_dim=8,
        video_connector_num_layers=1,
        video_connector_num_learnable_registers=None,
        audio_connector_num_attention_heads=4,
        audio_connector_attention_head_dim=8,
        audio_connector_num_layers=1,
        audio_connector_num_learnable_registers=None,
        connector_rope_base_seq_len=32,
        rope_theta=10000.0,
        rope_double_precision=False,
        causal_temporal_positioning=False,
        rope_type="split",
    )
    torch.manual_seed(seed)
    vae = AutoencoderKLLTX2Video(
        latent_channels=4,
        block_out_channels=(8, 8, 8, 8),
        decoder_block_out_channels=(8, 8, 8),
        layers_per_block=(1, 1, 1, 1, 1),
        decoder_layers_per_block=(1, 1, 1, 1),
        spatio_temporal_scaling=(True, True, True, False),
        decoder_spatio_temporal_scaling=(True, True, True),
        decoder_inject_noise=(False, False, False, False),
        downsample_type=("spatiotemporal", "spatiotemporal", "spatiotemporal", "spatial"),
        upsample_type=("spatiotemporal", "spatiotemporal", "spatiotemporal"),
        upsample_residual=(False, False, False),
        upsample_factor=(1, 1, 1),
        timestep_conditioning=False,
        patch_size=4,
        patch_size_t=1,
        encoder_causal=True,
        decoder_causal=False,
    )
    torch.manual_seed(seed)
    audio_vae = AutoencoderKLLTX2Audio(
        base_channels=4,
        output_channels=2,
        ch_mult=(1,),
        num_res_blocks=1,
        attn_resolutions=None,
        in_channels=2,
        resolution=32,
        latent_channels=2,
        norm_type="pixel",
        causality_axis="height",
        dropout=0.0,
        mid_block_add_attention=False,
        sample_rate=TINY_SAMPLE_RATE,
        mel_hop_length=160,
        is_causal=True,
        mel_bins=8,
    )
    mel_rate = TINY_SAMPLE_RATE // 160
    torch.manual_seed(seed)
    vocoder = LTX2Vocoder(
        in_channels=2 * 8,  # audio VAE output channels x mel bins
        hidden_channels=32,
        out_channels=2,
        upsample_kernel_sizes=[2 * f for f in TINY_VOCODER_UPSAMPLE],
        upsample_factors=list(TINY_VOCODER_UPSAMPLE),
        resnet_kernel_sizes=[3],
        resnet_dilations=[[1, 3, 5]],
        leaky_relu_negative_slope=0.1,
        output_sampling_rate=mel_rate * int(np.prod(TINY_VOCODER_UPSAMPLE)),
    )
    return LTX2Pipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(),
        vae=vae,
        audio_vae=audio_vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        connectors=connectors,
        transformer=transformer,
        vocoder=vocoder,
    )


def from_pretrained(weights_dir: str, dtype: torch.dtype) -> LTX2Pipeline:
    """Real weights, strictly offline."""
    pipe: LTX2Pipeline = LTX2Pipeline.from_pretrained(weights_dir, dtype=dtype, local_files_only=True)
    return pipe


def compression(pipe: Any) -> tuple[int, int]:
    """(spatial, temporal) latent-to-pixel factors: the video VAE's ratios times the transformer's patch."""
    return pipe.vae_spatial_compression_ratio * pipe.transformer_spatial_patch_size, pipe.vae_temporal_compression_ratio


def soundtrack(pipe: Any, result: Any) -> Soundtrack | None:
    """The render's stereo waveform at the vocoder's rate, as long as the video."""
    audio = getattr(result, "audio", None)
    return Soundtrack(waveform(audio), sample_rate(pipe)) if audio is not None else None


def call_kwargs(pipe: Any, fps: int | None) -> dict[str, Any]:
    """LTX-2's own inputs: the frame rate (it times the audio too), and plain guidance on a toy transformer.

    A toy transformer (fewer layers than the guidance blocks) gets plain classifier-free guidance, without the extra
    passes of spatio-temporal and modality guidance, and a short prompt window.
    """
    kwargs: dict[str, Any] = {"frame_rate": float(fps)} if fps else {}
    if pipe.transformer.config.num_layers <= max(STG_BLOCKS):
        kwargs |= {
            "spatio_temporal_guidance_blocks": None,
            "stg_scale": 0.0,
            "audio_stg_scale": 0.0,
            "modality_scale": 1.0,
            "audio_modality_scale": 1.0,
            "guidance_rescale": 0.0,
            "audio_guidance_rescale": 0.0,
            "max_sequence_length": TINY_SEQUENCE_LENGTH,
        }
    return kwargs


def sample_rate(pipe: Any) -> int:
    """The waveform's rate: the vocoder's output rate (24 kHz for LTX-2, 8 kHz for the tiny model)."""
    return int(pipe.vocoder.config.output_sampling_rate)


def waveform(audio: Any) -> np.ndarray:
    """The pipeline's audio output (batch, channels, samples) -> float32 (channels, samples) in [-1, 1]."""
    if isinstance(audio, torch.Tensor):
        audio = audio.detach().to("cpu", torch.float32).numpy()
    array = np.asarray(audio, dtype=np.float32)
    if array.ndim == 3:
        array = array[0]
    if array.ndim == 1:
        array = array[None, :]
    return np.ascontiguousarray(np.clip(array, -1.0, 1.0))
