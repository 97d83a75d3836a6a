"""The end of a task's life: its objects leave S3 and the task becomes `expired`.

The row moves first, so from that moment `GET /api/status` shows no URLs; then the objects are
deleted. A retry after a crash repeats only what is left (both steps are idempotent).
"""

from __future__ import annotations

import asyncio

import structlog
from minio import Minio
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

from sorapi.adapters import storage
from sorapi.contracts import names, status
from sorapi.contracts.messages import ExpireTask
from sorapi.store import task_rows
from sorapi.store.models import Task, utcnow

log = structlog.get_logger()


class ExpiryActivities:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], s3: Minio, bucket: str) -> None:
        self._sessions, self._s3, self._bucket = sessions, s3, bucket

    @activity.defn(name=names.EXPIRE_TASK)
    async def expire_task(self, arg: ExpireTask) -> int:
        """Mark the task expired (keeping its request and recording when), then delete its objects."""
        async with self._sessions.begin() as session:
            task = await session.get(Task, arg.task_id, with_for_update=True)
            if task is None:
                raise LookupError(f"no task {arg.task_id}")
            # On the retention timer the promised time is the truth; an early delete expires now.
            on_time = arg.reason == "retention" and task.expires_at is not None
            expires_at = task.expires_at if on_time else utcnow()
            if task.status != status.EXPIRED:
                await task_rows.transition(session, arg.task_id, status.EXPIRED, expires_at=expires_at)
        removed = await asyncio.to_thread(
            storage.delete_prefix, self._s3, self._bucket, storage.task_prefix(arg.task_id)
        )
        async with self._sessions.begin() as session:
            task_rows.add_event(session, arg.task_id, "assets_deleted", {"objects": removed, "reason": arg.reason})
        log.info("task expired", task_id=arg.task_id, reason=arg.reason, objects_deleted=removed)
        return removed

    @activity.defn(name=names.DISCARD_OUTPUTS)
    async def discard_outputs(self, task_id: str) -> int:
        """Delete what a task that did not succeed left in S3: the files of an upload that failed part-way.

        Nothing is served for such a task, so nothing of it is kept. Idempotent.
        """
        removed = await asyncio.to_thread(storage.delete_prefix, self._s3, self._bucket, storage.task_prefix(task_id))
        if removed:
            log.info("partial outputs discarded", task_id=task_id, objects_deleted=removed)
        return removed
