"""Task rows and their append-only event history."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from sorapi.contracts import status
from sorapi.contracts.messages import RenderMeta, StoredObject
from sorapi.store.models import Account, Task, TaskEvent, utcnow


async def find_by_idempotency_key(session: AsyncSession, account_id: str, key: str) -> Task | None:
    stmt = select(Task).where(Task.account_id == account_id, Task.idempotency_key == key)
    return (await session.execute(stmt)).scalar_one_or_none()


_TASK_OF_ACCOUNT = select(Task).where(Task.id == bindparam("task_id"), Task.account_id == bindparam("account_id"))
"""Built once (every status poll runs it)."""


async def get_for_account(session: AsyncSession, account_id: str, task_id: str) -> Task | None:
    """A task only if it belongs to the account: another tenant's task is indistinguishable from none."""
    params = {"task_id": task_id, "account_id": account_id}
    return (await session.execute(_TASK_OF_ACCOUNT, params)).scalar_one_or_none()


def shown_metadata(task: Task) -> dict[str, str | None]:
    """A task's `metadata` as clients see it: their labels and the task's `idempotency_key`."""
    return {**task.client_metadata, "idempotency_key": task.idempotency_key}


def add_event(session: AsyncSession, task_id: str, kind: str, data: dict[str, Any] | None = None) -> None:
    session.add(TaskEvent(task_id=task_id, kind=kind, data=data or {}))


_SOURCES = {
    target: [src for src in status.ALL if src != target and status.can_move(src, target)] for target in status.ALL
}
"""The statuses a task may move to each target from (the state machine's `can_move`)."""


async def transition(
    session: AsyncSession,
    task_id: str,
    target: str,
    *,
    milestones: Iterable[tuple[str, dict[str, Any]]] = (),
    **fields: Any,
) -> Task | None:
    """Move a task to `target` with `fields`, recording an event; None if the move is not allowed.

    One UPDATE, conditional on a status that may move to `target`: concurrent movers serialize on the row, and the
    second sees the first's status. `milestones` are events recorded just before the move's own, only if it moves.
    Re-applying the current status (an activity retry) updates nothing, records nothing and returns the task.
    """
    now = utcnow()
    values: dict[str, Any] = {"status": target, **fields}
    if target == status.RUNNING:
        values["started_at"] = now
    if target in status.TERMINAL:
        values["finished_at"] = func.coalesce(Task.finished_at, now)  # a retention expiry keeps the render's end
    moved = (
        await session.scalars(
            update(Task)
            .where(Task.id == task_id, Task.status.in_(_SOURCES[target]))
            .values(values)
            .returning(Task)
            .execution_options(synchronize_session=False, populate_existing=True)
        )
    ).one_or_none()
    if moved is None:
        current = (
            await session.scalars(select(Task).where(Task.id == task_id).execution_options(populate_existing=True))
        ).one_or_none()
        return current if current is not None and current.status == target else None
    for kind, data in milestones:
        add_event(session, task_id, kind, data)
    add_event(session, task_id, target, {k: v for k, v in fields.items() if k in ("error_code", "error_message")})
    return moved


async def plan_of(session: AsyncSession, task: Task | None) -> str:
    """The plan label of a finished task: its account's (the row is already in the session's map)."""
    account = await session.get(Account, task.account_id) if task is not None else None
    return account.plan if account is not None else ""


def milestones(render: RenderMeta, outputs: list[StoredObject]) -> list[tuple[str, dict[str, Any]]]:
    """History entries for the render and upload of a task that succeeds (`transition`'s `milestones`)."""
    rendered = {
        "width": render.width,
        "height": render.height,
        "frames": render.num_frames,
        "fps": render.fps,
        "steps": render.steps,
        "load_s": render.load_s,
        "denoise_s": render.denoise_s,
        "encode_s": render.encode_s,
    }
    uploaded = {"outputs": [{"format": o.format, "size_bytes": o.size_bytes} for o in outputs]}
    return [("rendered", rendered), ("uploaded", uploaded)]
