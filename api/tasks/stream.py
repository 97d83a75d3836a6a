"""A task's life pushed to the client.

`GET /api/tasks/{task_id}/events` (Server-Sent Events) and `Prefer: wait=N` on create and status.

The stream replays the task's recorded events after `Last-Event-ID` (each carries its event id),
then sends each new one as it is recorded, `progress` while it renders, a comment every
`SORAPI_STREAM_KEEPALIVE_S`, and ends after the terminal event. Nothing here polls per stream:
recorded events arrive by NOTIFY and progress from one shared watcher per task (sorapi.api.tasks.events).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from datetime import datetime

import msgspec
from litestar import Controller, Request, get
from litestar.params import Parameter
from litestar.response import ServerSentEvent, ServerSentEventMessage
from sqlalchemy import select

from sorapi.api.auth import NEEDS_READ, Principal
from sorapi.api.openapi import error_responses
from sorapi.api.ratelimit import RATE_STATUS
from sorapi.api.state import Resources
from sorapi.api.tasks import task_service
from sorapi.api.tasks.events import Wakeup
from sorapi.contracts import errors, status
from sorapi.store.models import Task, TaskEvent

STREAMED = frozenset(status.ALL)
"""Recorded events a stream carries (the status changes); bookkeeping events only advance its id."""
MAX_WAIT_S = 60
_WAIT = re.compile(r"(?:^|[,;\s])wait\s*=\s*(\d+)(?=$|[,;\s])", re.IGNORECASE)


LAST_EVENT_ID = r"^[0-9]{0,10}$"
"""An event id, or empty for none."""
MAX_EVENT_ID = 2**31 - 1
"""`task_events.id` is an integer column: a larger id is past every event."""


def _last_event_id(header: str) -> int:
    if header == "":
        return 0
    if not re.fullmatch(LAST_EVENT_ID, header):
        raise errors.ValidationFailed(
            "Last-Event-ID must be the id of an event of this stream",
            details=[{"field": "Last-Event-ID", "message": "expected the id of an event (digits)"}],
        )
    return min(int(header), MAX_EVENT_ID)


def _at(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


async def _load_news(res: Resources, task_id: str, after: int) -> tuple[list[TaskEvent], Task, dict[int, str]]:
    """The task's events after `after`, the task, and (filled as streams render them) terminal messages.

    The task is read first: a status change and its event commit together, so a task already
    terminal here has its terminal event among the events read next (two statements, two snapshots:
    the other order could see the end in the row but not yet its event, and close the stream early).
    """
    async with res.autocommit_sessions() as session:
        task = await session.get_one(Task, task_id, populate_existing=True)
        events = list(
            (
                await session.scalars(
                    select(TaskEvent).where(TaskEvent.task_id == task_id, TaskEvent.id > after).order_by(TaskEvent.id)
                )
            ).all()
        )
    return events, task, {}


async def _event_message(
    res: Resources, event: TaskEvent, task: Task, plan: str, rendered: dict[int, str]
) -> ServerSentEventMessage:
    """One recorded event.

    A terminal one carries the whole status, rendered once for every stream that shares this read (`rendered`).
    """
    if event.id not in rendered:
        data: dict[str, object] = {"task_id": task.id, "status": event.kind, "at": _at(event.created_at), **event.data}
        if event.kind in status.TERMINAL:
            view = await task_service.status_view(res, task, plan=plan, queue_position=None)
            data = {**msgspec.to_builtins(view), "at": data["at"]}
        rendered[event.id] = msgspec.json.encode(data).decode()
    return ServerSentEventMessage(event=event.kind, id=event.id, data=rendered[event.id])


def _progress_message(task_id: str, latest: tuple[int | None, object, int | None]) -> ServerSentEventMessage:
    percent, live, eta = latest
    return ServerSentEventMessage(
        event="progress",
        data=msgspec.json.encode(
            {"task_id": task_id, "percent": percent, "eta_seconds": eta, **msgspec.to_builtins(live)}
        ).decode(),
    )


async def stream(res: Resources, task: Task, plan: str, after: int) -> AsyncIterator[ServerSentEventMessage]:
    """The stream body: recorded events after `after`, then news as it comes, until the end."""
    wakeup, task_id = Wakeup(), task.id

    async def progress() -> tuple[int | None, object, int | None]:
        percent, live = await task_service.live_state(res, task)
        eta = await res.render_times.eta(
            res.autocommit_sessions, res.catalog, task, plan=plan, position=None, progress=percent or task.progress
        )
        return percent, live, eta

    async with contextlib.AsyncExitStack() as following:
        following.enter_context(res.news.watch(task.id, wakeup))
        latest = None
        while True:
            news, moved = wakeup.take()
            if news:
                events, current, rendered = await res.news.read(
                    task_id, after, lambda since: _load_news(res, task_id, since)
                )
                for event in events:
                    after = event.id
                    if event.kind in STREAMED:
                        yield await _event_message(res, event, current, plan, rendered)
                        if event.kind in status.TERMINAL:
                            return
                if current.status in status.TERMINAL:
                    return  # resumed after its terminal event: nothing more will come
                if current.status == status.RUNNING and latest is None:
                    task = current
                    latest = await following.enter_async_context(res.progress.follow(task.id, progress, wakeup))
            if moved and latest is not None and latest() is not None:
                yield _progress_message(task.id, latest())
            if not await wakeup.wait(res.settings.stream_keepalive_s):
                yield ServerSentEventMessage(comment="keep-alive", data=None)  # no empty `data:`: no empty event


class TaskEventsController(Controller):
    path = "/api/tasks"
    tags = ["tasks"]

    @get(
        "/{task_id:str}/events",
        opt=RATE_STATUS | NEEDS_READ,
        responses=error_responses(401, 404, 422, 429),
        media_type="text/event-stream",
    )
    async def events(
        self,
        task_id: str,
        principal: Principal,
        resources: Resources,
        last_event_id: str = Parameter(
            header="Last-Event-ID",
            default="",
            schema_extra={"pattern": LAST_EVENT_ID},  # published; checked by `_last_event_id`, naming the header
            description="Resume after this event (the `id:` of the last event received); browsers send it on reconnect",
        ),
    ) -> ServerSentEvent:
        """The task's life as Server-Sent Events.

        Sends `queued`, `running`, `progress` (phase, step, total, percent, eta_seconds), then one of `succeeded` (with
        the output links, as `/api/status`), `failed`, `cancelled` or `expired`, after which the stream ends. Each
        recorded event carries an `id:`; `Last-Event-ID` resumes after it (recorded events are replayed first). A
        comment keeps the connection alive every 15 s. Open streams are limited per key (429 `too_many_streams`).
        """
        after = _last_event_id(last_event_id)
        task = await task_service.get_task(resources, principal, task_id)
        resources.streams.check(principal.key_id)

        async def body() -> AsyncIterator[ServerSentEventMessage]:
            with resources.streams.hold(principal.key_id):
                async for message in stream(resources, task, principal.plan, after):
                    yield message

        return ServerSentEvent(body(), headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def preferred_wait(request: Request) -> int | None:
    """Seconds of `Prefer: wait=N` (RFC 7240), at most 60; None when absent or unreadable.

    A preference a server does not understand is ignored, never refused.
    """
    found = [_WAIT.search(value) for value in request.headers.getall("prefer", [])]
    seconds = next((int(match.group(1)) for match in found if match), None)
    return None if seconds is None else min(seconds, MAX_WAIT_S)


async def wait_until_ended(res: Resources, task_id: str, seconds: int) -> bool:
    """Whether the task is terminal within `seconds`; wakes on the task's news, never polls."""
    wakeup = Wakeup()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    with res.news.watch(task_id, wakeup):
        while True:
            news, _ = wakeup.take()
            if news:
                async with res.autocommit_sessions() as session:
                    current = await session.scalar(select(Task.status).where(Task.id == task_id))
                if current in status.TERMINAL:
                    return True
            left = deadline - loop.time()
            if left <= 0 or not await wakeup.wait(left):
                return False
