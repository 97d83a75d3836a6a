"""Bearer authentication and tenant isolation: another account's task is indistinguishable from none."""

from __future__ import annotations

from typing import Any

import pytest

from tests.stack import Api, make_account

PAYLOAD = {"prompt": "A paper boat drifting down a rain gutter", "duration": 1}


@pytest.mark.parametrize("headers", [
    {},
    {"Authorization": "Bearer"},
    {"Authorization": "Basic dXNlcjpwYXNz"},
    {"Authorization": "Bearer sk_sora2_not_a_real_key"},
], ids=["missing", "empty", "wrong-scheme", "unknown-key"])
async def test_generate_and_status_need_a_valid_key(account: Api, headers: dict[str, str]) -> None:
    generate = await account.http.post("/api/generate", json=PAYLOAD, headers=headers)
    status = await account.http.get("/api/status", params={"task_id": "sora2abc"}, headers=headers)
    for response in (generate, status):
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "unauthorized"
        assert response.headers["www-authenticate"] == "Bearer"


async def test_another_accounts_task_is_404(account: Api, stack: Any, sessions: Any) -> None:
    task_id = (await account.generate(PAYLOAD)).json()["task_id"]
    assert (await account.status(task_id)).status_code == 200

    _, other_key = await make_account(sessions)
    response = await account.status(task_id, key=other_key)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    unknown = await account.status("sora2" + "0" * 32, key=other_key)
    assert unknown.json() == response.json() | {"error": {**response.json()["error"],
                                                          "message": unknown.json()["error"]["message"]}}


async def test_status_accepts_id_alias_and_requires_one(account: Api) -> None:
    task_id = (await account.generate(PAYLOAD)).json()["task_id"]
    by_alias = await account.http.get("/api/status", params={"id": task_id}, headers=account.auth())
    assert by_alias.status_code == 200 and by_alias.json()["task_id"] == task_id
    missing = await account.http.get("/api/status", headers=account.auth())
    assert missing.status_code == 422
    assert missing.json()["error"]["details"][0]["field"] == "task_id"


async def test_revoked_key_is_refused(account: Api, sessions: Any) -> None:
    from sqlalchemy import update

    from sorapi.db.models import ApiKey, utcnow
    from sorapi.ids import hash_api_key

    _, key = await make_account(sessions)
    assert (await account.generate(PAYLOAD, key=key)).status_code == 200
    async with sessions.begin() as session:
        await session.execute(update(ApiKey).where(ApiKey.key_hash == hash_api_key(key)).values(revoked_at=utcnow()))
    assert (await account.generate(PAYLOAD, key=key)).status_code == 401


async def test_scopes_limit_what_a_key_may_do(account: Api, sessions: Any) -> None:
    """A read-only seat can poll but not spend credits; a generate-only key cannot read."""
    from sorapi.db.accounts import issue_api_key

    task_id = (await account.generate(PAYLOAD)).json()["task_id"]
    async with sessions.begin() as session:
        from sorapi.db.models import ApiKey
        from sorapi.ids import hash_api_key
        from sqlalchemy import select

        owner = await session.scalar(select(ApiKey.account_id).where(ApiKey.key_hash == hash_api_key(account.api_key)))
        reader = await issue_api_key(session, owner, scopes="read")
        writer = await issue_api_key(session, owner, scopes="generate")
    refused = await account.generate(PAYLOAD, key=reader)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "insufficient_scope"
    assert (await account.status(task_id, key=reader)).status_code == 200
    assert (await account.generate(PAYLOAD, key=writer)).status_code == 200
    blind = await account.status(task_id, key=writer)
    assert blind.status_code == 403 and blind.json()["error"]["code"] == "insufficient_scope"
