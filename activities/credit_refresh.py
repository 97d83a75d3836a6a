"""Money side of the monthly refresh: start a billing period for a batch of accounts."""

from __future__ import annotations

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

from sorapi.contracts import names
from sorapi.contracts.messages import RefreshBatch, RefreshBatchResult
from sorapi.domain.catalog import Catalog, get_catalog
from sorapi.store import ledger

SWEEP_LIMIT = 500

log = structlog.get_logger()


class CreditRefreshActivities:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], catalog: Catalog | None = None) -> None:
        self._sessions = sessions
        self._catalog = catalog or get_catalog()

    @activity.defn(name=names.REFRESH_CREDITS)
    async def refresh_credits(self, batch: RefreshBatch) -> RefreshBatchResult:
        """Refresh each account of the batch in its own transaction; repeats change nothing."""
        monthly = [name for name, plan in self._catalog.plans.items() if plan.included_credits > 0]
        async with self._sessions() as session:
            ids = await ledger.accounts_on(session, monthly, after=batch.after_account_id, limit=batch.limit)
        refreshed = granted = expired = 0
        for account_id in ids:
            async with self._sessions.begin() as session:
                account = await ledger.lock_account(session, account_id)
                done = await ledger.refresh(session, account, batch.period, plan=self._catalog.plans[account.plan])
            if not done.already and done.granted:
                refreshed, granted, expired = refreshed + 1, granted + done.granted, expired + done.expired
                log.info(
                    "credits refreshed",
                    account_id=account_id,
                    period=batch.period,
                    granted=done.granted,
                    expired=done.expired,
                )
            activity.heartbeat(account_id)
        return RefreshBatchResult(
            last_account_id=ids[-1] if ids else batch.after_account_id,
            accounts=len(ids),
            refreshed=refreshed,
            granted=granted,
            expired=expired,
            done=len(ids) < batch.limit,
        )

    @activity.defn(name=names.RELEASE_EXPIRED_HOLDS)
    async def release_expired_holds(self, _: RefreshBatch) -> int:
        """Return holds still open on tasks that already ended.

        Their workflow stopped between marking the task and releasing, e.g. terminated by an operator. Idempotent like
        every release.
        """
        async with self._sessions() as session:
            rows = await ledger.holds_of_ended_tasks(session, limit=SWEEP_LIMIT)
        released = 0
        for account_id, task_id in rows:
            async with self._sessions.begin() as session:
                amount = await ledger.release(session, account_id, task_id, reason="expired hold")
            released += amount
            log.warning("released an expired hold", task_id=task_id, credits=amount)
        return released
