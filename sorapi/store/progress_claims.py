"""The `progress` webhook throttle: one claim per task per interval, kept on the task row.

While a task runs nothing else writes its row, so its `updated_at` is when it started or when its
last `progress` webhook was claimed. A claim is one conditional UPDATE (the row lock orders
concurrent claims; the database's clock judges them all), so the spacing holds whichever host,
activity attempt or re-render asks. It also records the announced percent as the row's `progress`
(never lowered by a render that starts again).
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, update
from sqlalchemy.ext.asyncio import AsyncSession

from sorapi.contracts import status
from sorapi.store.models import Task


async def claim(session: AsyncSession, task_id: str, percent: int, interval_s: float) -> bool:
    """True if the task is running and no progress webhook (nor its start) is younger than `interval_s`."""
    now = func.now()
    claimed = await session.execute(
        update(Task)
        .where(
            Task.id == task_id,
            Task.status == status.RUNNING,
            Task.updated_at <= now - timedelta(seconds=interval_s),
        )
        .values(updated_at=now, progress=func.greatest(Task.progress, percent))
        .returning(Task.id)
        .execution_options(synchronize_session=False)
    )
    return claimed.scalar_one_or_none() is not None
