"""`POST /api/batches` and `GET /api/batches/{batch_id}`: up to 100 tasks created together, or none.

A batch is the single create (api/tasks/task_service.py) done for every item inside one transaction: each item is
validated and priced first (every problem of every item in one 422, fields named `items[i].…`);
then, with the account row locked, the batch row and each task with its hold are recorded by the same
`record_task` the single create uses, so the ledger's checks apply to the running sum and the first
item that does not fit rolls everything back (402 naming it). Workflows start after the commit,
with the single create's start logic.

The batch's idempotency key maps to a deterministic batch id (sorapi/domain/ids.py), and item `i`'s key is
`<batch id>/<i>`, so item task ids are deterministic too: a retry with the same key and body finds
the batch and starts whatever did not start (a crash, or Temporal down, between commit and start).
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
from collections import Counter
from dataclasses import dataclass
from typing import Any

import msgspec
import structlog
from litestar import Controller, Request, Response, get, post
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from sorapi.api import ratelimit
from sorapi.api.auth import NEEDS_GENERATE, NEEDS_READ, Principal
from sorapi.api.openapi import error_responses
from sorapi.api.ratelimit import RATE_GENERATE, RATE_STATUS
from sorapi.api.state import Resources
from sorapi.api.tasks import listing, task_service
from sorapi.contracts import errors, status
from sorapi.contracts.batch_schemas import BatchCounts, BatchCreated, BatchRequest, BatchStatus
from sorapi.contracts.schemas import GenerateRequest, GenerateResponse
from sorapi.domain import conditioning, extension
from sorapi.domain.ids import batch_item_key, idempotent_batch_id, idempotent_task_id, new_batch_id, new_task_id
from sorapi.domain.planning import Planned, fingerprint, plan, with_plan_defaults
from sorapi.store import ledger
from sorapi.store.models import Batch, Task

log = structlog.get_logger()

START_CONCURRENCY = 8
"""Workflow starts in flight at once for one batch (each is one Temporal RPC)."""


@dataclass(frozen=True)
class CreatedBatch:
    batch: Batch
    tasks: list[Task]
    replayed: bool


def _item_detail(index: int, detail: Any) -> dict[str, str]:
    entry = detail if isinstance(detail, dict) else msgspec.to_builtins(detail)
    field = entry.get("field") or ""
    return {**entry, "field": f"items[{index}].{field}" if field else f"items[{index}]"}


def at_item(index: int, exc: errors.ApiError) -> errors.ApiError:
    """The same error (status, code, headers), its message and details naming item `index`.

    A 422's fields become the item's (`items[3].duration`); any other error (a 402: credits, a spend limit) gets
    `items[3]` first, its own details after.
    """
    named = copy.copy(exc)
    named.message = f"items[{index}]: {exc.message}; no task of the batch was created"
    named.args = (named.message,)
    whole = {"field": f"items[{index}]", "message": exc.message}
    if exc.status_code == 422:
        named.details = [_item_detail(index, d) for d in exc.details] or [whole]
    else:
        named.details = [whole, *exc.details]
    return named


def _planned_items(res: Resources, principal: Principal, items: list[GenerateRequest]) -> list[Planned]:
    """Every item resolved and priced with the plan's defaults, or one 422 naming every problem of every item."""
    problems: list[dict[str, str]] = []
    planned: list[Planned] = []
    rules = res.catalog.plans[principal.plan]
    for index, item in enumerate(items):
        if item.idempotency_key is not None:
            problems.append(
                {
                    "field": f"items[{index}].idempotency_key",
                    "message": "an item's key is derived from the batch's idempotency_key: send only that one",
                }
            )
        problems += [_item_detail(index, d) for d in conditioning.batch_problems(item)]
        problems += [_item_detail(index, d) for d in extension.batch_problems(item)]
        result = plan(item, res.catalog, allow_http_callbacks=res.settings.webhook_allow_http)
        if isinstance(result, list):
            problems += [_item_detail(index, d) for d in result]
        else:
            planned.append(with_plan_defaults(result, rules))
    if problems:
        raise errors.ValidationFailed("the batch is invalid; no task was created", details=problems)
    return planned


async def _check_callbacks(res: Resources, items: list[GenerateRequest]) -> None:
    """Each distinct callback host once (a DNS lookup), before any transaction; 422 names every item it concerns."""
    problems: list[dict[str, str]] = []
    for url in dict.fromkeys(item.callback_url for item in items if item.callback_url is not None):
        try:
            await task_service.check_callback_destination(res, url)
        except errors.ApiError as exc:
            problems += [
                _item_detail(index, d)
                for index, item in enumerate(items)
                if item.callback_url == url
                for d in exc.details
            ]
    if problems:
        raise errors.ValidationFailed("the batch is invalid; no task was created", details=problems)


def _item_digest(item: GenerateRequest, origin: dict[str, str]) -> str:
    """An item task's fingerprint, made as the single create makes one with an `origin`."""
    digest = fingerprint(item)
    return hashlib.sha256(digest.encode() + msgspec.json.encode(origin, order="sorted")).hexdigest()


def _batch_digest(items: list[GenerateRequest]) -> str:
    """Same items in the same order ⇔ same fingerprint (the batch id is not part of it)."""
    return hashlib.sha256(msgspec.json.encode([fingerprint(item) for item in items])).hexdigest()


async def submit_batch(
    res: Resources, principal: Principal, req: BatchRequest, header_key: str | None, request: Request
) -> CreatedBatch:
    """Validate and price every item, record the batch, then start each task's workflow.

    The rate limit is charged per item; the batch, its tasks and their holds are recorded in one transaction.
    """
    key = task_service.idempotency_key(req.idempotency_key, header_key)
    planned = _planned_items(res, principal, req.items)
    await ratelimit.charge_more(request.scope, len(req.items), f"a batch of {len(req.items)}")
    await _check_callbacks(res, req.items)
    batch_id = idempotent_batch_id(principal.account_id, key) if key else new_batch_id()
    async with res.sessions.begin() as session:
        batch, rows, replayed = await _record_batch(session, principal, req, planned, batch_id, key)
    if not replayed:
        for task in rows:
            task_service.count_created(principal.plan, task)
    started = [task for task in rows if not replayed or task.status == status.QUEUED]
    await _start_all(res, batch, started, principal.plan, retriable=key is not None)
    log.info("batch replayed" if replayed else "batch created", batch_id=batch.id, tasks=len(rows), price=batch.price)
    return CreatedBatch(batch=batch, tasks=rows, replayed=replayed)


async def _record_batch(
    session: AsyncSession,
    principal: Principal,
    req: BatchRequest,
    planned: list[Planned],
    batch_id: str,
    key: str | None,
) -> tuple[Batch, list[Task], bool]:
    """The batch of this key, or a new batch with every task and hold, under the account row lock.

    The same key with the same body is a replay, with another body a 422; any item that fails rolls the whole
    transaction back.
    """
    await ledger.lock_account(session, principal.account_id)
    digest = _batch_digest(req.items)
    if key is not None:
        existing = (
            await session.execute(
                select(Batch).where(Batch.account_id == principal.account_id, Batch.idempotency_key == key)
            )
        ).scalar_one_or_none()
        if existing is not None:
            if existing.fingerprint != digest:
                raise errors.IdempotencyKeyReused("this idempotency_key was already used with a different batch")
            return existing, await _tasks_of(session, existing), True
    item_keys = [batch_item_key(batch_id, index) if key else None for index in range(len(req.items))]
    task_ids = [idempotent_task_id(principal.account_id, k) if k else new_task_id() for k in item_keys]
    batch = Batch(
        id=batch_id,
        account_id=principal.account_id,
        idempotency_key=key,
        fingerprint=digest,
        task_ids=task_ids,
        price=sum(p.price for p in planned),
    )
    session.add(batch)
    origin = {"batch_id": batch_id}
    rows: list[Task] = []
    for index, (item, priced, item_key, task_id) in enumerate(
        zip(req.items, planned, item_keys, task_ids, strict=True)
    ):
        try:
            task, found = await task_service.record_task(
                session, principal, item, priced, task_id, item_key, _item_digest(item, origin), origin
            )
        except errors.ApiError as exc:  # 402 insufficient credits or a spend limit, for the sum so far
            raise at_item(index, exc) from None
        if found:  # a single create used this item's derived key
            raise at_item(index, errors.IdempotencyKeyReused(f"a task already has this item's key {item_key!r}"))
        rows.append(task)
    return batch, rows, False


async def _tasks_of(session: AsyncSession, batch: Batch) -> list[Task]:
    """The batch's tasks, in item order."""
    found = {t.id: t for t in (await session.execute(select(Task).where(Task.id.in_(batch.task_ids)))).scalars()}
    return [found[task_id] for task_id in batch.task_ids]


async def _start_all(res: Resources, batch: Batch, rows: list[Task], plan_name: str, *, retriable: bool) -> None:
    """Start each task's workflow (a few at once) with the single create's start logic.

    A 503 names the items whose start failed. Keyed batches: retry with the same key; keyless ones: those tasks were
    given up.
    """
    gate = asyncio.Semaphore(START_CONCURRENCY)

    async def start(task: Task) -> bool:
        async with gate:
            try:
                await task_service.start_workflow(res, task, plan_name, retriable=retriable)
            except errors.ServiceUnavailable:
                return False
            return True

    outcomes = await asyncio.gather(*(start(task) for task in rows))
    failed = [batch.task_ids.index(task.id) for task, ok in zip(rows, outcomes, strict=True) if not ok]
    if failed:
        then = (
            "retry with the same idempotency_key to start them"
            if retriable
            else "they will not run and their credits are returned"
        )
        raise errors.ServiceUnavailable(
            f"the orchestrator is unavailable: {len(failed)} of the {len(batch.task_ids)} tasks of batch "
            f"{batch.id} did not start; {then}",
            details=[{"field": f"items[{index}]", "message": "its workflow did not start"} for index in failed],
            headers={"Retry-After": "5"},
        )


async def read_batch(res: Resources, principal: Principal, batch_id: str) -> BatchStatus:
    """The caller's batch with its tasks (404 for an unknown batch or another account's)."""
    async with res.autocommit_sessions() as session:
        batch = (
            await session.execute(
                select(Batch).where(
                    Batch.id == task_service.lookup_id(batch_id), Batch.account_id == principal.account_id
                )
            )
        ).scalar_one_or_none()
        if batch is None:
            raise errors.NotFound(f"no batch {batch_id!r}")
        rows = await _tasks_of(session, batch)
    counts = Counter(task.status for task in rows)
    return BatchStatus(
        batch_id=batch.id,
        created_at=batch.created_at,
        total=len(rows),
        done=all(task.status in status.TERMINAL for task in rows),
        counts=BatchCounts(**{name: counts[name] for name in status.ALL}),
        credits_reserved=batch.price,
        tasks=[listing.summary(task) for task in rows],
    )


def created_view(created: CreatedBatch) -> BatchCreated:
    return BatchCreated(
        batch_id=created.batch.id,
        task_ids=[task.id for task in created.tasks],
        tasks=[
            GenerateResponse(
                task_id=task.id, status=task.status, credits_reserved=task.price, created_at=task.created_at
            )
            for task in created.tasks
        ],
        credits_reserved=created.batch.price,
        created_at=created.batch.created_at,
    )


class BatchesController(Controller):
    path = "/api/batches"
    tags = ["batches"]

    @post(
        "/",
        status_code=200,
        opt=RATE_GENERATE | NEEDS_GENERATE,
        responses=error_responses(400, 401, 402, 422, 429, 503),
    )
    async def create_batch(
        self, data: BatchRequest, principal: Principal, resources: Resources, request: Request
    ) -> Response[BatchCreated]:
        """Submit 1 to 100 generate requests at once: every task is created, with every credit hold, or none is.

        A problem with an item answers 422 (`validation_error`) or 402 (`insufficient_credits`) with `error.details`
        naming it (`items[3].duration`), and nothing is created.

        Send an `idempotency_key` (or the `Idempotency-Key` header) for the batch: the same key and body
        return the same batch (`Idempotent-Replayed: true`); the same key with another body is
        `idempotency_key_reused`. Item `i`'s task gets the key `<batch_id>/<i>`.

        Rate limit: the batch is one `generate` request plus one token per item. A batch larger than
        the burst is accepted from a full bucket and leaves it in debt, paid back at the sustained rate.
        """
        created = await submit_batch(resources, principal, data, request.headers.get("idempotency-key"), request)
        headers = {"Idempotent-Replayed": "true"} if created.replayed else {}
        return Response(created_view(created), headers=headers)

    @get("/{batch_id:str}", opt=RATE_STATUS | NEEDS_READ, responses=error_responses(401, 404, 429))
    async def get_batch(self, batch_id: str, principal: Principal, resources: Resources) -> BatchStatus:
        """A batch: how many of its tasks are in each status and whether all have ended.

        Each of its tasks is shown as `GET /api/tasks` lists it. Another account's batch is a 404.
        """
        return await read_batch(resources, principal, batch_id)
