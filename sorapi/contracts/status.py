"""Task statuses and the transitions the state machine allows."""

from __future__ import annotations

QUEUED = "queued"
RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"
CANCELLED = "cancelled"
EXPIRED = "expired"

ALL = (QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED, EXPIRED)
TERMINAL = frozenset({SUCCEEDED, FAILED, CANCELLED, EXPIRED})

ALLOWED: dict[str, frozenset[str]] = {
    QUEUED: frozenset({RUNNING, FAILED, CANCELLED, EXPIRED}),  # expired: its start deadline passed
    RUNNING: frozenset({SUCCEEDED, FAILED, CANCELLED}),
    SUCCEEDED: frozenset({EXPIRED}),
    FAILED: frozenset(),
    CANCELLED: frozenset(),
    EXPIRED: frozenset(),
}


def can_move(current: str, target: str) -> bool:
    """True when `current → target` is allowed; re-applying the current status is a no-op."""
    return target == current or target in ALLOWED[current]
