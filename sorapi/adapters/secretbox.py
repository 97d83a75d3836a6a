"""Encryption at rest for per-account secrets (webhook signing secrets).

AES-256-GCM under the server key `SORAPI_SECRET_KEY` (versioned: see sorapi.adapters.keyring; retired keys
in `SORAPI_SECRET_KEY_PREVIOUS` still open what they sealed). The row's owner (the account id) is
bound in as associated data, so a ciphertext copied onto another account's row does not decrypt.
When no server key is configured (development), one is created once in the data directory and
every process of the stack shares it; that is logged as a warning.
"""

from __future__ import annotations

import base64
import os
import secrets
import time
from pathlib import Path

import structlog
from cryptography.exceptions import InvalidTag

from sorapi.adapters.keyring import Keyring
from sorapi.adapters.settings import Settings, split_list

log = structlog.get_logger()

LEGACY, VERSION = "v1", "v2"
"""v1: `v1.<nonce+ciphertext>`, before key ids; v2: `v2.<key id>.<nonce+ciphertext>`."""
PURPOSE = b"sorapi secretbox v1"
"""HKDF info of the secret box; unchanged since v1 so that v1 values still open."""
DEV_KEY_FILE = "secret-key"


class SecretUnreadable(Exception):
    """A stored secret does not decrypt: the server key changed or the row was tampered with."""


class SecretBox:
    def __init__(self, server_key: str, previous: list[str] | None = None) -> None:
        if not server_key:
            raise ValueError("the server key must not be empty")
        self._keys = Keyring.build(server_key, previous or [], PURPOSE)

    def seal(self, plaintext: str, owner: str) -> str:
        nonce = secrets.token_bytes(12)
        sealed = self._keys.current.encrypt(nonce, plaintext.encode(), owner.encode())
        return f"{VERSION}.{self._keys.current_id}.{base64.urlsafe_b64encode(nonce + sealed).decode()}"

    def open(self, token: str, owner: str) -> str:
        version, _, rest = token.partition(".")
        if version == VERSION:
            key_id, _, data = rest.partition(".")
            aead = self._keys.get(key_id)
            if aead is None:
                raise SecretUnreadable(
                    f"a stored secret was sealed with key {key_id!r}, which is neither SORAPI_SECRET_KEY "
                    "nor in SORAPI_SECRET_KEY_PREVIOUS"
                )
            candidates = [aead]
        elif version == LEGACY:
            data, candidates = rest, list(self._keys.aeads.values())
        else:
            raise SecretUnreadable(f"unknown secret format {version!r}")
        raw = base64.urlsafe_b64decode(data)
        for aead in candidates:
            try:
                return aead.decrypt(raw[:12], raw[12:], owner.encode()).decode()
            except InvalidTag:
                continue
        raise SecretUnreadable("a stored secret does not decrypt: was SORAPI_SECRET_KEY changed?")

    def is_current(self, token: str) -> bool:
        """Whether `token` is sealed with the current key (else `reseal` moves it there)."""
        version, _, rest = token.partition(".")
        return version == VERSION and rest.partition(".")[0] == self._keys.current_id

    def reseal(self, token: str, owner: str) -> str:
        return token if self.is_current(token) else self.seal(self.open(token, owner), owner)


def server_key(settings: Settings) -> str:
    """SORAPI_SECRET_KEY, else a development key kept in `<data_dir>/secret-key` (created once)."""
    return settings.secret_key or dev_key(settings, DEV_KEY_FILE, "SORAPI_SECRET_KEY")


def dev_key(settings: Settings, file_name: str, variable: str) -> str:
    """A development key kept in `<data_dir>/<file_name>`, created once and shared by the stack."""
    path = Path(settings.data_dir).resolve() / file_name
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
    log.warning(f"{variable} is not set: using the development key file; set it in production", path=str(path))
    return key


def make_secret_box(settings: Settings) -> SecretBox:
    return SecretBox(server_key(settings), split_list(settings.secret_key_previous))
