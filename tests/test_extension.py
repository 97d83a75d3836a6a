"""Extending a clip: `extend_from` on /api/generate and the `openai` SDK's `videos.extend`.

Rendered by the real LTXConditionPipeline (video conditioning on the source's last frames) at toy size, delivered as one
clip.
"""

from __future__ import annotations

import asyncio
import warnings
from pathlib import Path
from typing import Any

import av
import httpx
import numpy as np
import openai
import pytest
from openai.types import Video
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from sorapi.activities import stitching
from sorapi.contracts.schemas import GenerateRequest, TaskRequest
from sorapi.domain import extension
from sorapi.domain.catalog import get_catalog
from tests.stack import Api, Stack, make_account, object_exists, s3_of, until_object_gone

warnings.filterwarnings("ignore", category=DeprecationWarning)  # the SDK marks the Sora endpoints deprecated

MODEL = "ltx-video-0.9.5"  # max_extended_duration_s = 20
SOURCE = {"prompt": "A lighthouse at dusk", "model_version": MODEL, "duration": 2, "resolution": "1280x720"}
DEV_FRAMES = {1: 9, 2: 17}
"""Frames of an LTX render at the dev model's 8 fps, by seconds (k×8+1)."""


async def _succeeded(account: Api, body: dict[str, Any]) -> dict[str, Any]:
    created = await account.generate(body)
    assert created.status_code == 200, created.text
    done = await account.wait(created.json()["task_id"])
    assert done["status"] == "succeeded", done
    return done


async def _frames(done: dict[str, Any], tmp: Path) -> np.ndarray:
    video = tmp / f"{done['task_id']}.mp4"
    async with httpx.AsyncClient() as plain:
        video.write_bytes((await plain.get(done["response"][0])).content)
    with av.open(str(video)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)]).astype(np.float64)


def _refused(answer: httpx.Response, status: int = 422) -> tuple[str, str]:
    """(error code, first detail's field) of a refused create."""
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    return error["code"], (error["details"][0]["field"] if error["details"] else "")


# --- rules, without the stack ----------------------------------------------------------------------------


def _recorded(**fields: Any) -> TaskRequest:
    base = {
        "prompt": "p",
        "model_version": MODEL,
        "duration": 2,
        "resolution": "1280x720",
        "aspect_ratio": "landscape",
        "guidance": 7.5,
        "seed": 11,
    }
    return TaskRequest(**{**base, **fields})


def test_an_extension_takes_its_sources_model_size_and_seed_and_refuses_to_differ() -> None:
    catalog = get_catalog()
    continued = extension.continuation(GenerateRequest(prompt="on", duration=3), _recorded(), catalog)
    assert isinstance(continued, GenerateRequest)
    assert (continued.model_version, continued.resolution, continued.seed) == (MODEL, "1280x720", 11)
    assert isinstance(
        extension.continuation(GenerateRequest(prompt="on", seed=5), _recorded(), catalog), GenerateRequest
    )
    same = GenerateRequest(prompt="on", model_version=MODEL, resolution="720p", aspect_ratio="16:9")
    assert isinstance(extension.continuation(same, _recorded(), catalog), GenerateRequest), "the same size, named"

    def fields(req: GenerateRequest, source: TaskRequest | None = None, images: tuple[str, ...] = ()) -> list[str]:
        found = extension.continuation(req, source or _recorded(), catalog, images)
        assert isinstance(found, list)
        return [d.field for d in found]

    assert fields(GenerateRequest(prompt="on", model_version="ltx-video-0.9")) == ["model_version"]
    assert fields(GenerateRequest(prompt="on", resolution="480x480")) == ["resolution"]
    assert fields(GenerateRequest(prompt="on", aspect_ratio="vertical")) == ["aspect_ratio"]
    assert fields(GenerateRequest(prompt="on", duration=19)) == ["duration"], "2 s + 19 s > 20 s"
    assert fields(GenerateRequest(prompt="on", duration=3), _recorded(duration=3, total_duration=18)) == ["duration"]
    assert fields(GenerateRequest(prompt="on"), images=("image",)) == ["image"]
    assert fields(GenerateRequest(prompt="on"), _recorded(model_version="sora-2-latest")) == ["extend_from"]


def test_the_render_continues_from_the_overlap_and_the_clip_is_source_then_new_frames() -> None:
    assert stitching.overlap("ltx") == 9
    for added in (9, 17, 41):  # valid LTX counts (k×8+1) stay valid with the overlap
        assert (stitching.frames_to_render(added, "ltx") - 1) % 8 == 0
    source = np.zeros((17, 4, 6, 3), dtype=np.uint8)
    rendered = np.full((17, 4, 6, 3), 200, dtype=np.uint8)
    clip = stitching.stitch(source, rendered, "ltx")
    assert clip.shape == (25, 4, 6, 3) and clip[:17].max() == 0 and clip[17:].min() == 200
    with pytest.raises(ValueError, match="source"):
        stitching.stitch(source, np.zeros((17, 4, 4, 3), dtype=np.uint8), "ltx")


# --- the whole path --------------------------------------------------------------------------------------


async def test_an_extension_is_the_source_then_its_continuation_encoded_once(account: Api, tmp: Path) -> None:
    """Priced as the added seconds; the MP4 starts with the source's frames; the new frames depend on the source.

    The same request continuing two sources renders two continuations.
    """
    sources = [
        await _succeeded(account, {**SOURCE, "seed": seed, "prompt": prompt})
        for seed, prompt in ((7, "A lighthouse at dusk"), (8, "A red kite over a beach"))
    ]
    quote = await account.http.post(
        "/api/credits/estimate",
        json={"prompt": "on", "duration": 1, "extend_from": sources[0]["task_id"]},
        headers=account.auth(),
    )
    assert quote.status_code == 200, quote.text
    single = await account.http.post(
        "/api/credits/estimate",
        json={"prompt": "on", "duration": 1, "model_version": MODEL, "resolution": "1280x720"},
        headers=account.auth(),
    )
    assert quote.json()["credits"] == single.json()["credits"], "an extension is priced as its added seconds"

    extensions = []
    for source in sources:
        created = await account.generate(
            {"prompt": "The camera rises", "duration": 1, "seed": 5, "extend_from": source["task_id"]}
        )
        assert created.status_code == 200, created.text
        assert created.json()["credits_reserved"] == quote.json()["credits"]
        extensions.append(await account.wait(created.json()["task_id"]))
    for source, done in zip(sources, extensions, strict=True):
        assert done["status"] == "succeeded", done
        request = done["request"]
        assert request["extended_from"] == source["task_id"] and request["total_duration"] == 3
        assert (request["model_version"], request["resolution"], request["duration"]) == (MODEL, "1280x720", 1)
        render = done["render"]
        assert render["conditioning"] == ["source_video"]
        assert render["source_frames"] == source["render"]["num_frames"] == DEV_FRAMES[2]
        assert render["num_frames"] == DEV_FRAMES[2] + DEV_FRAMES[1] - 1

    clips = [await _frames(done, tmp) for done in extensions]
    originals = [await _frames(source, tmp) for source in sources]
    for clip, original, done in zip(clips, originals, extensions, strict=True):
        assert len(clip) == done["render"]["num_frames"], "one clip: source and extension, encoded once"
        assert np.abs(clip[: len(original)] - original).mean() < 4, "it starts with the source's frames"
    new = [clip[DEV_FRAMES[2] :] for clip in clips]
    assert np.abs(new[0] - new[1]).mean() > 2, "the continuation depends on the source it continues"

    listed = await account.http.get("/api/tasks", params={"limit": 10}, headers=account.auth())
    lineage = {t["task_id"]: t["extended_from"] for t in listed.json()["data"]}
    assert lineage[extensions[0]["task_id"]] == sources[0]["task_id"]


async def test_the_openai_sdk_extends_a_completed_video(account: Api) -> None:
    sdk = openai.OpenAI(base_url=account.base_url + "/v1", api_key=account.api_key, max_retries=0)
    source = await asyncio.to_thread(
        sdk.videos.create_and_poll,
        prompt="A lighthouse at dusk",
        model=MODEL,  # type: ignore[arg-type]
        seconds="2",  # type: ignore[arg-type]
        size="1280x720",
    )
    assert source.status == "completed", source
    # `videos.extend` of the SDK (3.57) takes `video` through its file extraction, which refuses the
    # `{"id": ...}` reference client-side; the SDK's own client posts the same body as JSON.
    with pytest.raises(RuntimeError, match="Expected entry at `video`"):
        sdk.videos.extend(video={"id": source.id}, prompt="The beam sweeps the sea", seconds="4")
    extended = await asyncio.to_thread(
        sdk.post,
        "/videos/extensions",
        body={"video": {"id": source.id}, "prompt": "The beam sweeps the sea", "seconds": "4"},
        cast_to=Video,
    )
    assert extended.extended_from_video_id == source.id  # type: ignore[attr-defined]
    assert extended.seconds == "6", "an extension's seconds are the whole clip's"
    done = await asyncio.to_thread(sdk.videos.poll, extended.id)
    assert done.status == "completed", done
    content = await asyncio.to_thread(sdk.videos.download_content, done.id)
    assert content.read()[4:8] == b"ftyp"
    listed = await asyncio.to_thread(sdk.videos.list)
    assert {v.id: getattr(v, "extended_from_video_id", None) for v in listed.data}[done.id] == source.id

    too_long = await account.http.post(
        "/v1/videos/extensions",
        data={"prompt": "on", "seconds": "19", "video[id]": source.id},
        headers=account.auth(),
    )
    assert _refused(too_long) == ("validation_error", "seconds")
    upload = await account.http.post(
        "/v1/videos/extensions",
        data={"prompt": "on", "seconds": "4"},
        files={"video": ("clip.mp4", b"\x00\x00\x00\x18ftypmp42", "video/mp4")},
        headers=account.auth(),
    )
    assert _refused(upload) == ("unsupported_parameter", "video")
    as_json = await account.http.post(
        "/v1/videos/extensions",
        json={"prompt": "on", "seconds": 1, "video": {"id": "sora2" + "0" * 32}},
        headers=account.auth(),
    )
    assert as_json.status_code == 404, as_json.text


async def test_each_refused_extension_answers_its_status_and_code(
    account: Api, stack: Stack, sessions: async_sessionmaker[AsyncSession]
) -> None:
    text_only = await _succeeded(account, {"prompt": "Rain", "duration": 1, "resolution": "480x480"})
    assert _refused(await account.generate({"prompt": "on", "extend_from": text_only["task_id"]})) == (
        "validation_error",
        "extend_from",
    )
    source = await _succeeded(account, SOURCE)
    source_id = source["task_id"]
    for body, field in (
        ({"duration": 19}, "duration"),
        ({"model_version": "ltx-video-0.9"}, "model_version"),
        ({"image_url": "https://example.com/a.png"}, "image_url"),
    ):
        assert _refused(await account.generate({"prompt": "on", "extend_from": source_id, **body})) == (
            "validation_error",
            field,
        )
    batch = await account.http.post(
        "/api/batches", json={"items": [{"prompt": "on", "extend_from": source_id}]}, headers=account.auth()
    )
    assert _refused(batch) == ("validation_error", "items[0].extend_from")

    _, other_key = await make_account(sessions, credits=1000)
    other = Api(stack.base_url, other_key)
    try:
        answer = await other.generate({"prompt": "on", "extend_from": source_id})
        assert answer.status_code == 404 and answer.json()["error"]["code"] == "not_found", answer.text
    finally:
        await other.close()

    keyed = {"prompt": "on", "duration": 1, "extend_from": source_id, "idempotency_key": "extend-1"}
    first = await account.generate(keyed)
    assert first.status_code == 200, first.text
    second_source = await _succeeded(account, {**SOURCE, "seed": 3})
    reused = await account.generate({**keyed, "extend_from": second_source["task_id"]})
    assert _refused(reused) == ("idempotency_key_reused", "")

    # Its copy of the source lives under its own prefix: deleting the source does not stop it.
    client, bucket = s3_of(stack)
    copy_key = extension.source_key(first.json()["task_id"])
    assert await asyncio.to_thread(object_exists, client, bucket, copy_key)
    deleted = await account.http.delete(f"/api/tasks/{source_id}", headers=account.auth())
    assert deleted.status_code in (200, 202), deleted.text
    assert (await account.wait(first.json()["task_id"]))["status"] == "succeeded"
    await account.wait(source_id, until=frozenset({"expired"}))
    assert _refused(await account.generate({"prompt": "on", "extend_from": source_id}), 409) == (
        "source_expired",
        "",
    )

    # A source still waiting for a slot (both of the Free plan's are taken), then cancelled.
    fillers = [
        await account.generate({"prompt": f"Rain {n}", "duration": 20, "resolution": "480x480"}) for n in range(2)
    ]
    waiting = await account.generate({**SOURCE, "seed": 4})
    waiting_id = waiting.json()["task_id"]
    assert _refused(await account.generate({"prompt": "on", "extend_from": waiting_id}), 409) == (
        "source_not_ready",
        "",
    )
    cancelled = await account.http.post(f"/api/tasks/{waiting_id}/cancel", headers=account.auth())
    assert cancelled.status_code == 202, cancelled.text
    assert (await account.wait(waiting_id))["status"] == "cancelled"
    assert _refused(await account.generate({"prompt": "on", "extend_from": waiting_id}), 409) == (
        "source_failed",
        "",
    )

    # An extension cancelled before it rendered: its copy of the source goes with it.
    queued = await account.generate({"prompt": "on", "duration": 1, "extend_from": second_source["task_id"]})
    queued_id = queued.json()["task_id"]
    queued_copy = extension.source_key(queued_id)
    assert await asyncio.to_thread(object_exists, client, bucket, queued_copy)
    assert (await account.http.post(f"/api/tasks/{queued_id}/cancel", headers=account.auth())).status_code == 202
    assert (await account.wait(queued_id))["status"] == "cancelled"
    assert await until_object_gone(client, bucket, queued_copy)
    for filler in fillers:
        await account.http.post(f"/api/tasks/{filler.json()['task_id']}/cancel", headers=account.auth())
        await account.wait(filler.json()["task_id"])
