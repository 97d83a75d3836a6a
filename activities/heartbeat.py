"""Heartbeat on a timer while a long sync step runs, carrying the latest typed progress.

Model loads and VAE decodes can outlast the heartbeat timeout without calling back; a timer
thread (running in the activity's context) keeps the heartbeat alive and the details fresh.
"""

from __future__ import annotations

import contextvars
import threading
from typing import Any

from temporalio import activity


class Heartbeater:
    def __init__(self, details: Any, interval_s: float = 5.0) -> None:
        self._details = details
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def update(self, details: Any) -> None:
        """Record new progress and send it now (the SDK throttles what reaches the server)."""
        self._details = details
        activity.heartbeat(details)

    def _loop(self) -> None:
        while not self._stop.wait(self._interval_s):
            activity.heartbeat(self._details)

    def __enter__(self) -> "Heartbeater":
        activity.heartbeat(self._details)
        context = contextvars.copy_context()
        self._thread = threading.Thread(target=context.run, args=(self._loop,), daemon=True,
                                        name="heartbeater")
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
