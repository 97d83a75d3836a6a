"""A succeeded task's retention window: a durable timer, then its assets go and it expires.

Started for the task's workflow by `start_retention` (its own workflow, id `<task_id>-retention`)
when the task succeeds. `DELETE /api/tasks/{id}` signals it to end the window early; a cancel (an operator in
the Temporal UI) ends it early too, so assets are never left without an owner. Either way the
same steps run: the task is marked expired, its objects are deleted, the event is recorded and
the `expired` webhook is sent.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from sorapi.contracts import activities, names, status
    from sorapi.contracts.messages import ExpireTask, RetentionInput
    from sorapi.workflows import steps
    from sorapi.workflows.webhook_delivery import START_RETRY, START_TIMEOUT, announce

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
                await workflow.wait_condition(
                    lambda: self._delete_requested, timeout=left, timeout_summary="retention window"
                )
            elif not self._delete_requested:
                reason = "retention"
        except asyncio.TimeoutError:
            reason = "retention"
        except asyncio.CancelledError:
            reason = "cancelled"
        await steps.run(
            activities.EXPIRE_TASK,
            ExpireTask(task_id=arg.task_id, reason=reason),
            start_to_close_timeout=EXPIRE_TIMEOUT,
            retry_policy=EXPIRE_RETRY,
            summary=f"expire the task and delete its assets ({reason})",
        )
        await announce(arg.task_id, status.EXPIRED, arg.has_callback, arg.webhook_queue)
        return reason


LOCAL_START_PATCH = "local-retention-start"
"""Since this patch the start is a local activity: one start RPC (idempotent: `start_once`) needs no
activity task and no workflow task of its own, the last step of every succeeded task (bench.queue)."""


async def retain(arg: RetentionInput, *, local: bool) -> None:
    """From a task's workflow: start its retention window (its own long-lived workflow).

    `local`: as a local activity (the caller decides, by LOCAL_START_PATCH).
    """
    summary = f"start retention until {arg.expires_at:%Y-%m-%d %H:%M} UTC"
    if local:
        await steps.run_local(
            activities.START_RETENTION,
            arg,
            start_to_close_timeout=START_TIMEOUT,
            retry_policy=START_RETRY,
            summary=summary,
        )
        return
    await steps.run(
        activities.START_RETENTION, arg, start_to_close_timeout=START_TIMEOUT, retry_policy=START_RETRY, summary=summary
    )
