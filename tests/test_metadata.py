"""`metadata`: a client's labels on a task, returned wherever the task is and used to find it again."""

from __future__ import annotations

import uuid

import pytest

from tests.stack import Api

PAYLOAD = {"prompt": "a lantern drifting down a river", "duration": 1, "resolution": "480x480"}


async def test_labels_come_back_everywhere_and_find_the_task(account: Api) -> None:
    order = f"ord_{uuid.uuid4().hex[:8]}"
    labelled = (await account.generate({**PAYLOAD, "metadata": {"order_id": order, "customer": "acme"}})).json()
    other = (await account.generate({**PAYLOAD, "metadata": {"order_id": order, "customer": "globex"}})).json()
    await account.generate({**PAYLOAD, "metadata": {"order_id": "something-else"}})

    status = (await account.status(labelled["task_id"])).json()
    assert status["metadata"] == {"order_id": order, "customer": "acme", "idempotency_key": None}

    async def find(params: dict[str, str]) -> list[dict[str, object]]:
        answer = await account.http.get("/api/tasks", params=params, headers=account.auth())
        assert answer.status_code == 200, answer.text
        return answer.json()["data"]

    both = await find({"metadata[order_id]": order})
    assert {t["task_id"] for t in both} == {labelled["task_id"], other["task_id"]}
    assert all(t["metadata"]["order_id"] == order for t in both)
    (acme,) = await find({"metadata[order_id]": order, "metadata[customer]": "acme"})
    assert acme["task_id"] == labelled["task_id"], "several labels must all match"
    assert await find({"metadata[order_id]": order.upper()}) == [], "exact match"
    assert await find({"metadata[nothing]": "x"}) == []

    video = await account.http.get(f"/v1/videos/{labelled['task_id']}", headers=account.auth())
    assert video.json()["metadata"] == {"order_id": order, "customer": "acme"}


async def test_the_openai_surface_takes_labels_as_json_and_as_form_fields(account: Api) -> None:
    as_json = await account.http.post(
        "/v1/videos",
        json={"prompt": "a paper crane", "seconds": "1", "metadata": {"ref": "j1"}},
        headers=account.auth(),
    )
    assert as_json.status_code == 200, as_json.text
    assert as_json.json()["metadata"] == {"ref": "j1"}
    as_form = await account.http.post(
        "/v1/videos",
        files={"prompt": (None, "a paper crane"), "seconds": (None, "1"), "metadata[ref]": (None, "f1")},
        headers=account.auth(),
    )
    assert as_form.status_code == 200, as_form.text
    assert as_form.json()["metadata"] == {"ref": "f1"}


@pytest.mark.parametrize(
    ("metadata", "field"),
    [
        ({f"k{n}": "v" for n in range(17)}, "metadata"),
        ({"k" * 41: "v"}, "metadata"),
        ({"order_id": "v" * 501}, "metadata"),
        ({"order_id": 42}, "metadata"),
        ({"idempotency_key": "mine"}, "metadata"),
        (["not", "an", "object"], "metadata"),
    ],
    ids=["17-keys", "long-key", "long-value", "not-a-string", "reserved-key", "not-an-object"],
)
async def test_oversized_or_non_string_labels_are_a_422_naming_the_field(
    account: Api, metadata: object, field: str
) -> None:
    refused = await account.generate({**PAYLOAD, "metadata": metadata})
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["details"][0]["field"].startswith(field), refused.json()


async def test_a_bad_filter_is_a_422_naming_it(account: Api) -> None:
    refused = await account.http.get("/api/tasks", params={f"metadata[{'k' * 41}]": "v"}, headers=account.auth())
    assert refused.status_code == 422 and refused.json()["error"]["details"][0]["field"].startswith("metadata[")
    too_many = {f"metadata[k{n}]": "v" for n in range(17)}
    refused = await account.http.get("/api/tasks", params=too_many, headers=account.auth())
    assert refused.status_code == 422 and refused.json()["error"]["details"][0]["field"] == "metadata"
