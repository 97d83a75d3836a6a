"""Plan concurrency as the task rows show it: the line of queued tasks, the running ones.

The account's slot gate (`workflows/slot_gate.py`) decides who runs; these reads give it its
state after a restart, its audit, and clients their `queue_position`. `try_acquire` is the
polling gate that task workflows started before the slot gate still use (`acquire_slot`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import and_, bindparam, case, delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from sorapi.contracts import errors, status
from sorapi.store import ledger, task_rows
from sorapi.store.models import SlotWaiter, Task, utcnow

SNAPSHOT_LINE_CAP = 20_000
"""A gate rebuilt from the rows reads at most this many waiters at a time (about 1 MB of state); it
reads the rest once those are through (`GateSnapshot.more`)."""
ORPHAN_MESSAGE = "the task's workflow ended before the task finished"

WAITER_TTL = timedelta(seconds=15)
"""A waiter not seen for this long is presumed gone (its workflow retries every second)."""


@dataclass(frozen=True)
class SlotDecision:
    acquired: bool
    """The task is running (now or already)."""
    ended: bool = False
    """The task is already terminal: there is nothing to start."""
    ahead: int = 0
    """Live waiters before this one (0: it is next)."""
    running: list[str] = field(default_factory=list)
    """Ids of the account's running tasks when the account was full."""


async def running_task_ids(session: AsyncSession, account_id: str) -> list[str]:
    rows = await session.execute(select(Task.id).where(Task.account_id == account_id, Task.status == status.RUNNING))
    return list(rows.scalars())


async def try_acquire(
    session: AsyncSession, task_id: str, limit: int | None = None, now: datetime | None = None
) -> SlotDecision:
    """Move a queued task to running if the account has a free slot and the task is next in line."""
    now = now or utcnow()
    account_id = (await session.execute(select(Task.account_id).where(Task.id == task_id))).scalar_one()
    account = await ledger.lock_account(session, account_id)
    task = (
        await session.execute(
            select(Task).where(Task.id == task_id).with_for_update().execution_options(populate_existing=True)
        )
    ).scalar_one()
    if task.status == status.RUNNING:
        return SlotDecision(acquired=True)
    if task.status != status.QUEUED:
        await session.execute(delete(SlotWaiter).where(SlotWaiter.task_id == task_id))
        return SlotDecision(acquired=False, ended=True)
    limit = limit if limit is not None else ledger.plan_of(account).max_concurrent_jobs

    waiter = await session.get(SlotWaiter, task_id)
    if waiter is None:
        session.add(SlotWaiter(task_id=task_id, account_id=account_id, queued_at=task.created_at, seen_at=now))
    else:
        waiter.seen_at = now
    await session.flush()

    running = await running_task_ids(session, account_id)
    free = limit - len(running)
    waiting = (
        (
            await session.execute(
                select(SlotWaiter.task_id)
                .join(Task, Task.id == SlotWaiter.task_id)
                .where(
                    SlotWaiter.account_id == account_id,
                    Task.status == status.QUEUED,
                    SlotWaiter.seen_at >= now - WAITER_TTL,
                )
                .order_by(SlotWaiter.queued_at, SlotWaiter.task_id)
            )
        )
        .scalars()
        .all()
    )
    ahead = waiting.index(task_id)
    if ahead >= free:
        return SlotDecision(acquired=False, ahead=ahead, running=running)
    await task_rows.transition(session, task_id, status.RUNNING)
    await session.execute(
        delete(SlotWaiter).where(
            SlotWaiter.account_id == account_id,
            or_(SlotWaiter.task_id == task_id, SlotWaiter.seen_at < now - WAITER_TTL),
        )
    )
    return SlotDecision(acquired=True)


_earlier = aliased(Task)
POSITION = case(
    (
        Task.status == status.QUEUED,
        select(func.count() + 1)
        .select_from(_earlier)
        .where(
            _earlier.account_id == Task.account_id,
            _earlier.status == status.QUEUED,
            or_(
                _earlier.created_at < Task.created_at,
                and_(_earlier.created_at == Task.created_at, _earlier.id < Task.id),
            ),
        )
        .correlate(Task)
        .scalar_subquery(),
    )
)
"""A task's place in its account's line of queued tasks (1 = next to get a slot); NULL unless queued."""
_POSITION_OF = select(POSITION).where(Task.id == bindparam("task_id"))


async def queue_positions(session: AsyncSession, task_ids: list[str]) -> dict[str, int]:
    """The places in line of those of `task_ids` that are queued, in one statement."""
    if not task_ids:
        return {}
    rows = await session.execute(select(Task.id, POSITION).where(Task.id.in_(task_ids), Task.status == status.QUEUED))
    return {task_id: position for task_id, position in rows.all()}


async def queue_position(session: AsyncSession, task: Task) -> int | None:
    """1 for the account's oldest queued task, 2 for the next...: the order slots are handed out in.

    None once the task is no longer queued.
    """
    return await session.scalar(_POSITION_OF, {"task_id": task.id})


async def snapshot(
    session: AsyncSession, account_id: str, cap: int = SNAPSHOT_LINE_CAP
) -> tuple[list[str], list[tuple[datetime, str]]]:
    """The account's running task ids and its line of queued tasks, oldest first."""
    running = await running_task_ids(session, account_id)
    line = await session.execute(
        select(Task.created_at, Task.id)
        .where(Task.account_id == account_id, Task.status == status.QUEUED)
        .order_by(Task.created_at, Task.id)
        .limit(cap)
    )
    return running, [(created, task_id) for created, task_id in line.all()]


async def ended_among(session: AsyncSession, task_ids: list[str]) -> list[str]:
    """Those of `task_ids` whose row is terminal or missing: they hold no slot."""
    if not task_ids:
        return []
    live = set(
        (
            await session.execute(
                select(Task.id).where(Task.id.in_(task_ids), Task.status.in_((status.QUEUED, status.RUNNING)))
            )
        ).scalars()
    )
    return [task_id for task_id in task_ids if task_id not in live]


async def fail_orphan(session: AsyncSession, task_id: str) -> Task | None:
    """Fail a queued or running task whose workflow is gone and return its hold; None if it had ended."""
    task = await session.get(Task, task_id)
    if task is None or task.status not in (status.QUEUED, status.RUNNING):
        return None
    moved = await task_rows.transition(
        session, task_id, status.FAILED, error_code=errors.INTERNAL_ERROR, error_message=ORPHAN_MESSAGE
    )
    if moved is not None:
        await ledger.release(session, moved.account_id, task_id, reason="workflow ended without the task")
    return moved
