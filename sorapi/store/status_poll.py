"""A status poll's reads in one round trip.

They are the key's owner, the key-use audit entry, and the task with its place in the account's queue.

Polling is the hottest path of a video API (clients poll every second or two for minutes), and on
a loaded host each round trip to the database costs more than the Python around it.
"""

from __future__ import annotations

from sqlalchemy import and_, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from sorapi.store import accounts, slots
from sorapi.store.accounts import KeyOwner, KeyUse
from sorapi.store.models import Task

_OWNER_AND_TASK = (
    select(accounts.OWNER, Task, slots.POSITION)
    .select_from(accounts.OWNER)
    .outerjoin(Task, and_(Task.id == bindparam("task_id"), Task.account_id == accounts.OWNER.c.account_id))
    .add_cte(accounts.USE_LOGGED)
)


async def owner_and_task(
    session: AsyncSession, key: str, use: KeyUse, task_id: str
) -> tuple[KeyOwner | None, tuple[Task, int | None] | None]:
    """(owner of `key` or None, (task, queue position) or None when the owner has no such task)."""
    params = accounts.owner_params(key, use)
    row = (await session.execute(_OWNER_AND_TASK, {**params, "task_id": task_id})).first()
    owner = accounts.owner_of(row, params["digest"])
    if owner is None or row is None:
        return None, None
    task, position = row[-2], row[-1]
    return owner, ((task, position) if task is not None else None)
