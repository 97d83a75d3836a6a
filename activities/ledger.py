"""Money activities for the orchestrator: idempotent under Temporal retries by construction."""

from __future__ import annotations

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from sorapi.adapters import metrics
from sorapi.contracts import errors, names
from sorapi.contracts.messages import HoldInput
from sorapi.store import ledger, task_rows
from sorapi.store.engine import autocommit_twin
from sorapi.store.models import Account

log = structlog.get_logger()


class LedgerActivities:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        self._reads = autocommit_twin(sessions)

    @activity.defn(name=names.RESERVE_CREDITS)
    async def reserve_credits(self, hold: HoldInput) -> int:
        """Ensure the task's hold exists (the API normally placed it with the task row).

        The usual case, a hold already there, is answered without locking the account row: ledger entries are never
        changed once written, and the line's creates and captures take that lock all the time.
        """
        async with self._reads() as session:
            existing = (await ledger.task_entries(session, hold.task_id)).get(ledger.RESERVE)
        if existing is not None:
            return existing.amount
        async with self._sessions.begin() as session:
            account = await ledger.lock_account(session, hold.account_id)
            try:
                entry = await ledger.reserve(session, account, hold.task_id, hold.amount)
            except errors.InsufficientCredits as exc:
                raise ApplicationError(exc.message, type=errors.INSUFFICIENT_CREDITS, non_retryable=True) from exc
            return entry.amount

    @activity.defn(name=names.CAPTURE_CREDITS)
    async def capture_credits(self, hold: HoldInput) -> int:
        """Charge the hold.

        A conflict (the hold was released meanwhile, e.g. by the API giving up on the task) is permanent: it fails at
        once with a stable code instead of retrying for ever.
        """
        try:
            async with self._sessions.begin() as session:
                charged = await ledger.capture(session, hold.account_id, hold.task_id)
                task_rows.add_event(session, hold.task_id, "credits_captured", {"credits": charged})
                plan = await _plan(session, hold.account_id)
            metrics.CREDITS_CAPTURED.labels(plan=plan).inc(charged)
            return charged
        except ledger.LedgerConflict as exc:
            log.warning("capture conflicts with the ledger", task_id=hold.task_id, error=str(exc))
            raise ApplicationError(
                "the task's hold is no longer open", type=errors.LEDGER_CONFLICT, non_retryable=True
            ) from exc

    @activity.defn(name=names.RELEASE_CREDITS)
    async def release_credits(self, hold: HoldInput) -> int:
        async with self._sessions.begin() as session:
            released = await ledger.release(session, hold.account_id, hold.task_id, reason="task did not succeed")
            if released:
                task_rows.add_event(session, hold.task_id, "credits_released", {"credits": released})
            plan = await _plan(session, hold.account_id)
        metrics.CREDITS_RELEASED.labels(plan=plan).inc(released)
        return released


async def _plan(session: AsyncSession, account_id: str) -> str:
    """The account's plan, the credit counters' label (the ledger step has the row in the session)."""
    account = await session.get(Account, account_id)
    return account.plan if account is not None else ""
