"""The tiny T5-style text encoder the toy Wan and LTX-Video pipelines share."""

from __future__ import annotations

from typing import Any

import torch


def tiny_t5_encoder(config_cls: Any, model_cls: Any, seed: int, vocab_size: int) -> torch.nn.Module:
    """A 2-layer (U)MT5 encoder with d_model 32, the width the tiny transformers expect.

    Args:
        config_cls: ``T5Config`` or ``UMT5Config``.
        model_cls: The matching encoder class.
        seed: Seeds the random weights.
        vocab_size: The tokenizer's vocabulary size.

    Returns:
        The encoder, with random weights.
    """
    config = config_cls(
        vocab_size=vocab_size,
        d_model=32,
        d_kv=8,
        d_ff=37,
        num_layers=2,
        num_heads=4,
        relative_attention_num_buckets=8,
        dropout_rate=0.0,
    )
    torch.manual_seed(seed)
    module: torch.nn.Module = model_cls(config)
    return module
