"""Monthly credit refresh and rollover: one run per billing period, started by a Temporal Schedule.

It first releases expired holds (still open on tasks that already ended).

Pure orchestration: it names the period from workflow time and walks the accounts in batches;
the activity does the money. Each account's refresh is recorded once per period in the ledger,
so a catch-up run, a manual trigger or a retried batch grants nothing twice.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from sorapi.contracts import activities, names
    from sorapi.contracts.messages import CreditRefreshInput, CreditRefreshResult, RefreshBatch
    from sorapi.domain.periods import period_of
    from sorapi.workflows import steps

BATCH_TIMEOUT = timedelta(minutes=5)
BATCH_RETRY = RetryPolicy(initial_interval=timedelta(seconds=5), maximum_interval=timedelta(minutes=5))


@workflow.defn(name=names.CREDIT_REFRESH_WORKFLOW)
class CreditRefreshWorkflow:
    @workflow.run
    async def run(self, arg: CreditRefreshInput) -> CreditRefreshResult:
        period = arg.period or period_of(workflow.now())
        workflow.set_current_details(f"refreshing credits for {period}")
        await steps.run(  # holds a stopped workflow left open come back before refreshing
            activities.RELEASE_EXPIRED_HOLDS,
            RefreshBatch(period=period),
            start_to_close_timeout=BATCH_TIMEOUT,
            retry_policy=BATCH_RETRY,
        )
        totals = CreditRefreshResult(period=period)
        after = ""
        while True:
            batch = await steps.run(
                activities.REFRESH_CREDITS,
                RefreshBatch(period=period, after_account_id=after, limit=arg.batch_size),
                start_to_close_timeout=BATCH_TIMEOUT,
                retry_policy=BATCH_RETRY,
            )
            totals = CreditRefreshResult(
                period=period,
                accounts=totals.accounts + batch.accounts,
                refreshed=totals.refreshed + batch.refreshed,
                granted=totals.granted + batch.granted,
                expired=totals.expired + batch.expired,
            )
            if batch.done:
                break
            after = batch.last_account_id
        workflow.logger.info("credit refresh for %s: %s", period, totals)
        return totals
