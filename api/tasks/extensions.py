"""Extending a clip at create time: find the source, check it can be continued, copy its video.

The source is read before the create's transaction (404 for another tenant's task, 409 when it has no
video yet or any more, 422 for what it decides); its MP4 is copied under the new task's prefix after the
transaction commits and before the workflow starts (an S3 server-side copy: no bytes pass through the
API), so a refused create leaves no object behind and a started render always finds its source.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from dataclasses import dataclass

import msgspec
import structlog
from minio.commonconfig import CopySource
from minio.error import S3Error

from sorapi.api.state import Resources
from sorapi.contracts import errors
from sorapi.contracts.schemas import GenerateRequest, TaskRequest
from sorapi.domain import conditioning, extension
from sorapi.store.models import Task

log = structlog.get_logger()


@dataclass(frozen=True)
class Source:
    """A succeeded task an extension continues: its id, its recorded request and its MP4's key."""

    task_id: str
    request: TaskRequest
    video_key: str


def continued(
    res: Resources, req: GenerateRequest, task: Task, uploads: Collection[str]
) -> tuple[Source, GenerateRequest]:
    """The source `task` (the caller's, already read) and the request as it renders.

    409 when the source has no video to continue, 422 naming the field for what the source decides (or an image, sent as
    a URL or an upload in `uploads`).
    """
    problem = extension.source_state_problem(task.status)
    if problem is not None:
        code, message = problem
        raise errors.Conflict(message, code=code)
    request = msgspec.convert(task.request, TaskRequest)
    image_fields = conditioning.sent_fields(req, uploads).values()
    continuing = extension.continuation(req, request, res.catalog, image_fields)
    if isinstance(continuing, list):
        raise errors.ValidationFailed("the request is invalid", details=[msgspec.to_builtins(d) for d in continuing])
    video = next((o["key"] for o in task.outputs if o["format"] == "mp4"), None)
    if video is None:
        raise errors.Conflict("the source task has no MP4 to continue", code=errors.SOURCE_EXPIRED)
    return Source(task_id=task.id, request=request, video_key=video), continuing


async def store_source(res: Resources, task_id: str, source: Source) -> None:
    """Copy the source's MP4 under the extension's prefix.

    Gone meanwhile (deleted, expired): 409 `source_expired`; the store unreachable: 503, and the client retries with its
    idempotency key.
    """
    bucket = res.settings.s3_bucket
    try:
        await asyncio.to_thread(
            res.s3.copy_object, bucket, extension.source_key(task_id), CopySource(bucket, source.video_key)
        )
    except S3Error as exc:
        if exc.code in ("NoSuchKey", "NoSuchObject"):
            raise errors.Conflict(
                "the source task's video was deleted while this extension was created", code=errors.SOURCE_EXPIRED
            ) from exc
        raise _unavailable(task_id, exc) from exc
    except Exception as exc:
        raise _unavailable(task_id, exc) from exc


def _unavailable(task_id: str, exc: Exception) -> errors.ServiceUnavailable:
    log.error("could not copy the source video", task_id=task_id, error=f"{type(exc).__name__}: {exc}")
    return errors.ServiceUnavailable(
        "the object store is unavailable; retry with the same idempotency_key", headers={"Retry-After": "5"}
    )
