"""Task-row activities: the only writers of a task's status after creation."""

from __future__ import annotations

import msgspec
import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

from sorapi.adapters import metrics
from sorapi.contracts import names, status
from sorapi.contracts.messages import MarkFailed, MarkSucceeded
from sorapi.store import task_rows
from sorapi.store.models import Task

log = structlog.get_logger()


class TaskStateActivities:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    @activity.defn(name=names.MARK_SUCCEEDED)
    async def mark_succeeded(self, arg: MarkSucceeded) -> bool:
        async with self._sessions.begin() as session:
            moved = await task_rows.transition(
                session,
                arg.task_id,
                status.SUCCEEDED,
                milestones=task_rows.milestones(arg.render, arg.outputs),
                progress=100,
                outputs=msgspec.to_builtins(arg.outputs),
                render=msgspec.to_builtins(arg.render),
                expires_at=arg.expires_at,
            )
            plan = await task_rows.plan_of(session, moved)
        if moved is not None:
            metrics.TASKS_FINISHED.labels(plan, _model_of(moved), status.SUCCEEDED, "").inc()
        log.info("task succeeded", task_id=arg.task_id, outputs=[o.key for o in arg.outputs])
        return moved is not None

    @activity.defn(name=names.MARK_FAILED)
    async def mark_failed(self, arg: MarkFailed) -> bool:
        async with self._sessions.begin() as session:
            moved = await task_rows.transition(
                session, arg.task_id, arg.status, error_code=arg.error_code, error_message=arg.error_message
            )
            plan = await task_rows.plan_of(session, moved)
        if moved is not None:
            metrics.TASKS_FINISHED.labels(plan, _model_of(moved), arg.status, arg.error_code).inc()
        log.warning("task ended", task_id=arg.task_id, status=arg.status, error_code=arg.error_code)
        return moved is not None


def _model_of(task: Task) -> str:
    return str(task.request.get("model_version", ""))
