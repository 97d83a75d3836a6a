"""The sweeper: settle tasks that are `queued` or `running` while no workflow runs for them.

Two ways a task strands: its workflow never started (a keyed create while Temporal was down,
never retried by the client), or it ended by a path that skipped settlement (an operator's
terminate). A sweep describes every running task's workflow (there are at most as many as the
fleet's slots) and each queued task once, when it is `min_age_s` old: the cost grows with
arrivals and running tasks, never with the length of the line. A task whose workflow was
terminated later, while it waited, is settled by its gate when its turn comes.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.client import Client, WorkflowExecutionStatus

from sorapi.activities.slot_gate import settle_orphan
from sorapi.adapters.gates import signal_gate
from sorapi.adapters.temporal import workflow_status
from sorapi.contracts import names, status
from sorapi.contracts.messages import SweepInput, SweepResult
from sorapi.store.models import Task, utcnow

log = structlog.get_logger()

FIRST_LOOK_BACK = timedelta(minutes=10)
DESCRIBE_CONCURRENCY = 16


class SweeperActivities:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        client: Client,
        *,
        orchestration_queue: str,
        webhook_queue_prefix: str,
    ) -> None:
        self._sessions = sessions
        self._client = client
        self._queue = orchestration_queue
        self._webhook_queue_prefix = webhook_queue_prefix

    @activity.defn(name=names.SWEEP_STRANDED)
    async def sweep_stranded(self, arg: SweepInput) -> SweepResult:
        until = utcnow() - timedelta(seconds=arg.min_age_s)
        since = arg.since or until - FIRST_LOOK_BACK
        async with self._sessions() as session:
            running = (
                await session.scalars(select(Task.id).where(Task.status == status.RUNNING).limit(arg.limit))
            ).all()
            arrived = (
                await session.execute(
                    select(Task.id, Task.created_at)
                    .where(Task.status == status.QUEUED, Task.created_at >= since, Task.created_at < until)
                    .order_by(Task.created_at)
                    .limit(arg.limit)
                )
            ).all()
        next_since = arrived[-1].created_at if len(arrived) == arg.limit else until
        candidates = [*running, *(row.id for row in arrived)]
        gone = await self._without_workflow(candidates)
        settled = [task_id for task_id in gone if await self._settle(task_id)]
        if settled:
            log.warning("settled stranded tasks", count=len(settled), task_ids=settled[:20])
        return SweepResult(settled=settled, next_since=next_since)

    async def _without_workflow(self, task_ids: list[str]) -> list[str]:
        limit = asyncio.Semaphore(DESCRIBE_CONCURRENCY)

        async def gone(task_id: str) -> bool:
            async with limit:
                return await workflow_status(self._client, task_id) != WorkflowExecutionStatus.RUNNING

        answers = await asyncio.gather(*(gone(task_id) for task_id in task_ids))
        return [task_id for task_id, is_gone in zip(task_ids, answers, strict=True) if is_gone]

    async def _settle(self, task_id: str) -> bool:
        account_id = await settle_orphan(
            self._sessions,
            self._client,
            task_id,
            webhook_queue_prefix=self._webhook_queue_prefix,
            task_queue=self._queue,
        )
        if account_id is None:
            return False
        await signal_gate(self._client, account_id, names.GATE_RELEASE_SIGNAL, task_id, self._queue)
        return True
