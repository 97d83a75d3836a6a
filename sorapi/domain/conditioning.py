"""Image-to-video as domain rules.

They say which fields carry images, which models take them, what a task records of them, and what its render is told.

A request's first frame comes from `image_url` or the multipart part `image` (one of them), its last
frame from `last_frame_url` or `last_frame`. A model takes a first frame when the catalog says
`image_conditioning`, a last frame too when it says `last_frame_conditioning`. The files are stored
under the task's S3 prefix (`tasks/<id>/inputs/first_frame.<ext>`), so they live and die with its
outputs (expiry, `DELETE`, and `discard_outputs` when it fails or is cancelled).
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection

import msgspec

from sorapi.adapters import storage
from sorapi.contracts.schemas import ErrorDetail, GenerateRequest, InputImageInfo, TaskRequest
from sorapi.domain.catalog import Catalog
from sorapi.domain.image_input import FIRST_FRAME, FORMATS, LAST_FRAME, InputImage, object_name

SOURCES = {FIRST_FRAME: ("image_url", "image"), LAST_FRAME: ("last_frame_url", "last_frame")}
"""Role → (its URL field, its upload part)."""
_EXTENSIONS = {content_type: extension for content_type, extension in FORMATS.values()}


class Conditioning(msgspec.Struct, frozen=True, kw_only=True):
    """The accepted images of one request, by role, with the field each came from."""

    first: InputImage | None = None
    first_url: str | None = None
    last: InputImage | None = None
    last_url: str | None = None

    def __bool__(self) -> bool:
        return self.first is not None or self.last is not None


def sent_fields(req: GenerateRequest, uploads: Collection[str]) -> dict[str, str]:
    """Role → the field that carries it in this request (its URL field or its upload part)."""
    sent = {}
    for role, (url_field, part) in SOURCES.items():
        if part in uploads:
            sent[role] = part
        elif getattr(req, url_field) is not None:
            sent[role] = url_field
    return sent


def problems(req: GenerateRequest, catalog: Catalog, uploads: Collection[str]) -> list[ErrorDetail]:
    """Field-level problems of the image fields.

    Both forms of one image, a last frame without a first, a model that takes no image (or no last frame). The model's
    own problems are `plan`'s.
    """
    found: list[ErrorDetail] = []
    for _role, (url_field, part) in SOURCES.items():
        if part in uploads and getattr(req, url_field) is not None:
            found.append(ErrorDetail(field=part, message=f"send either {url_field} or the file part {part}, not both"))
    sent = sent_fields(req, uploads)
    if LAST_FRAME in sent and FIRST_FRAME not in sent:
        found.append(
            ErrorDetail(field=sent[LAST_FRAME], message="a last frame needs a first frame (image_url or image)")
        )
    name = catalog.canonical_model(req.model_version)
    if name is None or not sent:
        return found
    model = catalog.models[name]
    takers = [key for key, spec in catalog.models.items() if spec.image_conditioning]
    if FIRST_FRAME in sent and not model.image_conditioning:
        found.append(
            ErrorDetail(
                field=sent[FIRST_FRAME],
                message=f"{name} takes no image; models with image conditioning: {', '.join(takers) or 'none'}",
            )
        )
    if LAST_FRAME in sent and not model.last_frame_conditioning:
        last_takers = [key for key, spec in catalog.models.items() if spec.last_frame_conditioning]
        found.append(
            ErrorDetail(
                field=sent[LAST_FRAME],
                message=f"{name} takes no last frame; models that do: {', '.join(last_takers) or 'none'}",
            )
        )
    return found


def batch_problems(req: GenerateRequest) -> list[ErrorDetail]:
    """Images are fetched and stored by the single create only: a batch item with one is refused."""
    return [
        ErrorDetail(field=field, message="image-to-video is not available in batches; use POST /api/generate")
        for field in ("image_url", "last_frame_url")
        if getattr(req, field) is not None
    ]


def _info(image: InputImage, url: str | None) -> InputImageInfo:
    return InputImageInfo(
        sha256=image.sha256, content_type=image.content_type, width=image.width, height=image.height, url=url
    )


def recorded(request: TaskRequest, images: Conditioning) -> TaskRequest:
    """The task's request with what it records of its images (never the bytes)."""
    if not images:
        return request
    return msgspec.structs.replace(
        request,
        image=_info(images.first, images.first_url) if images.first else None,
        last_frame=_info(images.last, images.last_url) if images.last else None,
    )


def fingerprint(digest: str, images: Conditioning) -> str:
    """The request's fingerprint with each image's SHA-256.

    The same key with another image is `idempotency_key_reused`, even when it came from the same URL.
    """
    if not images:
        return digest
    roles = ((FIRST_FRAME, images.first), (LAST_FRAME, images.last))
    parts = [f"{role}:{image.sha256}" for role, image in roles if image is not None]
    return hashlib.sha256(f"{digest}|{'|'.join(parts)}".encode()).hexdigest()


def object_key(task_id: str, role: str, content_type: str) -> str:
    """Where an input image of the task is stored (inside the task's prefix: it goes where its outputs go)."""
    return storage.object_key(task_id, object_name(role, _EXTENSIONS[content_type]))


def stored_objects(task_id: str, images: Conditioning) -> list[tuple[str, InputImage]]:
    """(S3 key, image) of each image to store."""
    return [
        (object_key(task_id, role, image.content_type), image)
        for role, image in ((FIRST_FRAME, images.first), (LAST_FRAME, images.last))
        if image is not None
    ]


def render_fields(task_id: str, request: TaskRequest, catalog: Catalog) -> dict[str, object]:
    """The RenderSpec fields of a recorded request's images (none for text-to-video)."""
    if request.image is None:
        return {}
    return {
        "image_key": object_key(task_id, FIRST_FRAME, request.image.content_type),
        "last_frame_key": object_key(task_id, LAST_FRAME, request.last_frame.content_type)
        if request.last_frame
        else "",
        "frame_conditions": catalog.models[request.model_version].last_frame_conditioning,
    }
