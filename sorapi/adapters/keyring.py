"""Versioned server keys: the current key seals, earlier ones still open, so a key can be rotated.

A key setting (`SORAPI_SECRET_KEY`, `SORAPI_PAYLOAD_KEY`) names the current key; its `_PREVIOUS`
twin lists retired keys, comma-separated. Every sealed value carries the id of the key that sealed
it, so opening never guesses. Rotation: set the new key, move the old one to `_PREVIOUS`, re-seal
what is stored (`sorapi admin reseal-secrets`; Temporal payloads age out with their histories),
then drop the old key.

Each use derives its own AES-256-GCM key (HKDF-SHA256, `purpose` as the info), so one server key
never encrypts two kinds of data under the same derived key.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

KEY_ID_CHARS = 8


def _derive(server_key: str, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(server_key.encode())


@dataclass(frozen=True)
class Keyring:
    """AEADs by key id for one purpose; `current_id` seals."""

    current_id: str
    aeads: dict[str, AESGCM]

    @classmethod
    def build(cls, current: str, previous: list[str], purpose: bytes) -> Keyring:
        if not current:
            raise ValueError("the current key must not be empty")
        aeads: dict[str, AESGCM] = {}
        current_id = ""
        for key in [current, *previous]:
            derived = _derive(key, purpose)
            # The id names the derived key, not the server key: safe to store beside the ciphertext.
            key_id = hashlib.sha256(b"sorapi key id\0" + derived).hexdigest()[:KEY_ID_CHARS]
            aeads.setdefault(key_id, AESGCM(derived))
            current_id = current_id or key_id
        return cls(current_id=current_id, aeads=aeads)

    @property
    def current(self) -> AESGCM:
        return self.aeads[self.current_id]

    def get(self, key_id: str) -> AESGCM | None:
        return self.aeads.get(key_id)
