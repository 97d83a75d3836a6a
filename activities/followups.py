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

from temporalio import activity
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from sorapi import names
from sorapi.ids import retention_workflow_id, webhook_workflow_id
from sorapi.messages import RetentionInput, WebhookDeliveryInput


class FollowUpActivities:
    def __init__(self, client: Client, task_queue: str) -> None:
        self._client, self._task_queue = client, task_queue

    @activity.defn(name=names.START_WEBHOOK_DELIVERY)
    async def start_webhook_delivery(self, arg: WebhookDeliveryInput) -> str:
        return await self._start(names.WEBHOOK_DELIVERY_WORKFLOW, arg, webhook_workflow_id(arg.task_id, arg.event))

    @activity.defn(name=names.START_RETENTION)
    async def start_retention(self, arg: RetentionInput) -> str:
        return await self._start(names.TASK_RETENTION_WORKFLOW, arg, retention_workflow_id(arg.task_id))

    async def _start(self, workflow: str, arg: Any, workflow_id: str) -> str:
        return await start_once(self._client, workflow, arg, workflow_id, self._task_queue)


async def start_once(client: Client, workflow: str, arg: Any, workflow_id: str, task_queue: str) -> str:
    """Start once: a retry finds the workflow running (USE_EXISTING) or finished (rejected)."""
    with contextlib.suppress(WorkflowAlreadyStartedError):
        await client.start_workflow(
            workflow,
            arg,
            id=workflow_id,
            task_queue=task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        )
    return workflow_id
