"""A msgspec payload converter for Temporal, so workflow and activity structs cross as JSON.

It takes the `json/plain` encoding (the SDK has no msgspec support of its own), so payloads stay
readable in the Temporal UI and compatible with other SDKs, and decodes into the annotated types.
"""

from __future__ import annotations

from typing import Any

import msgspec
import temporalio.api.common.v1
from temporalio.converter import (
    CompositePayloadConverter,
    DataConverter,
    DefaultPayloadConverter,
    EncodingPayloadConverter,
)

_ENCODING = "json/plain"
_encoder = msgspec.json.Encoder()


class MsgspecJSONPayloadConverter(EncodingPayloadConverter):
    @property
    def encoding(self) -> str:
        return _ENCODING

    def to_payload(self, value: Any) -> temporalio.api.common.v1.Payload | None:
        try:
            data = _encoder.encode(value)
        except (TypeError, msgspec.EncodeError):
            return None
        return temporalio.api.common.v1.Payload(metadata={"encoding": _ENCODING.encode()}, data=data)

    def from_payload(self, payload: temporalio.api.common.v1.Payload, type_hint: type | None = None) -> Any:
        if type_hint is None or type_hint is Any:
            return msgspec.json.decode(payload.data)
        return msgspec.json.decode(payload.data, type=type_hint)


class MsgspecPayloadConverter(CompositePayloadConverter):
    """The SDK's default converters with `json/plain` handled by msgspec."""

    def __init__(self) -> None:
        super().__init__(
            *(
                MsgspecJSONPayloadConverter() if c.encoding == _ENCODING else c
                for c in DefaultPayloadConverter.default_encoding_payload_converters
            )
        )


DATA_CONVERTER = DataConverter(payload_converter_class=MsgspecPayloadConverter)
