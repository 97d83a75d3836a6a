"""Property test of the ledger on real PostgreSQL.

Random sequences of grant / reserve / capture / release (including repeats, as retries make them) keep the invariants:

- the entries sum to the cached balance and reserved, and the balance never goes negative;
- a hold is resolved at most once (capture xor release), repeats change nothing;
- a capture charges exactly its hold, never more;
- a prepaid plan never holds more than it has; a plan with overage stays within its limit.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test
from sqlalchemy import select

from sorapi.contracts.errors import InsufficientCredits
from sorapi.domain.catalog import Plan
from sorapi.domain.ids import new_task_id
from sorapi.store import ledger
from sorapi.store.accounts import create_account
from sorapi.store.engine import make_async_engine, make_sessionmaker
from sorapi.store.models import Account, LedgerEntry

PREPAID = Plan(max_concurrent_jobs=2, retention_hours=24, commercial_use=False)
WITH_OVERAGE = Plan(
    max_concurrent_jobs=8,
    retention_hours=24,
    commercial_use=True,
    overage_limit_credits=150,
    overage_usd_per_credit=0.012,
)


@pytest.fixture(scope="module")
def db(pg_url: str) -> Iterator[tuple[asyncio.AbstractEventLoop, Any]]:
    """Its own event loop and engine: hypothesis drives the machine synchronously, step by step."""
    loop = asyncio.new_event_loop()
    engine = make_async_engine(pg_url)
    yield loop, make_sessionmaker(engine)
    loop.run_until_complete(engine.dispose())
    loop.close()


class LedgerMachine(RuleBasedStateMachine):
    tasks = Bundle("tasks")

    def __init__(self, loop: asyncio.AbstractEventLoop, sessions: Any) -> None:
        super().__init__()
        self.loop, self.sessions = loop, sessions
        self.holds: dict[str, int] = {}
        self.resolved: dict[str, str] = {}
        self.balance = self.reserved = self.overage = 0

    def _tx(self, work: Any) -> Any:
        async def go() -> Any:
            async with self.sessions.begin() as session:
                return await work(session)

        return self.loop.run_until_complete(go())

    @initialize(overage=st.booleans(), credits=st.integers(0, 200))
    def open_account(self, overage: bool, credits: int) -> None:
        self.plan = WITH_OVERAGE if overage else PREPAID

        async def work(session: Any) -> str:
            return (await create_account(session, name="prop", plan="pro" if overage else "free", credits=credits)).id

        self.account_id = self._tx(work)
        self.balance = credits

    @rule(amount=st.integers(1, 25))
    def grant(self, amount: int) -> None:
        async def work(session: Any) -> None:
            await ledger.grant(session, await ledger.lock_account(session, self.account_id), amount, reason="top-up")

        self._tx(work)
        self.balance += amount

    @rule(target=tasks, amount=st.integers(1, 120))
    def reserve(self, amount: int) -> str:
        task_id = new_task_id()

        async def work(session: Any) -> int:
            account = await ledger.lock_account(session, self.account_id)
            return (await ledger.reserve(session, account, task_id, amount, plan=self.plan)).amount

        fits = self.balance - self.reserved >= amount or (
            self.plan.allows_overage
            and self.overage + self.reserved + amount - self.balance <= self.plan.overage_limit_credits
        )
        try:
            assert self._tx(work) == amount
        except InsufficientCredits:
            assert not fits, "refused a hold that fits"
            return task_id
        assert fits, "accepted a hold that does not fit"
        self.holds[task_id] = amount
        self.reserved += amount
        return task_id

    @rule(task_id=tasks)
    def capture(self, task_id: str) -> None:
        async def work(session: Any) -> int:
            return await ledger.capture(session, self.account_id, task_id)

        open_hold = task_id in self.holds and task_id not in self.resolved
        try:
            charged = self._tx(work)
        except ledger.LedgerConflict:
            assert task_id not in self.holds or self.resolved.get(task_id) == "release"
            return
        assert charged == self.holds[task_id], "a capture charges exactly its hold"
        if open_hold:
            self.resolved[task_id] = "capture"
            self.reserved -= charged
            self.balance -= charged
            if self.balance < 0:
                self.overage, self.balance = self.overage - self.balance, 0
        else:
            assert self.resolved[task_id] == "capture", "a released hold was captured"

    @rule(task_id=tasks)
    def release(self, task_id: str) -> None:
        async def work(session: Any) -> int:
            return await ledger.release(session, self.account_id, task_id, reason="failed")

        released = self._tx(work)
        state = self.resolved.get(task_id)
        if task_id not in self.holds or state == "capture":
            assert released == 0
        else:
            assert released == self.holds[task_id]
            if state is None:
                self.resolved[task_id] = "release"
                self.reserved -= released

    @invariant()
    def entries_match_the_account(self) -> None:
        if not hasattr(self, "account_id"):
            return

        async def work(session: Any) -> tuple[Account, ledger.Totals, list[Any]]:
            account = await session.get(Account, self.account_id)
            rows = (
                await session.execute(
                    select(LedgerEntry.task_id, LedgerEntry.kind, LedgerEntry.amount).where(
                        LedgerEntry.account_id == self.account_id
                    )
                )
            ).all()
            return account, await ledger.entry_totals(session, self.account_id), rows

        account, totals, rows = self._tx(work)
        assert (account.balance, account.reserved) == (totals.balance, totals.reserved) == (self.balance, self.reserved)
        assert account.balance >= 0, "the balance never goes negative"
        per_task: dict[str, dict[str, int]] = {}
        for task_id, kind, amount in rows:
            if task_id is not None:
                assert kind not in per_task.setdefault(task_id, {}), "one entry per task and kind"
                per_task[task_id][kind] = amount
        for kinds in per_task.values():
            assert not ("capture" in kinds and "release" in kinds), "a hold is resolved once"
            assert kinds.get("capture", 0) <= kinds["reserve"], "a capture never exceeds its hold"
            assert kinds.get("overage", 0) <= kinds.get("capture", 0)
        assert sum(k.get("overage", 0) for k in per_task.values()) == self.overage <= self.plan.overage_limit_credits


def test_ledger_invariants_hold_for_random_sequences(db: tuple[asyncio.AbstractEventLoop, Any]) -> None:
    loop, sessions = db
    run_state_machine_as_test(
        lambda: LedgerMachine(loop, sessions),
        settings=settings(
            max_examples=25, stateful_step_count=25, deadline=None, suppress_health_check=[HealthCheck.too_slow]
        ),
    )
