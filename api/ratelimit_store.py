"""Token-bucket state: in-process by default, Redis when several API replicas share one budget.

A bucket holds up to `capacity` tokens and refills continuously at `rate_per_s`; a request
takes one. Both stores implement the same arithmetic; the Redis one runs it atomically in a
Lua script on the server's clock, so replicas with skewed clocks still agree.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Protocol

import structlog

log = structlog.get_logger()


@dataclass(frozen=True)
class Take:
    allowed: bool
    tokens: float
    """Tokens left after this request (fractional: the bucket refills smoothly)."""
    retry_after_s: float
    """Seconds until one more request would be allowed (0 when there is a token now)."""
    reset_s: float
    """Seconds until the bucket is full again."""


def _outcome(allowed: bool, tokens: float, rate_per_s: float, capacity: int) -> Take:
    return Take(
        allowed=allowed,
        tokens=tokens,
        retry_after_s=max(0.0, (1 - tokens) / rate_per_s),
        reset_s=max(0.0, (capacity - tokens) / rate_per_s),
    )


class BucketStore(Protocol):
    async def take(self, key: str, rate_per_s: float, capacity: int, cost: int = 1, need: int | None = None) -> Take:
        """Take `cost` tokens if there are `need` (default: `cost`).

        `cost=-1` gives one back (never above `capacity`). With `need < cost` the bucket may go below zero: a debt paid
        back at `rate_per_s` before the next request (a batch larger than the burst).
        """
        ...

    async def close(self) -> None: ...


class MemoryBucketStore:
    """One process's buckets; idle (full) buckets are dropped so memory stays bounded."""

    PRUNE_EVERY = 10_000

    def __init__(self) -> None:
        self._buckets: dict[str, tuple[float, float]] = {}
        self._ops = 0

    async def take(self, key: str, rate_per_s: float, capacity: int, cost: int = 1, need: int | None = None) -> Take:
        now = time.monotonic()
        tokens, updated = self._buckets.get(key, (float(capacity), now))
        tokens = min(float(capacity), tokens + (now - updated) * rate_per_s)
        allowed = tokens >= (cost if need is None else need)
        if allowed:
            tokens = min(float(capacity), tokens - cost)
        self._buckets[key] = (tokens, now)
        self._ops += 1
        if self._ops % self.PRUNE_EVERY == 0:
            self._prune(now, rate_per_s, capacity)
        return _outcome(allowed, tokens, rate_per_s, capacity)

    def _prune(self, now: float, rate_per_s: float, capacity: int) -> None:
        self._buckets = {k: v for k, v in self._buckets.items() if v[0] + (now - v[1]) * rate_per_s < capacity}

    async def close(self) -> None:
        self._buckets.clear()


_TAKE_SCRIPT = """
local rate = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local need = tonumber(ARGV[4])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
  tokens = capacity
  ts = now
end
tokens = math.min(capacity, tokens + math.max(0, now - ts) * rate)
local allowed = 0
if tokens >= need then
  tokens = math.min(capacity, tokens - cost)
  allowed = 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil((capacity - tokens) / rate * 1000) + 1000)
return {allowed, tostring(tokens)}
"""


class RedisBucketStore:
    """Buckets shared by every API replica pointed at the same Redis.

    If Redis is unreachable the request is let through (logged): a limiter outage should not
    become an API outage.
    """

    PREFIX = "sorapi:ratelimit:"

    def __init__(self, url: str) -> None:
        import redis.asyncio as redis

        self._redis = redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)
        self._script = self._redis.register_script(_TAKE_SCRIPT)

    async def take(self, key: str, rate_per_s: float, capacity: int, cost: int = 1, need: int | None = None) -> Take:
        try:
            allowed, tokens = await self._script(
                keys=[self.PREFIX + key], args=[rate_per_s, capacity, cost, cost if need is None else need]
            )
        except Exception as exc:
            log.warning("rate limit store unavailable; allowing request", error=repr(exc))
            return Take(allowed=True, tokens=float(capacity), retry_after_s=0.0, reset_s=0.0)
        return _outcome(bool(int(allowed)), float(tokens), rate_per_s, capacity)

    async def close(self) -> None:
        await self._redis.aclose()


def make_store(redis_url: str) -> BucketStore:
    return RedisBucketStore(redis_url) if redis_url else MemoryBucketStore()


def whole_seconds(seconds: float) -> int:
    """Header values are whole seconds, rounded up so a client that waits them is never early."""
    return max(0, math.ceil(seconds - 1e-9))
