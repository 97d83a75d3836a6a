"""Token-bucket limits per API key and per admin token, shared via Redis.

Per API key: generate 30/min bursting to 60, status 60/min, delete 30/min, redeliver 10/min; per admin token on /admin.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from typing import Any

import httpx
import pytest

from sorapi.api.ratelimit_store import MemoryBucketStore, RedisBucketStore
from sorapi.cli import servers
from tests.api_helpers import QUICK, app_client, bearer, serve_replica
from tests.backing import redis_url
from tests.stack import Api, Stack, make_account


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> Any:
    made = MemoryBucketStore() if request.param == "memory" else RedisBucketStore(redis_url())
    yield made
    await made.close()


async def test_bucket_bursts_then_refills_smoothly(store: Any) -> None:
    key = f"test:{uuid.uuid4().hex}"
    takes = [await store.take(key, rate_per_s=10.0, capacity=3) for _ in range(4)]
    assert [t.allowed for t in takes] == [True, True, True, False]
    assert 0 < takes[-1].retry_after_s <= 0.1 + 1e-6
    assert takes[-1].reset_s == pytest.approx(0.3, abs=0.05)
    await asyncio.sleep(0.12)  # one token's worth of refill, not a whole window
    assert (await store.take(key, rate_per_s=10.0, capacity=3)).allowed
    assert not (await store.take(key, rate_per_s=10.0, capacity=3)).allowed
    await asyncio.sleep(0.5)  # never more than the capacity
    assert [(await store.take(key, rate_per_s=10.0, capacity=3)).allowed for _ in range(4)] == [True] * 3 + [False]


async def _burst(send: Any, count: int) -> tuple[list[httpx.Response], float]:
    started = time.monotonic()
    answers = await asyncio.gather(*(send() for _ in range(count)))
    return answers, time.monotonic() - started


async def test_status_allows_60_then_429_with_retry_after(account: Api) -> None:
    answers, elapsed = await _burst(lambda: account.http.get("/api/tasks", headers=account.auth()), 75)
    ok = [a for a in answers if a.status_code == 200]
    limited = [a for a in answers if a.status_code == 429]
    assert len(ok) + len(limited) == 75
    assert 60 <= len(ok) <= 60 + math.ceil(elapsed * 1.0) + 1, (len(ok), elapsed)
    assert ok[0].headers["ratelimit-policy"] == '"status";q=60;w=60'
    refused = limited[0]
    assert refused.json()["error"]["code"] == "rate_limited"
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.headers["ratelimit-policy"] == '"status";q=60;w=60'
    assert refused.headers["ratelimit"].startswith('"status";r=0;t=')
    # another key has its own budget, and generate is a separate bucket
    assert (await account.generate(QUICK)).status_code == 200


async def test_generate_bursts_to_60_at_30_per_minute(account: Api, sessions: Any) -> None:
    body = {**QUICK, "idempotency_key": "rate-burst-1"}  # one real task; the rest are replays
    answers, elapsed = await _burst(lambda: account.generate(body), 66)
    ok = [a for a in answers if a.status_code == 200]
    limited = [a for a in answers if a.status_code == 429]
    assert 60 <= len(ok) <= 60 + math.ceil(elapsed * 0.5) + 1, (len(ok), elapsed)
    assert len(ok) + len(limited) == 66
    assert ok[0].headers["ratelimit-policy"] == '"generate";q=60;w=120'
    retry = int(limited[0].headers["retry-after"])
    assert 1 <= retry <= 2  # one token every 2 s
    # status reads still work, and another key is not affected
    assert (await account.status(ok[0].json()["task_id"])).status_code == 200
    _, other = await make_account(sessions, credits=100)
    assert (await account.http.get("/api/tasks", headers=bearer(other))).status_code == 200
    await account.wait(ok[0].json()["task_id"])


async def _alternate(clients: list[Any], key: str, count: int) -> list[int]:
    codes = []
    for n in range(count):
        codes.append((await clients[n % len(clients)].get("/api/tasks", headers=bearer(key))).status_code)
    return codes


async def test_two_replicas_share_one_budget_through_redis(stack: Stack, sessions: Any) -> None:
    _, key = await make_account(sessions, credits=100)
    limits = {"rate_status_per_min": 6.0, "rate_status_burst": 4}
    async with (
        app_client(stack, redis_url=redis_url(), **limits) as (one, _),
        app_client(stack, redis_url=redis_url(), **limits) as (two, _),
    ):
        codes = await _alternate([one, two], key, 10)
    assert codes.count(200) in (4, 5), codes  # one budget (a refill may land in between)
    assert codes[:4] == [200] * 4

    _, key = await make_account(sessions, credits=100)
    async with app_client(stack, **limits) as (one, _), app_client(stack, **limits) as (two, _):
        codes = await _alternate([one, two], key, 10)
    assert codes.count(200) >= 8, codes  # in-process stores: each replica has its own budget


async def test_an_unreachable_redis_fails_open(stack: Stack, sessions: Any) -> None:
    _, key = await make_account(sessions, credits=100)
    dead = f"redis://127.0.0.1:{servers.free_port()}/0"
    async with app_client(stack, redis_url=dead) as (client, _):
        response = await client.get("/api/tasks", headers=bearer(key))
    assert response.status_code == 200


async def test_a_second_authorization_header_is_refused_not_metered_as_another_caller(account: Api) -> None:
    """Two Authorization headers are refused before either is read.

    The limiter once metered the last header while authentication admitted the first: a random second key made every
    poll a fresh budget.
    """
    task_id = (await account.generate(QUICK)).json()["task_id"]

    async def poll() -> httpx.Response:
        return await account.http.get(
            "/api/status",
            params={"task_id": task_id},
            headers=[
                ("Authorization", f"Bearer {account.api_key}"),
                ("Authorization", f"Bearer sk_{uuid.uuid4().hex}"),
            ],
        )

    answers, _ = await _burst(poll, 65)
    assert {a.status_code for a in answers} <= {400, 429}, [a.status_code for a in answers]
    assert {a.json()["error"]["code"] for a in answers} <= {"duplicate_header", "rate_limited"}
    assert answers[0].json()["error"]["code"] == "duplicate_header"
    assert (await account.status(task_id)).status_code == 200  # one header: the key's budget is untouched


async def test_a_flood_of_made_up_keys_from_one_address_gets_429_not_a_lookup_each(stack: Stack, sessions: Any) -> None:
    """Unknown keys share their client address's `unauthenticated` budget; a valid key keeps its own.

    A key that proved valid keeps its own budget, so it still gets through while its address floods.
    """
    _, key = await make_account(sessions, credits=100)
    limits = {"rate_unauthenticated_per_min": 6.0, "rate_unauthenticated_burst": 5}
    async with app_client(stack, **limits) as (client, _):
        assert (await client.get("/api/tasks", headers=bearer(key))).status_code == 200
        flood = [await client.get("/api/tasks", headers=bearer(f"sk_sora2_{uuid.uuid4().hex}")) for _ in range(12)]
        assert (await client.get("/api/tasks", headers=bearer(key))).status_code == 200
    codes = [a.status_code for a in flood]
    assert codes[:5] == [401] * 5 and codes.count(429) >= 6, codes
    refused = next(a for a in flood if a.status_code == 429)
    assert refused.json()["error"]["code"] == "rate_limited"
    assert refused.headers["ratelimit-policy"] == '"unauthenticated";q=5;w=50'
    assert int(refused.headers["retry-after"]) >= 1


def _refused_by(answer: httpx.Response, policy: str) -> None:
    assert answer.json()["error"]["code"] == "rate_limited"
    assert int(answer.headers["retry-after"]) >= 1
    assert answer.headers["ratelimit-policy"] == policy


async def test_deletes_and_redeliveries_have_buckets_of_their_own(account: Api) -> None:
    """DELETE and webhook redelivery have budgets of 30 and 10 a minute per key, apart from the reads' budget.

    Each DELETE of a video deletes from S3 and each redelivery starts up to six webhook attempts.
    """
    deletes, elapsed = await _burst(
        lambda: account.http.delete(f"/v1/videos/sora2{uuid.uuid4().hex}", headers=account.auth()), 36
    )
    codes = [a.status_code for a in deletes]
    assert 30 <= codes.count(404) <= 30 + math.ceil(elapsed * 0.5) + 1 and codes.count(429) >= 4, codes
    _refused_by(next(a for a in deletes if a.status_code == 429), '"delete";q=30;w=60')

    redeliveries, elapsed = await _burst(
        lambda: account.http.post(f"/api/tasks/sora2{uuid.uuid4().hex}/webhooks/redeliver", headers=account.auth()),
        14,
    )
    codes = [a.status_code for a in redeliveries]
    assert 10 <= codes.count(404) <= 10 + math.ceil(elapsed / 6) + 1 and codes.count(429) >= 3, codes
    _refused_by(next(a for a in redeliveries if a.status_code == 429), '"redeliver";q=10;w=60')

    reads = await account.http.get("/api/tasks", headers=account.auth())
    assert reads.status_code == 200 and reads.headers["ratelimit-policy"] == '"status";q=60;w=60'


async def test_admin_routes_are_metered_per_admin_token(stack: Stack) -> None:
    """The operator token has a bucket of its own.

    A valid token is not charged to its address's `unauthenticated` gate (here one request a minute), a wrong one is.
    """
    token = (stack.data_dir / "admin-token").read_text().strip()
    limits = {
        "rate_admin_per_min": 6.0,
        "rate_admin_burst": 3,
        "rate_unauthenticated_per_min": 1.0,
        "rate_unauthenticated_burst": 1,
    }
    with serve_replica(stack, admin_token=token, **limits) as base_url:
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
            answers = [
                await client.get("/admin/audit-log", params={"limit": 1}, headers=bearer(token)) for _ in range(5)
            ]
            wrong = [await client.get("/admin/audit-log", headers=bearer(f"adm_{uuid.uuid4().hex}")) for _ in range(2)]
    codes = [a.status_code for a in answers]
    assert codes[:3] == [200] * 3 and codes[-1] == 429, codes
    assert answers[0].headers["ratelimit-policy"] == '"admin";q=3;w=30'
    _refused_by(answers[-1], '"admin";q=3;w=30')
    assert "per admin token" in answers[-1].json()["error"]["message"]
    assert [a.status_code for a in wrong] == [401, 429], "wrong tokens share their address's gate"
