"""30 concurrent identical creates → exactly one task row, one credit hold and one workflow."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import func, select

from sorapi.store.models import LedgerEntry, Task
from tests.api_helpers import QUICK
from tests.stack import Api, Stack


async def test_thirty_concurrent_identical_requests_make_one_task(account: Api, stack: Stack, sessions: Any) -> None:
    body = {**QUICK, "idempotency_key": "burst-2024-03-12-001"}
    answers = await asyncio.gather(
        *(
            account.generate(body)
            if n % 2
            else account.generate({**QUICK}, headers={"Idempotency-Key": body["idempotency_key"]})
            for n in range(30)
        )
    )
    assert [a.status_code for a in answers] == [200] * 30, [a.text for a in answers if a.status_code != 200]
    task_ids = {a.json()["task_id"] for a in answers}
    assert len(task_ids) == 1
    replayed = [a for a in answers if a.headers.get("idempotent-replayed") == "true"]
    assert len(replayed) == 29
    (task_id,) = task_ids

    async with sessions() as session:
        rows = await session.scalar(
            select(func.count())
            .select_from(Task)
            .where(Task.idempotency_key == body["idempotency_key"], Task.id == task_id)
        )
        holds = await session.scalar(
            select(func.count())
            .select_from(LedgerEntry)
            .where(LedgerEntry.task_id == task_id, LedgerEntry.kind == "reserve")
        )
    assert (rows, holds) == (1, 1)
    client = await stack.temporal_client()
    runs = [w async for w in client.list_workflows(f'WorkflowId = "{task_id}"')]
    assert len(runs) == 1

    done = await account.wait(task_id)
    assert done["status"] == "succeeded"
    again = await account.generate(body)
    assert again.status_code == 200 and again.json()["task_id"] == task_id
    assert again.headers["idempotent-replayed"] == "true"
    reused = await account.generate({**body, "prompt": "something else entirely"})
    assert reused.status_code == 422 and reused.json()["error"]["code"] == "idempotency_key_reused"
