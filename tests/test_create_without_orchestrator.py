"""When Temporal is down, create answers 503 and loses nothing.

A keyed task waits for the client's retry to start its workflow. A keyless task cannot be retried, but a failed start
does not prove that no workflow runs, and a Temporal that is down cannot say: the task keeps its hold and stays queued,
and the stranded-task sweeper settles it once Temporal can confirm there is no workflow (tests/test_slot_gate.py); when
Temporal does answer, the task is settled at once (tests/test_ambiguous_start.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from sorapi.adapters import storage
from sorapi.adapters.settings import Settings
from sorapi.adapters.temporal import connect
from sorapi.api.auth import Principal
from sorapi.api.state import Resources
from sorapi.api.tasks.task_service import create_task
from sorapi.cli import servers
from sorapi.contracts import errors
from sorapi.contracts.schemas import GenerateRequest
from sorapi.domain.catalog import get_catalog
from sorapi.store.models import Account, LedgerEntry, Task
from tests.stack import make_account


@pytest.fixture
async def unreachable_temporal(sessions: Any, pg_url: str, tmp_path: Path) -> Resources:
    """The API's connected client, after its Temporal server went away."""
    port = servers.free_port()
    temporal = servers.start_temporal(tmp_path / "temporal", port, servers.free_port(), log_path=None, headless=True)
    settings = Settings(database_url=pg_url, temporal_address=f"127.0.0.1:{port}")
    try:
        client = await connect(settings)
    finally:
        temporal.stop()
    return Resources(
        settings=settings,
        catalog=get_catalog(),
        engine=None,
        sessions=sessions,  # type: ignore[arg-type]
        autocommit_sessions=sessions,
        temporal=client,
        s3=storage.make_client(settings),
        signer=storage.make_client(settings),
    )


async def _principal(sessions: Any) -> Principal:
    account_id, _ = await make_account(sessions, credits=100)
    return Principal(account_id=account_id, plan="free", key_id="key_test", scopes=frozenset({"generate", "read"}))


async def _rows(sessions: Any, account_id: str) -> tuple[list[Task], list[str], Account]:
    async with sessions() as session:
        tasks = list((await session.scalars(select(Task).where(Task.account_id == account_id))).all())
        kinds = list(
            (
                await session.scalars(
                    select(LedgerEntry.kind).where(LedgerEntry.account_id == account_id).order_by(LedgerEntry.id)
                )
            ).all()
        )
        return tasks, kinds, await session.get(Account, account_id)


async def test_keyless_task_is_left_for_the_sweeper_when_temporal_cannot_say(
    unreachable_temporal: Resources, sessions: Any
) -> None:
    principal = await _principal(sessions)
    with pytest.raises(errors.ServiceUnavailable):
        await create_task(unreachable_temporal, principal, GenerateRequest(prompt="a kite over dunes", duration=1))
    (task,), kinds, account = await _rows(sessions, principal.account_id)
    assert task.status == "queued" and kinds == ["grant", "reserve"], "never released under a workflow that may run"
    assert account.reserved == task.price


async def test_keyed_task_stays_queued_for_the_retry(unreachable_temporal: Resources, sessions: Any) -> None:
    principal = await _principal(sessions)
    request = GenerateRequest(prompt="a kite over dunes", duration=1, idempotency_key="retry-me")
    with pytest.raises(errors.ServiceUnavailable):
        await create_task(unreachable_temporal, principal, request)
    (task,), kinds, account = await _rows(sessions, principal.account_id)
    assert task.status == "queued" and kinds == ["grant", "reserve"] and account.reserved == task.price
