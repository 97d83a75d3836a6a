"""Task rows and their append-only event history."""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, select
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


async def transition(session: AsyncSession, task_id: str, target: str, **fields: Any) -> Task | None:
    """Move a task to `target` with `fields`, recording an event; None if the move is not allowed.

    Re-applying the current status (an activity retry) updates nothing and records nothing.
    """
    task = (await session.execute(select(Task).where(Task.id == task_id).with_for_update())).scalar_one()
    if task.status == target or not status.can_move(task.status, target):
        return None if task.status != target else task
    task.status = target
    now = utcnow()
    if target == status.RUNNING:
        task.started_at = now
    if target in status.TERMINAL and task.finished_at is None:  # a retention expiry keeps the render's end
        task.finished_at = now
    for name, value in fields.items():
        setattr(task, name, value)
    event = {k: v for k, v in fields.items() if k in ("error_code", "error_message")}
    add_event(session, task_id, target, event)
    return task


async def plan_of(session: AsyncSession, task: Task | None) -> str:
    """The plan label of a finished task: its account's (the row is already in the session's map)."""
    account = await session.get(Account, task.account_id) if task is not None else None
    return account.plan if account is not None else ""


async def record_milestones(
    session: AsyncSession, task_id: str, render: RenderMeta, outputs: list[StoredObject]
) -> None:
    """History entries for the render and upload milestones of a running task.

    They are written once: a retried success finds the task already moved on.
    """
    task = (await session.execute(select(Task).where(Task.id == task_id).with_for_update())).scalar_one_or_none()
    if task is None or task.status != status.RUNNING:
        return
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
    add_event(session, task_id, "rendered", rendered)
    add_event(
        session, task_id, "uploaded", {"outputs": [{"format": o.format, "size_bytes": o.size_bytes} for o in outputs]}
    )
