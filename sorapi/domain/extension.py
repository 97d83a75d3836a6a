"""Extending a clip as domain rules.

They say which models extend, what an extension takes from its source, what it may not ask, what it records and what its
render is told.

An extension (`extend_from` on `/api/generate`, `POST /v1/videos/extensions`) renders `duration` more
seconds conditioned on the last frames of a succeeded task of the same account, with the source's model,
size and seed, and delivers the whole clip. It is priced as the added seconds; the whole clip is limited
by the model's `max_extended_duration_s`. At create, the source's MP4 is copied under the new task's
prefix (`tasks/<id>/inputs/source.mp4`): the render host reads only inputs, and the copy lives and dies
with the task that uses it, whatever happens to the source later.
"""

from __future__ import annotations

from collections.abc import Collection

import msgspec

from sorapi.adapters import storage
from sorapi.contracts import errors, status
from sorapi.contracts.schemas import ErrorDetail, GenerateRequest, TaskRequest
from sorapi.domain.catalog import Catalog
from sorapi.domain.resolutions import ResolutionError, resolve

SOURCE_VIDEO = "inputs/source.mp4"
"""Where an extension keeps its copy of the source's video, inside its own S3 prefix."""
DEFAULT_MODEL = next(f.default for f in msgspec.structs.fields(GenerateRequest) if f.name == "model_version")
"""`model_version` of a request that does not name one: an extension takes its source's model instead."""


def source_key(task_id: str) -> str:
    """The S3 key of the extension `task_id`'s copy of its source video."""
    return storage.object_key(task_id, SOURCE_VIDEO)


def source_state_problem(source_status: str) -> tuple[str, str] | None:
    """(error code, message) when a task in `source_status` has no video to continue; None when it does."""
    if source_status in (status.QUEUED, status.RUNNING):
        return errors.SOURCE_NOT_READY, f"the source task is {source_status}: extend it once it has succeeded"
    if source_status == status.EXPIRED:
        return errors.SOURCE_EXPIRED, "the source task's video was deleted (its retention ended, or DELETE)"
    if source_status != status.SUCCEEDED:
        return errors.SOURCE_FAILED, f"the source task {source_status}: it has no video to continue"
    return None


def whole_duration(request: TaskRequest) -> int:
    """Seconds of a task's whole clip (an extension's includes its source's)."""
    return request.total_duration or request.duration


def continuation(
    req: GenerateRequest, source: TaskRequest, catalog: Catalog, image_fields: Collection[str] = ()
) -> GenerateRequest | list[ErrorDetail]:
    """The request as it renders, or the problems that prevent it.

    The request takes the source's model, size and seed (a sent `seed` wins). The problems are those of asking something
    the source decides, of a model that extends nothing, of a clip too long, of an image (`image_fields`: the image
    fields sent).
    """
    model_name = source.model_version
    model = catalog.models.get(model_name)
    if model is None or not model.max_extended_duration_s:
        extenders = [name for name, spec in catalog.models.items() if spec.max_extended_duration_s]
        message = f"{model_name} videos cannot be extended; models that extend: {', '.join(extenders) or 'none'}"
        return [ErrorDetail(field="extend_from", message=message)]
    found = []
    sent_model = catalog.canonical_model(req.model_version)
    if req.model_version != DEFAULT_MODEL and sent_model != model_name:
        found.append(
            ErrorDetail(field="model_version", message=f"an extension renders with its source's model, {model_name}")
        )
    found += _size_problems(req, source)
    found += [
        ErrorDetail(field=field, message="an extension is conditioned on its source's last frames: it takes no image")
        for field in image_fields
    ]
    whole = whole_duration(source) + req.duration
    if whole > model.max_extended_duration_s:
        room = model.max_extended_duration_s - whole_duration(source)
        found.append(
            ErrorDetail(
                field="duration",
                message=f"{model_name} extends a clip to at most {model.max_extended_duration_s} s in all; "
                f"the source has {whole_duration(source)} s, so at most {max(room, 0)} s can be added",
            )
        )
    if found:
        return found
    return msgspec.structs.replace(
        req,
        model_version=model_name,
        resolution=source.resolution,
        aspect_ratio=None,
        seed=source.seed if req.seed is None else req.seed,
    )


def _size_problems(req: GenerateRequest, source: TaskRequest) -> list[ErrorDetail]:
    """A sent `resolution` / `aspect_ratio` must resolve to the source's size.

    The one not sent is read with the source's orientation and preset.
    """
    if req.resolution is None and req.aspect_ratio is None:
        return []
    field = "resolution" if req.resolution is not None else "aspect_ratio"
    try:
        width, height, _ = resolve(req.resolution or source.resolution, req.aspect_ratio or source.aspect_ratio)
    except ResolutionError as exc:
        return [ErrorDetail(field=exc.field, message=str(exc))]
    if f"{width}x{height}" == source.resolution:
        return []
    return [ErrorDetail(field=field, message=f"an extension keeps its source's size, {source.resolution}")]


def recorded(request: TaskRequest, source_id: str, source: TaskRequest) -> TaskRequest:
    """The extension's request with its lineage and the whole clip's length."""
    return msgspec.structs.replace(
        request, extended_from=source_id, total_duration=whole_duration(source) + request.duration
    )


def render_fields(task_id: str, request: TaskRequest) -> dict[str, object]:
    """The RenderSpec fields of an extension (none for any other task)."""
    if request.extended_from is None:
        return {}
    return {"source_video_key": source_key(task_id)}


def batch_problems(req: GenerateRequest) -> list[ErrorDetail]:
    """The source's video is copied by the single create only: a batch item that extends is refused."""
    if req.extend_from is None:
        return []
    return [ErrorDetail(field="extend_from", message="extensions are not available in batches; use POST /api/generate")]
