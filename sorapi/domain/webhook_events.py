"""Which of a task's events its webhook receives (`webhook_events`), and how each delivery starts.

A task's webhook receives the events named by `webhook_events` at creation, else DEFAULT (the
terminal events, as before the field existed). Every event is delivered the same way: a
`WebhookDelivery` workflow with a deterministic id, so a repeated start (an activity retry, a
replayed create) finds the delivery already running or done instead of sending it twice. Who starts
it is whoever changed the task: the API (`queued`), `mark_running` (`running`), the render host
(`progress`: it is the only place progress exists as it happens), the task's and retention
workflows (the terminal events).

`progress` is throttled to one delivery per PROGRESS_INTERVAL_S per task by a conditional update
of the task row (`sorapi.store.progress_claims`), which holds across activity retries, renders
started again and any number of hosts.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from sorapi.contracts import names, status
from sorapi.contracts.messages import WebhookDeliveryInput, WebhookProgress
from sorapi.domain import webhook_policy
from sorapi.domain.ids import webhook_workflow_id

PROGRESS = "progress"
EVENTS = (status.QUEUED, status.RUNNING, PROGRESS, status.SUCCEEDED, status.FAILED, status.CANCELLED, status.EXPIRED)
"""Every event a webhook can receive, in the order a task goes through them."""
DEFAULT = (status.SUCCEEDED, status.FAILED, status.CANCELLED, status.EXPIRED)
"""What a task created without `webhook_events` receives: its end (and the expiry of its assets)."""
PROGRESS_INTERVAL_S = 5
"""At most one `progress` delivery per task in this many seconds."""


def selected(request: Mapping[str, Any]) -> frozenset[str]:
    """The events a task's webhook receives, from its recorded request: none without a callback_url."""
    if not request.get("callback_url"):
        return frozenset()
    return frozenset(request.get("webhook_events") or DEFAULT)


def wants(request: Mapping[str, Any], event: str) -> bool:
    return event in selected(request)


def event_id(task_id: str, event: str, progress: WebhookProgress | None = None) -> str:
    """The event's `webhook-id`: one per status event, one per denoising step for `progress`."""
    return webhook_policy.event_id(task_id, f"{PROGRESS}:{progress.step}" if progress is not None else event)


def workflow_id(task_id: str, event: str, progress: WebhookProgress | None = None) -> str:
    """The workflow id of the automatic delivery of one event.

    A progress beat's names its step, so a render retried from step 1 finds the steps it already announced taken.
    """
    if progress is not None:
        return f"{webhook_workflow_id(task_id, PROGRESS)}-{progress.step}"
    return webhook_workflow_id(task_id, event)


def delivery(task_id: str, event: str, lane: str, progress: WebhookProgress | None = None) -> WebhookDeliveryInput:
    return WebhookDeliveryInput(
        task_id=task_id, event=event, event_id=event_id(task_id, event, progress), lane=lane, progress=progress
    )


async def announce(
    client: Client,
    *,
    task_id: str,
    event: str,
    lane: str,
    task_queue: str,
    progress: WebhookProgress | None = None,
) -> str:
    """Start the event's delivery workflow once: a repeat finds it running (USE_EXISTING) or ended (rejected).

    Call it only once the task row shows what the event announces.
    """
    workflow = workflow_id(task_id, event, progress)
    with contextlib.suppress(WorkflowAlreadyStartedError):
        await client.start_workflow(
            names.WEBHOOK_DELIVERY_WORKFLOW,
            delivery(task_id, event, lane, progress),
            id=workflow,
            task_queue=task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            static_summary=f"webhook {event} for {task_id}",  # the operator console (docs/operations.md)
        )
    return workflow
