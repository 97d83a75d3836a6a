"""Webhook delivery policy as data and pure functions (the delivery workflow imports this).

Schedule: at most 6 attempts within 24 hours of the first one. Attempt n starts at the nominal
offset below, brought forward by random jitter (up to 20%; the last attempt by up to 30 minutes)
so receivers recovering from an outage are not hit by every sender at the same second:

    attempt   1     2      3       4     5     6
    offset    0     1 min  15 min  2 h   8 h   24 h

A `Retry-After` on 429/503 is honoured: the next attempt waits at least that long, but never
past the 24-hour window (it then runs at the window's end). Any 2xx acknowledges; 410 stops.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta

MAX_ATTEMPTS = 6
WINDOW = timedelta(hours=24)
OFFSETS = (
    timedelta(0),
    timedelta(minutes=1),
    timedelta(minutes=15),
    timedelta(hours=2),
    timedelta(hours=8),
    timedelta(hours=24),
)
JITTER_FRACTION = 0.2
LAST_ATTEMPT_JITTER = timedelta(minutes=30)
MIN_GAP = timedelta(seconds=30)


def next_delay(attempts_done: int, elapsed: timedelta, jitter: float, retry_after_s: float | None = None) -> timedelta:
    """How long to wait before attempt `attempts_done + 1`; `jitter` is uniform in [0, 1)."""
    nominal = OFFSETS[attempts_done]
    if attempts_done + 1 == MAX_ATTEMPTS:
        target = nominal - LAST_ATTEMPT_JITTER * jitter
    else:
        target = nominal * (1 - JITTER_FRACTION * jitter)
    wait = max(target - elapsed, MIN_GAP, timedelta(seconds=retry_after_s or 0))
    return max(min(wait, WINDOW - elapsed), timedelta(0))


def event_id(task_id: str, event: str) -> str:
    """The `webhook-id` of a task's event: stable across retries, redeliveries and replays."""
    return "evt_" + hashlib.sha256(f"{task_id}:{event}".encode()).hexdigest()[:32]


def event_type(event: str) -> str:
    return f"task.{event}"


def lane(prefix: str, plan: str) -> str:
    """The delivery task queue of a plan (one lane per plan tier)."""
    return f"{prefix}-{plan}"
