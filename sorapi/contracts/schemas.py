"""HTTP wire shapes: request and response bodies of the public API (one definition each)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from sorapi.adapters.webhook_signing import HEADER_NAME, RESERVED_PREFIXES
from sorapi.contracts import status
from sorapi.domain import speed, webhook_events
from sorapi.domain.resolutions import ASPECT_RATIO_VALUES, RESOLUTION_VALUES, SIZE_NAMES, Orientation

MAX_PROMPT_CHARS = 5000
MAX_IDEMPOTENCY_KEY_CHARS = 64
MAX_DURATION_S = 20
MAX_SEED = 2**32 - 1
MAX_CALLBACK_HEADERS = 20
MAX_CALLBACK_HEADER_VALUE = 1024
WHITESPACE = r"\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
"""Whitespace as a character-class body, spelled so Python's `re` and ECMA-262 (the schema's regex
dialect) agree on every character."""
NO_NUL = r"^[^\x00]*$"
"""Text PostgreSQL can store: no NUL character (a request carrying one is refused, naming the field)."""
PROMPT_PATTERN = rf"^[{WHITESPACE}]*[^\x00{WHITESPACE}][^\x00]*$"
"""A prompt: some text that is not whitespace, and no NUL. Both classes are disjoint from what
precedes them, so matching is linear (`re.search` here, JSON Schema's `pattern` for clients)."""


def schema_only(**keywords: Any) -> dict[str, Any]:
    """`extra_json_schema` for a constraint the published schema states but msgspec does not check.

    In a request the domain code does (`planning.plan` reports every problem at once, in any letter case); in a response
    it describes the values our code writes (the rows hold them as plain strings).
    """
    return {"extra": keywords}  # Litestar reads a Meta's schema additions from its `extra` key


TaskStatus = Annotated[str, Meta(extra_json_schema=schema_only(enum=list(status.ALL)))]
"""Every status a task can have, published as an enum."""
Size = Annotated[str, Meta(extra_json_schema=schema_only(enum=sorted(SIZE_NAMES)))]
"""A resolved render size, WIDTHxHEIGHT, published as an enum."""


Prompt = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=MAX_PROMPT_CHARS,
        description="Primary description of the scene to render; supports up to 5,000 characters.",
        examples=["Aerial shot of bioluminescent forests at dusk with cinematic lighting"],
        extra_json_schema=schema_only(pattern=PROMPT_PATTERN),
    ),
]
ModelVersion = Annotated[
    str,
    Meta(
        description="Model release to target. Use preview channels to test new capabilities before rollout.",
        examples=["sora-2-preview"],
    ),
]
Duration = Annotated[
    int,
    Meta(
        ge=1,
        le=MAX_DURATION_S,
        description="Clip length in seconds. Longer durations may consume additional credits.",
        examples=[12],
    ),
]
Resolution = Annotated[
    str,
    Meta(
        description="Target render resolution (default 1280x720). Balance with credits budgets to "
        "optimize cost vs fidelity. One of: " + ", ".join(RESOLUTION_VALUES) + ". It sets the tier "
        "(sd, hd, fhd); a WIDTHxHEIGHT size also sets the orientation unless `aspect_ratio` is sent.",
        examples=["1920x1080"],
        extra_json_schema=schema_only(enum=[*RESOLUTION_VALUES, None]),
    ),
]
AspectRatio = Annotated[
    str,
    Meta(
        description="Orientation of the preset: " + ", ".join(ASPECT_RATIO_VALUES) + ". It wins over the "
        "orientation of a WIDTHxHEIGHT `resolution`: `1920x1080` + `vertical` renders 1080x1920.",
        examples=["vertical"],
        extra_json_schema=schema_only(enum=[*ASPECT_RATIO_VALUES, None]),
    ),
]
Guidance = Annotated[
    float,
    Meta(
        ge=0.0,
        le=20.0,
        description="Classifier-free guidance scale for adherence to the prompt. Higher values follow "
        "the text more strictly.",
        examples=[8.5],
    ),
]
Seed = Annotated[
    int,
    Meta(
        ge=0,
        le=MAX_SEED,
        description="Use fixed seeds for reproducible frames and prompt engineering experiments.",
        examples=[42],
        extra_json_schema=schema_only(minimum=0),  # Litestar drops a falsy `ge` of an optional field
    ),
]
NegativePrompt = Annotated[
    str,
    Meta(
        max_length=MAX_PROMPT_CHARS,
        pattern=NO_NUL,
        description="Elements to suppress in the output, such as watermarking, artifacts, or undesired subjects.",
        examples=["no watermark, no motion blur, avoid text overlays"],
    ),
]
CallbackUrl = Annotated[
    str,
    Meta(
        max_length=2048,
        pattern=NO_NUL,
        description="Webhook destination for job completion events. Must be HTTPS and respond with 2xx status.",
        examples=["https://example.com/webhooks/sora2"],
    ),
]
ImageUrl = Annotated[
    str,
    Meta(
        max_length=2048,
        pattern=NO_NUL,
        description="HTTPS URL of an image (PNG, JPEG or WEBP, at most 20 MiB and 4096x4096) that the API fetches "
        "once, at create time, through the same checks as webhooks (public addresses only, no redirects). Only "
        "on models with `image_conditioning` (GET /api/models).",
        examples=["https://example.com/frames/first.png"],
    ),
]
ExtendFrom = Annotated[
    str,
    Meta(
        max_length=64,
        pattern=NO_NUL,
        description="Extend a clip: the id of a succeeded task of this account whose video the new one continues. "
        "The added `duration` seconds are rendered conditioned on its last frames, with its model, size and seed "
        "(`model_version`, `resolution` and `aspect_ratio` may be left out; sent, they must match), and the output "
        "is the whole clip, source plus extension, encoded once. Priced as the added seconds; the whole clip is "
        "limited per model (`max_extended_duration_s`, GET /api/models). Not in batches.",
        examples=["sora2aeeccc8d1274d569475872baf49a4d6"],
    ),
]


def _caseless(prefix: str) -> str:
    return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else c for c in prefix)


CallbackHeaders = Annotated[
    dict[str, str],
    Meta(
        description="Custom headers appended to webhook deliveries for routing or verification.",
        examples=[{"X-Env": "staging"}],
        extra_json_schema=schema_only(  # at most 20, printable ASCII values, none of the names SorAPI sets
            maxProperties=MAX_CALLBACK_HEADERS,
            propertyNames={
                "pattern": HEADER_NAME,
                "not": {"pattern": "^(?:" + "|".join(_caseless(p) for p in RESERVED_PREFIXES) + ")"},
            },
            additionalProperties={"type": "string", "maxLength": MAX_CALLBACK_HEADER_VALUE, "pattern": "^[ -~]*$"},
        ),
    ),
]
MAX_QUEUE_SECONDS = 7 * 24 * 3600
MaxQueueSeconds = Annotated[
    int,
    Meta(
        ge=1,
        le=MAX_QUEUE_SECONDS,
        description="Start deadline in seconds: a task still queued this long after creation ends `expired` with "
        "error_code `queue_timeout` and its credits released in full. Default: the plan's "
        "(Free 6 h, Pro 24 h, Scale none).",
        examples=[600],
    ),
]
MAX_METADATA_KEYS, MAX_METADATA_KEY_CHARS, MAX_METADATA_VALUE_CHARS = 16, 40, 500
METADATA_KEY_PATTERN = r"^(?!idempotency_key$)[^\x00]*$"
MetadataKey = Annotated[str, Meta(min_length=1, max_length=MAX_METADATA_KEY_CHARS, pattern=METADATA_KEY_PATTERN)]
MetadataValue = Annotated[str, Meta(max_length=MAX_METADATA_VALUE_CHARS, pattern=NO_NUL)]
ClientMetadata = Annotated[
    dict[MetadataKey, MetadataValue],
    Meta(
        max_length=MAX_METADATA_KEYS,
        description="Your own labels to find the task again: at most 16 string keys of at most 40 characters, "
        "string values of at most 500. Returned wherever the task is and sent in its webhooks; "
        "`GET /api/tasks?metadata[KEY]=VALUE` filters on them. `idempotency_key` is reserved.",
        examples=[{"order_id": "ord_1042", "customer": "acme"}],
        extra_json_schema=schema_only(
            maxProperties=MAX_METADATA_KEYS,
            propertyNames={
                "minLength": 1,
                "maxLength": MAX_METADATA_KEY_CHARS,
                "pattern": NO_NUL,
                "not": {"const": "idempotency_key"},
            },
            additionalProperties={"type": "string", "maxLength": MAX_METADATA_VALUE_CHARS, "pattern": NO_NUL},
        ),
    ),
]
WEBHOOK_EVENT_ITEM = {"type": "string", "enum": list(webhook_events.EVENTS)}
WebhookEventName = Annotated[str, Meta(extra_json_schema=schema_only(enum=list(webhook_events.EVENTS)))]
WebhookEvents = Annotated[
    list[WebhookEventName],
    Meta(
        min_length=1,
        max_length=len(webhook_events.EVENTS),
        description="The events delivered to `callback_url`, each at most once: any of "
        + ", ".join(webhook_events.EVENTS)
        + ". `progress` carries the render's step, total and percent, at most one every "
        f"{webhook_events.PROGRESS_INTERVAL_S} s. Default: " + ", ".join(webhook_events.DEFAULT) + ".",
        examples=[["running", "progress", "succeeded", "failed"]],
        extra_json_schema=schema_only(uniqueItems=True, items=WEBHOOK_EVENT_ITEM),
    ),
]
Speed = Annotated[
    str,
    Meta(
        description="Speed profile: `quality` (every step of the model), `balanced` or `fast` (fewer steps and a "
        "transformer cache, at a lower price: see `GET /api/credits/estimate`). Default: the model's, in the catalog.",
        examples=["fast"],
        extra_json_schema=schema_only(enum=[*speed.SPEEDS, None]),
    ),
]
IdempotencyKey = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=MAX_IDEMPOTENCY_KEY_CHARS,
        pattern=NO_NUL,
        description="Unique key (<= 64 chars) to guarantee at-most-once task creation on retries.",
        examples=["job-2024-03-12-001"],
    ),
]


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
    max_queue_seconds: MaxQueueSeconds | None = None
    metadata: ClientMetadata | None = None
    webhook_events: WebhookEvents | None = None
    image_url: (
        Annotated[
            ImageUrl,
            Meta(
                description="Image-to-video: the video's first frame, fetched from this HTTPS URL (or send the file "
                "as the multipart part `image`). It is scaled to cover the output size and centre-cropped."
            ),
        ]
        | None
    ) = None
    last_frame_url: (
        Annotated[
            ImageUrl,
            Meta(
                description="The video's last frame, fetched from this HTTPS URL (or the multipart part `last_frame`); "
                "needs a first frame, and a model with `last_frame_conditioning`."
            ),
        ]
        | None
    ) = None
    speed: Speed | None = None
    audio: (
        Annotated[
            Literal[True, False],  # a bool the lax decoder takes only as true/false, never 0/1 or "true"
            Meta(
                description="Deliver the soundtrack the model renders with the video (AAC in the MP4, Opus in the "
                "WebM). Only models whose family makes audio (LTX-2: `ltx-2`) take `true`; on any other model "
                "`true` is a 422 naming `audio`. Default: the model's, in the catalog (`ltx-2`: true; others: false).",
                examples=[True],
            ),
        ]
        | None
    ) = None
    extend_from: ExtendFrom | None = None


class InputImageInfo(msgspec.Struct, kw_only=True):
    """A conditioning image as the task recorded it (the file itself is kept with the task's outputs)."""

    sha256: Annotated[str, Meta(description="SHA-256 of the file's bytes (part of the idempotency fingerprint)")]
    content_type: Annotated[str, Meta(description="image/png, image/jpeg or image/webp, read from the content")]
    width: Annotated[int, Meta(description="Width of the file, before it is fitted to the output size")]
    height: Annotated[int, Meta(description="Height of the file, before it is fitted to the output size")]
    url: Annotated[str | None, Meta(description="The URL it was fetched from; null for an upload")] = None


class TaskRequest(msgspec.Struct, kw_only=True):
    """The request as the task records and echoes it: defaults applied, size resolved, seed fixed."""

    prompt: Annotated[str, Meta(description="The prompt as submitted")]
    model_version: Annotated[
        str, Meta(description="The model release that renders it (aliases resolved)", examples=["sora-2-latest"])
    ]
    duration: Annotated[int, Meta(description="Clip length in seconds", examples=[8])]
    resolution: Annotated[Size, Meta(description="The resolved preset, WIDTHxHEIGHT", examples=["720x1280"])]
    aspect_ratio: Annotated[Orientation, Meta(description="The resolved orientation", examples=["vertical"])]
    guidance: Annotated[float, Meta(description="Classifier-free guidance scale used", examples=[7.5])]
    seed: Annotated[
        int, Meta(description="The seed used (random when none was sent): reuse it to reproduce", examples=[42])
    ]
    negative_prompt: Annotated[str | None, Meta(description="Elements suppressed in the output")] = None
    callback_url: Annotated[str | None, Meta(description="Webhook destination, if any")] = None
    max_queue_seconds: Annotated[
        int | None,
        Meta(
            description="The start deadline that applies (sent, else the plan's): past it a queued task "
            "expires with `queue_timeout`; null: none",
            examples=[21600],
        ),
    ] = None
    webhook_events: Annotated[
        list[WebhookEventName],
        Meta(
            description="The events its webhook receives (sent, else the default), in the order a task meets them",
            examples=[list(webhook_events.DEFAULT)],
            extra_json_schema=schema_only(items=WEBHOOK_EVENT_ITEM),
        ),
    ] = msgspec.field(default_factory=lambda: list(webhook_events.DEFAULT))
    image: Annotated[
        InputImageInfo | None, Meta(description="The first-frame image (image-to-video); null: text-to-video")
    ] = None
    last_frame: Annotated[InputImageInfo | None, Meta(description="The last-frame image, if one was sent")] = None
    speed: Annotated[
        str,
        Meta(
            description="The speed profile rendered (sent, else the model's default)",
            examples=["quality"],
            extra_json_schema=schema_only(enum=list(speed.SPEEDS)),
        ),
    ] = speed.DEFAULT_SPEED
    audio: Annotated[
        bool, Meta(description="Whether the outputs carry the model's soundtrack (sent, else the model's default)")
    ] = False
    extended_from: Annotated[
        str | None, Meta(description="An extension: the task whose video this one continues; null otherwise")
    ] = None
    total_duration: Annotated[
        int | None,
        Meta(description="An extension: seconds of the whole clip, the source's plus `duration` (the added ones)"),
    ] = None


class GenerateResponse(msgspec.Struct, kw_only=True):
    task_id: Annotated[
        str,
        Meta(
            description="The job id: poll /api/status?task_id=... or wait for the webhook",
            examples=["sora2aeeccc8d1274d569475872baf49a4d6mwk4"],
        ),
    ]
    status: Annotated[
        TaskStatus,
        Meta(
            description="`queued` for a new task (a replay, or `Prefer: wait`, shows the current status)",
            examples=["queued"],
        ),
    ]
    credits_reserved: Annotated[
        int, Meta(description="Credits held for this render (charged on success)", examples=[16])
    ]
    created_at: Annotated[datetime, Meta(description="When the task was created (UTC)")]
    result: (
        Annotated[
            StatusResponse,
            Meta(
                description="With `Prefer: wait=N` only: the task as `/api/status` shows it, finished if it ended "
                "within N seconds (then `Preference-Applied: wait=N` is sent), else as it is now"
            ),
        ]
        | msgspec.UnsetType
    ) = msgspec.UNSET


class OutputLink(msgspec.Struct, kw_only=True):
    format: Annotated[str, Meta(description="mp4, webm, jpg (thumbnail) or json (metadata)", examples=["mp4"])]
    url: Annotated[str, Meta(description="Presigned download URL (short-lived; no API key needed)")]
    content_type: Annotated[str, Meta(examples=["video/mp4"], description="MIME type of the file")]
    size_bytes: Annotated[int, Meta(description="File size in bytes")]


class HistoryEvent(msgspec.Struct, kw_only=True):
    """One entry of a task's append-only history."""

    id: Annotated[int, Meta(description="Monotonic event id (history order)", examples=[42])]
    kind: Annotated[
        str,
        Meta(
            description="queued, credits_reserved, running, rendered, uploaded, credits_captured, succeeded, "
            "failed, cancelled, credits_released, webhook_*, expired",
            examples=["credits_reserved"],
        ),
    ]
    created_at: Annotated[datetime, Meta(description="When it happened (UTC)")]
    data: Annotated[
        dict[str, Any],
        Meta(description="Kind-specific details (credits, error code, outputs...)", examples=[{"credits": 16}]),
    ] = {}


class EventsPage(msgspec.Struct, kw_only=True):
    """A page of history, oldest first; pass `next_cursor` back as `events_cursor` for the next one."""

    data: Annotated[list[HistoryEvent], Meta(description="Events, oldest first")]
    next_cursor: Annotated[str | None, Meta(description="Cursor for the next page; null on the last page")] = None
    has_more: Annotated[bool, Meta(description="More events follow")] = False


class LiveProgress(msgspec.Struct, kw_only=True):
    """Where an unfinished task is right now: its place in the queue, then its denoising step."""

    phase: Annotated[
        str,
        Meta(
            description="queued, waiting (for a render worker), loading, denoising, encoding, uploading or finishing",
            examples=["denoising"],
        ),
    ]
    render_queue_position: Annotated[
        int | None,
        Meta(
            description="While `waiting`: running tasks ahead of this one for a render worker (0: next)", examples=[2]
        ),
    ] = None
    step: Annotated[int, Meta(description="Denoising steps done", examples=[12])] = 0
    total_steps: Annotated[int, Meta(description="Denoising steps in total", examples=[30])] = 0


WebhookEventType = Annotated[
    str, Meta(extra_json_schema=schema_only(enum=[f"task.{event}" for event in webhook_events.EVENTS]))
]


class WebhookAttempt(msgspec.Struct, kw_only=True):
    """One HTTP attempt to deliver a task's webhook (every attempt is recorded)."""

    event_id: Annotated[str, Meta(description="The event's `webhook-id` (same on every retry and redelivery)")]
    event_type: Annotated[
        WebhookEventType,
        Meta(description="task.<event> for each event of `webhook_events`", examples=["task.succeeded"]),
    ]
    delivery_id: Annotated[str, Meta(description="Groups the attempts of one delivery run")]
    trigger: Annotated[
        str,
        Meta(
            description="automatic, or redeliver (POST .../webhooks/redeliver)",
            extra_json_schema=schema_only(enum=["automatic", "redeliver"]),
        ),
    ]
    attempt: Annotated[int, Meta(ge=1, le=6, description="1 to 6 within a delivery run")]
    attempted_at: datetime
    outcome: Annotated[
        str,
        Meta(
            description="delivered (2xx), retry (will try again), gone (410: stopped) or "
            "failed (the last attempt failed)",
            extra_json_schema=schema_only(enum=["delivered", "retry", "gone", "failed"]),
        ),
    ]
    status_code: Annotated[int | None, Meta(description="The receiver's HTTP status (null: no answer)")] = None
    latency_ms: Annotated[int | None, Meta(description="Time to the receiver's answer")] = None
    error: Annotated[str | None, Meta(description="Why the attempt failed (timeout, refused, blocked address...)")] = (
        None
    )


class StatusResponse(msgspec.Struct, kw_only=True):
    """Body of `GET /api/status`: the seed's shape plus progress, outputs and timestamps."""

    task_id: Annotated[
        str,
        Meta(description="The job id returned by /api/generate", examples=["sora2aeeccc8d1274d569475872baf49a4d6mwk4"]),
    ]
    status: Annotated[
        TaskStatus, Meta(description="queued, running, succeeded, failed, cancelled or expired", examples=["succeeded"])
    ]
    request: Annotated[TaskRequest, Meta(description="The request as recorded: defaults applied, seed fixed")]
    response: Annotated[
        list[str], Meta(description="Playable URLs of the outputs once succeeded (presigned, short-lived)")
    ]
    error_message: Annotated[str | None, Meta(description="Why the task failed, for humans")]
    error_code: Annotated[
        str | None, Meta(description="Stable failure code (render_failed, timeout, cancelled, insufficient_credits...)")
    ] = None
    progress: Annotated[int, Meta(ge=0, le=100, description="Percent done", examples=[42])] = 0
    outputs: Annotated[list[OutputLink], Meta(description="Each output with its format, URL and size")] = []
    credits_reserved: Annotated[int, Meta(description="Credits held for this task")] = 0
    credits_charged: Annotated[int, Meta(description="Credits charged (on success)")] = 0
    render: Annotated[
        dict[str, Any] | None, Meta(description="What was actually rendered (size, frames, steps, timings)")
    ] = None
    metadata: Annotated[
        dict[str, Any], Meta(description="The `metadata` sent at creation, and the `idempotency_key`")
    ] = {}
    created_at: Annotated[datetime | None, Meta(description="When the task was created (UTC)")] = None
    started_at: Annotated[datetime | None, Meta(description="When it started running (UTC)")] = None
    finished_at: Annotated[datetime | None, Meta(description="When it reached a final status (UTC)")] = None
    expires_at: Annotated[datetime | None, Meta(description="When the assets are deleted (retention window)")] = None
    live: Annotated[
        LiveProgress | None, Meta(description="Queue position and denoising step of an unfinished task")
    ] = None
    events: Annotated[EventsPage | None, Meta(description="History events, with `expand=events`")] = None
    queue_position: Annotated[
        Annotated[int, Meta(ge=1)] | None,
        Meta(
            description="While `queued`: place in the account's plan concurrency queue (1 starts next, "
            "when one of the plan's concurrent slots frees); null otherwise",
            examples=[1],
        ),
    ] = None
    webhooks: Annotated[
        list[WebhookAttempt] | None, Meta(description="Webhook delivery attempts, oldest first, with `expand=webhooks`")
    ] = None
    eta_seconds: Annotated[
        Annotated[int, Meta(ge=1)] | None,
        Meta(
            description="Estimated seconds until the task finishes, while queued or running: from its "
            "queue_position, the plan's concurrent slots and this model's recent render times; null when "
            "unknown or finished",
            examples=[95],
        ),
    ] = None


class ErrorDetail(msgspec.Struct, kw_only=True, omit_defaults=True):
    field: Annotated[str, Meta(description="The offending field or parameter", examples=["prompt"])]
    message: Annotated[str, Meta(description="What is wrong with it", examples=["Expected `str` of length <= 5000"])]


class ErrorBody(msgspec.Struct, kw_only=True):
    code: Annotated[
        str,
        Meta(
            description="Stable machine-readable code: match on this, never on the message",
            examples=["validation_error"],
        ),
    ]
    message: Annotated[str, Meta(description="Human-readable explanation", examples=["the request is invalid"])]
    details: Annotated[list[ErrorDetail], Meta(description="Field-level problems (validation errors)")] = []


class ErrorEnvelope(msgspec.Struct, kw_only=True):
    """Every error response: `{"error": {"code", "message", "details"}}`."""

    error: Annotated[ErrorBody, Meta(description="What went wrong")]


class TaskSummary(msgspec.Struct, kw_only=True):
    """One row of `GET /api/tasks` (poll `/api/status` for URLs and live progress)."""

    task_id: Annotated[str, Meta(description="The task id")]
    status: Annotated[TaskStatus, Meta(description="queued, running, succeeded, failed, cancelled or expired")]
    prompt: Annotated[str, Meta(description="The prompt as submitted")]
    model_version: Annotated[str, Meta(description="The model that renders it", examples=["sora-2-latest"])]
    duration: Annotated[int, Meta(description="Clip length in seconds (an extension's: the added ones)")]
    resolution: Annotated[Size, Meta(description="Render resolution", examples=["1280x720"])]
    extended_from: Annotated[
        str | None, Meta(description="An extension: the task whose video it continues; null otherwise")
    ] = None
    progress: Annotated[int, Meta(description="Percent done as last recorded (live progress: /api/status)")]
    credits_reserved: Annotated[int, Meta(description="Credits held for (or charged by) the task")]
    error_code: Annotated[str | None, Meta(description="Stable failure code, if it failed")] = None
    created_at: Annotated[datetime, Meta(description="When the task was created (UTC)")]
    finished_at: Annotated[datetime | None, Meta(description="When it reached a final status")] = None
    expires_at: Annotated[datetime | None, Meta(description="When its assets are (or were) deleted")] = None
    eta_seconds: Annotated[
        int | None,
        Meta(
            description="Estimated seconds until it finishes while queued or running (see /api/status); null "
            "when unknown or finished"
        ),
    ] = None
    metadata: Annotated[dict[str, str], Meta(description="The `metadata` sent at creation")] = {}


class TaskList(msgspec.Struct, kw_only=True):
    """A page of the account's tasks, newest first."""

    data: Annotated[list[TaskSummary], Meta(description="Tasks, newest first")]
    next_cursor: Annotated[str | None, Meta(description="Pass as `cursor` for the next page; null on the last")] = None
    has_more: Annotated[bool, Meta(description="More tasks follow")] = False


class WebhookOutput(msgspec.Struct, kw_only=True):
    format: str
    url: str


WebhookMetadata = dict[str, str | None]
"""The task's `metadata` as `/api/status` shows it: the client's labels and its `idempotency_key`."""


class ProgressBeat(msgspec.Struct, kw_only=True):
    """A `task.progress` webhook's news: the render's last heartbeat."""

    phase: Annotated[str, Meta(description="denoising", examples=["denoising"])]
    step: Annotated[int, Meta(description="Denoising steps done", examples=[12])]
    total_steps: Annotated[int, Meta(description="Denoising steps in total", examples=[30])]
    percent: Annotated[int, Meta(description="As `progress` in GET /api/status", examples=[39])]


class WebhookPayload(msgspec.Struct, kw_only=True):
    """Body of every webhook: the seed's payload plus the event's id and type.

    Signed as sent: `X-Signature` (hex HMAC-SHA256 of these exact bytes) and Standard Webhooks
    `webhook-id` / `webhook-timestamp` / `webhook-signature`.
    """

    id: Annotated[str, Meta(description="Event id, equal to the `webhook-id` header; dedupe on it")]
    type: Annotated[
        str,
        Meta(
            description="task.<event>: task.queued, task.running, task.progress, task.succeeded, task.failed, "
            "task.cancelled or task.expired"
        ),
    ]
    created_at: Annotated[datetime, Meta(description="When the task reached this status (or made this progress)")]
    task_id: str
    status: Annotated[
        str,
        Meta(description="The status this event announces (GET /api/status shows it too); `running` for progress"),
    ]
    response: Annotated[list[WebhookOutput], Meta(description="Outputs with playable URLs (succeeded only)")]
    request: TaskRequest
    metadata: WebhookMetadata
    error_code: str | None = None
    error_message: str | None = None
    expires_at: Annotated[datetime | None, Meta(description="When the assets are (or were) deleted")] = None
    progress: (
        Annotated[ProgressBeat, Meta(description="task.progress only: how far the render is")] | msgspec.UnsetType
    ) = msgspec.UNSET


class WebhookSecret(msgspec.Struct, kw_only=True):
    """The account's webhook signing secret: pass it unchanged to any of the verifiers."""

    secret: Annotated[
        str,
        Meta(
            description="whsec_... : verifies X-Signature (HMAC-SHA256 hex, keyed by this "
            "string) and webhook-signature (Standard Webhooks)"
        ),
    ]
    previous_secret_valid_until: Annotated[
        datetime | None,
        Meta(description="After a rotation, deliveries are also signed with the previous secret until then"),
    ] = None


class WebhookDeliveries(msgspec.Struct, kw_only=True):
    """A page of a task's delivery attempts, oldest first; pass `next_cursor` back as `cursor` for the next one."""

    task_id: str
    callback_url: str | None
    deliveries: Annotated[list[WebhookAttempt], Meta(description="Attempts, oldest first")]
    has_more: Annotated[bool, Meta(description="More attempts follow")] = False
    next_cursor: Annotated[str | None, Meta(description="Cursor for the next page; null on the last page")] = None


class Redelivery(msgspec.Struct, kw_only=True):
    """A redelivery was queued: the last event, with its original `webhook-id`."""

    task_id: str
    event_id: str
    event_type: str
    delivery_id: str
