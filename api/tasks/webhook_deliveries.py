"""A task's webhook deliveries: its delivery log, and redelivery of its last event.

The delivery log is paginated by cursor, like every list. Redeliveries are bounded twice: per key
by the `redeliver` rate limit, and per task by slots (`SORAPI_WEBHOOK_REDELIVERIES_PER_TASK`): each
redelivery runs in a workflow whose id names its slot, and Temporal runs one workflow per id, so a
task with every slot busy answers 409 `redeliveries_in_flight` and starts nothing.
"""

from __future__ import annotations

import uuid

from litestar import Controller, get, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Example
from litestar.params import Parameter
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

from sorapi.api import pagination
from sorapi.api.auth import NEEDS_GENERATE, NEEDS_READ, Principal
from sorapi.api.openapi import error_responses
from sorapi.api.ratelimit import RATE_REDELIVER, RATE_STATUS
from sorapi.api.state import Resources
from sorapi.api.tasks import task_service
from sorapi.contracts import errors, names, status
from sorapi.contracts.messages import RedeliveryInput, WebhookDeliveryInput
from sorapi.contracts.schemas import ErrorEnvelope, Redelivery, WebhookAttempt, WebhookDeliveries
from sorapi.domain import webhook_events, webhook_policy
from sorapi.domain.ids import redelivery_slot_workflow_id, webhook_workflow_id
from sorapi.store import webhook_rows
from sorapi.store.models import Task, WebhookDelivery

DELIVERY_CURSOR = "w"
"""Tag of the delivery log's cursor (`w123`: the attempts after row 123)."""
DELIVERY_LIMIT = Parameter(query="limit", default=50, ge=1, le=200, description="Attempts per page (1-200)")
DELIVERY_CURSOR_PARAMETER = pagination.cursor_parameter(DELIVERY_CURSOR)
REDELIVER_CONFLICT = {
    409: ResponseSpec(
        ErrorEnvelope,
        description="The task has not finished or has no callback_url (`task_not_ready`, `no_callback_url`), "
        "or as many redeliveries as it may have at once are still in flight (`redeliveries_in_flight`)",
        generate_examples=False,
        examples=[
            Example(
                summary=code,
                value={"error": {"code": code, "message": message, "details": []}},
            )
            for code, message in (
                (errors.TASK_NOT_READY, "the task has not finished: there is no event to redeliver yet"),
                (errors.NO_CALLBACK_URL, "this task has no callback_url"),
                (
                    errors.REDELIVERIES_IN_FLIGHT,
                    "2 redeliveries of this task are still in flight (at most 2 at once); retry once one has ended",
                ),
            )
        ],
    )
}


def attempt_view(row: WebhookDelivery) -> WebhookAttempt:
    return WebhookAttempt(
        event_id=row.event_id,
        event_type=row.event_type,
        delivery_id=row.delivery_id,
        trigger=row.trigger,
        attempt=row.attempt,
        attempted_at=row.attempted_at,
        outcome=row.outcome,
        status_code=row.status_code,
        latency_ms=row.latency_ms,
        error=row.error,
    )


async def attempts(res: Resources, task: Task) -> list[WebhookAttempt]:
    async with res.sessions() as session:
        return [attempt_view(row) for row in await webhook_rows.list_for_task(session, task.id)]


async def deliveries_page(res: Resources, task: Task, cursor: str | None, limit: int) -> WebhookDeliveries:
    """One page of the task's delivery log, oldest first."""
    after_id = pagination.decode_id_cursor(cursor, DELIVERY_CURSOR)
    async with res.autocommit_sessions() as session:
        found, more = await webhook_rows.deliveries_page(session, task.id, after_id=after_id, limit=limit)
    return WebhookDeliveries(
        task_id=task.id,
        callback_url=task.request.get("callback_url"),
        deliveries=[attempt_view(row) for row in found],
        has_more=more,
        next_cursor=pagination.id_cursor(DELIVERY_CURSOR, found[-1].id) if more and found else None,
    )


async def redeliver(res: Resources, principal: Principal, task_id: str) -> Redelivery:
    """Send the task's last event again (same `webhook-id`), with the full retry schedule, in a free slot."""
    task = await task_service.get_task(res, principal, task_id)
    if not task.request.get("callback_url"):
        raise errors.Conflict("this task has no callback_url", code=errors.NO_CALLBACK_URL)
    if task.status not in status.TERMINAL:
        raise errors.Conflict("the task has not finished: there is no event to redeliver yet")
    event = task.status
    if not webhook_events.wants(task.request, event):
        raise errors.Conflict(f"the task's webhook_events leave out `{event}`: there is no event to redeliver")
    arg = RedeliveryInput(
        delivery=WebhookDeliveryInput(
            task_id=task.id,
            event=event,
            event_id=webhook_policy.event_id(task.id, event),
            lane=webhook_policy.lane(res.settings.webhook_queue_prefix, principal.plan),
            trigger="redeliver",
        ),
        delivery_id=f"{webhook_workflow_id(task.id, event)}-redeliver-{uuid.uuid4().hex[:12]}",
    )
    await _start_in_a_free_slot(res, arg)
    return Redelivery(
        task_id=task.id,
        event_id=arg.delivery.event_id,
        event_type=webhook_policy.event_type(event),
        delivery_id=arg.delivery_id,
    )


async def _start_in_a_free_slot(res: Resources, arg: RedeliveryInput) -> None:
    """Start the redelivery under the first slot id with no running workflow; 409 when every slot has one."""
    slots = max(1, res.settings.webhook_redeliveries_per_task)
    for slot in range(1, slots + 1):
        try:
            await res.temporal.start_workflow(
                names.WEBHOOK_REDELIVERY_WORKFLOW,
                arg,
                id=redelivery_slot_workflow_id(arg.delivery.task_id, slot),
                task_queue=res.settings.orchestration_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
                static_summary=f"webhook redelivery {slot} for {arg.delivery.task_id}",
            )
            return
        except WorkflowAlreadyStartedError:
            continue  # this slot's redelivery is still in flight
        except RPCError as exc:
            raise errors.ServiceUnavailable(
                "the orchestrator is unavailable; retry shortly", headers={"Retry-After": "5"}
            ) from exc
    raise errors.Conflict(
        f"{slots} redeliveries of this task are still in flight (at most {slots} at once); retry once one has "
        f"ended (their attempts are in GET /api/tasks/{arg.delivery.task_id}/webhooks)",
        code=errors.REDELIVERIES_IN_FLIGHT,
    )


class TaskWebhooksController(Controller):
    path = "/api/tasks"
    tags = ["webhooks"]

    @get("/{task_id:str}/webhooks", opt=RATE_STATUS | NEEDS_READ, responses=error_responses(401, 404, 422, 429))
    async def list_deliveries(
        self,
        principal: Principal,
        resources: Resources,
        task_id: str,
        limit: int = DELIVERY_LIMIT,
        cursor: str | None = DELIVERY_CURSOR_PARAMETER,
    ) -> WebhookDeliveries:
        """A task's webhook delivery attempts, oldest first: time, HTTP status, latency, error, outcome.

        Paginated: `limit` per page (default 50); pass `next_cursor` back as `cursor` while `has_more`.
        """
        task = await task_service.get_task(resources, principal, task_id)
        return await deliveries_page(resources, task, cursor, limit)

    @post(
        "/{task_id:str}/webhooks/redeliver",
        status_code=202,
        opt=RATE_REDELIVER | NEEDS_GENERATE,
        responses={**error_responses(401, 404, 429, 503), **REDELIVER_CONFLICT},
    )
    async def redeliver(self, principal: Principal, resources: Resources, task_id: str) -> Redelivery:
        """Send the task's last event again, with the same `webhook-id` (receivers dedupe on it).

        A task has at most `SORAPI_WEBHOOK_REDELIVERIES_PER_TASK` (default 2) redeliveries in flight;
        one more is refused with 409 `redeliveries_in_flight` until one of them ends.
        """
        return await redeliver(resources, principal, task_id)
