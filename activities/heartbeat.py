"""Heartbeat on a timer while a long sync step runs, carrying the latest typed progress.

Model loads and VAE decodes can outlast the heartbeat timeout without calling back; a timer
thread (running in the activity's context) keeps the heartbeat alive and the details fresh.
But a timer alone would also keep a hung GPU alive for the whole start-to-close timeout: while
the work reports every advance (denoising steps), the timer only vouches for it as long as the
last advance is recent, so a step that never ends costs one heartbeat timeout.
"""

from __future__ import annotations

import contextvars
import threading
import time
from typing import Any

from temporalio import activity


class Heartbeater:
    def __init__(self, details: Any, interval_s: float = 5.0) -> None:
        self._details = details
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._advanced_at = time.monotonic()
        self._stall_s: float | None = None

    def update(self, details: Any, *, stall_s: float | None = None) -> None:
        """Record new progress and send it now (the SDK throttles what reaches the server).

        `stall_s`: the next advance is due within this long (one more denoising step); past it the
        timer stops beating, so the server's heartbeat timeout fails a hung attempt. None: the work
        may go quiet for long (a load, a decode) and the timer beats for it.
        """
        self._details = details
        self._advanced_at = time.monotonic()
        self._stall_s = stall_s
        activity.heartbeat(details)

    def stalled(self) -> bool:
        """The next advance is overdue: the timer no longer vouches for the work."""
        return self._stall_s is not None and time.monotonic() - self._advanced_at >= self._stall_s

    def _loop(self) -> None:
        while not self._stop.wait(self._interval_s):
            if not self.stalled():
                activity.heartbeat(self._details)

    def __enter__(self) -> Heartbeater:
        activity.heartbeat(self._details)
        context = contextvars.copy_context()
        self._thread = threading.Thread(target=context.run, args=(self._loop,), daemon=True, name="heartbeater")
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
