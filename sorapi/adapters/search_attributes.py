"""The Temporal UI as the operator console: a task's custom search attributes and readable summaries.

A VideoTask workflow carries `SorapiAccountId`, `SorapiPlan`, `SorapiModel` and `SorapiStatus`
from its start (the API sets them, the workflow upserts them again behind the `search-attributes`
patch), then `SorapiRenderHost` once a render returns, and `SorapiErrorCode` /
`SorapiCreditsCharged` when it ends. Operators filter on them in the UI or with
`temporal workflow list --query 'SorapiStatus="failed" AND SorapiModel="sora-2-latest"'`
(docs/operations.md).

Search attributes are indexed in clear (never encoded by the payload codec): they hold ids, names
and numbers only, never a prompt. Summaries and details are payloads: the SDK encodes them through
the data converter, so with `sorapi.adapters.payload_codec` they are encrypted exactly as the prompt itself
is, and the UI shows them through the codec endpoint. A prompt excerpt in them therefore reveals
nothing the history did not already hold, to anyone without the payload key.

Every server that runs the workflows must know the attributes first: `sorapi dev` and the test
servers register them (`DEV_SERVER_FLAGS`, `register`), a real cluster with `sorapi temporal setup`,
Temporal Cloud with `tcld namespace search-attributes add` or its UI.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.client import Client
from temporalio.common import (
    SearchAttributeIndexedValueType,
    SearchAttributeKey,
    SearchAttributePair,
    TypedSearchAttributes,
)
from temporalio.service import RPCError, RPCStatusCode

from sorapi.contracts.messages import RenderSpec
from sorapi.contracts.status import RUNNING

__all__ = [
    "ACCOUNT_ID",
    "CREDITS_CHARGED",
    "DEV_SERVER_FLAGS",
    "ERROR_CODE",
    "KEYS",
    "MODEL",
    "PLAN",
    "RENDER_HOST",
    "STATUS",
    "AttributeConflict",
    "initial",
    "register",
    "render_summary",
    "stage",
    "task_details",
    "task_summary",
]

ACCOUNT_ID = SearchAttributeKey.for_keyword("SorapiAccountId")
PLAN = SearchAttributeKey.for_keyword("SorapiPlan")
MODEL = SearchAttributeKey.for_keyword("SorapiModel")
STATUS = SearchAttributeKey.for_keyword("SorapiStatus")
"""queued, running, succeeded, failed, cancelled, expired, or ended_elsewhere (settled by the API or
the sweeper before it ran: the task row has the end)."""
ERROR_CODE = SearchAttributeKey.for_keyword("SorapiErrorCode")
CREDITS_CHARGED = SearchAttributeKey.for_int("SorapiCreditsCharged")
RENDER_HOST = SearchAttributeKey.for_keyword("SorapiRenderHost")
"""The render host's own task queue (the one its upload runs on): filter on it to drain a host."""

KEYS: tuple[SearchAttributeKey[Any], ...] = (ACCOUNT_ID, PLAN, MODEL, STATUS, ERROR_CODE, CREDITS_CHARGED, RENDER_HOST)

_CLI_TYPE = {SearchAttributeIndexedValueType.KEYWORD: "Keyword", SearchAttributeIndexedValueType.INT: "Int"}
DEV_SERVER_FLAGS: tuple[str, ...] = tuple(
    arg for key in KEYS for arg in ("--search-attribute", f"{key.name}={_CLI_TYPE[key.indexed_value_type]}")
)
"""`temporal server start-dev` flags that register every attribute."""

SUMMARY_BYTES = 180
"""The server caps a summary at 400 bytes of payload; encryption adds about 100."""
DETAILS_PROMPT_CHARS = 400


class AttributeConflict(RuntimeError):
    """An attribute of that name already exists on the namespace with another type."""


def initial(*, account_id: str, plan: str, model: str, status: str) -> TypedSearchAttributes:
    """The attributes a task's workflow starts with."""
    pairs: list[SearchAttributePair[Any]] = [
        SearchAttributePair(ACCOUNT_ID, account_id),
        SearchAttributePair(MODEL, model),
        SearchAttributePair(STATUS, status),
    ]
    if plan:
        pairs.append(SearchAttributePair(PLAN, plan))
    return TypedSearchAttributes(pairs)


def stage(attributes: TypedSearchAttributes) -> str | None:
    """The step a running task (input version 2 on) is at while no activity is pending, from its attributes.

    "upload" once a render returned (it names its host), "render" once it runs.
    """
    if attributes.get(RENDER_HOST):
        return "upload"
    return "render" if attributes.get(STATUS) == RUNNING else None


def task_summary(spec: RenderSpec, plan: str) -> str:
    """One line for the workflow list: model, size, duration, plan and the prompt's start."""
    head = f"{spec.model} {spec.width}×{spec.height} {spec.duration_s} s" + (f" · {plan}" if plan else "")
    return f"{head} · “{_clip(spec.prompt, SUMMARY_BYTES - len(head.encode()) - 12)}”"


def task_details(spec: RenderSpec, *, account_id: str, plan: str, price: int) -> str:
    """Markdown shown under the summary on the workflow's page."""
    prompt = spec.prompt if len(spec.prompt) <= DETAILS_PROMPT_CHARS else spec.prompt[:DETAILS_PROMPT_CHARS] + "…"
    return "\n".join(
        [
            f"**Task** `{spec.task_id}` · account `{account_id}` · plan {plan or '?'} · {price} credits held",
            f"**Render** {spec.model} ({spec.family}), {spec.width}×{spec.height}, {spec.duration_s} s at "
            f"{spec.fps} fps, {spec.steps} steps, guidance {spec.guidance_scale}, seed {spec.seed}",
            f"**Prompt** {prompt}",
        ]
    )


def render_summary(spec: RenderSpec) -> str:
    """The render activity's summary, e.g. "render 8 s 1280×720, 30 steps"."""
    return f"render {spec.duration_s} s {spec.width}×{spec.height}, {spec.steps} steps"


def _clip(text: str, limit: int) -> str:
    """`text` on one line, cut to at most `limit` UTF-8 bytes (with an ellipsis when cut)."""
    flat = " ".join(text.split())
    if len(flat.encode()) <= limit:
        return flat
    while flat and len(flat.encode()) > max(limit - 3, 0):
        flat = flat[:-1]
    return flat + "…"


async def register(client: Client, keys: Sequence[SearchAttributeKey[Any]] = KEYS) -> list[str]:
    """Add the attributes the namespace lacks, through the operator service; the names added.

    Idempotent: an attribute already there with the same type is left alone; one with another type
    raises AttributeConflict. An add refused as "already exists" counts as done: Temporal's
    time-skipping test server cannot list attributes, and a dev server's listing can lag an add.
    """
    namespace = client.namespace
    try:
        listed = await client.operator_service.list_search_attributes(ListSearchAttributesRequest(namespace=namespace))
        existing = {**listed.system_attributes, **listed.custom_attributes}
    except RPCError as exc:
        if exc.status != RPCStatusCode.UNIMPLEMENTED:
            raise
        existing = {}
    missing: dict[str, IndexedValueType.ValueType] = {}
    for key in keys:
        wanted = IndexedValueType.ValueType(key.indexed_value_type.value)
        have = existing.get(key.name)
        if have is None:
            missing[key.name] = wanted
        elif have != wanted:
            raise AttributeConflict(
                f"{key.name} exists on namespace {namespace} as {IndexedValueType.Name(have)}, "
                f"not {IndexedValueType.Name(wanted)}"
            )
    added = []
    for name, wanted in missing.items():  # one by one: a listing can lag an add made just before
        try:
            await client.operator_service.add_search_attributes(
                AddSearchAttributesRequest(namespace=namespace, search_attributes={name: wanted})
            )
        except RPCError as exc:
            if exc.status != RPCStatusCode.ALREADY_EXISTS:
                raise
        else:
            added.append(name)
    return sorted(added)
