"""HTTP handlers: thin, each a few lines around the task service. Docstrings become OpenAPI text."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from litestar import Controller, Request, Response, get, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import Parameter
from sqlalchemy import text

from api import tasks
from api.auth import Principal
from api.state import Resources
from sorapi import errors
from sorapi.schemas import ErrorEnvelope, GenerateRequest, GenerateResponse, StatusResponse

ERRORS = {
    401: ResponseSpec(ErrorEnvelope, description="Missing or invalid API key"),
    422: ResponseSpec(ErrorEnvelope, description="Validation failed; `error.details` names each field"),
}


class VideoController(Controller):
    path = "/api"
    tags = ["videos"]

    @post("/generate", status_code=200, responses={
        **ERRORS, 402: ResponseSpec(ErrorEnvelope, description="Not enough credits (`insufficient_credits`)"),
    })
    async def generate(self, data: GenerateRequest, principal: Principal, resources: Resources,
                       request: Request) -> Response[GenerateResponse]:
        """Submit a prompt and get a task id at once; the render runs asynchronously.

        Sending the same `idempotency_key` (or `Idempotency-Key` header) again returns the same
        task; the same key with a different body is rejected with `idempotency_key_reused`.
        """
        created = await tasks.create_task(resources, principal, data, request.headers.get("idempotency-key"))
        body = GenerateResponse(task_id=created.task.id, status=created.task.status,
                                credits_reserved=created.task.price, created_at=created.task.created_at)
        headers = {"Idempotent-Replayed": "true"} if created.replayed else {}
        return Response(body, headers=headers)

    @get("/status", responses={**ERRORS, 404: ResponseSpec(ErrorEnvelope, description="No such task")})
    async def task_status(
        self, principal: Principal, resources: Resources,
        task_id: str | None = Parameter(query="task_id", default=None, description="Task id from /api/generate"),
        id_: str | None = Parameter(query="id", default=None, description="Alias of task_id"),
    ) -> StatusResponse:
        """Poll a task: `queued`, `running` (with `progress`), `succeeded` (with playable URLs),
        `failed` or `cancelled` (with `error_code`), or `expired` after the retention window."""
        wanted = task_id or id_
        if not wanted:
            raise errors.ValidationFailed("task_id is required", details=[
                {"field": "task_id", "message": "pass ?task_id=... (or ?id=...)"}])
        task = await tasks.get_task(resources, principal, wanted)
        return await tasks.status_view(resources, task)


class HealthController(Controller):
    path = "/"
    tags = ["operations"]
    include_in_schema = False

    @get("/healthz")
    async def healthz(self) -> dict[str, str]:
        """The API process is up."""
        return {"status": "ok"}

    @get("/readyz")
    async def readyz(self, resources: Resources) -> Response[dict[str, str]]:
        """Ready only when the database, Temporal and S3 all answer."""
        checks = await asyncio.gather(_check_db(resources), _check_temporal(resources), _check_s3(resources),
                                      return_exceptions=True)
        report = {name: "ok" if result is True else f"error: {result!r}"
                  for name, result in zip(("database", "temporal", "s3"), checks)}
        ok = all(result is True for result in checks)
        return Response({"status": "ok" if ok else "unavailable", **report}, status_code=200 if ok else 503)


async def _check_db(res: Resources) -> bool:
    async with res.engine.connect() as conn:
        await conn.execute(text("SELECT 1"))
    return True


async def _check_temporal(res: Resources) -> bool:
    return await res.temporal.service_client.check_health(timeout=timedelta(seconds=3))


async def _check_s3(res: Resources) -> bool:
    return await asyncio.to_thread(res.s3.bucket_exists, res.settings.s3_bucket)

