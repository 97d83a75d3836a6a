"""Encrypt every Temporal payload before it leaves the process: prompts never rest in clear in histories.

AES-256-GCM under `SORAPI_PAYLOAD_KEY` (versioned: sorapi.adapters.keyring). An encrypted payload keeps
only its encoding (`binary/encrypted`) and key id in the clear; the whole original payload, its
metadata included, is the ciphertext. Payloads without that encoding pass through on decode, so
histories written before encryption was on still replay. Operators read decoded payloads through
the codec endpoint (`/codec`, api.codec), from the Temporal UI or `temporal --codec-endpoint`.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Sequence

from temporalio.api.common.v1 import Payload
from temporalio.converter import DataConverter, PayloadCodec

from sorapi.adapters.converter import DATA_CONVERTER
from sorapi.adapters.keyring import Keyring
from sorapi.adapters.secretbox import dev_key
from sorapi.adapters.settings import Settings, split_list

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"
PURPOSE = b"sorapi temporal payloads v1"
DEV_KEY_FILE = "payload-key"


class PayloadUnreadable(ValueError):
    """An encrypted payload whose key is not configured, or that was tampered with."""


class EncryptionCodec(PayloadCodec):
    def __init__(self, keys: Keyring) -> None:
        self._keys = keys

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self._seal(payload) for payload in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self._open(p) if p.metadata.get("encoding") == ENCODING else p for p in payloads]

    def _seal(self, payload: Payload) -> Payload:
        nonce = secrets.token_bytes(12)
        key_id = self._keys.current_id
        sealed = self._keys.current.encrypt(nonce, payload.SerializeToString(), key_id.encode())
        return Payload(metadata={"encoding": ENCODING, KEY_ID: key_id.encode()}, data=nonce + sealed)

    def _open(self, payload: Payload) -> Payload:
        key_id = payload.metadata.get(KEY_ID, b"").decode()
        aead = self._keys.get(key_id)
        if aead is None:
            raise PayloadUnreadable(
                f"payload encrypted with key {key_id!r}, which is neither SORAPI_PAYLOAD_KEY "
                "nor in SORAPI_PAYLOAD_KEY_PREVIOUS"
            )
        try:
            return Payload.FromString(aead.decrypt(payload.data[:12], payload.data[12:], key_id.encode()))
        except Exception as exc:  # InvalidTag, or a plaintext that is not a payload
            raise PayloadUnreadable(f"payload with key id {key_id!r} does not decrypt") from exc


def payload_keys(settings: Settings) -> Keyring:
    current = settings.payload_key or dev_key(settings, DEV_KEY_FILE, "SORAPI_PAYLOAD_KEY")
    return Keyring.build(current, split_list(settings.payload_key_previous), PURPOSE)


def data_converter(settings: Settings) -> DataConverter:
    """The project's msgspec converter with every payload encrypted under the payload key."""
    return dataclasses.replace(DATA_CONVERTER, payload_codec=EncryptionCodec(payload_keys(settings)))
