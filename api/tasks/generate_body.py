"""The body of `POST /api/generate`: JSON, or multipart/form-data carrying image files.

JSON is decoded and checked exactly as Litestar would for a `data: GenerateRequest` parameter (the
same 400 for malformed JSON, the same 422 details), so clients see no difference. A multipart form
has the same fields as text parts (numbers as their digits, `audio` as `true` or `false`, `null` for an
optional field not sent;
`callback_headers` and `metadata` as JSON text or `name[KEY]` parts; `webhook_events` as a JSON array
or one part per event) and the image files as the parts `image` (first frame) and `last_frame`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec
from litestar import Request
from litestar.exceptions import ClientException, SerializationException, ValidationException
from litestar.openapi.spec import OpenAPIFormat, OpenAPIMediaType, OpenAPIType, Operation, RequestBody, Schema

from sorapi.api import forms, openapi
from sorapi.api.errors import field_named
from sorapi.api.tasks.image_inputs import NO_UPLOADS, Uploads
from sorapi.contracts import errors
from sorapi.contracts.schemas import GenerateRequest
from sorapi.domain.conditioning import SOURCES

MAX_BODY_BYTES = 48 * 1024 * 1024
"""Two images of 20 MiB and the text fields; a larger body is a 413 before it is read."""
FILE_PARTS = tuple(part for _url, part in SOURCES.values())
OBJECT_FIELDS = ("callback_headers", "metadata")
LIST_FIELDS = ("webhook_events",)
BOOL_FIELDS = ("audio",)
"""Form text `true` / `false` becomes the JSON boolean (anything else is refused as in JSON)."""
NULLABLE_FIELDS = frozenset(f.name for f in msgspec.structs.fields(GenerateRequest) if f.default is None)
"""Fields whose form text `null` means not sent (how an OpenAPI form encodes null), as JSON's `null` does."""


def _invalid(exc: msgspec.ValidationError) -> ValidationException:
    """The exception Litestar raises for the same failure (api/errors.py turns it into the 422)."""
    text = str(exc)
    entry = {"message": text.split(" - ", 1)[0], "key": field_named(text), "source": "body"}
    return ValidationException(detail="Validation failed for POST /api/generate", extra=[entry])


def _convert(raw: Any) -> GenerateRequest:
    try:
        return msgspec.convert(raw, GenerateRequest, strict=False)
    except msgspec.ValidationError as exc:
        raise _invalid(exc) from None


def _refused(field: str, message: str) -> errors.ValidationFailed:
    return errors.ValidationFailed("the request is invalid", details=[{"field": field, "message": message}])


def _json_text(field: str, text: str) -> Any:
    try:
        return msgspec.json.decode(text)
    except msgspec.DecodeError:
        raise _refused(field, "expected JSON text in this form field") from None


def _form(body: bytes, boundary: str | None) -> tuple[GenerateRequest, Uploads]:
    fields: dict[str, Any] = {}
    files: dict[str, bytes] = {}
    for name, value, is_file in forms.multipart_parts(body, boundary):
        if name in FILE_PARTS:
            if not isinstance(value, bytes) or not is_file:
                raise _refused(name, "send the image as a file part (with a filename), or its URL in the _url field")
            files[name] = value
            continue
        if isinstance(value, bytes):
            raise _refused(name, f"only {' and '.join(FILE_PARTS)} may be file parts")
        if value == "null" and name in NULLABLE_FIELDS:
            fields.pop(name, None)
            continue
        owner, _, rest = name.partition("[")
        if owner in OBJECT_FIELDS and rest.endswith("]"):
            labels = fields.setdefault(owner, {})
            if isinstance(labels, dict):
                labels[rest[:-1]] = value
        elif name in OBJECT_FIELDS:
            fields[name] = _json_text(name, value)
        elif name in LIST_FIELDS:
            items = _json_text(name, value) if value.startswith("[") else [value]
            previous = fields.get(name)
            fields[name] = [
                *(previous if isinstance(previous, list) else []),
                *(items if isinstance(items, list) else [items]),
            ]
        elif name in BOOL_FIELDS:
            if value not in ("true", "false"):
                raise _refused(name, "expected `true` or `false`")
            fields[name] = value == "true"
        else:
            fields[name] = value
    return _convert(fields), Uploads(files=files)


async def read(request: Request[Any, Any, Any]) -> tuple[GenerateRequest, Uploads]:
    """The request and its uploaded images (none for a JSON body)."""
    media_type, options = request.content_type
    if media_type == "multipart/form-data":
        return _form(await request.body(), options.get("boundary"))
    try:
        raw = await request.json()
    except SerializationException as exc:
        raise ClientException(str(exc)) from exc
    return _convert(raw), NO_UPLOADS


@dataclass
class GenerateOperation(Operation):
    """Documents the body the handler reads itself.

    JSON, or the same fields as a multipart form with the image files `image` and `last_frame`.
    """

    def __post_init__(self) -> None:
        reference = openapi.document_struct(GenerateRequest)
        image = Schema(
            type=OpenAPIType.STRING,
            format=OpenAPIFormat.BINARY,
            description="The first frame as a file (PNG, JPEG or WEBP, at most 20 MiB and 4096x4096), instead of "
            "`image_url`; scaled to cover the output size, then centre-cropped",
        )
        last = Schema(
            type=OpenAPIType.STRING,
            format=OpenAPIFormat.BINARY,
            description="The last frame as a file, instead of `last_frame_url` (models with `last_frame_conditioning`)",
        )
        form = Schema(
            all_of=[reference, Schema(type=OpenAPIType.OBJECT, properties={"image": image, "last_frame": last})]
        )
        self.request_body = RequestBody(
            required=True,
            description="JSON, or the same fields as multipart/form-data with the image files `image` and "
            "`last_frame` (callback_headers and metadata as JSON text, webhook_events as a JSON array)",
            content={
                "application/json": OpenAPIMediaType(schema=reference),
                "multipart/form-data": OpenAPIMediaType(schema=form),
            },
        )
