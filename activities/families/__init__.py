"""The render code of each diffusers pipeline family, one module per family (diffusers' single-file policy).

A family module gives the render worker all it needs of that family and nothing of the others:

- ``PIPELINE``: the diffusers pipeline class;
- ``tiny(seed)``: a random-weight pipeline of the real classes at toy width, for development and tests;
- ``from_pretrained(weights_dir, dtype)``: real weights from a local diffusers-format directory;
- ``compression(pipe)``: (spatial, temporal) factors from latents to pixels of this checkpoint;
- ``call_kwargs(pipe, fps)``: the family's own arguments to a render call;
- ``soundtrack(pipe, result)``: the render's audio, for a family that makes one.

Adding a family means adding its module here and its shape rule in ``sorapi.domain.families``.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from sorapi.activities.families import ltx, ltx2, wan

MODULES: dict[str, ModuleType] = {"wan": wan, "ltx": ltx, "ltx2": ltx2}
"""Family name (catalog.toml's `family`) to its module."""


def module_of(family: str) -> ModuleType:
    """The module of ``family`` (a name ``sorapi.domain.families`` already accepted)."""
    return MODULES[family]


def family_of(pipe: Any) -> str:
    """Family of a pipeline object (by class), so a render call needs no extra argument."""
    for family, module in MODULES.items():
        if isinstance(pipe, module.PIPELINE):
            return family
    raise ValueError(f"unsupported pipeline class {type(pipe).__name__}")
