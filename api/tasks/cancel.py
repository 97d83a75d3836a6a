"""`POST /api/tasks/{task_id}/cancel`: stop a queued or running task and return its credits.

The API only asks Temporal to cancel the task's workflow; the workflow stops the render within
one denoising step, marks the task `cancelled` and releases the credit hold. So the response
usually still shows `queued`/`running`: poll `/api/status` (or wait for the webhook) for the end.
"""

from __future__ import annotations

import structlog
from litestar import Controller, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Example
from temporalio.service import RPCError, RPCStatusCode

from sorapi.api.auth import NEEDS_GENERATE, Principal
from sorapi.api.openapi import error_responses
from sorapi.api.ratelimit import RATE_STATUS
from sorapi.api.state import Resources
from sorapi.api.tasks import task_service
from sorapi.contracts import errors, status
from sorapi.contracts.schemas import ErrorEnvelope, StatusResponse
from sorapi.store import task_rows
from sorapi.store.models import Task

log = structlog.get_logger()

NOT_CANCELLABLE = ResponseSpec(
    ErrorEnvelope,
    description="The task already finished (`task_not_cancellable`)",
    generate_examples=False,
    examples=[
        Example(
            summary=errors.TASK_NOT_CANCELLABLE,
            value={
                "error": {
                    "code": errors.TASK_NOT_CANCELLABLE,
                    "details": [],
                    "message": "task sora2... already succeeded; only queued or running tasks can be cancelled",
                }
            },
        )
    ],
)


def _finished(task: Task) -> errors.TaskNotCancellable:
    return errors.TaskNotCancellable(
        f"task {task.id} already {task.status}; only queued or running tasks can be cancelled",
        details=[{"field": "task_id", "message": f"the task is {task.status}"}],
    )


async def cancel_task(res: Resources, principal: Principal, task: Task) -> None:
    """Request cancellation of the task's workflow; a finished task is a conflict."""
    if task.status in status.TERMINAL:
        raise _finished(task)
    try:
        await res.temporal.get_workflow_handle(task.id).cancel()
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise errors.ServiceUnavailable(
                "the orchestrator is unavailable; retry the cancel", headers={"Retry-After": "5"}
            ) from exc
        task = await task_service.get_task(res, principal, task.id)  # it finished between our read and the cancel
        if task.status in status.TERMINAL:
            raise _finished(task) from exc
        raise errors.ServiceUnavailable(
            "the task's workflow is not running yet; retry the cancel", headers={"Retry-After": "5"}
        ) from exc
    async with res.sessions.begin() as session:
        task_rows.add_event(session, task.id, "cancel_requested", {"api_key_id": principal.key_id})
    log.info("task cancel requested", task_id=task.id)


class CancelController(Controller):
    path = "/api/tasks"
    tags = ["videos"]

    @post(
        "/{task_id:str}/cancel",
        status_code=202,
        opt=RATE_STATUS | NEEDS_GENERATE,
        responses={**error_responses(401, 404, 429, 503), 409: NOT_CANCELLABLE},
    )
    async def cancel(self, task_id: str, principal: Principal, resources: Resources) -> StatusResponse:
        """Cancel a queued or running task.

        The render stops within one denoising step, partial files are deleted, the task ends `cancelled`
        (`error_code: cancelled`) and its credits are released. Answers 202 with the task as it is now; poll
        `/api/status` for the final state. A task that already finished answers 409 `task_not_cancellable`.
        """
        task = await task_service.get_task(resources, principal, task_id)
        await cancel_task(resources, principal, task)
        return await task_service.status_view(resources, task, plan=principal.plan)
