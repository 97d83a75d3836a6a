"""Spend caps over real HTTP on the real stack (PostgreSQL).

The 402 and what it says, nothing created past a cap, the credits view, setting caps by operator (HTTP and CLI) and by a
Scale account's own administrator, and exactness under 50 concurrent creates.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from temporalio.service import RPCError, RPCStatusCode

from sorapi.domain.ids import idempotent_task_id
from sorapi.store import ledger, spend_limits
from sorapi.store.models import Account, ApiKey, LedgerEntry, Task
from tests.stack import Api, Stack, make_account

SMALL = {"prompt": "a paper boat on a pond", "duration": 1, "resolution": "480x480"}  # sd: 1 credit
TERMINAL = ("succeeded", "failed", "cancelled", "expired")


def _resets_at() -> str:
    return spend_limits.month_bounds()[1].isoformat().replace("+00:00", "Z")


def _admin(stack: Stack) -> httpx.AsyncClient:
    token = (stack.data_dir / "admin-token").read_text().strip()
    return httpx.AsyncClient(
        base_url=stack.base_url, timeout=30, headers={"Authorization": f"Bearer {token}", "X-Admin-Actor": "ops-bob"}
    )


async def _set(stack: Stack, account_id: str, limit: int | None, key_id: str | None = None) -> httpx.Response:
    body: dict[str, Any] = {"monthly_credit_limit": limit}
    if key_id is not None:
        body["key_id"] = key_id
    async with _admin(stack) as admin:
        return await admin.put(f"/admin/accounts/{account_id}/spend-limits", json=body)


async def _key_id(sessions: Any, account_id: str) -> str:
    async with sessions() as session:
        return str(await session.scalar(select(Task.key_id).where(Task.account_id == account_id).limit(1)))


async def _rows(sessions: Any, account_id: str) -> tuple[Account, ledger.Totals, Counter[str], Counter[str]]:
    """The account row, its ledger's totals, its tasks by status and its ledger entries by kind.

    Read under the account row lock, so no capture or release lands between the reads.
    """
    async with sessions.begin() as session:
        account = await ledger.lock_account(session, account_id)
        totals = await ledger.entry_totals(session, account_id)
        tasks = Counter((await session.scalars(select(Task.status).where(Task.account_id == account_id))).all())
        kinds = Counter(
            (await session.scalars(select(LedgerEntry.kind).where(LedgerEntry.account_id == account_id))).all()
        )
    return account, totals, tasks, kinds


async def _wait_finished(sessions: Any, account_id: str, timeout_s: float = 180) -> Counter[str]:
    async with asyncio.timeout(timeout_s):
        while True:
            _, _, tasks, _ = await _rows(sessions, account_id)
            if set(tasks) <= set(TERMINAL):
                return tasks
            await asyncio.sleep(0.5)


async def test_a_create_past_the_account_limit_is_402_naming_it_and_creates_nothing(
    stack: Stack, sessions: Any
) -> None:
    account_id, key = await make_account(sessions, credits=1000)
    api = Api(stack.base_url, key)
    try:
        assert (await _set(stack, account_id, 2)).status_code == 200
        for n in range(2):
            assert (await api.generate({**SMALL, "seed": n})).status_code == 200
        quote = (await api.http.post("/api/credits/estimate", json=SMALL, headers=api.auth())).json()
        assert quote["affordable"] is False, "the estimate knows the cap refuses it"

        refused = await api.generate({**SMALL, "idempotency_key": "past-the-cap"})
        assert refused.status_code == 402, refused.text
        error = refused.json()["error"]
        assert error["code"] == "spend_limit_reached"
        assert "the account's monthly spend limit of 2 credits has 0 left" in error["message"]
        assert f"resets at {_resets_at()}" in error["message"]

        account, totals, tasks, kinds = await _rows(sessions, account_id)
        assert sum(tasks.values()) == 2 and kinds["reserve"] == 2, "no task row and no hold for the refused create"
        assert (account.balance, account.reserved) == (totals.balance, totals.reserved)
        assert account.reserved + kinds["capture"] == 2 and account.balance + kinds["capture"] == 1000
        client = await stack.temporal_client()
        with pytest.raises(RPCError) as missing:
            await client.get_workflow_handle(idempotent_task_id(account_id, "past-the-cap")).describe()
        assert missing.value.status == RPCStatusCode.NOT_FOUND, "no workflow"

        # captured credits still count this month: the cap holds after the renders are charged
        assert await _wait_finished(sessions, account_id) == Counter({"succeeded": 2})
        credits = (await api.http.get("/api/credits", headers=api.auth())).json()
        assert credits["reserved"] == 0 and credits["spend_limits"] == [
            {"scope": "account", "key_id": None, "monthly_credit_limit": 2, "used": 2, "resets_at": _resets_at()}
        ]
        again = await api.generate({**SMALL, "idempotency_key": "past-the-cap"})
        assert again.status_code == 402 and again.json()["error"]["code"] == "spend_limit_reached"

        assert (await _set(stack, account_id, 3)).status_code == 200, "raised: one more fits"
        assert (await api.generate({**SMALL, "idempotency_key": "past-the-cap"})).status_code == 200
    finally:
        await api.close()


async def test_a_key_limit_caps_that_key_only_on_v1_videos_too(stack: Stack, sessions: Any) -> None:
    async with _admin(stack) as admin:
        created = (await admin.post("/admin/accounts", json={"name": "two seats", "plan": "pro"})).json()
        account_id, first = created["account_id"], created["key"]
        second = (await admin.post(f"/admin/accounts/{account_id}/keys", json={"name": "bot"})).json()
    capped = await _set(stack, account_id, 1, key_id=second["key_id"])
    assert capped.status_code == 200, capped.text
    assert capped.json()["spend_limits"] == [
        {"scope": "key", "key_id": second["key_id"], "monthly_credit_limit": 1, "used": 0, "resets_at": _resets_at()}
    ]
    video = {"prompt": "A red kite", "seconds": 1, "size": "480x480"}
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as http:
        bot = {"Authorization": f"Bearer {second['api_key']}"}
        assert (await http.post("/v1/videos", json=video, headers=bot)).status_code == 200
        refused = await http.post("/v1/videos", json=video, headers=bot)
        assert refused.status_code == 402, refused.text
        error = refused.json()["error"]
        assert error["code"] == "spend_limit_reached"
        assert f"API key {second['key_id']}'s monthly spend limit of 1 credits has 0 left" in error["message"]
        assert f"resets at {_resets_at()}" in error["message"]
        owner = {"Authorization": f"Bearer {first['api_key']}"}
        assert (await http.post("/v1/videos", json=video, headers=owner)).status_code == 200, "the other key is free"
        assert (await http.post("/api/generate", json=SMALL, headers=bot)).status_code == 402, "/api too"
        async with sessions() as session:
            makers = Counter((await session.scalars(select(Task.key_id).where(Task.account_id == account_id))).all())
        assert makers == {first["key_id"]: 1, second["key_id"]: 1}, "each task records the key that created it"

        # a revoked key's limit goes with it
        async with _admin(stack) as admin:
            await admin.delete(f"/admin/accounts/{account_id}/keys/{second['key_id']}")
        credits = (await http.get("/api/credits", headers=owner)).json()
        assert credits["spend_limits"] == []


async def test_operators_set_and_clear_limits_over_http(stack: Stack, sessions: Any) -> None:
    account_id, key = await make_account(sessions, credits=100)
    api = Api(stack.base_url, key)
    try:
        assert (await api.generate(SMALL)).status_code == 200
        key_id = await _key_id(sessions, account_id)
        assert (await _set(stack, account_id, 50)).status_code == 200
        both = await _set(stack, account_id, 10, key_id=key_id)
        assert both.status_code == 200, both.text
        assert both.json()["spend_limits"] == [
            {"scope": "account", "key_id": None, "monthly_credit_limit": 50, "used": 1, "resets_at": _resets_at()},
            {"scope": "key", "key_id": key_id, "monthly_credit_limit": 10, "used": 1, "resets_at": _resets_at()},
        ]
        shown = (await api.http.get("/api/credits", headers=api.auth())).json()["spend_limits"]
        assert shown == both.json()["spend_limits"], "GET /api/credits shows the same"

        cleared = await _set(stack, account_id, None)
        assert [limit["scope"] for limit in cleared.json()["spend_limits"]] == ["key"]
        assert (await _set(stack, account_id, None, key_id=key_id)).json() == {"spend_limits": []}

        unknown = await _set(stack, account_id, 5, key_id="key_nope")
        assert unknown.status_code == 404 and unknown.json()["error"]["details"][0]["field"] == "key_id"
        negative = await _set(stack, account_id, -1)
        assert negative.status_code == 422 and negative.json()["error"]["details"][0]["field"] == "monthly_credit_limit"
        async with _admin(stack) as admin:
            missing = await admin.put("/admin/accounts/acct_nope/spend-limits", json={"monthly_credit_limit": 1})
            assert missing.status_code == 404
            no_value = await admin.put(f"/admin/accounts/{account_id}/spend-limits", json={})
            assert no_value.status_code == 422, "the limit is required: null clears it"
            log = (await admin.get("/admin/audit-log", params={"account_id": account_id})).json()["data"]
        changes = [e for e in log if e["action"] == "spend_limit.set"]
        assert len(changes) == 4 and all(e["actor"] == "admin:ops-bob" for e in changes)
    finally:
        await api.close()


async def test_a_scale_administrator_sets_its_own_caps_and_others_are_refused(stack: Stack, sessions: Any) -> None:
    async with _admin(stack) as admin:
        scale = (await admin.post("/admin/accounts", json={"name": "big", "plan": "scale", "scopes": ["admin"]})).json()
        member = (await admin.post(f"/admin/accounts/{scale['account_id']}/keys", json={"name": "dev"})).json()
        free = (await admin.post("/admin/accounts", json={"name": "small", "scopes": ["admin"]})).json()
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as http:
        chief = {"Authorization": f"Bearer {scale['key']['api_key']}"}
        own = await http.put("/api/credits/spend-limits", json={"monthly_credit_limit": 1000}, headers=chief)
        assert own.status_code == 200, own.text
        seat = await http.put(
            "/api/credits/spend-limits",
            json={"monthly_credit_limit": 0, "key_id": member["key_id"]},
            headers=chief,
        )
        assert [(s["scope"], s["monthly_credit_limit"]) for s in seat.json()["spend_limits"]] == [
            ("account", 1000),
            ("key", 0),
        ]
        dev = {"Authorization": f"Bearer {member['api_key']}"}
        refused = await http.post("/api/generate", json=SMALL, headers=dev)
        assert refused.status_code == 402 and refused.json()["error"]["code"] == "spend_limit_reached"
        not_admin = await http.put("/api/credits/spend-limits", json={"monthly_credit_limit": None}, headers=dev)
        assert not_admin.status_code == 403 and not_admin.json()["error"]["code"] == "insufficient_scope"

        foreign = await http.put(
            "/api/credits/spend-limits",
            json={"monthly_credit_limit": 0, "key_id": free["key"]["key_id"]},
            headers=chief,
        )
        assert foreign.status_code == 404, "another account's key is nobody's here"

        small = {"Authorization": f"Bearer {free['key']['api_key']}"}
        not_scale = await http.put("/api/credits/spend-limits", json={"monthly_credit_limit": 10}, headers=small)
        assert not_scale.status_code == 403 and not_scale.json()["error"]["code"] == "plan_feature_unavailable"
        assert (await http.get("/api/credits", headers=small)).json()["spend_limits"] == [], "nothing was set"
        log = (await http.get("/api/audit-log", headers=chief)).json()["data"]
        assert [e["actor"] for e in log if e["action"] == "spend_limit.set"] == [scale["key"]["key_id"]] * 2


def _cli(pg_url: str, *args: str) -> tuple[int, str]:
    done = subprocess.run(
        [sys.executable, "-m", "sorapi", "admin", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "SORAPI_DATABASE_URL": pg_url, "SORAPI_LOG_LEVEL": "warning"},
        cwd=Path(__file__).parents[1],
        timeout=60,
    )
    return done.returncode, done.stdout


async def test_the_cli_sets_and_clears_limits(pg_url: str, sessions: Any) -> None:
    account_id, _ = await make_account(sessions, credits=10)
    async with sessions() as session:
        key_id = str(await session.scalar(select(ApiKey.id).where(ApiKey.account_id == account_id)))
    code, out = await asyncio.to_thread(_cli, pg_url, "set-spend-limit", account_id, "7")
    assert code == 0, out
    assert json.loads(out)["spend_limits"][0] | {"resets_at": None} == {
        "scope": "account",
        "key_id": None,
        "monthly_credit_limit": 7,
        "used": 0,
        "resets_at": None,
    }
    code, out = await asyncio.to_thread(_cli, pg_url, "set-spend-limit", account_id, "3", "--key", key_id)
    assert [(s["scope"], s["monthly_credit_limit"]) for s in json.loads(out)["spend_limits"]] == [
        ("account", 7),
        ("key", 3),
    ]
    code, out = await asyncio.to_thread(_cli, pg_url, "set-spend-limit", account_id, "none")
    assert code == 0 and [s["scope"] for s in json.loads(out)["spend_limits"]] == ["key"]
    code, out = await asyncio.to_thread(_cli, pg_url, "set-spend-limit", account_id, "none", "--key", key_id)
    assert code == 0 and json.loads(out) == {"spend_limits": []}
    code, out = await asyncio.to_thread(_cli, pg_url, "set-spend-limit", account_id, "5", "--key", "key_nope")
    assert code == 1 and out.startswith("error: not_found")
    async with sessions() as session:
        account = await session.get_one(Account, account_id)
        assert (account.monthly_credit_limit, account.key_credit_limits) == (None, {})


async def test_50_concurrent_creates_stop_exactly_at_the_account_and_key_limits(stack: Stack, sessions: Any) -> None:
    """Key A may use 3 credits, the account 7: of 25 creates on each of two keys, exactly 7 pass, at most 3 A's.

    Every create costs 1. This holds whatever order the row lock serves them in (B's may come first and leave A fewer
    than 3).
    """
    async with _admin(stack) as admin:
        created = (await admin.post("/admin/accounts", json={"name": "racers", "plan": "pro"})).json()
        account_id, key_a = created["account_id"], created["key"]
        key_b = (await admin.post(f"/admin/accounts/{account_id}/keys", json={})).json()
    assert (await _set(stack, account_id, 7)).status_code == 200
    assert (await _set(stack, account_id, 3, key_id=key_a["key_id"])).status_code == 200
    api = Api(stack.base_url, key_a["api_key"])
    try:
        replies = await asyncio.gather(
            *(api.generate({**SMALL, "seed": n}, key=(key_a if n % 2 else key_b)["api_key"]) for n in range(50))
        )
    finally:
        await api.close()
    codes = Counter(r.status_code for r in replies)
    assert codes == {200: 7, 402: 43}, codes
    assert {r.json()["error"]["code"] for r in replies if r.status_code == 402} == {"spend_limit_reached"}

    _, _, tasks, kinds = await _rows(sessions, account_id)
    assert sum(tasks.values()) == 7 and kinds["reserve"] == 7
    async with sessions() as session:
        makers = Counter((await session.scalars(select(Task.key_id).where(Task.account_id == account_id))).all())
        holds_by_key = dict(
            (
                await session.execute(
                    select(LedgerEntry.actor, func.count())
                    .where(LedgerEntry.account_id == account_id, LedgerEntry.kind == "reserve")
                    .group_by(LedgerEntry.actor)
                )
            ).all()
        )
    from_a = makers[key_a["key_id"]]
    assert 1 <= from_a <= 3 and makers == {key_a["key_id"]: from_a, key_b["key_id"]: 7 - from_a}, makers
    assert holds_by_key == makers
    async with sessions.begin() as session:  # the row lock: no capture lands between the reads
        account = await ledger.lock_account(session, account_id)
        totals = await ledger.entry_totals(session, account_id)
        used = await spend_limits.usage(session, account)
    assert (account.balance, account.reserved) == (totals.balance, totals.reserved), "ledger consistent"
    assert [(u.scope, u.used, u.limit) for u in used] == [("account", 7, 7), ("key", from_a, 3)], (
        "usage is exactly each limit, however many renders were already charged"
    )

    assert await _wait_finished(sessions, account_id) == Counter({"succeeded": 7})
    account, totals, _, kinds = await _rows(sessions, account_id)
    assert (account.balance, account.reserved) == (totals.balance, totals.reserved)
    assert account.reserved == 0 and kinds["capture"] == 7
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as http:
        shown = (await http.get("/api/credits", headers={"Authorization": f"Bearer {key_b['api_key']}"})).json()
    assert [(s["scope"], s["used"], s["monthly_credit_limit"]) for s in shown["spend_limits"]] == [
        ("account", 7, 7),
        ("key", from_a, 3),
    ], "captured credits count as used for the rest of the month"
