"""Wire shapes of the OpenAI-compatible `/v1/videos` surface, matching the `openai` SDK's `Video` types."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta


class VideoError(msgspec.Struct, kw_only=True):
    code: Annotated[str, Meta(description="Stable machine-readable code (render_failed, timeout, cancelled...)")]
    message: Annotated[str, Meta(description="What went wrong, for humans")]


class Video(msgspec.Struct, kw_only=True):
    """A video job, as OpenAI's `Video` object."""

    id: Annotated[str, Meta(description="The task id (same as /api/status task_id)",
                            examples=["sora2aeeccc8d1274d569475872baf49a4d6"])]
    object: Annotated[Literal["video"], Meta(description="Always `video`")] = "video"
    created_at: Annotated[int, Meta(description="Unix seconds when the job was created")]
    completed_at: Annotated[int | None, Meta(description="Unix seconds when it finished, if it did")] = None
    expires_at: Annotated[int | None, Meta(description="Unix seconds when the assets are deleted, once known")] = None
    error: Annotated[VideoError | None, Meta(description="Why generation failed, if it did")] = None
    model: Annotated[str, Meta(description="Model that renders the job", examples=["sora-2-latest"])]
    progress: Annotated[int, Meta(ge=0, le=100, description="Approximate completion percentage")]
    prompt: Annotated[str | None, Meta(description="The prompt that was used")] = None
    remixed_from_video_id: Annotated[str | None, Meta(description="Source video of a remix")] = None
    seconds: Annotated[str, Meta(description="Clip duration in seconds", examples=["8"])]
    size: Annotated[str, Meta(description="Resolution as WIDTHxHEIGHT", examples=["720x1280"])]
    status: Annotated[Literal["queued", "in_progress", "completed", "failed"], Meta(
        description="queued, in_progress, completed or failed (cancelled tasks are failed with code cancelled)")]
    eta_seconds: Annotated[int | None, Meta(
        description="SorAPI extension: estimated seconds until the job finishes while queued or in progress; "
                    "null when unknown or finished")] = None


class VideoList(msgspec.Struct, kw_only=True):
    object: Annotated[Literal["list"], Meta(description="Always `list`")] = "list"
    data: Annotated[list[Video], Meta(description="Videos in the requested order")]
    first_id: Annotated[str | None, Meta(description="Id of the first video of this page")] = None
    last_id: Annotated[str | None, Meta(
        description="Id of the last video: pass it as `after` for the next page")] = None
    has_more: Annotated[bool, Meta(description="More videos follow")] = False


class VideoDeleted(msgspec.Struct, kw_only=True):
    id: Annotated[str, Meta(description="The deleted video's id")]
    object: Annotated[Literal["video.deleted"], Meta(description="Always `video.deleted`")] = "video.deleted"
    deleted: Annotated[bool, Meta(description="The assets are gone (a finished task's record stays, `expired`)")] = True


class CreateVideo(msgspec.Struct, kw_only=True):
    """Body of `POST /v1/videos`, as JSON or multipart/form-data (what the `openai` SDK sends)."""

    prompt: Annotated[str, Meta(min_length=1, max_length=5000, description="Text prompt that describes the video",
                                examples=["A calico cat playing a piano on stage"])]
    model: Annotated[str, Meta(description="sora-2 (default) or any SorAPI model_version",
                               examples=["sora-2"])] = "sora-2"
    seconds: Annotated[str | int, Meta(description="Clip duration in seconds, 1-20 (default 4)",
                                       examples=["8"])] = "4"
    size: Annotated[str, Meta(description="WIDTHxHEIGHT preset (default 720x1280)", examples=["1280x720"])] = "720x1280"
    input_reference: Annotated[Any, Meta(description="Image conditioning: not supported yet (answered with 422 "
                                                     "`unsupported_parameter`)")] = None


class RemixVideo(msgspec.Struct, kw_only=True):
    prompt: Annotated[str, Meta(min_length=1, max_length=5000, description="The new prompt; the source's seed, "
                                "size, duration and model are kept")]
