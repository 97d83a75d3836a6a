"""Stable error codes and the exception hierarchy the API maps to HTTP once.

Clients match on `code`, never on message text; codes are part of the public contract.
"""

from __future__ import annotations

from typing import Any

# Codes shared by the API envelope, task rows and Temporal ApplicationError types.
VALIDATION_ERROR = "validation_error"
INVALID_JSON = "invalid_json"
INVALID_FORM = "invalid_form"
"""A multipart/form-data or urlencoded body that cannot be parsed (400); a field that is not text is a 422."""
UNAUTHORIZED = "unauthorized"
NOT_FOUND = "not_found"
INSUFFICIENT_CREDITS = "insufficient_credits"
SPEND_LIMIT_REACHED = "spend_limit_reached"
"""A create would take the account's or the key's credits used this UTC month past its `monthly_credit_limit` (402)."""
IDEMPOTENCY_KEY_REUSED = "idempotency_key_reused"
RATE_LIMITED = "rate_limited"
SERVICE_UNAVAILABLE = "service_unavailable"
INTERNAL_ERROR = "internal_error"
RENDER_FAILED = "render_failed"
UPLOAD_FAILED = "upload_failed"
TIMEOUT = "timeout"
CANCELLED = "cancelled"
QUEUE_TIMEOUT = "queue_timeout"
TASK_NOT_CANCELLABLE = "task_not_cancellable"
MAINTENANCE = "maintenance"
VARIANT_NOT_FOUND = "variant_not_found"
TASK_NOT_READY = "task_not_ready"
TASK_EXPIRED = "task_expired"
UNSUPPORTED_PARAMETER = "unsupported_parameter"
PLAN_FEATURE = "plan_feature_unavailable"
ADMIN_DISABLED = "admin_disabled"
METRICS_DISABLED = "metrics_disabled"
"""`GET /metrics` with no token configured to check (SORAPI_METRICS_TOKEN or SORAPI_ADMIN_TOKEN) (403)."""
INSUFFICIENT_SCOPE = "insufficient_scope"
NO_CALLBACK_URL = "no_callback_url"
REDELIVERIES_IN_FLIGHT = "redeliveries_in_flight"
"""A task already has `SORAPI_WEBHOOK_REDELIVERIES_PER_TASK` redeliveries under way (409): wait for one to end."""
DUPLICATE_HEADER = "duplicate_header"
TOO_MANY_STREAMS = "too_many_streams"
"""The key already holds `SORAPI_STREAMS_PER_KEY` open event streams on this API process (429)."""
SOURCE_NOT_READY = "source_not_ready"
"""An extension's source task is still queued or running: extend it once it succeeded (409)."""
SOURCE_FAILED = "source_failed"
"""An extension's source task failed or was cancelled: it has no video to continue (409)."""
SOURCE_EXPIRED = "source_expired"
"""An extension's source task's video was deleted (retention ended, or DELETE) (409)."""
LEDGER_CONFLICT = "ledger_conflict"
"""A money step contradicts the ledger (a capture after someone else released the hold): retrying cannot help."""

TASK_MESSAGES = {
    INSUFFICIENT_CREDITS: "the account did not have enough credits for this task; nothing was charged",
    RENDER_FAILED: "the video could not be rendered; nothing was charged. Try again, or try a lower resolution "
    "or a shorter duration",
    UPLOAD_FAILED: "the video was rendered but could not be stored; nothing was charged",
    TIMEOUT: "the render took too long or its worker stopped responding; nothing was charged",
    VALIDATION_ERROR: "the renderer refused the task's parameters; nothing was charged",
    QUEUE_TIMEOUT: "the task did not start within max_queue_seconds; nothing was charged",
    CANCELLED: "the task was cancelled; nothing was charged",
    LEDGER_CONFLICT: "the task's credit hold had already been settled elsewhere; nothing more was charged",
    SERVICE_UNAVAILABLE: "the orchestrator was unavailable; nothing was charged",
    SOURCE_EXPIRED: "the video this task extends was deleted before its render could start; nothing was charged",
    INTERNAL_ERROR: "an internal error ended the task; nothing was charged",
}
"""The only text a task's `error_message` (and its webhooks) carries: fixed per code, so no exception
text, host name or path reaches a customer. The details go to the logs, bound to the task id."""


def task_message(code: str) -> str:
    """The customer-safe message for a task's end code (unknown codes read as an internal error)."""
    return TASK_MESSAGES.get(code, TASK_MESSAGES[INTERNAL_ERROR])


class ApiError(Exception):
    """An error with an HTTP status, a stable code and optional field-level details."""

    status_code = 400
    code = VALIDATION_ERROR

    def __init__(
        self,
        message: str,
        *,
        details: list[dict[str, Any]] | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []
        self.headers = headers or {}
        if code is not None:
            self.code = code


class ValidationFailed(ApiError):
    status_code = 422
    code = VALIDATION_ERROR


class Unauthorized(ApiError):
    status_code = 401
    code = UNAUTHORIZED


class NotFound(ApiError):
    status_code = 404
    code = NOT_FOUND


class InsufficientCredits(ApiError):
    status_code = 402
    code = INSUFFICIENT_CREDITS


class SpendLimitReached(InsufficientCredits):
    """A monthly spend cap refuses the hold; an `InsufficientCredits`, so whoever handles one handles both."""

    code = SPEND_LIMIT_REACHED


class IdempotencyKeyReused(ApiError):
    status_code = 422
    code = IDEMPOTENCY_KEY_REUSED


class ServiceUnavailable(ApiError):
    status_code = 503
    code = SERVICE_UNAVAILABLE


class RateLimited(ApiError):
    status_code = 429
    code = RATE_LIMITED


class Conflict(ApiError):
    """The task exists but is not in a state that allows this (e.g. content of a running task)."""

    status_code = 409
    code = TASK_NOT_READY


class Gone(ApiError):
    status_code = 410
    code = TASK_EXPIRED


class Forbidden(ApiError):
    """The key is valid but lacks the scope this endpoint needs (e.g. `admin`)."""

    status_code = 403
    code = INSUFFICIENT_SCOPE


class DuplicateHeader(ApiError):
    """A header that names the caller (`Authorization`) was sent more than once: ambiguous, so refused."""

    status_code = 400
    code = DUPLICATE_HEADER


class TaskNotCancellable(Conflict):
    """Only a queued or running task can be cancelled; a finished one keeps its outcome."""

    code = TASK_NOT_CANCELLABLE
