"""Where a drained task's time went between its grant and its end, read from its workflow's history.

The drain is bound by how fast one task hands the render worker to the next: each segment below is
the median over the drained tasks (seconds), from the events Temporal recorded, and `render_busy`
is the share of the drain's wall time in which some render ran.
"""

from __future__ import annotations

import asyncio
import statistics
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from sorapi.contracts import names

SEGMENTS = (
    ("granted → render scheduled", ("granted",), ("scheduled", names.RENDER_VIDEO)),
    ("render waits for the worker", ("scheduled", names.RENDER_VIDEO), ("started", names.RENDER_VIDEO)),
    ("render", ("started", names.RENDER_VIDEO), ("completed", names.RENDER_VIDEO)),
    ("→ upload scheduled", ("completed", names.RENDER_VIDEO), ("scheduled", names.UPLOAD_OUTPUTS)),
    ("upload waits", ("scheduled", names.UPLOAD_OUTPUTS), ("started", names.UPLOAD_OUTPUTS)),
    ("upload", ("started", names.UPLOAD_OUTPUTS), ("completed", names.UPLOAD_OUTPUTS)),
    ("→ capture scheduled", ("completed", names.UPLOAD_OUTPUTS), ("scheduled", names.CAPTURE_CREDITS)),
    ("capture waits", ("scheduled", names.CAPTURE_CREDITS), ("started", names.CAPTURE_CREDITS)),
    ("capture", ("started", names.CAPTURE_CREDITS), ("completed", names.CAPTURE_CREDITS)),
    ("→ workflow completed", ("completed", names.CAPTURE_CREDITS), ("ended",)),
)
ACTIVITY_EVENTS = {
    EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED: ("started", "activity_task_started_event_attributes"),
    EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED: ("completed", "activity_task_completed_event_attributes"),
}


async def breakdown(temporal: Client, task_ids: list[str], wall_s: float) -> dict[str, Any]:
    """Median seconds of each segment over `task_ids`, and the share of `wall_s` some render ran."""
    marks = await asyncio.gather(*(_marks(temporal, task_id) for task_id in task_ids))
    segments = {
        name: round(statistics.median(durations), 3)
        for name, begin, end in SEGMENTS
        if (durations := [one[end] - one[begin] for one in marks if begin in one and end in one])
    }
    renders = [
        (one[("started", names.RENDER_VIDEO)], one[("completed", names.RENDER_VIDEO)])
        for one in marks
        if ("completed", names.RENDER_VIDEO) in one
    ]
    return {"median_s": segments, "render_busy": round(_covered(renders) / wall_s, 2) if wall_s else None}


async def _marks(temporal: Client, task_id: str) -> dict[tuple[str, ...], float]:
    """When each step of one task's workflow happened (POSIX seconds): the first of each kind."""
    history = await temporal.get_workflow_handle(task_id).fetch_history()
    activity_of: dict[int, str] = {}
    marks: dict[tuple[str, ...], float] = {}
    for event in history.events:
        at = event.event_time.ToDatetime().timestamp()
        key: tuple[str, ...] | None = None
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            activity_of[event.event_id] = event.activity_task_scheduled_event_attributes.activity_type.name
            key = ("scheduled", activity_of[event.event_id])
        elif event.event_type in ACTIVITY_EVENTS:
            kind, field = ACTIVITY_EVENTS[event.event_type]
            key = (kind, activity_of.get(getattr(event, field).scheduled_event_id, ""))
        elif event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            if event.workflow_execution_signaled_event_attributes.signal_name == names.SLOT_GRANTED_SIGNAL:
                key = ("granted",)
        elif event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED:
            key = ("ended",)
        if key is not None:
            marks.setdefault(key, at)
    return marks


def _covered(spans: list[tuple[float, float]]) -> float:
    """Seconds covered by the union of `spans`."""
    total, reach = 0.0, float("-inf")
    for begin, end in sorted(spans):
        if end > reach:
            total += end - max(begin, reach)
            reach = end
    return total
