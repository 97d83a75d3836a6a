"""`progress` webhooks, started by the render host: render progress exists nowhere else as it happens.

A render host has a Temporal client but no database. For a task that asked for `progress`
(`RenderSpec.progress_webhook_lane`), the render's step callback offers each heartbeat here; at most
one every HOST_INTERVAL_S of this host's clock starts a delivery workflow, named after its step
(`<task>-webhook-progress-<step>`), so a render that starts again from step 1 never announces a
step twice. The start does not hold up the render: it runs on the worker's event loop.

The host's own spacing is only a first filter (a retry may run elsewhere). The rule itself, one
`progress` delivery per task every PROGRESS_INTERVAL_S, is kept by the delivery's first attempt,
which claims it on the task row (`sorapi.store.progress_claims`) or drops the beat unsent.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import Future

import structlog
from temporalio.client import Client

from sorapi.contracts.messages import RenderProgress, RenderSpec, WebhookProgress
from sorapi.domain import webhook_events
from sorapi.domain.progress import progress_percent

log = structlog.get_logger()

HOST_INTERVAL_S = webhook_events.PROGRESS_INTERVAL_S + 0.5
"""A little over the rule's interval, so a beat offered on time is rarely refused by the claim."""

Offer = Callable[[RenderProgress], None]


def _ignore(_: RenderProgress) -> None:
    return None


class ProgressWebhooks:
    """Starts a render's `progress` deliveries from its (thread) step callback."""

    def __init__(self, client: Client, task_queue: str, loop: asyncio.AbstractEventLoop) -> None:
        self._client, self._task_queue, self._loop = client, task_queue, loop

    def for_render(self, spec: RenderSpec) -> Offer:
        """The callback of one render attempt: offer it each heartbeat."""
        if not spec.progress_webhook_lane:
            return _ignore
        last = -float("inf")

        def offer(beat: RenderProgress) -> None:
            nonlocal last
            if beat.phase != "denoising" or not beat.total or time.monotonic() - last < HOST_INTERVAL_S:
                return
            last = time.monotonic()
            progress = WebhookProgress(
                phase=beat.phase, step=beat.step, total=beat.total, percent=progress_percent(beat)
            )
            started = asyncio.run_coroutine_threadsafe(
                webhook_events.announce(
                    self._client,
                    task_id=spec.task_id,
                    event=webhook_events.PROGRESS,
                    lane=spec.progress_webhook_lane,
                    task_queue=self._task_queue,
                    progress=progress,
                ),
                self._loop,
            )
            started.add_done_callback(lambda done: _log_failure(done, spec.task_id, beat.step))

        return offer


def _log_failure(done: Future[str], task_id: str, step: int) -> None:
    """A beat that could not be announced is lost (the next one carries newer progress): log it."""
    if not done.cancelled() and done.exception() is not None:
        log.warning("could not start a progress webhook", task_id=task_id, step=step, error=repr(done.exception()))
