"""The hot endpoints share one database session per request (api/request_db.py).

Every authenticated request is still audited exactly once, whether the handler succeeds or fails, and a refused key
gives its connection back.
"""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import select

from sorapi.store.models import AuditEvent, Task
from tests.stack import Api, Stack, make_account

SMALL = {"prompt": "a paper boat on a pond", "duration": 1, "resolution": "480x480"}


async def _key_uses(sessions: Any, account_id: str) -> list[tuple[str, str]]:
    async with sessions() as session:
        rows = await session.scalars(
            select(AuditEvent)
            .where(AuditEvent.account_id == account_id, AuditEvent.action == "key.use")
            .order_by(AuditEvent.id)
        )
        return [(e.details["method"], e.details["path"]) for e in rows]


async def test_each_request_is_audited_once_whatever_its_outcome(stack: Stack, sessions: Any) -> None:
    account_id, key = await make_account(sessions, plan="scale", credits=10_000)
    api = Api(stack.base_url, key)
    try:
        created = await api.generate({**SMALL, "idempotency_key": "audit-1"})
        assert created.status_code == 200, created.text
        task_id = created.json()["task_id"]
        assert (await api.status(task_id)).status_code == 200
        assert (await api.status("sora2" + "0" * 32)).status_code == 404
        reused = await api.generate({**SMALL, "prompt": "another prompt", "idempotency_key": "audit-1"})
        assert reused.status_code == 422 and reused.json()["error"]["code"] == "idempotency_key_reused"
        assert await _key_uses(sessions, account_id) == [
            ("POST", "/api/generate"),
            ("GET", "/api/status"),
            ("GET", "/api/status"),
            ("POST", "/api/generate"),
        ]
        async with sessions() as session:
            tasks = (await session.scalars(select(Task.id).where(Task.account_id == account_id))).all()
        assert tasks == [task_id], "the refused create left nothing but its audit entry"
    finally:
        await api.close()


async def test_refused_keys_do_not_hold_connections(stack: Stack, sessions: Any) -> None:
    """More refused requests at once than the pool has connections, then a normal one still answers."""
    account_id, key = await make_account(sessions, plan="free", credits=100)
    api = Api(stack.base_url, key)
    try:
        refused = await asyncio.gather(*(api.status("sora2" + "1" * 32, key="sk-not-a-key") for _ in range(60)))
        assert {r.status_code for r in refused} == {401}
        created = await api.generate(SMALL)
        assert created.status_code == 200, created.text
        answer = await asyncio.wait_for(api.status(created.json()["task_id"]), timeout=10)
        assert answer.status_code == 200 and answer.json()["status"] in ("queued", "running", "succeeded")
        assert await _key_uses(sessions, account_id) == [], "plans without audit_log write no key-use entries"
    finally:
        await api.close()
