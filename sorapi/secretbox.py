"""Encryption at rest for per-account secrets (webhook signing secrets).

AES-256-GCM with a key derived (HKDF-SHA256) from the server key `SORAPI_SECRET_KEY`. The row's
owner (the account id) is bound in as associated data, so a ciphertext copied onto another
account's row does not decrypt. When no server key is configured (development), one is created
once in the data directory and every process of the stack shares it; that is logged as a warning.
"""

from __future__ import annotations

import base64
import os
import secrets
import time
from pathlib import Path

import structlog
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from sorapi.settings import Settings

log = structlog.get_logger()

VERSION = "v1"
DEV_KEY_FILE = "secret-key"


class SecretUnreadable(Exception):
    """A stored secret does not decrypt: the server key changed or the row was tampered with."""


class SecretBox:
    def __init__(self, server_key: str) -> None:
        if not server_key:
            raise ValueError("the server key must not be empty")
        self._aead = AESGCM(
            HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"sorapi secretbox v1").derive(
                server_key.encode()
            )
        )

    def seal(self, plaintext: str, owner: str) -> str:
        nonce = secrets.token_bytes(12)
        sealed = self._aead.encrypt(nonce, plaintext.encode(), owner.encode())
        return f"{VERSION}.{base64.urlsafe_b64encode(nonce + sealed).decode()}"

    def open(self, token: str, owner: str) -> str:
        version, _, data = token.partition(".")
        if version != VERSION:
            raise SecretUnreadable(f"unknown secret format {version!r}")
        raw = base64.urlsafe_b64decode(data)
        try:
            return self._aead.decrypt(raw[:12], raw[12:], owner.encode()).decode()
        except InvalidTag:
            raise SecretUnreadable("a stored secret does not decrypt: was SORAPI_SECRET_KEY changed?") from None


def server_key(settings: Settings) -> str:
    """SORAPI_SECRET_KEY, else a development key kept in `<data_dir>/secret-key` (created once)."""
    if settings.secret_key:
        return settings.secret_key
    path = Path(settings.data_dir).resolve() / DEV_KEY_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(32))
    key = path.read_text().strip()
    if not key:  # another process created the file and has not written it yet
        time.sleep(0.2)
        key = path.read_text().strip()
    log.warning("SORAPI_SECRET_KEY is not set: using the development key file; set it in production", path=str(path))
    return key


def make_secret_box(settings: Settings) -> SecretBox:
    return SecretBox(server_key(settings))
