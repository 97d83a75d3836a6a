"""Wire shapes of `POST /api/batches` and `GET /api/batches/{batch_id}`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec
from msgspec import Meta

from sorapi.contracts.schemas import GenerateRequest, GenerateResponse, IdempotencyKey, TaskSummary, schema_only

MAX_BATCH_ITEMS = 100

BatchItems = Annotated[
    list[GenerateRequest],
    Meta(
        min_length=1,
        max_length=MAX_BATCH_ITEMS,
        description="1 to 100 generate requests, each the body `POST /api/generate` takes, without an "
        "`idempotency_key` of its own: item `i`'s key is derived from the batch's (`batch_…/i`). Errors name "
        "the item (`items[3].duration`).",
        extra_json_schema=schema_only(
            items={
                "allOf": [
                    {"$ref": "#/components/schemas/GenerateRequest"},
                    {
                        "not": {"properties": {"idempotency_key": {"type": "string"}}, "required": ["idempotency_key"]},
                        "description": "an item's key is derived from the batch's",
                    },
                ]
            }
        ),
    ),
]


class BatchRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Body of `POST /api/batches`: all items are created, or none."""

    items: BatchItems
    idempotency_key: (
        Annotated[
            IdempotencyKey,
            Meta(
                description="The batch's key (or send the `Idempotency-Key` header): the same key and body return "
                "the same batch; the same key with another body is `idempotency_key_reused`.",
                examples=["nightly-2026-12-01"],
            ),
        ]
        | None
    ) = None


class BatchCreated(msgspec.Struct, kw_only=True):
    batch_id: Annotated[
        str, Meta(description="Read it back with `GET /api/batches/{batch_id}`", examples=["batch_5f0c..."])
    ]
    task_ids: Annotated[list[str], Meta(description="The tasks, in the order of `items`")]
    tasks: Annotated[
        list[GenerateResponse], Meta(description="Each task as `POST /api/generate` answers it, in item order")
    ]
    credits_reserved: Annotated[int, Meta(description="Credits held for the whole batch", examples=[48])]
    created_at: Annotated[datetime, Meta(description="When the batch was created (UTC)")]


class BatchCounts(msgspec.Struct, kw_only=True):
    """How many of the batch's tasks are in each status."""

    queued: Annotated[int, Meta(description="Waiting for a plan slot or a render worker")] = 0
    running: Annotated[int, Meta(description="Rendering or uploading")] = 0
    succeeded: Annotated[int, Meta(description="Finished, video ready")] = 0
    failed: Annotated[int, Meta(description="Ended with an `error_code`, nothing charged")] = 0
    cancelled: Annotated[int, Meta(description="Cancelled, nothing charged")] = 0
    expired: Annotated[int, Meta(description="Assets deleted after retention, or never started in time")] = 0


class BatchStatus(msgspec.Struct, kw_only=True):
    """A batch as it is now: counts by status and its tasks (poll `/api/status` for URLs and live progress)."""

    batch_id: Annotated[str, Meta(description="The batch id", examples=["batch_5f0c..."])]
    created_at: Annotated[datetime, Meta(description="When the batch was created (UTC)")]
    total: Annotated[int, Meta(description="Number of tasks in the batch", examples=[3])]
    done: Annotated[bool, Meta(description="Every task has reached a final status")]
    counts: Annotated[BatchCounts, Meta(description="Tasks per status")]
    credits_reserved: Annotated[int, Meta(description="Credits held for the batch at creation")]
    tasks: Annotated[list[TaskSummary], Meta(description="The tasks, in the order of the request's items")]
