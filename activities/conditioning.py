"""Image-to-video on the render host: read a task's input images, fit them, and pick the pipeline.

The images were accepted by the API (`sorapi.domain.image_input`) and stored under the task's S3 prefix;
the host reads them with its own S3 user (GET on `tasks/*/inputs/*` only: deploy/minio/), fits each
to the render's size (scale to cover, centre crop) and conditions the render on them:

- a first frame alone: ``LTXImageToVideoPipeline`` (LTX-Video 0.9.1's image-to-video);
- a model with `last_frame_conditioning`: ``LTXConditionPipeline``, an ``LTXVideoCondition`` at frame 0
  and, with a last frame, one at the last frame index (LTX-Video 0.9.5 and later);
- an extension: ``LTXConditionPipeline`` with the source's last frames as a video condition at frame 0.

Both are built from the warm text-to-video pipeline's own components (no second copy of the weights),
once per pipeline object.

The tiny dev model (a pipeline built in code, no weights) has a random VAE, and a random VAE turns any
image into noise: decode(encode(image)) does not resemble it, so no conditioning could be seen. Its
image-to-video variants therefore decode with a calibrated copy of that VAE: fitted once per worker
(`CALIBRATION_STEPS` Adam steps on seeded random smooth images, a few seconds on one CPU thread,
deterministic) to reconstruct what it encodes. Text-to-video keeps the random VAE; real weights are
never touched.
"""

from __future__ import annotations

import copy
import threading
import weakref
from typing import Any

import torch
from diffusers import LTXConditionPipeline, LTXImageToVideoPipeline, LTXPipeline
from diffusers.pipelines.ltx.pipeline_ltx_condition import LTXVideoCondition
from minio import Minio
from PIL import Image

from sorapi.adapters import storage
from sorapi.domain.image_input import fit, open_rgb

_VARIANTS: weakref.WeakKeyDictionary[Any, dict[type | str, Any]] = weakref.WeakKeyDictionary()
_GUARD = threading.Lock()


def read_image(s3: Minio, bucket: str, key: str, width: int, height: int) -> Image.Image:
    """The stored input image `key`, fitted to `width`×`height`."""
    return fit(open_rgb(storage.read_object(s3, bucket, key)), width, height)


CALIBRATION_STEPS = 200
"""Adam steps that fit the dev model's VAE copy to reconstruct (about 5 s on one CPU thread)."""


def _calibrated_vae(vae: Any) -> Any:
    """A copy of a tiny random VAE, fitted to reconstruct seeded random smooth 64x64 images."""
    fitted = copy.deepcopy(vae)
    generator = torch.Generator().manual_seed(0)
    samples = [
        torch.nn.functional.interpolate(
            torch.rand(4, 3, 1, 4, 4, generator=generator) * 2 - 1, size=(1, 64, 64), mode="trilinear"
        )
        for _ in range(4)
    ]
    parameters = list(fitted.parameters())
    optimizer = torch.optim.Adam(parameters, lr=0.01)
    with torch.enable_grad():
        for p in parameters:
            p.requires_grad_(True)
        for step in range(CALIBRATION_STEPS):
            sample = samples[step % len(samples)]
            rebuilt = fitted.decode(fitted.encode(sample).latent_dist.mode()).sample
            loss = torch.nn.functional.mse_loss(rebuilt, sample)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    for p in parameters:
        p.requires_grad_(False)
    return fitted.eval()


def _is_dev_model(pipe: Any) -> bool:
    """A pipeline built in code (the tiny dev model) has no weights directory."""
    return not getattr(pipe, "name_or_path", None)


def _variant(pipe: Any, cls: type) -> Any:
    """`cls` built from `pipe`'s components (shared modules), made once per pipeline object."""
    with _GUARD:
        made = _VARIANTS.setdefault(pipe, {})
        if cls not in made:
            components = dict(pipe.components)
            if _is_dev_model(pipe):
                if "vae" not in made:
                    made["vae"] = _calibrated_vae(pipe.vae)
                components["vae"] = made["vae"]
            variant = cls(**components)
            variant.set_progress_bar_config(disable=True)
            made[cls] = variant
        return made[cls]


def conditioned(
    pipe: Any,
    *,
    image: Image.Image | None,
    last_frame: Image.Image | None,
    frame_conditions: bool,
    num_frames: int,
    video: list[Image.Image] | None = None,
) -> tuple[Any, dict[str, Any]]:
    """(the pipeline to call, the conditioning arguments of the call); `pipe` itself for text-to-video.

    `video`: an extension's source frames, a condition from frame 0 (`activities.stitching`).
    """
    if video is not None:
        if not isinstance(pipe, LTXPipeline) or not frame_conditions:
            raise ValueError(f"{type(pipe).__name__} cannot extend a clip: it needs LTX-Video frame conditioning")
        return _variant(pipe, LTXConditionPipeline), {"conditions": [LTXVideoCondition(video=video, frame_index=0)]}
    if image is None:
        if last_frame is not None:
            raise ValueError("a last frame needs a first frame")
        return pipe, {}
    if not isinstance(pipe, LTXPipeline):
        raise ValueError(f"{type(pipe).__name__} takes no image: image-to-video needs an LTX-Video model")
    if not frame_conditions:
        if last_frame is not None:
            raise ValueError("a last frame needs a model with frame conditioning (last_frame_conditioning)")
        return _variant(pipe, LTXImageToVideoPipeline), {"image": image}
    conditions = [LTXVideoCondition(image=image, frame_index=0)]
    if last_frame is not None:
        conditions.append(LTXVideoCondition(image=last_frame, frame_index=num_frames - 1))
    return _variant(pipe, LTXConditionPipeline), {"conditions": conditions}
