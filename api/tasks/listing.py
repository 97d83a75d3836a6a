"""`GET /api/tasks` and `GET /api/tasks/{id}/content`.

`GET /api/tasks` lists the account's tasks, newest first; `GET /api/tasks/{id}/content` redirects to a fresh short-lived
presigned URL of one output.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from litestar import Controller, Request, get
from litestar.enums import ParamType
from litestar.openapi.spec import OpenAPIType, Operation, Schema
from litestar.openapi.spec import Parameter as OpenAPIParameter
from litestar.params import Parameter
from litestar.response import Redirect

from sorapi.adapters import storage
from sorapi.api import pagination, query
from sorapi.api.auth import NEEDS_READ, Principal
from sorapi.api.openapi import error_responses
from sorapi.api.ratelimit import RATE_STATUS
from sorapi.api.state import Resources
from sorapi.api.tasks import task_service
from sorapi.contracts import errors, status
from sorapi.contracts.schemas import (
    MAX_METADATA_KEY_CHARS,
    MAX_METADATA_KEYS,
    MAX_METADATA_VALUE_CHARS,
    NO_NUL,
    TaskList,
    TaskSummary,
)
from sorapi.store import history
from sorapi.store.models import Task

VARIANT_FORMATS: dict[str, tuple[str, ...]] = {
    "video": ("mp4",),
    "webm": ("webm",),
    "thumbnail": ("jpg", "jpeg", "webp", "png"),
    "spritesheet": ("spritesheet",),
}
"""Public variant names → the `format` of the task outputs that can serve them."""


@dataclass
class MetadataFilterOperation(Operation):
    """Publishes `metadata[KEY]=VALUE` (a deepObject); the handler reads it from the raw query."""

    def __post_init__(self) -> None:
        self.parameters = [
            *(self.parameters or []),
            OpenAPIParameter(
                name="metadata",
                param_in=ParamType.QUERY,
                required=False,
                style="deepObject",
                explode=True,
                description="Only tasks whose `metadata` has these labels, e.g. `metadata[order_id]=ord_1042` "
                "(exact match; several must all match)",
                schema=Schema(
                    type=OpenAPIType.OBJECT,
                    max_properties=MAX_METADATA_KEYS,
                    property_names=Schema(
                        type=OpenAPIType.STRING, min_length=1, max_length=MAX_METADATA_KEY_CHARS, pattern=NO_NUL
                    ),
                    additional_properties=Schema(
                        type=OpenAPIType.STRING, max_length=MAX_METADATA_VALUE_CHARS, pattern=NO_NUL
                    ),
                ),
            ),
        ]


def summary(task: Task, eta_seconds: int | None = None) -> TaskSummary:
    request: dict[str, Any] = task.request
    return TaskSummary(
        eta_seconds=eta_seconds,
        task_id=task.id,
        status=task.status,
        prompt=request["prompt"],
        model_version=request["model_version"],
        duration=request["duration"],
        resolution=request["resolution"],
        extended_from=request.get("extended_from"),
        progress=100 if task.status in (status.SUCCEEDED, status.EXPIRED) else task.progress,
        credits_reserved=task.price,
        error_code=task.error_code,
        created_at=task.created_at,
        finished_at=task.finished_at,
        expires_at=task.expires_at,
        metadata=task.client_metadata,
    )


def parse_statuses(raw: str | None) -> list[str]:
    return query.comma_list(raw, status.ALL, "status")


async def list_tasks(
    res: Resources,
    principal: Principal,
    *,
    statuses: list[str],
    created_from: datetime | None,
    created_to: datetime | None,
    cursor: str | None,
    limit: int,
    metadata: dict[str, str] | None = None,
) -> TaskList:
    after = pagination.decode_task_cursor(cursor)
    async with res.sessions() as session:
        rows, more = await history.tasks_page(
            session,
            principal.account_id,
            statuses=statuses,
            created_from=created_from,
            created_to=created_to,
            after=after,
            limit=limit,
            metadata=metadata,
        )
    last = rows[-1] if rows else None
    etas = await res.render_times.etas(res.autocommit_sessions, res.catalog, rows, plan=principal.plan)
    return TaskList(
        data=[summary(t, etas.get(t.id)) for t in rows],
        has_more=more,
        next_cursor=pagination.task_cursor(last.created_at, last.id) if more and last else None,
    )


def content_url(res: Resources, task: Task, variant: str) -> str:
    """A presigned URL of the task's output for `variant`, valid for `content_url_ttl_s`."""
    if variant not in VARIANT_FORMATS:
        raise errors.ValidationFailed(
            "unknown variant", details=[{"field": "variant", "message": f"must be one of {', '.join(VARIANT_FORMATS)}"}]
        )
    if task.status == status.EXPIRED:
        raise errors.Gone("the retention window ended and this task's assets were deleted")
    if task.status != status.SUCCEEDED:
        raise errors.Conflict(f"the task is {task.status}; its content exists once it succeeds")
    for output in task.outputs:
        if output["format"] in VARIANT_FORMATS[variant]:
            return storage.presign(res.signer, res.settings.s3_bucket, output["key"], res.settings.content_url_ttl_s)
    available = sorted({v for v, formats in VARIANT_FORMATS.items() for o in task.outputs if o["format"] in formats})
    raise errors.NotFound(
        f"this task has no {variant} output (available: {', '.join(available) or 'none'})",
        code=errors.VARIANT_NOT_FOUND,
    )


class TasksController(Controller):
    path = "/api/tasks"
    tags = ["videos"]

    @get(
        "/",
        opt=RATE_STATUS | NEEDS_READ,
        responses=error_responses(400, 401, 422, 429),
        operation_class=MetadataFilterOperation,
    )
    async def list_tasks(
        self,
        request: Request,
        principal: Principal,
        resources: Resources,
        status_: str | None = Parameter(
            query="status",
            default=None,
            description="Comma-separated statuses to keep (no spaces), e.g. "
            "`running,queued`." + query.EMPTY_MEANS_ABSENT,
            schema_extra={"pattern": query.comma_list_pattern(status.ALL)},
        ),
        created_after: str | None = Parameter(
            query="created_after",
            default=None,
            schema_extra=query.DATE_TIME,
            description="Only tasks created at or after this time (RFC 3339)",
        ),
        created_before: str | None = Parameter(
            query="created_before",
            default=None,
            schema_extra=query.DATE_TIME,
            description="Only tasks created before this time (RFC 3339)",
        ),
        cursor: str | None = Parameter(
            query="cursor",
            default=None,
            description="`next_cursor` of the previous page." + query.EMPTY_MEANS_ABSENT,
            schema_extra={"pattern": pagination.TASK_CURSOR_PATTERN},
        ),
        limit: int = Parameter(query="limit", default=20, ge=1, le=100, description="Tasks per page (1-100)"),
    ) -> TaskList:
        """The account's tasks, newest first; cursor-paginated.

        Filtered by status, creation time and `metadata` labels (`metadata[order_id]=ord_1042`: exact match; several
        must all match).
        """
        return await list_tasks(
            resources,
            principal,
            statuses=parse_statuses(status_),
            cursor=cursor,
            limit=limit,
            created_from=query.timestamp(created_after, "created_after"),
            created_to=query.timestamp(created_before, "created_before"),
            metadata=query.metadata_filter(request.query_params.multi_items()),
        )

    @get(
        "/{task_id:str}/content",
        opt=RATE_STATUS | NEEDS_READ,
        status_code=307,
        responses=error_responses(400, 401, 404, 409, 410, 422, 429),
    )
    async def content(
        self,
        principal: Principal,
        resources: Resources,
        task_id: str,
        variant: Literal["video", "webm", "thumbnail"] = Parameter(
            query="variant", default="video", description="`video` (MP4), `webm` or `thumbnail` (JPEG)"
        ),
    ) -> Redirect:
        """Redirect (307) to a fresh presigned URL of one output, valid for a few minutes.

        404 `variant_not_found` when the task has no such output; 409 `task_not_ready` until it succeeds.
        """
        task = await task_service.get_task(resources, principal, task_id)
        return Redirect(path=content_url(resources, task, variant), status_code=307)
