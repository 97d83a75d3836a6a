"""Deliver one task event: up to 6 attempts within 24 hours, durable timers between them.

Started for the task's workflows by `start_webhook_delivery` (its own workflow, so a cancelled or
failed task can finish while its webhook keeps retrying), or by the API for a redelivery. Each
attempt is one `deliver_webhook` activity on the plan's lane; this workflow decides when to try
again (`sorapi.domain.webhook_policy`), with jitter from the workflow's deterministic random.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from sorapi.contracts import activities, names
    from sorapi.contracts.messages import DeliverWebhook, DeliveryOutcome, DeliveryReport, WebhookDeliveryInput
    from sorapi.domain import webhook_policy
    from sorapi.workflows import steps

ATTEMPT_TIMEOUT = timedelta(seconds=60)
"""One attempt: DNS, the 15 s HTTP budget and two small DB writes."""
ATTEMPT_RETRY = RetryPolicy(initial_interval=timedelta(seconds=2), maximum_attempts=3)
"""Retries of the activity itself (worker crash, DB hiccup); a recorded attempt is never re-sent."""
START_TIMEOUT = timedelta(seconds=30)
START_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30))
"""Starting a follow-up workflow must eventually happen: retried without limit."""


@workflow.defn(name=names.WEBHOOK_DELIVERY_WORKFLOW)
class WebhookDeliveryWorkflow:
    @workflow.run
    async def run(self, arg: WebhookDeliveryInput) -> DeliveryReport:
        first = workflow.now()
        delivery_id = workflow.info().workflow_id
        outcome = "failed"
        for attempt in range(1, webhook_policy.MAX_ATTEMPTS + 1):
            result = await self._attempt(arg, delivery_id, attempt)
            outcome = result.outcome
            if outcome != "retry" or attempt == webhook_policy.MAX_ATTEMPTS:
                break
            delay = webhook_policy.next_delay(
                attempt, workflow.now() - first, workflow.random().random(), result.retry_after_s
            )
            await workflow.sleep(delay, summary=f"webhook retry {attempt + 1}")
        return DeliveryReport(event_id=arg.event_id, outcome=outcome, attempts=attempt)

    async def _attempt(self, arg: WebhookDeliveryInput, delivery_id: str, attempt: int) -> DeliveryOutcome:
        step = DeliverWebhook(
            task_id=arg.task_id,
            event=arg.event,
            event_id=arg.event_id,
            delivery_id=delivery_id,
            attempt=attempt,
            max_attempts=webhook_policy.MAX_ATTEMPTS,
            trigger=arg.trigger,
            progress=arg.progress,
        )
        try:
            return await steps.run(
                activities.DELIVER_WEBHOOK,
                step,
                task_queue=arg.lane,
                start_to_close_timeout=ATTEMPT_TIMEOUT,
                retry_policy=ATTEMPT_RETRY,
                summary=f"webhook attempt {attempt}" + (f" ({arg.trigger})" if arg.trigger != "automatic" else ""),
            )
        except ActivityError as exc:
            workflow.logger.warning("webhook attempt %s could not run: %s", attempt, exc.cause or exc)
            final = attempt == webhook_policy.MAX_ATTEMPTS
            return DeliveryOutcome(outcome="failed" if final else "retry", error=str(exc.cause or exc))


async def announce(task_id: str, event: str, has_callback: bool, lane: str) -> None:
    """From a task's workflows: start the event's delivery, its own workflow.

    It retries for up to 24 h while the caller moves on. Call it only after the task row shows the event's state: a
    receiver that polls on receipt then always sees what the webhook announced. The starting activity skips an event the
    task's `webhook_events` leave out.
    """
    if not has_callback:
        return
    await steps.run(
        activities.START_WEBHOOK_DELIVERY,
        WebhookDeliveryInput(task_id=task_id, event=event, event_id=webhook_policy.event_id(task_id, event), lane=lane),
        start_to_close_timeout=START_TIMEOUT,
        retry_policy=START_RETRY,
        summary=f"start webhook delivery: {event}",
    )
