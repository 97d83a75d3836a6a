"""Legacy: the polling slot activity of task workflows started before the slot gate.

`acquire_slot` succeeds once the task may run; while the account is full it fails with a benign,
retryable error and Temporal retries it every second. Each waiting task costs a database
transaction per second, which is why new tasks use `workflows/slot_gate.py`. Remove this module
(and the `slot-gate` patch's old branch) once no workflow started before that patch runs.
"""

from __future__ import annotations

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory
from temporalio.service import RPCError, RPCStatusCode

from sorapi.contracts import names
from sorapi.contracts.messages import SlotRequest
from sorapi.domain.catalog import Catalog, get_catalog
from sorapi.store import ledger, slots

log = structlog.get_logger()

SLOT_BUSY = "slot_busy"
"""ApplicationError type of "not yet": retried, never shown to clients."""


class SlotActivities:
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], catalog: Catalog | None = None, client: Client | None = None
    ) -> None:
        self._sessions = sessions
        self._catalog = catalog or get_catalog()
        self._client = client
        """Lets the next-in-line waiter free slots held by tasks whose workflow no longer runs."""

    @activity.defn(name=names.ACQUIRE_SLOT)
    async def acquire_slot(self, req: SlotRequest) -> bool:
        """True once the task is running; False if it already ended; raises SLOT_BUSY to wait."""
        decision = await self._try(req)
        orphans_may_block = not decision.acquired and not decision.ended and decision.ahead == 0
        if orphans_may_block and decision.running and await self._reap_orphans(decision.running):
            decision = await self._try(req)
        if decision.acquired or decision.ended:
            if decision.acquired:
                log.info("task running", task_id=req.task_id)
            return decision.acquired
        raise ApplicationError(
            f"waiting for a concurrency slot ({len(decision.running)} running, {decision.ahead} ahead)",
            type=SLOT_BUSY,
            category=ApplicationErrorCategory.BENIGN,
        )

    async def _try(self, req: SlotRequest) -> slots.SlotDecision:
        async with self._sessions.begin() as session:
            account = await ledger.lock_account(session, req.account_id)
            limit = self._catalog.plans[account.plan].max_concurrent_jobs
            return await slots.try_acquire(session, req.task_id, limit)

    async def _reap_orphans(self, running: list[str]) -> int:
        """Fail running tasks whose workflow is gone (terminated by an operator): their slots come back."""
        if self._client is None:
            return 0
        reaped = 0
        for task_id in running:
            try:
                desc = await self._client.get_workflow_handle(task_id).describe()
                alive = desc.status == WorkflowExecutionStatus.RUNNING
            except RPCError as exc:
                if exc.status != RPCStatusCode.NOT_FOUND:
                    continue
                alive = False
            if alive:
                continue
            async with self._sessions.begin() as session:
                if await slots.fail_orphan(session, task_id) is not None:
                    reaped += 1
            log.warning("freed the slot of an orphaned task", task_id=task_id)
        return reaped
