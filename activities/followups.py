"""Start the workflows that outlive a task's own: its webhook deliveries and its retention window.

They are started as independent workflows (deterministic ids, so a retried start finds the one
already running or finished) rather than as abandoned children: a cancelled or failed task's
workflow ends at once, its history stays short, and each follow-up can be inspected, retried or
terminated on its own. (Temporal's time-skipping test server also mishandles abandoned children
that outlive their parent: it stops skipping time for good.)
"""

from __future__ import annotations

import contextlib
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from sorapi.contracts import names
from sorapi.contracts.messages import RetentionInput, WebhookDeliveryInput
from sorapi.domain import webhook_events
from sorapi.domain.ids import retention_workflow_id, webhook_workflow_id
from sorapi.store.models import Task


class FollowUpActivities:
    def __init__(
        self, client: Client, task_queue: str, sessions: async_sessionmaker[AsyncSession] | None = None
    ) -> None:
        self._client, self._task_queue = client, task_queue
        self._sessions = sessions
        """Where to read a task's `webhook_events` (without: every event the workflows announce is sent)."""

    @activity.defn(name=names.START_WEBHOOK_DELIVERY)
    async def start_webhook_delivery(self, arg: WebhookDeliveryInput) -> str:
        """Start the event's delivery, unless the task's `webhook_events` leave it out ("" then)."""
        if self._sessions is not None:
            async with self._sessions() as session:
                request = await session.scalar(select(Task.request).where(Task.id == arg.task_id))
            if request is not None and not webhook_events.wants(request, arg.event):
                return ""
        return await self._start(
            names.WEBHOOK_DELIVERY_WORKFLOW,
            arg,
            webhook_workflow_id(arg.task_id, arg.event),
            summary=f"webhook {arg.event} for {arg.task_id}",
            details=f"Delivers the `{arg.event}` event of task `{arg.task_id}` (its workflow id) on lane {arg.lane}.",
        )

    @activity.defn(name=names.START_RETENTION)
    async def start_retention(self, arg: RetentionInput) -> str:
        return await self._start(
            names.TASK_RETENTION_WORKFLOW,
            arg,
            retention_workflow_id(arg.task_id),
            summary=f"retention of {arg.task_id} until {arg.expires_at:%Y-%m-%d %H:%M} UTC",
            details=f"Keeps the assets of task `{arg.task_id}` (its workflow id) until {arg.expires_at.isoformat()}, "
            "then deletes them and expires the task. Cancel this workflow to delete them now.",
        )

    async def _start(self, workflow: str, arg: Any, workflow_id: str, *, summary: str, details: str) -> str:
        return await start_once(
            self._client, workflow, arg, workflow_id, self._task_queue, summary=summary, details=details
        )


async def start_once(
    client: Client,
    workflow: str,
    arg: Any,
    workflow_id: str,
    task_queue: str,
    *,
    summary: str | None = None,
    details: str | None = None,
) -> str:
    """Start once: a retry finds the workflow running (USE_EXISTING) or finished (rejected).

    `summary` and `details` are what the Temporal UI shows for it (sorapi.adapters.search_attributes).
    """
    with contextlib.suppress(WorkflowAlreadyStartedError):
        await client.start_workflow(
            workflow,
            arg,
            id=workflow_id,
            task_queue=task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            static_summary=summary,
            static_details=details,
        )
    return workflow_id
