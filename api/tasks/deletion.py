"""The end of a task's life on request: `DELETE /api/tasks/{task_id}` deletes its assets early.

The API does not delete anything itself: it signals the task's retention workflow, which runs the same
steps as at the end of the retention window (task marked expired, objects deleted, event
recorded, `expired` webhook sent), then waits briefly for the row to show it. The signal starts that
workflow if the task's own has not yet (it starts it just after marking the task succeeded).
"""

from __future__ import annotations

import asyncio
import time

import structlog
from litestar import Controller, Response, delete
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

from sorapi.api.auth import NEEDS_GENERATE, Principal
from sorapi.api.openapi import error_responses
from sorapi.api.ratelimit import RATE_DELETE
from sorapi.api.state import Resources
from sorapi.api.tasks import task_service
from sorapi.contracts import errors, names, status
from sorapi.contracts.messages import RetentionInput
from sorapi.contracts.schemas import StatusResponse
from sorapi.domain import webhook_policy
from sorapi.domain.ids import retention_workflow_id
from sorapi.store import task_rows
from sorapi.store.models import Task, utcnow

log = structlog.get_logger()

DELETE_WAIT_S = 20.0
POLL_S = 0.2


async def delete_task(res: Resources, principal: Principal, task_id: str) -> Task:
    """Delete a finished task's assets now; returns the task as it is afterwards (normally `expired`).

    Idempotent: an expired task is returned as is, and so are failed or cancelled tasks (they
    kept no assets). A queued or running task must be cancelled first (409 `task_not_ready`).
    """
    task = await task_service.get_task(res, principal, task_id)
    if task.status in (status.QUEUED, status.RUNNING):
        raise errors.Conflict("the task has not finished: cancel it first, then delete it")
    if task.status != status.SUCCEEDED:
        return task
    try:
        await res.temporal.start_workflow(
            names.TASK_RETENTION_WORKFLOW,
            _retention_of(res, task, principal.plan),
            id=retention_workflow_id(task.id),
            task_queue=res.settings.orchestration_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            start_signal=names.DELETE_ASSETS_SIGNAL,
        )
    except WorkflowAlreadyStartedError:
        pass  # its retention window already ended: the task is expiring
    except RPCError as exc:
        log.error("could not signal the task's workflow to delete its assets", task_id=task.id, error=str(exc))
        raise errors.ServiceUnavailable(
            "the orchestrator is unavailable; retry shortly", headers={"Retry-After": "5"}
        ) from exc
    return await _wait_for_expiry(res, principal, task_id)


def _retention_of(res: Resources, task: Task, plan: str) -> RetentionInput:
    """The retention workflow's input, exactly as the task's workflow starts it."""
    return RetentionInput(
        task_id=task.id,
        expires_at=task.expires_at or utcnow(),
        has_callback=task.request.get("callback_url") is not None,
        webhook_queue=webhook_policy.lane(res.settings.webhook_queue_prefix, plan),
    )


async def _wait_for_expiry(res: Resources, principal: Principal, task_id: str) -> Task:
    deadline = time.monotonic() + DELETE_WAIT_S
    while True:
        async with res.sessions() as session:
            task = await task_rows.get_for_account(session, principal.account_id, task_id)
        assert task is not None
        if task.status == status.EXPIRED or time.monotonic() > deadline:
            return task
        await asyncio.sleep(POLL_S)


class LifecycleController(Controller):
    path = "/api/tasks"
    tags = ["videos"]

    @delete(
        "/{task_id:str}",
        status_code=200,
        opt=RATE_DELETE | NEEDS_GENERATE,
        responses=error_responses(401, 404, 409, 429, 503),
    )
    async def delete_assets(self, principal: Principal, resources: Resources, task_id: str) -> Response[StatusResponse]:
        """Delete a finished task's videos and thumbnail now instead of at the end of the retention window.

        The task becomes `expired` (its request and `expires_at` stay readable), the event is recorded and an `expired`
        webhook is sent. 202 if the deletion is still under way.
        """
        task = await delete_task(resources, principal, task_id)
        pending = task.status == status.SUCCEEDED
        return Response(
            await task_service.status_view(resources, task, plan=principal.plan), status_code=202 if pending else 200
        )
