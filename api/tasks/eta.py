"""ETAs for status responses.

Recent render times are read at most every `REFRESH_S` per API process, so a poll costs no extra database work.
"""

from __future__ import annotations

import asyncio
import time

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from sorapi.contracts import status
from sorapi.domain.catalog import Catalog
from sorapi.domain.eta import estimate_seconds
from sorapi.store import slots
from sorapi.store.models import Task, utcnow
from sorapi.store.render_times import typical_seconds

REFRESH_S = 30.0
MISS_REFRESH_S = 5.0
"""A model with no figure yet is looked up again this soon: a new model's ETAs appear within seconds."""


class RenderTimes:
    """The per-model typical render time, cached for the process."""

    def __init__(self) -> None:
        self._by_model: dict[str, float] = {}
        self._read_at = -REFRESH_S
        self._lock = asyncio.Lock()

    async def typical(self, sessions: async_sessionmaker[AsyncSession], model: str) -> float | None:
        stale_after = REFRESH_S if model in self._by_model else MISS_REFRESH_S
        if time.monotonic() - self._read_at > stale_after:
            async with self._lock:
                if time.monotonic() - self._read_at > stale_after:
                    async with sessions() as session:
                        self._by_model = await typical_seconds(session, utcnow())
                    self._read_at = time.monotonic()
        return self._by_model.get(model)

    async def eta(
        self,
        sessions: async_sessionmaker[AsyncSession],
        catalog: Catalog,
        task: Task,
        *,
        plan: str,
        position: int | None,
        progress: int,
    ) -> int | None:
        typical = await self.typical(sessions, task.request["model_version"])
        return estimate_seconds(
            task.status,
            position=position,
            slots=catalog.plans[plan].max_concurrent_jobs,
            progress=progress,
            typical_s=typical,
        )

    async def etas(
        self, sessions: async_sessionmaker[AsyncSession], catalog: Catalog, tasks: list[Task], *, plan: str
    ) -> dict[str, int | None]:
        """ETAs of a page of one account's tasks (its queued ones' places read in one statement)."""
        waiting = [task.id for task in tasks if task.status == status.QUEUED]
        async with sessions() as session:
            positions = await slots.queue_positions(session, waiting)
        return {
            task.id: await self.eta(
                sessions, catalog, task, plan=plan, position=positions.get(task.id), progress=task.progress
            )
            for task in tasks
            if task.status in (status.QUEUED, status.RUNNING)
        }
