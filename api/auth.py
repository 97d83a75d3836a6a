"""Bearer-key authentication: resolves the calling account or answers 401."""

from __future__ import annotations

from dataclasses import dataclass

import structlog
from litestar import Request
from sqlalchemy.ext.asyncio import AsyncSession

from api.state import Resources
from api.credits_audit import key_use, remember_until_commit
from sorapi.db.accounts import KeyOwner, KeyUse, key_owner
from sorapi.errors import Forbidden, Unauthorized


@dataclass(frozen=True)
class Principal:
    account_id: str
    plan: str
    key_id: str
    scopes: frozenset[str]


GENERATE_SCOPES = frozenset({"generate", "admin"})
READ_SCOPES = frozenset({"read", "admin"})
AUDIT_SCOPES = frozenset({"audit", "admin"})


def require_scope(principal: Principal, allowed: frozenset[str], what: str) -> None:
    """A valid key without the scope an operation needs is a 403 (`insufficient_scope`), not a 401."""
    if not principal.scopes & allowed:
        raise Forbidden(f"this API key may not {what}; it needs one of the scopes: {', '.join(sorted(allowed))}")


def bearer_key(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise Unauthorized("missing Bearer API key", headers={"WWW-Authenticate": "Bearer"})
    return key.strip()


async def authenticate_in(session: AsyncSession, request: Request, resources: Resources) -> Principal:
    """Resolve the key in `session` and add its audit entry there (the caller commits)."""
    use = key_use(resources, request)
    return admit(session, await key_owner(session, bearer_key(request), use), use)


def admit(session: AsyncSession, owner: KeyOwner | None, use: KeyUse) -> Principal:
    """The caller behind a looked-up key, or 401; its account is bound to every log line from here on."""
    if owner is None:
        raise Unauthorized("invalid or revoked API key", headers={"WWW-Authenticate": "Bearer"})
    structlog.contextvars.bind_contextvars(account_id=owner.account_id)
    remember_until_commit(session, use, owner)
    return Principal(account_id=owner.account_id, plan=owner.plan, key_id=owner.key_id,
                     scopes=frozenset(owner.scopes.split(",")))


async def provide_principal(request: Request, resources: Resources) -> Principal:
    """Key lookup and audit entry in a session of their own, committed before the handler
    (autocommit on PostgreSQL: two statements, no BEGIN/COMMIT round trips)."""
    async with resources.autocommit_sessions() as session:
        principal = await authenticate_in(session, request, resources)
        await session.commit()
    return principal
