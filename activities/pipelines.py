"""Diffusers pipeline construction and execution for the render workers.

This is the only module that imports torch/diffusers; the API and the workflows never import it,
so they stay light. What differs between the families (Wan, LTX-Video, LTX-2 with its soundtrack) lives
in one module each, ``activities/families/``; this module is what they share. Without weights, a tiny
random-weight pipeline of the same family is built in code so the whole stack runs offline on a CPU in
seconds.
"""

from __future__ import annotations

import math
import threading
import weakref
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import torch
from PIL import Image

from sorapi.activities import families
from sorapi.activities.conditioning import conditioned
from sorapi.activities.encode import Soundtrack
from sorapi.activities.speed import speed_profile
from sorapi.contracts.messages import RenderSpeed
from sorapi.domain.families import FAMILIES, canonical_dtype, family_rule
from sorapi.domain.families import frames_for as frames_for  # re-exported: callers size renders with it

SUPPORTED_FAMILIES = tuple(FAMILIES)

StepCallback = Callable[[int, int], bool]
Pipeline = Any
"""A diffusers pipeline (WanPipeline, LTXPipeline...): its components are attributes set at run time,
which no static type describes, so the code treats it dynamically."""


class RenderInterrupted(Exception):
    """Raised when ``on_step`` asked to stop (job cancelled or worker shutting down)."""


_DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}
OFFLOAD_MODES = ("", "model", "sequential")
_MAX_SEED = 2**64 - 1

# A pipeline keeps per-call state on itself (_interrupt, _guidance_scale, ...), so calls on one
# pipeline object are serialised even if the worker runs activities in several threads.
_LOCKS: weakref.WeakKeyDictionary[Pipeline, threading.Lock] = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()


# ---------------------------------------------------------------------------------------------
# Construction
# ---------------------------------------------------------------------------------------------


def _eval_mode(pipe: Pipeline) -> None:
    """Put every module in eval mode.

    Modules built in code start in training mode, and the text encoder's dropout would then make the same seed render
    different videos.
    """
    for component in pipe.components.values():
        if isinstance(component, torch.nn.Module):
            component.eval()


def build_tiny_pipeline(family: str, seed: int = 0) -> Pipeline:
    """Random-weight pipeline of ``family`` (CPU, float32), deterministic given ``seed``.

    ByT5's byte-level tokenizer needs no vocabulary file, so any language tokenizes offline.
    """
    family_rule(family)
    pipe: Pipeline = families.module_of(family).tiny(seed)
    _eval_mode(pipe)
    pipe.set_progress_bar_config(disable=True)
    return pipe.to("cpu")


def _torch_dtype(dtype: str) -> torch.dtype:
    """Map a settings/catalog string (bf16, float16, ...) to a torch dtype, rejecting typos early."""
    return _DTYPES[canonical_dtype(dtype)]


def _check_attention_backend(name: str) -> str:
    """Only backends that run from installed packages: a `*_hub` backend would download kernels."""
    from diffusers.models.attention_dispatch import AttentionBackendName

    backend = name.strip().lower()
    local = sorted(b.value for b in AttentionBackendName if not b.value.endswith("_hub"))
    if backend not in local:
        raise ValueError(f"attention backend {name!r} is not available offline; use one of {', '.join(local)}")
    return backend


def load_pipeline(
    family: str,
    weights_dir: str | None,
    *,
    device: str = "cpu",
    dtype: str = "float32",
    offload: str = "",
    vae_tiling: bool = False,
    vae_slicing: bool = False,
    attention_backend: str = "",
    compile: bool = False,
) -> Pipeline:
    """The pipeline a worker renders with: real weights from ``weights_dir``, else the tiny model.

    The tiny model is always float32 (half precision is slow or unsupported on CPU). ``offload``
    ("model" or "sequential") needs an accelerator, so it is ignored when ``device`` is "cpu".
    ``compile`` wraps the transformer's repeated blocks in torch.compile (regional compilation:
    the first call of each shape compiles, the rest run the compiled code).
    """
    family_rule(family)
    torch_dtype = _torch_dtype(dtype)
    if offload not in OFFLOAD_MODES:
        raise ValueError(f"offload must be one of {OFFLOAD_MODES}, got {offload!r}")
    backend = _check_attention_backend(attention_backend) if attention_backend else ""
    if weights_dir is None:
        pipe = build_tiny_pipeline(family)
    else:
        pipe = families.module_of(family).from_pretrained(weights_dir, torch_dtype)
        _eval_mode(pipe)
        pipe.set_progress_bar_config(disable=True)
    if backend:
        pipe.transformer.set_attention_backend(backend)
    if offload == "model" and device != "cpu":
        pipe.enable_model_cpu_offload(device=device)
    elif offload == "sequential" and device != "cpu":
        pipe.enable_sequential_cpu_offload(device=device)
    else:
        pipe = pipe.to(device)
    if vae_tiling:
        pipe.vae.enable_tiling()
    if vae_slicing:
        pipe.vae.enable_slicing()
    if compile:
        # Not fullgraph: a speed profile's cache hooks make a Python decision inside the first block.
        pipe.transformer.compile_repeated_blocks(fullgraph=False)
    return pipe


def is_out_of_memory(exc: BaseException) -> bool:
    """True for an accelerator out-of-memory error (CUDA, MPS, XPU all raise torch.OutOfMemoryError)."""
    return isinstance(exc, torch.OutOfMemoryError)


def release_memory() -> None:
    """Return cached accelerator memory after a failed render, so the next task starts clean."""
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def device_available(device: str) -> bool:
    """Whether this host can render on ``device`` ("cpu", "cuda", "cuda:1", "mps"...)."""
    try:
        torch.empty(0, device=device)
    except (RuntimeError, AssertionError):
        return False
    return True


def set_cpu_threads(device: str, threads: int, dev_models: bool) -> int:
    """Set the intra-op threads for renders on the CPU; returns the number in force.

    The number is SORAPI_RENDER_CPU_THREADS; 0: one for the tiny dev models, torch's default for real weights.
    """
    if device == "cpu" and (threads or dev_models):
        torch.set_num_threads(threads or 1)
    return torch.get_num_threads()


# ---------------------------------------------------------------------------------------------
# Execution
# ---------------------------------------------------------------------------------------------


def _constraints(pipe: Pipeline) -> tuple[str, int, int]:
    """(family, size multiple, frame step) of this pipeline.

    The family rule is a floor; a checkpoint with a coarser VAE (e.g. Wan 2.2 TI2V-5B, 16x
    spatial) raises it, so the pipeline never silently resizes the request.
    """
    family = families.family_of(pipe)
    rule = FAMILIES[family]
    spatial, temporal = families.module_of(family).compression(pipe)
    return family, math.lcm(rule.size_multiple, spatial), math.lcm(rule.frame_step, temporal)


def _validate(
    pipe: Pipeline,
    *,
    prompt: str,
    width: int,
    height: int,
    num_frames: int,
    guidance_scale: float,
    num_inference_steps: int,
    seed: int,
) -> None:
    """Reject requests the pipeline would silently round, crop or crash on."""
    family, multiple, step = _constraints(pipe)
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError("prompt must be a non-empty string")
    for name, value in (("width", width), ("height", height)):
        if value <= 0 or value % multiple:
            raise ValueError(f"{name} must be a positive multiple of {multiple} for {family}, got {value}")
    if num_frames < step + 1 or (num_frames - 1) % step:
        raise ValueError(f"num_frames must be of the form {step}k+1 (k >= 1) for {family}, got {num_frames}")
    if num_inference_steps < 1:
        raise ValueError(f"num_inference_steps must be >= 1, got {num_inference_steps}")
    if not math.isfinite(guidance_scale) or guidance_scale < 0:
        raise ValueError(f"guidance_scale must be a finite number >= 0, got {guidance_scale}")
    if not 0 <= seed <= _MAX_SEED:
        raise ValueError(f"seed must be in [0, 2**64 - 1], got {seed}")


class _StopRequested(Exception):
    """Internal: raised inside the step callback to leave the denoising loop at once."""


def _step_callback(on_step: StepCallback | None, requested_steps: int) -> Callable[..., dict[str, Any]] | None:
    """Adapt ``on_step(i, total)`` to diffusers' ``callback_on_step_end``.

    On a stop request we raise instead of only setting ``_interrupt``: diffusers would otherwise
    skip the remaining steps but still run the (expensive) VAE decode of a discarded video.
    """
    if on_step is None:
        return None

    def callback(pipe: Pipeline, i: int, _t: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
        total = getattr(pipe, "_num_timesteps", None) or requested_steps
        if on_step(i + 1, total):
            pipe._interrupt = True
            raise _StopRequested(f"stopped after step {i + 1}/{total}")
        return kwargs

    return callback


def _pipeline_lock(pipe: Pipeline) -> threading.Lock:
    """The lock serialising calls on ``pipe`` (created on first use)."""
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(pipe, threading.Lock())


def _to_uint8(video: Any) -> np.ndarray:
    """(1, F, H, W, 3) floats in [0, 1] -> contiguous (F, H, W, 3) uint8, rounded like diffusers."""
    frames = np.asarray(video[0], dtype=np.float32)
    return np.ascontiguousarray(np.clip(np.round(frames * 255.0), 0, 255).astype(np.uint8))


class Clip(NamedTuple):
    """A render's output: uint8 frames (F, H, W, 3), and the soundtrack of a family that makes one."""

    frames: np.ndarray
    soundtrack: Soundtrack | None = None


def run_pipeline(pipe: Pipeline, **kwargs: Any) -> np.ndarray:
    """`render_clip`'s frames alone: the video of any family, without its soundtrack."""
    return render_clip(pipe, **kwargs).frames


def render_clip(
    pipe: Pipeline,
    *,
    prompt: str,
    negative_prompt: str | None,
    width: int,
    height: int,
    num_frames: int,
    guidance_scale: float,
    num_inference_steps: int,
    seed: int,
    on_step: StepCallback | None = None,
    fps: int | None = None,
    speed: RenderSpeed | None = None,
    image: Image.Image | None = None,
    last_frame: Image.Image | None = None,
    frame_conditions: bool = False,
    video: list[Image.Image] | None = None,
) -> Clip:
    """Render one video: uint8 frames of shape (F, H, W, 3), with LTX-2's soundtrack (the same length).

    The noise comes from a CPU generator so a seed reproduces the same video on any device.
    ``on_step(step, total)`` runs after every denoising step (1-based); returning True stops
    the render and raises RenderInterrupted. ``fps`` conditions LTX-Video's motion (its
    ``frame_rate``, default 25) and times LTX-2's audio; Wan has no such input. ``speed`` applies a
    profile's transformer cache and compilation to this call only (``activities.speed``). ``image``
    (and ``last_frame``), already fitted to the size, make it image-to-video (``activities.conditioning``);
    ``video``, frames at the size, conditions it from frame 0 (an extension: ``activities.stitching``).
    """
    _validate(
        pipe,
        prompt=prompt,
        width=width,
        height=height,
        num_frames=num_frames,
        guidance_scale=guidance_scale,
        num_inference_steps=num_inference_steps,
        seed=seed,
    )
    generator = torch.Generator(device="cpu").manual_seed(seed)
    family = families.module_of(families.family_of(pipe))
    extra = family.call_kwargs(pipe, fps)
    caller, conditions = conditioned(
        pipe,
        image=image,
        last_frame=last_frame,
        frame_conditions=frame_conditions,
        num_frames=num_frames,
        video=video,
    )
    with _pipeline_lock(pipe), speed_profile(pipe, speed):  # the profile's cache lasts this call only
        try:
            result = caller(
                **extra,
                **conditions,
                prompt=prompt,
                negative_prompt=negative_prompt,
                width=width,
                height=height,
                num_frames=num_frames,
                guidance_scale=guidance_scale,
                num_inference_steps=num_inference_steps,
                generator=generator,
                output_type="np",
                callback_on_step_end=_step_callback(on_step, num_inference_steps),
            )
        except _StopRequested as stop:
            caller.maybe_free_model_hooks()
            raise RenderInterrupted(str(stop)) from None
    if getattr(caller, "_interrupt", False):
        raise RenderInterrupted("render interrupted")
    return Clip(_to_uint8(result.frames), family.soundtrack(pipe, result))


def reset_peak_memory(device: str) -> None:
    """Start counting a render's peak accelerator memory afresh (CUDA only)."""
    if device.startswith("cuda") and torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats(device)


def peak_gpu_memory(device: str) -> int | None:
    """Bytes of the peak allocation since `reset_peak_memory` on a CUDA device; None elsewhere."""
    if not device.startswith("cuda") or not torch.cuda.is_available():
        return None
    return int(torch.cuda.max_memory_allocated(device))
