"""The orchestrator worker: task workflows plus the ledger and task-state activities (DB holders)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker, WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from sorapi.activities.audit_prune import AuditPruneActivities
from sorapi.activities.credit_refresh import CreditRefreshActivities
from sorapi.activities.expiry import ExpiryActivities
from sorapi.activities.followups import FollowUpActivities
from sorapi.activities.ledger import LedgerActivities
from sorapi.activities.slot_gate import GateActivities
from sorapi.activities.slots import SlotActivities
from sorapi.activities.sweeper import SweeperActivities
from sorapi.activities.task_state import TaskStateActivities
from sorapi.adapters import backlog, metrics, search_attributes, storage
from sorapi.adapters.schedules import ensure_schedules
from sorapi.adapters.settings import Settings
from sorapi.adapters.temporal import connect
from sorapi.store.engine import make_async_engine, make_sessionmaker
from sorapi.workers.run import run_until_signalled
from sorapi.workers.webhooks import create_webhook_workers
from sorapi.workflows.audit_prune import AuditPruneWorkflow
from sorapi.workflows.credit_refresh import CreditRefreshWorkflow
from sorapi.workflows.retention import TaskRetentionWorkflow
from sorapi.workflows.slot_gate import SlotGateWorkflow
from sorapi.workflows.sweeper import SweepStrandedWorkflow
from sorapi.workflows.video_task import VideoTaskWorkflow
from sorapi.workflows.webhook_delivery import WebhookDeliveryWorkflow
from sorapi.workflows.webhook_redelivery import WebhookRedeliveryWorkflow

WORKFLOWS = [
    VideoTaskWorkflow,
    SlotGateWorkflow,
    SweepStrandedWorkflow,
    CreditRefreshWorkflow,
    WebhookDeliveryWorkflow,
    TaskRetentionWorkflow,
    WebhookRedeliveryWorkflow,
    AuditPruneWorkflow,
]


def sandbox_runner() -> SandboxedWorkflowRunner:
    """The default sandbox's run-time restrictions, with every module passed through.

    Modules are passed through instead of re-imported for each workflow run (a tenth of the orchestrator's CPU under
    load; docs/architecture.md): workflow modules must therefore hold no mutable module state. msgspec and opentelemetry
    are named too: a C extension with no state to leak, and the tracing interceptor's context and provider.
    """
    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules(
            "msgspec", "opentelemetry"
        ).with_passthrough_all_modules()
    )


def workflow_runner(settings: Settings) -> WorkflowRunner:
    """The sandbox where SORAPI_WORKFLOW_SANDBOX asks for it (tests), else plain runs (production)."""
    return sandbox_runner() if settings.workflow_sandbox else UnsandboxedWorkflowRunner()


def create_worker(client: Client, settings: Settings, sessions: async_sessionmaker[AsyncSession]) -> Worker:
    ledger, state = LedgerActivities(sessions), TaskStateActivities(sessions)
    refresh = CreditRefreshActivities(sessions)
    expiry = ExpiryActivities(sessions, storage.make_client(settings), settings.s3_bucket)
    return Worker(
        client,
        task_queue=settings.orchestration_queue,
        workflows=WORKFLOWS,
        activities=[
            ledger.reserve_credits,
            ledger.capture_credits,
            ledger.release_credits,
            state.mark_succeeded,
            state.mark_failed,
            SlotActivities(sessions, client=client).acquire_slot,
            *GateActivities(sessions, webhook_queue_prefix=settings.webhook_queue_prefix).all(),
            SweeperActivities(
                sessions,
                client,
                orchestration_queue=settings.orchestration_queue,
                webhook_queue_prefix=settings.webhook_queue_prefix,
            ).sweep_stranded,
            refresh.refresh_credits,
            refresh.release_expired_holds,
            AuditPruneActivities(sessions).prune_audit_events,
            expiry.expire_task,
            expiry.discard_outputs,
            *_follow_ups(client, settings, sessions),
        ],
        workflow_runner=workflow_runner(settings),
        graceful_shutdown_timeout=timedelta(seconds=20),
    )


def _follow_ups(
    client: Client, settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> list[Callable[..., Any]]:
    starts = FollowUpActivities(client, settings.orchestration_queue, sessions)
    return [starts.start_webhook_delivery, starts.start_retention]


async def main(settings: Settings) -> None:
    metrics.serve("orchestrator", settings.metrics_host, settings.orchestrator_metrics_port)
    sdk = metrics.sdk_runtime("orchestrator", settings.metrics_host, settings.orchestrator_sdk_metrics_port)
    client = await connect(settings, runtime=sdk)
    try:
        await ensure_schedules(client, settings.orchestration_queue, audit_retention_days=settings.audit_retention_days)
    except Exception as exc:  # the workers are still useful; the schedules are retried on the next start
        structlog.get_logger().error("could not create the schedules", error=repr(exc))
    try:  # what `sorapi temporal setup` does; a cluster that refuses (Temporal Cloud) is set up by hand
        await search_attributes.register(client)
    except Exception as exc:
        structlog.get_logger().error(
            "could not register the search attributes: run `sorapi temporal setup` (docs/operations.md)",
            error=repr(exc),
        )
    sessions = make_sessionmaker(make_async_engine(settings.resolved_database_url))  # one pool for every worker
    watching = asyncio.create_task(backlog.watch(client, [settings.render_queue]))  # the autoscaling signal
    try:
        await run_until_signalled(
            create_worker(client, settings, sessions), *create_webhook_workers(client, settings, sessions=sessions)
        )
    finally:
        watching.cancel()
