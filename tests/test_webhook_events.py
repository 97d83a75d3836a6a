"""`webhook_events`: a task's webhook gets the events it asked for.

Each is signed and logged like the others, and `progress` is sent at most once every 5 s per task.

The real `sorapi dev` stack (development switch on, so http to loopback is allowed) delivers to a
real HTTP receiver on loopback. Its dev render takes a second per denoising step (20 steps), slow
enough for several progress beats. Absences are checked where they are certain: a delivery that
was never started has no workflow under its deterministic id.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from standardwebhooks.webhooks import Webhook
from temporalio.client import Client as TemporalClient
from temporalio.service import RPCError, RPCStatusCode

from sorapi.contracts import status
from sorapi.domain.ids import new_task_id
from sorapi.domain.webhook_events import DEFAULT, EVENTS, PROGRESS_INTERVAL_S
from sorapi.store import progress_claims
from sorapi.store.accounts import create_account, issue_api_key
from sorapi.store.engine import make_async_engine, make_sessionmaker
from sorapi.store.models import Task, utcnow
from tests.stack import Api, Stack, fresh_pg_database, start_stack
from tests.webhook_receiver import Received, Receiver

STEPS = 20
QUICK = {"prompt": "a lighthouse in fog, waves below", "duration": 1, "resolution": "854x480"}


@pytest.fixture(scope="module")
def events_db() -> Iterator[str]:
    with fresh_pg_database() as url:
        yield url


@pytest.fixture(scope="module")
def events_stack(tmp_path_factory: pytest.TempPathFactory, events_db: str) -> Iterator[Stack]:
    running = start_stack(
        tmp_path_factory.mktemp("stack-webhook-events"),
        events_db,
        SORAPI_WEBHOOK_ALLOW_HTTP="true",
        SORAPI_SECRET_KEY="webhook-events-test-key",
        SORAPI_DEV_STEPS=str(STEPS),
        SORAPI_DEV_STEP_DELAY_S="1.0",
    )
    yield running
    running.stop()


@pytest.fixture(scope="module")
async def events_sessions(events_db: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = make_async_engine(events_db)
    yield make_sessionmaker(engine)
    await engine.dispose()


@pytest.fixture(scope="module")
async def temporal(events_stack: Stack) -> TemporalClient:
    return await events_stack.temporal_client()


class Tenant(Api):
    secret: str


@pytest.fixture
async def tenant(events_stack: Stack, events_sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[Tenant]:
    async with events_sessions.begin() as session:
        account = await create_account(session, name=f"events-{uuid.uuid4().hex[:6]}", plan="pro", credits=10_000)
        key = await issue_api_key(session, account.id, scopes="generate,read,admin")
    client = Tenant(events_stack.base_url, key)
    client.account_id = account.id
    answer = await client.http.get("/api/webhooks/secret", headers=client.auth())
    client.secret = answer.json()["secret"]
    yield client
    await client.close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver().start()
    yield running
    running.stop()


def _verified(got: Received, secret: str) -> dict[str, Any]:
    """The payload, once both signatures check out (the seed's hex HMAC and Standard Webhooks)."""
    digest = hmac.new(secret.encode(), got.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(digest, got.headers["x-signature"])
    event: dict[str, Any] = Webhook(secret).verify(got.body, got.headers)
    assert event == json.loads(got.body) and got.headers["webhook-id"] == event["id"]
    return event


async def _create(tenant: Tenant, receiver: Receiver, events: list[str] | None) -> str:
    body: dict[str, Any] = {**QUICK, "callback_url": receiver.url("/hooks")}
    if events is not None:
        body["webhook_events"] = events
    created = await tenant.generate(body)
    assert created.status_code == 200, created.text
    return str(created.json()["task_id"])


async def _no_workflow(temporal: TemporalClient, workflow_id: str) -> bool:
    try:
        await temporal.get_workflow_handle(workflow_id).describe()
    except RPCError as exc:
        return exc.status == RPCStatusCode.NOT_FOUND
    return False


async def _never_started(temporal: TemporalClient, task_id: str, events: list[str]) -> list[str]:
    """Of these events' automatic deliveries (every progress step included), those that were started."""
    ids = [f"{task_id}-webhook-{e}" for e in events if e != "progress"]
    if "progress" in events:
        ids += [f"{task_id}-webhook-progress-{step}" for step in range(1, STEPS + 1)]
    return [i for i in ids if not await _no_workflow(temporal, i)]


def _types(received: list[Received]) -> list[str]:
    return [json.loads(r.body)["type"] for r in received]


async def test_without_webhook_events_the_webhook_gets_what_it_always_got(
    tenant: Tenant, receiver: Receiver, temporal: TemporalClient
) -> None:
    task_id = await _create(tenant, receiver, None)
    (got,) = await receiver.wait_for(lambda got: len(got) >= 1)
    event = _verified(got, tenant.secret)
    assert (event["type"], event["status"], event["task_id"]) == ("task.succeeded", "succeeded", task_id)
    assert event["request"]["webhook_events"] == list(DEFAULT) == ["succeeded", "failed", "cancelled", "expired"]
    assert "progress" not in event
    await temporal.get_workflow_handle(task_id).result()
    assert await _never_started(temporal, task_id, ["queued", "running", "progress"]) == []

    deleted = await tenant.http.delete(f"/api/tasks/{task_id}", headers=tenant.auth())
    assert deleted.json()["status"] == "expired"
    await receiver.wait_for(lambda got: len(got) >= 2)
    assert _types(receiver.received) == ["task.succeeded", "task.expired"]
    log = (await tenant.http.get(f"/api/tasks/{task_id}/webhooks", headers=tenant.auth())).json()["deliveries"]
    assert [(d["event_type"], d["outcome"]) for d in log] == [
        ("task.succeeded", "delivered"),
        ("task.expired", "delivered"),
    ]


async def test_a_filter_of_succeeded_gets_only_succeeded(
    tenant: Tenant, receiver: Receiver, temporal: TemporalClient
) -> None:
    task_id = await _create(tenant, receiver, ["succeeded"])
    (got,) = await receiver.wait_for(lambda got: len(got) >= 1)
    assert _verified(got, tenant.secret)["type"] == "task.succeeded"
    status_now = (await tenant.status(task_id)).json()
    assert status_now["request"]["webhook_events"] == ["succeeded"]

    deleted = await tenant.http.delete(f"/api/tasks/{task_id}", headers=tenant.auth())
    assert deleted.json()["status"] == "expired"
    await temporal.get_workflow_handle(f"{task_id}-retention").result()  # it has announced `expired`, or not
    assert await _never_started(temporal, task_id, ["queued", "running", "progress", "expired"]) == []
    assert _types(receiver.received) == ["task.succeeded"]
    redeliver = await tenant.http.post(f"/api/tasks/{task_id}/webhooks/redeliver", headers=tenant.auth())
    assert redeliver.status_code == 409 and "webhook_events" in redeliver.json()["error"]["message"]


async def test_queued_running_progress_and_succeeded_arrive_in_order_signed_progress_5_s_apart(
    tenant: Tenant, receiver: Receiver, temporal: TemporalClient
) -> None:
    task_id = await _create(tenant, receiver, ["succeeded", "progress", "running", "queued"])
    await receiver.wait_for(lambda got: "task.succeeded" in _types(got), timeout_s=240)
    await temporal.get_workflow_handle(task_id).result()
    events = [_verified(got, tenant.secret) for got in receiver.received]
    types = [e["type"] for e in events]
    assert types[:2] == ["task.queued", "task.running"] and types[-1] == "task.succeeded", types
    beats = [e for e in events if e["type"] == "task.progress"]
    assert len(beats) >= 2 and types[2:-1] == ["task.progress"] * len(beats), types
    assert [e["status"] for e in events] == ["queued", "running", *["running"] * len(beats), "succeeded"]
    assert events[0]["request"]["webhook_events"] == ["queued", "running", "progress", "succeeded"]
    assert len({e["id"] for e in events}) == len(events), "each event, and each beat, has its own id"

    steps = [b["progress"]["step"] for b in beats]
    assert steps == sorted(set(steps)) and all(1 <= s <= STEPS for s in steps)
    for beat in beats:
        assert beat["progress"]["phase"] == "denoising" and beat["progress"]["total_steps"] == STEPS
        assert beat["progress"]["percent"] == 5 + 85 * beat["progress"]["step"] // STEPS
    claimed = [datetime.fromisoformat(b["created_at"]) for b in beats]
    gaps = [(later - earlier).total_seconds() for earlier, later in itertools.pairwise(claimed)]
    assert all(gap >= PROGRESS_INTERVAL_S for gap in gaps), gaps
    started = datetime.fromisoformat(events[1]["created_at"])
    assert (claimed[0] - started).total_seconds() >= PROGRESS_INTERVAL_S, "no beat within 5 s of the start either"

    log = (await tenant.http.get(f"/api/tasks/{task_id}/webhooks", headers=tenant.auth())).json()["deliveries"]
    assert [d["event_type"] for d in log] == types and {d["outcome"] for d in log} == {"delivered"}
    assert (await tenant.status(task_id)).json()["progress"] == 100


async def test_a_progress_claim_is_granted_once_however_many_ask_at_once(
    tenant: Tenant, events_sessions: async_sessionmaker[AsyncSession]
) -> None:
    """Many delivery workers (or retries) claiming one running task's progress slot together: one wins."""
    task_id = new_task_id()
    async with events_sessions.begin() as session:
        session.add(
            Task(
                id=task_id,
                account_id=tenant.account_id,
                fingerprint="claims",
                request={"prompt": "claims"},
                status=status.RUNNING,
                price=0,
                outputs=[],
                updated_at=utcnow().replace(year=2020),
            )
        )

    async def claim(percent: int) -> bool:
        async with events_sessions.begin() as session:
            return await progress_claims.claim(session, task_id, percent, PROGRESS_INTERVAL_S)

    won = await asyncio.gather(*(claim(10 + n) for n in range(20)))
    assert won.count(True) == 1
    assert not await claim(99), "the next one waits its 5 s"
    async with events_sessions() as session:
        row = await session.get_one(Task, task_id)
    assert row.progress == 10 + won.index(True)


@pytest.mark.parametrize(
    ("events", "field"),
    [
        (["succeeded", "finished"], "webhook_events[1]"),
        (["queued", "running", "queued"], "webhook_events[2]"),
        ([], "webhook_events"),
        ("succeeded", "webhook_events"),
        ([1], "webhook_events[0]"),
    ],
)
async def test_bad_webhook_events_are_a_422_naming_the_field(
    tenant: Tenant, receiver: Receiver, events: Any, field: str
) -> None:
    answer = await tenant.generate({**QUICK, "callback_url": receiver.url("/hooks"), "webhook_events": events})
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["code"] == "validation_error"
    assert [d["field"] for d in error["details"]] == [field], error


async def test_the_schema_publishes_the_events(events_stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=events_stack.base_url) as http:
        document = (await http.get("/openapi.json")).json()
    field = document["components"]["schemas"]["GenerateRequest"]["properties"]["webhook_events"]
    assert field["items"]["enum"] == list(EVENTS) and field["uniqueItems"] is True and field["minItems"] == 1
