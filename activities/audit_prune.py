"""The audit retention's I/O: delete one batch of expired key-use entries, in a transaction of its own."""

from __future__ import annotations

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

from sorapi.contracts import names
from sorapi.contracts.messages import AuditPruneBatch
from sorapi.store import audit

log = structlog.get_logger()


class AuditPruneActivities:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    @activity.defn(name=names.PRUNE_AUDIT_EVENTS)
    async def prune_audit_events(self, batch: AuditPruneBatch) -> int:
        """Delete up to `batch.limit` key-use entries created before `batch.before`.

        A retry deletes whatever is still there, so repeating a batch is harmless.
        """
        async with self._sessions.begin() as session:
            deleted = await audit.prune_key_use(session, before=batch.before, limit=batch.limit)
        if deleted:
            log.info("pruned key-use audit entries", deleted=deleted, before=batch.before.isoformat())
        return deleted
