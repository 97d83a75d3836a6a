"""`expand=events` history with cursor pagination, `GET /api/tasks`, and `/content` redirects."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.api_helpers import QUICK
from tests.stack import Api

EXPECTED_HISTORY = ["queued", "credits_reserved", "running", "rendered", "uploaded", "succeeded"]


async def _finished_task(api: Api, **extra: Any) -> str:
    created = await api.generate({**QUICK, **extra})
    assert created.status_code == 200, created.text
    task_id = created.json()["task_id"]
    done = await api.wait(task_id)
    assert done["status"] == "succeeded", done
    return task_id


async def _events(api: Api, task_id: str, **params: Any) -> httpx.Response:
    return await api.http.get(
        "/api/status", params={"task_id": task_id, "expand": "events", **params}, headers=api.auth()
    )


async def test_events_tell_the_whole_history_and_paginate(account: Api) -> None:
    task_id = await _finished_task(account)
    whole = (await _events(account, task_id, events_limit=200)).json()["events"]
    kinds = [e["kind"] for e in whole["data"]]
    assert [k for k in kinds if k in EXPECTED_HISTORY] == EXPECTED_HISTORY, kinds
    assert "credits_captured" in kinds and kinds.index("credits_captured") < kinds.index("succeeded")
    assert whole["has_more"] is False and whole["next_cursor"] is None
    by_kind = {e["kind"]: e for e in whole["data"]}
    assert by_kind["credits_reserved"]["data"] == {"credits": 1}
    assert by_kind["rendered"]["data"]["frames"] > 0
    assert {o["format"] for o in by_kind["uploaded"]["data"]["outputs"]} >= {"mp4"}
    ids = [e["id"] for e in whole["data"]]
    assert ids == sorted(ids)

    walked, cursor, pages = [], None, 0
    while True:
        params = {"events_limit": 2, **({"events_cursor": cursor} if cursor else {})}
        page = (await _events(account, task_id, **params)).json()["events"]
        walked += page["data"]
        pages += 1
        assert len(page["data"]) <= 2
        cursor = page["next_cursor"]
        if not page["has_more"]:
            assert cursor is None
            break
    assert walked == whole["data"]
    assert pages == (len(whole["data"]) + 1) // 2


async def test_status_without_expand_has_no_events_and_bad_expand_is_422(account: Api) -> None:
    task_id = (await account.generate(QUICK)).json()["task_id"]
    plain = (await account.status(task_id)).json()
    assert plain["events"] is None
    bad = await account.http.get(
        "/api/status", params={"task_id": task_id, "expand": "events,everything"}, headers=account.auth()
    )
    assert bad.status_code == 422
    assert bad.json()["error"]["details"][0]["field"] == "expand"
    forged = await _events(account, task_id, events_cursor="not-a-cursor")
    assert forged.status_code == 422 and forged.json()["error"]["details"][0]["field"] == "events_cursor"
    huge = await _events(account, task_id, events_limit=1000)
    assert huge.status_code == 422
    await account.wait(task_id)


async def test_live_progress_while_running(account: Api) -> None:
    """An unfinished task reports its phase (and step while denoising) in `live`."""
    created = await account.generate({**QUICK, "duration": 8, "resolution": "1280x720"})
    task_id = created.json()["task_id"]
    phases = set()
    while True:
        answer = await account.status(task_id)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        if body["status"] in ("succeeded", "failed", "cancelled"):
            assert body["live"] is None
            break
        assert body["live"] is not None, body
        phases.add(body["live"]["phase"])
        if body["live"]["phase"] == "denoising":
            assert 0 <= body["live"]["step"] <= body["live"]["total_steps"] > 0
        await asyncio.sleep(0.4)  # within the status budget (60 burst, 1/s)
    assert body["status"] == "succeeded"
    assert phases & {"queued", "waiting", "loading", "denoising", "encoding", "uploading"}, phases


async def test_task_list_is_newest_first_filtered_and_paginated(account: Api, stack: Any, sessions: Any) -> None:
    from tests.stack import make_account

    before = datetime.now(UTC) - timedelta(seconds=1)
    ids = []
    for n in range(3):
        created = await account.generate({**QUICK, "prompt": f"{QUICK['prompt']} #{n}"})
        ids.append(created.json()["task_id"])
    listed = (await account.http.get("/api/tasks", headers=account.auth())).json()
    assert [t["task_id"] for t in listed["data"]] == ids[::-1]
    assert listed["data"][0]["prompt"].endswith("#2") and listed["has_more"] is False

    first = (await account.http.get("/api/tasks", params={"limit": 2}, headers=account.auth())).json()
    assert [t["task_id"] for t in first["data"]] == ids[:0:-1] and first["has_more"] is True
    rest = (
        await account.http.get(
            "/api/tasks", params={"limit": 2, "cursor": first["next_cursor"]}, headers=account.auth()
        )
    ).json()
    assert [t["task_id"] for t in rest["data"]] == ids[:1] and rest["has_more"] is False

    for task_id in ids:
        await account.wait(task_id)
    done = (await account.http.get("/api/tasks", params={"status": "succeeded"}, headers=account.auth())).json()
    assert len(done["data"]) == 3
    none_running = (
        await account.http.get("/api/tasks", params={"status": "running,queued"}, headers=account.auth())
    ).json()
    assert none_running["data"] == []
    window = {"created_after": before.isoformat(), "created_before": datetime.now(UTC).isoformat()}
    assert len((await account.http.get("/api/tasks", params=window, headers=account.auth())).json()["data"]) == 3
    future = {"created_after": (datetime.now(UTC) + timedelta(hours=1)).isoformat()}
    assert (await account.http.get("/api/tasks", params=future, headers=account.auth())).json()["data"] == []
    bad = await account.http.get("/api/tasks", params={"status": "finished"}, headers=account.auth())
    assert bad.status_code == 422 and bad.json()["error"]["details"][0]["field"] == "status"

    _, other_key = await make_account(sessions, credits=100)
    assert (await account.http.get("/api/tasks", headers=account.auth(other_key))).json()["data"] == []


async def test_content_redirects_to_a_fresh_presigned_url(account: Api) -> None:
    task_id = await _finished_task(account)
    outputs = {o["format"] for o in (await account.status(task_id)).json()["outputs"]}
    redirect = await account.http.get(f"/api/tasks/{task_id}/content", headers=account.auth())
    assert redirect.status_code == 307
    url = redirect.headers["location"]
    assert "X-Amz-Expires=300" in url  # short-lived: SORAPI_CONTENT_URL_TTL_S, not the 1 h status links
    async with httpx.AsyncClient() as plain:
        video = await plain.get(url)
    assert video.status_code == 200 and video.content[4:8] == b"ftyp"

    for variant, fmt in (("webm", "webm"), ("thumbnail", "jpg")):
        answer = await account.http.get(
            f"/api/tasks/{task_id}/content", params={"variant": variant}, headers=account.auth()
        )
        if fmt in outputs:
            assert answer.status_code == 307
        else:
            assert answer.status_code == 404 and answer.json()["error"]["code"] == "variant_not_found"
    for unknown in ("gif", "spritesheet"):  # spritesheet exists only on /v1 (and is never produced: 404 there)
        answer = await account.http.get(
            f"/api/tasks/{task_id}/content", params={"variant": unknown}, headers=account.auth()
        )
        assert answer.status_code == 422 and answer.json()["error"]["details"][0]["field"] == "variant"


async def test_content_of_an_unfinished_or_foreign_task(account: Api, sessions: Any) -> None:
    from tests.stack import make_account

    task_id = (await account.generate({**QUICK, "duration": 4})).json()["task_id"]
    early = await account.http.get(f"/api/tasks/{task_id}/content", headers=account.auth())
    assert early.status_code == 409 and early.json()["error"]["code"] == "task_not_ready"
    _, other_key = await make_account(sessions, credits=100)
    foreign = await account.http.get(f"/api/tasks/{task_id}/content", headers=account.auth(other_key))
    assert foreign.status_code == 404 and foreign.json()["error"]["code"] == "not_found"
    await account.wait(task_id)
