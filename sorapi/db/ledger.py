"""The credit ledger. Every function is idempotent per (task, kind) and keeps the account's
cached `balance`/`reserved` in step with the append-only entries, inside the caller's transaction.

The account row is locked first (FOR UPDATE on PostgreSQL; SQLite's BEGIN IMMEDIATE already
serialises writers), so reads of a task's entries after the lock see every committed hold.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from sorapi.db.models import Account, LedgerEntry
from sorapi.errors import InsufficientCredits

GRANT = "grant"
ADJUST = "adjust"
RESERVE = "reserve"
CAPTURE = "capture"
RELEASE = "release"


class LedgerConflict(Exception):
    """A money operation that contradicts the task's history (capture after release, ...)."""


async def lock_account(session: AsyncSession, account_id: str) -> Account:
    stmt = select(Account).where(Account.id == account_id).with_for_update()
    return (await session.execute(stmt)).scalar_one()


async def task_entries(session: AsyncSession, task_id: str) -> dict[str, LedgerEntry]:
    rows = await session.execute(select(LedgerEntry).where(LedgerEntry.task_id == task_id))
    return {entry.kind: entry for entry in rows.scalars()}


def available(account: Account) -> int:
    return account.balance - account.reserved


async def grant(session: AsyncSession, account: Account, amount: int, *, reason: str,
                actor: str = "system") -> LedgerEntry:
    """Add credits to a (locked) account."""
    entry = LedgerEntry(account_id=account.id, kind=GRANT, amount=amount, reason=reason, actor=actor)
    account.balance += amount
    session.add(entry)
    return entry


async def reserve(session: AsyncSession, account: Account, task_id: str, amount: int, *,
                  actor: str = "system") -> LedgerEntry:
    """Hold `amount` for a task on a locked account; an existing hold is returned unchanged."""
    existing = (await task_entries(session, task_id)).get(RESERVE)
    if existing is not None:
        return existing
    if available(account) < amount:
        raise InsufficientCredits(
            f"this task costs {amount} credits but only {available(account)} are available"
        )
    entry = LedgerEntry(account_id=account.id, task_id=task_id, kind=RESERVE, amount=amount,
                        reason="hold for render", actor=actor)
    account.reserved += amount
    session.add(entry)
    return entry


async def capture(session: AsyncSession, account_id: str, task_id: str) -> int:
    """Charge a task's hold; returns the credits charged (the same on every repeat)."""
    account = await lock_account(session, account_id)
    entries = await task_entries(session, task_id)
    if CAPTURE in entries:
        return entries[CAPTURE].amount
    hold = entries.get(RESERVE)
    if hold is None or RELEASE in entries:
        raise LedgerConflict(f"task {task_id} has no open hold to capture")
    account.reserved -= hold.amount
    account.balance -= hold.amount
    session.add(LedgerEntry(account_id=account_id, task_id=task_id, kind=CAPTURE,
                            amount=hold.amount, reason="render succeeded"))
    return hold.amount


async def release(session: AsyncSession, account_id: str, task_id: str, *, reason: str) -> int:
    """Return a task's open hold to the account; returns the credits released (0 if none open)."""
    account = await lock_account(session, account_id)
    entries = await task_entries(session, task_id)
    hold = entries.get(RESERVE)
    if hold is None or CAPTURE in entries:
        return 0
    if RELEASE in entries:
        return entries[RELEASE].amount
    account.reserved -= hold.amount
    session.add(LedgerEntry(account_id=account_id, task_id=task_id, kind=RELEASE,
                            amount=hold.amount, reason=reason))
    return hold.amount
