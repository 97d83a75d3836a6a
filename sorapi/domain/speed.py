"""Speed profiles: how much of a model's quality a render trades for time (`speed` on create).

A profile is catalog data (`[speed.<name>]` in `catalog.toml`): the share of the model's denoising
steps it runs, the threshold of diffusers' First Block Cache on the transformer (0: none), whether the
transformer's repeated blocks run under torch.compile on a GPU (regional compilation; never on a
CPU), and a price factor. The render host applies the cache and the compilation for one render only
(`activities/speed.py`), so a warm pipeline shared by tasks of different profiles stays exact.
"""

from __future__ import annotations

import math

import msgspec

SPEEDS = ("quality", "balanced", "fast")
"""Every profile name a request may send; the catalog defines each of them."""
DEFAULT_SPEED = "quality"
"""The profile of requests recorded before profiles existed: the model's steps, no cache, no compile."""


class SpeedProfile(msgspec.Struct, frozen=True, kw_only=True):
    """One profile as the catalog states it; `catalog.toml` explains each field next to its value."""

    steps_fraction: float = 1.0
    """Share of the model's `default_steps` run (rounded, at least 1) unless the model's `speed_steps` says."""
    cache_threshold: float = 0.0
    """First Block Cache threshold: a step whose first-block residual moved less than this (relative)
    reuses the other blocks' cached residual (0: no cache)."""
    compile: bool = False
    """Regional torch.compile of the transformer's repeated blocks, on CUDA devices only."""
    credit_multiplier: float = 1.0
    """Factor on the price (1.0: the model's price)."""
    description: str = ""

    def __post_init__(self) -> None:
        if not 0 < self.steps_fraction <= 1:
            raise ValueError(f"steps_fraction must be in (0, 1], got {self.steps_fraction}")
        if not 0 <= self.cache_threshold < 1:
            raise ValueError(f"cache_threshold must be in [0, 1), got {self.cache_threshold}")
        if not 0 < self.credit_multiplier <= 10:
            raise ValueError(f"credit_multiplier must be in (0, 10], got {self.credit_multiplier}")

    def steps(self, default_steps: int) -> int:
        """The steps this profile runs for a model of `default_steps`."""
        return scaled_steps(default_steps, self.steps_fraction)


def scaled_steps(steps: int, fraction: float) -> int:
    """`fraction` of `steps`, rounded half up, at least 1 (the dev models' steps scale the same way)."""
    return max(1, math.floor(steps * fraction + 0.5))


__all__ = ["DEFAULT_SPEED", "SPEEDS", "SpeedProfile", "scaled_steps"]
