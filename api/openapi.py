"""The published contract: `/openapi.json`, the `/docs` UI, and the error responses every operation shares.

Handlers list the errors they can answer with `error_responses(...)`; `finalize` then makes
the document honest for every operation (including ones added without thinking about it):
Litestar's default 400 shape is replaced by our envelope, 429/500 are documented wherever they
can happen, and `X-Request-ID` / rate-limit headers are declared.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Litestar, Request, get
from litestar._openapi.plugin import OpenAPIPlugin
from litestar.openapi import OpenAPIConfig
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import (
    Components,
    Example,
    OpenAPIHeader,
    OpenAPIMediaType,
    OpenAPIResponse,
    Reference,
    Schema,
    SecurityScheme,
)
from litestar.response import Redirect

from api.docs_pages import docs_assets, render_plugins  # noqa: F401  (app.py mounts openapi.docs_assets())
from sorapi import errors
from sorapi.schemas import ErrorEnvelope

_ERRORS: dict[int, tuple[str, str, str]] = {
    400: ("The body is not valid JSON, or a parameter could not be parsed", errors.INVALID_JSON,
          "the request body is not valid JSON"),
    401: ("Missing, invalid or revoked API key", errors.UNAUTHORIZED, "missing Bearer API key"),
    402: ("Not enough credits for this render", errors.INSUFFICIENT_CREDITS,
          "this task costs 16 credits but only 4 are available"),
    404: ("No such task for this API key (another account's task is also a 404)", errors.NOT_FOUND,
          "no task 'sora2...'"),
    409: ("The task has no content yet", errors.TASK_NOT_READY, "the task is running; content exists once it succeeds"),
    410: ("The retention window ended and the assets were deleted", errors.TASK_EXPIRED, "the task's assets expired"),
    422: ("Validation failed; `error.details` names each field (prompt length, resolution presets...)",
          errors.VALIDATION_ERROR, "the request is invalid"),
    429: ("Rate limited: honour `Retry-After`, add jitter", errors.RATE_LIMITED,
          "rate limit exceeded: generate allows 30 requests per minute per API key, bursting to 60; retry after 2 s"),
    500: ("Unexpected server error; quote the `X-Request-ID` header when reporting it", errors.INTERNAL_ERROR,
          "internal server error"),
    503: ("Brief maintenance window or a dependency is down: retry with backoff (and the same idempotency_key)",
          errors.MAINTENANCE, "SorAPI is in a brief maintenance window"),
}


def error_responses(*codes: int) -> dict[int, ResponseSpec]:
    """OpenAPI response entries for the given statuses, each with our envelope and an example."""
    return {
        code: ResponseSpec(ErrorEnvelope, description=_ERRORS[code][0], generate_examples=False, examples=[
            Example(summary=_ERRORS[code][1], value={"error": {"code": _ERRORS[code][1],
                                                                "message": _ERRORS[code][2], "details": []}})])
        for code in codes
    }


def config() -> OpenAPIConfig:
    return OpenAPIConfig(
        title="SorAPI", version="0.1.0", path="/docs", render_plugins=render_plugins(),
        description="Asynchronous text-to-video generation: submit with `POST /api/generate`, poll "
                    "`GET /api/status` or receive a signed webhook. OpenAI-compatible `/v1/videos` too.",
        security=[{"BearerAuth": []}],
        components=Components(security_schemes={"BearerAuth": SecurityScheme(
            type="http", scheme="bearer", description="Your SorAPI key: `Authorization: Bearer $SORA2_API_KEY`")}),
    )


@get("/openapi.json", include_in_schema=False, sync_to_thread=False)
def openapi_json(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """The OpenAPI 3.1 document (also at /docs/openapi.json)."""
    return request.app.plugins.get(OpenAPIPlugin).provide_openapi_schema()


SEED_DOC_PAGES = {"generate": ("/api/generate", "post"), "status": ("/api/status", "get")}


@get("/docs/api/{endpoint:str}", include_in_schema=False, sync_to_thread=False)
def docs_shortcut(request: Request[Any, Any, Any], endpoint: str) -> Redirect:
    """The seed's /docs/api/generate and /docs/api/status pages: Swagger UI's deep link to the operation."""
    if endpoint not in SEED_DOC_PAGES:
        return Redirect(path="/docs", status_code=302)
    path, method = SEED_DOC_PAGES[endpoint]
    operation = request.app.plugins.get(OpenAPIPlugin).provide_openapi_schema()["paths"][path][method]
    return Redirect(path=f"/docs#/{operation['tags'][0]}/{operation['operationId']}", status_code=302)


def _header(description: str, example: str) -> OpenAPIHeader:
    return OpenAPIHeader(schema=Schema(type="string"),  # type: ignore[arg-type]
                         description=description, example=example)


REQUEST_ID = _header("Id of this request (echoes a sane incoming `X-Request-ID`); quote it when reporting problems",
                     "req_5f2c0e8f0c1b4c7e9a1d2b3c4d5e6f70")
RATE_HEADERS = {
    "RateLimit-Policy": _header("Quota policy: `q` requests per `w` seconds per API key (token bucket; "
                                "`q` is also the burst)", '"generate";q=60;w=120'),
    "RateLimit": _header("Remaining requests `r` and seconds `t` until the bucket is full again",
                         '"generate";r=59;t=2'),
}
RETRY_AFTER = _header("Seconds to wait before retrying", "2")


def _envelope_response(code: int) -> OpenAPIResponse:
    description, stable, message = _ERRORS[code]
    return OpenAPIResponse(description=description, content={"application/json": OpenAPIMediaType(
        schema=Reference(ref="#/components/schemas/ErrorEnvelope"),
        example={"error": {"code": stable, "message": message, "details": []}},
    )})


def _is_envelope(response: OpenAPIResponse | Reference) -> bool:
    if not isinstance(response, OpenAPIResponse) or not response.content:
        return False
    schema = next(iter(response.content.values())).schema
    return isinstance(schema, Reference) and schema.ref.endswith("/ErrorEnvelope")


def finalize(app: Litestar) -> None:
    """`on_startup` hook: every public operation documents the envelope, 429/500 and its headers."""
    plugin = app.plugins.get(OpenAPIPlugin)
    document = plugin.provide_openapi()
    for path, item in (document.paths or {}).items():
        for method in ("get", "post", "put", "patch", "delete"):
            operation = getattr(item, method, None)
            if operation is None or operation.responses is None:
                continue
            responses = operation.responses
            if "400" in responses and not _is_envelope(responses["400"]):
                responses["400"] = _envelope_response(400)
            for code in ("401", "429", "500"):
                responses.setdefault(code, _envelope_response(int(code)))
            for status, response in responses.items():
                if not isinstance(response, OpenAPIResponse):
                    continue
                headers = dict(response.headers or {})
                headers.setdefault("X-Request-ID", REQUEST_ID)
                if status == "429":
                    headers.setdefault("Retry-After", RETRY_AFTER)
                    headers.update({k: v for k, v in RATE_HEADERS.items() if k not in headers})
                if status == "503":
                    headers.setdefault("Retry-After", RETRY_AFTER)
                response.headers = headers
    rendered = document.to_schema()
    _, components = msgspec.json.schema_components(EXTRA_COMPONENTS, ref_template="#/components/schemas/{name}")
    rendered.setdefault("components", {}).setdefault("schemas", {}).update(components)
    plugin._openapi_schema = rendered  # what /openapi.json and /docs serve from now on


EXTRA_COMPONENTS: list[type] = []
"""Structs a handler parses itself (so Litestar cannot see them) but documents by `$ref`."""


def document_struct(struct: type) -> Reference:
    """Publish `struct` under components/schemas and return a reference to it."""
    if struct not in EXTRA_COMPONENTS:
        EXTRA_COMPONENTS.append(struct)
    return Reference(ref=f"#/components/schemas/{struct.__name__}")
