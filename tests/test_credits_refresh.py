"""Monthly refresh and rollover.

The CreditRefresh workflow runs on the time-skipping test server across three billing periods
(real PostgreSQL): included credits arrive exactly once per period however often it runs, Pro-like
plans expire what is left, Scale-like plans roll it over up to their cap. The test server does not
implement Schedules (CreateSchedule is "unimplemented" there), so the Schedule itself is checked on
the stack's real Temporal dev server: created by the orchestrator, monthly, and triggering it twice
grants once.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from sqlalchemy import select
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from sorapi.activities.credit_refresh import CreditRefreshActivities
from sorapi.contracts import names
from sorapi.contracts.messages import CreditRefreshInput, CreditRefreshResult
from sorapi.domain.catalog import Plan, get_catalog
from sorapi.domain.ids import new_task_id
from sorapi.domain.periods import period_bounds, period_of
from sorapi.store import ledger, task_rows
from sorapi.store.accounts import create_account
from sorapi.store.models import Account, LedgerEntry, Task
from sorapi.workers.orchestrator import sandbox_runner
from sorapi.workflows.credit_refresh import CreditRefreshWorkflow
from tests.stack import Stack, make_account

INCLUDED = 1000


async def _figures(sessions: Any, account_id: str) -> tuple[int, list[tuple[str, int, str | None]]]:
    async with sessions() as session:
        account = await session.get(Account, account_id)
        rows = (
            await session.execute(
                select(LedgerEntry.kind, LedgerEntry.amount, LedgerEntry.period)
                .where(LedgerEntry.account_id == account_id)
                .order_by(LedgerEntry.id)
            )
        ).all()
        totals = await ledger.entry_totals(session, account_id)
    assert totals.balance == account.balance
    return ledger.available(account), [tuple(r) for r in rows]


async def _spend(sessions: Any, account_id: str, amount: int) -> None:
    async with sessions.begin() as session:
        await ledger.adjust(
            session, await ledger.lock_account(session, account_id), -amount, reason="usage", actor="test"
        )


async def _stranded_hold(sessions: Any) -> str:
    """A failed task whose hold was never released (its workflow was terminated in between)."""
    account_id, _ = await make_account(sessions, credits=10)
    task_id = new_task_id()
    async with sessions.begin() as session:
        session.add(Task(id=task_id, account_id=account_id, fingerprint="s", request={}, price=10, outputs=[]))
        await session.flush()
        await ledger.reserve(session, await ledger.lock_account(session, account_id), task_id, 10)
        await task_rows.transition(session, task_id, "failed", error_code="internal_error", error_message="x")
    return task_id


async def test_refresh_grants_once_per_period_with_expiry_and_rollover(
    time_env: WorkflowEnvironment, sessions: Any
) -> None:
    # plans that only this test's accounts are on, so the walk over "every monthly account" is ours alone
    tag = uuid.uuid4().hex[:8]
    pro_like, scale_like = f"pro-{tag}", f"scale-{tag}"
    base = get_catalog()
    catalog = msgspec.structs.replace(
        base,
        plans={
            pro_like: Plan(max_concurrent_jobs=8, retention_hours=24, commercial_use=True, included_credits=INCLUDED),
            scale_like: Plan(
                max_concurrent_jobs=8,
                retention_hours=24,
                commercial_use=True,
                included_credits=INCLUDED,
                rollover=True,
                rollover_cap_credits=1500,
            ),
        },
    )
    async with sessions.begin() as session:
        pro_id = (await create_account(session, name="pro", plan=pro_like, credits=0)).id
        scale_id = (await create_account(session, name="scale", plan=scale_like, credits=0)).id

    stranded = await _stranded_hold(sessions)

    queue = f"refresh-{uuid.uuid4().hex}"
    acts = CreditRefreshActivities(sessions, catalog=catalog)
    async with Worker(
        time_env.client,
        task_queue=queue,
        workflows=[CreditRefreshWorkflow],
        activities=[acts.refresh_credits, acts.release_expired_holds],
        workflow_runner=sandbox_runner(),
    ):

        async def run() -> CreditRefreshResult:
            """One scheduled run; time moves only when the test says so (`next_period`)."""
            with time_env.auto_time_skipping_disabled():
                return await time_env.client.execute_workflow(
                    names.CREDIT_REFRESH_WORKFLOW,
                    CreditRefreshInput(batch_size=1),
                    id=f"refresh-{uuid.uuid4().hex}",
                    task_queue=queue,
                    result_type=CreditRefreshResult,
                )

        async def next_period() -> None:
            """Skip server time to one hour into the next calendar month."""
            now = await time_env.get_current_time()
            _, end = period_bounds(period_of(now))
            await time_env.sleep(end - now + timedelta(hours=1))

        first = await run()
        assert first.period == period_of(await time_env.get_current_time())
        assert (first.refreshed, first.granted) == (2, 2 * INCLUDED), "batches of one walk both accounts"
        assert (await run()).refreshed == 0, "a second run in the same period grants nothing"
        async with sessions() as session:
            kinds = {k: e.reason for k, e in (await ledger.task_entries(session, stranded)).items()}
        assert kinds == {"reserve": "hold for render", "release": "expired hold"}, "the stranded hold came back"
        assert (await _figures(sessions, pro_id))[0] == (await _figures(sessions, scale_id))[0] == INCLUDED

        await _spend(sessions, pro_id, 400)
        await _spend(sessions, scale_id, 300)
        await next_period()
        second = await run()
        assert second.period != first.period and second.refreshed == 2
        assert (await run()).refreshed == 0
        assert (await _figures(sessions, pro_id))[0] == INCLUDED, "Pro-like: the unused 600 expired"
        assert (await _figures(sessions, scale_id))[0] == 700 + INCLUDED, "Scale-like: 700 rolled over"

        await next_period()
        third = await run()
        assert third.expired == 1000 + 200, "Pro-like expires 1000; Scale-like carries only its 1500 cap"
        assert (await _figures(sessions, scale_id))[0] == 1500 + INCLUDED

    for account_id in (pro_id, scale_id):
        _, rows = await _figures(sessions, account_id)
        refreshes = [period for kind, _, period in rows if kind == "refresh"]
        assert refreshes == [first.period, second.period, third.period], "exactly one refresh per period"


async def test_the_schedule_exists_is_monthly_and_grants_once(stack: Stack, sessions: Any) -> None:
    client = await stack.temporal_client()
    handle = client.get_schedule_handle(names.CREDIT_REFRESH_SCHEDULE)
    described = await handle.describe()
    upcoming = described.info.next_action_times[:3]
    assert upcoming and all((t.day, t.hour, t.minute) == (1, 0, 0) for t in upcoming), upcoming
    assert described.schedule.action.workflow == names.CREDIT_REFRESH_WORKFLOW

    account_id, _ = await make_account(sessions, plan="scale", credits=0)  # made without its period start
    included = get_catalog().plans["scale"].included_credits
    runs = len(described.info.recent_actions)
    for trigger in range(2):
        await handle.trigger()
        for _ in range(100):
            described = await handle.describe()
            if len(described.info.recent_actions) > runs + trigger:
                break
            await asyncio.sleep(0.1)
        started = described.info.recent_actions[-1].action
        result = await client.get_workflow_handle(
            started.workflow_id, run_id=started.first_execution_run_id, result_type=CreditRefreshResult
        ).result()
        assert result.period == period_of(datetime.now(UTC))
        balance, rows = await _figures(sessions, account_id)
        assert balance == included and [k for k, _, _ in rows] == ["refresh"], f"run {trigger + 1}: {rows}"
