"""The real `openai` SDK against the live stack: `/v1/videos` behaves like OpenAI's hosted video API."""

from __future__ import annotations

import asyncio
import warnings

import openai
import pytest

from tests.stack import Api

warnings.filterwarnings("ignore", category=DeprecationWarning)  # the SDK marks the Sora endpoints deprecated

SMALL = {"seconds": "1", "size": "480x480"}


@pytest.fixture
def sdk(account: Api) -> openai.OpenAI:
    return openai.OpenAI(base_url=account.base_url + "/v1", api_key=account.api_key, max_retries=0)


async def test_create_poll_download_like_openai(sdk: openai.OpenAI, account: Api) -> None:
    queued = sdk.videos.create(prompt="A calico cat playing a piano on stage", **SMALL)  # multipart, as the SDK sends
    assert queued.object == "video" and queued.status == "queued" and queued.progress == 0
    assert (queued.seconds, queued.size, queued.model) == ("1", "480x480", "sora-2-latest")

    same = (await account.status(queued.id)).json()  # the same task through the native API
    assert same["request"]["prompt"] == "A calico cat playing a piano on stage" and same["request"]["duration"] == 1

    raw = sdk.videos.with_raw_response.retrieve(queued.id)
    assert raw.headers["openai-poll-after-ms"] == "1000"
    done = await asyncio.to_thread(sdk.videos.poll, queued.id)
    assert done.status == "completed" and done.progress == 100 and done.error is None
    assert done.completed_at is not None and done.completed_at >= done.created_at

    video = sdk.videos.download_content(done.id)
    assert video.content[4:8] == b"ftyp"
    formats = {o["format"] for o in (await account.status(done.id)).json()["outputs"]}
    if "jpg" in formats:
        assert sdk.videos.download_content(done.id, variant="thumbnail").content[:3] == b"\xff\xd8\xff"
    with pytest.raises(openai.NotFoundError) as missing:
        sdk.videos.download_content(done.id, variant="spritesheet")
    assert missing.value.body["code"] == "variant_not_found"  # type: ignore[index]


async def test_create_and_poll_then_remix_keeps_the_seed(sdk: openai.OpenAI, account: Api) -> None:
    done = await asyncio.to_thread(sdk.videos.create_and_poll, prompt="Waves on a pebble beach", **SMALL)
    assert done.status == "completed"
    remix = sdk.videos.remix(done.id, prompt="Waves on a pebble beach at night")
    assert remix.remixed_from_video_id == done.id and remix.id != done.id
    assert remix.prompt == "Waves on a pebble beach at night" and (remix.seconds, remix.size) == ("1", "480x480")
    source = (await account.status(done.id)).json()["request"]
    remixed = await account.wait(remix.id)
    assert remixed["status"] == "succeeded"
    assert remixed["request"]["seed"] == source["seed"]
    assert sdk.videos.retrieve(remix.id).remixed_from_video_id == done.id


async def test_list_paginates_with_after_limit_and_order(sdk: openai.OpenAI, account: Api) -> None:
    made = [sdk.videos.create(prompt=f"A lantern festival, take {n}", **SMALL).id for n in range(3)]
    first = sdk.videos.list(limit=2)
    assert [v.id for v in first.data] == made[:0:-1] and first.has_more
    assert first.last_id == made[1] and first.first_id == made[2]
    assert [v.id for v in sdk.videos.list(limit=2)] == made[::-1]  # the SDK follows `after` by itself
    assert [v.id for v in sdk.videos.list(order="asc", limit=10).data] == made
    assert [v.id for v in sdk.videos.list(after=made[2], limit=10).data] == made[1::-1]
    for video_id in made:
        await account.wait(video_id)


async def test_errors_and_status_mapping(sdk: openai.OpenAI, account: Api) -> None:
    with pytest.raises(openai.UnprocessableEntityError) as refused:
        sdk.videos.create(prompt="A cat", input_reference=("cat.png", b"\x89PNG\r\n\x1a\n", "image/png"))
    assert refused.value.body["details"][0]["field"] == "input_reference"  # type: ignore[index]  # sora-2 takes no image
    with pytest.raises(openai.UnprocessableEntityError) as bad_size:
        sdk.videos.create(prompt="A cat", size="1024x1792")  # type: ignore[arg-type]
    assert bad_size.value.body["details"][0]["field"] == "size"  # type: ignore[index]
    with pytest.raises(openai.NotFoundError):
        sdk.videos.retrieve("sora2doesnotexist")
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=account.base_url + "/v1", api_key="sk_wrong", max_retries=0).videos.list()

    as_json = await account.http.post(
        "/v1/videos", json={"prompt": "A red kite", "seconds": 4, "size": "480x480"}, headers=account.auth()
    )
    assert as_json.status_code == 200 and as_json.json()["seconds"] == "4"
    bad_seconds = await account.http.post(
        "/v1/videos", json={"prompt": "A red kite", "seconds": "soon"}, headers=account.auth()
    )
    assert bad_seconds.status_code == 422 and bad_seconds.json()["error"]["details"][0]["field"] == "seconds"

    task_id = as_json.json()["id"]
    cancelled = await account.http.post(f"/api/tasks/{task_id}/cancel", headers=account.auth())
    assert cancelled.status_code in (200, 202), cancelled.text
    await account.wait(task_id)
    failed = sdk.videos.retrieve(task_id)
    assert failed.status == "failed" and failed.error is not None and failed.error.code == "cancelled"


async def test_delete_removes_the_assets(sdk: openai.OpenAI, account: Api) -> None:
    done = await asyncio.to_thread(sdk.videos.create_and_poll, prompt="A snow globe being shaken", **SMALL)
    deleted = sdk.videos.delete(done.id)
    assert (deleted.id, deleted.object, deleted.deleted) == (done.id, "video.deleted", True)
    after = sdk.videos.retrieve(done.id)
    assert after.expires_at is not None
    with pytest.raises(openai.APIStatusError) as gone:
        sdk.videos.download_content(done.id)
    assert gone.value.status_code == 410 and gone.value.body["code"] == "task_expired"  # type: ignore[index]
    assert (await account.status(done.id)).json()["status"] == "expired"
