"""The slot gate's activities: a task's request and release, its move to `running`, the gate's reads.

A task reaches its account's gate only through `request_slot` and `release_slot`, both
signal-with-start: the first task of an account starts the gate, and a gate an operator
terminated comes back (rebuilt from the task rows) with the next request or release.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.client import Client, WorkflowExecutionStatus

from sorapi.activities.followups import start_once
from sorapi.adapters.gates import DEFAULT_MAX_HISTORY, signal_gate
from sorapi.adapters.temporal import workflow_status
from sorapi.contracts import names, status
from sorapi.contracts.messages import GateRequest, GateSnapshot, GateWaiter, SlotRequest, WebhookDeliveryInput
from sorapi.domain import webhook_events, webhook_policy
from sorapi.domain.catalog import Catalog, get_catalog
from sorapi.domain.ids import webhook_workflow_id
from sorapi.store import slots, task_rows
from sorapi.store.engine import autocommit_twin
from sorapi.store.models import Account, Task

log = structlog.get_logger()


class GateActivities:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        catalog: Catalog | None = None,
        *,
        webhook_queue_prefix: str = "sorapi-webhooks",
        gate_max_history: int = DEFAULT_MAX_HISTORY,
    ) -> None:
        self._sessions = sessions
        self._reads = autocommit_twin(sessions)
        self._catalog = catalog or get_catalog()
        self._webhook_queue_prefix = webhook_queue_prefix
        self._gate_max_history = gate_max_history

    def all(self) -> list[Callable[..., Any]]:
        """Every activity of the gate, to register on the orchestration queue."""
        return [
            self.request_slot,
            self.release_slot,
            self.mark_running,
            self.gate_snapshot,
            self.ended_tasks,
            self.settle_orphan,
        ]

    @activity.defn(name=names.REQUEST_SLOT)
    async def request_slot(self, req: SlotRequest) -> bool:
        """Join the account's line (starting its gate if needed); False if the task already ended."""
        async with self._reads() as session:
            row = (
                await session.execute(
                    select(Task.status, Task.created_at, Account.plan)
                    .join(Account, Account.id == Task.account_id)
                    .where(Task.id == req.task_id)
                )
            ).one()
        if row.status in status.TERMINAL:
            return False
        limit = self._catalog.plans[row.plan].max_concurrent_jobs
        waiter = GateWaiter(queued_at=row.created_at.timestamp(), task_id=req.task_id)
        await signal_gate(
            activity.client(),
            req.account_id,
            names.GATE_REQUEST_SIGNAL,
            GateRequest(waiter=waiter, limit=limit),
            req.gate_queue or activity.info().task_queue,
            self._gate_max_history,
        )
        return True

    @activity.defn(name=names.RELEASE_SLOT)
    async def release_slot(self, req: SlotRequest) -> None:
        """The task ended: free its slot or its place in line."""
        await signal_gate(
            activity.client(),
            req.account_id,
            names.GATE_RELEASE_SIGNAL,
            req.task_id,
            req.gate_queue or activity.info().task_queue,
            self._gate_max_history,
        )

    @activity.defn(name=names.MARK_RUNNING)
    async def mark_running(self, task_id: str) -> bool:
        """The task holds a slot now: `queued` → `running`, then its `running` webhook if it asked for one.

        A retry finds the row moved and the delivery started. Returns False if the task ended meanwhile.
        """
        async with self._sessions.begin() as session:
            task = await task_rows.transition(session, task_id, status.RUNNING)
            wanted = task is not None and webhook_events.wants(task.request, status.RUNNING)
            plan = await self._plan(session, task.account_id) if wanted and task is not None else None
        if task is None:
            return False
        log.info("task running", task_id=task_id)
        if plan is not None:
            await webhook_events.announce(
                activity.client(),
                task_id=task_id,
                event=status.RUNNING,
                lane=webhook_policy.lane(self._webhook_queue_prefix, plan),
                task_queue=activity.info().task_queue,
            )
        return True

    async def _plan(self, session: AsyncSession, account_id: str) -> str:
        return (await session.execute(select(Account.plan).where(Account.id == account_id))).scalar_one()

    @activity.defn(name=names.GATE_SNAPSHOT)
    async def gate_snapshot(self, account_id: str) -> GateSnapshot:
        async with self._sessions() as session:
            plan = (await session.execute(select(Account.plan).where(Account.id == account_id))).scalar_one()
            running, line = await slots.snapshot(session, account_id)
        waiting = [GateWaiter(queued_at=created.timestamp(), task_id=task_id) for created, task_id in line]
        return GateSnapshot(
            limit=self._catalog.plans[plan].max_concurrent_jobs,
            running=running,
            waiting=waiting,
            more=len(line) >= slots.SNAPSHOT_LINE_CAP,
        )

    @activity.defn(name=names.ENDED_TASKS)
    async def ended_tasks(self, task_ids: list[str]) -> list[str]:
        async with self._sessions() as session:
            return await slots.ended_among(session, task_ids)

    @activity.defn(name=names.SETTLE_ORPHAN)
    async def settle_orphan(self, task_id: str) -> bool:
        """After a grant found no running workflow: True if one runs now, so the task waits in line again.

        A workflow that ended without its task is settled here: the task fails, its hold comes back and it is
        announced. No run at all means the workflow has not started yet: the gate may rebuild its line from the
        task rows between the row's commit and the workflow's start. Such a task asks when its workflow starts;
        if it never does, the sweeper settles it. Before the `late-start` patch the gate ignored the answer.
        """
        found = await workflow_status(activity.client(), task_id)
        if found is None:
            return False
        if found == WorkflowExecutionStatus.RUNNING:
            return True
        await settle_orphan(
            self._sessions,
            activity.client(),
            task_id,
            webhook_queue_prefix=self._webhook_queue_prefix,
            task_queue=activity.info().task_queue,
        )
        return False


async def settle_orphan(
    sessions: async_sessionmaker[AsyncSession],
    client: Client,
    task_id: str,
    *,
    webhook_queue_prefix: str,
    task_queue: str,
) -> str | None:
    """Fail a queued or running task whose workflow is gone, return its hold and start its `failed` webhook.

    Returns the task's account id, or None if the task had already ended.
    """
    async with sessions.begin() as session:
        task = await slots.fail_orphan(session, task_id)
        if task is None:
            return None
        plan = (await session.execute(select(Account.plan).where(Account.id == task.account_id))).scalar_one()
    log.warning("settled a task whose workflow is gone", task_id=task_id)
    if webhook_events.wants(task.request, status.FAILED):
        arg = WebhookDeliveryInput(
            task_id=task_id,
            event=status.FAILED,
            event_id=webhook_policy.event_id(task_id, status.FAILED),
            lane=webhook_policy.lane(webhook_queue_prefix, plan),
        )
        await start_once(
            client,
            names.WEBHOOK_DELIVERY_WORKFLOW,
            arg,
            webhook_workflow_id(task_id, status.FAILED),
            task_queue,
            summary=f"webhook failed for {task_id}",
        )
    return task.account_id
