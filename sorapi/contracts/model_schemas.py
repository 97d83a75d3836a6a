"""Wire shapes of `GET /api/models`: the catalog's models as clients choose among them."""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

from sorapi.domain.catalog import Catalog
from sorapi.domain.speed import SPEEDS


class ModelInfo(msgspec.Struct, kw_only=True):
    """One model a request may name in `model_version`, and what it takes."""

    name: Annotated[str, Meta(description="The canonical `model_version`", examples=["ltx-video-0.9"])]
    aliases: Annotated[list[str], Meta(description="Other names accepted for it")]
    family: Annotated[str, Meta(description="The diffusers pipeline family that renders it", examples=["ltx"])]
    fps: Annotated[int, Meta(description="Native frame rate", examples=[24])]
    max_duration_s: Annotated[int, Meta(description="Longest clip, in seconds", examples=[20])]
    max_frames: Annotated[int, Meta(description="Longest clip, in frames (0: only max_duration_s limits it)")]
    resolutions: Annotated[list[str], Meta(description="Presets it renders (WIDTHxHEIGHT); empty: every preset")]
    credit_multiplier: Annotated[float, Meta(description="Factor on the per-second price", examples=[1.0])]
    image_conditioning: Annotated[
        bool,
        Meta(
            description="Takes a first-frame image: `image_url` / `image` (/api/generate), "
            "`input_reference` (/v1/videos)"
        ),
    ]
    last_frame_conditioning: Annotated[
        bool, Meta(description="Also takes a last-frame image: `last_frame_url` / `last_frame` (/api/generate)")
    ]
    audio: Annotated[bool, Meta(description="Renders a soundtrack: takes `audio: true` (/api/generate)")] = False
    max_extended_duration_s: Annotated[
        int,
        Meta(
            description="Longest whole clip an extension of its videos may make, source plus added seconds "
            "(`extend_from`, POST /v1/videos/extensions); 0: its videos cannot be extended"
        ),
    ] = 0
    audio_default: Annotated[bool, Meta(description="A request without `audio` gets the soundtrack")] = False
    default_speed: Annotated[
        str, Meta(description="The speed profile of a request without `speed`", examples=["quality"])
    ] = "quality"
    steps: Annotated[
        dict[str, int],
        Meta(description="Denoising steps per speed profile", examples=[{"quality": 30, "balanced": 23, "fast": 15}]),
    ] = {}


class ModelList(msgspec.Struct, kw_only=True):
    data: list[ModelInfo]


def model_list(catalog: Catalog) -> ModelList:
    """Every model of the catalog, in its order."""
    return ModelList(
        data=[
            ModelInfo(
                name=name,
                aliases=list(spec.aliases),
                family=spec.family,
                fps=spec.fps,
                max_duration_s=spec.max_duration_s,
                max_frames=spec.max_frames,
                resolutions=list(spec.resolutions),
                credit_multiplier=spec.credit_multiplier,
                image_conditioning=spec.image_conditioning or spec.last_frame_conditioning,
                last_frame_conditioning=spec.last_frame_conditioning,
                audio=spec.audio,
                max_extended_duration_s=spec.max_extended_duration_s,
                audio_default=spec.audio_default,
                default_speed=spec.default_speed,
                steps={speed: catalog.steps(name, speed) for speed in SPEEDS},
            )
            for name, spec in catalog.models.items()
        ]
    )
