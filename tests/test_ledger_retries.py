"""Every activity that touches money, run twice as a Temporal retry would: the second run changes nothing.

Real PostgreSQL; the activities run in temporalio's ActivityEnvironment.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from temporalio.testing import ActivityEnvironment

from sorapi.activities.credit_refresh import CreditRefreshActivities
from sorapi.activities.ledger import LedgerActivities
from sorapi.activities.slots import SlotActivities
from sorapi.contracts.messages import HoldInput, RefreshBatch, SlotRequest
from sorapi.domain.catalog import get_catalog
from sorapi.domain.ids import new_task_id
from sorapi.store import ledger, task_rows
from sorapi.store.accounts import create_account
from sorapi.store.models import Account, LedgerEntry, Task
from tests.stack import make_account

PRICE = 16


async def _snapshot(sessions: Any, account_id: str) -> tuple[tuple[int, int], list[tuple[str, int, str | None]]]:
    async with sessions() as session:
        account = await session.get(Account, account_id)
        entries = (
            await session.execute(
                select(LedgerEntry.kind, LedgerEntry.amount, LedgerEntry.task_id)
                .where(LedgerEntry.account_id == account_id)
                .order_by(LedgerEntry.id)
            )
        ).all()
        totals = await ledger.entry_totals(session, account_id)
    assert (totals.balance, totals.reserved) == (account.balance, account.reserved), "cache matches entries"
    return (account.balance, account.reserved), [tuple(e) for e in entries]


async def _task(sessions: Any, account_id: str) -> str:
    task_id = new_task_id()
    async with sessions.begin() as session:
        session.add(Task(id=task_id, account_id=account_id, fingerprint="f", request={}, price=PRICE, outputs=[]))
    return task_id


async def _twice(
    activity: Any, arg: Any, sessions: Any, account_id: str, *, same_result: bool = True
) -> tuple[Any, Any]:
    env = ActivityEnvironment()
    first = await env.run(activity, arg)
    after_first = await _snapshot(sessions, account_id)
    second = await env.run(activity, arg)
    assert await _snapshot(sessions, account_id) == after_first, f"{activity.__name__} retried changed the ledger"
    if same_result:
        assert second == first
    return first, after_first


async def test_reserve_capture_release_are_idempotent(sessions: Any) -> None:
    money = LedgerActivities(sessions)
    account_id, _ = await make_account(sessions, credits=100)

    captured_task = await _task(sessions, account_id)
    hold = HoldInput(task_id=captured_task, account_id=account_id, amount=PRICE)
    assert (await _twice(money.reserve_credits, hold, sessions, account_id))[1][0] == (100, PRICE)
    assert (await _twice(money.capture_credits, hold, sessions, account_id))[1][0] == (100 - PRICE, 0)
    # a release after the capture (a late failure path) gives nothing back
    released, (figures, _) = await _twice(money.release_credits, hold, sessions, account_id)
    assert released == 0 and figures == (100 - PRICE, 0)

    released_task = await _task(sessions, account_id)
    hold = HoldInput(task_id=released_task, account_id=account_id, amount=PRICE)
    await _twice(money.reserve_credits, hold, sessions, account_id)
    released, (figures, entries) = await _twice(money.release_credits, hold, sessions, account_id)
    assert released == PRICE and figures == (100 - PRICE, 0)
    assert [k for k, _, t in entries if t == released_task] == ["reserve", "release"]
    assert [k for k, _, t in entries if t == captured_task] == ["reserve", "capture"]


async def test_monthly_refresh_is_idempotent_per_period(sessions: Any) -> None:
    catalog = get_catalog()
    account_id = "acct_zz" + uuid.uuid4().hex[:16]  # sorts after every generated id: a batch of one is ours
    async with sessions.begin() as session:
        await create_account(session, name="refresh", plan="pro", credits=300, account_id=account_id)
    refresh = CreditRefreshActivities(sessions)
    included = catalog.plans["pro"].included_credits
    first, (figures, _) = await _twice(
        refresh.refresh_credits,
        RefreshBatch(period="2030-12", after_account_id=account_id[:-1], limit=1),
        sessions,
        account_id,
        same_result=False,
    )
    assert first.last_account_id == account_id and first.refreshed == 1
    assert figures == (300 + included, 0), "a first period only adds"
    second, (figures, entries) = await _twice(
        refresh.refresh_credits,
        RefreshBatch(period="2031-01", after_account_id=account_id[:-1], limit=1),
        sessions,
        account_id,
        same_result=False,
    )
    assert second.refreshed == 1
    assert figures == (included, 0), "Pro: the unused credits expire, the period's included credits arrive"
    assert entries[-2:] == [("expiry", 300 + included, None), ("refresh", included, None)]


async def test_acquire_slot_is_idempotent(sessions: Any) -> None:
    account_id, _ = await make_account(sessions, credits=100)
    task_id = await _task(sessions, account_id)
    gate = SlotActivities(sessions)
    env = ActivityEnvironment()
    request = SlotRequest(task_id=task_id, account_id=account_id)
    assert await env.run(gate.acquire_slot, request) is True
    assert await env.run(gate.acquire_slot, request) is True
    async with sessions() as session:
        task = await session.get(Task, task_id)
        assert task.status == "running"


async def test_expired_hold_release_is_idempotent(sessions: Any) -> None:
    account_id, _ = await make_account(sessions, credits=100)
    task_id = await _task(sessions, account_id)
    async with sessions.begin() as session:
        await ledger.reserve(session, await ledger.lock_account(session, account_id), task_id, PRICE)
        await task_rows.transition(session, task_id, "cancelled", error_code="cancelled", error_message="stopped")
    sweep = CreditRefreshActivities(sessions).release_expired_holds
    released, (figures, entries) = await _twice(
        sweep, RefreshBatch(period="2031-01"), sessions, account_id, same_result=False
    )
    assert released >= PRICE and figures == (100, 0)
    assert [k for k, _, t in entries if t == task_id] == ["reserve", "release"]
