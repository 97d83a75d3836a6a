"""`POST /api/batches` and `GET /api/batches/{id}`, over real HTTP on PostgreSQL.

Up to 100 tasks created whole or not at all, idempotent, metered per item.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from sorapi.api.ratelimit_store import MemoryBucketStore, RedisBucketStore
from sorapi.cli import servers
from sorapi.store.accounts import issue_api_key
from sorapi.store.models import Account, Batch, LedgerEntry, Task
from tests.api_helpers import QUICK, bearer, serve_replica
from tests.backing import redis_url
from tests.stack import Api, Stack, make_account


@asynccontextmanager
async def _client(base_url: str, key: str) -> AsyncIterator[Api]:
    client = Api(base_url, key)
    try:
        yield client
    finally:
        await client.close()


def _items(count: int, **changes: Any) -> list[dict[str, Any]]:
    return [{**QUICK, "prompt": f"{QUICK['prompt']}, take {i}", **changes} for i in range(count)]


async def _post(api: Api, body: dict[str, Any], key: str | None = None, **headers: str) -> httpx.Response:
    return await api.http.post("/api/batches", json=body, headers={**api.auth(key), **headers})


async def _price(api: Api, item: dict[str, Any]) -> int:
    quote = await api.http.post("/api/credits/estimate", json=item, headers=api.auth())
    assert quote.status_code == 200, quote.text
    return int(quote.json()["credits"])


async def _footprint(sessions: Any, account_id: str) -> tuple[int, int, int, int, int]:
    """(tasks, batches, holds, balance, reserved) of the account, read straight from its rows."""
    async with sessions() as session:
        tasks = await session.scalar(select(func.count()).select_from(Task).where(Task.account_id == account_id))
        batches = await session.scalar(select(func.count()).select_from(Batch).where(Batch.account_id == account_id))
        holds = await session.scalar(
            select(func.count())
            .select_from(LedgerEntry)
            .where(LedgerEntry.account_id == account_id, LedgerEntry.kind == "reserve")
        )
        account = await session.get_one(Account, account_id)
        return int(tasks or 0), int(batches or 0), int(holds or 0), account.balance, account.reserved


async def test_a_batch_is_created_whole_its_tasks_run_to_success_and_get_counts_them(account: Api) -> None:
    items = _items(3, metadata={"order_id": "ord_7"})
    before = (await account.http.get("/api/credits", headers=account.auth())).json()
    answer = await _post(account, {"items": items})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["batch_id"].startswith("batch_")
    assert len(body["task_ids"]) == 3 == len(set(body["task_ids"]))
    assert [t["task_id"] for t in body["tasks"]] == body["task_ids"]
    assert {t["status"] for t in body["tasks"]} == {"queued"}
    assert body["credits_reserved"] == sum(t["credits_reserved"] for t in body["tasks"]) > 0
    held = (await account.http.get("/api/credits", headers=account.auth())).json()
    assert held["reserved"] - before["reserved"] == body["credits_reserved"]

    first = await account.http.get(f"/api/batches/{body['batch_id']}", headers=account.auth())
    assert first.status_code == 200, first.text
    assert first.json()["total"] == 3 == sum(first.json()["counts"].values())

    for task_id, item in zip(body["task_ids"], items, strict=True):
        done = await account.wait(task_id)
        assert done["status"] == "succeeded", done
        assert done["request"]["prompt"] == item["prompt"]
        assert done["metadata"]["order_id"] == "ord_7"

    read = (await account.http.get(f"/api/batches/{body['batch_id']}", headers=account.auth())).json()
    assert read["counts"] == {
        "queued": 0,
        "running": 0,
        "succeeded": 3,
        "failed": 0,
        "cancelled": 0,
        "expired": 0,
    }
    assert read["done"] is True
    assert [t["task_id"] for t in read["tasks"]] == body["task_ids"]
    assert [t["prompt"] for t in read["tasks"]] == [item["prompt"] for item in items]
    after = (await account.http.get("/api/credits", headers=account.auth())).json()
    assert before["balance"] - after["balance"] == body["credits_reserved"], "each task charged its hold once"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"duration": 25}, "items[3].duration"),  # over the schema's limit: refused while decoding
        ({"resolution": "999x999"}, "items[3].resolution"),  # not a preset: refused while planning
        ({"prompt": "   "}, "items[3].prompt"),
        ({"idempotency_key": "mine"}, "items[3].idempotency_key"),  # derived from the batch's key
    ],
)
async def test_an_invalid_item_is_a_422_naming_its_index_and_nothing_is_created(
    account: Api, sessions: Any, change: dict[str, Any], field: str
) -> None:
    assert account.account_id is not None
    before = await _footprint(sessions, account.account_id)
    items = _items(5)
    items[3] = {**items[3], **change}
    answer = await _post(account, {"items": items, "idempotency_key": f"bad-{uuid.uuid4().hex[:8]}"})
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["code"] == "validation_error"
    assert [d["field"] for d in error["details"]] == [field]
    assert await _footprint(sessions, account.account_id) == before, "no task, no batch, no hold, same balance"


async def test_every_invalid_item_is_named_in_one_answer(account: Api) -> None:
    items = _items(4)
    items[1]["resolution"] = "999x999"
    items[2]["model_version"] = "no-such-model"
    answer = await _post(account, {"items": items})
    assert answer.status_code == 422
    assert {d["field"] for d in answer.json()["error"]["details"]} == {"items[1].resolution", "items[2].model_version"}


async def test_a_batch_the_credits_cannot_cover_is_a_402_naming_the_item_and_nothing_is_created(
    account: Api, stack: Stack, sessions: Any
) -> None:
    price = await _price(account, QUICK)
    account_id, key = await make_account(sessions, credits=2 * price)
    before = await _footprint(sessions, account_id)
    async with _client(stack.base_url, key) as poor:
        answer = await _post(poor, {"items": _items(3)})
    assert answer.status_code == 402, answer.text
    error = answer.json()["error"]
    assert error["code"] == "insufficient_credits"
    assert [d["field"] for d in error["details"]] == ["items[2]"], "the first item past what is available"
    assert "items[2]" in error["message"]
    assert await _footprint(sessions, account_id) == before == (0, 0, 0, 2 * price, 0)


async def test_a_monthly_spend_limit_applies_to_the_batch_sum(account: Api, sessions: Any) -> None:
    assert account.account_id is not None
    price = await _price(account, QUICK)
    async with sessions.begin() as session:
        (await session.get_one(Account, account.account_id)).monthly_credit_limit = 2 * price
    before = await _footprint(sessions, account.account_id)
    answer = await _post(account, {"items": _items(3)})
    assert answer.status_code == 402, answer.text
    error = answer.json()["error"]
    assert error["code"] == "spend_limit_reached"
    assert error["details"][0]["field"] == "items[2]"
    assert await _footprint(sessions, account.account_id) == before
    fits = await _post(account, {"items": _items(2)})
    assert fits.status_code == 200, fits.text
    for task_id in fits.json()["task_ids"]:
        await account.wait(task_id)


async def test_at_most_100_items_are_taken_and_100_are_all_checked(account: Api, stack: Stack, sessions: Any) -> None:
    over = await _post(account, {"items": _items(101)})
    assert over.status_code == 422
    assert [d["field"] for d in over.json()["error"]["details"]] == ["items"]
    empty = await _post(account, {"items": []})
    assert empty.status_code == 422
    price = await _price(account, QUICK)
    account_id, key = await make_account(sessions, credits=99 * price)  # one short of a hundred
    async with _client(stack.base_url, key) as poor:
        answer = await _post(poor, {"items": _items(100)})
    assert answer.status_code == 402, answer.text
    assert [d["field"] for d in answer.json()["error"]["details"]] == ["items[99]"]
    assert await _footprint(sessions, account_id) == (0, 0, 0, 99 * price, 0)


async def test_a_retry_with_the_same_key_returns_the_same_batch(account: Api, sessions: Any) -> None:
    assert account.account_id is not None
    key = f"nightly-{uuid.uuid4().hex[:8]}"
    body = {"items": _items(2)}
    first = await _post(account, body, **{"Idempotency-Key": key})
    assert first.status_code == 200, first.text
    assert "idempotent-replayed" not in first.headers
    again = await _post(account, {**body, "idempotency_key": key})  # the body's key is the same key
    assert again.status_code == 200, again.text
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["batch_id"] == first.json()["batch_id"]
    assert again.json()["task_ids"] == first.json()["task_ids"]
    tasks, batches, holds, _, _ = await _footprint(sessions, account.account_id)
    assert (tasks, batches, holds) == (2, 1, 2), "one batch, one task and one hold per item"
    batch_id = first.json()["batch_id"]
    for index, task_id in enumerate(first.json()["task_ids"]):
        done = await account.wait(task_id)
        assert done["status"] == "succeeded"
        assert done["metadata"]["idempotency_key"] == f"{batch_id}/{index}", "the item's key is derived"
    late = await _post(account, body, **{"Idempotency-Key": key})
    assert late.json()["task_ids"] == first.json()["task_ids"]
    assert {t["status"] for t in late.json()["tasks"]} == {"succeeded"}, "a replay shows the tasks as they are"


async def test_the_same_key_with_another_body_is_idempotency_key_reused(account: Api, sessions: Any) -> None:
    assert account.account_id is not None
    key = f"reuse-{uuid.uuid4().hex[:8]}"
    first = await _post(account, {"items": _items(1), "idempotency_key": key})
    assert first.status_code == 200, first.text
    before = await _footprint(sessions, account.account_id)
    other = await _post(account, {"items": _items(2), "idempotency_key": key})
    assert other.status_code == 422
    assert other.json()["error"]["code"] == "idempotency_key_reused"
    differ = await _post(account, {"items": _items(1), "idempotency_key": key}, **{"Idempotency-Key": key + "x"})
    assert differ.status_code == 422
    assert differ.json()["error"]["details"][0]["field"] == "idempotency_key"
    assert await _footprint(sessions, account.account_id) == before
    await account.wait(first.json()["task_ids"][0])


async def test_a_keyed_batch_whose_starts_failed_is_started_by_its_retry(
    stack: Stack, sessions: Any, tmp_path: Path
) -> None:
    """Temporal goes away after the commit: 503 naming the items, the tasks keep their holds, queued.

    The client's retry with the same key replays the batch and starts them.
    """
    account_id, key = await make_account(sessions, credits=100_000)
    port = servers.free_port()
    temporal = servers.start_temporal(tmp_path / "temporal", port, servers.free_port(), log_path=None, headless=True)
    try:
        with serve_replica(stack, temporal_address=f"127.0.0.1:{port}") as base_url:
            temporal.stop()
            async with _client(base_url, key) as lost:
                failed = await _post(lost, {"items": _items(2)}, **{"Idempotency-Key": "after-the-outage"})
    finally:
        temporal.stop()
    assert failed.status_code == 503, failed.text
    assert failed.json()["error"]["code"] == "service_unavailable"
    assert sorted(d["field"] for d in failed.json()["error"]["details"]) == ["items[0]", "items[1]"]
    tasks, batches, holds, _, reserved = await _footprint(sessions, account_id)
    assert (tasks, batches, holds) == (2, 1, 2) and reserved > 0, "a keyed batch keeps its tasks for the retry"
    async with _client(stack.base_url, key) as api:
        retried = await _post(api, {"items": _items(2)}, **{"Idempotency-Key": "after-the-outage"})
        assert retried.status_code == 200, retried.text
        assert retried.headers["idempotent-replayed"] == "true"
        for task_id in retried.json()["task_ids"]:
            assert (await api.wait(task_id))["status"] == "succeeded"


async def test_another_accounts_batch_is_a_404_and_scopes_apply(account: Api, stack: Stack, sessions: Any) -> None:
    made = await _post(account, {"items": _items(1)})
    assert made.status_code == 200, made.text
    batch_id = made.json()["batch_id"]
    _, other = await make_account(sessions)
    foreign = await account.http.get(f"/api/batches/{batch_id}", headers=bearer(other))
    assert foreign.status_code == 404
    assert foreign.json()["error"]["code"] == "not_found"
    unknown = await account.http.get(f"/api/batches/batch_{uuid.uuid4().hex}", headers=account.auth())
    assert unknown.status_code == 404
    assert account.account_id is not None
    async with sessions.begin() as session:
        reader = await issue_api_key(session, account.account_id, scopes="read")
    refused = await _post(account, {"items": _items(1)}, key=reader)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "insufficient_scope"
    assert (await account.http.get(f"/api/batches/{batch_id}", headers=bearer(reader))).status_code == 200
    await account.wait(made.json()["task_ids"][0])


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> Any:
    made = MemoryBucketStore() if request.param == "memory" else RedisBucketStore(redis_url())
    yield made
    await made.close()


async def test_a_charge_past_the_burst_leaves_a_debt_paid_back_before_the_next_request(store: Any) -> None:
    key = f"test:{uuid.uuid4().hex}"
    assert (await store.take(key, rate_per_s=0.001, capacity=4, cost=1)).allowed
    debt = await store.take(key, rate_per_s=0.001, capacity=4, cost=6, need=3)
    assert debt.allowed and debt.tokens == pytest.approx(-3, abs=0.01)
    assert not (await store.take(key, rate_per_s=0.001, capacity=4)).allowed
    assert not (await store.take(key, rate_per_s=0.001, capacity=4, cost=2, need=2)).allowed


async def test_a_batch_is_one_generate_request_plus_one_token_per_item(stack: Stack, sessions: Any) -> None:
    account_id, key = await make_account(sessions, credits=100_000)
    with serve_replica(stack, rate_generate_burst=6, rate_generate_per_min=0.01) as base_url:
        async with _client(base_url, key) as api:
            three = await _post(api, {"items": _items(3)})
            assert three.status_code == 200, three.text
            assert three.headers["ratelimit"].startswith('"generate";r=2;'), "6 - 1 - 3"
            refused = await _post(api, {"items": _items(3)})
            assert refused.status_code == 429, refused.text
            assert refused.json()["error"]["code"] == "rate_limited"
            assert int(refused.headers["retry-after"]) >= 1
            assert refused.headers["ratelimit"].startswith('"generate";r=2;'), "a refused batch costs nothing"
            assert (await _footprint(sessions, account_id))[:2] == (3, 1), "the refused batch created nothing"
            two = await _post(api, {"items": _items(1)})
            assert two.status_code == 200, two.text
            assert two.headers["ratelimit"].startswith('"generate";r=0;'), "2 - 1 for the request - 1 for its item"
            assert (await api.generate(QUICK)).status_code == 429
            for task_id in [*three.json()["task_ids"], *two.json()["task_ids"]]:
                assert (await api.wait(task_id))["status"] == "succeeded"


async def test_a_batch_larger_than_the_burst_is_taken_from_a_full_bucket_and_leaves_a_debt(
    stack: Stack, sessions: Any
) -> None:
    _, key = await make_account(sessions, credits=100_000)
    with serve_replica(stack, rate_generate_burst=3, rate_generate_per_min=0.01) as base_url:
        async with _client(base_url, key) as api:
            big = await _post(api, {"items": _items(4)})
            assert big.status_code == 200, big.text
            assert big.headers["ratelimit"].startswith('"generate";r=0;')
            assert (await api.generate(QUICK)).status_code == 429, "the debt is paid back first"
            assert (await _post(api, {"items": _items(1)})).status_code == 429
            for task_id in big.json()["task_ids"]:
                assert (await api.wait(task_id))["status"] == "succeeded"


async def test_batches_are_in_the_openapi_schema(api: Api) -> None:
    document = (await api.http.get("/openapi.json")).json()
    create = document["paths"]["/api/batches"]["post"]
    assert create["operationId"] == "createBatch"
    assert {"402", "422", "429"} <= set(create["responses"])
    items = document["components"]["schemas"]["BatchRequest"]["properties"]["items"]
    assert (items["minItems"], items["maxItems"]) == (1, 100)
    assert document["paths"]["/api/batches/{batch_id}"]["get"]["operationId"] == "getBatch"
    assert "counts" in document["components"]["schemas"]["BatchStatus"]["properties"]
