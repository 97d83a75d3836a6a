"""The VideoTask workflow against a real Temporal (time-skipping) server and real PostgreSQL activities.

The ledger/task activities are real; only the GPU-side activities are faked, under their real names.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from temporalio import activity
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment
from temporalio.worker import Worker

from sorapi.activities.ledger import LedgerActivities
from sorapi.activities.slot_gate import GateActivities
from sorapi.activities.task_state import TaskStateActivities
from sorapi.contracts import errors, names
from sorapi.contracts.messages import (
    HoldInput,
    MarkFailed,
    RenderMeta,
    RenderResult,
    RenderSpec,
    SlotRequest,
    StoredObject,
    UploadInput,
    VideoTaskInput,
)
from sorapi.domain.ids import new_task_id
from sorapi.store import ledger
from sorapi.store.models import Account, LedgerEntry, Task
from sorapi.workers.orchestrator import WORKFLOWS, sandbox_runner
from tests.stack import make_account, own_sessions

PRICE = 16


def _spec(task_id: str) -> RenderSpec:
    return RenderSpec(
        task_id=task_id,
        model="sora-2-latest",
        family="wan",
        weights="w",
        prompt="p",
        negative_prompt=None,
        width=1280,
        height=720,
        duration_s=8,
        fps=16,
        guidance_scale=7.5,
        steps=4,
        seed=1,
    )


@pytest.fixture(scope="module")
async def sessions() -> AsyncIterator[Any]:
    """A database of the module's own.

    Its tasks run on the test servers, not the stack's Temporal, so the stack's sweeper (on the shared test database)
    would take a running one for stranded and settle it under the workflow (seen in CI as a capture finding its hold
    released).
    """
    async with own_sessions() as own:
        yield own


def _meta() -> RenderMeta:
    return RenderMeta(
        model="sora-2-latest",
        family="wan",
        width=128,
        height=64,
        num_frames=65,
        fps=8,
        steps=4,
        seed=1,
        guidance_scale=7.5,
        requested_width=1280,
        requested_height=720,
        dev_model=True,
        host="test",
    )


async def _queued_task(sessions: Any, *, credits: int = 1000, hold: bool = True) -> tuple[str, str]:
    account_id, _ = await make_account(sessions, credits=credits)
    task_id = new_task_id()
    async with sessions.begin() as session:
        session.add(Task(id=task_id, account_id=account_id, fingerprint="f", request={}, price=PRICE, outputs=[]))
        await session.flush()
        if hold:
            await ledger.reserve(session, await ledger.lock_account(session, account_id), task_id, PRICE)
    return account_id, task_id


def orchestration_activities(sessions: Any, gate_max_history: int = 5_000) -> list[Any]:
    """The orchestrator's real database activities (ledger, task rows, slot gate)."""
    ledger_acts, state = LedgerActivities(sessions), TaskStateActivities(sessions)
    return [
        ledger_acts.reserve_credits,
        ledger_acts.capture_credits,
        ledger_acts.release_credits,
        state.mark_succeeded,
        state.mark_failed,
        *GateActivities(sessions, gate_max_history=gate_max_history).all(),
    ]


async def _run(
    env: WorkflowEnvironment,
    sessions: Any,
    account_id: str,
    task_id: str,
    render_activities: list[Any],
    upload_pickup_s: float = 60.0,
    capture: Any = None,
    replace: Sequence[Any] = (),
    execution_timeout: timedelta | None = None,
    render_heartbeat_s: int = 30,
) -> Any:
    """Run one task to its end; `replace`: fakes that stand in for the real orchestrator activities of their names."""
    queue, render_queue = f"orch-{uuid.uuid4().hex}", f"render-{uuid.uuid4().hex}"
    fakes = {_name(fake): fake for fake in [*replace, *([capture] if capture else [])]}
    db_activities = [fakes.pop(_name(real), real) for real in orchestration_activities(sessions)]
    assert not fakes, f"no real activity of these names: {sorted(fakes)}"
    async with (
        Worker(
            env.client,
            task_queue=queue,
            workflows=WORKFLOWS,
            activities=db_activities,
            workflow_runner=sandbox_runner(),
        ),
        Worker(env.client, task_queue=render_queue, activities=render_activities[:1]),
        Worker(env.client, task_queue="live-host", activities=render_activities[1:]),
    ):
        return await env.client.execute_workflow(
            names.VIDEO_TASK_WORKFLOW,
            VideoTaskInput(
                task_id=task_id,
                account_id=account_id,
                price=PRICE,
                render=_spec(task_id),
                render_queue=render_queue,
                upload_pickup_s=upload_pickup_s,
                render_heartbeat_s=render_heartbeat_s,
            ),
            id=task_id,
            task_queue=queue,
            execution_timeout=execution_timeout,
        )


def _name(fn: Any) -> str:
    return activity._Definition.must_from_callable(fn).name


async def _state(sessions: Any, account_id: str, task_id: str) -> tuple[Task, Account, list[str]]:
    async with sessions() as session:
        task = await session.get(Task, task_id)
        account = await session.get(Account, account_id)
        kinds = (
            await session.scalars(
                select(LedgerEntry.kind).where(LedgerEntry.task_id == task_id).order_by(LedgerEntry.id)
            )
        ).all()
    return task, account, list(kinds)


@activity.defn(name=names.UPLOAD_OUTPUTS)
async def fake_upload(arg: UploadInput) -> list[StoredObject]:
    return [StoredObject(format="mp4", key=f"tasks/{arg.task_id}/video.mp4", content_type="video/mp4", size_bytes=1)]


async def test_render_failure_fails_the_task_and_releases_the_hold(
    time_env: WorkflowEnvironment, sessions: Any
) -> None:
    @activity.defn(name=names.RENDER_VIDEO)
    async def broken_render(spec: RenderSpec) -> RenderResult:
        raise ApplicationError("CUDA out of memory", type="render_failed", non_retryable=True)

    account_id, task_id = await _queued_task(sessions)
    with pytest.raises(WorkflowFailureError):
        await _run(time_env, sessions, account_id, task_id, [broken_render, fake_upload])
    task, account, kinds = await _state(sessions, account_id, task_id)
    assert (task.status, task.error_code, task.error_message) == (
        "failed",
        "render_failed",
        errors.task_message("render_failed"),
    )
    assert kinds == ["reserve", "release"]
    assert (account.balance, account.reserved) == (1000, 0)


async def test_unexpected_render_error_maps_to_render_failed(time_env: WorkflowEnvironment, sessions: Any) -> None:
    attempts = 0

    @activity.defn(name=names.RENDER_VIDEO)
    async def crashing_render(spec: RenderSpec) -> RenderResult:
        nonlocal attempts
        attempts += 1
        raise RuntimeError("driver exploded")

    account_id, task_id = await _queued_task(sessions)
    with pytest.raises(WorkflowFailureError):
        await _run(time_env, sessions, account_id, task_id, [crashing_render, fake_upload])
    task, account, kinds = await _state(sessions, account_id, task_id)
    assert attempts == 3, "transient render errors are retried, then the task fails"
    assert (task.status, task.error_code) == ("failed", "render_failed")
    assert task.error_message == errors.task_message("render_failed")
    assert "driver exploded" not in task.error_message and "RuntimeError" not in task.error_message
    assert kinds == ["reserve", "release"] and account.reserved == 0


async def test_success_captures_exactly_once(time_env: WorkflowEnvironment, sessions: Any) -> None:
    @activity.defn(name=names.RENDER_VIDEO)
    async def render(spec: RenderSpec) -> RenderResult:
        return RenderResult(host_queue="live-host", files=[], meta=_meta())

    account_id, task_id = await _queued_task(sessions)
    assert await _run(time_env, sessions, account_id, task_id, [render, fake_upload]) == "succeeded"
    task, account, kinds = await _state(sessions, account_id, task_id)
    assert task.status == "succeeded" and task.progress == 100
    assert task.outputs == [
        {"format": "mp4", "key": f"tasks/{task_id}/video.mp4", "content_type": "video/mp4", "size_bytes": 1}
    ]
    assert kinds == ["reserve", "capture"]
    assert (account.balance, account.reserved) == (1000 - PRICE, 0)


async def test_lost_render_host_means_render_again(local_env: WorkflowEnvironment, sessions: Any) -> None:
    """The first host vanishes before uploading (nobody polls its queue): the task renders again."""
    renders = 0

    @activity.defn(name=names.RENDER_VIDEO)
    async def render(spec: RenderSpec) -> RenderResult:
        nonlocal renders
        renders += 1
        queue = "dead-host" if renders == 1 else "live-host"
        return RenderResult(host_queue=queue, files=[], meta=_meta())

    account_id, task_id = await _queued_task(sessions)
    assert await _run(local_env, sessions, account_id, task_id, [render, fake_upload], upload_pickup_s=2) == "succeeded"
    task, _, kinds = await _state(sessions, account_id, task_id)
    assert renders == 2
    assert task.status == "succeeded" and kinds == ["reserve", "capture"]


async def test_a_host_that_goes_silent_mid_upload_costs_a_heartbeat_timeout(
    local_env: WorkflowEnvironment, sessions: Any
) -> None:
    """A render host frozen or killed while it uploads stops heartbeating, so the upload is retried soon.

    The attempt fails one heartbeat timeout later and is retried, instead of holding the task for the 15-minute upload
    timeout (found by bench.faults: a task stranded 16 minutes).
    """
    attempts = 0

    @activity.defn(name=names.RENDER_VIDEO)
    async def render(spec: RenderSpec) -> RenderResult:
        return RenderResult(host_queue="live-host", files=[], meta=_meta())

    @activity.defn(name=names.UPLOAD_OUTPUTS)
    async def upload(arg: UploadInput) -> list[StoredObject]:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            await asyncio.sleep(120)  # no heartbeat, no answer: a dead host, as the server sees it
        return await fake_upload(arg)

    account_id, task_id = await _queued_task(sessions)
    began = time.monotonic()
    assert await _run(local_env, sessions, account_id, task_id, [render, upload], render_heartbeat_s=2) == "succeeded"
    assert attempts == 2 and time.monotonic() - began < 60, (attempts, time.monotonic() - began)
    task, _, kinds = await _state(sessions, account_id, task_id)
    assert task.status == "succeeded" and kinds == ["reserve", "capture"]


async def test_race_past_the_api_fails_with_insufficient_credits_holding_nothing(
    time_env: WorkflowEnvironment, sessions: Any
) -> None:
    @activity.defn(name=names.RENDER_VIDEO)
    async def render(spec: RenderSpec) -> RenderResult:
        raise AssertionError("must not render without a hold")

    account_id, task_id = await _queued_task(sessions, credits=PRICE - 1, hold=False)
    with pytest.raises(WorkflowFailureError):
        await _run(time_env, sessions, account_id, task_id, [render, fake_upload])
    task, account, kinds = await _state(sessions, account_id, task_id)
    assert (task.status, task.error_code) == ("failed", "insufficient_credits")
    assert kinds == []
    assert (account.balance, account.reserved) == (PRICE - 1, 0)


async def test_cancel_after_the_video_exists_is_too_late(time_env: WorkflowEnvironment, sessions: Any) -> None:
    """A cancel that lands while credits are captured cannot leave a task `cancelled` but charged.

    Once the video is uploaded the task completes as succeeded.
    """
    real = LedgerActivities(sessions)

    @activity.defn(name=names.RENDER_VIDEO)
    async def render(spec: RenderSpec) -> RenderResult:
        return RenderResult(host_queue="live-host", files=[], meta=_meta())

    @activity.defn(name=names.CAPTURE_CREDITS)
    async def capture_during_cancel(hold: HoldInput) -> int:
        await time_env.client.get_workflow_handle(hold.task_id).cancel()
        await asyncio.sleep(0.5)
        return await real.capture_credits(hold)

    account_id, task_id = await _queued_task(sessions)
    outcome = await _run(time_env, sessions, account_id, task_id, [render, fake_upload], capture=capture_during_cancel)
    task, account, kinds = await _state(sessions, account_id, task_id)
    assert outcome == "succeeded" and task.status == "succeeded"
    assert kinds == ["reserve", "capture"]
    assert (account.balance, account.reserved) == (1000 - PRICE, 0)


@activity.defn(name=names.RENDER_VIDEO)
async def quick_render(spec: RenderSpec) -> RenderResult:
    return RenderResult(host_queue="live-host", files=[], meta=_meta())


@activity.defn(name=names.RENDER_VIDEO)
async def doomed_render(spec: RenderSpec) -> RenderResult:
    raise ApplicationError("CUDA out of memory", type="render_failed", non_retryable=True)


async def test_a_cancel_during_the_failure_settlement_lets_it_finish(
    time_env: WorkflowEnvironment, sessions: Any
) -> None:
    """The cancel lands while the failed task's hold is being released.

    The row still ends `failed`, the hold released, the slot given back.
    """
    ledger_acts, state, gate = LedgerActivities(sessions), TaskStateActivities(sessions), GateActivities(sessions)
    ended: list[str] = []

    @activity.defn(name=names.RELEASE_CREDITS)
    async def release_during_cancel(hold: HoldInput) -> int:
        await time_env.client.get_workflow_handle(hold.task_id).cancel()
        await asyncio.sleep(0.5)
        return await ledger_acts.release_credits(hold)

    @activity.defn(name=names.MARK_FAILED)
    async def mark_failed(arg: MarkFailed) -> bool:
        ended.append("marked")
        return await state.mark_failed(arg)

    @activity.defn(name=names.RELEASE_SLOT)
    async def release_slot(req: SlotRequest) -> None:
        ended.append("slot")
        await gate.release_slot(req)

    account_id, task_id = await _queued_task(sessions)
    with pytest.raises(WorkflowFailureError):
        await _run(
            time_env,
            sessions,
            account_id,
            task_id,
            [doomed_render, fake_upload],
            replace=[release_during_cancel, mark_failed, release_slot],
        )
    task, account, kinds = await _state(sessions, account_id, task_id)
    assert (task.status, task.error_code) == ("failed", "render_failed")
    assert kinds == ["reserve", "release"] and (account.balance, account.reserved) == (1000, 0)
    assert ended == ["marked", "slot"]


async def test_a_capture_that_conflicts_with_the_ledger_fails_at_once(
    time_env: WorkflowEnvironment, sessions: Any
) -> None:
    """The API released the hold of a task it gave up on: capturing it can never succeed.

    The task then settles as `ledger_conflict` instead of retrying the capture for ever.
    """
    account_id, task_id = await _queued_task(sessions)

    @activity.defn(name=names.RENDER_VIDEO)
    async def render_after_release(spec: RenderSpec) -> RenderResult:
        async with sessions.begin() as session:
            await ledger.release(session, account_id, spec.task_id, reason="the API gave up on the task")
        return RenderResult(host_queue="live-host", files=[], meta=_meta())

    with pytest.raises(WorkflowFailureError) as failed:  # an hour of skipped time: the capture retries no longer
        await _run(
            time_env,
            sessions,
            account_id,
            task_id,
            [render_after_release, fake_upload],
            execution_timeout=timedelta(hours=1),
        )
    assert isinstance(failed.value.cause, ApplicationError) and failed.value.cause.type == errors.LEDGER_CONFLICT
    task, account, kinds = await _state(sessions, account_id, task_id)
    assert (task.status, task.error_code) == ("failed", errors.LEDGER_CONFLICT)
    assert task.error_message == errors.task_message(errors.LEDGER_CONFLICT)
    assert kinds == ["reserve", "release"] and (account.balance, account.reserved) == (1000, 0)


async def test_capturing_a_released_hold_is_a_non_retryable_ledger_conflict(sessions: Any) -> None:
    account_id, task_id = await _queued_task(sessions)
    async with sessions.begin() as session:
        await ledger.release(session, account_id, task_id, reason="the API gave up on the task")
    with pytest.raises(ApplicationError) as raised:
        await ActivityEnvironment().run(
            LedgerActivities(sessions).capture_credits, HoldInput(task_id=task_id, account_id=account_id, amount=PRICE)
        )
    assert raised.value.type == errors.LEDGER_CONFLICT and raised.value.non_retryable


def _flaky_upload(failures: int) -> tuple[Any, list[int]]:
    """An upload whose store is unreachable for its first `failures` attempts."""
    attempts: list[int] = []

    @activity.defn(name=names.UPLOAD_OUTPUTS)
    async def upload(arg: UploadInput) -> list[StoredObject]:
        attempts.append(activity.info().attempt)
        if len(attempts) <= failures:
            raise ConnectionError("s3.internal:9000 refused the connection")
        return await fake_upload(arg)

    return upload, attempts


async def test_a_store_outage_of_minutes_does_not_lose_the_render(time_env: WorkflowEnvironment, sessions: Any) -> None:
    """Eight failed uploads (more than two minutes of backoff) and the ninth works: the task succeeds."""
    upload, attempts = _flaky_upload(failures=8)
    account_id, task_id = await _queued_task(sessions)
    assert await _run(time_env, sessions, account_id, task_id, [quick_render, upload]) == "succeeded"
    task, _, kinds = await _state(sessions, account_id, task_id)
    assert len(attempts) == 9 and task.status == "succeeded" and kinds == ["reserve", "capture"]


async def test_an_upload_that_never_works_fails_the_task_as_upload_failed(
    time_env: WorkflowEnvironment, sessions: Any
) -> None:
    upload, attempts = _flaky_upload(failures=10_000)
    account_id, task_id = await _queued_task(sessions)
    with pytest.raises(WorkflowFailureError):
        await _run(time_env, sessions, account_id, task_id, [quick_render, upload])
    task, account, kinds = await _state(sessions, account_id, task_id)
    assert len(attempts) > 5, "the upload was retried past a short outage"
    assert (task.status, task.error_code) == ("failed", errors.UPLOAD_FAILED)
    assert task.error_message == errors.task_message(errors.UPLOAD_FAILED)
    assert "s3.internal" not in task.error_message
    assert kinds == ["reserve", "release"] and (account.balance, account.reserved) == (1000, 0)
