"""Accounts, task creation over HTTP and task rows: what every phase of the bench needs."""

from __future__ import annotations

import asyncio
from datetime import datetime

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from sorapi.contracts import status
from sorapi.store.models import Task
from tests.stack import make_account

PAYLOAD = {
    "prompt": "A neon-lit city skyline at dusk with flying cars and dynamic lighting",
    "duration": 1,
    "resolution": "480x480",
}
"""The dev model renders this in about a second on a CPU."""
LIVE = (status.QUEUED, status.RUNNING)


async def accounts(
    sessions: async_sessionmaker[AsyncSession], plans: list[str], credits: int = 10**9
) -> list[tuple[str, str]]:
    """One account with a key per entry of `plans`: [(account_id, key)]."""
    return [await make_account(sessions, plan=plan, credits=credits) for plan in plans]


async def create(api: httpx.AsyncClient, key: str) -> str:
    answer = await api.post("/api/generate", json=PAYLOAD, headers={"Authorization": f"Bearer {key}"})
    answer.raise_for_status()
    return str(answer.json()["task_id"])


async def submit(api: httpx.AsyncClient, keys: list[str], count: int, concurrency: int = 8) -> list[str]:
    """Create `count` tasks, round-robin over `keys`, `concurrency` requests at a time."""
    created: list[str] = []
    todo = iter(range(count))

    async def worker() -> None:
        for n in todo:
            created.append(await create(api, keys[n % len(keys)]))

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return created


async def live_per_account(sessions: async_sessionmaker[AsyncSession]) -> dict[str, int]:
    """account_id → its queued and running tasks."""
    async with sessions() as session:
        rows = await session.execute(
            select(Task.account_id, func.count()).where(Task.status.in_(LIVE)).group_by(Task.account_id)
        )
    return {account_id: count for account_id, count in rows.all()}


async def newest_queued(sessions: async_sessionmaker[AsyncSession]) -> datetime | None:
    async with sessions() as session:
        return await session.scalar(select(func.max(Task.created_at)).where(Task.status == status.QUEUED))


async def wait_ended(sessions: async_sessionmaker[AsyncSession], task_ids: list[str], timeout_s: float) -> None:
    """Until every one of `task_ids` is terminal, whatever its end."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        async with sessions() as session:
            left = await session.scalar(select(func.count()).where(Task.id.in_(task_ids), Task.status.in_(LIVE)))
        if not left:
            return
        if loop.time() > deadline:
            raise TimeoutError(f"{left} of {len(task_ids)} tasks still queued or running after {timeout_s:.0f} s")
        await asyncio.sleep(0.5)
