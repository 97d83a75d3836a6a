"""HTTP wire shapes: request and response bodies of the public API (one definition each)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from sorapi.resolutions import ASPECT_RATIO_VALUES, RESOLUTION_VALUES

MAX_PROMPT_CHARS = 5000
MAX_IDEMPOTENCY_KEY_CHARS = 64
MAX_DURATION_S = 20
MAX_SEED = 2**32 - 1

Prompt = Annotated[str, Meta(
    min_length=1, max_length=MAX_PROMPT_CHARS,
    description="Primary description of the scene to render; supports up to 5,000 characters.",
    examples=["Aerial shot of bioluminescent forests at dusk with cinematic lighting"],
)]
ModelVersion = Annotated[str, Meta(
    description="Model release to target. Use preview channels to test new capabilities before rollout.",
    examples=["sora-2-preview"],
)]
Duration = Annotated[int, Meta(
    ge=1, le=MAX_DURATION_S,
    description="Clip length in seconds. Longer durations may consume additional credits.",
    examples=[12],
)]
Resolution = Annotated[str, Meta(
    description="Target render resolution (default 1280x720). Balance with credits budgets to "
    "optimize cost vs fidelity. One of: " + ", ".join(RESOLUTION_VALUES) + ".",
    examples=["1920x1080"],
)]
AspectRatio = Annotated[str, Meta(
    description="Orientation of the preset: " + ", ".join(ASPECT_RATIO_VALUES) + ".",
    examples=["vertical"],
)]
Guidance = Annotated[float, Meta(
    ge=0.0, le=20.0,
    description="Classifier-free guidance scale for adherence to the prompt. Higher values follow "
    "the text more strictly.",
    examples=[8.5],
)]
Seed = Annotated[int, Meta(
    ge=0, le=MAX_SEED,
    description="Use fixed seeds for reproducible frames and prompt engineering experiments.",
    examples=[42],
)]
NegativePrompt = Annotated[str, Meta(
    max_length=MAX_PROMPT_CHARS,
    description="Elements to suppress in the output, such as watermarking, artifacts, or undesired subjects.",
    examples=["no watermark, no motion blur, avoid text overlays"],
)]
CallbackUrl = Annotated[str, Meta(
    max_length=2048,
    description="Webhook destination for job completion events. Must be HTTPS and respond with 2xx status.",
    examples=["https://example.com/webhooks/sora2"],
)]
CallbackHeaders = Annotated[dict[str, str], Meta(
    description="Custom headers appended to webhook deliveries for routing or verification.",
    examples=[{"X-Env": "staging"}],
)]
IdempotencyKey = Annotated[str, Meta(
    min_length=1, max_length=MAX_IDEMPOTENCY_KEY_CHARS,
    description="Unique key (<= 64 chars) to guarantee at-most-once task creation on retries.",
    examples=["job-2024-03-12-001"],
)]


class GenerateRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Body of `POST /api/generate`. `None` means "not sent" and takes the documented default."""

    prompt: Prompt
    model_version: ModelVersion = "sora-2-latest"
    duration: Duration = 8
    resolution: Resolution | None = None
    aspect_ratio: AspectRatio | None = None
    guidance: Guidance = 7.5
    seed: Seed | None = None
    negative_prompt: NegativePrompt | None = None
    callback_url: CallbackUrl | None = None
    callback_headers: CallbackHeaders | None = None
    idempotency_key: IdempotencyKey | None = None


class TaskRequest(msgspec.Struct, kw_only=True):
    """The request as the task records and echoes it: defaults applied, size resolved, seed fixed."""

    prompt: str
    model_version: str
    duration: int
    resolution: str
    aspect_ratio: str
    guidance: float
    seed: int
    negative_prompt: str | None = None
    callback_url: str | None = None


class GenerateResponse(msgspec.Struct, kw_only=True):
    task_id: str
    status: str
    credits_reserved: int
    created_at: datetime


class OutputLink(msgspec.Struct, kw_only=True):
    format: str
    url: str
    content_type: str
    size_bytes: int


class StatusResponse(msgspec.Struct, kw_only=True):
    """Body of `GET /api/status`: the seed's shape plus progress, outputs and timestamps."""

    task_id: str
    status: str
    request: TaskRequest
    response: list[str]
    error_message: str | None
    error_code: str | None = None
    progress: int = 0
    outputs: list[OutputLink] = []
    credits_reserved: int = 0
    credits_charged: int = 0
    render: dict[str, Any] | None = None
    metadata: dict[str, Any] = {}
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    expires_at: datetime | None = None


class ErrorDetail(msgspec.Struct, kw_only=True, omit_defaults=True):
    field: str
    message: str


class ErrorBody(msgspec.Struct, kw_only=True):
    code: str
    message: str
    details: list[ErrorDetail] = []


class ErrorEnvelope(msgspec.Struct, kw_only=True):
    error: ErrorBody
