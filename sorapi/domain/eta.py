"""How long until a task is done: its place in line, its plan's slots and recent render times."""

from __future__ import annotations

import math

from sorapi.contracts import status


def estimate_seconds(
    task_status: str, *, position: int | None, slots: int, progress: int, typical_s: float | None
) -> int | None:
    """Seconds until the task should finish, or None when unknown.

    It is unknown when there is no recent render of its model, or when the task has ended.

    A running task has the rest of one typical render left. A queued task waits one typical render
    per wave of the plan's slots ahead of it (its position counts the tasks before it, itself
    included), then takes one of its own.
    """
    if not typical_s or typical_s <= 0:
        return None
    if task_status == status.RUNNING:
        return max(1, math.ceil(typical_s * (100 - min(progress, 99)) / 100))
    if task_status == status.QUEUED and position is not None and slots > 0:
        return math.ceil((math.ceil(position / slots) + 1) * typical_s)
    return None
