"""Bearer-key authentication: resolves the calling account or answers 401."""

from __future__ import annotations

from dataclasses import dataclass

import structlog
from litestar import Request

from api.state import Resources
from api.credits_audit import record_key_use
from sorapi.db.accounts import authenticate
from sorapi.errors import Unauthorized


@dataclass(frozen=True)
class Principal:
    account_id: str
    plan: str
    key_id: str
    scopes: frozenset[str]


async def provide_principal(request: Request, resources: Resources) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise Unauthorized("missing Bearer API key", headers={"WWW-Authenticate": "Bearer"})
    async with resources.sessions() as session:
        found = await authenticate(session, key.strip())
    if found is None:
        raise Unauthorized("invalid or revoked API key", headers={"WWW-Authenticate": "Bearer"})
    account, api_key = found
    structlog.contextvars.bind_contextvars(account_id=account.id)
    await record_key_use(resources, account, api_key, request)
    return Principal(account_id=account.id, plan=account.plan, key_id=api_key.id,
                     scopes=frozenset(api_key.scopes.split(",")))
