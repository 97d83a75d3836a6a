"""Speed profiles on the render host: a transformer cache and regional compilation, for one render.

The render worker keeps one pipeline warm per model and renders tasks of every profile on it, so
nothing a profile sets may outlive its render. `speed_profile()` enables diffusers' First Block Cache
(`transformer.enable_cache(FirstBlockCacheConfig(...))`, which both `WanTransformer3DModel` and
`LTXVideoTransformer3DModel` take through `CacheMixin`) and takes it off again in its `finally`, so
the next task, a `quality` one say, runs the plain transformer and renders the very frames it would
have rendered on a fresh pipeline. Fresh hooks also mean fresh cache state: a render never compares
its first step with the last step of the render before.

Regional compilation (CUDA only; never on a CPU, where inductor would cost more than it saves) swaps
each repeated block's `forward` for a compiled one, made once per block and kept on it, then puts
the eager one back. Compiling the block's own `forward` (not its whole call) keeps the cache's hooks,
which wrap `forward` and make Python decisions between blocks, outside the compiled graph, so
toggling the cache never recompiles.

`count_passes()` counts transformer forward passes and the blocks that really computed (a block the
cache skipped calls none of its layers): `bench.render` and the tests measure profiles with it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import msgspec
import torch
from diffusers.hooks import FirstBlockCacheConfig

from sorapi.contracts.messages import RenderSpeed

_COMPILED_FORWARD = "_sorapi_compiled_forward"
"""Attribute of a block holding its compiled `forward`, made on the first compiled render."""


class SpeedEffects(msgspec.Struct, frozen=True, kw_only=True):
    """What a profile changes on a given pipeline and device (recorded in the render's meta)."""

    cache: str = ""
    """`first_block:<threshold>` when the transformer cache is on; empty: none."""
    compiled: bool = False


class PassCount(msgspec.Struct, kw_only=True):
    transformer: int = 0
    """Forward passes of the transformer(s): steps × passes per step (2 for Wan with guidance > 1)."""
    blocks: int = 0
    """Transformer blocks that computed (the cache skips all but the first on a cached pass)."""
    seconds: float = 0.0
    """Wall time inside the transformer's forward passes: the denoising work, without the text
    encoder and the VAE (on CUDA, asynchronous kernels make it a lower bound unless synchronised)."""


def transformers_of(pipe: Any) -> list[torch.nn.Module]:
    """The pipeline's denoisers (Wan 2.2 A14B has two)."""
    return [m for m in (getattr(pipe, "transformer", None), getattr(pipe, "transformer_2", None)) if m is not None]


def repeated_blocks(transformer: torch.nn.Module) -> list[torch.nn.Module]:
    """The transformer's repeated blocks (its `_repeated_blocks` classes, as regional compilation finds them)."""
    kinds = set(getattr(transformer, "_repeated_blocks", None) or ())
    return [m for m in transformer.modules() if type(m).__name__ in kinds]


def cacheable(transformer: torch.nn.Module) -> bool:
    """Whether `transformer` can take First Block Cache.

    It needs a head block and a tail block, two blocks at least (the tiny LTX dev model has one), of a class diffusers
    describes for its cache hooks (LTX-2's is not, in 0.42.1). A transformer that cannot take it renders every profile
    without a cache (the meta says so).
    """
    from diffusers.hooks._helpers import TransformerBlockRegistry

    blocks = repeated_blocks(transformer)
    if not hasattr(transformer, "enable_cache") or len(blocks) < 2:
        return False
    try:
        TransformerBlockRegistry.get(type(blocks[0]))
    except ValueError:
        return False
    return True


def _on_cuda(pipe: Any) -> bool:
    device = getattr(pipe, "_execution_device", None)
    return isinstance(device, torch.device) and device.type == "cuda"


def _compiled_at_load(transformer: torch.nn.Module) -> bool:
    """SORAPI_RENDER_COMPILE compiled the blocks' whole calls when the pipeline loaded (every profile)."""
    return any(block._compiled_call_impl is not None for block in repeated_blocks(transformer))


def speed_effects(pipe: Any, speed: RenderSpeed | None) -> SpeedEffects:
    """What `speed_profile(pipe, speed)` applies, without applying it."""
    transformers = transformers_of(pipe)
    cache = speed is not None and speed.cache_threshold > 0 and any(cacheable(t) for t in transformers)
    compiled = any(_compiled_at_load(t) for t in transformers) or (
        speed is not None and speed.compile and _on_cuda(pipe)
    )
    return SpeedEffects(cache=f"first_block:{speed.cache_threshold:g}" if cache and speed else "", compiled=compiled)


@contextmanager
def _compiled_forwards(transformer: torch.nn.Module) -> Iterator[None]:
    """Each repeated block runs a compiled `forward` inside the block; the eager one is back after."""
    swapped: list[tuple[torch.nn.Module, Any]] = []
    try:
        for block in repeated_blocks(transformer):
            compiled = getattr(block, _COMPILED_FORWARD, None)
            if compiled is None:
                compiled = torch.compile(block.forward)
                setattr(block, _COMPILED_FORWARD, compiled)
            swapped.append((block, block.__dict__.get("forward")))
            block.__dict__["forward"] = compiled  # an instance attribute shadows the class method
        yield
    finally:
        for block, previous in swapped:
            if previous is None:
                del block.__dict__["forward"]
            else:
                block.__dict__["forward"] = previous


@contextmanager
def _first_block_cache(transformer: torch.nn.Module, threshold: float) -> Iterator[None]:
    transformer.enable_cache(FirstBlockCacheConfig(threshold=threshold))  # type: ignore[operator]
    try:
        yield
    finally:
        transformer.disable_cache()  # type: ignore[operator]


@contextmanager
def speed_profile(pipe: Any, speed: RenderSpeed | None) -> Iterator[SpeedEffects]:
    """Apply `speed`'s cache and compilation to `pipe` for the calls inside, then undo them.

    They are undone on errors and interruptions too. Steps are the caller's: they are an argument of the pipeline call.
    """
    effects = speed_effects(pipe, speed)
    with ExitStack() as undo:
        for transformer in transformers_of(pipe):
            # Compiled forwards first, so the cache hooks wrap them (and stay out of the graph).
            if speed is not None and speed.compile and _on_cuda(pipe) and not _compiled_at_load(transformer):
                undo.enter_context(_compiled_forwards(transformer))
            if effects.cache and speed is not None and cacheable(transformer):
                undo.enter_context(_first_block_cache(transformer, speed.cache_threshold))
        yield effects


@contextmanager
def count_passes(pipe: Any) -> Iterator[PassCount]:
    """Count the transformer's forward passes and computed blocks during the calls inside."""
    count = PassCount()
    started: list[float] = []

    def on_transformer(*_: Any) -> None:
        count.transformer += 1
        started.append(time.perf_counter())

    def after_transformer(*_: Any) -> None:
        if started:
            count.seconds += time.perf_counter() - started.pop()

    def on_block(*_: Any) -> None:
        count.blocks += 1

    handles = []
    for transformer in transformers_of(pipe):
        handles.append(transformer.register_forward_pre_hook(on_transformer))
        handles.append(transformer.register_forward_hook(after_transformer))
        for block in repeated_blocks(transformer):
            first_layer: torch.nn.Module = next(block.children())  # runs only when the block computes
            handles.append(first_layer.register_forward_pre_hook(on_block))
    try:
        yield count
    finally:
        for handle in handles:
            handle.remove()


__all__ = ["PassCount", "SpeedEffects", "count_passes", "speed_effects", "speed_profile", "transformers_of"]
