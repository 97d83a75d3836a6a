"""Engines for PostgreSQL, the one database SorAPI speaks, from one SQLAlchemy URL."""

from __future__ import annotations

import time
from typing import Any

import msgspec
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine


def _with_psycopg(url: str) -> str:
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        raise ValueError(
            f"unsupported database {parsed.get_backend_name()!r}: SorAPI runs on PostgreSQL "
            "(postgresql://user:password@host:port/database)"
        )
    return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


PING_AFTER_IDLE_S = 2.0
"""A pooled PostgreSQL connection idle longer than this is pinged before use (see `_ping_after_idle`)."""


def _ping_after_idle(sync_engine: Engine, idle_s: float) -> None:
    """Check a connection before use only if it sat idle in the pool for more than `idle_s`.

    SQLAlchemy's `pool_pre_ping` costs a round trip on every checkout, one in four of a status
    poll's. Like HikariCP's bypass window, a connection used moments ago is taken as alive; one
    that idled (where a database restart or an idle timeout would show) is pinged, and a dead one
    is replaced before the request sees it. A failure on a busy connection still invalidates the
    whole pool, as without any ping.
    """

    @event.listens_for(sync_engine, "checkin")
    def _checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(sync_engine, "checkout")
    def _checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is None or time.monotonic() - idle_since <= idle_s:
            return
        try:
            sync_engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:
            raise DisconnectionError(f"pooled connection failed its ping: {exc!r}") from exc


def make_async_engine(url: str, pool_size: int = 20, ping_after_idle_s: float = PING_AFTER_IDLE_S) -> AsyncEngine:
    # `pool_size` connections are kept; up to 10 more open under bursts, but each of those is closed on
    # return and reopened on the next checkout (a new PostgreSQL backend each time), so size the pool
    # to the requests in flight.
    # JSON columns (task requests, outputs, event data) through msgspec: several times faster than the
    # stdlib json psycopg uses by default, on every task written and every status read.
    engine = create_async_engine(
        _with_psycopg(url),
        pool_size=pool_size,
        max_overflow=10,
        json_serializer=msgspec.json.encode,
        json_deserializer=msgspec.json.decode,
    )
    _ping_after_idle(engine.sync_engine, ping_after_idle_s)
    return engine


def make_sync_engine(url: str) -> Engine:
    return create_engine(_with_psycopg(url))


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def make_autocommit_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions whose every statement is its own transaction, for reads and single-statement writes.

    This saves the BEGIN and COMMIT round trips of a request that needs no atomicity across
    statements (a status poll: key lookup, key-use audit row, task read).
    """
    return async_sessionmaker(engine.execution_options(isolation_level="AUTOCOMMIT"), expire_on_commit=False)


def autocommit_twin(sessions: async_sessionmaker[AsyncSession]) -> async_sessionmaker[AsyncSession]:
    """Autocommit sessions on the engine (and pool) of `sessions`: a one-statement read costs one round trip."""
    return make_autocommit_sessionmaker(sessions.kw["bind"])
