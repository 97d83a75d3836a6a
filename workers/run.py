"""Run Temporal workers until SIGINT/SIGTERM, then shut them down gracefully."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable

import structlog
from temporalio.worker import Worker

log = structlog.get_logger()


async def run_until_signalled(*workers: Worker, shutdown: Callable[[], Awaitable[None]] | None = None) -> None:
    """Run until SIGINT/SIGTERM or a worker crash, then `shutdown` (default: every worker at once)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    runs = [asyncio.create_task(w.run()) for w in workers]
    log.info("workers started", task_queues=[w.task_queue for w in workers])
    done, _ = await asyncio.wait([*runs, asyncio.create_task(stop.wait())], return_when=asyncio.FIRST_COMPLETED)
    for task in done:
        if task in runs and task.exception() is not None:
            log.error("worker crashed", error=repr(task.exception()))
    if shutdown is not None:
        await shutdown()
    else:
        await asyncio.gather(*(w.shutdown() for w in workers), return_exceptions=True)
    log.info("workers stopped")
