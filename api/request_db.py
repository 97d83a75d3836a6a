"""One database session per request on the hot endpoints: auth, audit entry and the handler's
queries share one pool checkout and one transaction.

`GET /api/status` and `POST /api/generate` declare `dependencies=SHARED_SESSION`: the Bearer key
is resolved in the request's session, the key-use audit entry (plans with `audit_log`) is added
to it, and the handler keeps using it. The session commits when the handler returns. If the
handler fails, its work is rolled back and the audit entry is written on its own, so every
authenticated request is still audited exactly once, whatever its outcome.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import structlog
from litestar import Request
from litestar.di import Provide
from sqlalchemy.ext.asyncio import AsyncSession

from api.auth import Principal, authenticate_in
from api.credits_audit import UNCOMMITTED_KEY_USE
from api.state import Resources
from sorapi.db import audit

log = structlog.get_logger()


async def provide_request_session(resources: Resources) -> AsyncIterator[AsyncSession]:
    session = resources.sessions()
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
    except Exception as exc:  # noqa: BLE001 - the handler's own error is the one the client gets
        log.error("could not record key use after a failed request", error=repr(exc))


async def provide_principal_in_request(request: Request, resources: Resources, db: AsyncSession) -> Principal:
    try:
        return await authenticate_in(db, request, resources)
    except Exception:
        await db.close()  # a failed dependency is never cleaned up by Litestar: give the connection back now
        raise


SHARED_SESSION = {"db": Provide(provide_request_session), "principal": Provide(provide_principal_in_request)}
"""Handler `dependencies` for endpoints whose queries should share the authentication's session."""
