"""A task's life pushed to the client: the SSE stream, its resume, and `Prefer: wait`, over real HTTP."""

from __future__ import annotations

import httpx

from tests.api_helpers import serve_replica
from tests.stack import Api, Stack

PAYLOAD = {"prompt": "a heron lifting off a misty pond", "duration": 1, "resolution": "480x480"}


async def test_the_stream_tells_a_task_s_life_and_ends_with_it(account: Api) -> None:
    task_id = (await account.generate(PAYLOAD)).json()["task_id"]
    messages = await account.events(task_id)
    events = [m for m in messages if "event" in m]
    kinds = [m["event"] for m in events if m["event"] != "progress"]
    assert kinds == ["queued", "running", "succeeded"], kinds
    recorded = [m for m in events if m["event"] != "progress"]
    assert all(int(m["id"]) > 0 for m in recorded) and [int(m["id"]) for m in recorded] == sorted(
        int(m["id"]) for m in recorded
    ), "every recorded event has an increasing id"
    done = events[-1]["data"]
    assert done["status"] == "succeeded" and done["task_id"] == task_id
    assert [o["format"] for o in done["outputs"]] == ["mp4", "webm", "jpg", "json"]
    assert all(o["url"].startswith("http") for o in done["outputs"])
    for progress in (m["data"] for m in events if m["event"] == "progress"):
        assert {"percent", "phase", "step", "total_steps", "eta_seconds"} <= progress.keys()


async def test_last_event_id_resumes_after_it(account: Api) -> None:
    task_id = (await account.generate(PAYLOAD)).json()["task_id"]
    first = [m for m in await account.events(task_id) if m.get("event") in ("queued", "running", "succeeded")]
    running = next(m for m in first if m["event"] == "running")
    resumed = [m for m in await account.events(task_id, last_event_id=running["id"]) if "event" in m]
    assert [m["event"] for m in resumed] == ["succeeded"], "only what came after the running event"
    assert resumed[0]["id"] == first[-1]["id"]
    bad = await account.http.get(
        f"/api/tasks/{task_id}/events", headers={**account.auth(), "Last-Event-ID": "not-a-number"}
    )
    assert bad.status_code == 422 and bad.json()["error"]["details"][0]["field"] == "Last-Event-ID"


async def test_another_tenant_s_stream_is_a_404(account: Api, api: Api) -> None:
    task_id = (await account.generate(PAYLOAD)).json()["task_id"]
    other = await api.http.get(f"/api/tasks/{task_id}/events", headers=api.auth())
    assert other.status_code == 404 and other.json()["error"]["code"] == "not_found"
    assert (await api.http.get(f"/api/tasks/{task_id}/events")).status_code == 401


async def test_prefer_wait_answers_with_the_finished_task(account: Api) -> None:
    created = await account.generate(PAYLOAD, headers={"Prefer": "respond-async, wait=60"})
    assert created.status_code == 200, created.text
    body = created.json()
    assert body["status"] == "succeeded" and body["result"]["status"] == "succeeded", body
    assert created.headers["preference-applied"] == "wait=60"
    assert [o["format"] for o in body["result"]["outputs"]] == ["mp4", "webm", "jpg", "json"]

    task_id = (await account.generate(PAYLOAD)).json()["task_id"]
    at_once = await account.http.get(
        "/api/status", params={"task_id": task_id}, headers={**account.auth(), "Prefer": "wait=0"}
    )
    assert at_once.json()["status"] in ("queued", "running") and "preference-applied" not in at_once.headers
    waited = await account.http.get(
        "/api/status", params={"task_id": task_id}, headers={**account.auth(), "Prefer": "wait=90"}
    )
    assert waited.json()["status"] == "succeeded" and waited.headers["preference-applied"] == "wait=60", (
        "N is capped at 60"
    )
    plain = (await account.generate(PAYLOAD)).json()
    assert "result" not in plain and plain["status"] == "queued", "without Prefer the answer comes at once"


async def test_a_quiet_stream_gets_keep_alive_comments_and_no_empty_events(stack: Stack, account: Api) -> None:
    """A comment every `stream_keepalive_s` while nothing happens, and nothing else with it.

    The streamed task waits in line behind two others on its 2-slot account, without an event, for at least one
    whole task; a render alone no longer leaves a gap of 0.2 s on a fast box (CI, 2026-12-02). An empty `data:` line
    would reach an EventSource as an empty message.
    """
    with serve_replica(stack, stream_keepalive_s=0.05) as base_url:
        async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
            created = [await client.post("/api/generate", json=PAYLOAD, headers=account.auth()) for _ in range(3)]
            task_id = created[-1].json()["task_id"]
            headers = {**account.auth(), "Accept": "text/event-stream"}
            async with client.stream("GET", f"/api/tasks/{task_id}/events", headers=headers) as answer:
                lines = [line async for line in answer.aiter_lines()]
    blocks = "\n".join(lines).split("\n\n")
    keep_alives = [block for block in blocks if block.startswith(": keep-alive")]
    assert keep_alives, "waiting for a slot, the stream must have fallen quiet at least once"
    assert all(block == ": keep-alive" for block in keep_alives), keep_alives
    assert not any(block.strip() == "data:" for block in blocks)
