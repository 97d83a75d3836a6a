"""Every activity a workflow runs, as a typed reference: its name, what it takes and what it returns.

Workflows never import activity code (their sandbox would pull in the database driver or torch), so
they run an activity by name. An `Activity[A, R]` keeps that name together with its argument type
`A` and result type `R`: `sorapi.workflows.steps.run(RESERVE_CREDITS, hold, ...)` is checked by mypy
like a function call, and the result is decoded into `R`. `tests/test_activity_contracts.py` holds
every implementation the workers register to the same name and types.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sorapi.contracts import names
from sorapi.contracts.messages import (
    AuditPruneBatch,
    DeliverWebhook,
    DeliveryOutcome,
    ExpireTask,
    GateSnapshot,
    HoldInput,
    MarkFailed,
    MarkSucceeded,
    RefreshBatch,
    RefreshBatchResult,
    RenderResult,
    RenderSpec,
    RetentionInput,
    SlotRequest,
    StoredObject,
    SweepInput,
    SweepResult,
    UploadInput,
    WebhookDeliveryInput,
)

A = TypeVar("A")
R = TypeVar("R")


@dataclass(frozen=True)
class Activity(Generic[A, R]):
    """An activity as the workflows see it."""

    name: str
    arg_type: Any
    """The type of its one argument (for the contract test: the static type is `A`)."""
    result_type: Any
    """What the data converter decodes its result into."""


RESERVE_CREDITS = Activity[HoldInput, int](names.RESERVE_CREDITS, HoldInput, int)
CAPTURE_CREDITS = Activity[HoldInput, int](names.CAPTURE_CREDITS, HoldInput, int)
RELEASE_CREDITS = Activity[HoldInput, int](names.RELEASE_CREDITS, HoldInput, int)
MARK_SUCCEEDED = Activity[MarkSucceeded, bool](names.MARK_SUCCEEDED, MarkSucceeded, bool)
MARK_FAILED = Activity[MarkFailed, bool](names.MARK_FAILED, MarkFailed, bool)
RENDER_VIDEO = Activity[RenderSpec, RenderResult](names.RENDER_VIDEO, RenderSpec, RenderResult)
UPLOAD_OUTPUTS = Activity[UploadInput, list[StoredObject]](names.UPLOAD_OUTPUTS, UploadInput, list[StoredObject])
ACQUIRE_SLOT = Activity[SlotRequest, bool](names.ACQUIRE_SLOT, SlotRequest, bool)
REQUEST_SLOT = Activity[SlotRequest, bool](names.REQUEST_SLOT, SlotRequest, bool)
RELEASE_SLOT = Activity[SlotRequest, None](names.RELEASE_SLOT, SlotRequest, None)
MARK_RUNNING = Activity[str, bool](names.MARK_RUNNING, str, bool)
GATE_SNAPSHOT = Activity[str, GateSnapshot](names.GATE_SNAPSHOT, str, GateSnapshot)
ENDED_TASKS = Activity[list[str], list[str]](names.ENDED_TASKS, list[str], list[str])
SETTLE_ORPHAN = Activity[str, bool](names.SETTLE_ORPHAN, str, bool)
SWEEP_STRANDED = Activity[SweepInput, SweepResult](names.SWEEP_STRANDED, SweepInput, SweepResult)
REFRESH_CREDITS = Activity[RefreshBatch, RefreshBatchResult](names.REFRESH_CREDITS, RefreshBatch, RefreshBatchResult)
RELEASE_EXPIRED_HOLDS = Activity[RefreshBatch, int](names.RELEASE_EXPIRED_HOLDS, RefreshBatch, int)
PRUNE_AUDIT_EVENTS = Activity[AuditPruneBatch, int](names.PRUNE_AUDIT_EVENTS, AuditPruneBatch, int)
EXPIRE_TASK = Activity[ExpireTask, int](names.EXPIRE_TASK, ExpireTask, int)
DISCARD_OUTPUTS = Activity[str, int](names.DISCARD_OUTPUTS, str, int)
DELIVER_WEBHOOK = Activity[DeliverWebhook, DeliveryOutcome](names.DELIVER_WEBHOOK, DeliverWebhook, DeliveryOutcome)
START_WEBHOOK_DELIVERY = Activity[WebhookDeliveryInput, str](names.START_WEBHOOK_DELIVERY, WebhookDeliveryInput, str)
START_RETENTION = Activity[RetentionInput, str](names.START_RETENTION, RetentionInput, str)

ALL: tuple[Activity[Any, Any], ...] = tuple(value for value in globals().values() if isinstance(value, Activity))
