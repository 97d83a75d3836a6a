"""`OPTIONS` answers `Allow` with every method of the path, whichever controller declares each.

Litestar builds a path's OPTIONS handler with the first controller that registers the path and
never updates it when another controller adds methods to the same path (`/v1/videos`: GET and
POST; `/api/credits/estimate`: GET and POST), so its `Allow` header misses some. Clients and CORS
preflights trust `Allow`; the methods are recomputed here from the app's routes.
"""

from __future__ import annotations

from typing import cast

from litestar import Litestar
from litestar.datastructures import MutableScopeHeaders
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.routes import HTTPRoute
from litestar.types import ASGIApp, HTTPScope, Message, Receive, Scope, Send


def allowed_methods(app: Litestar) -> dict[str, str]:
    """Path template → the `Allow` value of its route (methods sorted, OPTIONS included)."""
    return {route.path_format: ", ".join(sorted(route.methods)) for route in app.routes if isinstance(route, HTTPRoute)}


class AllowHeaderMiddleware(ASGIMiddleware):
    """One instance per app (see create_app): the methods are computed at its first OPTIONS request."""

    scopes = (ScopeType.HTTP,)

    def __init__(self) -> None:
        self._allow: dict[str, str] | None = None

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        if cast("HTTPScope", scope)["method"] != "OPTIONS":
            await next_app(scope, receive, send)
            return
        if self._allow is None:
            self._allow = allowed_methods(scope["app"])
        allow = self._allow.get(scope.get("path_template", ""))
        if allow is None:
            await next_app(scope, receive, send)
            return

        async def send_with_allow(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableScopeHeaders.from_message(message)["Allow"] = allow
            await send(message)

        await next_app(scope, receive, send_with_allow)
