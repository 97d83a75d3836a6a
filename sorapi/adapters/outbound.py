"""One HTTP POST to a checked `Target`, connecting to its pinned address.

httpcore (httpx's transport layer) lets us supply the network backend: ours ignores the host
name the pool asks for and dials the address `netguard` approved, while TLS still sends SNI and
verifies the certificate for the name. Redirects are never followed (httpcore does not follow
them) and no proxy environment variables are read.
"""

from __future__ import annotations

import asyncio
import ssl
import time
import typing
from dataclasses import dataclass

import httpcore

from sorapi.adapters.netguard import Target

MAX_RESPONSE_BYTES = 4096
"""Only the start of a receiver's answer is kept (for the delivery log); the rest is discarded."""


class PinnedBackend(httpcore.AsyncNetworkBackend):
    """Connects every TCP request for `host` to `ip`; refuses any other host."""

    def __init__(self, host: str, ip: str) -> None:
        self._host, self._ip = host, ip
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[typing.Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        if host.strip("[]") != self._host:
            raise httpcore.ConnectError(f"refusing to connect to {host!r}: only {self._host!r} was checked")
        return await self._inner.connect_tcp(
            self._ip, port, timeout=timeout, local_address=local_address, socket_options=socket_options
        )

    async def connect_unix_socket(self, *args: typing.Any, **kwargs: typing.Any) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are not allowed")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


@dataclass(frozen=True)
class PostResult:
    status_code: int | None
    headers: dict[str, str]
    latency_ms: int
    error: str | None = None
    """What the customer's delivery log shows: one of a few fixed phrases."""
    detail: str | None = None
    """The underlying exception, for the operator's logs."""


def pinned_pool(
    target: Target, timeout_s: float, ssl_context: ssl.SSLContext | None = None
) -> tuple[httpcore.AsyncConnectionPool, dict[str, float]]:
    """One connection to the address netguard checked, no retries, and `timeout_s` for each phase of the request.

    No second DNS answer can redirect the connection.
    """
    pool = httpcore.AsyncConnectionPool(
        ssl_context=ssl_context or httpcore.default_ssl_context(),
        network_backend=PinnedBackend(target.host, target.ip),
        max_connections=1,
        retries=0,
    )
    return pool, {"connect": timeout_s, "read": timeout_s, "write": timeout_s, "pool": timeout_s}


async def post(
    target: Target,
    body: bytes,
    headers: dict[str, str],
    *,
    timeout_s: float = 15.0,
    ssl_context: ssl.SSLContext | None = None,
) -> PostResult:
    """POST `body` once; every failure comes back as `error`, never as an exception.

    Each attempt is thus recorded as failed and retried on schedule (an exception would fail the activity instead).
    """
    sent = {**headers, "Host": target.host_header, "Content-Length": str(len(body))}
    pool, per_phase = pinned_pool(target, timeout_s, ssl_context)
    started = time.monotonic()
    try:
        async with (
            pool,
            asyncio.timeout(timeout_s),
            pool.stream(
                "POST", target.url, headers=list(sent.items()), content=body, extensions={"timeout": per_phase}
            ) as response,
        ):
            read = 0
            async for chunk in response.aiter_stream():  # read (a bounded part of) the answer, then drop it
                read += len(chunk)
                if read >= MAX_RESPONSE_BYTES:
                    break
            return PostResult(
                status_code=response.status,
                headers={k.decode("latin-1").lower(): v.decode("latin-1") for k, v in response.headers},
                latency_ms=_ms_since(started),
            )
    except (TimeoutError, httpcore.TimeoutException, httpcore.ConnectError) as exc:
        if isinstance(exc.__cause__ or exc.__context__, ssl.SSLError):  # httpcore wraps a failed handshake
            return _failed(started, TLS_FAILED, exc)
        return _failed(started, f"could not reach the receiver, or it did not answer within {timeout_s:g} s", exc)
    except (httpcore.ProtocolError, httpcore.NetworkError) as exc:
        return _failed(started, "the connection broke before the receiver answered", exc)
    except ssl.SSLError as exc:
        return _failed(started, TLS_FAILED, exc)
    except Exception as exc:
        return _failed(started, "the request could not be sent", exc)


TLS_FAILED = "the TLS handshake with the receiver failed (check its certificate and name)"


def _failed(started: float, error: str, exc: BaseException) -> PostResult:
    """A failed attempt with a fixed, customer-safe `error`.

    Refused, unreachable and silent hosts read alike, so the delivery log cannot be used to scan ports; the exception is
    in `detail`, for the logs only.
    """
    detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return PostResult(None, {}, _ms_since(started), error=error, detail=detail)


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
