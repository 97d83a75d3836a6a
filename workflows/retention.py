"""A succeeded task's retention window: a durable timer, then its assets go and it expires.

Started by the task's workflow (an abandoned child, id `<task_id>-retention`) when the task
succeeds. `DELETE /api/tasks/{id}` signals it to end the window early; a cancel (an operator in
the Temporal UI) ends it early too, so assets are never left without an owner. Either way the
same steps run: the task is marked expired, its objects are deleted, the event is recorded and
the `expired` webhook is sent.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

with workflow.unsafe.imports_passed_through():
    from sorapi import names, status
    from sorapi.ids import retention_workflow_id
    from sorapi.messages import ExpireTask, RetentionInput
    from workflows.webhook_delivery import announce

EXPIRE_TIMEOUT = timedelta(minutes=5)
EXPIRE_RETRY = RetryPolicy(initial_interval=timedelta(seconds=5), maximum_interval=timedelta(minutes=5))
"""Deleting must eventually happen: retried without limit (S3 or the DB may be down for a while)."""


@workflow.defn(name=names.TASK_RETENTION_WORKFLOW)
class TaskRetentionWorkflow:
    def __init__(self) -> None:
        self._delete_requested = False

    @workflow.signal(name=names.DELETE_ASSETS_SIGNAL)
    def delete_assets(self) -> None:
        """End the retention window now."""
        self._delete_requested = True

    @workflow.run
    async def run(self, arg: RetentionInput) -> str:
        reason = "deleted"
        try:
            left = arg.expires_at - workflow.now()
            if left > timedelta(0):
                await workflow.wait_condition(lambda: self._delete_requested, timeout=left,
                                              timeout_summary="retention window")
            elif not self._delete_requested:
                reason = "retention"
        except asyncio.TimeoutError:
            reason = "retention"
        except asyncio.CancelledError:
            reason = "cancelled"
        await workflow.execute_activity(names.EXPIRE_TASK, ExpireTask(task_id=arg.task_id, reason=reason),
                                        start_to_close_timeout=EXPIRE_TIMEOUT, retry_policy=EXPIRE_RETRY)
        await announce(arg.task_id, status.EXPIRED, arg.has_callback, arg.webhook_queue)
        return reason


async def retain(arg: RetentionInput) -> None:
    """From a task's workflow: start its retention window as an abandoned child."""
    try:
        await workflow.start_child_workflow(
            names.TASK_RETENTION_WORKFLOW, arg, id=retention_workflow_id(arg.task_id),
            task_queue=workflow.info().task_queue, parent_close_policy=workflow.ParentClosePolicy.ABANDON,
        )
    except WorkflowAlreadyStartedError:
        pass  # a replayed or reset parent: the window is already running
