"""Signed webhooks end to end, on the real `sorapi dev` stack (development switch on).

The stack delivers to a real HTTP receiver on loopback; every signature verifies with the seed's own function (ported
byte for byte), with `standardwebhooks` and with `openai`'s verifier; the receiver polls /api/status on receipt and sees
what the webhook announced.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from minio import Minio
from openai import OpenAI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from standardwebhooks.webhooks import Webhook

from sorapi.domain.ids import new_task_id, redelivery_slot_workflow_id
from sorapi.store.accounts import create_account, issue_api_key
from sorapi.store.engine import make_async_engine, make_sessionmaker
from sorapi.store.models import Task, WebhookDelivery, utcnow
from tests.stack import Api, Stack, fresh_pg_database, start_stack
from tests.webhook_receiver import Received, Receiver

PROMPT = "夕暮れの東京、ネオンの街並み — a neon-lit city skyline at dusk"


def verify_sora2_webhook(payload: str, signature: str, secret: str) -> bool:
    """The seed's TypeScript `verifySora2Webhook`, line by line.

    const digest = createHmac('sha256', secret).update(payload, 'utf8').digest('hex')
    const safeDigest = Buffer.from(digest)
    const provided = Buffer.from(signature)
    if (safeDigest.length !== provided.length) return false
    return timingSafeEqual(safeDigest, provided)
    """
    digest = hmac.new(secret.encode("utf-8"), payload.encode("utf-8"), hashlib.sha256).hexdigest()
    safe_digest = digest.encode("utf-8")  # Buffer.from(string) encodes UTF-8
    provided = signature.encode("utf-8")
    if len(safe_digest) != len(provided):
        return False
    return hmac.compare_digest(safe_digest, provided)


@pytest.fixture(scope="module")
def hook_db() -> Iterator[str]:
    with fresh_pg_database() as url:
        yield url


@pytest.fixture(scope="module")
def hook_stack(tmp_path_factory: pytest.TempPathFactory, hook_db: str) -> Iterator[Stack]:
    running = start_stack(
        tmp_path_factory.mktemp("stack-webhooks"),
        hook_db,
        SORAPI_WEBHOOK_ALLOW_HTTP="true",
        SORAPI_SECRET_KEY="webhook-test-server-key",
    )
    yield running
    running.stop()


@pytest.fixture(scope="module")
async def hook_sessions(hook_db: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = make_async_engine(hook_db)
    yield make_sessionmaker(engine)
    await engine.dispose()


class Client(Api):
    """A tenant with a read/generate key (`key`) and an admin key (`admin`)."""

    admin: str

    async def get(self, path: str, key: str | None = None, **kwargs: Any) -> httpx.Response:
        return await self.http.get(path, headers=self.auth(key), **kwargs)

    async def post(self, path: str, key: str | None = None) -> httpx.Response:
        return await self.http.post(path, headers=self.auth(key))

    async def delete(self, path: str) -> httpx.Response:
        return await self.http.delete(path, headers=self.auth())


@pytest.fixture
async def tenant(hook_stack: Stack, hook_sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[Client]:
    async with hook_sessions.begin() as session:
        account = await create_account(session, name=f"hooks-{uuid.uuid4().hex[:6]}", plan="pro", credits=10_000)
        key = await issue_api_key(session, account.id)
        admin = await issue_api_key(session, account.id, scopes="generate,read,admin")
    client = Client(hook_stack.base_url, key)
    client.admin = admin
    client.account_id = account.id
    yield client
    await client.close()


@pytest.fixture
def receiver(hook_stack: Stack) -> Iterator[Receiver]:
    """Polls GET /api/status the moment each webhook arrives, like a careful integration would."""

    def poll_status(got: Received) -> str:
        body = json.loads(got.body)
        key = got.headers["x-test-key"]
        answer = httpx.get(
            f"{hook_stack.base_url}/api/status",
            params={"task_id": body["task_id"]},
            headers={"Authorization": f"Bearer {key}"},
            timeout=10,
        )
        return answer.json()["status"]

    running = Receiver(on_receive=poll_status).start()
    yield running
    running.stop()


def _verify_all(got: Received, secret: str, previous: str | None = None) -> dict[str, Any]:
    payload = got.body.decode("utf-8")  # what a Node/Express receiver hands verifySora2Webhook
    assert verify_sora2_webhook(payload, got.headers["x-signature"], secret)
    assert not verify_sora2_webhook(payload + " ", got.headers["x-signature"], secret)
    assert not verify_sora2_webhook(payload, got.headers["x-signature"], secret + "x")
    event = Webhook(secret).verify(got.body, got.headers)
    assert OpenAI(api_key="unused", webhook_secret=secret).webhooks.unwrap(got.body, got.headers).id == event["id"]
    if previous is not None:
        assert verify_sora2_webhook(payload, got.headers["x-signature-previous"], previous)
        assert Webhook(previous).verify(got.body, got.headers) == event
        OpenAI(api_key="unused").webhooks.verify_signature(got.body, got.headers, secret=previous)
    return event


async def test_signed_deliveries_rotation_redelivery_and_early_delete(
    tenant: Client, receiver: Receiver, hook_stack: Stack
) -> None:
    denied = await tenant.get("/api/webhooks/secret")
    assert denied.status_code == 403 and denied.json()["error"]["code"] == "insufficient_scope"
    secret = (await tenant.get("/api/webhooks/secret", tenant.admin)).json()["secret"]
    assert secret.startswith("whsec_")

    created = await tenant.generate(
        {
            "prompt": PROMPT,
            "duration": 1,
            "resolution": "854x480",
            "idempotency_key": "job-2024-03-12-001",
            "callback_url": receiver.url("/hooks/sora2?source=test"),
            "callback_headers": {"X-Env": "staging", "X-Test-Key": tenant.api_key},
            "metadata": {"order_id": "ord_77"},
        }
    )
    assert created.status_code == 200, created.text
    task_id = created.json()["task_id"]
    (first,) = await receiver.wait_for(lambda got: len(got) >= 1)

    event = _verify_all(first, secret)
    assert first.extra == "succeeded", "GET /api/status already said succeeded when the webhook arrived"
    assert first.headers["content-type"] == "application/json"
    assert first.headers["x-env"] == "staging"
    assert first.headers["idempotency-key"] == first.headers["webhook-id"] == event["id"]
    assert event["type"] == "task.succeeded" and event["task_id"] == task_id and event["status"] == "succeeded"
    assert event["request"]["prompt"] == PROMPT
    assert event["metadata"] == {"order_id": "ord_77", "idempotency_key": "job-2024-03-12-001"}
    assert event["response"][0]["format"] == "mp4" and all(o["url"].startswith("http") for o in event["response"])
    async with httpx.AsyncClient() as plain:
        video = await plain.get(event["response"][0]["url"])
    assert video.status_code == 200 and video.content[4:8] == b"ftyp"

    log = (await tenant.get(f"/api/tasks/{task_id}/webhooks")).json()
    assert [(d["event_type"], d["attempt"], d["outcome"], d["status_code"]) for d in log["deliveries"]] == [
        ("task.succeeded", 1, "delivered", 200)
    ]
    assert log["deliveries"][0]["latency_ms"] >= 0 and log["deliveries"][0]["event_id"] == event["id"]
    expanded = (
        await tenant.http.get(
            "/api/status", params={"task_id": task_id, "expand": "events,webhooks"}, headers=tenant.auth()
        )
    ).json()
    assert expanded["webhooks"] == log["deliveries"]
    assert "webhook_delivered" in [e["kind"] for e in expanded["events"]["data"]]

    rotated = (await tenant.post("/api/webhooks/secret/rotate", tenant.admin)).json()
    assert rotated["secret"] != secret and rotated["previous_secret_valid_until"]
    assert (await tenant.get("/api/webhooks/secret", tenant.admin)).json()["secret"] == rotated["secret"]
    again = await tenant.post(f"/api/tasks/{task_id}/webhooks/redeliver")
    assert again.status_code == 202 and again.json()["event_id"] == event["id"]
    await receiver.wait_for(lambda got: len(got) >= 2)
    second = receiver.received[1]
    assert second.headers["webhook-id"] == first.headers["webhook-id"], "a redelivery keeps the webhook-id"
    assert len(second.headers["webhook-signature"].split(" ")) == 2, "both secrets sign during the overlap"
    assert _verify_all(second, rotated["secret"], previous=secret)["id"] == event["id"]

    deleted = await tenant.delete(f"/api/tasks/{task_id}")
    assert deleted.status_code == 200, deleted.text
    gone = deleted.json()
    assert gone["status"] == "expired" and gone["response"] == [] and gone["expires_at"]
    assert gone["request"]["prompt"] == PROMPT
    s3 = Minio(hook_stack.s3_endpoint, access_key="sorapi-dev", secret_key="sorapi-dev-secret", secure=False)
    assert list(s3.list_objects("sorapi", prefix=f"tasks/{task_id}/", recursive=True)) == []
    async with httpx.AsyncClient() as plain:
        assert (await plain.get(event["response"][0]["url"])).status_code == 404
    await receiver.wait_for(lambda got: len(got) >= 3)
    expired = _verify_all(receiver.received[2], rotated["secret"], previous=secret)
    assert (expired["type"], expired["status"], expired["response"]) == ("task.expired", "expired", [])
    assert receiver.received[2].extra == "expired"
    assert (await tenant.delete(f"/api/tasks/{task_id}")).json()["status"] == "expired"

    log = (await tenant.get(f"/api/tasks/{task_id}/webhooks")).json()["deliveries"]
    assert [(d["event_type"], d["trigger"], d["outcome"]) for d in log] == [
        ("task.succeeded", "automatic", "delivered"),
        ("task.succeeded", "redeliver", "delivered"),
        ("task.expired", "automatic", "delivered"),
    ]


async def test_tenants_cannot_see_or_touch_each_others_webhooks(
    tenant: Client, hook_stack: Stack, hook_sessions: async_sessionmaker[AsyncSession]
) -> None:
    created = await tenant.generate({"prompt": "a quiet harbour", "duration": 1, "resolution": "854x480"})
    task_id = created.json()["task_id"]
    assert (await tenant.post(f"/api/tasks/{task_id}/webhooks/redeliver")).json()["error"]["code"] == "no_callback_url"
    async with hook_sessions.begin() as session:
        other = await create_account(session, name="other", plan="free", credits=100)
        other_key = await issue_api_key(session, other.id, scopes="generate,read,admin")
    assert (await tenant.get(f"/api/tasks/{task_id}/webhooks", other_key)).status_code == 404
    assert (await tenant.post(f"/api/tasks/{task_id}/webhooks/redeliver", other_key)).status_code == 404
    assert (await tenant.http.delete(f"/api/tasks/{task_id}", headers=tenant.auth(other_key))).status_code == 404
    mine = (await tenant.get("/api/webhooks/secret", tenant.admin)).json()["secret"]
    theirs = (await tenant.get("/api/webhooks/secret", other_key)).json()["secret"]
    assert mine != theirs


def test_secrets_are_encrypted_at_rest(hook_db: str, hook_stack: Stack) -> None:
    import psycopg

    with psycopg.connect(hook_db) as conn:
        stored = [
            row[0] for row in conn.execute("SELECT webhook_secret FROM accounts WHERE webhook_secret IS NOT NULL")
        ]
    assert stored and all(s.startswith("v2.") and "whsec_" not in s for s in stored), "sealed, with a key id"


async def _task_with_attempts(sessions: async_sessionmaker[AsyncSession], account_id: str, count: int) -> str:
    """A succeeded task of the account with `count` recorded delivery attempts (a long-lived, much redelivered one)."""
    task_id, now = new_task_id(), utcnow()
    async with sessions.begin() as session:
        session.add(
            Task(
                id=task_id,
                account_id=account_id,
                fingerprint="paged",
                request={"prompt": "paged", "callback_url": "https://hooks.example.com/sora"},
                status="succeeded",
                price=0,
                outputs=[],
            )
        )
        await session.flush()
        for n in range(count):
            session.add(
                WebhookDelivery(
                    task_id=task_id,
                    event_id="evt_paged",
                    event_type="task.succeeded",
                    delivery_id=f"{task_id}-webhook-succeeded-redeliver-{n}",
                    trigger="redeliver",
                    attempt=1,
                    attempted_at=now + timedelta(seconds=n),
                    outcome="failed",
                    status_code=500,
                    latency_ms=n,
                )
            )
    return task_id


async def test_the_delivery_log_is_paginated_by_cursor(
    tenant: Client, hook_sessions: async_sessionmaker[AsyncSession]
) -> None:
    assert tenant.account_id is not None
    task_id = await _task_with_attempts(hook_sessions, tenant.account_id, 5)
    path = f"/api/tasks/{task_id}/webhooks"

    everything = (await tenant.get(path)).json()
    assert len(everything["deliveries"]) == 5, "up to the default page of 50, one call still returns them all"
    assert (everything["has_more"], everything["next_cursor"]) == (False, None)
    assert everything["callback_url"] == "https://hooks.example.com/sora"

    pages, cursor = [], ""
    while True:
        page = await tenant.get(path, params={"limit": 2, "cursor": cursor})
        assert page.status_code == 200, page.text
        pages.append(page.json())
        if not page.json()["has_more"]:
            break
        cursor = page.json()["next_cursor"]
    assert [len(p["deliveries"]) for p in pages] == [2, 2, 1]
    assert pages[-1]["next_cursor"] is None
    assert [d for p in pages for d in p["deliveries"]] == everything["deliveries"], "oldest first, nothing twice"

    for params, field in (({"cursor": "t1.x"}, "cursor"), ({"limit": 0}, "limit"), ({"limit": 201}, "limit")):
        refused = await tenant.get(path, params=params)
        assert refused.status_code == 422, (params, refused.text)
        body = refused.json()["error"]
        assert body["code"] == "validation_error" and body["details"][0]["field"] == field, body
    past_the_end = (await tenant.get(path, params={"cursor": "w999999999"})).json()
    assert past_the_end["deliveries"] == [] and past_the_end["has_more"] is False


async def test_a_task_has_at_most_two_redeliveries_in_flight(
    tenant: Client, receiver: Receiver, hook_stack: Stack
) -> None:
    """Redeliveries to a receiver that answers 503 stay in flight (the next attempt is a minute away).

    Two run, more are refused with 409 `redeliveries_in_flight` and start nothing, even when they race; a slot is free
    again as soon as its redelivery ends.
    """
    receiver.scripts["/hooks/busy"] = [(200, {}), (503, {})]  # the automatic delivery succeeds, then 503s
    created = await tenant.generate(
        {
            "prompt": "a lighthouse in fog",
            "duration": 1,
            "resolution": "480x480",
            "callback_url": receiver.url("/hooks/busy"),
            "callback_headers": {"X-Test-Key": tenant.api_key},
        }
    )
    task_id = created.json()["task_id"]
    await receiver.wait_for(lambda _: len(receiver.at("/hooks/busy")) >= 1)
    redeliver = f"/api/tasks/{task_id}/webhooks/redeliver"

    answers = await asyncio.gather(*(tenant.post(redeliver) for _ in range(5)))
    assert sorted(a.status_code for a in answers) == [202, 202, 409, 409, 409], [a.text for a in answers]
    refused = next(a for a in answers if a.status_code == 409).json()["error"]
    assert refused["code"] == "redeliveries_in_flight" and "at most 2 at once" in refused["message"]
    started = {a.json()["delivery_id"] for a in answers if a.status_code == 202}

    await receiver.wait_for(lambda _: len(receiver.at("/hooks/busy")) >= 3)
    await asyncio.sleep(1.0)  # a refused redelivery would have sent by now
    assert len(receiver.at("/hooks/busy")) == 3, "one automatic delivery and two redeliveries, nothing more"
    log = (await tenant.get(f"/api/tasks/{task_id}/webhooks")).json()["deliveries"]
    assert {d["delivery_id"] for d in log if d["trigger"] == "redeliver"} == started
    assert {d["outcome"] for d in log if d["trigger"] == "redeliver"} == {"retry"}
    assert (await tenant.post(redeliver)).status_code == 409, "still in flight"

    temporal = await hook_stack.temporal_client()
    slots = [temporal.get_workflow_handle(redelivery_slot_workflow_id(task_id, n)) for n in (1, 2)]
    await slots[0].terminate(reason="the test ends this redelivery")
    again = await tenant.post(redeliver)
    assert again.status_code == 202, again.text
    await receiver.wait_for(lambda _: len(receiver.at("/hooks/busy")) >= 4)
    for slot in slots:
        await slot.terminate(reason="test cleanup")
