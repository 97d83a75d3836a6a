"""Read queries behind pagination: a task's history events and an account's task list (keyset, not offset)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from sorapi.contracts import status
from sorapi.store.models import Task, TaskEvent

Row = TypeVar("Row")


async def rows_after(
    session: AsyncSession, stmt: Select[Row], id_column: Any, *, after_id: int | None, limit: int
) -> tuple[list[Row], bool]:
    """A keyset page of `stmt`'s rows, oldest first by `id_column`, strictly after `after_id`; (page, has_more)."""
    if after_id is not None:
        stmt = stmt.where(id_column > after_id)
    rows = list((await session.execute(stmt.order_by(id_column).limit(limit + 1))).scalars())
    return rows[:limit], len(rows) > limit


async def events_page(
    session: AsyncSession, task_id: str, *, after_id: int | None, limit: int
) -> tuple[list[TaskEvent], bool]:
    """Events oldest first, strictly after `after_id`; returns (page, has_more)."""
    stmt = select(TaskEvent).where(TaskEvent.task_id == task_id)
    return await rows_after(session, stmt, TaskEvent.id, after_id=after_id, limit=limit)


async def tasks_page(
    session: AsyncSession,
    account_id: str,
    *,
    statuses: Sequence[str] = (),
    created_from: datetime | None = None,
    created_to: datetime | None = None,
    after: tuple[datetime, str] | None = None,
    newest_first: bool = True,
    limit: int = 20,
    metadata: dict[str, str] | None = None,
) -> tuple[list[Task], bool]:
    """The account's tasks ordered by (created_at, id), continuing after the `after` position.

    With `metadata`, only those whose labels include all of it (`@>`, GIN-indexed).
    """
    stmt = select(Task).where(Task.account_id == account_id)
    if metadata:
        stmt = stmt.where(Task.client_metadata.contains(metadata))
    if statuses:
        stmt = stmt.where(Task.status.in_(list(statuses)))
    if created_from is not None:
        stmt = stmt.where(Task.created_at >= created_from)
    if created_to is not None:
        stmt = stmt.where(Task.created_at < created_to)
    if after is not None:
        at, task_id = after
        if newest_first:
            stmt = stmt.where(or_(Task.created_at < at, and_(Task.created_at == at, Task.id < task_id)))
        else:
            stmt = stmt.where(or_(Task.created_at > at, and_(Task.created_at == at, Task.id > task_id)))
    order = (Task.created_at.desc(), Task.id.desc()) if newest_first else (Task.created_at, Task.id)
    rows = list((await session.execute(stmt.order_by(*order).limit(limit + 1))).scalars())
    return rows[:limit], len(rows) > limit


async def render_queue_ahead(session: AsyncSession, task: Task) -> int:
    """Running tasks (any account) that got their slot before this one: ahead of it for a render worker."""
    if task.started_at is None:
        return 0
    stmt = (
        select(func.count()).select_from(Task).where(Task.status == status.RUNNING, Task.started_at < task.started_at)
    )
    return int(await session.scalar(stmt) or 0)
