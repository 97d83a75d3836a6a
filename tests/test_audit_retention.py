"""Audit retention: old key-use entries are deleted in bounded batches; administrative actions stay.

Key-use entries (one per authenticated request on Scale) are deleted once older than `SORAPI_AUDIT_RETENTION_DAYS`, in
bounded, index-backed batches.

The AuditPrune workflow and its activity run on the time-skipping test server against a PostgreSQL
database of this module's own (a prune looks at every row). The test server has no Schedules, so
the hourly Schedule is checked on the stack's real Temporal: created by the orchestrator with the
setting in its input, and a triggered run prunes the stack's database through the real workers.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, text
from temporalio.client import ScheduleActionStartWorkflow
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

import tests.stack
from sorapi.activities.audit_prune import AuditPruneActivities
from sorapi.contracts import names
from sorapi.contracts.messages import AuditPruneInput, AuditPruneResult
from sorapi.store.accounts import KEY_USE
from sorapi.store.models import AuditEvent
from sorapi.workers.orchestrator import sandbox_runner
from sorapi.workflows.audit_prune import AuditPruneWorkflow
from tests.stack import Stack


@pytest.fixture(scope="module")
async def own_sessions() -> AsyncIterator[Any]:
    """A database of the module's own: a prune deletes whatever is old enough in it."""
    async with tests.stack.own_sessions() as sessions:
        yield sessions


async def _entries(sessions: Any, *rows: tuple[str, datetime]) -> list[int]:
    """Audit entries (action, created_at) of one made-up account; returns their ids."""
    account_id = f"acct_{uuid.uuid4().hex[:20]}"
    async with sessions.begin() as session:
        events = [
            AuditEvent(account_id=account_id, actor="key_x", action=action, target="key_x", created_at=at)
            for action, at in rows
        ]
        session.add_all(events)
    return [e.id for e in events]


async def _surviving(sessions: Any, ids: list[int]) -> list[int]:
    async with sessions() as session:
        return sorted((await session.scalars(select(AuditEvent.id).where(AuditEvent.id.in_(ids)))).all())


async def test_expired_key_use_entries_go_in_bounded_batches_and_admin_actions_stay(
    time_env: WorkflowEnvironment, own_sessions: Any
) -> None:
    now = await time_env.get_current_time()
    expired = await _entries(own_sessions, *((KEY_USE, now - timedelta(days=91 + n)) for n in range(5)))
    kept = await _entries(
        own_sessions,
        (KEY_USE, now - timedelta(days=89)),
        (KEY_USE, now - timedelta(minutes=5)),
        ("key.issue", now - timedelta(days=400)),
        ("plan.change", now - timedelta(days=200)),
    )
    queue = f"audit-prune-{uuid.uuid4().hex}"
    async with Worker(
        time_env.client,
        task_queue=queue,
        workflows=[AuditPruneWorkflow],
        activities=[AuditPruneActivities(own_sessions).prune_audit_events],
        workflow_runner=sandbox_runner(),
    ):

        async def prune(arg: AuditPruneInput) -> AuditPruneResult:
            with time_env.auto_time_skipping_disabled():  # the cutoff is workflow time: keep it where `now` is
                return await time_env.client.execute_workflow(
                    names.AUDIT_PRUNE_WORKFLOW,
                    arg,
                    id=f"audit-prune-{uuid.uuid4().hex}",
                    task_queue=queue,
                    result_type=AuditPruneResult,
                )

        first = await prune(AuditPruneInput(retention_days=90, batch_size=2, max_batches=2))
        assert (first.deleted, first.batches, first.more) == (4, 2, True), "a run stops at max_batches"
        assert first.before is not None and first.before <= now - timedelta(days=90) + timedelta(minutes=1)
        assert await _surviving(own_sessions, expired) == expired[:1], "the oldest (95 to 92 days) went first"
        second = await prune(AuditPruneInput(retention_days=90, batch_size=2, max_batches=2))
        assert (second.deleted, second.batches, second.more) == (1, 1, False), "the next run takes the rest"
        assert (await prune(AuditPruneInput(retention_days=90))).deleted == 0, "nothing left to do"
        off = await prune(AuditPruneInput(retention_days=0))
        assert (off.before, off.deleted, off.batches) == (None, 0, 0), "0 keeps everything"
    assert await _surviving(own_sessions, expired) == []
    assert await _surviving(own_sessions, kept) == kept, "recent key use and every admin action stay"


async def test_a_prune_batch_finds_its_rows_through_an_index(own_sessions: Any) -> None:
    """The batch's lookup (oldest key-use entries before the cutoff) is an index range scan.

    A batch thus costs its own rows whatever the table's size; without the partial index it is a scan of the table.
    """
    async with own_sessions.begin() as session:
        await session.execute(text("SET LOCAL enable_seqscan = off"))  # a tiny table would be scanned anyway
        plan = "\n".join(
            (
                await session.execute(
                    text(
                        "EXPLAIN SELECT id FROM audit_events WHERE action = :action AND created_at < :before "
                        "ORDER BY created_at LIMIT 5000"
                    ),
                    {"action": KEY_USE, "before": datetime.now(UTC)},
                )
            ).scalars()
        )
    assert "ix_audit_events_key_use_created" in plan and "Seq Scan" not in plan, plan


async def test_the_hourly_schedule_carries_the_retention_and_prunes_through_the_workers(
    stack: Stack, sessions: Any
) -> None:
    client = await stack.temporal_client()
    handle = client.get_schedule_handle(names.AUDIT_PRUNE_SCHEDULE)
    described = await handle.describe()
    assert [interval.every for interval in described.schedule.spec.intervals] == [timedelta(hours=1)]
    action = described.schedule.action
    assert isinstance(action, ScheduleActionStartWorkflow) and action.workflow == names.AUDIT_PRUNE_WORKFLOW
    (arg,) = await client.data_converter.decode(list(action.args), [AuditPruneInput])
    assert arg.retention_days == 90, "SORAPI_AUDIT_RETENTION_DAYS' default, written by the orchestrator"

    now = datetime.now(UTC)
    old, recent = await _entries(sessions, (KEY_USE, now - timedelta(days=120)), (KEY_USE, now - timedelta(days=1)))
    runs = len(described.info.recent_actions)
    await handle.trigger()
    for _ in range(100):
        described = await handle.describe()
        if len(described.info.recent_actions) > runs:
            break
        await asyncio.sleep(0.1)
    started = described.info.recent_actions[-1].action
    result = await client.get_workflow_handle(
        started.workflow_id, run_id=started.first_execution_run_id, result_type=AuditPruneResult
    ).result()
    assert result.deleted >= 1 and result.before is not None
    assert abs(result.before - (now - timedelta(days=90))) < timedelta(minutes=5)
    assert await _surviving(sessions, [old, recent]) == [recent]
