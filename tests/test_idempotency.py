"""At-most-once creation: one idempotency key → one task, one hold, one workflow."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from sorapi.store.models import LedgerEntry, Task
from tests.stack import Api, Stack

PAYLOAD = {"prompt": "A lighthouse beam sweeping through fog", "duration": 1, "idempotency_key": "job-2024-03-12-001"}


async def _rows(sessions: Any, task_id: str) -> tuple[int, int]:
    async with sessions() as session:
        tasks = await session.scalar(select(func.count()).select_from(Task).where(Task.id == task_id))
        holds = await session.scalar(
            select(func.count())
            .select_from(LedgerEntry)
            .where(LedgerEntry.task_id == task_id, LedgerEntry.kind == "reserve")
        )
    return tasks, holds


async def _workflow_runs(stack: Stack, task_id: str) -> int:
    client = await stack.temporal_client()
    return len([w async for w in client.list_workflows(f'WorkflowId = "{task_id}"')])


async def test_same_key_twice_is_one_task_one_hold_one_workflow(account: Api, stack: Stack, sessions: Any) -> None:
    first = await account.generate(PAYLOAD)
    second = await account.generate(PAYLOAD)
    assert first.status_code == second.status_code == 200
    assert first.json()["task_id"] == second.json()["task_id"]
    assert "idempotent-replayed" not in first.headers
    assert second.headers["idempotent-replayed"] == "true"
    task_id = first.json()["task_id"]
    assert await _rows(sessions, task_id) == (1, 1)
    await account.wait(task_id)
    assert await _workflow_runs(stack, task_id) == 1
    third = await account.generate(PAYLOAD)  # after completion too: the same task, no new run
    assert third.json()["task_id"] == task_id and third.json()["status"] == "succeeded"
    assert await _workflow_runs(stack, task_id) == 1
    status = (await account.status(task_id)).json()
    assert status["metadata"]["idempotency_key"] == PAYLOAD["idempotency_key"]


async def test_header_key_is_equivalent_to_body_key(account: Api, sessions: Any) -> None:
    body = {k: v for k, v in PAYLOAD.items() if k != "idempotency_key"}
    by_header = await account.generate(body, headers={"Idempotency-Key": "header-key-1"})
    by_body = await account.generate({**body, "idempotency_key": "header-key-1"})
    assert by_header.json()["task_id"] == by_body.json()["task_id"]
    assert await _rows(sessions, by_header.json()["task_id"]) == (1, 1)


async def test_same_key_different_body_is_rejected(account: Api, sessions: Any) -> None:
    payload = {**PAYLOAD, "idempotency_key": "reuse-me"}
    task_id = (await account.generate(payload)).json()["task_id"]
    reused = await account.generate({**payload, "prompt": "Something else entirely"})
    assert reused.status_code == 422
    assert reused.json()["error"]["code"] == "idempotency_key_reused"
    assert await _rows(sessions, task_id) == (1, 1)


async def test_keys_are_scoped_per_account(account: Api, sessions: Any) -> None:
    from tests.stack import make_account

    _, other = await make_account(sessions)
    mine = (await account.generate(PAYLOAD)).json()["task_id"]
    theirs = (await account.generate(PAYLOAD, key=other)).json()["task_id"]
    assert mine != theirs
