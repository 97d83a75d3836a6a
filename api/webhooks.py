"""Webhook endpoints: the account's signing secret (admin keys), a task's delivery log, redelivery."""

from __future__ import annotations

import functools
import uuid
from datetime import timedelta

from litestar import Controller, get, post
from litestar.openapi.datastructures import ResponseSpec
from temporalio.service import RPCError

from api import tasks
from api.auth import NEEDS_ADMIN, NEEDS_GENERATE, NEEDS_READ, Principal
from api.openapi import error_responses
from api.ratelimit import RATE_STATUS
from api.state import Resources
from sorapi import errors, names, status, webhook_policy
from sorapi.db import webhooks as rows
from sorapi.db.models import Task, WebhookDelivery
from sorapi.ids import webhook_workflow_id
from sorapi.messages import WebhookDeliveryInput
from sorapi.schemas import ErrorEnvelope, Redelivery, WebhookAttempt, WebhookDeliveries, WebhookSecret
from sorapi.secretbox import SecretBox, make_secret_box
from sorapi.settings import Settings

FORBIDDEN = {403: ResponseSpec(ErrorEnvelope, description="The API key lacks the `admin` scope (`insufficient_scope`)")}


@functools.lru_cache(maxsize=4)
def secret_box(settings: Settings) -> SecretBox:
    return make_secret_box(settings)


async def reveal_secret(res: Resources, principal: Principal) -> WebhookSecret:
    async with res.sessions.begin() as session:
        found = await rows.signing_secrets(session, principal.account_id, secret_box(res.settings))
    return WebhookSecret(secret=found.current, previous_secret_valid_until=found.previous_until)


async def rotate_secret(res: Resources, principal: Principal) -> WebhookSecret:
    overlap = timedelta(hours=res.settings.webhook_rotation_overlap_hours)
    async with res.sessions.begin() as session:
        fresh = await rows.rotate_secret(session, principal.account_id, secret_box(res.settings), overlap)
    return WebhookSecret(secret=fresh.current, previous_secret_valid_until=fresh.previous_until)


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
        return [attempt_view(row) for row in await rows.list_for_task(session, task.id)]


async def redeliver(res: Resources, principal: Principal, task_id: str) -> Redelivery:
    """Send the task's last event again (same `webhook-id`), with the full retry schedule."""
    task = await tasks.get_task(res, principal, task_id)
    if not task.request.get("callback_url"):
        raise errors.Conflict("this task has no callback_url", code=errors.NO_CALLBACK_URL)
    if task.status not in status.TERMINAL:
        raise errors.Conflict("the task has not finished: there is no event to redeliver yet")
    event = task.status
    delivery_id = f"{webhook_workflow_id(task.id, event)}-redeliver-{uuid.uuid4().hex[:12]}"
    arg = WebhookDeliveryInput(
        task_id=task.id,
        event=event,
        event_id=webhook_policy.event_id(task.id, event),
        lane=webhook_policy.lane(res.settings.webhook_queue_prefix, principal.plan),
        trigger="redeliver",
    )
    try:
        await res.temporal.start_workflow(
            names.WEBHOOK_DELIVERY_WORKFLOW, arg, id=delivery_id, task_queue=res.settings.orchestration_queue
        )
    except RPCError as exc:
        raise errors.ServiceUnavailable(
            "the orchestrator is unavailable; retry shortly", headers={"Retry-After": "5"}
        ) from exc
    return Redelivery(
        task_id=task.id, event_id=arg.event_id, event_type=webhook_policy.event_type(event), delivery_id=delivery_id
    )


class WebhookSecretController(Controller):
    path = "/api/webhooks"
    tags = ["webhooks"]

    @get("/secret", opt=RATE_STATUS | NEEDS_ADMIN, responses={**error_responses(401, 429), **FORBIDDEN})
    async def get_secret(self, principal: Principal, resources: Resources) -> WebhookSecret:
        """The account's webhook signing secret (`whsec_...`), for admin-scoped keys only.

        Verify `X-Signature` with the seed's `verifySora2Webhook(rawBody, signature, secret)`, or
        the Standard Webhooks headers with any Standard Webhooks library (or `openai`'s
        `client.webhooks.unwrap`), passing this exact string as the secret.
        """
        return await reveal_secret(resources, principal)

    @post(
        "/secret/rotate",
        status_code=200,
        opt=RATE_STATUS | NEEDS_ADMIN,
        responses={**error_responses(401, 429), **FORBIDDEN},
    )
    async def rotate(self, principal: Principal, resources: Resources) -> WebhookSecret:
        """Replace the secret. Until `previous_secret_valid_until`, deliveries carry both
        signatures (`webhook-signature: v1,<new> v1,<old>`, `X-Signature` new and
        `X-Signature-Previous` old), so receivers can switch without dropping a webhook."""
        return await rotate_secret(resources, principal)


class TaskWebhooksController(Controller):
    path = "/api/tasks"
    tags = ["webhooks"]

    @get("/{task_id:str}/webhooks", opt=RATE_STATUS | NEEDS_READ, responses=error_responses(401, 404, 429))
    async def list_deliveries(self, principal: Principal, resources: Resources, task_id: str) -> WebhookDeliveries:
        """Every webhook delivery attempt of a task: time, HTTP status, latency, error, outcome."""
        task = await tasks.get_task(resources, principal, task_id)
        return WebhookDeliveries(
            task_id=task.id, callback_url=task.request.get("callback_url"), deliveries=await attempts(resources, task)
        )

    @post(
        "/{task_id:str}/webhooks/redeliver",
        status_code=202,
        opt=RATE_STATUS | NEEDS_GENERATE,
        responses=error_responses(401, 404, 409, 429, 503),
    )
    async def redeliver(self, principal: Principal, resources: Resources, task_id: str) -> Redelivery:
        """Send the task's last event again, with the same `webhook-id` (receivers dedupe on it)."""
        return await redeliver(resources, principal, task_id)
