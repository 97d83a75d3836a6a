"""Shape rules of the diffusers pipeline families, as plain data (no torch).

The API validates a request's frame count against a model before anything is reserved, and the
render worker computes the same count; both use `frames_for` from here so they never disagree.
"""

from __future__ import annotations

import math

import msgspec

DTYPES = ("bfloat16", "float16", "float32")
DTYPE_ALIASES = {"bf16": "bfloat16", "fp16": "float16", "half": "float16", "fp32": "float32", "float": "float32"}


class FamilyRule(msgspec.Struct, frozen=True):
    """Sizes are multiples of `size_multiple`; frame counts are `k * frame_step + 1` (k >= 1)."""

    size_multiple: int
    frame_step: int


# Wan: VAE 8x spatial x patch 2, 4x temporal. LTX-Video and LTX-2: VAE 32x spatial, 8x temporal.
FAMILIES: dict[str, FamilyRule] = {"wan": FamilyRule(16, 4), "ltx": FamilyRule(32, 8), "ltx2": FamilyRule(32, 8)}
AUDIO_FAMILIES = frozenset({"ltx2"})
"""Families whose pipeline renders a soundtrack with the video (LTX-2: audio VAE and vocoder)."""


def family_rule(family: str) -> FamilyRule:
    """The family's shape rule, or a readable error for an unknown family."""
    try:
        return FAMILIES[family]
    except KeyError:
        raise ValueError(f"unknown model family {family!r}; supported: {', '.join(FAMILIES)}") from None


def frames_for(family: str, duration_s: float, fps: int) -> int:
    """Frame count closest to `duration_s * fps` that the family's VAE accepts (k*step+1).

    Ties round up, so a request never gets the shorter of two equally close videos.
    """
    step = family_rule(family).frame_step
    if not duration_s > 0 or fps <= 0:
        raise ValueError(f"duration_s and fps must be positive, got {duration_s!r} and {fps!r}")
    k = math.floor(duration_s * fps / step + 0.5)
    return step * max(k, 1) + 1


def canonical_dtype(name: str) -> str:
    """`bf16`/`fp16`/`fp32` (or the torch names) → the torch dtype name; anything else is an error."""
    value = DTYPE_ALIASES.get(name.strip().lower(), name.strip().lower())
    if value not in DTYPES:
        raise ValueError(f"unknown dtype {name!r}; use one of {', '.join(DTYPES)} (or bf16, fp16, fp32)")
    return value
