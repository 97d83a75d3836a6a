"""Extend a clip on the render host.

Read the source's frames, condition the new segment on its last ones, and stitch source and extension into the one clip
that is encoded.

The new segment is rendered by ``LTXConditionPipeline`` with an ``LTXVideoCondition`` holding the
source's last `overlap` frames at frame index 0 (`activities.conditioning`), so it starts where the source
ends and moves on from there. Those first `overlap` frames of the render re-create the source's own; they
are dropped, and the clip is the source's frames followed by the rest. `overlap` is one temporal step of
the family's VAE plus one frame (LTX: 9 frames, two latent frames), the least that carries motion.
"""

from __future__ import annotations

import io

import av
import numpy as np
from minio import Minio
from PIL import Image

from sorapi.adapters import storage
from sorapi.domain.families import family_rule
from sorapi.domain.image_input import fit


def overlap(family: str) -> int:
    """How many of the source's last frames condition the extension (and are rendered again, then dropped)."""
    return family_rule(family).frame_step + 1


def read_source(s3: Minio, bucket: str, key: str, width: int, height: int) -> np.ndarray:
    """The source video's frames as uint8 (F, H, W, 3) at `width`×`height`.

    Fitted if it was rendered at another size, e.g. by another kind of host.
    """
    with av.open(io.BytesIO(storage.read_object(s3, bucket, key)), mode="r") as container:
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    if not frames:
        raise ValueError("the source video has no frames")
    if frames[0].shape[:2] != (height, width):
        frames = [np.asarray(fit(Image.fromarray(f), width, height)) for f in frames]
    return np.stack(frames)


def conditioning_frames(source: np.ndarray, family: str) -> list[Image.Image]:
    """The source's last frames that the extension is conditioned on."""
    return [Image.fromarray(frame) for frame in source[-overlap(family) :]]


def frames_to_render(added_frames: int, family: str) -> int:
    """Frames of the conditioned render for `added_frames`: the overlap and the new ones.

    `added_frames` is a family-valid count (k×step+1); the result is itself a valid count (LTX: 9 + 8k).
    """
    return added_frames + overlap(family) - 1


def stitch(source: np.ndarray, rendered: np.ndarray, family: str) -> np.ndarray:
    """Source frames, then the render's new ones (its first `overlap` re-create the source's last)."""
    if rendered.shape[1:] != source.shape[1:]:
        raise ValueError(f"the extension rendered {rendered.shape[1:]} frames for a {source.shape[1:]} source")
    return np.concatenate([source, rendered[overlap(family) :]])
