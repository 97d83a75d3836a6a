"""Resident memory that does not creep.

The API after N requests vs after the first tenth, a render worker after M tasks vs after its first few. RSS is VmRSS
from /proc, the median of three readings half a second apart once the requests have stopped.
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bench.faults.load import PAYLOAD
from sorapi.contracts import status
from sorapi.store.models import Task

LIMIT = 1.10
"""The later reading may be at most 10% above the earlier one."""


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


async def settled_rss_kib(pid: int) -> int:
    readings = []
    for _ in range(3):
        await asyncio.sleep(0.5)
        readings.append(rss_kib(pid))
    return int(statistics.median(readings))


def _verdict(first: int, later: int, labels: tuple[str, str]) -> dict[str, Any]:
    return {
        labels[0] + "_mib": round(first / 1024, 1),
        labels[1] + "_mib": round(later / 1024, 1),
        "growth": round(later / first - 1, 4),
        "met": later <= first * LIMIT,
    }


async def _succeeded(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as session:
        return int(await session.scalar(select(func.count()).where(Task.status == status.SUCCEEDED)) or 0)


async def _create_and_wait(
    http: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession], key: str, count: int, timeout_s: float
) -> None:
    target = await _succeeded(sessions) + count
    for _ in range(count):
        answer = await http.post("/api/generate", json=PAYLOAD, headers={"Authorization": f"Bearer {key}"})
        answer.raise_for_status()
    deadline = time.monotonic() + timeout_s
    while await _succeeded(sessions) < target:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{target - await _succeeded(sessions)} of {count} tasks did not succeed")
        await asyncio.sleep(0.5)


async def render_worker(
    http: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession], key: str, pid: int, first: int, total: int
) -> dict[str, Any]:
    """The worker's RSS after its first `first` tasks (model load included) and after `total`.

    The worker is the stack's only one and must be fresh: every succeeded task is one it rendered.
    """
    done_before = await _succeeded(sessions)
    if done_before:
        raise RuntimeError(f"the render worker already rendered {done_before} tasks: run this phase first")
    await _create_and_wait(http, sessions, key, first, 300)
    early = await settled_rss_kib(pid)
    await _create_and_wait(http, sessions, key, total - first, 60 + 10 * total)
    late = await settled_rss_kib(pid)
    return {"tasks": [first, total], **_verdict(early, late, (f"after_{first}", f"after_{total}"))}


async def api(
    http: httpx.AsyncClient,
    key: str,
    task_id: str,
    pid: int,
    first: int,
    total: int,
    concurrency: int = 8,
    generate_every: int = 100,
) -> dict[str, Any]:
    """The API's RSS after its first `first` requests of this mix and after `total`.

    The mix: status polls of a real task, listings, a 404, a 422 (invalid body) and, one request in `generate_every`, a
    real generate (so the write path and its Temporal start are in the mix).
    """
    auth = {"Authorization": f"Bearer {key}"}
    mix = [
        lambda: http.get("/api/status", params={"task_id": task_id}, headers=auth),
        lambda: http.get("/api/status", params={"task_id": task_id, "expand": "events"}, headers=auth),
        lambda: http.get("/api/tasks", params={"limit": 20}, headers=auth),
        lambda: http.get("/api/status", params={"task_id": "sora2_no_such_task"}, headers=auth),
        lambda: http.post("/api/generate", json={**PAYLOAD, "duration": 999}, headers=auth),
    ]
    codes: dict[int, int] = {}
    count = itertools.count()

    async def worker(until: int) -> None:
        while (n := next(count)) < until:
            if n % generate_every == generate_every - 1:
                answer = await http.post("/api/generate", json=PAYLOAD, headers=auth)
            else:
                answer = await mix[n % len(mix)]()
            codes[answer.status_code] = codes.get(answer.status_code, 0) + 1

    began = time.monotonic()
    await asyncio.gather(*(worker(first) for _ in range(concurrency)))
    early = await settled_rss_kib(pid)
    count = itertools.count(first)
    await asyncio.gather(*(worker(total) for _ in range(concurrency)))
    late = await settled_rss_kib(pid)
    return {
        "requests": [first, total],
        "seconds": round(time.monotonic() - began, 1),
        "status_codes": dict(sorted(codes.items())),
        **_verdict(early, late, (f"after_{first}", f"after_{total}")),
    }
