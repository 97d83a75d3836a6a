"""Bearer-key authentication: resolves the calling account or answers 401."""

from __future__ import annotations

from dataclasses import dataclass

import structlog
from litestar import Request
from sqlalchemy.ext.asyncio import AsyncSession

from api.state import Resources
from api.credits_audit import record_key_use
from sorapi.db.accounts import key_owner
from sorapi.errors import Unauthorized


@dataclass(frozen=True)
class Principal:
    account_id: str
    plan: str
    key_id: str
    scopes: frozenset[str]


def bearer_key(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise Unauthorized("missing Bearer API key", headers={"WWW-Authenticate": "Bearer"})
    return key.strip()


async def authenticate_in(session: AsyncSession, request: Request, resources: Resources) -> Principal:
    """Resolve the key in `session` and add its audit entry there (the caller commits)."""
    owner = await key_owner(session, bearer_key(request))
    if owner is None:
        raise Unauthorized("invalid or revoked API key", headers={"WWW-Authenticate": "Bearer"})
    structlog.contextvars.bind_contextvars(account_id=owner.account_id)
    await record_key_use(session, resources, owner, request)
    return Principal(account_id=owner.account_id, plan=owner.plan, key_id=owner.key_id,
                     scopes=frozenset(owner.scopes.split(",")))


async def provide_principal(request: Request, resources: Resources) -> Principal:
    """Key lookup and audit entry in one short transaction of their own, committed before the handler."""
    async with resources.sessions() as session:
        principal = await authenticate_in(session, request, resources)
        await session.commit()
    return principal
