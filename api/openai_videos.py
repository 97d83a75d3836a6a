"""OpenAI-compatible `/v1/videos`: `openai.OpenAI(base_url=".../v1", api_key=KEY).videos.*` works unchanged.

Every call maps onto the same task service as `/api/generate` and `/api/status`: a video made
here is a task there and vice versa. Statuses map queued → queued, running → in_progress,
succeeded/expired → completed, failed/cancelled → failed (with `error.code`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import msgspec
from litestar import Controller, Request, Response, delete, get, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Example, OpenAPIMediaType, Operation, RequestBody
from litestar.params import Parameter
from litestar.response import Redirect

from sorapi.api import forms, openapi, query
from sorapi.api.auth import NEEDS_GENERATE, NEEDS_READ, Principal
from sorapi.api.credits import credit_service
from sorapi.api.errors import field_named
from sorapi.api.openapi import error_responses
from sorapi.api.ratelimit import RATE_DELETE, RATE_GENERATE, RATE_STATUS
from sorapi.api.state import Resources
from sorapi.api.tasks import deletion, image_inputs, listing, task_service
from sorapi.contracts import errors, status
from sorapi.contracts.openai_shapes import (
    SECONDS_PATTERN,
    CreateVideo,
    ExtendVideo,
    RemixVideo,
    Video,
    VideoDeleted,
    VideoError,
    VideoList,
)
from sorapi.contracts.schemas import ErrorEnvelope, GenerateRequest
from sorapi.store import history
from sorapi.store.models import Task

POLL_AFTER_MS = "1000"
"""Sent as `openai-poll-after-ms`: the SDK's `create_and_poll` waits this long between retrieves
(one poll a second is exactly the status budget of 60/min, so polling never exhausts it)."""

_STATUS = {
    status.QUEUED: "queued",
    status.RUNNING: "in_progress",
    status.SUCCEEDED: "completed",
    status.EXPIRED: "completed",
    status.FAILED: "failed",
    status.CANCELLED: "failed",
}
_FIELD_NAMES = {
    "model_version": "model",
    "duration": "seconds",
    "resolution": "size",
    "aspect_ratio": "size",
    "image_url": "input_reference",
    "image": "input_reference",
    "extend_from": "video",
}
"""SorAPI field names in validation details → the OpenAI parameter the caller actually sent."""


def _unix(moment: datetime | None) -> int | None:
    return int(moment.timestamp()) if moment else None


def video_view(task: Task, progress: int | None = None, eta_seconds: int | None = None) -> Video:
    request: dict[str, Any] = task.request
    error = (
        VideoError(code=task.error_code, message=task.error_message or task.error_code)
        if task.status in (status.FAILED, status.CANCELLED, status.EXPIRED) and task.error_code
        else None
    )
    done = task.status in (status.SUCCEEDED, status.EXPIRED)
    return Video(
        id=task.id,
        created_at=_unix(task.created_at) or 0,
        completed_at=_unix(task.finished_at),
        expires_at=_unix(task.expires_at),
        error=error,
        model=request["model_version"],
        progress=100 if done else (progress if progress is not None else task.progress),
        prompt=request["prompt"],
        remixed_from_video_id=request.get("remixed_from"),
        extended_from_video_id=request.get("extended_from"),
        seconds=str(request.get("total_duration") or request["duration"]),
        size=request["resolution"],
        status=_openai_status(task),  # type: ignore[arg-type]
        eta_seconds=eta_seconds,
        metadata=task.client_metadata,
    )


def _openai_status(task: Task) -> str:
    """A task that expired before it started (its start deadline passed) failed, as OpenAI sees it."""
    if task.status == status.EXPIRED and task.error_code == errors.QUEUE_TIMEOUT:
        return "failed"
    return _STATUS[task.status]


async def _live_view(res: Resources, task: Task, plan: str) -> Video:
    percent, position = None, None
    if task.status == status.RUNNING:
        percent, _ = await task_service.live_state(res, task)
    elif task.status == status.QUEUED:
        position = await credit_service.queue_position(res, task)
    eta = await res.render_times.eta(
        res.autocommit_sessions, res.catalog, task, plan=plan, position=position, progress=percent or task.progress
    )
    return video_view(task, percent, eta)


def _poll_headers() -> dict[str, str]:
    return {"openai-poll-after-ms": POLL_AFTER_MS}


async def _create(
    res: Resources,
    principal: Principal,
    req: GenerateRequest,
    idempotency_key: str | None,
    origin: dict[str, str] | None = None,
    uploads: image_inputs.Uploads = image_inputs.NO_UPLOADS,
) -> Task:
    """The shared task service, with validation details renamed to the OpenAI parameters."""
    try:
        return (
            await task_service.create_task(res, principal, req, idempotency_key, origin=origin, uploads=uploads)
        ).task
    except errors.ValidationFailed as exc:
        exc.details = [{**d, "field": _FIELD_NAMES.get(d.get("field", ""), d.get("field", ""))} for d in exc.details]
        raise


async def _read_create_body(request: Request[Any, Any, Any]) -> tuple[CreateVideo, image_inputs.Uploads]:
    """JSON or multipart/form-data (the SDK always sends multipart).

    `input_reference` as a file part is the first-frame upload, as `{"image_url": ...}` (or the form field
    `input_reference[image_url]`) its URL.
    """
    raw, uploads = _input_reference(await _raw_fields(request))
    raw = _form_metadata(raw)
    try:
        body = msgspec.convert({k: v for k, v in raw.items() if not isinstance(v, bytes)}, CreateVideo, strict=False)
        return body, uploads
    except msgspec.ValidationError as exc:
        raise errors.ValidationFailed(
            "the request is invalid", details=[{"field": _error_path(str(exc)), "message": str(exc)}]
        ) from exc


async def _read_extend_body(request: Request[Any, Any, Any]) -> ExtendVideo:
    """JSON or multipart/form-data; `video` as `{"id": ...}`, form fields `video[id]`, or JSON text.

    A video file is refused (422 `unsupported_parameter`): only a completed video of the account can be extended.
    """
    raw = await _raw_fields(request)
    parts = {k[len("video[") : -1]: v for k, v in raw.items() if k.startswith("video[") and k.endswith("]")}
    fields = {k: v for k, v in raw.items() if not k.startswith("video[")}
    if isinstance(fields.get("video"), bytes):
        raise errors.ValidationFailed(
            "extending an uploaded video is not supported; send the id of a completed video",
            code=errors.UNSUPPORTED_PARAMETER,
            details=[{"field": "video", "message": 'send {"id": "<video id>"} of a completed video, not a file'}],
        )
    if isinstance(fields.get("video"), str):
        try:
            fields["video"] = msgspec.json.decode(fields["video"])
        except msgspec.DecodeError:
            fields["video"] = {"id": fields["video"]}  # a bare id in a form field
    if parts:
        fields["video"] = parts
    try:
        return msgspec.convert({k: v for k, v in fields.items() if not isinstance(v, bytes)}, ExtendVideo, strict=False)
    except msgspec.ValidationError as exc:
        raise errors.ValidationFailed(
            "the request is invalid", details=[{"field": _error_path(str(exc)), "message": str(exc)}]
        ) from exc


def _input_reference(raw: dict[str, Any]) -> tuple[dict[str, Any], image_inputs.Uploads]:
    """`input_reference` out of the fields.

    A file part becomes the upload `image`; form fields `input_reference[KEY]` or JSON text become the reference object;
    `file_id` is refused (422).
    """
    fields = {k: v for k, v in raw.items() if k != "input_reference" and not k.startswith("input_reference[")}
    parts = {k[len("input_reference[") : -1]: v for k, v in raw.items() if k.startswith("input_reference[")}
    value = raw.get("input_reference")
    if isinstance(value, bytes):
        return fields, image_inputs.Uploads(files={"image": value})
    if isinstance(value, str):
        try:
            value = msgspec.json.decode(value)
        except msgspec.DecodeError:
            value = {"image_url": value}  # a bare URL in a form field
    reference = parts or value
    if isinstance(reference, dict) and "file_id" in reference:
        raise errors.ValidationFailed(
            "input_reference.file_id is not supported; send the file itself or an image_url",
            code=errors.UNSUPPORTED_PARAMETER,
            details=[
                {"field": "input_reference", "message": "file_id is not supported: upload the file or send image_url"}
            ],
        )
    if reference is not None:
        fields["input_reference"] = reference
    return fields, image_inputs.NO_UPLOADS


def _form_metadata(raw: dict[str, Any]) -> dict[str, Any]:
    """`metadata` of a form.

    Fields `metadata[KEY]=VALUE` (how the SDK flattens an object into a form), or one field holding the object as JSON
    (OpenAPI's default encoding of an object in a form).
    """
    labels = {k[len("metadata[") : -1]: v for k, v in raw.items() if k.startswith("metadata[") and k.endswith("]")}
    if labels:
        return {**{k: v for k, v in raw.items() if not k.startswith("metadata[")}, "metadata": labels}
    if isinstance(raw.get("metadata"), str | bytes):
        try:
            return {**raw, "metadata": msgspec.json.decode(raw["metadata"])}
        except msgspec.DecodeError:
            raise errors.ValidationFailed(
                "the request is invalid", details=[{"field": "metadata", "message": "expected a JSON object"}]
            ) from None
    return raw


async def _raw_fields(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """The body's fields, whatever its media type; form fields that are files come back as bytes."""
    media_type, options = request.content_type
    body = await request.body()
    if media_type == "multipart/form-data":
        return forms.multipart_fields(body, options.get("boundary"))
    if media_type == "application/x-www-form-urlencoded":
        return forms.urlencoded_fields(body)
    try:
        raw = msgspec.json.decode(body) if body else {}
    except msgspec.DecodeError as exc:
        raise errors.ApiError("the request body is not valid JSON", code=errors.INVALID_JSON) from exc
    if not isinstance(raw, dict):
        raise errors.ValidationFailed(
            "the body must be a JSON object", details=[{"field": "body", "message": "expected an object"}]
        )
    return raw


def _error_path(message: str) -> str:
    """The offending top-level parameter, as the OpenAI API names it (`input_reference`, not an index in it)."""
    return field_named(message).split("[", 1)[0]


def _generate_request(**fields: Any) -> GenerateRequest:
    """A native request, with the same constraint checks as a decoded `/api/generate` body."""
    try:
        return msgspec.convert({k: v for k, v in fields.items() if v is not None}, GenerateRequest)
    except msgspec.ValidationError as exc:
        field = _error_path(str(exc))
        raise errors.ValidationFailed(
            "the request is invalid", details=[{"field": _FIELD_NAMES.get(field, field), "message": str(exc)}]
        ) from exc


def _seconds(raw: str | int) -> int:
    """`seconds` as the schema states it: the digits of 1 to 20 as text (the SDK's form), or a number."""
    if isinstance(raw, int):
        return raw
    if not re.fullmatch(SECONDS_PATTERN, raw):  # matched whole: `$` alone would accept a trailing newline
        raise errors.ValidationFailed(
            "the request is invalid",
            details=[{"field": "seconds", "message": 'must be a whole number of seconds from 1 to 20, e.g. "8"'}],
        )
    return int(raw)


def _either_body(struct: type) -> RequestBody:
    """The body a handler parses itself: JSON or multipart/form-data, same fields."""
    schema = openapi.document_struct(struct)
    return RequestBody(
        required=True,
        description="Same fields as JSON or multipart/form-data",
        content={
            "application/json": OpenAPIMediaType(schema=schema),
            "multipart/form-data": OpenAPIMediaType(schema=schema),
        },
    )


@dataclass
class _CreateVideoOperation(Operation):
    def __post_init__(self) -> None:
        self.request_body = _either_body(CreateVideo)


@dataclass
class _ExtendVideoOperation(Operation):
    def __post_init__(self) -> None:
        self.request_body = _either_body(ExtendVideo)


def _envelope_examples(description: str, *examples: tuple[str, str]) -> ResponseSpec:
    return ResponseSpec(
        ErrorEnvelope,
        description=description,
        generate_examples=False,
        examples=[
            Example(summary=code, value={"error": {"code": code, "message": message, "details": []}})
            for code, message in examples
        ],
    )


CREATE_ERRORS = {
    400: _envelope_examples(
        "The body is not valid JSON (`invalid_json`), or not a well-formed form (`invalid_form`)",
        (errors.INVALID_JSON, "the request body is not valid JSON"),
        (errors.INVALID_FORM, "the form body is malformed: Unexpected end of multipart stream"),
    ),
    422: _envelope_examples(
        "Validation failed (`validation_error`; `error.details` names each field, also a form "
        "field that is not UTF-8 text, and `input_reference` when its image is refused: not PNG, JPEG "
        "or WEBP, too large, unreachable or private URL, a model without image conditioning), or "
        "`input_reference.file_id` was sent (`unsupported_parameter`)",
        (errors.VALIDATION_ERROR, "the request is invalid"),
        (
            errors.UNSUPPORTED_PARAMETER,
            "input_reference.file_id is not supported; send the file itself or an image_url",
        ),
    ),
}


class OpenAIVideosController(Controller):
    path = "/v1/videos"
    tags = ["openai-compatible"]

    @post(
        "/",
        status_code=200,
        opt=RATE_GENERATE | NEEDS_GENERATE,
        operation_class=_CreateVideoOperation,
        request_max_body_size=24 * 1024 * 1024,  # one image of at most 20 MiB and the text fields
        responses={**error_responses(401, 402, 429, 503), **CREATE_ERRORS},
    )
    async def create(
        self, request: Request[Any, Any, Any], principal: Principal, resources: Resources
    ) -> Response[Video]:
        """Create a video job (OpenAI `videos.create`).

        Fields: `prompt`, `model`, `seconds`, `size`, and `input_reference` (image-to-video: the first frame, a file or
        `{"image_url": ...}`).
        """
        body, uploads = await _read_create_body(request)
        req = _generate_request(
            image_url=body.input_reference.image_url if body.input_reference else None,
            prompt=body.prompt,
            model_version=body.model,
            duration=_seconds(body.seconds),
            resolution=body.size,
            metadata=body.metadata,
            speed=body.speed,
        )
        task = await _create(resources, principal, req, request.headers.get("idempotency-key"), uploads=uploads)
        return Response(video_view(task), headers=_poll_headers())

    @post(
        "/extensions",
        status_code=200,
        opt=RATE_GENERATE | NEEDS_GENERATE,
        operation_class=_ExtendVideoOperation,
        responses={**error_responses(401, 402, 404, 409, 429, 503), **CREATE_ERRORS},
    )
    async def extend(
        self, request: Request[Any, Any, Any], principal: Principal, resources: Resources
    ) -> Response[Video]:
        """Extend a completed video (OpenAI `videos.extend`).

        Adds `seconds` more of it, rendered from its last frames with its model, size and seed; the result is the whole
        clip (`seconds`: source plus added). 404 for an unknown video; 409 `source_not_ready`, `source_failed` or
        `source_expired` for one without a video to continue; 422 naming `video` for a model that extends nothing,
        `seconds` for a clip longer than the model's `max_extended_duration_s`.
        """
        body = await _read_extend_body(request)
        req = _generate_request(prompt=body.prompt, duration=_seconds(body.seconds), extend_from=body.video.id)
        task = await _create(resources, principal, req, request.headers.get("idempotency-key"))
        return Response(video_view(task), headers=_poll_headers())

    @get("/", opt=RATE_STATUS | NEEDS_READ, responses=error_responses(400, 401, 404, 422, 429))
    async def list_videos(
        self,
        principal: Principal,
        resources: Resources,
        after: str | None = Parameter(
            query="after",
            default=None,
            description="Id of the last video of the previous page." + query.EMPTY_MEANS_ABSENT,
        ),
        limit: int = Parameter(query="limit", default=20, ge=1, le=100, description="Videos per page (1-100)"),
        order: Literal["asc", "desc"] = Parameter(
            query="order", default="desc", description="`desc` (newest first, default) or `asc`"
        ),
    ) -> VideoList:
        """List the account's videos (OpenAI `videos.list`), cursor-paginated by `after`."""
        position = None
        if after:  # `?after=` is the first page, as an empty cursor is on every list
            anchor = await task_service.get_task(resources, principal, after)
            position = (anchor.created_at, anchor.id)
        async with resources.sessions() as session:
            rows, more = await history.tasks_page(
                session, principal.account_id, after=position, newest_first=order == "desc", limit=limit
            )
        etas = await resources.render_times.etas(
            resources.autocommit_sessions, resources.catalog, rows, plan=principal.plan
        )
        data = [video_view(t, eta_seconds=etas.get(t.id)) for t in rows]
        return VideoList(
            data=data, first_id=data[0].id if data else None, last_id=data[-1].id if data else None, has_more=more
        )

    @get("/{video_id:str}", opt=RATE_STATUS | NEEDS_READ, responses=error_responses(400, 401, 404, 429))
    async def retrieve(self, principal: Principal, resources: Resources, video_id: str) -> Response[Video]:
        """A video job's status and progress (OpenAI `videos.retrieve`; `create_and_poll` polls this)."""
        task = await task_service.get_task(resources, principal, video_id)
        return Response(await _live_view(resources, task, principal.plan), headers=_poll_headers())

    @delete(
        "/{video_id:str}",
        status_code=200,
        opt=RATE_DELETE | NEEDS_GENERATE,
        responses=error_responses(400, 401, 404, 409, 429),
    )
    async def delete_video(self, principal: Principal, resources: Resources, video_id: str) -> VideoDeleted:
        """Delete a video and its stored assets (OpenAI `videos.delete`)."""
        task = await deletion.delete_task(resources, principal, video_id)
        return VideoDeleted(id=video_id, deleted=task.status in status.TERMINAL - {status.SUCCEEDED})

    @get(
        "/{video_id:str}/content",
        opt=RATE_STATUS | NEEDS_READ,
        status_code=307,
        responses=error_responses(400, 401, 404, 409, 410, 422, 429),
    )
    async def download_content(
        self,
        principal: Principal,
        resources: Resources,
        video_id: str,
        variant: Literal["video", "thumbnail", "spritesheet", "webm"] = Parameter(
            query="variant", default="video", description="`video` (MP4), `thumbnail` (JPEG), `spritesheet` or `webm`"
        ),
    ) -> Redirect:
        """Redirect (307) to a short-lived presigned URL of the asset (OpenAI `videos.download_content`)."""
        task = await task_service.get_task(resources, principal, video_id)
        return Redirect(path=listing.content_url(resources, task, variant), status_code=307)

    @post(
        "/{video_id:str}/remix",
        status_code=200,
        opt=RATE_GENERATE | NEEDS_GENERATE,
        responses=error_responses(400, 401, 402, 404, 422, 429, 503),
    )
    async def remix(
        self,
        data: RemixVideo,
        principal: Principal,
        resources: Resources,
        video_id: str,
        request: Request[Any, Any, Any],
    ) -> Response[Video]:
        """Render again with a new prompt (OpenAI `videos.remix`).

        Keeps the source's seed, size, duration, model and speed profile.
        """
        source = await task_service.get_task(resources, principal, video_id)
        recorded: dict[str, Any] = source.request
        req = _generate_request(
            prompt=data.prompt,
            model_version=recorded["model_version"],
            duration=recorded["duration"],
            resolution=recorded["resolution"],
            guidance=recorded["guidance"],
            seed=recorded["seed"],
            negative_prompt=recorded.get("negative_prompt"),
            speed=recorded.get("speed"),  # None for a source recorded before profiles: the model's default
        )
        task = await _create(
            resources, principal, req, request.headers.get("idempotency-key"), origin={"remixed_from": source.id}
        )
        return Response(video_view(task), headers=_poll_headers())
