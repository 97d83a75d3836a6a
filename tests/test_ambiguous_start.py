"""A workflow start whose answer is lost: the server created the workflow, the API saw an error.

A keyless task (no retry can find it again) is given up only once Temporal confirms that no
workflow of it runs; when Temporal cannot say, the task is left to its workflow, never failed and
released under a workflow that then renders and captures.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import select
from temporalio.client import (
    Client,
    Interceptor,
    OutboundInterceptor,
    StartWorkflowInput,
    TerminateWorkflowInput,
    WorkflowExecutionStatus,
)
from temporalio.service import RPCError, RPCStatusCode

from sorapi.api.auth import Principal
from sorapi.api.tasks.task_service import create_task
from sorapi.contracts import errors, status
from sorapi.contracts.schemas import GenerateRequest
from sorapi.store.models import LedgerEntry, Task
from tests.lifecycle_env import Lifecycle, lifecycle_env
from tests.stack import fresh_pg_database, make_account


@pytest.fixture(scope="module")
async def lc(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Lifecycle]:
    """A database of the module's own (the stack's sweeper must not see tasks of another Temporal server)."""
    with fresh_pg_database() as url:
        async with lifecycle_env(tmp_path_factory.mktemp("ambiguous"), url) as lifecycle:
            yield lifecycle


class LostAnswers(Interceptor):
    """Starts reach the server, but the API is told they failed; terminates fail too if asked."""

    def __init__(self, *, terminate_fails: bool) -> None:
        self.terminate_fails = terminate_fails

    def intercept_client(self, next: OutboundInterceptor) -> OutboundInterceptor:
        return _Lost(next, self.terminate_fails)


class _Lost(OutboundInterceptor):
    def __init__(self, next: OutboundInterceptor, terminate_fails: bool) -> None:
        super().__init__(next)
        self.terminate_fails = terminate_fails

    async def start_workflow(self, input: StartWorkflowInput) -> Any:
        await super().start_workflow(input)
        raise RPCError("deadline exceeded", RPCStatusCode.DEADLINE_EXCEEDED, b"")

    async def terminate_workflow(self, input: TerminateWorkflowInput) -> None:
        if self.terminate_fails:
            raise RPCError("unavailable", RPCStatusCode.UNAVAILABLE, b"")
        await super().terminate_workflow(input)


async def _create_keyless(lc: Lifecycle, temporal: Client) -> str:
    account_id, _ = await make_account(lc.sessions, plan="pro", credits=10_000)
    principal = Principal(account_id=account_id, plan="pro", key_id="key_test", scopes=frozenset({"generate", "read"}))
    prompt = f"a paper boat on a canal {uuid.uuid4().hex[:6]}"
    request = GenerateRequest(prompt=prompt, duration=2, resolution="854x480")
    with pytest.raises(errors.ServiceUnavailable):
        await create_task(dataclasses.replace(lc.res, temporal=temporal), principal, request)
    async with lc.sessions() as session:
        task_id = await session.scalar(select(Task.id).where(Task.account_id == account_id))
    assert task_id is not None
    return task_id


async def _ledger(lc: Lifecycle, task_id: str) -> list[str]:
    async with lc.sessions() as session:
        return sorted((await session.scalars(select(LedgerEntry.kind).where(LedgerEntry.task_id == task_id))).all())


async def test_a_started_workflow_is_terminated_before_its_task_is_given_up(lc: Lifecycle) -> None:
    lost = Client(**{**lc.env.client.config(), "interceptors": [LostAnswers(terminate_fails=False)]})
    task_id = await _create_keyless(lc, lost)
    task = await lc.task(task_id)
    assert task.status == status.FAILED and task.error_code == errors.SERVICE_UNAVAILABLE
    assert await _ledger(lc, task_id) == ["release", "reserve"]
    described = await lc.env.client.get_workflow_handle(task_id).describe()
    assert described.status == WorkflowExecutionStatus.TERMINATED, "no workflow renders a task that was given up"


async def test_when_temporal_cannot_say_the_task_is_left_to_its_workflow(lc: Lifecycle) -> None:
    lost = Client(**{**lc.env.client.config(), "interceptors": [LostAnswers(terminate_fails=True)]})
    task_id = await _create_keyless(lc, lost)
    assert (await lc.task(task_id)).status != status.FAILED, "not failed while its workflow may run"
    deadline = asyncio.get_running_loop().time() + 60
    while (task := await lc.task(task_id)).status not in status.TERMINAL:
        assert asyncio.get_running_loop().time() < deadline, task.status
        await asyncio.sleep(0.1)
    assert task.status == status.SUCCEEDED, (task.status, task.error_code)
    assert await _ledger(lc, task_id) == ["capture", "reserve"], "charged once, never released as well"
