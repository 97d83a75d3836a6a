"""One JSON error envelope for every failure: `{"error": {"code", "message", "details"}}`."""

from __future__ import annotations

import re

import structlog
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from sqlalchemy import exc as db_errors

from sorapi.contracts import errors
from sorapi.contracts.errors import ApiError
from sorapi.contracts.schemas import ErrorBody, ErrorDetail, ErrorEnvelope

log = structlog.get_logger()

_HTTP_CODES = {
    400: errors.INVALID_JSON,
    401: errors.UNAUTHORIZED,
    404: errors.NOT_FOUND,
    405: "method_not_allowed",
    413: "payload_too_large",
    429: errors.RATE_LIMITED,
    503: errors.SERVICE_UNAVAILABLE,
}
DB_RETRY_AFTER_S = 5
"""Retry-After when the database is away: long enough not to pile on, short enough for a restart or failover."""


def _envelope(
    status: int,
    code: str,
    message: str,
    details: list[ErrorDetail] | None = None,
    headers: dict[str, str] | None = None,
) -> Response[ErrorEnvelope]:
    body = ErrorEnvelope(error=ErrorBody(code=code, message=message, details=details or []))
    return Response(body, status_code=status, headers=headers)


def api_error(_: Request, exc: ApiError) -> Response[ErrorEnvelope]:
    details = [ErrorDetail(**d) if isinstance(d, dict) else d for d in exc.details]
    return _envelope(exc.status_code, exc.code, exc.message, details, exc.headers)


_NAMED_FIELD = re.compile(r"`\$\.([^`]+)`|field `([^`]+)`")


def field_named(message: str) -> str:
    """The field a msgspec validation message names.

    Its path (`$.name`), or a missing or unknown `field `name``; "body" when it names none (the body as a whole is
    wrong).
    """
    named = _NAMED_FIELD.search(message)
    return (named.group(1) or named.group(2)) if named else "body"


def _field_of(entry: dict[str, object]) -> str:
    """The offending field: msgspec names missing/unknown fields only in its message text."""
    key = str(entry.get("key") or "")
    return field_named(str(entry.get("message", ""))) if key in ("", "data") else key


def validation_error(_: Request, exc: ValidationException) -> Response[ErrorEnvelope]:
    """Litestar's decoding failures become 422 with field-level details (400 for unparseable JSON)."""
    extra = exc.extra if isinstance(exc.extra, list) else []
    details = [ErrorDetail(field=_field_of(e), message=str(e.get("message", ""))) for e in extra if isinstance(e, dict)]
    if not details or any(d.message.startswith("JSON is malformed") for d in details):
        return _envelope(400, errors.INVALID_JSON, "the request body is not valid JSON", details)
    return _envelope(422, errors.VALIDATION_ERROR, "the request is invalid", details)


def http_error(_: Request, exc: HTTPException) -> Response[ErrorEnvelope]:
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    return _envelope(exc.status_code, code, str(exc.detail), headers=exc.headers)


def database_unavailable(request: Request, exc: Exception) -> Response[ErrorEnvelope]:
    """The database is unreachable, restarting or out of pool connections.

    The request may succeed in a moment, so a 503 with Retry-After tells clients to come back instead of a 500 that says
    we broke.
    """
    log.warning("database unavailable", path=request.url.path, error=repr(exc))
    return _envelope(
        503,
        errors.SERVICE_UNAVAILABLE,
        "the service is briefly unavailable; retry shortly",
        headers={"Retry-After": str(DB_RETRY_AFTER_S)},
    )


def internal_error(request: Request, exc: Exception) -> Response[ErrorEnvelope]:
    log.exception("unhandled error", path=request.url.path, error=repr(exc))
    return _envelope(500, errors.INTERNAL_ERROR, "internal server error")


EXCEPTION_HANDLERS = {
    ApiError: api_error,
    ValidationException: validation_error,
    HTTPException: http_error,
    db_errors.OperationalError: database_unavailable,  # connection refused or lost, server shutting down
    db_errors.InterfaceError: database_unavailable,
    db_errors.TimeoutError: database_unavailable,  # no pool connection free within pool_timeout
    Exception: internal_error,
}
