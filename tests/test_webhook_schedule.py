"""The webhook retry schedule, proven on a time-skipping Temporal server.

Real workflows, real delivery activity over HTTP to a loopback receiver, real PostgreSQL delivery log.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from temporalio.client import WorkflowFailureError

from sorapi.contracts.messages import DeliveryReport
from sorapi.domain import webhook_policy
from sorapi.store.models import WebhookDelivery
from tests.lifecycle_env import Lifecycle, lifecycle_env
from tests.stack import fresh_pg_database
from tests.webhook_receiver import Received

DAY = timedelta(hours=24)


@pytest.fixture(scope="module")
async def lc(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Lifecycle]:
    """A database of the module's own (the stack's sweeper must not see tasks of another Temporal server)."""
    with fresh_pg_database() as url:
        async with lifecycle_env(tmp_path_factory.mktemp("webhook-schedule"), url) as lifecycle:
            yield lifecycle


def _path(name: str) -> str:
    return f"/{name}-{uuid.uuid4().hex[:8]}"


def _announcing(lc: Lifecycle, path: str, event: str) -> list[Received]:
    """Requests for one event type (once time skips, the task's `expired` event may follow)."""
    return [r for r in lc.receiver.at(path) if json.loads(r.body)["type"] == f"task.{event}"]


def _span(rows: list[WebhookDelivery]) -> timedelta:
    return rows[-1].attempted_at - rows[0].attempted_at


async def _succeeded_delivery(lc: Lifecycle, path: str) -> tuple[str, DeliveryReport, list[WebhookDelivery]]:
    task_id, _ = await lc.create(path=path)
    assert await lc.finished(task_id) == "succeeded"
    report = DeliveryReport(**await lc.result(f"{task_id}-webhook-succeeded"))  # skips the schedule's time
    rows = [r for r in await lc.deliveries(task_id) if r.event_type == "task.succeeded"]
    return task_id, report, rows


async def test_fails_five_times_then_delivered_on_the_sixth_attempt_within_24h(lc: Lifecycle) -> None:
    path = _path("flaky")
    lc.receiver.scripts[path] = [(500, {})] * 5 + [(200, {})]
    task_id, report, rows = await _succeeded_delivery(lc, path)

    assert (report.outcome, report.attempts) == ("delivered", 6)
    assert [(r.attempt, r.outcome, r.status_code) for r in rows] == [
        (1, "retry", 500),
        (2, "retry", 500),
        (3, "retry", 500),
        (4, "retry", 500),
        (5, "retry", 500),
        (6, "delivered", 200),
    ]
    assert all(r.error == "HTTP 500" and r.latency_ms is not None for r in rows[:5])
    assert timedelta(hours=23) < _span(rows) <= DAY, "the schedule spans (but never exceeds) 24 hours"
    gaps = [later.attempted_at - earlier.attempted_at for earlier, later in itertools.pairwise(rows)]
    assert all(gap > timedelta(seconds=29) for gap in gaps), gaps
    assert gaps[0] < timedelta(minutes=2), "the first retry comes about a minute later"

    received = _announcing(lc, path, "succeeded")
    assert len(received) == 6
    assert len({r.headers["webhook-id"] for r in received}) == 1, "one event, one webhook-id on every retry"
    assert received[0].headers["webhook-id"] == webhook_policy.event_id(task_id, "succeeded")
    assert len({r.headers["webhook-timestamp"] for r in received}) >= 1
    assert all(r.extra == "succeeded" for r in received), "the row said succeeded before every attempt"
    kinds = [e.kind for e in await lc.events(task_id)]
    assert "webhook_delivered" in kinds


async def test_always_failing_receiver_stops_after_six_attempts_and_the_task_records_it(lc: Lifecycle) -> None:
    path = _path("down")
    lc.receiver.scripts[path] = [(503, {})]
    task_id, report, rows = await _succeeded_delivery(lc, path)

    assert (report.outcome, report.attempts) == ("failed", 6)
    assert [r.outcome for r in rows] == ["retry"] * 5 + ["failed"]
    assert _span(rows) <= DAY
    assert len(_announcing(lc, path, "succeeded")) == 6, "no seventh attempt"
    failed = [e for e in await lc.events(task_id) if e.kind == "webhook_failed"]
    assert len(failed) == 1 and failed[0].data["attempts"] == 6 and failed[0].data["status_code"] == 503


async def test_retry_after_on_429_is_honoured(lc: Lifecycle) -> None:
    path = _path("throttled")
    lc.receiver.scripts[path] = [(429, {"Retry-After": "7200"}), (200, {})]
    _, report, rows = await _succeeded_delivery(lc, path)

    assert (report.outcome, report.attempts) == ("delivered", 2)
    assert rows[0].retry_after_s == 7200
    assert _span(rows) >= timedelta(hours=2), "the nominal 1-minute retry waited for Retry-After"


async def test_410_gone_stops_retries(lc: Lifecycle) -> None:
    path = _path("gone")
    lc.receiver.scripts[path] = [(410, {})]
    task_id, report, rows = await _succeeded_delivery(lc, path)

    assert (report.outcome, report.attempts) == ("gone", 1)
    assert [(r.outcome, r.status_code) for r in rows] == [("gone", 410)]
    assert any(e.kind == "webhook_gone" for e in await lc.events(task_id))


async def test_failed_and_cancelled_tasks_are_announced_after_the_row_says_so(lc: Lifecycle) -> None:
    path = _path("ends")
    failed_id, _ = await lc.create(path=path, prompt="please fail")
    with pytest.raises(WorkflowFailureError):
        await lc.finished(failed_id)
    assert DeliveryReport(**await lc.finished(f"{failed_id}-webhook-failed")).outcome == "delivered"

    cancelled_id, _ = await lc.create(path=path, prompt="a slow render")
    handle = await lc.handle(cancelled_id)
    while (await lc.task(cancelled_id)).status != "running":
        await asyncio.sleep(0.1)
    await handle.cancel()
    with pytest.raises(WorkflowFailureError):
        await lc.finished(cancelled_id)
    assert DeliveryReport(**await lc.finished(f"{cancelled_id}-webhook-cancelled")).outcome == "delivered"

    bodies = {json.loads(r.body)["task_id"]: (json.loads(r.body), r.extra) for r in lc.receiver.at(path)}
    failed, seen = bodies[failed_id]
    assert (failed["type"], failed["status"], failed["error_code"], seen) == (
        "task.failed",
        "failed",
        "render_failed",
        "failed",
    )
    assert failed["response"] == [] and failed["request"]["prompt"] == "please fail"
    cancelled, seen = bodies[cancelled_id]
    assert (cancelled["type"], cancelled["status"], cancelled["error_code"], seen) == (
        "task.cancelled",
        "cancelled",
        "cancelled",
        "cancelled",
    )
