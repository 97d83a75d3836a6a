"""schemathesis hooks of `tests/test_schema.py`, each confined to what a schema cannot say.

An image to condition a render on (`image_url`, `last_frame_url`, the `image` / `last_frame` files, or
`/v1/videos`' `input_reference`) is refused with a 422 naming that field when what it points at is not
an acceptable image: an unreachable or private URL, bytes that are not PNG, JPEG or WEBP, a model that
takes no image. The schema describes the field, never the remote resource or the file's content, so such
a 422 to a schema-valid body is not a failure. Every other 422 to a valid body still is.
"""

from __future__ import annotations

from typing import Any

import schemathesis

IMAGE_FIELDS = frozenset({"image_url", "last_frame_url", "image", "last_frame", "input_reference"})
IMAGE_OPERATIONS = frozenset({("POST", "/api/generate"), ("POST", "/v1/videos")})


@schemathesis.hook
def filter_failure(context: Any, failure: Any, case: Any, response: Any) -> bool:
    """Keep the failure unless it is an image field's 422 on a create that takes images."""
    if (case.operation.method.upper(), case.operation.path) not in IMAGE_OPERATIONS or response.status_code != 422:
        return True
    try:
        details = response.json()["error"]["details"]
    except (ValueError, KeyError, TypeError):
        return True
    return not details or not all(d.get("field") in IMAGE_FIELDS for d in details)
