"""A one-render workflow for the fairness test.

It schedules a render on a queue under the priority its start carried, as a task workflow's render inherits the priority
the API starts it with.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from sorapi.contracts import names


@workflow.defn(name="FairnessProbe")
class FairnessProbeWorkflow:
    @workflow.run
    async def run(self, render_queue: str) -> str:
        return await workflow.execute_activity(
            names.RENDER_VIDEO,
            workflow.info().workflow_id,
            task_queue=render_queue,
            result_type=str,
            start_to_close_timeout=timedelta(minutes=5),
        )
