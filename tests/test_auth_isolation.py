"""Bearer authentication and tenant isolation: another account's task is indistinguishable from none."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.stack import Api, make_account

PAYLOAD = {"prompt": "A paper boat drifting down a rain gutter", "duration": 1}


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer sk_sora2_not_a_real_key"},
    ],
    ids=["missing", "empty", "wrong-scheme", "unknown-key"],
)
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
    assert unknown.json() == response.json() | {
        "error": {**response.json()["error"], "message": unknown.json()["error"]["message"]}
    }


async def test_status_accepts_id_alias_and_requires_one(account: Api) -> None:
    task_id = (await account.generate(PAYLOAD)).json()["task_id"]
    by_alias = await account.http.get("/api/status", params={"id": task_id}, headers=account.auth())
    assert by_alias.status_code == 200 and by_alias.json()["task_id"] == task_id
    missing = await account.http.get("/api/status", headers=account.auth())
    assert missing.status_code == 422
    assert missing.json()["error"]["details"][0]["field"] == "task_id"


async def test_revoked_key_is_refused(account: Api, sessions: Any) -> None:
    from sqlalchemy import update

    from sorapi.domain.ids import hash_api_key
    from sorapi.store.models import ApiKey, utcnow

    _, key = await make_account(sessions)
    assert (await account.generate(PAYLOAD, key=key)).status_code == 200
    async with sessions.begin() as session:
        await session.execute(update(ApiKey).where(ApiKey.key_hash == hash_api_key(key)).values(revoked_at=utcnow()))
    assert (await account.generate(PAYLOAD, key=key)).status_code == 401


async def test_scopes_limit_what_a_key_may_do(account: Api, sessions: Any) -> None:
    """A read-only seat can poll but not spend credits; a generate-only key cannot read."""
    from sorapi.store.accounts import issue_api_key

    task_id = (await account.generate(PAYLOAD)).json()["task_id"]
    async with sessions.begin() as session:
        from sqlalchemy import select

        from sorapi.domain.ids import hash_api_key
        from sorapi.store.models import ApiKey

        owner = await session.scalar(select(ApiKey.account_id).where(ApiKey.key_hash == hash_api_key(account.api_key)))
        reader = await issue_api_key(session, owner, scopes="read")
        writer = await issue_api_key(session, owner, scopes="generate")
    refused = await account.generate(PAYLOAD, key=reader)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "insufficient_scope"
    assert (await account.status(task_id, key=reader)).status_code == 200
    assert (await account.generate(PAYLOAD, key=writer)).status_code == 200
    blind = await account.status(task_id, key=writer)
    assert blind.status_code == 403 and blind.json()["error"]["code"] == "insufficient_scope"


PUBLIC_PREFIXES = ("/healthz", "/readyz", "/openapi.json", "/docs", "/console")
"""Routes anyone may call: health checks, the API reference and the web console's pages (at `/` too), whose
script calls the API with the key the user pastes. Every other route needs a credential."""
CUSTOMER_SCOPES = frozenset({"generate", "read", "audit"})
"""Every scope but `admin`, which implies them all."""
SOME_TASK = "sora2" + "0" * 32


def _routes() -> list[tuple[str, str, frozenset[str] | None]]:
    """(method, concrete path, declared scopes) of every route of the app, as built for production."""
    from litestar.routes import HTTPRoute

    from sorapi.adapters.settings import Settings
    from sorapi.api.app import create_app

    found = []
    for route in create_app(Settings()).routes:
        if not isinstance(route, HTTPRoute) or route.path == "/" or route.path.startswith(PUBLIC_PREFIXES):
            continue
        path = re.sub(r"\{\w+:\w+\}", SOME_TASK, route.path)
        for handler in route.route_handlers:
            methods = handler.http_methods - {"OPTIONS", "HEAD"}
            found += [(method, path, handler.opt.get("scopes")) for method in methods]
    return found


async def _call(account: Api, method: str, path: str, key: str | None) -> Any:
    headers = account.auth(key) if key else {}
    body = {"prompt": "a scope walk", "duration": 1} if method in ("POST", "PUT") else None
    return await account.http.request(method, path, params={"task_id": SOME_TASK}, json=body, headers=headers)


async def test_every_route_needs_a_key_and_the_scope_it_declares(account: Api, sessions: Any) -> None:
    """Walks every route: without a key 401; with every scope but the route's, 403 `insufficient_scope`.

    A new route that forgets either (or declares no scopes) fails here.
    """
    from sorapi.store.accounts import issue_api_key

    keys: dict[frozenset[str], str] = {}
    routes = _routes()
    assert len(routes) > 20
    for method, path, declared in routes:
        missing = await _call(account, method, path, None)
        assert missing.status_code == 401, (method, path, missing.status_code, missing.text)
        if path.startswith(("/admin", "/metrics")):  # operator routes take operator tokens, never a customer key
            assert (await _call(account, method, path, account.api_key)).status_code == 401, (method, path)
            continue
        assert declared, f"{method} {path} takes an API key but declares no scopes (opt=NEEDS_...)"
        lacking = CUSTOMER_SCOPES - declared
        if lacking not in keys:
            async with sessions.begin() as session:
                keys[lacking] = await issue_api_key(session, account.account_id, scopes=",".join(sorted(lacking)))
        refused = await _call(account, method, path, keys[lacking])
        assert refused.status_code == 403, (method, path, sorted(lacking), refused.status_code, refused.text)
        assert refused.json()["error"]["code"] == "insufficient_scope"


async def test_changing_a_task_needs_generate_and_reading_one_needs_read(account: Api, sessions: Any) -> None:
    """Cancel, delete and webhook redelivery change a task (and what it spends): a read-only seat may not.

    A generate-only key may, though it cannot list or read tasks.
    """
    from sorapi.store.accounts import issue_api_key

    task_id = (await account.generate(PAYLOAD)).json()["task_id"]
    async with sessions.begin() as session:
        reader = await issue_api_key(session, account.account_id, scopes="read")
        writer = await issue_api_key(session, account.account_id, scopes="generate")
    for method, path in [
        ("POST", f"/api/tasks/{task_id}/cancel"),
        ("DELETE", f"/api/tasks/{task_id}"),
        ("DELETE", f"/v1/videos/{task_id}"),
        ("POST", f"/api/tasks/{task_id}/webhooks/redeliver"),
    ]:
        refused = await account.http.request(method, path, headers=account.auth(reader))
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "insufficient_scope", (method, path)
    cancelled = await account.http.post(f"/api/tasks/{task_id}/cancel", headers=account.auth(writer))
    assert cancelled.status_code in (202, 409), cancelled.text  # 409: it already finished
    for path in ("/api/tasks", "/v1/videos"):
        blind = await account.http.get(path, headers=account.auth(writer))
        assert blind.status_code == 403 and blind.json()["error"]["code"] == "insufficient_scope", path
