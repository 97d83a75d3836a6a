"""schemathesis hooks of `tests/test_schema.py`, each confined to what a schema cannot say.

An image to condition a render on (`image_url`, `last_frame_url`, the `image` / `last_frame` files, or
`/v1/videos`' `input_reference`) is refused with a 422 naming that field when what it points at is not
an acceptable image: an unreachable or private URL, bytes that are not PNG, JPEG or WEBP, a model that
takes no image. An extension (`extend_from`, `/v1/videos/extensions`' `video`) is refused with a 422
naming a field when its source decides otherwise: a model that extends nothing, a whole clip too long,
another model or size than the source's. The schema describes the fields, never the remote resource,
the file's content or the source task, so such a 422 to a schema-valid body is not a failure. Every
other 422 to a valid body still is.
"""

from __future__ import annotations

from typing import Any

import schemathesis

IMAGE_FIELDS = frozenset({"image_url", "last_frame_url", "image", "last_frame", "input_reference"})
IMAGE_OPERATIONS = frozenset({("POST", "/api/generate"), ("POST", "/v1/videos")})
SOURCE_FIELDS = frozenset(
    {"extend_from", "video", "duration", "seconds", "model_version", "resolution", "aspect_ratio", *IMAGE_FIELDS}
)
"""What an extension's source decides (and an extension takes no image)."""
EXTENSION_OPERATION = ("POST", "/v1/videos/extensions")


def _excused_fields(case: Any) -> frozenset[str]:
    """The fields whose 422 this request may get for reasons outside the schema."""
    operation = (case.operation.method.upper(), case.operation.path)
    body = case.body if isinstance(case.body, dict) else {}
    extends = operation == EXTENSION_OPERATION or (
        operation == ("POST", "/api/generate") and body.get("extend_from") not in (None, "null")
    )
    if extends:
        return SOURCE_FIELDS
    return IMAGE_FIELDS if operation in IMAGE_OPERATIONS else frozenset()


@schemathesis.hook
def filter_failure(context: Any, failure: Any, case: Any, response: Any) -> bool:
    """Keep the failure unless it is a 422 naming only fields the request may be refused for outside the schema."""
    excused = _excused_fields(case)
    if not excused or response.status_code != 422:
        return True
    try:
        details = response.json()["error"]["details"]
    except (ValueError, KeyError, TypeError):
        return True
    return not details or not all(d.get("field") in excused for d in details)
