"""Workflow and activity contracts: small structs only (ids, keys, numbers), never frames or files.

New fields must carry defaults so histories recorded with older shapes still replay.
"""

from __future__ import annotations

from datetime import datetime

import msgspec


class RenderSpeed(msgspec.Struct, kw_only=True, frozen=True):
    """A render's speed profile as the API resolved it from the catalog (`sorapi.domain.speed`).

    The default is what renders were before profiles: every step, no cache, no compilation.
    """

    name: str = "quality"
    steps_fraction: float = 1.0
    """Share of the steps a tiny dev model runs (real models get `RenderSpec.steps` already resolved)."""
    cache_threshold: float = 0.0
    """First Block Cache threshold on the transformer for this render only (0: none)."""
    compile: bool = False
    """Regional torch.compile of the transformer's blocks for this render, on a CUDA device only."""


class RenderSpec(msgspec.Struct, kw_only=True, frozen=True):
    """What to render, fully resolved by the API (seed fixed, size and frame count computed)."""

    task_id: str
    model: str
    family: str
    weights: str
    prompt: str
    negative_prompt: str | None
    width: int
    height: int
    duration_s: int
    fps: int
    guidance_scale: float
    steps: int
    seed: int
    dtype: str = "bfloat16"
    num_frames: int = 0
    """Frames at the model's fps, rounded per family (0 in histories older than this field: recompute)."""
    progress_webhook_lane: str = ""
    """The task asked for `progress` webhooks: the render host starts them on this delivery lane
    (empty: it did not ask)."""
    image_key: str = ""
    """Image-to-video: the S3 key of the first-frame image, under the task's prefix (empty: text-to-video).
    The render host reads it with its own S3 user, allowed GET on `tasks/*/inputs/*` only."""
    last_frame_key: str = ""
    """The S3 key of the last-frame image (empty: none)."""
    frame_conditions: bool = False
    """Condition at frame indices (LTXConditionPipeline) rather than on the first frame alone
    (LTXImageToVideoPipeline): the model's `last_frame_conditioning`."""
    speed: RenderSpeed = msgspec.field(default_factory=RenderSpeed)
    """The speed profile: `steps` is already its step count; the cache and compilation apply per render."""
    audio: bool = False
    """Deliver the soundtrack with the video (the model's family makes one: LTX-2)."""
    source_video_key: str = ""
    """An extension: the S3 key of its copy of the source's MP4, under the task's prefix (empty: none). The
    render continues it from its last frames and delivers source plus extension as one clip."""


VIDEO_TASK_VERSION = 2
"""The VideoTask behaviour the API starts tasks with. From 1 on, every step that came with a patch is
taken because the input says so, not by `workflow.patched`: each patch marker also upserts the
`TemporalChangeVersion` search attribute, two history events and a visibility write per patch per task.
From 2 on, the workflow does not upsert again the search attributes the API starts it with, nor keep
its stage in a memo (the API reads the stage from the attributes): three writes fewer per task."""


class VideoTaskInput(msgspec.Struct, kw_only=True, frozen=True):
    task_id: str
    account_id: str
    price: int
    render: RenderSpec
    render_queue: str = "sorapi-render"
    upload_pickup_s: float = 60.0
    """How long an upload may wait for its render host before the host is presumed gone."""
    render_heartbeat_s: int = 30
    """Heartbeat timeout of the render activity: how fast a dead render worker is noticed."""
    retention_hours: int = 0
    """The plan's retention window: this long after success the assets are deleted and the task expires
    (0: no retention workflow, as in histories recorded before this field; the API always sets it)."""
    has_callback: bool = False
    """The task has a callback_url: its terminal events are delivered as webhooks."""
    webhook_queue: str = "sorapi-webhooks-free"
    """The plan's webhook delivery lane (a task queue)."""
    max_queue_s: int = 0
    """Start deadline: a task still waiting for a slot this long after it asked expires (0: none)."""
    plan: str = ""
    """The account's plan when the task was made: the `SorapiPlan` search attribute (empty in older histories)."""
    version: int = 0
    """VIDEO_TASK_VERSION when it started; 0 (histories recorded before this field, and inputs that leave it
    out): each patched step is decided by `workflow.patched`, as its history recorded it."""


class HoldInput(msgspec.Struct, kw_only=True, frozen=True):
    task_id: str
    account_id: str
    amount: int


class StoredObject(msgspec.Struct, kw_only=True, frozen=True):
    format: str
    key: str
    content_type: str
    size_bytes: int


class LocalFile(msgspec.Struct, kw_only=True, frozen=True):
    format: str
    path: str
    content_type: str
    size_bytes: int


class RenderMeta(msgspec.Struct, kw_only=True, frozen=True):
    """What was actually rendered; recorded on the task so results are explainable and reproducible."""

    model: str
    family: str
    width: int
    height: int
    num_frames: int
    fps: int
    steps: int
    seed: int
    guidance_scale: float
    requested_width: int
    requested_height: int
    dev_model: bool
    host: str
    load_s: float = 0.0
    denoise_s: float = 0.0
    encode_s: float = 0.0
    duration_s: int = 0
    dtype: str = ""
    device: str = ""
    speed: str = ""
    """The speed profile rendered (empty on renders recorded before profiles: quality)."""
    cache: str = ""
    """The transformer cache this render ran with (`first_block:<threshold>`; empty: none)."""
    compiled: bool = False
    """The transformer's repeated blocks ran under torch.compile."""
    conditioning: list[str] = []
    """What it was conditioned on: images (`first_frame`, `last_frame`), each fitted to the output size by
    scaling to cover it and cropping the centre, or an extension's `source_video`; empty: text-to-video."""
    audio: bool = False
    """The MP4 and WebM carry the soundtrack (AAC and Opus), as long as the video."""
    audio_sample_rate: int = 0
    """Sample rate of the delivered audio tracks in Hz (0: no audio)."""
    audio_channels: int = 0
    """1 (mono) or 2 (stereo); 0: no audio."""
    audio_source_rate: int = 0
    """The rate the model's vocoder produced before resampling (0: no audio)."""
    source_frames: int = 0
    """An extension: how many of `num_frames` are its source's (they come first); 0: not an extension."""


class RenderResult(msgspec.Struct, kw_only=True, frozen=True):
    host_queue: str
    files: list[LocalFile]
    meta: RenderMeta


class RenderProgress(msgspec.Struct, kw_only=True, frozen=True):
    """Heartbeat details of the render activity: the API reads these to report live progress."""

    phase: str
    step: int = 0
    total: int = 0


class UploadInput(msgspec.Struct, kw_only=True, frozen=True):
    task_id: str
    files: list[LocalFile]


class MarkSucceeded(msgspec.Struct, kw_only=True, frozen=True):
    task_id: str
    outputs: list[StoredObject]
    render: RenderMeta
    expires_at: datetime | None = None
    """When the retention window ends (shown by /api/status from the moment the task succeeds)."""


class MarkFailed(msgspec.Struct, kw_only=True, frozen=True):
    task_id: str
    status: str
    error_code: str
    error_message: str


class SlotRequest(msgspec.Struct, kw_only=True, frozen=True):
    """Ask for one of the account's plan concurrency slots (the task moves to running when granted)."""

    task_id: str
    account_id: str
    gate_queue: str = ""
    """Task queue of the account's slot gate (the orchestration queue; empty in older histories)."""


class GateWaiter(msgspec.Struct, kw_only=True, frozen=True, array_like=True, order=True):
    """One task in an account's line: ordered by creation, as `queue_position` counts."""

    queued_at: float
    """The task's `created_at` as a POSIX timestamp."""
    task_id: str


class GateRequest(msgspec.Struct, kw_only=True, frozen=True):
    """Signal to a slot gate: this task waits for a slot; `limit` is the plan's, read just now."""

    waiter: GateWaiter
    limit: int


class GateState(msgspec.Struct, kw_only=True, frozen=True):
    """A slot gate's whole state: its start input, its continue-as-new input and its query answer."""

    account_id: str
    limit: int = 0
    running: list[str] = msgspec.field(default_factory=list)
    """Tasks holding a slot (granted, until they release it)."""
    waiting: list[GateWaiter] = msgspec.field(default_factory=list)
    recovered: bool = False
    """False on a fresh start: the gate first rebuilds its line from the task rows (see SlotGate)."""
    more_in_rows: bool = False
    """The rebuilt line was cut short: read the rows again once it is through."""
    max_history: int = 5_000
    """Continue as new past this many history events (tests set it low)."""


class GateSnapshot(msgspec.Struct, kw_only=True, frozen=True):
    """An account's slot holders and line, read from the task rows."""

    limit: int
    running: list[str]
    waiting: list[GateWaiter]
    more: bool = False
    """The line was longer than one read: read again once these waiters are through."""


class RefreshBatch(msgspec.Struct, kw_only=True, frozen=True):
    """Start billing `period` for up to `limit` accounts with ids after `after_account_id`."""

    period: str
    after_account_id: str = ""
    limit: int = 200


class RefreshBatchResult(msgspec.Struct, kw_only=True, frozen=True):
    last_account_id: str
    accounts: int
    refreshed: int
    granted: int
    expired: int
    done: bool


class WebhookProgress(msgspec.Struct, kw_only=True, frozen=True):
    """What a `progress` webhook announces: one render heartbeat."""

    phase: str
    step: int
    total: int
    percent: int


class WebhookDeliveryInput(msgspec.Struct, kw_only=True, frozen=True):
    """Deliver one event of a task, with retries, on the plan's lane."""

    task_id: str
    event: str
    """What the event announces: a status (queued, running, succeeded, failed, cancelled, expired) or progress."""
    event_id: str
    """Sent as `webhook-id` and payload `id`: the same on every attempt and redelivery of the event."""
    lane: str
    trigger: str = "automatic"
    """"automatic" (the task's workflow) or "redeliver" (POST /api/tasks/{id}/webhooks/redeliver)."""
    progress: WebhookProgress | None = None
    """The heartbeat a `progress` event announces."""


class DeliverWebhook(msgspec.Struct, kw_only=True, frozen=True):
    """One HTTP attempt of a delivery; `delivery_id` + `attempt` identify it (retries reuse the record)."""

    task_id: str
    event: str
    event_id: str
    delivery_id: str
    attempt: int
    max_attempts: int
    trigger: str = "automatic"
    progress: WebhookProgress | None = None


class DeliveryOutcome(msgspec.Struct, kw_only=True, frozen=True):
    outcome: str
    """delivered (2xx), retry (try again later), gone (410: stop) or failed (last attempt failed)."""
    status_code: int | None = None
    retry_after_s: float | None = None
    error: str | None = None


class DeliveryReport(msgspec.Struct, kw_only=True, frozen=True):
    """What a delivery workflow ended with."""

    event_id: str
    outcome: str
    attempts: int


class RetentionInput(msgspec.Struct, kw_only=True, frozen=True):
    """Keep a succeeded task's assets until `expires_at` (or a delete signal), then expire it."""

    task_id: str
    expires_at: datetime
    has_callback: bool = False
    webhook_queue: str = "sorapi-webhooks-free"


class ExpireTask(msgspec.Struct, kw_only=True, frozen=True):
    task_id: str
    reason: str
    """retention (the window ended), deleted (DELETE /api/tasks/{id}) or cancelled (workflow cancelled)."""


class CreditRefreshInput(msgspec.Struct, kw_only=True, frozen=True):
    """The scheduled run passes nothing: the period is the month the run starts in (UTC)."""

    period: str = ""
    batch_size: int = 200


class CreditRefreshResult(msgspec.Struct, kw_only=True, frozen=True):
    period: str
    accounts: int = 0
    refreshed: int = 0
    granted: int = 0
    expired: int = 0


class SweepInput(msgspec.Struct, kw_only=True, frozen=True):
    """One sweep: running tasks, and queued tasks created in [`since`, now - `min_age_s`)."""

    since: datetime | None = None
    """Where the last sweep stopped (None: `min_age_s` + 10 minutes ago)."""
    min_age_s: float = 120.0
    """A queued task younger than this may still be starting its workflow: leave it."""
    limit: int = 2_000


class SweepResult(msgspec.Struct, kw_only=True, frozen=True):
    settled: list[str]
    """Tasks failed because their workflow was gone."""
    next_since: datetime
    """Where the next sweep starts."""


class RedeliveryInput(msgspec.Struct, kw_only=True, frozen=True):
    """A redelivery held in one of its task's slots: the delivery to run, under its own workflow id."""

    delivery: WebhookDeliveryInput
    delivery_id: str
    """The delivery's workflow id, fresh per redelivery: its attempts are logged under it."""


class AuditPruneInput(msgspec.Struct, kw_only=True, frozen=True):
    """One scheduled prune: key-use audit entries older than `retention_days` (0: keep everything)."""

    retention_days: int = 90
    batch_size: int = 5_000
    """Entries deleted per activity, each batch its own short transaction."""
    max_batches: int = 200
    """Per run: a backlog (a lowered retention) drains over the following hourly runs."""


class AuditPruneBatch(msgspec.Struct, kw_only=True, frozen=True):
    before: datetime
    """Entries created before this instant go."""
    limit: int = 5_000


class AuditPruneResult(msgspec.Struct, kw_only=True, frozen=True):
    before: datetime | None = None
    """The cutoff of this run (None: retention off)."""
    deleted: int = 0
    batches: int = 0
    more: bool = False
    """The run stopped at `max_batches` with entries still older than the cutoff."""
