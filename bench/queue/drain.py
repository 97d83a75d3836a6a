"""Drain: M tasks across K accounts of mixed plans run to the end, and nothing is lost.

Every task must end `succeeded`, charged exactly once, and every account's balance must equal its
starting credits minus its `capture` entries, with nothing left reserved: a slot, a hold or a
task dropped anywhere between the API, the gates and the workflows shows up here.

With one account (a Free line of N tasks, as a newcomer would try on `make dev`) the drain also has
a bound: 1.6 × N × (one task's end-to-end time, measured alone) / the plan's slots.
"""

from __future__ import annotations

import os
import statistics
import time
from datetime import UTC, datetime

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client

from bench.api.cpu import TICKS, process_ticks, tree_of
from bench.queue import handover, tasks
from sorapi.domain.catalog import get_catalog
from sorapi.store.ledger import CAPTURE
from sorapi.store.models import Account, LedgerEntry, Task

PLANS = ("free", "pro", "scale")


BOUND = 1.6
"""The issue's allowance over a perfect drain (N × one task / slots) for scheduling and contention."""
SINGLE_RUNS = 5
"""One task's time is the median of this many, each alone on a fresh account: one run on a shared
machine can land in a quiet or a busy second, and the bound scales with it."""


async def single_task_s(api: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]) -> float:
    """End-to-end seconds of one task alone on a fresh account (created → finished, as the rows say)."""
    times = []
    for _ in range(SINGLE_RUNS):
        ((_, key),) = await tasks.accounts(sessions, ["free"])
        task_id = await tasks.create(api, key)
        await tasks.wait_ended(sessions, [task_id], 300)
        async with sessions() as session:
            task = await session.get(Task, task_id)
        assert task is not None and task.finished_at is not None
        times.append((task.finished_at - task.created_at).total_seconds())
    return statistics.median(times)


def cpu_seconds(processes: dict[str, int]) -> dict[str, float]:
    """CPU-seconds used so far by each of the stack's processes (PostgreSQL: with its backends)."""
    return {
        role: sum(map(process_ticks, tree_of(pid) if role == "postgres" else {pid})) / TICKS
        for role, pid in processes.items()
    }


async def run(
    api: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    count: int,
    accounts: int,
    timeout_s: float,
    *,
    single_s: float | None = None,
    processes: dict[str, int] | None = None,
    temporal: Client | None = None,
) -> dict[str, object]:
    """Drain `count` tasks over `accounts` new accounts; with `temporal`, also where each task's time went."""
    made = await tasks.accounts(sessions, [PLANS[n % len(PLANS)] for n in range(accounts)], credits=100_000)
    ids = [account_id for account_id, _ in made]
    start = await _balances(sessions, ids)
    began, began_at = time.monotonic(), datetime.now(UTC)
    cpu_before = cpu_seconds(processes or {})
    created = await tasks.submit(api, [key for _, key in made], count)
    submitted_s = time.monotonic() - began
    await tasks.wait_ended(sessions, created, timeout_s)
    cpu_after = cpu_seconds(processes or {})
    async with sessions() as session:
        last = await session.scalar(select(func.max(Task.finished_at)).where(Task.id.in_(created)))
        ends = dict(
            (
                await session.execute(
                    select(Task.status, func.count()).where(Task.id.in_(created)).group_by(Task.status)
                )
            ).all()
        )
        captures = dict(
            (
                await session.execute(
                    select(LedgerEntry.account_id, func.coalesce(func.sum(LedgerEntry.amount), 0))
                    .where(LedgerEntry.account_id.in_(ids), LedgerEntry.kind == CAPTURE)
                    .group_by(LedgerEntry.account_id)
                )
            ).all()
        )
        charged = await session.scalar(
            select(func.count(func.distinct(LedgerEntry.task_id))).where(
                LedgerEntry.task_id.in_(created), LedgerEntry.kind == CAPTURE
            )
        )
        captured = await session.scalar(
            select(func.count()).where(LedgerEntry.task_id.in_(created), LedgerEntry.kind == CAPTURE)
        )
    end = await _balances(sessions, ids)
    wrong = [
        account_id for account_id in ids if end[account_id] != (start[account_id][0] - captures.get(account_id, 0), 0)
    ]
    wall = (last - began_at).total_seconds() if last else float("nan")
    bound: dict[str, object] = {}
    if accounts == 1 and single_s is not None:
        slots = get_catalog().plans[PLANS[0]].max_concurrent_jobs
        limit = BOUND * count * single_s / slots
        bound = {"single_task_s": round(single_s, 2), "slots": slots, "bound_s": round(limit, 1)}
        bound["within"] = wall <= limit
    if processes:
        per_task = {role: round((cpu_after[role] - cpu_before[role]) / count, 3) for role in processes}
        bound["cpu_s_per_task"] = per_task
        # All cores busy with nothing but this stack: the fastest this machine can drain the line.
        bound["cpu_floor_s"] = round(sum(per_task.values()) * count / (os.cpu_count() or 1), 1)
    if temporal is not None:
        bound["handover"] = await handover.breakdown(temporal, created, wall)
    ok = ends == {"succeeded": count} and charged == captured == count and not wrong
    return {
        "tasks": count,
        "accounts": accounts,
        "plans": list(PLANS),
        "submit_s": round(submitted_s, 1),
        "wall_s": round(wall, 1),
        "tasks_per_s": round(count / wall, 2),
        "ends": ends,
        "charged_tasks": charged,
        "captures": captured,
        "accounts_off": wrong,
        **bound,
        "ok": ok,
    }


async def _balances(sessions: async_sessionmaker[AsyncSession], ids: list[str]) -> dict[str, tuple[int, int]]:
    async with sessions() as session:
        rows = await session.execute(select(Account.id, Account.balance, Account.reserved).where(Account.id.in_(ids)))
    return {account_id: (balance, reserved) for account_id, balance, reserved in rows.all()}
