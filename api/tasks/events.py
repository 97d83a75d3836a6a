"""A task's news, pushed to whoever waits in this API process: event streams and `Prefer: wait`.

Two sources, both shared, so the cost grows with news, not with the number of waiters:
- **Recorded events.** Every insert into `task_events` NOTIFYs `sorapi_task_events` with the task
  id (a trigger, migration 0007). One LISTEN connection per process wakes the waiters of that task;
  they read what is new. If the connection drops, every waiter is woken to re-read, then it
  reconnects.
- **Render progress** lives in the render's heartbeats (Temporal), not in the database. One
  watcher per running task with followers describes its workflow once a second and wakes them when
  the progress moved; it stops with its last follower.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg
import structlog
from sqlalchemy.engine import make_url

from sorapi.contracts import errors

log = structlog.get_logger()

CHANNEL = "sorapi_task_events"
RECONNECT_S = 1.0
PROGRESS_EVERY_S = 1.0


@dataclass(eq=False)
class Wakeup:
    """One waiter's doorbell: which source rang since it last looked."""

    event: asyncio.Event = field(default_factory=asyncio.Event)
    news: bool = True  # a new waiter reads once before it sleeps
    progress: bool = False

    def ring(self, *, news: bool = False, progress: bool = False) -> None:
        self.news |= news
        self.progress |= progress
        self.event.set()

    async def wait(self, timeout_s: float) -> bool:
        """True if rung within `timeout_s`; then the flags say why, until `take` clears them."""
        try:
            await asyncio.wait_for(self.event.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    def take(self) -> tuple[bool, bool]:
        news, progress = self.news, self.progress
        self.news = self.progress = False
        self.event.clear()
        return news, progress


class TaskEventHub:
    """The process's LISTEN connection and who waits on which task."""

    def __init__(self, database_url: str) -> None:
        self._url = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
        self._waiters: dict[str, set[Wakeup]] = {}
        self._listener: asyncio.Task[None] | None = None
        self.listening = asyncio.Event()
        self._news_seen: dict[str, int] = {}
        """Notifications per watched task: a read made since the last one is still current."""
        self._reads: dict[str, _Read] = {}

    async def read(self, task_id: str, after: int, load: Callable[[int], Awaitable[Any]]) -> Any:
        """`load(after)` (the task's events after `after`, and the task), shared by the task's waiters.

        When one notification wakes them all, the first reads and the others reuse its answer, so a task's news costs
        one query however many streams follow it. Each answer is a list of rows with an `id` first, then anything else;
        waiters further behind read for themselves.
        """
        shared = self._reads.setdefault(task_id, _Read())
        async with shared.lock:
            seen = self._news_seen.get(task_id, 0)
            if shared.answer is not None and shared.seen == seen and shared.after <= after:
                rows, *rest = shared.answer
                return [row for row in rows if row.id > after], *rest
            answer = await load(after)
            shared.seen, shared.after, shared.answer = seen, after, answer
            return answer

    async def start(self) -> None:
        self._listener = asyncio.create_task(self._listen(), name="task-events-listener")

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener

    @contextlib.contextmanager
    def watch(self, task_id: str, wakeup: Wakeup) -> Iterator[Wakeup]:
        """Ring `wakeup` on each of the task's new events while the block runs.

        Register before reading the task, so nothing committed after that read goes unnoticed.
        """
        self._waiters.setdefault(task_id, set()).add(wakeup)
        try:
            yield wakeup
        finally:
            waiters = self._waiters.get(task_id)
            if waiters is not None:
                waiters.discard(wakeup)
                if not waiters:
                    del self._waiters[task_id]
                    self._news_seen.pop(task_id, None)
                    self._reads.pop(task_id, None)

    def waiting(self) -> int:
        return sum(len(w) for w in self._waiters.values())

    async def _listen(self) -> None:
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(self._url, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    self.listening.set()
                    self._ring_all()  # anything committed while we were away: read it now
                    async for note in conn.notifies():
                        if note.payload in self._waiters:
                            self._news_seen[note.payload] = self._news_seen.get(note.payload, 0) + 1
                            for wakeup in tuple(self._waiters[note.payload]):
                                wakeup.ring(news=True)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database went away: re-read, then reconnect
                log.warning("task event listener lost its connection", error=str(exc))
            self.listening.clear()
            self._ring_all()
            await asyncio.sleep(RECONNECT_S)

    def _ring_all(self) -> None:
        for task_id, waiters in tuple(self._waiters.items()):
            self._news_seen[task_id] = self._news_seen.get(task_id, 0) + 1
            for wakeup in tuple(waiters):
                wakeup.ring(news=True)


@dataclass(eq=False)
class _Read:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    seen: int = -1
    after: int = 0
    answer: Any = None


class StreamSlots:
    """Open streams per API key on this process, so one key cannot hold every connection."""

    def __init__(self, per_key: int) -> None:
        self.per_key = per_key
        self._open: dict[str, int] = {}

    @contextlib.contextmanager
    def hold(self, key_id: str) -> Iterator[None]:
        self._open[key_id] = self._open.get(key_id, 0) + 1
        try:
            yield
        finally:
            self._open[key_id] -= 1
            if not self._open[key_id]:
                del self._open[key_id]

    def check(self, key_id: str) -> None:
        if self._open.get(key_id, 0) >= self.per_key:
            raise errors.RateLimited(
                f"this API key already has {self.per_key} event streams open; close one first",
                code=errors.TOO_MANY_STREAMS,
                headers={"Retry-After": "5"},
            )


Fetch = Callable[[], Awaitable[Any]]


@dataclass(eq=False)
class _Watch:
    followers: set[Wakeup]
    latest: Any = None
    task: asyncio.Task[None] | None = None


class ProgressWatchers:
    """One progress watcher per followed task, shared by its followers."""

    def __init__(self, every_s: float = PROGRESS_EVERY_S) -> None:
        self._every_s = every_s
        self._watches: dict[str, _Watch] = {}

    @contextlib.asynccontextmanager
    async def follow(self, task_id: str, fetch: Fetch, wakeup: Wakeup) -> AsyncIterator[Callable[[], Any]]:
        """Ring `wakeup` whenever `fetch()` (the task's progress) changes; yields a getter of the latest."""
        watch = self._watches.get(task_id)
        if watch is None:
            watch = self._watches[task_id] = _Watch(followers=set())
            watch.task = asyncio.create_task(self._run(task_id, watch, fetch), name=f"progress-{task_id}")
        watch.followers.add(wakeup)
        try:
            yield lambda: watch.latest
        finally:
            watch.followers.discard(wakeup)
            if not watch.followers and self._watches.get(task_id) is watch:
                del self._watches[task_id]
                assert watch.task is not None
                watch.task.cancel()

    def watching(self) -> int:
        return len(self._watches)

    async def _run(self, task_id: str, watch: _Watch, fetch: Fetch) -> None:
        while True:
            try:
                latest = await fetch()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Temporal briefly away: keep the last known progress
                log.info("progress watch could not read the task", task_id=task_id, error=str(exc))
            else:
                if latest != watch.latest:
                    watch.latest = latest
                    for wakeup in tuple(watch.followers):
                        wakeup.ring(progress=True)
            await asyncio.sleep(self._every_s)
