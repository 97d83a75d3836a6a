"""The PostgreSQL pool: a connection killed while idle is replaced unseen; a busy one is not pinged."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from sorapi.store.engine import make_async_engine
from tests.backing import pg_admin_url
from tests.stack import fresh_pg_database


@pytest.fixture
def own_db() -> Iterator[str]:
    """A database of its own: these tests kill every connection to it."""
    with fresh_pg_database() as url:
        yield url


def _terminate(url: str) -> int:
    """Kill every server process connected to the database, as a restart would."""
    with psycopg.connect(pg_admin_url(), autocommit=True) as admin:
        rows = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (make_url(url).database,),
        ).fetchall()
    return len(rows)


async def _backend_pid(engine) -> int:  # type: ignore[no-untyped-def]
    async with engine.connect() as conn:
        return (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()


async def test_a_connection_killed_while_idle_is_replaced_before_use(own_db: str) -> None:
    engine = make_async_engine(own_db, pool_size=1, ping_after_idle_s=0.2)
    try:
        first = await _backend_pid(engine)
        assert _terminate(own_db) >= 1  # e.g. a database restart or an idle-session timeout
        await asyncio.sleep(0.3)
        second = await _backend_pid(engine)  # no error reaches the caller
        assert second != first
    finally:
        await engine.dispose()


@asynccontextmanager
async def _counting_pings(url: str, ping_after_idle_s: float, monkeypatch: Any) -> AsyncIterator[tuple[Any, list[int]]]:
    """A one-connection engine and the list its pings are counted in."""
    engine = make_async_engine(url, pool_size=1, ping_after_idle_s=ping_after_idle_s)
    pings: list[int] = []
    original = engine.sync_engine.dialect.do_ping
    monkeypatch.setattr(engine.sync_engine.dialect, "do_ping", lambda conn: pings.append(1) or original(conn))
    try:
        yield engine, pings
    finally:
        await engine.dispose()


async def test_a_connection_in_steady_use_is_not_pinged(own_db: str, monkeypatch: Any) -> None:
    async with _counting_pings(own_db, 60, monkeypatch) as (engine, pings):
        pids = {await _backend_pid(engine) for _ in range(20)}
        assert pids == {next(iter(pids))} and pings == []  # one reused connection, never pinged


async def test_an_idle_connection_is_pinged_once_then_reused(own_db: str, monkeypatch: Any) -> None:
    async with _counting_pings(own_db, 0.2, monkeypatch) as (engine, pings):
        first = await _backend_pid(engine)
        await asyncio.sleep(0.3)
        assert await _backend_pid(engine) == first and len(pings) == 1
        assert await _backend_pid(engine) == first and len(pings) == 1
