"""Fetch a conditioning image from a client's URL, as safely as a webhook is sent.

The URL passes `netguard` (HTTPS, an allowed port, every address public, the checked address
pinned: no DNS rebinding); the GET follows no redirect, reads no proxy setting, and stops reading
past `image_input.MAX_BYTES`. Every failure is `FetchFailed` with a fixed, customer-safe message
(refused, unreachable and silent hosts read alike, so the answer cannot be used to scan ports).
"""

from __future__ import annotations

import asyncio
import ssl

import structlog

from sorapi.adapters import netguard, outbound
from sorapi.domain.image_input import MAX_BYTES

log = structlog.get_logger()

FETCH_TIMEOUT_S = 15.0
"""The whole fetch (connect, TLS, headers, body) must end within this."""


class FetchFailed(ValueError):
    """The image could not be fetched; the message is safe to show the client."""


async def fetch_image(
    url: str,
    *,
    allow_http: bool = False,
    ports: frozenset[int] = netguard.DEFAULT_PORTS,
    timeout_s: float = FETCH_TIMEOUT_S,
    ssl_context: ssl.SSLContext | None = None,
) -> bytes:
    """The body of `GET url`, at most `MAX_BYTES` (+1 read to tell that it is longer)."""
    try:
        target = await netguard.check_url(url, allow_http=allow_http, ports=ports)
    except netguard.Blocked as exc:
        raise FetchFailed(str(exc).replace("callback_url", "the image URL").replace("callbacks", "images")) from None
    except netguard.Unresolvable:
        raise FetchFailed("the image URL's host does not resolve") from None
    pool, per_phase = outbound.pinned_pool(target, timeout_s, ssl_context)
    headers = [("Host", target.host_header), ("Accept", "image/png, image/jpeg, image/webp"), ("User-Agent", "SorAPI")]
    try:
        async with (
            pool,
            asyncio.timeout(timeout_s),
            pool.stream("GET", target.url, headers=headers, extensions={"timeout": per_phase}) as response,
        ):
            if response.status != 200:
                raise FetchFailed(f"the image URL answered HTTP {response.status} (redirects are not followed)")
            body = bytearray()
            async for chunk in response.aiter_stream():
                body.extend(chunk)
                if len(body) > MAX_BYTES:
                    raise FetchFailed(f"the image is larger than {MAX_BYTES} bytes (20 MiB)")
            return bytes(body)
    except FetchFailed:
        raise
    except Exception as exc:  # connect, TLS, protocol, timeout: one answer for all (see the module docstring)
        log.info("image fetch failed", error=f"{type(exc).__name__}: {exc}")
        raise FetchFailed(
            f"the image URL could not be fetched within {timeout_s:g} s (unreachable or no answer)"
        ) from None
