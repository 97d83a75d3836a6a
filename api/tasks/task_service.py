"""Task service: create (idempotent, priced, held) and read (scoped to the caller's account)."""

from __future__ import annotations

import hashlib
from collections.abc import Collection
from dataclasses import dataclass

import msgspec
import structlog
from litestar import Request
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import WorkflowExecutionStatus
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from sorapi.adapters import metrics, netguard, search_attributes, storage
from sorapi.api import pagination
from sorapi.api.auth import Principal, admit, bearer_key, require_route_scope
from sorapi.api.credits import credit_service
from sorapi.api.key_use import key_use
from sorapi.api.state import Resources
from sorapi.api.tasks import extensions, image_inputs
from sorapi.contracts import errors, names, status
from sorapi.contracts.messages import VIDEO_TASK_VERSION, RenderProgress, VideoTaskInput
from sorapi.contracts.schemas import (
    EventsPage,
    GenerateRequest,
    HistoryEvent,
    LiveProgress,
    OutputLink,
    StatusResponse,
    TaskRequest,
)
from sorapi.domain import conditioning, extension, webhook_events, webhook_policy
from sorapi.domain.catalog import task_priority
from sorapi.domain.conditioning import Conditioning
from sorapi.domain.ids import idempotent_task_id, new_task_id
from sorapi.domain.planning import Planned, fingerprint, plan, render_spec, with_plan_defaults
from sorapi.domain.progress import progress_percent
from sorapi.store import history, ledger, status_poll, task_rows
from sorapi.store.models import Task

log = structlog.get_logger()


@dataclass(frozen=True)
class Created:
    task: Task
    replayed: bool


def idempotency_key(body_key: str | None, header_key: str | None) -> str | None:
    """The request's idempotency key, from its body or its `Idempotency-Key` header (both: the same)."""
    if header_key is not None and body_key is not None and header_key != body_key:
        raise errors.ValidationFailed(
            "Idempotency-Key header and body idempotency_key differ",
            details=[
                {"field": "idempotency_key", "message": "must match the Idempotency-Key header when both are sent"}
            ],
        )
    key = body_key or header_key
    if key is not None and not 1 <= len(key) <= 64:
        raise errors.ValidationFailed(
            "invalid idempotency key", details=[{"field": "idempotency_key", "message": "must be 1 to 64 characters"}]
        )
    return key


async def create_task(
    res: Resources,
    principal: Principal,
    req: GenerateRequest,
    header_key: str | None = None,
    *,
    origin: dict[str, str] | None = None,
    session: AsyncSession | None = None,
    uploads: image_inputs.Uploads = image_inputs.NO_UPLOADS,
) -> Created:
    """Record the task and its credit hold in one transaction, then start its workflow.

    The account row lock serialises concurrent creates for one account, so one idempotency key
    yields one task, one hold and (by the deterministic workflow id) one workflow. `origin`
    (e.g. `{"remixed_from": id}`) is recorded with the request and is part of its fingerprint.
    With `session` (the request's own, see api/request_db.py) the records join its transaction,
    which is committed here, before the workflow starts; otherwise they get a transaction of their own.
    `uploads`: image files sent as multipart parts; they and `image_url` / `last_frame_url` are accepted
    (fetched, decoded) before the transaction and stored under the task's prefix after it (api/tasks/image_inputs.py).
    """
    key = idempotency_key(req.idempotency_key, header_key)
    sent = req
    source, req = await as_rendered(res, principal, req, uploads.names())
    planned = plan(req, res.catalog, allow_http_callbacks=res.settings.webhook_allow_http)
    problems = [
        *(planned if isinstance(planned, list) else []),
        *conditioning.problems(req, res.catalog, uploads.names()),
    ]
    if problems:
        raise errors.ValidationFailed("the request is invalid", details=[msgspec.to_builtins(d) for d in problems])
    assert not isinstance(planned, list)
    planned = with_plan_defaults(planned, res.catalog.plans[principal.plan])
    wants_images = bool(conditioning.sent_fields(req, uploads.names()))
    if session is not None and (req.callback_url is not None or wants_images):
        await session.commit()  # no open transaction (no row lock) across a DNS lookup or an image fetch
    await check_callback_destination(res, req.callback_url)
    images = await image_inputs.gather(res, req, uploads) if wants_images else Conditioning()
    planned = msgspec.structs.replace(planned, request=conditioning.recorded(planned.request, images))
    if source is not None:
        planned = msgspec.structs.replace(
            planned, request=extension.recorded(planned.request, source.task_id, source.request)
        )
    digest = fingerprint(msgspec.structs.replace(sent, idempotency_key=key))
    if origin:
        digest = hashlib.sha256(digest.encode() + msgspec.json.encode(origin, order="sorted")).hexdigest()
    digest = conditioning.fingerprint(digest, images)
    task_id = idempotent_task_id(principal.account_id, key) if key else new_task_id()
    if session is None:
        async with res.sessions.begin() as own:
            task, replayed = await record_task(own, principal, req, planned, task_id, key, digest, origin)
    else:
        task, replayed = await record_task(session, principal, req, planned, task_id, key, digest, origin)
        await session.commit()  # the lock is held only until here, never across the workflow start
    if not replayed:
        count_created(principal.plan, task)
    if not replayed or task.status == status.QUEUED:
        if images:
            await _store_images(res, task, images, retriable=key is not None)
        if source is not None:
            await _store_source(res, task, source, retriable=key is not None)
        await start_workflow(res, task, principal.plan, retriable=key is not None)
    log.info("task created" if not replayed else "task replayed", task_id=task.id, price=task.price)
    return Created(task=task, replayed=replayed)


async def _store_images(res: Resources, task: Task, images: Conditioning, *, retriable: bool) -> None:
    """Store the task's images before its workflow starts; a failed store is a failed start (503)."""
    try:
        await image_inputs.store(res, task.id, images)
    except errors.ServiceUnavailable:
        if not retriable:
            await _abandon_unstarted(res, task)
        raise


async def _store_source(res: Resources, task: Task, source: extensions.Source, *, retriable: bool) -> None:
    """Copy an extension's source video before its workflow starts.

    A source deleted meanwhile ends the task (409 `source_expired`, credits released): no retry can bring it back.
    """
    try:
        await extensions.store_source(res, task.id, source)
    except errors.Conflict as gone:
        await _abandon_unstarted(res, task, code=gone.code)
        raise
    except errors.ServiceUnavailable:
        if not retriable:
            await _abandon_unstarted(res, task)
        raise


def count_created(plan_name: str, task: Task) -> None:
    """A new task and its hold, in the business metrics; once its transaction committed."""
    metrics.TASKS_CREATED.labels(plan=plan_name, model=str(task.request.get("model_version", ""))).inc()
    metrics.CREDITS_RESERVED.labels(plan=plan_name).inc(task.price)


async def record_task(
    session: AsyncSession,
    principal: Principal,
    req: GenerateRequest,
    planned: Planned,
    task_id: str,
    key: str | None,
    digest: str,
    origin: dict[str, str] | None,
) -> tuple[Task, bool]:
    """Under the account row lock: the existing task of this idempotency key, or a new task and its hold."""
    account = await ledger.lock_account(session, principal.account_id)
    existing = await task_rows.find_by_idempotency_key(session, principal.account_id, key) if key else None
    if existing is not None:
        if existing.fingerprint != digest:
            raise errors.IdempotencyKeyReused("this idempotency_key was already used with a different request body")
        return existing, True
    task = Task(
        id=task_id,
        account_id=account.id,
        idempotency_key=key,
        fingerprint=digest,
        request={**msgspec.to_builtins(planned.request), **(origin or {})},
        callback_headers=req.callback_headers,
        client_metadata=req.metadata or {},
        key_id=principal.key_id,
        status=status.QUEUED,
        price=planned.price,
        outputs=[],
    )
    session.add(task)  # flushed with the hold and events at commit (one unit of work, FK order)
    await ledger.reserve(session, account, task_id, planned.price, actor=principal.key_id, new_task=True)
    task_rows.add_event(session, task_id, status.QUEUED, {"credits_reserved": planned.price})
    task_rows.add_event(session, task_id, "credits_reserved", {"credits": planned.price})
    return task, False


async def start_workflow(res: Resources, task: Task, plan_name: str, *, retriable: bool) -> None:
    """Start a recorded task's workflow, once its transaction has committed (503 when Temporal fails).

    `retriable`: the task has an idempotency key, so after a failed start it stays queued with its
    hold and the client's retry with the same key starts it. Nobody can retry a keyless task: its
    credits are given back, if its workflow never runs (`_abandon_unstarted`).
    """
    try:
        await _ensure_workflow(res, task, plan_name)
    except errors.ServiceUnavailable:
        if not retriable:
            await _abandon_unstarted(res, task)
        raise


async def _abandon_unstarted(res: Resources, task: Task, code: str = errors.SERVICE_UNAVAILABLE) -> None:
    """A keyless task whose workflow start failed: fail it and release its hold.

    No credits then stay held by a task that will never run. (A keyed task stays queued: the client's retry with the
    same key starts its workflow.)

    A failed start RPC is ambiguous: the server may have created the workflow before the answer
    was lost. So the task is given up only once Temporal confirms no workflow of it can run:
    terminated now, or not found. When Temporal cannot say, the task stays queued: its workflow, if
    it exists, runs it to the end, and if it does not, the stranded-task sweeper settles it.
    """
    try:
        await res.temporal.get_workflow_handle(task.id).terminate(reason="its start was reported as failed")
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            log.warning(
                "workflow start outcome unknown; leaving the task to its workflow or the sweeper", task_id=task.id
            )
            return
    async with res.sessions.begin() as session:
        failed = await task_rows.transition(
            session,
            task.id,
            status.FAILED,
            error_code=code,
            error_message=errors.task_message(code),
        )
        if failed is not None and failed.status == status.FAILED:
            await ledger.release(session, task.account_id, task.id, reason="the workflow could not start")


async def check_callback_destination(res: Resources, url: str | None) -> None:
    """422 when the callback host resolves to a non-public address (checked again at every send).

    A name that does not resolve right now is accepted: DNS may not be set up yet, and every
    delivery attempt resolves and checks it again before connecting.
    """
    if url is None:
        return
    try:
        await netguard.check_url(url, allow_http=res.settings.webhook_allow_http, ports=res.settings.callback_ports)
    except netguard.Blocked as exc:
        raise errors.ValidationFailed(
            "the request is invalid", details=[{"field": "callback_url", "message": str(exc)}]
        ) from None
    except netguard.Unresolvable as exc:
        log.info("callback host does not resolve yet; it is checked again at send time", error=str(exc))


async def _ensure_workflow(res: Resources, task: Task, plan_name: str) -> None:
    """Start the task's workflow, or find it already started (a retried create heals a crash)."""
    request = msgspec.convert(task.request, TaskRequest)
    lane = webhook_policy.lane(res.settings.webhook_queue_prefix, plan_name)
    render = render_spec(task.id, request, res.catalog)
    if request.image is not None:  # image-to-video: where the render host reads its images
        render = msgspec.structs.replace(render, **conditioning.render_fields(task.id, request, res.catalog))
    render = msgspec.structs.replace(render, **extension.render_fields(task.id, request))
    if webhook_events.wants(task.request, webhook_events.PROGRESS):  # the render host announces its progress
        render = msgspec.structs.replace(render, progress_webhook_lane=lane)
    arg = VideoTaskInput(
        task_id=task.id,
        account_id=task.account_id,
        price=task.price,
        render=render,
        render_queue=res.settings.render_queue,
        upload_pickup_s=res.settings.upload_pickup_s,
        render_heartbeat_s=res.settings.render_heartbeat_timeout_s,
        retention_hours=res.catalog.plans[plan_name].retention_hours,
        has_callback=request.callback_url is not None,
        webhook_queue=lane,
        max_queue_s=request.max_queue_seconds or 0,
        plan=plan_name,
        version=VIDEO_TASK_VERSION,
    )
    try:
        if webhook_events.wants(task.request, status.QUEUED):  # before the task can move on: sent first
            await webhook_events.announce(
                res.temporal,
                task_id=task.id,
                event=status.QUEUED,
                lane=lane,
                task_queue=res.settings.orchestration_queue,
            )
        await res.temporal.start_workflow(
            names.VIDEO_TASK_WORKFLOW,
            arg,
            id=task.id,
            task_queue=res.settings.orchestration_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            priority=task_priority(res.catalog.plans[plan_name], task.account_id),  # renders inherit it
            # The operator console (docs/operations.md): found by account, plan, model and status.
            search_attributes=search_attributes.initial(
                account_id=task.account_id, plan=plan_name, model=render.model, status=status.QUEUED
            ),
            static_summary=search_attributes.task_summary(render, plan_name),
            static_details=search_attributes.task_details(
                render, account_id=task.account_id, plan=plan_name, price=task.price
            ),
        )
    except WorkflowAlreadyStartedError:
        pass  # it ran to completion already: nothing to heal
    except RPCError as exc:
        log.error("could not start workflow", task_id=task.id, error=str(exc))
        raise errors.ServiceUnavailable(
            "the orchestrator is unavailable; retry with the same idempotency_key", headers={"Retry-After": "5"}
        ) from exc


async def as_rendered(
    res: Resources, principal: Principal, req: GenerateRequest, uploads: Collection[str] = ()
) -> tuple[extensions.Source | None, GenerateRequest]:
    """The request as it renders.

    An extension's as its source decides (api/tasks/extensions.py: 404, 409, 422), with that source; any other as sent.
    """
    if req.extend_from is None:
        return None, req
    return extensions.continued(res, req, await get_task(res, principal, req.extend_from), uploads)


def lookup_id(given: str) -> str:
    """The id to look up: one with a NUL character looks up the empty id, which no task or account has.

    An id with a NUL character names nothing (PostgreSQL text cannot hold NUL, so the query itself would fail).
    """
    return "" if "\x00" in given else given


async def get_task(res: Resources, principal: Principal, task_id: str) -> Task:
    """The caller's task (404 for an unknown one or another tenant's). The route checked the scope."""
    async with res.autocommit_sessions() as session:
        task = await task_rows.get_for_account(session, principal.account_id, lookup_id(task_id))
    if task is None:
        raise errors.NotFound(f"no task {task_id!r}")
    return task


async def reread(res: Resources, task_id: str) -> Task:
    """The task row as it is now (after a wait), for a caller that already proved it may see it."""
    async with res.autocommit_sessions() as session:
        return await session.get_one(Task, task_id)


async def poll_task(
    res: Resources, request: Request, session: AsyncSession, task_id: str
) -> tuple[Task, int | None, str]:
    """Read the caller's task, its place in line and its account's plan, in one statement.

    Authenticates the caller first; the place in the account's line is read while the task is queued. The status poll
    (sorapi.store.status_poll): 401, 403, then 404. Commits before answering: the audit entry is written and the
    connection is free.
    """
    use = key_use(res, request)
    owner, found = await status_poll.owner_and_task(session, bearer_key(request), use, lookup_id(task_id))
    principal = admit(session, owner, use, request)
    await session.commit()
    require_route_scope(request, principal)
    if found is None:
        raise errors.NotFound(f"no task {task_id!r}")
    return *found, principal.plan


async def _workflow_phase(res: Resources, task_id: str) -> tuple[str, RenderProgress | None, int | None]:
    """(phase, last render heartbeat, percent) of a task's running workflow; percent None if unknown."""
    try:
        desc = await res.temporal.get_workflow_handle(task_id).describe()
    except RPCError:
        return status.QUEUED, None, None
    if desc.status != WorkflowExecutionStatus.RUNNING:
        return status.QUEUED, None, None
    converter = res.temporal.data_converter  # decrypts, then decodes
    for pending in desc.raw_description.pending_activities:
        if pending.activity_type.name == names.UPLOAD_OUTPUTS:
            return "uploading", None, 96
        if pending.activity_type.name == names.RENDER_VIDEO:
            if not pending.heartbeat_details.payloads:
                return "waiting", None, None
            beat = (await converter.decode(pending.heartbeat_details.payloads, [RenderProgress]))[0]
            return beat.phase, beat, progress_percent(beat)
    # Nothing pending: between two of the workflow's steps, read from its memo (before input version 2)
    # or its search attributes.
    stage = await desc.memo_value("stage", None) or search_attributes.stage(desc.typed_search_attributes)
    if stage == "render":
        return "encoding", None, 95
    if stage == "upload":
        return "finishing", None, 99
    return status.QUEUED, None, None


async def live_state(res: Resources, task: Task) -> tuple[int | None, LiveProgress]:
    """Percent done and phase of an unfinished task, and how many running tasks are ahead of it.

    Those ahead are counted while it waits for a render worker: the tasks that got their plan slot earlier.
    """
    phase, beat, percent = await _workflow_phase(res, task.id)
    position = None
    if phase == "waiting":
        async with res.autocommit_sessions() as session:
            position = await history.render_queue_ahead(session, task)
    return percent, LiveProgress(
        phase=phase,
        render_queue_position=position,
        step=beat.step if beat else 0,
        total_steps=beat.total if beat else 0,
    )


async def status_view(
    res: Resources, task: Task, *, plan: str, queue_position: int | msgspec.UnsetType | None = msgspec.UNSET
) -> StatusResponse:
    """The task as the client sees it, `plan` being its account's.

    Only a running task's workflow is asked for live progress: a queued one is still before its render (it waits for
    credits or a plan slot), so describing it could only answer `queued`. `queue_position` is the caller's `poll_task`
    count, if it made one.
    """
    progress, live = task.progress, None
    position = await credit_service.queue_position(res, task) if queue_position is msgspec.UNSET else queue_position
    if task.status == status.RUNNING:
        percent, live = await live_state(res, task)
        progress = percent or progress
    elif task.status == status.QUEUED:
        live = LiveProgress(phase=status.QUEUED)  # no render has begun: no step, no render queue place
    links = (
        [
            OutputLink(
                format=o["format"],
                content_type=o["content_type"],
                size_bytes=o["size_bytes"],
                url=storage.presign(res.signer, res.settings.s3_bucket, o["key"], res.settings.presign_ttl_s),
            )
            for o in task.outputs
        ]
        if task.status == status.SUCCEEDED
        else []
    )
    return StatusResponse(
        task_id=task.id,
        status=task.status,
        request=msgspec.convert(task.request, TaskRequest),
        response=[link.url for link in links],
        outputs=links,
        error_message=task.error_message,
        error_code=task.error_code,
        progress=progress,
        credits_reserved=task.price,
        credits_charged=task.price if task.status in (status.SUCCEEDED, status.EXPIRED) else 0,
        render=task.render,
        metadata=task_rows.shown_metadata(task),
        created_at=task.created_at,
        started_at=task.started_at,
        finished_at=task.finished_at,
        expires_at=task.expires_at,
        live=live,
        queue_position=position,
        eta_seconds=await res.render_times.eta(
            res.autocommit_sessions, res.catalog, task, plan=plan, position=position, progress=progress
        ),
    )


async def events_page(res: Resources, task: Task, cursor: str | None, limit: int) -> EventsPage:
    """One page of the task's history, oldest first."""
    async with res.autocommit_sessions() as session:
        rows, more = await history.events_page(
            session, task.id, after_id=pagination.decode_event_cursor(cursor), limit=limit
        )
    return EventsPage(
        data=[HistoryEvent(id=e.id, kind=e.kind, created_at=e.created_at, data=e.data or {}) for e in rows],
        next_cursor=pagination.event_cursor(rows[-1].id) if more and rows else None,
        has_more=more,
    )
