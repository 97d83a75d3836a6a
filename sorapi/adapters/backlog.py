"""The autoscaling signal: the render queues' backlog, from Temporal's task-queue description.

`watch()` runs in the orchestrator (`workers/orchestrator.py`) and asks Temporal every
`POLL_INTERVAL_S` how many render activities wait on each render queue and how old the oldest is
(`DescribeTaskQueue` with `report_stats`; the server's figures are approximate and a few seconds
stale). The answers are two gauges in the process's default Prometheus registry, served on the
orchestrator's metrics port; KEDA's Prometheus trigger scales the render Deployment on them
(`deploy/k8s/render-scaledobject.yaml`). Sizing the fleet: README.md, "Scaling".

| metric | type | labels |
| --- | --- | --- |
| `sorapi_render_backlog_tasks` | gauge | task_queue |
| `sorapi_render_backlog_age_seconds` | gauge | task_queue |

Every render queue is labelled by its name; when models get queues of their own, pass them all.
Several orchestrator replicas export the same figures: aggregate with `max`, never `sum`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass

import structlog
from prometheus_client import Gauge
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

__all__ = ["BACKLOG_AGE", "BACKLOG_TASKS", "POLL_INTERVAL_S", "Backlog", "describe", "sample", "watch"]

log = structlog.get_logger()

POLL_INTERVAL_S = 10.0
"""Below Prometheus's usual 15 s scrape and KEDA's 30 s polling, far above what the frontend minds."""

BACKLOG_TASKS = Gauge(
    "sorapi_render_backlog_tasks",
    "Render activities waiting on a render task queue for a worker (Temporal's approximate backlog count)",
    ["task_queue"],
)
BACKLOG_AGE = Gauge(
    "sorapi_render_backlog_age_seconds",
    "Age of the oldest render waiting on a render task queue (0 when none waits)",
    ["task_queue"],
)


@dataclass(frozen=True)
class Backlog:
    tasks: int
    age_s: float


async def describe(client: Client, task_queue: str) -> Backlog:
    """One queue's backlog of activity tasks, as Temporal reports it."""
    described = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=client.namespace,
            task_queue=TaskQueue(name=task_queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
            report_stats=True,
        )
    )
    stats = described.stats
    return Backlog(
        tasks=stats.approximate_backlog_count, age_s=stats.approximate_backlog_age.ToTimedelta().total_seconds()
    )


async def sample(client: Client, task_queues: Iterable[str]) -> dict[str, Backlog]:
    """Describe every queue and set the gauges; a queue Temporal cannot describe keeps its last figures."""
    found = {}
    for queue in task_queues:
        try:
            backlog = await describe(client, queue)
        except Exception as exc:  # the next poll tries again; scaling holds still meanwhile
            log.warning("could not describe a render queue", task_queue=queue, error=repr(exc))
            continue
        BACKLOG_TASKS.labels(task_queue=queue).set(backlog.tasks)
        BACKLOG_AGE.labels(task_queue=queue).set(backlog.age_s)
        found[queue] = backlog
    return found


async def watch(client: Client, task_queues: Iterable[str], interval_s: float = POLL_INTERVAL_S) -> None:
    """Keep the gauges current until cancelled."""
    queues = list(task_queues)
    while True:
        await sample(client, queues)
        await asyncio.sleep(interval_s)
