"""Path parameters that can name nothing.

No stored id contains a NUL character (PostgreSQL text cannot hold one), so such a path is a 404 before any lookup, not
a query that fails (500).
"""

from __future__ import annotations

from typing import Any

from litestar import Request

from sorapi.contracts import errors


def refuse_nul_path_parameters(request: Request[Any, Any, Any]) -> None:
    """`before_request` hook of the app: runs after routing, before authentication and the handler."""
    if any(isinstance(value, str) and "\x00" in value for value in request.path_params.values()):
        raise errors.NotFound("no such resource: a NUL character names nothing here")
