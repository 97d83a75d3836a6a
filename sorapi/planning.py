"""From a client's request to a priced, fully resolved render: the domain rules of `generate`."""

from __future__ import annotations

import hashlib
import re
import secrets
from urllib.parse import urlsplit

import msgspec

from sorapi.catalog import Catalog
from sorapi.messages import RenderSpec
from sorapi.resolutions import ORIENTATION_NAMES, SIZE_NAMES, ResolutionError, Tier, resolve
from sorapi.schemas import MAX_SEED, ErrorDetail, GenerateRequest, TaskRequest

MAX_CALLBACK_HEADERS = 20
MAX_CALLBACK_HEADER_VALUE = 1024
HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}$")
RESERVED_HEADER_PREFIXES = ("webhook-", "x-signature", "content-", "host", "user-agent",
                            "authorization", "transfer-encoding", "connection")


class Planned(msgspec.Struct, frozen=True):
    request: TaskRequest
    tier: Tier
    price: int


def fingerprint(req: GenerateRequest) -> str:
    """A stable hash of what was asked (idempotency key excluded): same body ⇔ same fingerprint."""
    body = msgspec.structs.replace(req, idempotency_key=None)
    return hashlib.sha256(msgspec.json.encode(body, order="sorted")).hexdigest()


def _callback_errors(req: GenerateRequest, allow_http: bool) -> list[ErrorDetail]:
    errors = []
    if req.callback_url is not None:
        parts = urlsplit(req.callback_url)
        schemes = ("https", "http") if allow_http else ("https",)
        if parts.scheme not in schemes or not parts.hostname:
            errors.append(ErrorDetail(field="callback_url", message="callback_url must be an absolute HTTPS URL"))
    headers = req.callback_headers or {}
    if len(headers) > MAX_CALLBACK_HEADERS:
        errors.append(ErrorDetail(field="callback_headers",
                                  message=f"at most {MAX_CALLBACK_HEADERS} callback headers are allowed"))
    for name, value in headers.items():
        if not HEADER_NAME.match(name):
            errors.append(ErrorDetail(field=f"callback_headers.{name}", message="not a valid HTTP header name"))
        elif name.lower().startswith(RESERVED_HEADER_PREFIXES):
            errors.append(ErrorDetail(field=f"callback_headers.{name}",
                                      message="this header is set by SorAPI and cannot be overridden"))
        if len(value) > MAX_CALLBACK_HEADER_VALUE or any(c in value for c in "\r\n\x00"):
            errors.append(ErrorDetail(field=f"callback_headers.{name}",
                                      message=f"header values must be single-line and <= {MAX_CALLBACK_HEADER_VALUE} chars"))
    return errors


def plan(req: GenerateRequest, catalog: Catalog, *, allow_http_callbacks: bool = False) -> Planned | list[ErrorDetail]:
    """Resolve defaults, size, model and price; or every field-level problem at once."""
    errors: list[ErrorDetail] = []
    if not req.prompt.strip():
        errors.append(ErrorDetail(field="prompt", message="prompt must contain non-whitespace text"))
    model = catalog.canonical_model(req.model_version)
    if model is None:
        errors.append(ErrorDetail(field="model_version",
                                  message=f"model_version must be one of {', '.join(catalog.model_names())}"))
    elif req.duration > catalog.models[model].max_duration_s:
        errors.append(ErrorDetail(field="duration",
                                  message=f"{model} renders at most {catalog.models[model].max_duration_s} seconds"))
    try:
        width, height, tier = resolve(req.resolution, req.aspect_ratio)
    except ResolutionError as exc:
        errors.append(ErrorDetail(field=exc.field, message=str(exc)))
    errors += _callback_errors(req, allow_http_callbacks)
    if errors:
        return errors
    assert model is not None
    size = f"{width}x{height}"
    request = TaskRequest(
        prompt=req.prompt, model_version=model, duration=req.duration, resolution=size,
        aspect_ratio=SIZE_NAMES[size][1], guidance=req.guidance,
        seed=req.seed if req.seed is not None else secrets.randbelow(MAX_SEED + 1),
        negative_prompt=req.negative_prompt, callback_url=req.callback_url,
    )
    return Planned(request=request, tier=tier, price=catalog.price(model, req.duration, tier))


def render_spec(task_id: str, request: TaskRequest, catalog: Catalog) -> RenderSpec:
    """The render a recorded request asks for; deterministic, so a replayed create rebuilds it exactly."""
    model = catalog.models[request.model_version]
    width, height = (int(v) for v in request.resolution.split("x"))
    return RenderSpec(
        task_id=task_id, model=request.model_version, family=model.family, weights=model.weights,
        prompt=request.prompt, negative_prompt=request.negative_prompt, width=width, height=height,
        duration_s=request.duration, fps=model.fps, guidance_scale=request.guidance,
        steps=model.default_steps, seed=request.seed,
    )


__all__ = ["Planned", "fingerprint", "plan", "render_spec", "ORIENTATION_NAMES"]
