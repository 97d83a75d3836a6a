"""One durable workflow per task: reserve → wait for a slot → running → render → upload → capture → succeeded.

Pure orchestration: every side effect is an activity, referred to by name, carrying small
structs. A slot comes from the account's slot gate (`workflows/slot_gate.py`): the task asks
once and sleeps until the gate signals, so waiting costs nothing. Any failure marks the task
failed with a stable code and releases the hold; cancellation marks it cancelled and releases
the hold too; a start deadline that passes in the line expires it. Every end gives the slot
back and is announced by a webhook delivery workflow, and success starts the retention
workflow that later expires the task.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from datetime import datetime, timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeUpdate
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    TimeoutError,
    TimeoutType,
    is_cancelled_exception,
)

with workflow.unsafe.imports_passed_through():
    from sorapi.adapters import search_attributes
    from sorapi.contracts import activities, errors, names, status
    from sorapi.contracts.activities import Activity
    from sorapi.contracts.messages import (
        HoldInput,
        MarkFailed,
        MarkSucceeded,
        RenderMeta,
        RetentionInput,
        SlotRequest,
        StoredObject,
        UploadInput,
        VideoTaskInput,
    )
    from sorapi.workflows import steps
    from sorapi.workflows.retention import LOCAL_START_PATCH, retain
    from sorapi.workflows.webhook_delivery import announce

A = TypeVar("A")
R = TypeVar("R")
DB_TIMEOUT = timedelta(seconds=30)
SLOT_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=1.0,
    maximum_interval=timedelta(seconds=1),
    maximum_attempts=0,
)
"""Legacy: tasks started before the slot gate wait by retrying `acquire_slot` every second."""
SLOT_GATE_PATCH = "slot-gate"
"""Tasks started since ask their account's slot gate once and wait for its signal."""
ENDED_ELSEWHERE = "ended_elsewhere"
"""Result of a task that was already settled by someone else (the API, the sweeper) when it asked."""
DB_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=30),
    non_retryable_error_types=[errors.INSUFFICIENT_CREDITS],
)
RENDER_TIMEOUT = timedelta(hours=2)
RENDER_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2), maximum_attempts=3, non_retryable_error_types=[errors.RENDER_FAILED]
)
UPLOAD_TIMEOUT = timedelta(minutes=15)
UPLOAD_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2), maximum_interval=timedelta(minutes=1), maximum_attempts=12
)
"""About seven minutes of tries: a short S3 outage must not throw away a finished GPU render."""
MAX_RENDERS = 3
DISCARD_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=5), maximum_interval=timedelta(minutes=10), maximum_attempts=12
)
"""About an hour of tries: an unreachable store must not keep a finished task's workflow open for ever."""
DISCARD_OUTPUTS_PATCH = "discard-outputs-of-unsuccessful-tasks"
LOCAL_DB_STEPS_PATCH = "local-db-steps"
"""Tasks started since run their database steps as local activities, in the orchestrator worker that
runs the workflow: no trip through the server per step, so a freed slot reaches the next task's render
in a few workflow tasks instead of a dozen (issue 10's drain). The steps are short and idempotent.
Capture stays a normal activity: a local activity's result is lost with a workflow task that fails
(a signal or cancel arrived meanwhile), and the retried task may then decide otherwise; a capture
that ran must be seen, so that the task goes on to succeed and never ends cancelled but charged."""
SEARCH_ATTRIBUTES_PATCH = "search-attributes"
"""Tasks started since upsert their search attributes (sorapi.adapters.search_attributes) as they move:
queued, running, the render host, then the end with its error code and the credits charged."""
STAGE_MEMO = "stage"
"""Memo: "render" / "upload", set with the activity it schedules. Between two activities nothing is
pending, and the API reads this to keep a task's progress from falling back to 0. Before input
version 2 only: since, the same is read from the search attributes (`sorapi.adapters.search_attributes.stage`)."""


@workflow.defn(name=names.VIDEO_TASK_WORKFLOW)
class VideoTaskWorkflow:
    @workflow.init
    def __init__(self, task: VideoTaskInput) -> None:
        self._task = task
        self._expires_at: datetime | None = None
        self._granted = False
        self._asked_gate = False
        """The task asked its account's slot gate: its end must be told to the gate."""
        self._gated = False
        """Started since the slot gate (SLOT_GATE_PATCH)."""
        self._rendering = False
        """A render was scheduled: an upload may have left files behind."""
        self._local_db = False
        """Database steps run as local activities (LOCAL_DB_STEPS_PATCH)."""
        self._tagged = False
        """Search attributes are upserted as the task moves (SEARCH_ATTRIBUTES_PATCH)."""
        self._version = 0
        """The input's `version`: from 1 on, patched steps are taken without asking `workflow.patched`."""

    @workflow.signal(name=names.SLOT_GRANTED_SIGNAL)
    def slot_granted(self) -> None:
        self._granted = True

    @workflow.run
    async def run(self, task: VideoTaskInput) -> str:
        hold = HoldInput(task_id=task.task_id, account_id=task.account_id, amount=task.price)
        try:
            self._version = task.version
            self._tagged = self._since(SEARCH_ATTRIBUTES_PATCH)
            if self._version < 2:  # from 2 on, the API starts the workflow with these
                self._tag(
                    search_attributes.ACCOUNT_ID.value_set(task.account_id),
                    search_attributes.MODEL.value_set(task.render.model),
                    search_attributes.STATUS.value_set(status.QUEUED),
                    *([search_attributes.PLAN.value_set(task.plan)] if task.plan else []),
                )
            self._local_db = self._since(LOCAL_DB_STEPS_PATCH)
            await self._db(activities.RESERVE_CREDITS, hold, summary=f"reserve {task.price} credits")
            self._gated = self._since(SLOT_GATE_PATCH)
            if self._gated:
                slot = await self._wait_for_slot(task)
                if slot == ENDED_ELSEWHERE:
                    self._tag(search_attributes.STATUS.value_set(ENDED_ELSEWHERE))
                    return ENDED_ELSEWHERE
                if slot == status.EXPIRED:
                    await self._settle(
                        hold,
                        status.EXPIRED,
                        errors.QUEUE_TIMEOUT,
                        f"the task did not start within max_queue_seconds ({task.max_queue_s} s)",
                    )
                    return status.EXPIRED
            else:
                await steps.run(
                    activities.ACQUIRE_SLOT,
                    SlotRequest(task_id=task.task_id, account_id=task.account_id),
                    start_to_close_timeout=DB_TIMEOUT,
                    retry_policy=SLOT_RETRY,
                    summary="wait for a slot",
                )
            self._tag(search_attributes.STATUS.value_set(status.RUNNING))
            outputs, meta = await self._render_and_upload(task)
            await _past_cancelling(self._succeed(hold, outputs, meta))
            self._tag(
                search_attributes.STATUS.value_set(status.SUCCEEDED),
                search_attributes.CREDITS_CHARGED.value_set(task.price),
            )
            await _past_cancelling(self._hand_over())
            return status.SUCCEEDED
        except asyncio.CancelledError:
            await self._settle(hold, status.CANCELLED, errors.CANCELLED, "the task was cancelled")
            raise
        except ActivityError as exc:
            if is_cancelled_exception(exc):  # a cancel reaches us as the cancelled activity's error
                await self._settle(hold, status.CANCELLED, errors.CANCELLED, "the task was cancelled")
                raise
            code, detail = _failure(exc)
            await self._settle(hold, status.FAILED, code, detail)
            raise ApplicationError(errors.task_message(code), type=code, non_retryable=True) from exc
        except ApplicationError as exc:  # raised by this workflow itself (render hosts kept vanishing)
            code = str(exc.type) if exc.type in KNOWN_CODES else errors.INTERNAL_ERROR
            await self._settle(hold, status.FAILED, code, exc.message)
            raise ApplicationError(errors.task_message(code), type=code, non_retryable=True) from exc

    async def _wait_for_slot(self, task: VideoTaskInput) -> str:
        """Join the account's line and sleep until the gate grants a slot.

        Returns `running`, or `expired` when `max_queue_s` passes first, or ENDED_ELSEWHERE.
        """
        request = SlotRequest(task_id=task.task_id, account_id=task.account_id, gate_queue=workflow.info().task_queue)
        if not await self._db(activities.REQUEST_SLOT, request, summary="join the account's line"):
            return ENDED_ELSEWHERE
        self._asked_gate = True
        deadline = timedelta(seconds=task.max_queue_s) if task.max_queue_s else None
        try:
            await workflow.wait_condition(
                lambda: self._granted, timeout=deadline, timeout_summary="start deadline (max_queue_seconds)"
            )
        except asyncio.TimeoutError:
            if not self._granted:
                return status.EXPIRED
        if await self._db(activities.MARK_RUNNING, task.task_id, summary="mark running"):
            return status.RUNNING
        await self._release_slot()
        return ENDED_ELSEWHERE

    async def _release_slot(self) -> None:
        """Give the slot (or the place in line) back: every end of the task comes through here."""
        if not self._asked_gate:
            return
        self._asked_gate = False
        task = self._task
        await self._db(
            activities.RELEASE_SLOT,
            SlotRequest(task_id=task.task_id, account_id=task.account_id, gate_queue=workflow.info().task_queue),
            summary="give the slot back",
        )

    async def _render_and_upload(self, task: VideoTaskInput) -> tuple[list[StoredObject], RenderMeta]:
        """Render, then upload from the same host; if that host vanished, render again elsewhere."""
        self._rendering = True
        for attempt in range(1, MAX_RENDERS + 1):
            self._stage("render")
            rendered = await steps.run(
                activities.RENDER_VIDEO,
                task.render,
                task_queue=task.render_queue,
                start_to_close_timeout=RENDER_TIMEOUT,
                heartbeat_timeout=timedelta(seconds=task.render_heartbeat_s),
                retry_policy=RENDER_RETRY,
                cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
                summary=search_attributes.render_summary(task.render) + (f" (host {attempt})" if attempt > 1 else ""),
            )
            self._tag(search_attributes.RENDER_HOST.value_set(rendered.host_queue))
            self._stage("upload")
            try:
                outputs = await steps.run(
                    activities.UPLOAD_OUTPUTS,
                    UploadInput(task_id=task.task_id, files=rendered.files),
                    task_queue=rendered.host_queue,
                    schedule_to_start_timeout=timedelta(seconds=task.upload_pickup_s),
                    start_to_close_timeout=UPLOAD_TIMEOUT,
                    # A host that dies mid-upload is noticed in a heartbeat timeout, not UPLOAD_TIMEOUT:
                    # the retry then finds no poller on its queue and the task renders again elsewhere.
                    heartbeat_timeout=timedelta(seconds=task.render_heartbeat_s),
                    retry_policy=UPLOAD_RETRY,
                    # A cancel during the upload lets it finish: the task then succeeds ("too late to
                    # cancel") instead of ending cancelled with files left behind in S3.
                    cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
                    summary=f"upload {_files(len(rendered.files))} from {rendered.host_queue}",
                )
                return outputs, rendered.meta
            except ActivityError as exc:
                if not _host_lost(exc):
                    raise
                workflow.logger.warning("render host %s is gone; rendering again", rendered.host_queue)
        raise ApplicationError("render hosts kept disappearing before upload", type=errors.RENDER_FAILED)

    async def _succeed(self, hold: HoldInput, outputs: list[StoredObject], meta: RenderMeta) -> None:
        await self._db(activities.CAPTURE_CREDITS, hold, durable=True, summary=f"capture {hold.amount} credits")
        await self._db(
            activities.MARK_SUCCEEDED,
            MarkSucceeded(task_id=hold.task_id, outputs=outputs, render=meta, expires_at=self._retain_until()),
            summary=f"mark succeeded ({_files(len(outputs))})",
        )
        await self._release_slot()

    async def _db(self, activity: Activity[A, R], arg: A, *, durable: bool = False, summary: str) -> R:
        """A database step; a local activity since LOCAL_DB_STEPS_PATCH unless `durable`."""
        run = steps.run_local if self._local_db and not durable else steps.run
        return await run(activity, arg, start_to_close_timeout=DB_TIMEOUT, retry_policy=DB_RETRY, summary=summary)

    def _since(self, patch: str) -> bool:
        """Whether this run takes the step `patch` brought.

        Always from input version 1 on (no marker), else as its history recorded it.
        """
        return self._version >= 1 or workflow.patched(patch)

    def _stage(self, stage: str) -> None:
        """Record the step being scheduled in the STAGE_MEMO, before input version 2.

        From 2 on the API reads it from the search attributes (`search_attributes.stage`), and the memo's write is
        saved.
        """
        if self._version < 2:
            workflow.upsert_memo({STAGE_MEMO: stage})

    def _tag(self, *updates: SearchAttributeUpdate[Any]) -> None:
        """Upsert search attributes: the Temporal UI's view of the task (SEARCH_ATTRIBUTES_PATCH)."""
        if self._tagged:
            workflow.upsert_search_attributes(list(updates))

    async def _settle(self, hold: HoldInput, final: str, code: str, detail: str) -> None:
        """End the task as `final` with `code`, even if a cancel arrives meanwhile.

        A settlement cut short would leave the row open, the hold held and the slot taken. The customer sees only the
        code's fixed message; `detail` (exception text) goes to the log, bound to the task.
        """
        log = workflow.logger.warning if final == status.FAILED else workflow.logger.info
        log("task %s ends %s (%s): %s", hold.task_id, final, code, detail)
        await _past_cancelling(
            self._record_end(hold, final, code), "cancel requested while the task settles; it settles first"
        )

    async def _record_end(self, hold: HoldInput, final: str, code: str) -> None:
        """Return the hold (capture never happened on this path), then record the end state.

        A client that sees `failed`/`cancelled` also sees its credits back. Last, delete whatever an upload that failed
        part-way left in S3: nothing of such a task is ever served.
        """
        await self._db(activities.RELEASE_CREDITS, hold, summary=f"release {hold.amount} credits")
        await self._db(
            activities.MARK_FAILED,
            MarkFailed(task_id=hold.task_id, status=final, error_code=code, error_message=errors.task_message(code)),
            summary=f"mark {final} ({code})",
        )
        self._tag(
            search_attributes.STATUS.value_set(final),
            search_attributes.ERROR_CODE.value_set(code),
            search_attributes.CREDITS_CHARGED.value_set(0),
        )
        await self._release_slot()
        await announce(self._task.task_id, final, self._task.has_callback, self._task.webhook_queue)
        render = self._task.render
        if self._gated and not self._rendering and not render.image_key and not render.source_video_key:
            # Nothing was rendered, so nothing can have been uploaded. An image-to-video task has its input
            # images under its prefix from the start, an extension its source's video: they go too. (No
            # patch: the input decides, and every history recorded before these keys existed has them
            # empty, so it replays this branch.)
            return
        if self._since(DISCARD_OUTPUTS_PATCH):  # workflows that settled before this step replay without it
            try:
                await steps.run(
                    activities.DISCARD_OUTPUTS,
                    hold.task_id,
                    start_to_close_timeout=DB_TIMEOUT,
                    retry_policy=DISCARD_RETRY,
                    summary="delete partial outputs",
                )
            except ActivityError:  # the task's end is already recorded and announced; leftovers get logged
                workflow.logger.warning("could not delete the partial outputs of %s", hold.task_id)

    def _retain_until(self) -> datetime | None:
        if self._task.retention_hours > 0:
            self._expires_at = workflow.now() + timedelta(hours=self._task.retention_hours)
        return self._expires_at

    async def _hand_over(self) -> None:
        """Start the assets' retention window and announce success, then this workflow ends.

        The window is a durable timer that deletes the assets and expires the task; both run as their own workflows.
        """
        task = self._task
        if self._expires_at is not None:
            await retain(
                RetentionInput(
                    task_id=task.task_id,
                    expires_at=self._expires_at,
                    has_callback=task.has_callback,
                    webhook_queue=task.webhook_queue,
                ),
                local=self._since(LOCAL_START_PATCH),
            )
        await announce(task.task_id, status.SUCCEEDED, task.has_callback, task.webhook_queue)


async def _past_cancelling(
    step: Coroutine[Any, Any, None], note: str = "cancel requested after the video was made; the task completes"
) -> None:
    """Run `step` to its end even if a cancel arrives meanwhile.

    Once the video is uploaded, the task is charged and succeeds (a cancel then is too late), never `cancelled` but
    charged; and a task that is settling finishes settling.
    """
    running = asyncio.ensure_future(step)
    while True:
        try:
            return await asyncio.shield(running)
        except asyncio.CancelledError:
            workflow.logger.warning(note)


def _files(count: int) -> str:
    return f"{count} file" + ("" if count == 1 else "s")


def _host_lost(exc: ActivityError) -> bool:
    cause = exc.cause
    return isinstance(cause, TimeoutError) and cause.type == TimeoutType.SCHEDULE_TO_START


def _failure(exc: ActivityError) -> tuple[str, str]:
    """A stable error code, and the failure's details for the log (never for customers)."""
    cause = exc.cause
    while isinstance(cause, ActivityError):
        cause = cause.cause
    detail = f"{exc.activity_type}: {cause or exc}"
    if isinstance(cause, ApplicationError) and cause.type in KNOWN_CODES:
        return str(cause.type), detail
    if exc.activity_type == names.UPLOAD_OUTPUTS:  # retried for minutes (UPLOAD_RETRY): the store stayed away
        return errors.UPLOAD_FAILED, detail
    if isinstance(cause, TimeoutError):
        return errors.TIMEOUT, f"{exc.activity_type} timed out ({cause.type.name if cause.type else 'unknown'})"
    fallback = errors.RENDER_FAILED if exc.activity_type == names.RENDER_VIDEO else errors.INTERNAL_ERROR
    return fallback, detail


KNOWN_CODES = frozenset(
    {
        errors.INSUFFICIENT_CREDITS,
        errors.RENDER_FAILED,
        errors.UPLOAD_FAILED,
        errors.TIMEOUT,
        errors.VALIDATION_ERROR,
        errors.QUEUE_TIMEOUT,
        errors.LEDGER_CONFLICT,
    }
)
