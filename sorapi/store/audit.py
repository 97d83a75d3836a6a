"""The audit log: who did what to an account (admin actions, key issue/revoke, key use).

Append-only, except that key-use entries (one per authenticated request on plans with `audit_log`)
are pruned after `SORAPI_AUDIT_RETENTION_DAYS` (`prune_key_use`, run by the AuditPrune schedule);
administrative actions are kept.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from sorapi.store.accounts import KEY_USE
from sorapi.store.models import AuditEvent, utcnow


def record(
    session: AsyncSession,
    *,
    actor: str,
    action: str,
    account_id: str | None = None,
    target: str = "",
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    event = AuditEvent(account_id=account_id, actor=actor, action=action, target=target, details=details or {})
    session.add(event)
    return event


_INSERT = insert(AuditEvent)


async def append(
    session: AsyncSession,
    *,
    actor: str,
    action: str,
    account_id: str | None = None,
    target: str = "",
    details: dict[str, Any] | None = None,
) -> None:
    """`record` as one INSERT sent now, without the unit of work: for the per-request key-use entry."""
    await session.execute(
        _INSERT,
        {
            "account_id": account_id,
            "actor": actor,
            "action": action,
            "target": target,
            "details": details or {},
            "created_at": utcnow(),
        },
    )


async def page(
    session: AsyncSession, account_id: str | None, *, before_id: int | None, limit: int
) -> tuple[list[AuditEvent], bool]:
    """Newest first, strictly before `before_id`; None account means every account (operators)."""
    stmt = select(AuditEvent)
    if account_id is not None:
        stmt = stmt.where(AuditEvent.account_id == account_id)
    if before_id is not None:
        stmt = stmt.where(AuditEvent.id < before_id)
    rows = list((await session.scalars(stmt.order_by(AuditEvent.id.desc()).limit(limit + 1))).all())
    return rows[:limit], len(rows) > limit


async def prune_key_use(session: AsyncSession, *, before: datetime, limit: int) -> int:
    """Delete up to `limit` of the oldest key-use entries created before `before`; returns how many.

    The oldest first, found through the partial index `ix_audit_events_key_use_created`, so a batch
    costs its own rows, never a scan of the table.
    """
    oldest = (
        select(AuditEvent.id)
        .where(AuditEvent.action == KEY_USE, AuditEvent.created_at < before)
        .order_by(AuditEvent.created_at)
        .limit(limit)
    )
    result = await session.execute(
        delete(AuditEvent).where(AuditEvent.id.in_(oldest)).execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
