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
from litestar.handlers import HTTPRouteHandler
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
from litestar.routes import HTTPRoute

from sorapi.api import contract
from sorapi.api.auth import SCOPES_OPT
from sorapi.api.docs_pages import docs_assets, render_plugins  # noqa: F401  (app.py mounts openapi.docs_assets())
from sorapi.contracts import errors
from sorapi.contracts.schemas import ErrorEnvelope

_ERRORS: dict[int, tuple[str, str, str]] = {
    400: (
        "The body is not valid JSON, or a parameter could not be parsed",
        errors.INVALID_JSON,
        "the request body is not valid JSON",
    ),
    401: ("Missing, invalid or revoked API key", errors.UNAUTHORIZED, "missing Bearer API key"),
    402: (
        "Not enough credits for this render (`insufficient_credits`), or it would pass a monthly spend cap "
        "(`spend_limit_reached`: the message names the account's or the key's limit and when it resets). "
        "Nothing was created",
        errors.INSUFFICIENT_CREDITS,
        "this task costs 16 credits but only 4 are available",
    ),
    404: (
        "No such task for this API key (another account's task is also a 404)",
        errors.NOT_FOUND,
        "no task 'sora2...'",
    ),
    409: (
        "The task is not in a state that allows this: no content yet (`task_not_ready`), or an extension's "
        "source has no video to continue (`source_not_ready`, `source_failed`, `source_expired`)",
        errors.TASK_NOT_READY,
        "the task is running; content exists once it succeeds",
    ),
    410: ("The retention window ended and the assets were deleted", errors.TASK_EXPIRED, "the task's assets expired"),
    422: (
        "Validation failed; `error.details` names each field (prompt length, resolution presets...)",
        errors.VALIDATION_ERROR,
        "the request is invalid",
    ),
    429: (
        "Rate limited: honour `Retry-After`, add jitter",
        errors.RATE_LIMITED,
        "rate limit exceeded: generate allows 30 requests per minute per API key, bursting to 60; retry after 2 s",
    ),
    500: (
        "Unexpected server error; quote the `X-Request-ID` header when reporting it",
        errors.INTERNAL_ERROR,
        "internal server error",
    ),
    503: (
        "Brief maintenance window or a dependency is down: retry with backoff (and the same idempotency_key)",
        errors.MAINTENANCE,
        "SorAPI is in a brief maintenance window",
    ),
}


_MORE_EXAMPLES: dict[int, list[tuple[str, str]]] = {
    402: [
        (
            errors.SPEND_LIMIT_REACHED,
            "this task costs 16 credits but API key key_3f2a's monthly spend limit of 100 credits has 4 left "
            "(96 used this month, held and captured); the limit resets at 2027-01-01T00:00:00Z",
        )
    ],
    409: [
        (errors.SOURCE_NOT_READY, "the source task is running: extend it once it has succeeded"),
        (errors.SOURCE_FAILED, "the source task failed: it has no video to continue"),
        (errors.SOURCE_EXPIRED, "the source task's video was deleted (its retention ended, or DELETE)"),
    ],
}
"""Further codes a status can carry, each shown as an example of its own."""


def error_responses(*codes: int) -> dict[int, ResponseSpec]:
    """OpenAPI response entries for the given statuses, each with our envelope and an example per code."""
    return {
        code: ResponseSpec(
            ErrorEnvelope,
            description=_ERRORS[code][0],
            generate_examples=False,
            examples=[
                Example(summary=name, value={"error": {"code": name, "message": message, "details": []}})
                for name, message in [_ERRORS[code][1:], *_MORE_EXAMPLES.get(code, [])]
            ],
        )
        for code in codes
    }


OPERATION_IDS = {
    "VideoController.generate": "generate",
    "VideoController.task_status": "getTaskStatus",
    "TasksController.list_tasks": "listTasks",
    "TasksController.content": "downloadTaskContent",
    "CancelController.cancel": "cancelTask",
    "LifecycleController.delete_assets": "deleteTaskAssets",
    "TaskWebhooksController.list_deliveries": "listTaskWebhooks",
    "TaskWebhooksController.redeliver": "redeliverTaskWebhook",
    "TaskEventsController.events": "streamTaskEvents",
    "WebhookSecretController.get_secret": "getWebhookSecret",
    "WebhookSecretController.rotate": "rotateWebhookSecret",
    "CreditsController.balance": "getCredits",
    "CreditsController.estimate": "estimateCredits",
    "CreditsController.estimate_body": "estimateCreditsForBody",
    "CreditsController.ledger": "listLedger",
    "CreditsController.audit_log": "listAuditLog",
    "OpenAIVideosController.create": "createVideo",
    "OpenAIVideosController.list_videos": "listVideos",
    "OpenAIVideosController.retrieve": "retrieveVideo",
    "OpenAIVideosController.delete_video": "deleteVideo",
    "OpenAIVideosController.download_content": "downloadVideoContent",
    "OpenAIVideosController.remix": "remixVideo",
    "OpenAIVideosController.extend": "extendVideo",
    "AdminController.create_account": "adminCreateAccount",
    "AdminController.account": "adminGetAccount",
    "AdminController.issue_key": "adminIssueKey",
    "AdminController.list_keys": "adminListKeys",
    "AdminController.revoke_key": "adminRevokeKey",
    "AdminController.grant": "adminGrantCredits",
    "AdminController.adjust": "adminAdjustCredits",
    "AdminController.change_plan": "adminChangePlan",
    "AdminController.set_spend_limit": "adminSetSpendLimit",
    "CreditsController.set_spend_limit": "setSpendLimit",
    "AdminController.ledger": "adminListLedger",
    "AdminController.audit_log": "adminListAuditLog",
    "AdminController.trigger_refresh": "adminTriggerCreditRefresh",
}
"""Handler → operationId: the names a generated client's functions get (`generate`, `getTaskStatus`...)."""


def operation_id(route_handler: HTTPRouteHandler, http_method: Any, path_components: list[Any]) -> str:
    """The handler's entry in OPERATION_IDS; else its name in camelCase (`list_tasks` → `listTasks`)."""
    name = route_handler.fn.__qualname__
    if name in OPERATION_IDS:
        return OPERATION_IDS[name]
    first, *rest = route_handler.handler_name.split("_")
    return first + "".join(part.title() for part in rest)


def config() -> OpenAPIConfig:
    return OpenAPIConfig(
        title="SorAPI",
        version="0.1.0",
        path="/docs",
        render_plugins=render_plugins(),
        operation_id_creator=operation_id,
        description="Asynchronous text-to-video generation: submit with `POST /api/generate`, poll "
        "`GET /api/status` or receive a signed webhook. OpenAI-compatible `/v1/videos` too.",
        security=[{"BearerAuth": []}],
        components=Components(
            security_schemes={
                "BearerAuth": SecurityScheme(
                    type="http", scheme="bearer", description="Your SorAPI key: `Authorization: Bearer $SORA2_API_KEY`"
                )
            }
        ),
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
    return OpenAPIHeader(
        schema=Schema(type="string"),  # type: ignore[arg-type]
        description=description,
        example=example,
    )


REQUEST_ID = _header(
    "Id of this request (echoes a sane incoming `X-Request-ID`); quote it when reporting problems",
    "req_5f2c0e8f0c1b4c7e9a1d2b3c4d5e6f70",
)
RATE_HEADERS = {
    "RateLimit-Policy": _header(
        "Quota policy: `q` requests per `w` seconds per API key (token bucket; `q` is also the burst)",
        '"generate";q=60;w=120',
    ),
    "RateLimit": _header(
        "Remaining requests `r` and seconds `t` until the bucket is full again", '"generate";r=59;t=2'
    ),
}
RETRY_AFTER = _header("Seconds to wait before retrying", "2")
LOCATION = _header(
    "Where the content is: a short-lived presigned URL (no API key needed; clients that follow "
    "redirects must not forward `Authorization` to it)",
    "https://s3.example.com/sorapi/tasks/...",
)


def _envelope_response(code: int) -> OpenAPIResponse:
    description, stable, message = _ERRORS[code]
    return OpenAPIResponse(
        description=description,
        content={
            "application/json": OpenAPIMediaType(
                schema=Reference(ref="#/components/schemas/ErrorEnvelope"),
                examples={stable: _example(stable, message)},
            )
        },
    )


def _example(code: str, message: str) -> Example:
    return Example(summary=code, value={"error": {"code": code, "message": message, "details": []}})


SHARED_ERRORS: dict[str, tuple[str, str, str]] = {
    "400": (
        errors.DUPLICATE_HEADER,
        "send exactly one Authorization header",
        "More than one `Authorization` header (`duplicate_header`)",
    ),
    "403": (
        errors.INSUFFICIENT_SCOPE,
        "this API key may not call {operation}; it needs one of the scopes: ...",
        "The key lacks the scope this operation needs (`insufficient_scope`)",
    ),
    "503": (
        errors.SERVICE_UNAVAILABLE,
        "the service is briefly unavailable; retry shortly",
        "The database or the orchestrator is briefly unavailable (`service_unavailable`): retry after `Retry-After`",
    ),
}
"""Status → (code, example message, description) of errors a middleware or the scope check answers
on every operation it covers, whatever the handler lists."""


def _document_shared_error(responses: dict[str, Any], status: str, operation: str) -> None:
    """Add `status`'s shared error to the operation's responses: a new response, or one more example."""
    code, message, description = SHARED_ERRORS[status]
    message = message.format(operation=operation)
    existing = responses.get(status)
    if not isinstance(existing, OpenAPIResponse) or not _is_envelope(existing) or not existing.content:
        responses[status] = OpenAPIResponse(
            description=description,
            content={
                "application/json": OpenAPIMediaType(
                    schema=Reference(ref="#/components/schemas/ErrorEnvelope"), examples={code: _example(code, message)}
                )
            },
        )
        return
    media = next(iter(existing.content.values()))
    media.examples = {**(media.examples or {}), code: _example(code, message)}
    if code not in existing.description:
        existing.description = f"{existing.description}; or {description[0].lower()}{description[1:]}"


def _is_envelope(response: OpenAPIResponse | Reference | None) -> bool:
    if not isinstance(response, OpenAPIResponse) or not response.content:
        return False
    schema = next(iter(response.content.values())).schema
    return isinstance(schema, Reference) and schema.ref.endswith("/ErrorEnvelope")


def _scoped_operations(app: Litestar) -> set[tuple[str, str]]:
    """(path, method) of every operation whose route declares scopes: the ones that can answer 403."""
    return {
        (route.path_format, method.lower())
        for route in app.routes
        if isinstance(route, HTTPRoute)
        for handler in route.route_handlers
        if handler.opt.get(SCOPES_OPT)
        for method in handler.http_methods
    }


def finalize(app: Litestar) -> None:
    """`on_startup` hook: complete the published schema.

    Every public operation documents the envelope, the errors any operation can answer (400 duplicate_header, 401, 403
    insufficient_scope where scopes apply, 429, 500, 503) and its headers; then the catalog's models and envelopes,
    closed bodies and the links between operations.
    """
    plugin = app.plugins.get(OpenAPIPlugin)
    document = plugin.provide_openapi()
    scoped = _scoped_operations(app)
    for path, item in (document.paths or {}).items():
        for method in ("get", "post", "put", "patch", "delete"):
            operation = getattr(item, method, None)
            if operation is None or operation.responses is None:
                continue
            responses = operation.responses
            if "400" in responses and not _is_envelope(responses["400"]):
                responses["400"] = _envelope_response(400)
            label = f"{method.upper()} {path}"
            _document_shared_error(responses, "400", label)  # SingleAuthorizationMiddleware guards every route
            if (path, method) in scoped:
                _document_shared_error(responses, "403", label)
            _document_shared_error(responses, "503", label)  # api.errors answers a database outage so, anywhere
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
                if status.startswith("3"):
                    headers.setdefault("Location", LOCATION)
                response.headers = headers
    rendered = document.to_schema()
    _, components = msgspec.json.schema_components(EXTRA_COMPONENTS, ref_template="#/components/schemas/{name}")
    schemas = rendered.setdefault("components", {}).setdefault("schemas", {})
    for name, schema in components.items():  # Litestar's rendering wins where it has one: it hoists the
        schemas.setdefault(name, schema)  # `schema_only` keywords (enums) that msgspec leaves under `extra`
    _close_request_bodies(schemas, app)
    _plain_booleans(schemas)
    _link_operations(rendered["paths"])
    resources = app.state.resources
    contract.publish_catalog(schemas, rendered["paths"], resources.catalog)
    contract.publish_callbacks(schemas, resources.settings.webhook_allow_http, resources.settings.callback_ports)
    plugin._openapi_schema = rendered  # what /openapi.json and /docs serve from now on


TASK_LINKS = {
    "GetTaskStatus": ("getTaskStatus", "task_id", "Poll the task this call created"),
    "CancelTask": ("cancelTask", "task_id", "Cancel it while queued or running"),
    "DownloadTaskContent": ("downloadTaskContent", "task_id", "Download its MP4 once it succeeded"),
    "ListTaskWebhooks": ("listTaskWebhooks", "task_id", "Its webhook deliveries"),
}
VIDEO_LINKS = {
    "RetrieveVideo": ("retrieveVideo", "video_id", "Poll the video this call created"),
    "DownloadVideoContent": ("downloadVideoContent", "video_id", "Download it once completed"),
    "RemixVideo": ("remixVideo", "video_id", "Render it again with a new prompt"),
    "CancelTask": ("cancelTask", "task_id", "Cancel it (a video is a task)"),
}
LINKS = {
    ("/api/generate", "post", "200"): ("task_id", TASK_LINKS),
    ("/api/tasks/{task_id}/cancel", "post", "202"): ("task_id", TASK_LINKS),
    ("/v1/videos", "post", "200"): ("id", VIDEO_LINKS),
    ("/v1/videos/{video_id}/remix", "post", "200"): ("id", VIDEO_LINKS),
    ("/v1/videos/extensions", "post", "200"): ("id", VIDEO_LINKS),
    ("/api/batches", "post", "200"): ("batch_id", {"GetBatch": ("getBatch", "batch_id", "Read the batch back")}),
}
"""Responses that name a task → what a client (or a stateful fuzzer) does next with its id.
Deleting is left out on purpose: it keeps the record (`expired`), so reads after it still succeed."""


def _plain_booleans(node: Any) -> None:
    """A strict boolean is published as the plain boolean it is, without its enum.

    A strict boolean (`Literal[True, False]`: the lax decoder refuses 0/1 for it) has an enum that says nothing `type`
    does not, and client generators choke on an enum of booleans (openapi-python-client drops the whole model).
    """
    if isinstance(node, dict):
        kinds = node.get("type")
        boolean = set(kinds if isinstance(kinds, list) else [kinds]) <= {"boolean", "null"}
        if boolean and all(value is None or isinstance(value, bool) for value in node.get("enum", [1])):
            del node["enum"]
        for value in node.values():
            _plain_booleans(value)
    elif isinstance(node, list):
        for value in node:
            _plain_booleans(value)


def _link_operations(paths: dict[str, Any]) -> None:
    """OpenAPI `links` from each task-creating response to the operations that take its id."""
    for (path, method, status), (field, links) in LINKS.items():
        response = paths[path][method]["responses"][status]
        response["links"] = {
            name: {
                "operationId": target,
                "parameters": {parameter: f"$response.body#/{field}"},
                "description": description,
            }
            for name, (target, parameter, description) in links.items()
        }


def _close_request_bodies(schemas: dict[str, Any], app: Litestar) -> None:
    """Bodies decoded with `forbid_unknown_fields` refuse unknown fields: their schema says so."""
    for route in (r for r in app.routes if isinstance(r, HTTPRoute)):
        for handler in route.route_handlers:
            data = handler.parsed_fn_signature.parameters.get("data")
            struct = data.annotation if data is not None else None
            if (
                isinstance(struct, type)
                and issubclass(struct, msgspec.Struct)
                and struct.__struct_config__.forbid_unknown_fields
                and struct.__name__ in schemas
            ):
                schemas[struct.__name__]["additionalProperties"] = False


EXTRA_COMPONENTS: list[type] = []
"""Structs a handler parses itself (so Litestar cannot see them) but documents by `$ref`."""


def document_struct(struct: type) -> Reference:
    """Publish `struct` under components/schemas and return a reference to it."""
    if struct not in EXTRA_COMPONENTS:
        EXTRA_COMPONENTS.append(struct)
    return Reference(ref=f"#/components/schemas/{struct.__name__}")
