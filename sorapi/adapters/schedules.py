"""Temporal Schedules SorAPI relies on, created (or brought up to date) when the orchestrator starts.

The sweeper runs every minute and settles tasks whose workflow is gone (`activities/sweeper.py`).
The monthly credit refresh runs at 00:00 UTC on the 1st of every month and is visible (and can
be triggered or paused) under Schedules in the Temporal UI. If Temporal or the workers were
down at that moment, the schedule catches up within `CATCHUP`; the ledger makes every run
idempotent per account and period, so a catch-up or manual trigger never grants twice.
The audit prune runs every hour and deletes key-use audit entries past `SORAPI_AUDIT_RETENTION_DAYS`,
which the orchestrator writes into its input at every start (a changed setting applies from then).
"""

from __future__ import annotations

from datetime import timedelta

import structlog
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleCalendarSpec,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleRange,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
)

from sorapi.contracts import names
from sorapi.contracts.messages import AuditPruneInput, CreditRefreshInput, SweepInput

log = structlog.get_logger()

CATCHUP = timedelta(days=27)
MONTHLY = ScheduleCalendarSpec(
    second=[ScheduleRange(0)],
    minute=[ScheduleRange(0)],
    hour=[ScheduleRange(0)],
    day_of_month=[ScheduleRange(1)],
    comment="1st of every month, 00:00 UTC",
)


def credit_refresh_schedule(task_queue: str) -> Schedule:
    return Schedule(
        action=ScheduleActionStartWorkflow(
            names.CREDIT_REFRESH_WORKFLOW,
            CreditRefreshInput(),
            id="credit-refresh",
            task_queue=task_queue,
            execution_timeout=timedelta(days=1),
            static_summary="Monthly credit refresh and rollover",
        ),
        spec=ScheduleSpec(calendars=[MONTHLY], time_zone_name="UTC"),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.BUFFER_ONE, catchup_window=CATCHUP),
        state=ScheduleState(
            note="SorAPI: grants each plan's included credits once per month; expires or "
            "rolls over what is left (see catalog.toml)"
        ),
    )


SWEEP_EVERY = timedelta(minutes=1)


def sweeper_schedule(task_queue: str) -> Schedule:
    return Schedule(
        action=ScheduleActionStartWorkflow(
            names.SWEEPER_WORKFLOW,
            SweepInput(),
            id="sweep-stranded",
            task_queue=task_queue,
            execution_timeout=timedelta(minutes=15),
            static_summary="Settle tasks whose workflow is gone",
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=SWEEP_EVERY)]),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
        state=ScheduleState(
            note="SorAPI: fails queued or running tasks that no workflow runs for, releasing their holds and slots"
        ),
    )


PRUNE_EVERY = timedelta(hours=1)


def audit_prune_schedule(task_queue: str, retention_days: int) -> Schedule:
    return Schedule(
        action=ScheduleActionStartWorkflow(
            names.AUDIT_PRUNE_WORKFLOW,
            AuditPruneInput(retention_days=retention_days),
            id="audit-prune",
            task_queue=task_queue,
            execution_timeout=PRUNE_EVERY,
            static_summary="Delete key-use audit entries past their retention",
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=PRUNE_EVERY)]),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
        state=ScheduleState(
            note="SorAPI: deletes key-use audit entries older than SORAPI_AUDIT_RETENTION_DAYS, in batches; "
            "administrative actions are kept"
        ),
    )


async def ensure_schedules(client: Client, task_queue: str, *, audit_retention_days: int) -> None:
    """Every schedule SorAPI relies on, created or brought up to date."""
    await ensure_schedule(client, names.CREDIT_REFRESH_SCHEDULE, credit_refresh_schedule(task_queue))
    await ensure_schedule(client, names.SWEEPER_SCHEDULE, sweeper_schedule(task_queue))
    await ensure_schedule(client, names.AUDIT_PRUNE_SCHEDULE, audit_prune_schedule(task_queue, audit_retention_days))


async def ensure_schedule(client: Client, schedule_id: str, schedule: Schedule) -> None:
    """Create the schedule, or update it to this code's definition; safe for every orchestrator start."""
    try:
        await client.create_schedule(schedule_id, schedule)
        log.info("created schedule", schedule_id=schedule_id)
    except ScheduleAlreadyRunningError:

        def _update(current: ScheduleUpdateInput) -> ScheduleUpdate:
            # keep an operator's pause: only the action, spec and policy come from code
            state = current.description.schedule.state
            return ScheduleUpdate(
                schedule=Schedule(action=schedule.action, spec=schedule.spec, policy=schedule.policy, state=state)
            )

        await client.get_schedule_handle(schedule_id).update(_update)
