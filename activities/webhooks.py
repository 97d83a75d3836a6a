"""The webhook delivery activity: ONE signed HTTP attempt, recorded; the workflow owns the schedule.

Runs on a plan's delivery lane (`sorapi-webhooks-<plan>`), never on the render or orchestration
queues, so a slow receiver only ever occupies a delivery slot.
"""

from __future__ import annotations

import email.utils
import ipaddress
import ssl
import time
from datetime import UTC, datetime

import msgspec
import structlog
from minio import Minio
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

from sorapi.adapters import metrics, netguard, outbound, storage
from sorapi.adapters.secretbox import SecretBox
from sorapi.adapters.settings import Settings
from sorapi.adapters.webhook_signing import merge_headers, signed_headers
from sorapi.contracts import names, status
from sorapi.contracts.messages import DeliverWebhook, DeliveryOutcome, WebhookProgress
from sorapi.contracts.schemas import ProgressBeat, TaskRequest, WebhookOutput, WebhookPayload
from sorapi.domain import webhook_events
from sorapi.domain.webhook_policy import event_type
from sorapi.store import progress_claims, task_rows, webhook_rows
from sorapi.store.models import Task, WebhookDelivery, utcnow

log = structlog.get_logger()

USER_AGENT = "SorAPI-Webhooks/1.0"
DELIVERED, RETRY, GONE, FAILED = "delivered", "retry", "gone", "failed"
THROTTLED = "throttled"
"""A `progress` event dropped unsent: the task had one less than PROGRESS_INTERVAL_S ago (nothing is recorded)."""


class WebhookActivities:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        settings: Settings,
        signer: Minio,
        box: SecretBox,
        *,
        resolver: netguard.Resolver = netguard.system_resolve,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._sessions, self._settings, self._signer, self._box = sessions, settings, signer, box
        self._resolver, self._ssl_context = resolver, ssl_context

    @activity.defn(name=names.DELIVER_WEBHOOK)
    async def deliver_webhook(self, arg: DeliverWebhook) -> DeliveryOutcome:
        async with self._sessions() as session:
            recorded = await webhook_rows.find_attempt(session, arg.delivery_id, arg.attempt)
        if recorded is not None:  # an activity retry after the attempt was recorded: do not send twice
            return _outcome_of(recorded)
        async with self._sessions.begin() as session:
            if not await _progress_claimed(session, arg):
                log.info("progress webhook throttled", task_id=arg.task_id, step=arg.progress and arg.progress.step)
                return DeliveryOutcome(outcome=THROTTLED)
            task = await session.get(Task, arg.task_id)
            if task is None:
                raise LookupError(f"no task {arg.task_id}")
            secrets = await webhook_rows.signing_secrets(session, task.account_id, self._box)
        request = msgspec.convert(task.request, TaskRequest)
        payload = self._payload(task, request, arg)
        body = msgspec.json.encode(payload)
        headers = merge_headers(
            task.callback_headers,
            {
                "Content-Type": "application/json",
                "User-Agent": USER_AGENT,
                "Idempotency-Key": arg.event_id,
                **signed_headers(body, arg.event_id, int(time.time()), secrets.current, secrets.previous),
            },
        )
        attempted_at = _server_now()
        result = await self._send(request.callback_url or "", body, headers)
        outcome = _classify(result, final=arg.attempt >= arg.max_attempts)
        log.info(
            "webhook attempt",
            task_id=arg.task_id,
            webhook_event=arg.event,
            attempt=arg.attempt,
            outcome=outcome.outcome,
            status_code=result.status_code,
            latency_ms=result.latency_ms,
            error=result.error,
            detail=result.detail,
        )
        recorded_outcome = await self._record(arg, attempted_at, result.latency_ms, outcome)
        _count_attempt(outcome.outcome, result.latency_ms, arg.event, payload.created_at)
        return recorded_outcome

    async def _send(self, url: str, body: bytes, headers: dict[str, str]) -> outbound.PostResult:
        """Check the URL again (DNS may have changed since creation), then POST to the checked address."""
        try:
            target = await netguard.check_url(
                url,
                allow_http=self._settings.webhook_allow_http,
                ports=self._settings.callback_ports,
                resolver=self._resolver,
            )
        except netguard.Blocked as exc:
            return outbound.PostResult(None, {}, 0, error=f"blocked: {exc}")
        except netguard.Unresolvable as exc:
            return outbound.PostResult(None, {}, 0, error=str(exc))
        if target.scheme == "http" or netguard.address_problem(ipaddress.ip_address(target.ip)):
            log.warning("webhook to a development-only destination", url=target.url, ip=target.ip)
        return await outbound.post(
            target, body, headers, timeout_s=self._settings.webhook_timeout_s, ssl_context=self._ssl_context
        )

    def _payload(self, task: Task, request: TaskRequest, arg: DeliverWebhook) -> WebhookPayload:
        """The event as of now: URLs are presigned at send time so they still work when received."""
        outputs = []
        if arg.event == status.SUCCEEDED and task.status == status.SUCCEEDED:
            outputs = [
                WebhookOutput(
                    format=o["format"],
                    url=storage.presign(self._signer, self._settings.s3_bucket, o["key"], self._settings.presign_ttl_s),
                )
                for o in task.outputs
            ]
        happened = {
            status.QUEUED: task.created_at,
            status.RUNNING: task.started_at,
            webhook_events.PROGRESS: task.updated_at,  # when this beat was claimed
            status.EXPIRED: task.expires_at,
        }.get(arg.event, task.finished_at)
        failed = arg.event in (status.FAILED, status.CANCELLED)
        progress = arg.progress if arg.event == webhook_events.PROGRESS else None
        return WebhookPayload(
            id=arg.event_id,
            type=event_type(arg.event),
            created_at=happened or task.updated_at,
            task_id=task.id,
            status=status.RUNNING if progress is not None else arg.event,
            progress=_beat(progress) if progress is not None else msgspec.UNSET,
            response=outputs,
            request=request,
            metadata=task_rows.shown_metadata(task),
            error_code=task.error_code if failed else None,
            error_message=task.error_message if failed else None,
            expires_at=task.expires_at,
        )

    async def _record(
        self, arg: DeliverWebhook, attempted_at: datetime, latency_ms: int, outcome: DeliveryOutcome
    ) -> DeliveryOutcome:
        row = WebhookDelivery(
            task_id=arg.task_id,
            event_id=arg.event_id,
            event_type=event_type(arg.event),
            delivery_id=arg.delivery_id,
            trigger=arg.trigger,
            attempt=arg.attempt,
            attempted_at=attempted_at,
            outcome=outcome.outcome,
            status_code=outcome.status_code,
            latency_ms=latency_ms,
            error=outcome.error,
            retry_after_s=outcome.retry_after_s,
        )
        try:
            async with self._sessions.begin() as session:
                session.add(row)
                if outcome.outcome != RETRY:
                    task_rows.add_event(
                        session,
                        arg.task_id,
                        f"webhook_{outcome.outcome}",
                        {
                            "event_id": arg.event_id,
                            "event_type": event_type(arg.event),
                            "attempts": arg.attempt,
                            "status_code": outcome.status_code,
                            "trigger": arg.trigger,
                        },
                    )
        except IntegrityError:  # a concurrent retry of this same attempt recorded it first
            async with self._sessions() as session:
                recorded = await webhook_rows.find_attempt(session, arg.delivery_id, arg.attempt)
            if recorded is None:
                raise
            return _outcome_of(recorded)
        return outcome


def _beat(progress: WebhookProgress) -> ProgressBeat:
    return ProgressBeat(phase=progress.phase, step=progress.step, total_steps=progress.total, percent=progress.percent)


async def _progress_claimed(session: AsyncSession, arg: DeliverWebhook) -> bool:
    """A `progress` event's first attempt claims the task's progress slot, or is dropped.

    One slot per PROGRESS_INTERVAL_S. Every other event, and a later attempt of a claimed one, goes ahead.
    """
    if arg.event != webhook_events.PROGRESS or arg.attempt != 1 or arg.trigger != "automatic":
        return True
    percent = arg.progress.percent if arg.progress is not None else 0
    return await progress_claims.claim(session, arg.task_id, percent, webhook_events.PROGRESS_INTERVAL_S)


def _server_now() -> datetime:
    """When this attempt started by the Temporal server's clock (which tests can skip forward)."""
    try:
        return activity.info().started_time.astimezone(UTC)
    except RuntimeError:
        return utcnow()


def _count_attempt(outcome: str, latency_ms: float, event: str, happened: datetime) -> None:
    """The attempt's metrics; a delivered one also observes event-to-delivery latency (retries included)."""
    metrics.WEBHOOK_ATTEMPTS.labels(outcome=outcome).inc()
    metrics.WEBHOOK_ATTEMPT_SECONDS.labels(outcome=outcome).observe(latency_ms / 1000)
    if outcome == DELIVERED:
        since = happened if happened.tzinfo else happened.replace(tzinfo=UTC)
        waited = (datetime.now(UTC) - since).total_seconds()
        metrics.WEBHOOK_DELIVERY_LATENCY.labels(event=event).observe(max(0.0, waited))


def _classify(result: outbound.PostResult, *, final: bool) -> DeliveryOutcome:
    code = result.status_code
    if code is not None and 200 <= code < 300:
        return DeliveryOutcome(outcome=DELIVERED, status_code=code)
    if code == 410:
        return DeliveryOutcome(outcome=GONE, status_code=code, error="410 Gone: the receiver asked us to stop")
    retry_after = retry_after_seconds(result.headers.get("retry-after")) if code in (429, 503) else None
    if code is None:
        error = result.error or "no response"
    elif 300 <= code < 400:
        error = f"HTTP {code}: redirects are not followed (Location: {result.headers.get('location', '-')})"
    else:
        error = f"HTTP {code}"
    return DeliveryOutcome(outcome=FAILED if final else RETRY, status_code=code, retry_after_s=retry_after, error=error)


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """`Retry-After` as seconds from now: delta-seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - (now if now is not None else time.time()))


def _outcome_of(row: WebhookDelivery) -> DeliveryOutcome:
    return DeliveryOutcome(
        outcome=row.outcome, status_code=row.status_code, retry_after_s=row.retry_after_s, error=row.error
    )
