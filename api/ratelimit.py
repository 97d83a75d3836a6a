"""Per-API-key rate limits as token buckets, announced with the IETF RateLimit headers.

Handlers opt in by name (`opt=RATE_GENERATE`, `RATE_STATUS`, `RATE_DELETE`, `RATE_REDELIVER`; the
admin controller `RATE_ADMIN`); the middleware takes one
token from the caller's bucket for that policy before the handler runs, answers 429 with
`Retry-After` when it is empty, and stamps `RateLimit-Policy` / `RateLimit`
(draft-ietf-httpapi-ratelimit-headers) on every response of a limited route.

Litestar's own RateLimitConfig is a fixed window shared by all routes; "30/min bursting to 60"
needs a bucket per (key, policy), so this is its own middleware. Generate requests are also
where the maintenance switch answers 503 — before a token is spent.

A key this process has not yet seen authenticate first passes its client address's
`unauthenticated` bucket: made-up keys never get a fresh bucket (and a DB lookup) each, so a flood
of them gets 429. The token is given back once the key proves valid; a refused key keeps it spent.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field

from litestar import Litestar
from litestar.datastructures import MutableScopeHeaders
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.status_codes import HTTP_401_UNAUTHORIZED
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from sorapi.adapters.settings import Settings
from sorapi.api.auth import AUTHENTICATED, authorization_header
from sorapi.api.ratelimit_store import BucketStore, Take, make_store, whole_seconds
from sorapi.contracts import errors

GENERATE = "generate"
STATUS = "status"
DELETE = "delete"
REDELIVER = "redeliver"
ADMIN = "admin"
UNAUTHENTICATED = "unauthenticated"
RATE_GENERATE = {"rate_limit": GENERATE}
"""Handler `opt` for endpoints that create tasks (POST /api/generate, /v1/videos, remix)."""
RATE_STATUS = {"rate_limit": STATUS}
"""Handler `opt` for task reads (GET /api/status, /api/tasks, /v1/videos...)."""
RATE_DELETE = {"rate_limit": DELETE}
"""Handler `opt` for deleting a task's assets (DELETE /v1/videos/{id}): S3 work, not a read."""
RATE_REDELIVER = {"rate_limit": REDELIVER}
"""Handler `opt` for webhook redelivery: each one starts a delivery workflow of up to 6 attempts."""
RATE_ADMIN = {"rate_limit": ADMIN}
"""Controller `opt` of `/admin/*`, metered per admin token."""


@dataclass(frozen=True)
class Policy:
    name: str
    per_minute: float
    burst: int
    caller: str = "API key"
    """Whose bucket it is, for the 429's message."""

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
        return f'"{self.name}";r={max(0, int(take.tokens))};t={whole_seconds(take.reset_s)}'  # a debt shows as 0


def policies(settings: Settings) -> dict[str, Policy]:
    return {
        GENERATE: Policy(GENERATE, settings.rate_generate_per_min, settings.rate_generate_burst),
        STATUS: Policy(STATUS, settings.rate_status_per_min, settings.rate_status_burst),
        DELETE: Policy(DELETE, settings.rate_delete_per_min, settings.rate_delete_burst),
        REDELIVER: Policy(REDELIVER, settings.rate_redeliver_per_min, settings.rate_redeliver_burst),
        ADMIN: Policy(ADMIN, settings.rate_admin_per_min, settings.rate_admin_burst, caller="admin token"),
        UNAUTHENTICATED: Policy(
            UNAUTHENTICATED, settings.rate_unauthenticated_per_min, settings.rate_unauthenticated_burst
        ),
    }


class VerifiedKeys:
    """Fingerprints of keys that authenticated in this process: they skip the per-address gate.

    Bounded, least recently used forgotten first; a forgotten key merely passes the gate once more.
    """

    LIMIT = 100_000

    def __init__(self) -> None:
        self._seen: OrderedDict[str, None] = OrderedDict()

    def __contains__(self, fingerprint: str) -> bool:
        return fingerprint in self._seen

    def add(self, fingerprint: str) -> None:
        self._seen[fingerprint] = None
        self._seen.move_to_end(fingerprint)
        if len(self._seen) > self.LIMIT:
            self._seen.popitem(last=False)

    def discard(self, fingerprint: str) -> None:
        self._seen.pop(fingerprint, None)


@dataclass
class Limiter:
    settings: Settings
    store: BucketStore
    policies: dict[str, Policy]
    verified: VerifiedKeys = field(default_factory=VerifiedKeys)

    async def take(self, policy: Policy, bucket: str, cost: int = 1, need: int | None = None) -> Take:
        return await self.store.take(f"{policy.name}:{bucket}", policy.rate_per_s, policy.burst, cost, need)


def key_fingerprint(authorization: str) -> str | None:
    """Buckets are keyed by a hash of the presented Bearer key (never the key itself)."""
    scheme, _, key = authorization.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        return None
    return hashlib.sha256(key.strip().encode()).hexdigest()[:32]


def lifespan(settings: Settings) -> Callable[[Litestar], AbstractAsyncContextManager[None]]:
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
        code=errors.MAINTENANCE,
        headers={"Retry-After": str(settings.maintenance_retry_after_s)},
    )


def _refused(policy: Policy, take: Take, message: str) -> errors.RateLimited:
    return errors.RateLimited(
        f"{message}; retry after {whole_seconds(take.retry_after_s)} s",
        headers={
            "Retry-After": str(max(1, whole_seconds(take.retry_after_s))),
            "RateLimit-Policy": policy.policy_header(),
            "RateLimit": policy.state_header(take),
        },
    )


def client_address(scope: Scope) -> str:
    client = scope.get("client")
    return client[0] if client else "unknown"


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
        caller = key_fingerprint(authorization_header(scope["headers"]))
        if caller is None:  # no key: authentication answers 401 without a lookup, nothing to meter
            await next_app(scope, receive, send)
            return
        gate = None if caller in limiter.verified else await _pass_gate(limiter, scope)
        policy = limiter.policies[name]
        take = await limiter.take(policy, caller)
        if not take.allowed:
            await _give_back(limiter, gate)  # nothing was looked up: not a failed authentication
            raise _refused(
                policy,
                take,
                f"rate limit exceeded: {policy.name} allows {policy.per_minute:g} requests "
                f"per minute per {policy.caller}, bursting to {policy.burst}",
            )
        answered: list[int] = []
        try:
            await next_app(scope, receive, _announcing(scope, send, policy, take, answered))
        finally:
            await _settle(limiter, caller, gate, scope, answered[0] if answered else None)


LATEST_TAKE = "sorapi.ratelimit.latest"
"""Scope state: the bucket's state after `charge_more`, for the response's `RateLimit` header."""


async def charge_more(scope: Scope, tokens: int, what: str) -> None:
    """Take `tokens` more from the caller's bucket of the route's policy, after the request's own token.

    `POST /api/batches` takes one per item. A 429 when the bucket does not hold them, and the request's own token is
    given back, so a refused request costs nothing, as at the door.

    A charge larger than the bucket can hold (a batch of 100 against a burst of 60) is taken from a
    full bucket and leaves it in debt: the key's next request of the policy waits until it is paid back
    at the policy's rate. So the sustained rate holds for every item, and no batch is refused forever.
    """
    limiter: Limiter | None = getattr(scope["app"].state, "limiter", None)
    handler = scope.get("route_handler")
    name = handler.opt.get("rate_limit") if handler is not None else None
    caller = key_fingerprint(authorization_header(scope["headers"]))
    if limiter is None or name is None or caller is None or tokens <= 0:
        return
    policy = limiter.policies[name]
    need = max(0, min(tokens, policy.burst - 1))  # the request itself took one already
    take = await limiter.take(policy, caller, cost=tokens, need=need)
    if not take.allowed:
        given_back = await limiter.take(policy, caller, cost=-1)
        scope.setdefault("state", {})[LATEST_TAKE] = given_back
        wait_s = whole_seconds(max(1.0, (need + 1 - given_back.tokens) / policy.rate_per_s))
        raise errors.RateLimited(
            f"rate limit exceeded: {what} costs {tokens + 1} {policy.name} tokens (one per item and one for the "
            f"request); {policy.name} allows {policy.per_minute:g} per minute per {policy.caller}, bursting to "
            f"{policy.burst}; retry after {wait_s} s",
            headers={
                "Retry-After": str(wait_s),
                "RateLimit-Policy": policy.policy_header(),
                "RateLimit": policy.state_header(given_back),
            },
        )
    scope.setdefault("state", {})[LATEST_TAKE] = take


async def _pass_gate(limiter: Limiter, scope: Scope) -> str:
    """Spend a token of the client address's `unauthenticated` bucket (429 when empty); returns the address."""
    policy, address = limiter.policies[UNAUTHENTICATED], client_address(scope)
    take = await limiter.take(policy, address)
    if not take.allowed:
        raise _refused(
            policy,
            take,
            f"too many requests with unknown or invalid API keys from this address "
            f"(at most {policy.per_minute:g} per minute, bursting to {policy.burst})",
        )
    return address


async def _give_back(limiter: Limiter, gate: str | None) -> None:
    if gate is not None:
        await limiter.take(limiter.policies[UNAUTHENTICATED], gate, cost=-1)


async def _settle(limiter: Limiter, caller: str, gate: str | None, scope: Scope, status: int | None) -> None:
    """A key that authenticated is remembered and its gate token given back.

    A refused key (401) is forgotten and keeps it spent. A request that could not tell (the database was down: 503)
    gives the token back and changes nothing, so an outage never turns valid keys into 429s.
    """
    if scope.get("state", {}).get(AUTHENTICATED):
        limiter.verified.add(caller)
        await _give_back(limiter, gate)
    elif status == HTTP_401_UNAUTHORIZED:
        limiter.verified.discard(caller)
    else:
        await _give_back(limiter, gate)


def _announcing(scope: Scope, send: Send, policy: Policy, take: Take, answered: list[int]) -> Send:
    """`send`, stamping the policy and the bucket's state on the response.

    The bucket's state is as `charge_more` left it, if the handler charged more; the response's status goes to
    `answered`.
    """

    async def send_with_headers(message: Message) -> None:
        if message["type"] == "http.response.start":
            latest = scope.get("state", {}).get(LATEST_TAKE, take)
            announced = {"RateLimit-Policy": policy.policy_header(), "RateLimit": policy.state_header(latest)}
            answered.append(message["status"])
            message.setdefault("headers", [])
            response_headers = MutableScopeHeaders.from_message(message)
            for header, value in announced.items():
                response_headers[header] = value
        await send(message)

    return send_with_headers
