"""AuditPrune: delete key-use audit entries past their retention, started every hour by a Schedule.

Pure orchestration: the cutoff comes from workflow time and the schedule's input (the orchestrator
writes `SORAPI_AUDIT_RETENTION_DAYS` into it at every start); each batch is one short, index-backed
transaction in the activity, so a large backlog never becomes one giant delete. A run stops after
`max_batches`; what is left goes in the next hour's run, and the history stays small.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from sorapi.contracts import activities, names
    from sorapi.contracts.messages import AuditPruneBatch, AuditPruneInput, AuditPruneResult
    from sorapi.workflows import steps

BATCH_TIMEOUT = timedelta(minutes=2)
BATCH_RETRY = RetryPolicy(initial_interval=timedelta(seconds=5), maximum_interval=timedelta(minutes=1))


@workflow.defn(name=names.AUDIT_PRUNE_WORKFLOW)
class AuditPruneWorkflow:
    @workflow.run
    async def run(self, arg: AuditPruneInput) -> AuditPruneResult:
        if arg.retention_days <= 0:
            return AuditPruneResult()
        before = workflow.now() - timedelta(days=arg.retention_days)
        deleted = batches = 0
        more = False
        while batches < arg.max_batches:
            gone = await steps.run(
                activities.PRUNE_AUDIT_EVENTS,
                AuditPruneBatch(before=before, limit=arg.batch_size),
                start_to_close_timeout=BATCH_TIMEOUT,
                retry_policy=BATCH_RETRY,
            )
            deleted, batches = deleted + gone, batches + 1
            more = gone >= arg.batch_size
            if not more:
                break
        workflow.logger.info("pruned %s key-use audit entries created before %s", deleted, before)
        return AuditPruneResult(before=before, deleted=deleted, batches=batches, more=more)
