"""The delivery activity at send time, and the backoff schedule's arithmetic.

Callback headers can never replace ours, the destination is checked again (DNS may have changed since creation), a
recorded attempt is never re-sent. Real PostgreSQL and a real receiver on loopback.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from standardwebhooks.webhooks import Webhook
from temporalio.testing import ActivityEnvironment

from sorapi.activities.webhooks import WebhookActivities, retry_after_seconds
from sorapi.adapters import netguard, storage
from sorapi.adapters.secretbox import SecretBox
from sorapi.adapters.settings import Settings
from sorapi.adapters.webhook_signing import x_signature
from sorapi.contracts.messages import DeliverWebhook
from sorapi.domain import webhook_policy
from sorapi.store import webhook_rows
from sorapi.store.models import Task, TaskEvent
from tests.stack import make_account
from tests.webhook_receiver import Receiver

BOX = SecretBox("send-test-server-key")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver().start()
    yield running
    running.stop()


async def _task(sessions: Any, callback_url: str, headers: dict[str, str] | None = None) -> tuple[str, str]:
    account_id, _ = await make_account(sessions, plan="pro")
    task_id = "sora2" + uuid.uuid4().hex
    request = {
        "prompt": "p",
        "model_version": "sora-2-latest",
        "duration": 1,
        "resolution": "854x480",
        "aspect_ratio": "landscape",
        "guidance": 7.5,
        "seed": 1,
        "callback_url": callback_url,
    }
    async with sessions.begin() as session:
        session.add(
            Task(
                id=task_id,
                account_id=account_id,
                fingerprint="f",
                request=request,
                price=1,
                outputs=[],
                status="failed",
                error_code="render_failed",
                error_message="boom",
                callback_headers=headers,
            )
        )
    return task_id, account_id


def _activities(
    sessions: Any, allow_http: bool, resolver: netguard.Resolver = netguard.system_resolve
) -> WebhookActivities:
    settings = Settings(webhook_allow_http=allow_http, secret_key="unused")
    return WebhookActivities(sessions, settings, storage.make_client(settings, public=True), BOX, resolver=resolver)


def _step(task_id: str, attempt: int = 1) -> DeliverWebhook:
    return DeliverWebhook(
        task_id=task_id,
        event="failed",
        event_id=webhook_policy.event_id(task_id, "failed"),
        delivery_id=f"{task_id}-webhook-failed",
        attempt=attempt,
        max_attempts=6,
    )


async def test_callback_headers_never_replace_signature_or_content_headers(sessions: Any, receiver: Receiver) -> None:
    forged = {
        "X-Signature": "forged",
        "webhook-id": "evt_forged",
        "Webhook-Signature": "v1,forged",
        "Content-Type": "text/plain",
        "Host": "evil.example",
        "X-Env": "staging",
        "X-Bad": "a\r\nX-Evil: 1",
        "X-Accent": "caf\u00e9",
        "X-Trailing\n": "v",
    }  # rows older than today's validation
    task_id, account_id = await _task(sessions, receiver.url("/hook"), forged)
    outcome = await ActivityEnvironment().run(_activities(sessions, True).deliver_webhook, _step(task_id))

    assert outcome.outcome == "delivered"
    (got,) = receiver.received
    async with sessions.begin() as session:
        secret = (await webhook_rows.signing_secrets(session, account_id, BOX)).current
    assert got.headers["x-env"] == "staging"
    assert "x-bad" not in got.headers and "x-evil" not in got.headers
    assert "x-accent" not in got.headers and "x-trailing" not in got.headers
    assert got.headers["content-type"] == "application/json"
    assert got.headers["host"] == f"127.0.0.1:{receiver.port}"
    assert got.headers["webhook-id"] == webhook_policy.event_id(task_id, "failed")
    assert got.headers["x-signature"] == x_signature(got.body, secret)
    assert Webhook(secret).verify(got.body, got.headers)["status"] == "failed"
    assert json.loads(got.body)["error_code"] == "render_failed"


async def test_loopback_is_refused_at_send_time_without_the_development_switch(
    sessions: Any, receiver: Receiver
) -> None:
    task_id, _ = await _task(sessions, receiver.url("/hook"))
    outcome = await ActivityEnvironment().run(_activities(sessions, False).deliver_webhook, _step(task_id))
    assert outcome.outcome == "retry" and (outcome.error or "").startswith("blocked: ")
    assert receiver.received == [], "nothing was sent"


async def test_a_name_that_now_resolves_to_a_private_address_is_refused_at_send_time(
    sessions: Any, receiver: Receiver
) -> None:
    async def rebound(host: str, port: int) -> list[str]:
        return ["10.0.0.5"]

    task_id, _ = await _task(sessions, "https://hooks.example.com/hook")
    outcome = await ActivityEnvironment().run(_activities(sessions, False, rebound).deliver_webhook, _step(task_id, 6))
    assert outcome.outcome == "failed" and "private addresses" in (outcome.error or "")
    assert "10.0.0.5" not in (outcome.error or ""), "the delivery log does not tell what a name resolves to inside"
    async with sessions() as session:
        kinds = (await session.scalars(select(TaskEvent.kind).where(TaskEvent.task_id == task_id))).all()
    assert "webhook_failed" in kinds, "the last attempt's failure is recorded on the task"


async def test_a_recorded_attempt_is_never_sent_twice(sessions: Any, receiver: Receiver) -> None:
    receiver.scripts["/hook"] = [(500, {})]
    task_id, _ = await _task(sessions, receiver.url("/hook"))
    acts = _activities(sessions, True)
    first = await ActivityEnvironment().run(acts.deliver_webhook, _step(task_id))
    retried = await ActivityEnvironment().run(acts.deliver_webhook, _step(task_id))
    assert first == retried and first.status_code == 500
    assert len(receiver.received) == 1


def test_retry_after_reads_seconds_and_http_dates() -> None:
    assert retry_after_seconds("120") == 120
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412400.0) == 80
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None


@pytest.mark.parametrize("jitter", [0.0, 0.5, 0.999])
def test_the_schedule_spans_24_hours_with_jitter_and_never_exceeds_it(jitter: float) -> None:
    elapsed, starts = timedelta(0), [timedelta(0)]
    for done in range(1, webhook_policy.MAX_ATTEMPTS):
        elapsed += webhook_policy.next_delay(done, elapsed, jitter)
        starts.append(elapsed)
    assert len(starts) == 6
    assert timedelta(hours=23, minutes=30) <= starts[-1] <= timedelta(hours=24)
    assert all(b - a >= webhook_policy.MIN_GAP for a, b in itertools.pairwise(starts))
    assert starts[1] <= timedelta(minutes=1)


def test_retry_after_is_honoured_but_never_past_the_window() -> None:
    assert webhook_policy.next_delay(1, timedelta(0), 0.0, retry_after_s=3600) == timedelta(hours=1)
    assert webhook_policy.next_delay(4, timedelta(hours=20), 0.0, retry_after_s=10 * 3600) == timedelta(hours=4)


async def test_concurrent_first_use_creates_exactly_one_secret(sessions: Any) -> None:
    account_id, _ = await make_account(sessions)

    async def reveal() -> str:
        async with sessions.begin() as session:
            return (await webhook_rows.signing_secrets(session, account_id, BOX)).current

    secrets = await asyncio.gather(*(reveal() for _ in range(6)))
    assert len(set(secrets)) == 1 and secrets[0].startswith("whsec_")
