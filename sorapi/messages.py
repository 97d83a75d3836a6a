"""Workflow and activity contracts: small structs only (ids, keys, numbers), never frames or files.

New fields must carry defaults so histories recorded with older shapes still replay.
"""

from __future__ import annotations

import msgspec


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


class VideoTaskInput(msgspec.Struct, kw_only=True, frozen=True):
    task_id: str
    account_id: str
    price: int
    render: RenderSpec
    render_queue: str = "sorapi-render"


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


class MarkRunning(msgspec.Struct, kw_only=True, frozen=True):
    task_id: str


class MarkSucceeded(msgspec.Struct, kw_only=True, frozen=True):
    task_id: str
    outputs: list[StoredObject]
    render: RenderMeta


class MarkFailed(msgspec.Struct, kw_only=True, frozen=True):
    task_id: str
    status: str
    error_code: str
    error_message: str
