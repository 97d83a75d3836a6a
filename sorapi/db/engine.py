"""Engines for SQLite (default) and PostgreSQL, from one SQLAlchemy URL."""

from __future__ import annotations

import time

import msgspec
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine, AsyncSession

_ASYNC_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+psycopg"}
_SYNC_DRIVERS = {"sqlite": "sqlite", "postgresql": "postgresql+psycopg"}


def _with_driver(url: str, drivers: dict[str, str]) -> str:
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend not in drivers:
        raise ValueError(f"unsupported database backend {backend!r}: use sqlite or postgresql")
    return parsed.set(drivername=drivers[backend]).render_as_string(hide_password=False)


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def _sqlite_locks_on_begin(sync_engine: Engine) -> None:
    """SQLite: take the write lock at BEGIN so concurrent writers queue instead of deadlocking.

    pysqlite's own transaction handling is switched off so SQLAlchemy's BEGIN is the one that runs;
    together with a busy timeout this gives serialisable read-modify-write, like FOR UPDATE on Postgres.
    """

    @event.listens_for(sync_engine, "connect")
    def _connect(dbapi_connection, _record):  # type: ignore[no-untyped-def]
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _begin(connection):  # type: ignore[no-untyped-def]
        connection.exec_driver_sql("BEGIN IMMEDIATE")


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
    def _checkin(_dbapi_connection, record):  # type: ignore[no-untyped-def]
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(sync_engine, "checkout")
    def _checkout(dbapi_connection, record, _proxy):  # type: ignore[no-untyped-def]
        idle_since = record.info.get("idle_since")
        if idle_since is None or time.monotonic() - idle_since <= idle_s:
            return
        try:
            sync_engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:  # noqa: BLE001 - any failure means the connection is unusable
            raise DisconnectionError(f"pooled connection failed its ping: {exc!r}") from exc


def make_async_engine(url: str, pool_size: int = 20, ping_after_idle_s: float = PING_AFTER_IDLE_S) -> AsyncEngine:
    if is_sqlite(url):
        engine = create_async_engine(_with_driver(url, _ASYNC_DRIVERS), connect_args={"timeout": 30})
        _sqlite_locks_on_begin(engine.sync_engine)
        return engine
    # `pool_size` connections are kept; up to 10 more open under bursts, but each of those is closed on
    # return and reopened on the next checkout (a new PostgreSQL backend each time), so size the pool
    # to the requests in flight.
    # JSON columns (task requests, outputs, event data) through msgspec: several times faster than the
    # stdlib json psycopg uses by default, on every task written and every status read.
    engine = create_async_engine(_with_driver(url, _ASYNC_DRIVERS), pool_size=pool_size, max_overflow=10,
                                 json_serializer=msgspec.json.encode, json_deserializer=msgspec.json.decode)
    _ping_after_idle(engine.sync_engine, ping_after_idle_s)
    return engine


def make_sync_engine(url: str) -> Engine:
    return create_engine(_with_driver(url, _SYNC_DRIVERS))


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def make_autocommit_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions whose every statement is its own transaction, for reads and single-statement writes.

    On PostgreSQL this saves the BEGIN and COMMIT round trips of a request that needs no
    atomicity across statements (a status poll: key lookup, key-use audit row, task read).
    SQLite keeps ordinary sessions: its isolation-level switch would hand transaction control
    back to pysqlite and undo `_sqlite_locks_on_begin`.
    """
    if engine.dialect.name == "sqlite":
        return make_sessionmaker(engine)
    return async_sessionmaker(engine.execution_options(isolation_level="AUTOCOMMIT"), expire_on_commit=False)
