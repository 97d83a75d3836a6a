"""The throughput phase's raw baseline: a workflow that runs `count` no-op activities in a row, nothing else.

Its own module, importing only temporalio, so it runs in the orchestrator's workflow runner (sandboxed
or not, SORAPI_WORKFLOW_SANDBOX) as the task workflow does.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow

NOOP = "bench_noop"


@activity.defn(name=NOOP)
async def noop() -> None:
    return None


@workflow.defn(name="BenchRawTask")
class RawTaskWorkflow:
    @workflow.run
    async def run(self, count: int) -> None:
        for _ in range(count):
            await workflow.execute_activity(NOOP, start_to_close_timeout=timedelta(seconds=30))
