"""The render half of a task, as its own workflow: render on the render queue, upload from that host.

Same activities and options as `VideoTaskWorkflow`, without the database steps, so the bench
times exactly what a render worker does for a task.
"""

from __future__ import annotations

from datetime import timedelta

import msgspec
from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from sorapi.contracts import names
    from sorapi.contracts.messages import RenderMeta, RenderResult, RenderSpec, StoredObject, UploadInput

BENCH_WORKFLOW = "BenchRenderTask"


class BenchTaskInput(msgspec.Struct, kw_only=True, frozen=True):
    render: RenderSpec
    render_queue: str


@workflow.defn(name=BENCH_WORKFLOW)
class BenchRenderTask:
    @workflow.run
    async def run(self, task: BenchTaskInput) -> RenderMeta:
        rendered: RenderResult = await workflow.execute_activity(
            names.RENDER_VIDEO,
            task.render,
            task_queue=task.render_queue,
            result_type=RenderResult,
            start_to_close_timeout=timedelta(hours=2),
            heartbeat_timeout=timedelta(seconds=30),
        )
        await workflow.execute_activity(
            names.UPLOAD_OUTPUTS,
            UploadInput(task_id=task.render.task_id, files=rendered.files),
            task_queue=rendered.host_queue,
            result_type=list[StoredObject],
            start_to_close_timeout=timedelta(minutes=15),
        )
        return rendered.meta
