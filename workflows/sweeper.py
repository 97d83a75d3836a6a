"""SweepStranded: one sweep for stranded tasks, started every minute by a Temporal Schedule.

Each run hands the next its watermark through the schedule's last completion result, so every
queued task is looked at once, however long the line.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from sorapi.contracts import activities, names
    from sorapi.contracts.messages import SweepInput, SweepResult
    from sorapi.workflows import steps

SWEEP_TIMEOUT = timedelta(minutes=5)
SWEEP_RETRY = RetryPolicy(initial_interval=timedelta(seconds=5), maximum_attempts=3)


@workflow.defn(name=names.SWEEPER_WORKFLOW)
class SweepStrandedWorkflow:
    @workflow.run
    async def run(self, arg: SweepInput) -> SweepResult:
        last = workflow.get_last_completion_result(SweepResult) if workflow.has_last_completion_result() else None
        since = arg.since or (last.next_since if last is not None else None)
        return await steps.run(
            activities.SWEEP_STRANDED,
            SweepInput(since=since, min_age_s=arg.min_age_s, limit=arg.limit),
            start_to_close_timeout=SWEEP_TIMEOUT,
            retry_policy=SWEEP_RETRY,
        )
