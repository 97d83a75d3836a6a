"""Credits over real HTTP on the real stack (PostgreSQL).

Estimates, 402 without side effects, no overdraw under 50 concurrent creates, the race past the API, balances and the
ledger.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from sqlalchemy import func, select
from temporalio.client import WorkflowFailureError

from sorapi.contracts import names
from sorapi.contracts.messages import VideoTaskInput
from sorapi.contracts.schemas import TaskRequest
from sorapi.domain.catalog import get_catalog
from sorapi.domain.ids import new_task_id
from sorapi.domain.planning import render_spec
from sorapi.store import ledger
from sorapi.store.accounts import issue_api_key
from sorapi.store.models import Account, LedgerEntry, Task
from tests.stack import Api, Stack, make_account

TERMINAL = ("succeeded", "failed", "cancelled", "expired")
SMALL = {"prompt": "a paper boat on a pond", "duration": 1, "resolution": "480x480"}  # sd: 1 credit


async def _account_state(sessions: Any, account_id: str) -> tuple[Account, ledger.Totals, dict[str, int]]:
    async with sessions() as session:
        account = await session.get(Account, account_id)
        totals = await ledger.entry_totals(session, account_id)
        counts = dict(
            (
                await session.execute(
                    select(Task.status, func.count()).where(Task.account_id == account_id).group_by(Task.status)
                )
            ).all()
        )
    return account, totals, counts


async def _wait_all_finished(sessions: Any, account_id: str, timeout_s: float = 180) -> dict[str, int]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        _, _, counts = await _account_state(sessions, account_id)
        if set(counts) <= set(TERMINAL):
            return counts
        await asyncio.sleep(0.5)
    raise TimeoutError(f"tasks still unfinished: {counts}")


async def test_estimate_quotes_what_generate_reserves(stack: Stack, sessions: Any) -> None:
    _, key = await make_account(sessions, credits=1000)
    api = Api(stack.base_url, key)
    try:
        quotes = {}
        for resolution, duration in (("1280x720", 8), ("1920x1080", 8), ("1280x720", 12)):
            got = await api.http.get(
                "/api/credits/estimate", headers=api.auth(), params={"resolution": resolution, "duration": duration}
            )
            assert got.status_code == 200, got.text
            quotes[resolution, duration] = got.json()
        assert quotes["1280x720", 8]["credits"] == 16 and quotes["1280x720", 8]["tier"] == "hd"
        assert quotes["1920x1080", 8]["credits"] > quotes["1280x720", 8]["credits"], "higher resolution costs more"
        assert quotes["1280x720", 12]["credits"] > quotes["1280x720", 8]["credits"], "longer costs more"
        assert quotes["1280x720", 8]["affordable"] is True and quotes["1280x720", 8]["available"] == 1000

        body = {"prompt": "estimate me", "model_version": "sora-2-preview", "duration": 1, "resolution": "854x480"}
        quoted = await api.http.post("/api/credits/estimate", json=body, headers=api.auth())
        assert quoted.status_code == 200, quoted.text
        created = await api.generate(body)
        assert created.status_code == 200, created.text
        assert (
            created.json()["credits_reserved"] == quoted.json()["credits"] == 2
        )  # 1 s × 1 credit/s (sd) × 1.5, rounded up
        async with sessions() as session:
            task = await session.get(Task, created.json()["task_id"])
            hold = (await ledger.task_entries(session, task.id))["reserve"]
        assert task.price == hold.amount == 2
        client = await stack.temporal_client()
        described = await client.get_workflow_handle(task.id).describe()
        assert (
            described.raw_description.workflow_execution_info.priority.priority_key
            == get_catalog().plans["free"].priority
        ), "the plan's priority reaches Temporal (renders inherit it)"

        bad = await api.http.get("/api/credits/estimate", headers=api.auth(), params={"resolution": "999x1"})
        assert bad.status_code == 422 and bad.json()["error"]["details"][0]["field"] == "resolution"
        assert (await api.http.get("/api/credits/estimate", params={"duration": 4})).status_code == 401
    finally:
        await api.close()


async def test_insufficient_credits_is_402_and_creates_nothing(stack: Stack, sessions: Any) -> None:
    account_id, key = await make_account(sessions, credits=0)
    api = Api(stack.base_url, key)
    try:
        quote = (await api.http.get("/api/credits/estimate", headers=api.auth(), params={"duration": 8})).json()
        assert quote["credits"] == 16 and quote["affordable"] is False
        refused = await api.generate({**SMALL, "idempotency_key": "broke-1"})
        assert refused.status_code == 402, refused.text
        assert refused.json()["error"]["code"] == "insufficient_credits"
        account, totals, counts = await _account_state(sessions, account_id)
        assert counts == {}, "no task row"
        assert (account.balance, account.reserved) == (totals.balance, totals.reserved) == (0, 0)
        async with sessions() as session:
            kinds = (await session.scalars(select(LedgerEntry.kind).where(LedgerEntry.account_id == account_id))).all()
        assert kinds == [], "no hold"
        # the same idempotency key works once credits arrive: the refused attempt left nothing behind
        async with sessions.begin() as session:
            await ledger.grant(session, await ledger.lock_account(session, account_id), 1, reason="top-up")
        assert (await api.generate({**SMALL, "idempotency_key": "broke-1"})).status_code == 200
    finally:
        await api.close()


async def test_50_concurrent_creates_never_overdraw(stack: Stack, sessions: Any) -> None:
    account_id, key = await make_account(sessions, plan="free", credits=5)
    api = Api(stack.base_url, key)
    try:
        replies = await asyncio.gather(*(api.generate({**SMALL, "seed": n}) for n in range(50)))
    finally:
        await api.close()
    codes = sorted(r.status_code for r in replies)
    assert codes.count(200) == 5 and codes.count(402) == 45, codes
    assert all(r.json()["error"]["code"] == "insufficient_credits" for r in replies if r.status_code == 402)

    account, totals, counts = await _account_state(sessions, account_id)
    assert (account.balance, account.reserved) == (totals.balance, totals.reserved) == (5, 5)
    assert sum(counts.values()) == 5

    assert await _wait_all_finished(sessions, account_id) == {"succeeded": 5}
    account, totals, _ = await _account_state(sessions, account_id)
    assert (account.balance, account.reserved) == (totals.balance, totals.reserved) == (0, 0)
    async with sessions() as session:
        kinds = (
            await session.execute(
                select(LedgerEntry.kind, func.count())
                .where(LedgerEntry.account_id == account_id)
                .group_by(LedgerEntry.kind)
            )
        ).all()
    assert dict(kinds) == {"grant": 1, "reserve": 5, "capture": 5}


async def test_a_race_past_the_api_fails_the_task_holding_nothing(stack: Stack, sessions: Any) -> None:
    """A task with no hold, on an account that cannot pay, fails with insufficient_credits.

    The task row's hold never happened (a race the API lost): the workflow's own reserve refuses.
    """
    account_id, _ = await make_account(sessions, credits=3)
    task_id = new_task_id()
    request = TaskRequest(
        prompt="raced",
        model_version="sora-2-latest",
        duration=4,
        resolution="480x480",
        aspect_ratio="square",
        guidance=7.5,
        seed=1,
    )
    async with sessions.begin() as session:
        session.add(
            Task(
                id=task_id, account_id=account_id, fingerprint="raced", price=4, outputs=[], request={"prompt": "raced"}
            )
        )
    client = await stack.temporal_client()
    handle = await client.start_workflow(
        names.VIDEO_TASK_WORKFLOW,
        VideoTaskInput(
            task_id=task_id, account_id=account_id, price=4, render=render_spec(task_id, request, get_catalog())
        ),
        id=task_id,
        task_queue="sorapi-orchestration",
    )
    try:
        await asyncio.wait_for(handle.result(), 60)
        raise AssertionError("the workflow should have failed")
    except WorkflowFailureError as exc:
        assert getattr(exc.cause, "type", None) == "insufficient_credits"
    async with sessions() as session:
        task = await session.get(Task, task_id)
        entries = (await session.scalars(select(LedgerEntry.kind).where(LedgerEntry.task_id == task_id))).all()
    assert (task.status, task.error_code) == ("failed", "insufficient_credits")
    assert entries == []
    account, totals, _ = await _account_state(sessions, account_id)
    assert (account.balance, account.reserved) == (totals.balance, totals.reserved) == (3, 0)


async def test_credits_and_ledger_pages(stack: Stack, sessions: Any) -> None:
    account_id, key = await make_account(sessions, credits=100)
    api = Api(stack.base_url, key)
    try:
        for n in range(3):
            assert (await api.generate({**SMALL, "seed": n})).status_code == 200
        got = await api.http.get("/api/credits", headers=api.auth())
        assert got.status_code == 200, got.text
        credits = got.json()
        assert credits["plan"] == "free" and credits["account_id"] == account_id
        assert credits["balance"] - credits["reserved"] == credits["available"]
        assert credits["balance"] + 0 <= 100 and credits["max_concurrent_jobs"] == 2
        assert credits["period_end"] is None, "Free has no monthly refresh"
        assert credits["overage"]["allowed"] is False

        seen, cursor = [], None
        while True:
            params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
            page = (await api.http.get("/api/credits/ledger", headers=api.auth(), params=params)).json()
            seen += page["data"]
            cursor = page["next_cursor"]
            if not page["has_more"]:
                break
        ids = [e["id"] for e in seen]
        assert ids == sorted(ids, reverse=True) and len(ids) == len(set(ids)), "newest first, no repeats"
        async with sessions() as session:
            stored = (await session.scalars(select(LedgerEntry.id).where(LedgerEntry.account_id == account_id))).all()
        assert sorted(ids) == sorted(stored)
        assert seen[-1]["kind"] == "grant" and seen[-1]["amount"] == 100
        assert {e["kind"] for e in seen} >= {"grant", "reserve"}
        reserves = (await api.http.get("/api/credits/ledger", headers=api.auth(), params={"kind": "reserve"})).json()
        assert {e["kind"] for e in reserves["data"]} == {"reserve"} and all(e["task_id"] for e in reserves["data"])
        assert (
            await api.http.get("/api/credits/ledger", headers=api.auth(), params={"cursor": "nope"})
        ).status_code == 422
        assert (await api.http.get("/api/audit-log", headers=api.auth())).json()["error"][
            "code"
        ] == "insufficient_scope", "the route's scope is checked first"
        async with sessions.begin() as session:
            auditor = await issue_api_key(session, account_id, scopes="audit")
        assert (await api.http.get("/api/audit-log", headers=api.auth(auditor))).json()["error"][
            "code"
        ] == "plan_feature_unavailable"
    finally:
        await api.close()
    await _wait_all_finished(sessions, account_id)
