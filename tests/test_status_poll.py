"""The status poll's reads (sorapi.store.status_poll) in one statement.

The key's owner, the key-use audit entry for audit plans only, and the task with its queue place, scoped to the owner's
account.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import event, func, select

from sorapi.contracts import status
from sorapi.domain.ids import new_task_id
from sorapi.store.accounts import KeyUse
from sorapi.store.engine import make_async_engine, make_autocommit_sessionmaker, make_sessionmaker
from sorapi.store.models import AuditEvent, Task, utcnow
from sorapi.store.status_poll import owner_and_task
from tests.stack import make_account


@pytest.fixture
async def db(pg_url: str) -> AsyncIterator[Any]:
    engine = make_async_engine(pg_url)
    try:
        yield make_sessionmaker(engine), make_autocommit_sessionmaker(engine)
    finally:
        await engine.dispose()


def _use() -> KeyUse:
    return KeyUse(plans=frozenset({"scale"}), method="GET", path="/api/status", client="10.0.0.7", at=utcnow())


async def _tasks(sessions: Any, account_id: str, count: int) -> list[str]:
    ids = [new_task_id() for _ in range(count)]
    async with sessions.begin() as session:
        for n, task_id in enumerate(ids):
            session.add(
                Task(
                    id=task_id,
                    account_id=account_id,
                    fingerprint=str(n),
                    request={"prompt": f"p{n}"},
                    price=3,
                    outputs=[],
                )
            )
            await session.flush()
    return ids


async def _key_uses(sessions: Any, account_id: str) -> list[dict[str, Any]]:
    async with sessions() as session:
        return [
            e.details
            for e in await session.scalars(
                select(AuditEvent).where(AuditEvent.account_id == account_id, AuditEvent.action == "key.use")
            )
        ]


async def test_owner_task_and_queue_place_come_back_together(db: Any) -> None:
    sessions, reads = db
    account_id, key = await make_account(sessions, plan="scale", credits=100)
    _first, second = await _tasks(sessions, account_id, 2)
    async with reads() as session:
        owner, found = await owner_and_task(session, key, _use(), second)
        await session.commit()
    assert owner is not None and owner.account_id == account_id and owner.plan == "scale"
    assert found is not None
    task, position = found
    assert (task.id, task.status, task.price, task.request) == (second, status.QUEUED, 3, {"prompt": "p1"})
    assert position == 2, "one older queued task of the account is ahead"
    assert await _key_uses(sessions, account_id) == [
        {"method": "GET", "path": "/api/status", "key_name": "", "client": "10.0.0.7"}
    ]


async def test_a_task_past_the_queue_has_no_place(db: Any) -> None:
    sessions, reads = db
    account_id, key = await make_account(sessions, credits=100)
    (task_id,) = await _tasks(sessions, account_id, 1)
    async with sessions.begin() as session:
        (await session.get(Task, task_id)).status = status.RUNNING  # type: ignore[union-attr]
    async with reads() as session:
        _, found = await owner_and_task(session, key, _use(), task_id)
    assert found is not None and found[0].status == status.RUNNING and found[1] is None


async def test_another_tenants_task_and_a_bad_key_read_nothing(db: Any) -> None:
    sessions, reads = db
    account_id, key = await make_account(sessions, plan="free", credits=100)
    other_id, _ = await make_account(sessions, credits=100)
    (foreign,) = await _tasks(sessions, other_id, 1)
    async with reads() as session:
        owner, found = await owner_and_task(session, key, _use(), foreign)
        assert owner is not None and owner.account_id == account_id and found is None
        assert await owner_and_task(session, "sk-unknown", _use(), foreign) == (None, None)
        await session.commit()
    assert await _key_uses(sessions, account_id) == [], "free keeps no audit log"
    async with sessions() as session:
        assert (
            await session.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.account_id == other_id))
            == 0
        )


async def test_postgresql_reads_it_all_in_one_statement(db: Any) -> None:
    """The point of the module: one round trip per poll where the database allows it."""
    sessions, reads = db
    account_id, key = await make_account(sessions, plan="scale", credits=100)
    (task_id,) = await _tasks(sessions, account_id, 1)
    async with reads() as session:
        statements: list[str] = []
        conn = await session.connection()

        def count(*args: Any) -> None:
            statements.append(args[2])

        event.listen(conn.sync_connection, "before_cursor_execute", count)
        _, found = await owner_and_task(session, key, _use(), task_id)
        await session.commit()
    assert found is not None
    assert len(statements) == 1
