"""One database session per request on the hot endpoints.

Auth, audit entry and the handler's queries share one pool checkout.

`POST /api/generate` declares `dependencies=SHARED_SESSION`: the Bearer key is resolved in the
request's session, the key-use audit entry (plans with `audit_log`) is added to it, and the
handler's writes join the same transaction. The session commits when the handler returns. If the
handler fails, its work is rolled back and the audit entry is written on its own, so every
authenticated request is still audited exactly once, whatever its outcome.

`GET /api/status` declares `dependencies=READ_SESSION`: an autocommit session (PostgreSQL), in
which the handler authenticates itself and reads the task in one statement
(sorapi.store.status_poll). A read needs no transaction around it: no BEGIN or COMMIT round trips.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from litestar import Request
from litestar.di import Provide
from sqlalchemy.ext.asyncio import AsyncSession

from sorapi.api.auth import Principal, authenticate_in, require_route_scope
from sorapi.api.key_use import UNCOMMITTED_KEY_USE
from sorapi.api.state import Resources
from sorapi.contracts.errors import Forbidden
from sorapi.store import audit

log = structlog.get_logger()


async def provide_request_session(resources: Resources) -> AsyncIterator[AsyncSession]:
    async with _request_session(resources.sessions()) as session:
        yield session


async def provide_read_session(resources: Resources) -> AsyncIterator[AsyncSession]:
    async with _request_session(resources.autocommit_sessions()) as session:
        yield session


@asynccontextmanager
async def _request_session(session: AsyncSession) -> AsyncIterator[AsyncSession]:
    """Commit after the handler; on its failure roll back but keep the audit entry.

    A context manager, so the handler's exception, thrown into the provider at its `yield`, reaches this `except`.
    """
    try:
        yield session
    except Exception:
        await _keep_audit_entry(session)
        raise
    else:
        await session.commit()
    finally:
        await session.close()


async def _keep_audit_entry(session: AsyncSession) -> None:
    """Roll back a failed handler's work, then write its request's audit entry if that went with it."""
    try:
        await session.rollback()
        entry = session.info.get(UNCOMMITTED_KEY_USE)
        if entry is not None:
            await audit.append(session, **entry)
            await session.commit()
    except Exception as exc:
        log.error("could not record key use after a failed request", error=repr(exc))


async def provide_principal_in_request(request: Request, resources: Resources, db: AsyncSession) -> Principal:
    try:
        principal = await authenticate_in(db, request, resources)
        require_route_scope(request, principal)
    except Forbidden:
        await db.commit()  # a refused call is audited like any other authenticated request
        await db.close()
        raise
    except Exception:
        await db.close()  # a failed dependency is never cleaned up by Litestar: give the connection back now
        raise
    return principal


SHARED_SESSION = {"db": Provide(provide_request_session), "principal": Provide(provide_principal_in_request)}
"""Handler `dependencies` for endpoints whose writes should share the authentication's transaction."""
READ_SESSION = {"db": Provide(provide_read_session)}
"""Handler `dependencies` for reads that authenticate in the handler, in one autocommit session."""
