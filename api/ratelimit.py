"""Per-API-key rate limits as token buckets, announced with the IETF RateLimit headers.

Handlers opt in by name (`opt=RATE_GENERATE` / `opt=RATE_STATUS`); the middleware takes one
token from the caller's bucket for that policy before the handler runs, answers 429 with
`Retry-After` when it is empty, and stamps `RateLimit-Policy` / `RateLimit`
(draft-ietf-httpapi-ratelimit-headers) on every response of a limited route.

Litestar's own RateLimitConfig is a fixed window shared by all routes; "30/min bursting to 60"
needs a bucket per (key, policy), so this is its own middleware. Generate requests are also
where the maintenance switch answers 503 — before a token is spent.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from litestar import Litestar
from litestar.datastructures import MutableScopeHeaders
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from api.ratelimit_store import BucketStore, Take, make_store, whole_seconds
from sorapi import errors
from sorapi.settings import Settings

GENERATE = "generate"
STATUS = "status"
RATE_GENERATE = {"rate_limit": GENERATE}
"""Handler `opt` for endpoints that create tasks (POST /api/generate, /v1/videos, remix)."""
RATE_STATUS = {"rate_limit": STATUS}
"""Handler `opt` for task reads (GET /api/status, /api/tasks, /v1/videos...)."""


@dataclass(frozen=True)
class Policy:
    name: str
    per_minute: float
    burst: int

    @property
    def rate_per_s(self) -> float:
        return self.per_minute / 60.0

    @property
    def window_s(self) -> int:
        """The time an empty bucket takes to fill: `burst` requests per this window is the sustained rate."""
        return whole_seconds(self.burst / self.rate_per_s)

    def policy_header(self) -> str:
        return f'"{self.name}";q={self.burst};w={self.window_s}'

    def state_header(self, take: Take) -> str:
        return f'"{self.name}";r={int(take.tokens)};t={whole_seconds(take.reset_s)}'


def policies(settings: Settings) -> dict[str, Policy]:
    return {
        GENERATE: Policy(GENERATE, settings.rate_generate_per_min, settings.rate_generate_burst),
        STATUS: Policy(STATUS, settings.rate_status_per_min, settings.rate_status_burst),
    }


@dataclass
class Limiter:
    settings: Settings
    store: BucketStore
    policies: dict[str, Policy]


def key_fingerprint(authorization: str) -> str | None:
    """Buckets are keyed by a hash of the presented Bearer key (never the key itself)."""
    scheme, _, key = authorization.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        return None
    return hashlib.sha256(key.strip().encode()).hexdigest()[:32]


def lifespan(settings: Settings):  # type: ignore[no-untyped-def]
    """A lifespan hook that makes the limiter (and its store connection) once per process."""

    @asynccontextmanager
    async def limiter_lifespan(app: Litestar) -> AsyncIterator[None]:
        store = make_store(settings.redis_url)
        app.state.limiter = Limiter(settings=settings, store=store, policies=policies(settings))
        try:
            yield
        finally:
            await store.close()

    return limiter_lifespan


def _maintenance(settings: Settings) -> errors.ServiceUnavailable:
    return errors.ServiceUnavailable(
        "SorAPI is in a brief maintenance window; retry with the same idempotency_key after Retry-After seconds",
        code=errors.MAINTENANCE, headers={"Retry-After": str(settings.maintenance_retry_after_s)})


class RateLimitMiddleware(ASGIMiddleware):
    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        handler = scope.get("route_handler")
        name = handler.opt.get("rate_limit") if handler is not None else None
        limiter: Limiter | None = getattr(scope["app"].state, "limiter", None)
        if name is None or limiter is None:
            await next_app(scope, receive, send)
            return
        if name == GENERATE and limiter.settings.maintenance:
            raise _maintenance(limiter.settings)
        headers = dict(scope["headers"])
        caller = key_fingerprint(headers.get(b"authorization", b"").decode("latin-1"))
        if caller is None:  # no key: authentication answers 401, nothing to meter
            await next_app(scope, receive, send)
            return
        policy = limiter.policies[name]
        take = await limiter.store.take(f"{name}:{caller}", policy.rate_per_s, policy.burst)
        announced = {"RateLimit-Policy": policy.policy_header(), "RateLimit": policy.state_header(take)}
        if not take.allowed:
            raise errors.RateLimited(
                f"rate limit exceeded: {policy.name} allows {policy.per_minute:g} requests per minute "
                f"per API key, bursting to {policy.burst}; retry after {whole_seconds(take.retry_after_s)} s",
                headers={"Retry-After": str(max(1, whole_seconds(take.retry_after_s))), **announced})

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                response_headers = MutableScopeHeaders.from_message(message)
                for header, value in announced.items():
                    response_headers[header] = value
            await send(message)

        await next_app(scope, receive, send_with_headers)
