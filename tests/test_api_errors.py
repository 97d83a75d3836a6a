"""One error envelope everywhere, a request id on every response, 5xx logged with it.

Maintenance and database outages answer 503.
"""

from __future__ import annotations

from typing import Any

import structlog
from litestar import get
from sqlalchemy import exc as db_errors

from sorapi.cli import servers
from tests.api_helpers import QUICK, app_client, bearer
from tests.stack import Api, Stack


def _is_envelope(body: dict[str, Any], code: str) -> None:
    assert set(body) == {"error"}, body
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert isinstance(body["error"]["details"], list)


async def test_every_failure_uses_the_envelope(account: Api) -> None:
    http, auth = account.http, account.auth()
    cases = [
        (await http.get("/no/such/path", headers=auth), 404, "not_found"),
        (await http.delete("/api/generate", headers=auth), 405, "method_not_allowed"),
        (
            await http.post(
                "/api/generate", content=b"{not json", headers={**auth, "content-type": "application/json"}
            ),
            400,
            "invalid_json",
        ),
        (await http.post("/api/generate", json=QUICK), 401, "unauthorized"),
        (await http.post("/api/generate", json=QUICK, headers=bearer("sk_sora2_wrong")), 401, "unauthorized"),
        (await http.post("/api/generate", json={**QUICK, "prompt": "x" * 5001}, headers=auth), 422, "validation_error"),
        (
            await http.post("/api/generate", json={**QUICK, "resolution": "1000x1000"}, headers=auth),
            422,
            "validation_error",
        ),
        (await http.get("/api/status", params={"task_id": "sora2nope"}, headers=auth), 404, "not_found"),
        (await http.get("/api/tasks", params={"limit": "many"}, headers=auth), 422, "validation_error"),
    ]
    for response, status, code in cases:
        assert response.status_code == status, (response.request.url, response.text)
        assert response.headers["content-type"].startswith("application/json")
        _is_envelope(response.json(), code)
        assert response.headers["x-request-id"]
    assert [d["field"] for d in cases[5][0].json()["error"]["details"]] == ["prompt"]
    assert [d["field"] for d in cases[-1][0].json()["error"]["details"]] == ["limit"]


async def test_request_id_is_echoed_when_sane_and_fresh_otherwise(account: Api) -> None:
    mine = "trace-0123456789abcdef"
    echoed = await account.http.get("/healthz", headers={"X-Request-ID": mine})
    assert echoed.headers["x-request-id"] == mine
    for insane in ("x", "bad id with spaces", "a" * 300):
        fresh = await account.http.get("/healthz", headers={"X-Request-ID": insane})
        assert fresh.headers["x-request-id"].startswith("req_")
    ids = {(await account.http.get("/healthz")).headers["x-request-id"] for _ in range(3)}
    assert len(ids) == 3


@get("/test-only/boom", sync_to_thread=False)
def boom() -> None:
    raise RuntimeError("kaboom")


async def test_a_5xx_is_logged_with_its_request_id(stack: Stack) -> None:
    async with app_client(stack) as (client, app):
        app.register(boom)
        with structlog.testing.capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
            response = await client.get("/test-only/boom", headers={"X-Request-ID": "incident-42-abcdef"})
    assert response.status_code == 500
    _is_envelope(response.json(), "internal_error")
    assert "kaboom" not in response.text  # no internals leak to clients
    assert response.headers["x-request-id"] == "incident-42-abcdef"
    errors = [entry for entry in logs if entry["log_level"] == "error"]
    assert errors and all(entry.get("request_id") == "incident-42-abcdef" for entry in errors), logs
    assert any("kaboom" in str(entry.get("error", "")) for entry in errors)


async def test_maintenance_refuses_new_work_but_reads_keep_working(stack: Stack, account: Api) -> None:
    task_id = (await account.generate(QUICK)).json()["task_id"]
    async with app_client(stack, maintenance=True, maintenance_retry_after_s=90) as (client, _):
        auth = bearer(account.api_key)
        for path, body in (("/api/generate", QUICK), ("/v1/videos", {"prompt": "a quiet harbour"})):
            refused = await client.post(path, json=body, headers=auth)
            assert refused.status_code == 503, refused.text
            assert refused.headers["retry-after"] == "90"
            _is_envelope(refused.json(), "maintenance")
        read = await client.get("/api/status", params={"task_id": task_id}, headers=auth)
        assert read.status_code == 200 and read.json()["task_id"] == task_id
        assert (await client.get("/api/tasks", headers=auth)).status_code == 200
        assert (await client.get(f"/v1/videos/{task_id}", headers=auth)).status_code == 200
    await account.wait(task_id)


@get("/test-only/pool-exhausted", sync_to_thread=False)
def pool_exhausted() -> None:
    raise db_errors.TimeoutError("QueuePool limit of size 20 overflow 10 reached, connection timed out")


async def test_a_database_outage_answers_503_with_retry_after(stack: Stack, account: Api) -> None:
    """A database that cannot be reached tells clients to come back, not that the API broke.

    Nothing listens on the database port (or no pool connection is free).
    """
    dead = f"postgresql://sorapi:sorapi@127.0.0.1:{servers.free_port()}/sorapi"
    async with app_client(stack, database_url=dead) as (client, app):
        app.register(pool_exhausted)
        auth = bearer(account.api_key)
        for response in (
            await client.get("/api/status", params={"task_id": "sora2any"}, headers=auth),
            await client.post("/api/generate", json=QUICK, headers=auth),
            await client.get("/test-only/pool-exhausted"),
        ):
            assert response.status_code == 503, response.text
            assert int(response.headers["retry-after"]) > 0
            _is_envelope(response.json(), "service_unavailable")
            assert "127.0.0.1" not in response.text and "pool" not in response.text.lower()


async def test_a_database_outage_never_turns_valid_keys_into_429s(stack: Stack, account: Api) -> None:
    """A key the API could not check (the database is down) is not a refused key.

    The address's budget for unproven keys gets its token back, so the answers stay 503, never 429.
    """
    dead = f"postgresql://sorapi:sorapi@127.0.0.1:{servers.free_port()}/sorapi"
    limits = {"rate_unauthenticated_burst": 3, "rate_unauthenticated_per_min": 1.0}
    async with app_client(stack, database_url=dead, **limits) as (client, _):
        auth = bearer(account.api_key)
        answers = [
            (await client.get("/api/status", params={"task_id": "sora2any"}, headers=auth)).status_code
            for _ in range(10)
        ]
    assert answers == [503] * 10, answers
