"""Wire shapes of the OpenAI-compatible `/v1/videos` surface, matching the `openai` SDK's `Video` types."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from sorapi.contracts.schemas import MAX_DURATION_S, NO_NUL, PROMPT_PATTERN, ClientMetadata, ImageUrl, Size
from sorapi.domain.resolutions import RESOLUTION_VALUES
from sorapi.domain.speed import SPEEDS

SECONDS_PATTERN = "^(?:" + "|".join(str(n) for n in range(MAX_DURATION_S, 0, -1)) + ")$"
"""`seconds` as text: a whole number of seconds from 1 to 20, digits only (the handler matches it whole)."""
Seconds = Annotated[str, Meta(pattern=SECONDS_PATTERN)] | Annotated[int, Meta(ge=1, le=MAX_DURATION_S)]


PROMPT_LIMITS: dict[str, Any] = {"min_length": 1, "max_length": 5000, "pattern": PROMPT_PATTERN}
"""A prompt's constraints, on every body that takes one (not only whitespace, no NUL)."""


class VideoError(msgspec.Struct, kw_only=True):
    code: Annotated[str, Meta(description="Stable machine-readable code (render_failed, timeout, cancelled...)")]
    message: Annotated[str, Meta(description="What went wrong, for humans")]


class Video(msgspec.Struct, kw_only=True):
    """A video job, as OpenAI's `Video` object."""

    id: Annotated[
        str,
        Meta(
            description="The task id (same as /api/status task_id)", examples=["sora2aeeccc8d1274d569475872baf49a4d6"]
        ),
    ]
    object: Annotated[Literal["video"], Meta(description="Always `video`")] = "video"
    created_at: Annotated[int, Meta(description="Unix seconds when the job was created")]
    completed_at: Annotated[int | None, Meta(description="Unix seconds when it finished, if it did")] = None
    expires_at: Annotated[int | None, Meta(description="Unix seconds when the assets are deleted, once known")] = None
    error: Annotated[VideoError | None, Meta(description="Why generation failed, if it did")] = None
    model: Annotated[str, Meta(description="Model that renders the job", examples=["sora-2-latest"])]
    progress: Annotated[int, Meta(ge=0, le=100, description="Approximate completion percentage")]
    prompt: Annotated[str | None, Meta(description="The prompt that was used")] = None
    remixed_from_video_id: Annotated[str | None, Meta(description="Source video of a remix")] = None
    extended_from_video_id: Annotated[
        str | None, Meta(description="SorAPI extension: the video an extension continues")
    ] = None
    seconds: Annotated[
        str,
        Meta(description="Clip duration in seconds (an extension's: the whole clip, source included)", examples=["8"]),
    ]
    size: Annotated[Size, Meta(description="Resolution as WIDTHxHEIGHT", examples=["720x1280"])]
    status: Annotated[
        Literal["queued", "in_progress", "completed", "failed"],
        Meta(description="queued, in_progress, completed or failed (cancelled tasks are failed with code cancelled)"),
    ]
    eta_seconds: Annotated[
        int | None,
        Meta(
            description="SorAPI extension: estimated seconds until the job finishes while queued or in progress; "
            "null when unknown or finished"
        ),
    ] = None
    metadata: Annotated[dict[str, str], Meta(description="SorAPI extension: the `metadata` sent at creation")] = {}


class VideoList(msgspec.Struct, kw_only=True):
    object: Annotated[Literal["list"], Meta(description="Always `list`")] = "list"
    data: Annotated[list[Video], Meta(description="Videos in the requested order")]
    first_id: Annotated[str | None, Meta(description="Id of the first video of this page")] = None
    last_id: Annotated[str | None, Meta(description="Id of the last video: pass it as `after` for the next page")] = (
        None
    )
    has_more: Annotated[bool, Meta(description="More videos follow")] = False


class VideoDeleted(msgspec.Struct, kw_only=True):
    id: Annotated[str, Meta(description="The deleted video's id")]
    object: Annotated[Literal["video.deleted"], Meta(description="Always `video.deleted`")] = "video.deleted"
    deleted: Annotated[bool, Meta(description="The assets are gone (a finished task's record stays, `expired`)")] = True


class ImageReference(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """`input_reference` as a reference object (OpenAI's `ImageInputReferenceParam`); `file_id` is not supported."""

    image_url: ImageUrl


class CreateVideo(msgspec.Struct, kw_only=True):
    """Body of `POST /v1/videos`, as JSON or multipart/form-data (what the `openai` SDK sends).

    `input_reference` (image-to-video) is the first frame: a file part, or `{"image_url": ...}`
    (as form fields: `input_reference[image_url]`).
    """

    prompt: Annotated[
        str,
        Meta(
            **PROMPT_LIMITS,
            description="Text prompt that describes the video (not only whitespace)",
            examples=["A calico cat playing a piano on stage"],
        ),
    ]
    model: Annotated[
        str,
        Meta(
            description="sora-2 (default) or any SorAPI model_version; the model bounds "
            "`seconds` and `size` (see the schema's conditions)",
            examples=["sora-2"],
        ),
    ] = "sora-2"
    seconds: Annotated[
        Seconds,
        Meta(
            description="Clip duration in seconds, 1-20 (default 4), as text (what the SDK sends) or a number",
            examples=["8"],
        ),
    ] = "4"
    size: Annotated[
        str,
        Meta(
            description="WIDTHxHEIGHT preset (default 720x1280); SorAPI also takes its tier names (sd, hd, fhd...)",
            examples=["1280x720"],
            extra_json_schema={"enum": RESOLUTION_VALUES},
        ),
    ] = "720x1280"
    metadata: Annotated[
        ClientMetadata | None,
        Meta(description="SorAPI extension: your labels, as `metadata` of /api/generate (form fields `metadata[KEY]`)"),
    ] = None
    input_reference: Annotated[
        ImageReference | None,
        Meta(
            description="Image-to-video: the first frame. In a multipart body a file part (PNG, JPEG or WEBP, at "
            'most 20 MiB and 4096x4096; what the SDK sends for a file), or `{"image_url": "https://..."}` '
            "(form fields `input_reference[image_url]`). Scaled to cover the output size, then centre-cropped. "
            "Only on models with `image_conditioning` (GET /api/models); `file_id` is not supported."
        ),
    ] = None
    speed: Annotated[
        str | None,
        Meta(
            description="SorAPI extension: speed profile, as `speed` of /api/generate (quality, balanced, fast; "
            "default: the model's)",
            examples=["fast"],
            extra_json_schema={"enum": [*SPEEDS, None]},
        ),
    ] = None


class RemixVideo(msgspec.Struct, kw_only=True):
    prompt: Annotated[
        str,
        Meta(
            **PROMPT_LIMITS,
            description="The new prompt (not only whitespace); the source's seed, size, duration, model and speed "
            "are kept",
        ),
    ]


class VideoReference(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The completed video an extension continues (OpenAI's `VideoReferenceInputParam`)."""

    id: Annotated[
        str,
        Meta(
            min_length=1,
            max_length=64,
            pattern=NO_NUL,
            description="Id of a completed video of this account",
            examples=["sora2aeeccc8d1274d569475872baf49a4d6"],
        ),
    ]


class ExtendVideo(msgspec.Struct, kw_only=True):
    """Body of `POST /v1/videos/extensions`, as JSON or multipart/form-data (the SDK sends `video[id]`)."""

    prompt: Annotated[
        str,
        Meta(
            **PROMPT_LIMITS,
            description="What happens next (not only whitespace)",
            examples=["The camera keeps rising above the skyline"],
        ),
    ]
    seconds: Annotated[
        Seconds,
        Meta(
            description="Seconds to add, as text or a number; the whole clip is limited per model "
            "(`max_extended_duration_s`, GET /api/models)",
            examples=["4"],
        ),
    ]
    video: Annotated[
        VideoReference,
        Meta(
            description='The completed video to extend: `{"id": "..."}` (form field `video[id]`). Its model, size '
            "and seed are kept; uploading a video file is not supported"
        ),
    ]
