"""`eta_seconds`: estimated from the place in line, the plan's slots and recent render times.

It falls as a task moves up the line, and is null when nothing is known or the task has ended.
"""

from __future__ import annotations

import asyncio
from typing import Any

from sorapi.domain.eta import estimate_seconds
from tests.stack import Api

TASK = {"prompt": "a paper boat on a rain puddle", "duration": 1, "resolution": "480x480"}


def test_eta_falls_with_the_place_in_line_and_with_progress() -> None:
    queued = [estimate_seconds("queued", position=p, slots=2, progress=0, typical_s=10) for p in (7, 5, 3, 1)]
    assert queued == [50, 40, 30, 20]
    running = [estimate_seconds("running", position=None, slots=2, progress=p, typical_s=10) for p in (0, 50, 99)]
    assert running == [10, 5, 1]


def test_eta_is_unknown_without_recent_renders_or_after_the_end() -> None:
    assert estimate_seconds("queued", position=1, slots=2, progress=0, typical_s=None) is None
    assert estimate_seconds("succeeded", position=None, slots=2, progress=100, typical_s=10) is None


async def test_a_queued_tasks_eta_falls_as_it_moves_up_the_line(account: Api) -> None:
    warm = (await account.generate(TASK)).json()["task_id"]
    assert (await account.wait(warm))["status"] == "succeeded"
    await asyncio.sleep(5.5)  # the API looks a model's render time up again within 5 s
    created = [(await account.generate({**TASK, "seed": n})).json()["task_id"] for n in range(10)]
    last = created[-1]
    seen: dict[int, int] = {}
    listed: list[Any] = []
    while True:
        answer = await account.status(last)
        if answer.status_code == 429:  # a slow box keeps the line long: poll as the limiter says
            await asyncio.sleep(float(answer.headers.get("retry-after", "1")))
            continue
        body = answer.json()
        if body["status"] != "queued":
            break
        assert body["eta_seconds"] is not None, body
        seen.setdefault(body["queue_position"], body["eta_seconds"])
        if not listed:
            page = (await account.http.get("/api/tasks", headers=account.auth())).json()["data"]
            listed = [row for row in page if row["task_id"] == last]
        await asyncio.sleep(0.15)
    assert len(seen) >= 2, f"the task moved up the line: {seen}"
    assert seen[min(seen)] < seen[max(seen)], f"its ETA fell as it did: {seen}"
    assert listed and listed[0]["eta_seconds"] is not None, "the task list shows the ETA too"
    done = await account.wait(last)
    assert done["status"] == "succeeded" and done.get("eta_seconds") is None
