"""Render parameters and outputs through the real stack (shared `sorapi dev` on PostgreSQL).

Every output is downloaded from its presigned URL and decoded: MP4 (H.264, yuv420p, faststart),
WEBM (VP9), the JPEG thumbnail and the metadata JSON. Same seed and request → identical frames.
"""

from __future__ import annotations

import asyncio
import io
import json
from typing import Any

import av
import httpx
import numpy as np
from PIL import Image
from sqlalchemy import func, select

from sorapi.store.models import LedgerEntry, Task
from tests.stack import Api, Stack, make_account


async def download(url: str) -> bytes:
    async with httpx.AsyncClient(timeout=30) as plain:  # presigned: no API key
        answer = await plain.get(url)
    assert answer.status_code == 200, (url, answer.status_code)
    return answer.content


def decode(data: bytes) -> tuple[dict[str, Any], list[np.ndarray]]:
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        facts = {
            "codec": stream.codec_context.name,
            "pix_fmt": stream.codec_context.pix_fmt,
            "format": container.format.name,
        }
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
    return facts, frames


async def render(api: Api, payload: dict[str, Any]) -> dict[str, Any]:
    created = await api.generate(payload)
    assert created.status_code == 200, created.text
    done = await api.wait(created.json()["task_id"], timeout_s=180)
    assert done["status"] == "succeeded", done
    return done


async def mp4_frames(done: dict[str, Any]) -> list[np.ndarray]:
    return decode(await download(done["response"][0]))[1]


async def test_outputs_are_mp4_webm_thumbnail_and_metadata_under_one_prefix(account: Api) -> None:
    done = await render(
        account,
        {
            "prompt": "一只红狐狸在新雪中奔跑，电影感光线",  # multilingual: the UMT5/ByT5 text stack takes it
            "negative_prompt": "no watermark, no motion blur",
            "resolution": "hd",
            "aspect_ratio": "vertical",
            "duration": 2,
            "guidance": 8.5,
            "seed": 7,
        },
    )
    task_id, meta = done["task_id"], done["render"]
    assert done["request"]["resolution"] == "720x1280" and done["request"]["aspect_ratio"] == "vertical"
    assert (meta["requested_width"], meta["requested_height"]) == (720, 1280)
    assert meta["width"] < meta["height"], "vertical stays vertical on the dev model"
    # 2 s at the dev model's 8 fps, rounded to Wan's 4k+1 frames; the rounding is recorded.
    assert (meta["duration_s"], meta["fps"], meta["num_frames"]) == (2, 8, 17)
    assert (meta["seed"], meta["guidance_scale"]) == (7, 8.5)

    outputs = done["outputs"]
    assert [(o["format"], o["content_type"]) for o in outputs] == [
        ("mp4", "video/mp4"),
        ("webm", "video/webm"),
        ("jpg", "image/jpeg"),
        ("json", "application/json"),
    ]
    assert done["response"] == [o["url"] for o in outputs], "response: the URLs, MP4 first"
    assert all(f"/tasks/{task_id}/" in o["url"] for o in outputs), "one prefix per task"
    mp4, webm, jpg, metadata = [await download(o["url"]) for o in outputs]
    assert [len(b) for b in (mp4, webm, jpg, metadata)] == [o["size_bytes"] for o in outputs]

    facts, frames = decode(mp4)
    assert (facts["codec"], facts["pix_fmt"]) == ("h264", "yuv420p")
    assert mp4.index(b"moov") < mp4.index(b"mdat"), "faststart: the index comes before the media"
    assert len(frames) == 17 and frames[0].shape == (meta["height"], meta["width"], 3)
    facts, webm_frames = decode(webm)
    assert (facts["codec"], facts["pix_fmt"]) == ("vp9", "yuv420p") and len(webm_frames) == 17
    assert Image.open(io.BytesIO(jpg)).size == (meta["width"], meta["height"])
    written = json.loads(metadata)
    assert written == meta, "the metadata JSON is the render record the status shows"


async def test_same_seed_and_request_give_identical_frames(account: Api) -> None:
    request = {
        "prompt": "A paper boat drifting down a rain-soaked street",
        "resolution": "854x480",
        "duration": 1,
        "seed": 42,
        "guidance": 6.0,
    }
    runs = await asyncio.gather(
        render(account, request), render(account, request), render(account, {**request, "seed": 43})
    )
    first, again, other_seed = [await mp4_frames(done) for done in runs]
    assert len(first) == len(again) == 9
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True)), "same seed, same frames"
    assert not all(np.array_equal(a, b) for a, b in zip(first, other_seed, strict=True))
    # One worker renders them in turn, keeping the pipeline warm: only the first render may pay the load.
    # (Which task that was is not their finishing order: uploads run two at a time after the renders.)
    loads = [done["render"]["load_s"] for done in runs]
    assert sum(load > 0.01 for load in loads) <= 1, loads


async def test_model_limits_are_checked_before_anything_is_reserved(stack: Stack, sessions: Any) -> None:
    account_id, key = await make_account(sessions, credits=10_000)
    api = Api(stack.base_url, key)
    try:
        cases = [
            (
                {"model_version": "wan2.1-t2v-1.3b", "resolution": "1920x1080"},
                "resolution",
                "wan2.1-t2v-1.3b does not render 1920x1080; it renders 854x480, 480x854, 480x480",
            ),
            (
                {"model_version": "ltx-video-0.9", "duration": 12},
                "duration",
                "ltx-video-0.9 renders at most 257 frames; 12 s at 24 fps needs 289 (the longest clip is 10 s)",
            ),
            ({"model_version": "sora-3"}, "model_version", "model_version must be one of sora-2-latest"),
        ]
        for fields, field, message in cases:
            answer = await api.generate({"prompt": "a quiet harbour at dawn", **fields})
            assert answer.status_code == 422, answer.text
            error = answer.json()["error"]
            assert error["code"] == "validation_error"
            assert any(d["field"] == field and d["message"].startswith(message) for d in error["details"]), error
    finally:
        await api.close()
    async with sessions() as session:
        tasks = await session.scalar(select(func.count()).select_from(Task).where(Task.account_id == account_id))
        holds = await session.scalar(
            select(func.count())
            .select_from(LedgerEntry)
            .where(LedgerEntry.account_id == account_id, LedgerEntry.kind == "reserve")
        )
    assert (tasks, holds) == (0, 0)


async def test_ltx_model_renders_and_a_finished_task_cannot_be_cancelled(account: Api, api: Api) -> None:
    done = await render(
        account,
        {
            "prompt": "Timelapse of clouds over a mountain ridge",
            "model_version": "ltx-video-0.9",
            "resolution": "854x480",
            "duration": 1,
        },
    )
    assert done["render"]["family"] == "ltx"
    assert done["render"]["num_frames"] == 9, "1 s at 8 fps rounded to LTX's 8k+1 frames"
    assert len(await mp4_frames(done)) == 9

    cancel = await account.http.post(f"/api/tasks/{done['task_id']}/cancel", headers=account.auth())
    assert cancel.status_code == 409, cancel.text
    assert cancel.json()["error"]["code"] == "task_not_cancellable"
    assert "already succeeded" in cancel.json()["error"]["message"]
    other = await api.http.post(f"/api/tasks/{done['task_id']}/cancel", headers=api.auth())
    assert other.status_code == 404, "another account's task does not exist for this key"
    assert (await account.status(done["task_id"])).json()["status"] == "succeeded"
