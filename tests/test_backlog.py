"""The autoscaling signal: renders waiting on a queue no worker serves show up in the backlog gauges."""

from __future__ import annotations

import asyncio
import uuid

from prometheus_client import REGISTRY, generate_latest
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from sorapi.adapters import backlog
from sorapi.workers.orchestrator import sandbox_runner
from tests.fairness_workflow import FairnessProbeWorkflow

WAITING = 3


async def test_renders_with_no_worker_to_take_them_are_exported_as_backlog(local_env: WorkflowEnvironment) -> None:
    client = local_env.client
    queue, render_queue = f"backlog-{uuid.uuid4().hex}", f"backlog-render-{uuid.uuid4().hex}"
    async with Worker(client, task_queue=queue, workflows=[FairnessProbeWorkflow], workflow_runner=sandbox_runner()):
        handles = [
            await client.start_workflow(
                FairnessProbeWorkflow.run, render_queue, id=f"backlog-{uuid.uuid4().hex}", task_queue=queue
            )
            for _ in range(WAITING)
        ]
        found = backlog.Backlog(tasks=0, age_s=0.0)
        for _ in range(600):  # the server's stats lag the schedules by a moment
            found = (await backlog.sample(client, [render_queue]))[render_queue]
            if found.tasks >= WAITING and found.age_s > 0:
                break
            await asyncio.sleep(0.1)
        try:
            assert found.tasks == WAITING
            assert found.age_s > 0
            exposition = generate_latest(REGISTRY).decode()
            assert f'sorapi_render_backlog_tasks{{task_queue="{render_queue}"}} {float(WAITING)}' in exposition
            assert f'sorapi_render_backlog_age_seconds{{task_queue="{render_queue}"}}' in exposition
        finally:
            for handle in handles:
                await handle.terminate("backlog test done")


async def test_an_idle_queue_has_no_backlog(local_env: WorkflowEnvironment) -> None:
    render_queue = f"idle-render-{uuid.uuid4().hex}"
    found = await backlog.sample(local_env.client, [render_queue])
    assert found[render_queue] == backlog.Backlog(tasks=0, age_s=0.0)
    exposition = generate_latest(REGISTRY).decode()
    assert f'sorapi_render_backlog_tasks{{task_queue="{render_queue}"}} 0.0' in exposition
