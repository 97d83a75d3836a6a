"""A request id on every response (`X-Request-ID`), bound into every log line of the request.

A sane incoming id (a proxy's or the client's) is kept so one id follows a request across
systems; anything else gets a fresh one. Every 5xx is logged with it, so a user quoting the
header leads straight to the server-side record.
"""

from __future__ import annotations

import re
import uuid

import structlog
from litestar.datastructures import MutableScopeHeaders
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send

HEADER = "X-Request-ID"
_SANE = re.compile(r"^[A-Za-z0-9._:\-]{8,128}$")
_STATE_KEY = "request_id"

log = structlog.get_logger()


def request_id_of(scope: Scope) -> str:
    """The request's id: remembered in the scope, taken from a sane incoming header, or new."""
    state = scope.setdefault("state", {})
    if _STATE_KEY not in state:
        incoming = dict(scope.get("headers", [])).get(b"x-request-id", b"").decode("latin-1")
        state[_STATE_KEY] = incoming if _SANE.match(incoming) else "req_" + uuid.uuid4().hex
    return state[_STATE_KEY]


async def stamp_response(message: Message, scope: Scope) -> None:
    """`before_send` hook: runs for every HTTP response, routed or not (404/405 included)."""
    if scope.get("type") != ScopeType.HTTP or message["type"] != "http.response.start":
        return
    request_id = request_id_of(scope)
    message.setdefault("headers", [])
    MutableScopeHeaders.from_message(message)[HEADER] = request_id
    status = message.get("status", 200)
    if status >= 500:
        log.error(
            "server error response",
            request_id=request_id,
            status=status,
            method=scope.get("method"),
            path=scope.get("path"),
        )


class RequestIdMiddleware(ASGIMiddleware):
    """Binds the id into structlog's context for the whole handler (and its error handlers)."""

    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        with structlog.contextvars.bound_contextvars(request_id=request_id_of(scope)):
            await next_app(scope, receive, send)
