"""Webhook secrets and signatures: the seed's `X-Signature` and Standard Webhooks, from one secret.

An account's secret is shown to its owner as `whsec_<base64 of 32 random bytes>`. That one
string is all a receiver needs:
- `X-Signature` = hex HMAC-SHA256 of the raw body, keyed with the secret string as UTF-8 bytes
  (exactly what the seed's `verifySora2Webhook(payload, signature, secret)` computes);
- `webhook-signature` = `v1,` + base64 HMAC-SHA256 of `{webhook-id}.{webhook-timestamp}.{body}`,
  keyed with the base64-decoded part after `whsec_` (the Standard Webhooks scheme that the
  `standardwebhooks` package and `openai`'s `client.webhooks.unwrap` verify).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets

SECRET_PREFIX = "whsec_"
RESERVED_PREFIXES = (
    "webhook-",
    "x-signature",
    "content-",
    "host",
    "user-agent",
    "authorization",
    "transfer-encoding",
    "connection",
    "idempotency-key",
)
"""Header names (by prefix, case-insensitive) that SorAPI sets and `callback_headers` may not."""
HEADER_NAME = "^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}$"
"""A callback header name: an RFC 9110 token (the schema's `pattern` of `callback_headers` names)."""
_HEADER_NAME = re.compile(HEADER_NAME.strip("^$"))
"""Matched whole (`fullmatch`): `$` would also accept a trailing newline."""
_HEADER_VALUE = re.compile(r"[\x20-\x7e]*")
"""Printable ASCII: no control characters to split a request, nothing the HTTP layer would reject."""


def valid_header_name(name: str) -> bool:
    return _HEADER_NAME.fullmatch(name) is not None


def valid_header_value(value: str) -> bool:
    return _HEADER_VALUE.fullmatch(value) is not None


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def standard_key(secret: str) -> bytes:
    """The HMAC key Standard Webhooks derives from a `whsec_` secret."""
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def x_signature(body: bytes, secret: str) -> str:
    """The seed's signature: hex HMAC-SHA256 of the exact body, keyed by the secret string."""
    return hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def standard_signature(body: bytes, secret: str, msg_id: str, timestamp: int) -> str:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(standard_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signed_headers(
    body: bytes, msg_id: str, timestamp: int, current: str, previous: str | None = None
) -> dict[str, str]:
    """Signature headers for one delivery; during a rotation overlap both secrets sign."""
    signatures = [standard_signature(body, current, msg_id, timestamp)]
    headers = {"webhook-id": msg_id, "webhook-timestamp": str(timestamp), "X-Signature": x_signature(body, current)}
    if previous is not None:
        signatures.append(standard_signature(body, previous, msg_id, timestamp))
        headers["X-Signature-Previous"] = x_signature(body, previous)
    headers["webhook-signature"] = " ".join(signatures)
    return headers


def is_reserved_header(name: str) -> bool:
    return name.lower().startswith(RESERVED_PREFIXES)


def merge_headers(custom: dict[str, str] | None, ours: dict[str, str]) -> dict[str, str]:
    """The task's `callback_headers` plus ours; a custom header can never replace or shadow ours.

    Reserved or malformed custom headers are dropped here even though task creation already
    rejects them: rows written by older versions or edited by hand must not slip through.
    """
    merged = {
        name: value
        for name, value in (custom or {}).items()
        if valid_header_name(name) and not is_reserved_header(name) and valid_header_value(value)
    }
    ours_lower = {k.lower() for k in ours}
    merged = {k: v for k, v in merged.items() if k.lower() not in ours_lower}
    return {**merged, **ours}
