"""Administration: the `/admin` HTTP API, what customers see of it, and `sorapi admin ...`.

The `/admin` HTTP API behind the operator token (on the real stack), customer views of the result (credits, seats, audit
log), and the same actions through `sorapi admin ...` against PostgreSQL, including the seed's placeholder settings
taking effect.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
from litestar.testing import AsyncTestClient

from sorapi.adapters.settings import settings_from_env
from sorapi.api.app import create_app
from sorapi.domain.catalog import get_catalog
from tests.stack import Stack


def _admin(stack: Stack) -> httpx.AsyncClient:
    token = (stack.data_dir / "admin-token").read_text().strip()
    return httpx.AsyncClient(
        base_url=stack.base_url, timeout=30, headers={"Authorization": f"Bearer {token}", "X-Admin-Actor": "ops-alice"}
    )


def _as(stack: Stack, key: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=stack.base_url, timeout=30, headers={"Authorization": f"Bearer {key}"})


async def test_admin_api_needs_the_admin_token(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as anonymous:
        assert (await anonymous.post("/admin/accounts", json={"name": "x"})).status_code == 401
        wrong = await anonymous.get("/admin/audit-log", headers={"Authorization": "Bearer adm_wrong"})
        assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "unauthorized"
        customer = await anonymous.get("/admin/audit-log", headers={"Authorization": f"Bearer {stack.api_key}"})
        assert customer.status_code == 401, "a customer API key is not an admin token"


async def test_admin_api_is_off_without_a_token(stack: Stack) -> None:
    settings = settings_from_env({**stack.env, "SORAPI_ADMIN_TOKEN": ""})
    async with AsyncTestClient(app=create_app(settings)) as client:
        refused = await client.get("/admin/audit-log", headers={"Authorization": "Bearer "})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "admin_disabled"


async def test_accounts_keys_credits_plans_and_audit_over_http(stack: Stack) -> None:
    included = get_catalog().plans["pro"].included_credits
    async with _admin(stack) as admin:
        created = await admin.post("/admin/accounts", json={"name": "Acme", "plan": "pro", "key_name": "owner"})
        assert created.status_code == 201, created.text
        account = created.json()
        account_id, owner_key = account["account_id"], account["key"]["api_key"]
        assert account["balance"] == included, "a Pro account starts its first period at once"

        async with _as(stack, owner_key) as owner:
            credits = (await owner.get("/api/credits")).json()
        assert credits["plan"] == "pro" and credits["refreshed_this_period"] == included
        assert credits["period_end"] and credits["overage"]["allowed"] is True

        seat = (
            await admin.post(f"/admin/accounts/{account_id}/keys", json={"scopes": ["read"], "name": "analyst"})
        ).json()
        listed = (await admin.get(f"/admin/accounts/{account_id}/keys")).json()["data"]
        assert [(k["name"], k["scopes"]) for k in listed] == [("owner", ["generate", "read"]), ("analyst", ["read"])]
        assert all("api_key" not in k and k["prefix"] for k in listed), "secrets are never listed"
        async with _as(stack, seat["api_key"]) as analyst:
            assert (await analyst.get("/api/credits")).status_code == 200
            revoked = await admin.delete(f"/admin/accounts/{account_id}/keys/{seat['key_id']}")
            assert revoked.status_code == 200 and revoked.json()["revoked_at"]
            assert (await analyst.get("/api/credits")).status_code == 401

        granted = await admin.post(
            f"/admin/accounts/{account_id}/credits/grant", json={"amount": 100, "reason": "promo"}
        )
        assert granted.status_code == 201 and granted.json()["actor"] == "admin:ops-alice"
        assert (
            await admin.post(
                f"/admin/accounts/{account_id}/credits/adjust", json={"amount": -50, "reason": "refund correction"}
            )
        ).status_code == 201
        overdraw = await admin.post(
            f"/admin/accounts/{account_id}/credits/adjust", json={"amount": -(10**9), "reason": "too much"}
        )
        assert overdraw.status_code == 409, "an adjustment never takes the balance below what is available"
        assert overdraw.json()["error"]["code"] == "ledger_conflict"
        assert (
            await admin.post(f"/admin/accounts/{account_id}/credits/grant", json={"amount": 0, "reason": "nothing"})
        ).status_code == 422

        moved = await admin.put(f"/admin/accounts/{account_id}/plan", json={"plan": "scale"})
        assert moved.status_code == 200, moved.text
        assert moved.json()["plan"] == "scale" and moved.json()["balance"] == included + 50, (
            "this period's refresh already happened: no second grant"
        )
        assert (await admin.put(f"/admin/accounts/{account_id}/plan", json={"plan": "gold"})).status_code == 422

        shown = (await admin.get(f"/admin/accounts/{account_id}")).json()
        assert (
            shown["name"] == "Acme"
            and shown["credits"]["max_concurrent_jobs"] == get_catalog().plans["scale"].max_concurrent_jobs
        )
        kinds = [e["kind"] for e in (await admin.get(f"/admin/accounts/{account_id}/ledger")).json()["data"]]
        assert kinds == ["adjust", "grant", "refresh"]
        assert (await admin.get("/admin/accounts/acct_missing")).status_code == 404

        auditor = (
            await admin.post(f"/admin/accounts/{account_id}/keys", json={"scopes": ["audit"], "name": "soc2"})
        ).json()
    async with _as(stack, owner_key) as owner:
        assert (await owner.get("/api/audit-log")).json()["error"]["code"] == "insufficient_scope"
    async with _as(stack, auditor["api_key"]) as soc2:
        log = (await soc2.get("/api/audit-log", params={"limit": 200})).json()["data"]
    actions = [e["action"] for e in reversed(log)]
    assert [a for a in actions if a != "key.use"] == [
        "account.create",
        "key.issue",
        "key.revoke",
        "credits.grant",
        "credits.adjust",
        "plan.change",
        "key.issue",
    ]
    uses = [e for e in log if e["action"] == "key.use"]
    assert uses and uses[0]["target"] == auditor["key_id"] and uses[0]["details"]["path"] == "/api/audit-log", (
        "Scale records each key use (the plan changed to Scale, so later calls are audited)"
    )
    assert all(e["actor"] == "admin:ops-alice" for e in log if e["action"] != "key.use")


async def test_seats_are_limited_by_plan(stack: Stack) -> None:
    seats = get_catalog().plans["free"].max_api_keys
    async with _admin(stack) as admin:
        account_id = (await admin.post("/admin/accounts", json={"name": "solo"})).json()["account_id"]
        for _ in range(seats - 1):
            assert (await admin.post(f"/admin/accounts/{account_id}/keys", json={})).status_code == 201
        refused = await admin.post(f"/admin/accounts/{account_id}/keys", json={})
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "plan_feature_unavailable"


def _cli(pg_url: str, *args: str, **env: str) -> tuple[int, str]:
    done = subprocess.run(
        [sys.executable, "-m", "sorapi", "admin", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "SORAPI_DATABASE_URL": pg_url, "SORAPI_LOG_LEVEL": "warning", **env},
        cwd=Path(__file__).parents[1],
        timeout=60,
    )
    return done.returncode, done.stdout


def _fields(output: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in output.splitlines() if "=" in line)


def test_cli_administers_accounts_and_placeholders_take_effect(pg_url: str) -> None:
    code, out = _cli(pg_url, "create-account", "--name", "cli-free", SORAPI_STARTER_CREDITS="42")
    assert code == 0, out
    free = _fields(out)
    assert free["api_key"].startswith("sk_sora2_") and free["key_id"].startswith("key_")
    code, out = _cli(pg_url, "create-account", "--name", "cli-pro", "--plan", "pro", SORAPI_PRO_INCLUDED_CREDITS="777")
    pro = _fields(out)["account_id"]

    code, out = _cli(pg_url, "show", free["account_id"])
    assert code == 0 and json.loads(out)["credits"]["balance"] == 42, "SORAPI_STARTER_CREDITS took effect"
    assert json.loads(_cli(pg_url, "show", pro)[1])["credits"]["balance"] == 777, "SORAPI_PRO_INCLUDED_CREDITS too"

    code, out = _cli(pg_url, "issue-key", free["account_id"], "--scopes", "read", "--name", "bot")
    seat = _fields(out)
    assert code == 0 and seat["api_key"].startswith("sk_sora2_")
    keys = json.loads(_cli(pg_url, "list-keys", free["account_id"])[1])["data"]
    assert [(k["name"], k["scopes"]) for k in keys] == [("", ["generate", "read"]), ("bot", ["read"])]
    assert json.loads(_cli(pg_url, "revoke-key", free["account_id"], seat["key_id"])[1])["revoked_at"]

    assert json.loads(_cli(pg_url, "grant", free["account_id"], "8", "--reason", "support")[1])["amount"] == 8
    assert json.loads(_cli(pg_url, "adjust", free["account_id"], "-20", "--reason", "fix")[1])["amount"] == -20
    code, out = _cli(pg_url, "adjust", free["account_id"], "-1000", "--reason", "too much")
    assert code == 1 and out.startswith("error: ledger_conflict")
    moved = json.loads(_cli(pg_url, "change-plan", free["account_id"], "scale")[1])
    assert moved["plan"] == "scale" and moved["balance"] == 30 + get_catalog().plans["scale"].included_credits

    ledger = json.loads(_cli(pg_url, "ledger", free["account_id"])[1])
    assert [e["kind"] for e in ledger] == ["refresh", "adjust", "grant", "grant"]
    audit = json.loads(_cli(pg_url, "audit-log", "--account", free["account_id"])[1])
    assert [e["action"] for e in audit] == [
        "plan.change",
        "credits.adjust",
        "credits.grant",
        "key.revoke",
        "key.issue",
        "account.create",
    ]
    assert all(e["actor"].startswith("cli") for e in audit)
    assert _cli(pg_url, "show", "acct_nope")[0] == 1
