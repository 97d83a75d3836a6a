"""Bearer-key authentication.

Resolves the calling account or answers 401, then checks the scopes its route declares (403).

Every route that takes an API key declares the scopes that may call it (`opt=NEEDS_READ`...);
authentication enforces the declaration, so no handler can forget its check. A route that takes a
key but declares nothing fails closed (500), and tests/test_auth_isolation.py walks every route.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import structlog
from litestar import Request
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Receive, Scope, Send
from sqlalchemy.ext.asyncio import AsyncSession

from sorapi.api.key_use import key_use, remember_until_commit
from sorapi.api.state import Resources
from sorapi.contracts.errors import DuplicateHeader, Forbidden, Unauthorized
from sorapi.store.accounts import KeyOwner, KeyUse, key_owner


@dataclass(frozen=True)
class Principal:
    account_id: str
    plan: str
    key_id: str
    scopes: frozenset[str]


GENERATE_SCOPES = frozenset({"generate", "admin"})
"""Whatever spends credits or changes a task: create, remix, cancel, delete assets, redeliver webhooks."""
READ_SCOPES = frozenset({"read", "admin"})
AUDIT_SCOPES = frozenset({"audit", "admin"})
ADMIN_SCOPES = frozenset({"admin"})

SCOPES_OPT = "scopes"
NEEDS_GENERATE = {SCOPES_OPT: GENERATE_SCOPES}
"""Handler `opt` of routes that spend credits or change a task."""
NEEDS_READ = {SCOPES_OPT: READ_SCOPES}
NEEDS_AUDIT = {SCOPES_OPT: AUDIT_SCOPES}
NEEDS_ADMIN = {SCOPES_OPT: ADMIN_SCOPES}

AUTHENTICATED = "sorapi.authenticated"
"""Set in the request's scope state once its key proved valid: the rate limiter's evidence."""


def require_scope(principal: Principal, allowed: frozenset[str], what: str) -> None:
    """A valid key without the scope an operation needs is a 403 (`insufficient_scope`), not a 401."""
    if not principal.scopes & allowed:
        raise Forbidden(f"this API key may not {what}; it needs one of the scopes: {', '.join(sorted(allowed))}")


def require_route_scope(request: Request, principal: Principal) -> None:
    """The scopes the route declares in its `opt`; a route that declares none refuses everyone."""
    allowed = request.route_handler.opt.get(SCOPES_OPT)
    if not allowed:
        raise RuntimeError(f"{request.method} {request.url.path} takes an API key but declares no scopes")
    require_scope(principal, allowed, f"call {request.method} {request.url.path}")


def authorization_header(headers: Iterable[tuple[bytes, bytes]]) -> str:
    """The request's one `Authorization` value ("" when absent); several are refused (400).

    With two, a component reading the first and one reading the last disagree about who is
    calling (the rate limiter metered a random key while authentication admitted the real one),
    so every reader goes through here and none gets to choose.
    """
    values = [value for name, value in headers if name.lower() == b"authorization"]
    if len(values) > 1:
        raise DuplicateHeader(
            "send exactly one Authorization header",
            details=[{"field": "Authorization", "message": f"sent {len(values)} times"}],
        )
    return values[0].decode("latin-1") if values else ""


class SingleAuthorizationMiddleware(ASGIMiddleware):
    """Refuses a request with several `Authorization` headers before anything reads one."""

    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        authorization_header(scope["headers"])
        await next_app(scope, receive, send)


def bearer_key(request: Request) -> str:
    header = authorization_header(request.scope["headers"])
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise Unauthorized("missing Bearer API key", headers={"WWW-Authenticate": "Bearer"})
    return key.strip()


async def authenticate_in(session: AsyncSession, request: Request, resources: Resources) -> Principal:
    """Resolve the key in `session` and add its audit entry there (the caller commits)."""
    use = key_use(resources, request)
    return admit(session, await key_owner(session, bearer_key(request), use), use, request)


def admit(session: AsyncSession, owner: KeyOwner | None, use: KeyUse, request: Request) -> Principal:
    """The caller behind a looked-up key, or 401; its account is bound to every log line from here on."""
    if owner is None:
        raise Unauthorized("invalid or revoked API key", headers={"WWW-Authenticate": "Bearer"})
    structlog.contextvars.bind_contextvars(account_id=owner.account_id)
    remember_until_commit(session, use, owner)
    request.scope.setdefault("state", {})[AUTHENTICATED] = True
    return Principal(
        account_id=owner.account_id, plan=owner.plan, key_id=owner.key_id, scopes=frozenset(owner.scopes.split(","))
    )


async def provide_principal(request: Request, resources: Resources) -> Principal:
    """Key lookup and audit entry in a session of their own, then the route's scopes.

    The session is committed before the handler (autocommit on PostgreSQL: two statements, no BEGIN/COMMIT round trips);
    the scopes are checked after the commit, so a refused call is audited too.
    """
    async with resources.autocommit_sessions() as session:
        principal = await authenticate_in(session, request, resources)
        await session.commit()
    require_route_scope(request, principal)
    return principal
