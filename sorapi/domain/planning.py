"""From a client's request to a priced, fully resolved render: the domain rules of `generate`."""

from __future__ import annotations

import hashlib
import re
import secrets

import msgspec

from sorapi.adapters import netguard
from sorapi.adapters.webhook_signing import is_reserved_header, valid_header_name, valid_header_value
from sorapi.contracts.messages import RenderSpec, RenderSpeed
from sorapi.contracts.schemas import (
    MAX_CALLBACK_HEADER_VALUE,
    MAX_CALLBACK_HEADERS,
    MAX_SEED,
    PROMPT_PATTERN,
    ErrorDetail,
    GenerateRequest,
    TaskRequest,
)
from sorapi.domain import speed, webhook_events
from sorapi.domain.catalog import Catalog, ModelSpec, Plan
from sorapi.domain.resolutions import ORIENTATION_NAMES, SIZE_NAMES, ResolutionError, Tier, resolve


class Planned(msgspec.Struct, frozen=True):
    request: TaskRequest
    tier: Tier
    price: int


def fingerprint(req: GenerateRequest) -> str:
    """A stable hash of what was asked (idempotency key excluded): same body ⇔ same fingerprint.

    Fields not sent (None) are left out, so a new optional field does not change the fingerprint of a request that does
    not use it: a client's retry across a release still matches.
    """
    sent = {name: value for name, value in msgspec.structs.asdict(req).items() if value is not None}
    sent.pop("idempotency_key", None)
    return hashlib.sha256(msgspec.json.encode(sent, order="sorted")).hexdigest()


def _callback_errors(req: GenerateRequest, allow_http: bool) -> list[ErrorDetail]:
    errors = []
    if req.callback_url is not None:
        problem = netguard.shape_problem(req.callback_url, allow_http=allow_http)
        if problem:
            errors.append(ErrorDetail(field="callback_url", message=problem))
    headers = req.callback_headers or {}
    if len(headers) > MAX_CALLBACK_HEADERS:
        errors.append(
            ErrorDetail(
                field="callback_headers", message=f"at most {MAX_CALLBACK_HEADERS} callback headers are allowed"
            )
        )
    for name, value in headers.items():
        if not valid_header_name(name):
            errors.append(ErrorDetail(field=f"callback_headers.{name}", message="not a valid HTTP header name"))
        elif is_reserved_header(name):
            errors.append(
                ErrorDetail(
                    field=f"callback_headers.{name}", message="this header is set by SorAPI and cannot be overridden"
                )
            )
        if len(value) > MAX_CALLBACK_HEADER_VALUE or not valid_header_value(value):
            errors.append(
                ErrorDetail(
                    field=f"callback_headers.{name}",
                    message=(f"header values must be printable ASCII and <= {MAX_CALLBACK_HEADER_VALUE} chars"),
                )
            )
    return errors


def _webhook_event_errors(events: list[str] | None) -> list[ErrorDetail]:
    """Known events, each once (msgspec already refused an empty list); each problem names its item."""
    errors = []
    for index, event in enumerate(events or ()):
        if event not in webhook_events.EVENTS:
            message = f"unknown event {event!r}: use {', '.join(webhook_events.EVENTS)}"
            errors.append(ErrorDetail(field=f"webhook_events[{index}]", message=message))
        elif event in (events or [])[:index]:
            errors.append(ErrorDetail(field=f"webhook_events[{index}]", message=f"{event!r} is listed once already"))
    return errors


def _duration_errors(name: str, model: ModelSpec, duration: int) -> list[ErrorDetail]:
    """The clip must fit the model: in seconds, and in frames at its native fps (rounded per family)."""
    if duration > model.max_duration_s:
        return [ErrorDetail(field="duration", message=f"{name} renders at most {model.max_duration_s} seconds")]
    frames = model.frames_for(duration)
    if model.max_frames and frames > model.max_frames:
        longest = max((s for s in range(1, duration) if model.frames_for(s) <= model.max_frames), default=0)
        return [
            ErrorDetail(
                field="duration",
                message=(
                    f"{name} renders at most {model.max_frames} frames; {duration} s at {model.fps} fps needs {frames} "
                    f"(the longest clip is {longest} s)"
                ),
            )
        ]
    return []


def _audio_errors(name: str, catalog: Catalog, audio: bool | None) -> list[ErrorDetail]:
    """`audio: true` needs a model that renders a soundtrack; the message names the ones that do."""
    if not audio or catalog.models[name].audio:
        return []
    with_audio = [key for key, spec in catalog.models.items() if spec.audio]
    return [
        ErrorDetail(
            field="audio",
            message=f"{name} renders no audio; models with audio: {', '.join(with_audio) or 'none'}",
        )
    ]


def plan(req: GenerateRequest, catalog: Catalog, *, allow_http_callbacks: bool = False) -> Planned | list[ErrorDetail]:
    """Resolve defaults, size, model and price; or every field-level problem at once."""
    errors: list[ErrorDetail] = []
    if not re.search(PROMPT_PATTERN, req.prompt):  # the schema's `pattern`, character for character
        errors.append(
            ErrorDetail(field="prompt", message="prompt must contain non-whitespace text and no NUL character")
        )
    model = catalog.canonical_model(req.model_version)
    if model is None:
        errors.append(
            ErrorDetail(
                field="model_version", message=f"model_version must be one of {', '.join(catalog.model_names())}"
            )
        )
    else:
        errors += _duration_errors(model, catalog.models[model], req.duration)
        errors += _audio_errors(model, catalog, req.audio)
    try:
        width, height, tier = resolve(req.resolution, req.aspect_ratio)
    except ResolutionError as exc:
        errors.append(ErrorDetail(field=exc.field, message=str(exc)))
    else:
        if model is not None and not catalog.models[model].renders(f"{width}x{height}"):
            errors.append(
                ErrorDetail(
                    field="resolution",
                    message=(
                        f"{model} does not render {width}x{height}; it renders "
                        f"{', '.join(catalog.models[model].resolutions)}"
                    ),
                )
            )
    errors += _callback_errors(req, allow_http_callbacks)
    errors += _webhook_event_errors(req.webhook_events)
    if req.speed is not None and req.speed not in speed.SPEEDS:
        errors.append(ErrorDetail(field="speed", message=f"speed must be one of {', '.join(speed.SPEEDS)}"))
    if errors:
        return errors
    assert model is not None
    size = f"{width}x{height}"
    request = TaskRequest(
        prompt=req.prompt,
        model_version=model,
        duration=req.duration,
        resolution=size,
        aspect_ratio=SIZE_NAMES[size][1],
        guidance=req.guidance,
        seed=req.seed if req.seed is not None else secrets.randbelow(MAX_SEED + 1),
        negative_prompt=req.negative_prompt,
        callback_url=req.callback_url,
        max_queue_seconds=req.max_queue_seconds,
        webhook_events=[e for e in webhook_events.EVENTS if e in (req.webhook_events or webhook_events.DEFAULT)],
        speed=req.speed or catalog.models[model].default_speed,
        audio=catalog.models[model].audio_default if req.audio is None else req.audio,
    )
    price = catalog.price(model, req.duration, tier, request.speed, audio=request.audio)
    return Planned(request=request, tier=tier, price=price)


def render_spec(task_id: str, request: TaskRequest, catalog: Catalog) -> RenderSpec:
    """The render a recorded request asks for; deterministic, so a replayed create rebuilds it exactly."""
    model = catalog.models[request.model_version]
    width, height = (int(v) for v in request.resolution.split("x"))
    return RenderSpec(
        task_id=task_id,
        model=request.model_version,
        family=model.family,
        weights=model.weights,
        prompt=request.prompt,
        negative_prompt=request.negative_prompt,
        width=width,
        height=height,
        duration_s=request.duration,
        fps=model.fps,
        guidance_scale=request.guidance,
        steps=catalog.steps(request.model_version, request.speed),
        seed=request.seed,
        dtype=model.dtype,
        num_frames=model.frames_for(request.duration),
        speed=_render_speed(catalog, request.speed),
        audio=request.audio and model.audio,
    )


def _render_speed(catalog: Catalog, name: str) -> RenderSpeed:
    profile = catalog.speed_profile(name)
    return RenderSpeed(
        name=name,
        steps_fraction=profile.steps_fraction,
        cache_threshold=profile.cache_threshold,
        compile=profile.compile,
    )


__all__ = ["ORIENTATION_NAMES", "Planned", "fingerprint", "plan", "render_spec"]


def with_plan_defaults(planned: Planned, plan: Plan) -> Planned:
    """The request as the account's plan completes it: its start deadline when none was sent."""
    if planned.request.max_queue_seconds is not None or not plan.max_queue_seconds:
        return planned
    request = msgspec.structs.replace(planned.request, max_queue_seconds=plan.max_queue_seconds)
    return msgspec.structs.replace(planned, request=request)
