"""Conditioning images at create time: fetched or uploaded, accepted, then stored with the task.

Fetching happens before the create's transaction (no row lock across the network); storing happens
after it commits and before the workflow starts, so a refused create (422, 402) leaves no object
behind and a started render always finds its images.
"""

from __future__ import annotations

import asyncio
import io
from dataclasses import dataclass

import structlog

from sorapi.adapters import image_fetch
from sorapi.api.state import Resources
from sorapi.contracts import errors
from sorapi.contracts.schemas import GenerateRequest
from sorapi.domain import conditioning, image_input
from sorapi.domain.conditioning import Conditioning
from sorapi.domain.image_input import FIRST_FRAME, LAST_FRAME

log = structlog.get_logger()


@dataclass(frozen=True)
class Uploads:
    """Image files sent as multipart parts, by part name (`image`, `last_frame`)."""

    files: dict[str, bytes]

    def names(self) -> set[str]:
        return set(self.files)


NO_UPLOADS = Uploads(files={})


def _refused(field: str, message: str) -> errors.ValidationFailed:
    return errors.ValidationFailed("the request is invalid", details=[{"field": field, "message": message}])


async def _one(
    res: Resources, req: GenerateRequest, uploads: Uploads, role: str
) -> tuple[image_input.InputImage | None, str | None]:
    url_field, part = conditioning.SOURCES[role]
    url: str | None = getattr(req, url_field)
    if part in uploads.files:
        field, data = part, uploads.files[part]
    elif url is not None:
        field = url_field
        try:
            data = await image_fetch.fetch_image(
                url, allow_http=res.settings.webhook_allow_http, ports=res.settings.callback_ports
            )
        except image_fetch.FetchFailed as exc:
            raise _refused(field, str(exc)) from None
    else:
        return None, None
    try:
        accepted = await asyncio.to_thread(image_input.accept, data)  # decoding is CPU work: off the event loop
    except image_input.ImageRejected as exc:
        raise _refused(field, str(exc)) from None
    return accepted, url if field == url_field else None


async def gather(res: Resources, req: GenerateRequest, uploads: Uploads) -> Conditioning:
    """The request's accepted images; a 422 naming the field of the first one that is refused."""
    first, first_url = await _one(res, req, uploads, FIRST_FRAME)
    last, last_url = await _one(res, req, uploads, LAST_FRAME)
    return Conditioning(first=first, first_url=first_url, last=last, last_url=last_url)


def _put_all(res: Resources, task_id: str, images: Conditioning) -> None:
    for key, image in conditioning.stored_objects(task_id, images):
        res.s3.put_object(
            res.settings.s3_bucket, key, io.BytesIO(image.data), len(image.data), content_type=image.content_type
        )


async def store(res: Resources, task_id: str, images: Conditioning) -> None:
    """Put the images under the task's prefix (a repeat writes the same bytes: the fingerprint holds their hashes).

    A store that fails is a 503: the client retries with its idempotency key.
    """
    try:
        await asyncio.to_thread(_put_all, res, task_id, images)
    except Exception as exc:
        log.error("could not store the input images", task_id=task_id, error=f"{type(exc).__name__}: {exc}")
        raise errors.ServiceUnavailable(
            "the object store is unavailable; retry with the same idempotency_key", headers={"Retry-After": "5"}
        ) from exc
