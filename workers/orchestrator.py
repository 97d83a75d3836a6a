"""The orchestrator worker: task workflows plus the ledger and task-state activities (DB holders)."""

from __future__ import annotations

from datetime import timedelta

from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.ledger import LedgerActivities
from activities.task_state import TaskStateActivities
from sorapi.db.engine import make_async_engine, make_sessionmaker
from sorapi.settings import Settings
from sorapi.temporal import connect
from workers.run import run_until_signalled
from workflows.video_task import VideoTaskWorkflow

WORKFLOWS = [VideoTaskWorkflow]


def sandbox_runner() -> SandboxedWorkflowRunner:
    """The default sandbox, with msgspec passed through (a C extension with no global state to leak)."""
    return SandboxedWorkflowRunner(restrictions=SandboxRestrictions.default.with_passthrough_modules("msgspec"))


def create_worker(client: Client, settings: Settings) -> Worker:
    sessions = make_sessionmaker(make_async_engine(settings.resolved_database_url))
    ledger, state = LedgerActivities(sessions), TaskStateActivities(sessions)
    return Worker(
        client,
        task_queue=settings.orchestration_queue,
        workflows=WORKFLOWS,
        activities=[ledger.reserve_credits, ledger.capture_credits, ledger.release_credits,
                    state.mark_running, state.mark_succeeded, state.mark_failed],
        workflow_runner=sandbox_runner(),
        graceful_shutdown_timeout=timedelta(seconds=20),
    )


async def main(settings: Settings) -> None:
    client = await connect(settings)
    await run_until_signalled(create_worker(client, settings))
