"""HTTP handlers: thin, each a few lines around the task service. Docstrings become OpenAPI text."""

from __future__ import annotations

from dataclasses import dataclass

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.datastructures import ResponseHeader
from litestar.openapi.spec import OpenAPIType, Operation, Schema
from litestar.openapi.spec import Parameter as OpenAPIParameter
from litestar.params import Parameter
from sqlalchemy.ext.asyncio import AsyncSession

from sorapi.api import pagination, query
from sorapi.api.auth import NEEDS_GENERATE, NEEDS_READ, Principal
from sorapi.api.openapi import error_responses
from sorapi.api.ratelimit import RATE_GENERATE, RATE_STATUS
from sorapi.api.request_db import READ_SESSION, SHARED_SESSION
from sorapi.api.state import Resources
from sorapi.api.tasks import generate_body, stream, task_service, webhook_deliveries
from sorapi.contracts import errors, status
from sorapi.contracts.schemas import GenerateResponse, StatusResponse

EXPANDABLE = frozenset({"events", "webhooks"})
"""Values `expand` accepts; each one adds a block to the status response (add yours here)."""
EXPAND_DOC = (
    "Comma-separated extras (no spaces): `events` (the task's history, paginated with "
    "events_cursor/events_limit), `webhooks` (every webhook delivery attempt)." + query.EMPTY_MEANS_ABSENT
)


PREFERENCE_APPLIED = ResponseHeader(
    name="Preference-Applied",
    description="`wait=N` when `Prefer: wait=N` was sent and the task ended within N seconds",
    required=False,
    documentation_only=True,
)


def parse_expand(expand: str | None) -> set[str]:
    return set(query.comma_list(expand, sorted(EXPANDABLE), "expand"))


@dataclass
class _StatusOperation(Operation):
    """`task_id` is the parameter to send (required, non-empty); `id` is its deprecated alias.

    OpenAPI cannot say "one of two parameters", so the schema names the one clients should use;
    the handler still answers `?id=` for clients written against the seed.
    """

    def __post_init__(self) -> None:
        for parameter in self.parameters or []:
            if isinstance(parameter, OpenAPIParameter) and parameter.name == "task_id":
                parameter.required = True
                parameter.schema = Schema(type=OpenAPIType.STRING, min_length=1)
            elif isinstance(parameter, OpenAPIParameter) and parameter.name == "id":
                parameter.deprecated = True


class VideoController(Controller):
    path = "/api"
    tags = ["videos"]

    @post(
        "/generate",
        status_code=200,
        opt=RATE_GENERATE | NEEDS_GENERATE,
        dependencies=SHARED_SESSION,
        responses=error_responses(400, 401, 402, 404, 409, 422, 429, 503),
        response_headers=[PREFERENCE_APPLIED],
        operation_class=generate_body.GenerateOperation,
        request_max_body_size=generate_body.MAX_BODY_BYTES,
    )
    async def generate(
        self, principal: Principal, resources: Resources, request: Request, db: AsyncSession
    ) -> Response[GenerateResponse]:
        """Submit a prompt and get a task id at once; the render runs asynchronously.

        Sending the same `idempotency_key` (or `Idempotency-Key` header) again returns the same
        task; the same key with a different body is rejected with `idempotency_key_reused`.

        `Prefer: wait=N` (RFC 7240, N at most 60) holds the answer until the task ends or N seconds
        pass, and adds the task as `/api/status` shows it in `result`; `Preference-Applied: wait=N`
        says it ended in time.

        Image-to-video: `image_url` (or the multipart file `image`) is the first frame, and
        `last_frame_url` (or `last_frame`) the last, on models that take them (`GET /api/models`).
        """
        data, uploads = await generate_body.read(request)
        created = await task_service.create_task(
            resources, principal, data, request.headers.get("idempotency-key"), session=db, uploads=uploads
        )
        body = GenerateResponse(
            task_id=created.task.id,
            status=created.task.status,
            credits_reserved=created.task.price,
            created_at=created.task.created_at,
        )
        headers = {"Idempotent-Replayed": "true"} if created.replayed else {}
        wait_s = stream.preferred_wait(request)
        if wait_s is not None:
            ended = await stream.wait_until_ended(resources, created.task.id, wait_s)
            body.result = await task_service.status_view(
                resources, await task_service.get_task(resources, principal, created.task.id), plan=principal.plan
            )
            body.status = body.result.status
            if ended:
                headers["Preference-Applied"] = f"wait={wait_s}"
        return Response(body, headers=headers)

    @get(
        "/status",
        opt=RATE_STATUS | NEEDS_READ,
        dependencies=READ_SESSION,
        operation_class=_StatusOperation,
        responses=error_responses(400, 401, 404, 422, 429),
        response_headers=[PREFERENCE_APPLIED],
    )
    async def task_status(
        self,
        request: Request,
        resources: Resources,
        db: AsyncSession,
        task_id: str | None = Parameter(query="task_id", default=None, description="Task id from /api/generate"),
        id_: str | None = Parameter(
            query="id", default=None, description="Deprecated alias of task_id (used only when task_id is not sent)"
        ),
        expand: str | None = Parameter(
            query="expand",
            default=None,
            description=EXPAND_DOC,
            schema_extra={"pattern": query.comma_list_pattern(sorted(EXPANDABLE))},
        ),
        events_cursor: str | None = Parameter(
            query="events_cursor",
            default=None,
            description="`events.next_cursor` of the previous page." + query.EMPTY_MEANS_ABSENT,
            schema_extra={"pattern": pagination.EVENT_CURSOR_PATTERN},
        ),
        events_limit: int = Parameter(
            query="events_limit", default=50, ge=1, le=200, description="Events per page (1-200)"
        ),
    ) -> Response[StatusResponse]:
        """Poll a task.

        The task is `queued`, `running` (with `progress` and `live` queue position / denoising step), `succeeded` (with
        playable URLs), `failed` or `cancelled` (with `error_code`), or `expired` after the retention window.
        `expand=events` adds the task's history, paginated by cursor. `Prefer: wait=N` (N at most 60) answers once the
        task ends or N seconds pass, whichever is first; `Preference-Applied: wait=N` says it ended in time.
        """
        wanted = task_id or id_
        if not wanted:
            raise errors.ValidationFailed(
                "task_id is required", details=[{"field": "task_id", "message": "pass ?task_id=... (or ?id=...)"}]
            )
        extras = parse_expand(expand)
        task, position, plan = await task_service.poll_task(
            resources, request, db, wanted
        )  # commits: no connection held
        wait_s = stream.preferred_wait(request)
        known: int | msgspec.UnsetType | None = position
        ended = task.status in status.TERMINAL
        if wait_s is not None and not ended:
            ended = await stream.wait_until_ended(resources, task.id, wait_s)
            task, known = await task_service.reread(resources, task.id), msgspec.UNSET  # the line may have moved
        applied = {"Preference-Applied": f"wait={wait_s}"} if wait_s is not None and ended else {}
        view = await task_service.status_view(resources, task, plan=plan, queue_position=known)
        if "events" in extras:
            view.events = await task_service.events_page(resources, task, events_cursor, events_limit)
        if "webhooks" in extras:
            view.webhooks = await webhook_deliveries.attempts(resources, task)
        return Response(view, headers=applied)
