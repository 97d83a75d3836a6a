"""Engines for SQLite (default) and PostgreSQL, from one SQLAlchemy URL."""

from __future__ import annotations

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url
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


def make_async_engine(url: str) -> AsyncEngine:
    if is_sqlite(url):
        engine = create_async_engine(_with_driver(url, _ASYNC_DRIVERS), connect_args={"timeout": 30})
        _sqlite_locks_on_begin(engine.sync_engine)
        return engine
    # Up to 30 connections as before, but 20 of them kept: under load, connections beyond the kept
    # ones are closed on return and reopened on the next checkout (a new PostgreSQL backend each time).
    return create_async_engine(_with_driver(url, _ASYNC_DRIVERS), pool_size=20, max_overflow=10,
                               pool_pre_ping=True)


def make_sync_engine(url: str) -> Engine:
    return create_engine(_with_driver(url, _SYNC_DRIVERS))


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)
