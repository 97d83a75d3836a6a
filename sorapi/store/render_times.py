"""Recent end-to-end render times per model (start of running to success), for ETAs."""

from __future__ import annotations

import statistics
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from sorapi.contracts import status
from sorapi.store.models import Task

WINDOW = timedelta(hours=1)
SAMPLE = 500


async def typical_seconds(session: AsyncSession, now: datetime) -> dict[str, float]:
    """Median seconds from `running` to `succeeded` per model, over the last hour's latest renders."""
    rows = await session.execute(
        select(Task.request["model_version"].as_string(), Task.started_at, Task.finished_at)
        .where(Task.status == status.SUCCEEDED, Task.finished_at > now - WINDOW, Task.started_at.is_not(None))
        .order_by(Task.finished_at.desc())
        .limit(SAMPLE)
    )
    durations: dict[str, list[float]] = {}
    for model, started, finished in rows.all():
        durations.setdefault(model, []).append((finished - started).total_seconds())
    return {model: statistics.median(values) for model, values in durations.items()}
