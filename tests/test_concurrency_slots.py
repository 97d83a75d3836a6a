"""Plan concurrency on the real stack: a Free account (2 concurrent jobs) submits 10 tasks at once.

Never more than 2 run, the rest wait `queued` with a queue position, and all 10 succeed.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from sqlalchemy import select
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from sorapi.activities.slots import SLOT_BUSY, SlotActivities
from sorapi.contracts.messages import SlotRequest
from sorapi.domain.catalog import get_catalog
from sorapi.domain.ids import new_task_id
from sorapi.store import ledger, slots, task_rows
from sorapi.store.models import Account, Task
from tests.stack import Api, Stack, make_account

TASK = {"prompt": "a lighthouse in a storm", "duration": 1, "resolution": "480x480"}


async def test_free_plan_runs_at_most_two_and_finishes_all_ten(stack: Stack, sessions: Any) -> None:
    limit = get_catalog().plans["free"].max_concurrent_jobs
    assert limit == 2
    account_id, key = await make_account(sessions, plan="free", credits=100)
    api = Api(stack.base_url, key)
    try:
        created = await asyncio.gather(*(api.generate({**TASK, "seed": n}) for n in range(10)))
        assert [r.status_code for r in created] == [200] * 10
        ids = {r.json()["task_id"] for r in created}

        most_running, positions, deadline = 0, {}, time.monotonic() + 180
        while time.monotonic() < deadline:
            async with sessions() as session:
                rows = dict(
                    (await session.execute(select(Task.id, Task.status).where(Task.account_id == account_id))).all()
                )
            running = [t for t, s in rows.items() if s == "running"]
            queued = sorted(t for t, s in rows.items() if s == "queued")
            most_running = max(most_running, len(running))
            assert len(running) <= limit, f"{len(running)} running at once"
            if queued and len(positions) < 3:
                body = (await api.status(queued[-1])).json()
                if body.get("status") == "queued":
                    positions[queued[-1]] = body["queue_position"]
            if all(s in ("succeeded", "failed", "cancelled") for s in rows.values()):
                break
            await asyncio.sleep(0.05)
        assert set(rows) == ids and set(rows.values()) == {"succeeded"}, rows
        assert most_running == limit, "both slots were used"
        assert positions and all(p >= 1 for p in positions.values()), positions
        async with sessions() as session:
            tasks = (await session.scalars(select(Task).where(Task.account_id == account_id))).all()
        assert all(t.started_at is not None for t in tasks)
        # Ten tasks created within milliseconds of each other have no meaningful submission order:
        # FIFO among waiters is proven deterministically by the queue-position test below.
    finally:
        await api.close()


async def test_queue_position_counts_older_queued_tasks_of_the_account(sessions: Any) -> None:
    account_id, _ = await make_account(sessions, credits=100)
    other_id, _ = await make_account(sessions, credits=100)
    ids = [new_task_id() for _ in range(3)]
    async with sessions.begin() as session:
        for owner in (account_id, other_id):
            for n, task_id in enumerate(ids):
                session.add(
                    Task(
                        id=task_id if owner == account_id else new_task_id(),
                        account_id=owner,
                        fingerprint=str(n),
                        request={},
                        price=1,
                        outputs=[],
                    )
                )
                await session.flush()
    async with sessions() as session:
        tasks = [await session.get(Task, t) for t in ids]
        assert [await slots.queue_position(session, t) for t in tasks] == [1, 2, 3]


async def test_a_finished_task_frees_its_slot_and_an_orphan_is_reaped(stack: Stack, sessions: Any) -> None:
    """Slots are task statuses: a failed (or cancelled) task gives its slot back at once.

    A task whose workflow vanished (terminated by an operator) is failed by the next waiter, freeing its slot.
    """
    account_id, _ = await make_account(sessions, credits=100)
    a, b, c, d = (new_task_id() for _ in range(4))
    async with sessions.begin() as session:
        account = await ledger.lock_account(session, account_id)
        for task_id in (a, b, c, d):
            session.add(Task(id=task_id, account_id=account_id, fingerprint=task_id, request={}, price=1, outputs=[]))
            await session.flush()
            await ledger.reserve(session, account, task_id, 1)
    env = ActivityEnvironment()
    gate = SlotActivities(sessions)
    ask = lambda task_id: env.run(gate.acquire_slot, SlotRequest(task_id=task_id, account_id=account_id))  # noqa: E731
    assert await ask(a) is True and await ask(b) is True
    with pytest.raises(ApplicationError) as busy:
        await ask(c)
    assert busy.value.type == SLOT_BUSY and not busy.value.non_retryable

    async with sessions.begin() as session:
        await task_rows.transition(session, a, "failed", error_code="render_failed", error_message="boom")
    assert await ask(c) is True, "the failed task's slot went to the next in line"

    client = await stack.temporal_client()
    reaper = SlotActivities(sessions, client=client)  # b and c have no workflow at all
    assert await env.run(reaper.acquire_slot, SlotRequest(task_id=d, account_id=account_id)) is True
    async with sessions() as session:
        reaped = {t: await session.get(Task, t) for t in (b, c)}
        account = await session.get(Account, account_id)
    assert {(t.status, t.error_code) for t in reaped.values()} == {("failed", "internal_error")}
    assert account.reserved == 2, "only a (never released here) and d still hold credits"


async def test_waiters_get_a_freed_slot_in_submission_order(sessions: Any) -> None:
    """FIFO: the older task gets the freed slot even when the newer one asked first."""
    from datetime import timedelta

    from sorapi.store import task_rows
    from sorapi.store.models import utcnow

    account_id, _ = await make_account(sessions, credits=100)
    busy, older, newer = new_task_id(), new_task_id(), new_task_id()
    start = utcnow()
    async with sessions.begin() as session:
        for n, task_id in enumerate((busy, older, newer)):
            session.add(
                Task(
                    id=task_id,
                    account_id=account_id,
                    fingerprint=task_id,
                    request={},
                    price=1,
                    outputs=[],
                    created_at=start + timedelta(milliseconds=n),
                )
            )
    async with sessions.begin() as session:
        assert (await slots.try_acquire(session, busy, limit=1)).acquired
    for task_id in (newer, older):  # the newer task asks first: both wait behind the busy one
        async with sessions.begin() as session:
            assert not (await slots.try_acquire(session, task_id, limit=1)).acquired
    async with sessions.begin() as session:
        await task_rows.transition(session, busy, "succeeded")
    async with sessions.begin() as session:
        decision = await slots.try_acquire(session, newer, limit=1)
        assert not decision.acquired and decision.ahead == 1
    async with sessions.begin() as session:
        assert (await slots.try_acquire(session, older, limit=1)).acquired
