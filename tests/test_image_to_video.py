"""Image-to-video: a first (and last) frame from an upload or an HTTPS URL.

Through `/api/generate` and the `openai` SDK's `input_reference`, rendered by the real LTX image-to-video classes at toy
size.
"""

from __future__ import annotations

import asyncio
import io
import threading
import warnings
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import av
import httpx
import numpy as np
import openai
import pytest
from PIL import Image

from sorapi.adapters import image_fetch, storage
from sorapi.domain import image_input
from tests.stack import (
    Api,
    Stack,
    fresh_pg_database,
    make_account,
    object_exists,
    s3_of,
    start_stack,
    until_object_gone,
)

warnings.filterwarnings("ignore", category=DeprecationWarning)  # the SDK marks the Sora endpoints deprecated

MODEL = "ltx-video-0.9"  # image_conditioning
FRAMES_MODEL = "ltx-video-0.9.5"  # image_conditioning and last_frame_conditioning
SMALL = {"model_version": MODEL, "duration": "1", "resolution": "1280x720", "seed": "7"}


def _png(pixels: np.ndarray, kind: str = "PNG") -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).save(out, format=kind)
    return out.getvalue()


def _halves(width: int, height: int, *, vertical: bool) -> np.ndarray:
    """Two flat colours split down the middle (left/right) or across it (top/bottom)."""
    pixels = np.zeros((height, width, 3), dtype=np.uint8)
    if vertical:
        pixels[:, : width // 2] = (240, 240, 240)
        pixels[:, width // 2 :] = (15, 15, 15)
    else:
        pixels[: height // 2] = (15, 15, 15)
        pixels[height // 2 :] = (240, 240, 240)
    return pixels


IMAGE_A = _png(_halves(640, 360, vertical=True))
IMAGE_B = _png(_halves(640, 360, vertical=False))


async def _generate_with(account: Api, fields: dict[str, str], **files: bytes) -> httpx.Response:
    parts = {name: (f"{name}.bin", data, "application/octet-stream") for name, data in files.items()}
    return await account.http.post(
        "/api/generate", data={"prompt": "A door opens", **fields}, files=parts, headers=account.auth()
    )


def _refused_field(answer: httpx.Response) -> str:
    assert answer.status_code == 422, answer.text
    return str(answer.json()["error"]["details"][0]["field"])


async def _first_frame(done: dict[str, Any], tmp: Path) -> np.ndarray:
    video = tmp / f"{done['task_id']}.mp4"
    async with httpx.AsyncClient() as plain:
        video.write_bytes((await plain.get(done["response"][0])).content)
    with av.open(str(video)) as container:
        first = next(container.decode(video=0))
    return np.asarray(first.to_ndarray(format="rgb24"), dtype=np.float64).mean(axis=2)


def _correlation(frame: np.ndarray, image: bytes) -> float:
    fitted = image_input.fit(image_input.open_rgb(image), frame.shape[1], frame.shape[0])
    target = np.asarray(fitted, dtype=np.float64).mean(axis=2)
    return float(np.corrcoef(frame.ravel(), target.ravel())[0, 1])


# --- accepted input, by content -------------------------------------------------------------------------


def test_png_jpeg_and_webp_are_accepted_by_their_content_and_anything_else_is_refused() -> None:
    pixels = _halves(64, 48, vertical=True)
    for kind, content_type in (("PNG", "image/png"), ("JPEG", "image/jpeg"), ("WEBP", "image/webp")):
        accepted = image_input.accept(_png(pixels, kind))
        assert (accepted.content_type, accepted.width, accepted.height) == (content_type, 64, 48)
    for kind in ("GIF", "BMP", "TIFF"):
        with pytest.raises(image_input.ImageRejected, match="not a PNG, JPEG or WEBP"):
            image_input.accept(_png(pixels, kind))
    with pytest.raises(image_input.ImageRejected, match="not a PNG"):
        image_input.accept(b"<svg xmlns='http://www.w3.org/2000/svg'/>")
    with pytest.raises(image_input.ImageRejected, match="truncated or corrupt"):
        noisy = _png(np.random.default_rng(0).integers(0, 256, (48, 64, 3)))
        image_input.accept(noisy[: len(noisy) // 2])
    with pytest.raises(image_input.ImageRejected, match="4096x4096"):
        image_input.accept(_png(np.zeros((8, 4097, 3))))
    with pytest.raises(image_input.ImageRejected, match="20 MiB"):
        image_input.accept(b"\x89PNG\r\n\x1a\n" + bytes(image_input.MAX_BYTES))


def test_a_decompression_bomb_is_refused_before_its_pixels_are_decoded() -> None:
    """A 4096x4096 PNG of zeros is a few kilobytes; one claiming 100000x100000 is refused from its header."""
    bomb = bytearray(_png(np.zeros((1, 1, 3))))
    bomb[16:24] = (100_000).to_bytes(4, "big") * 2  # IHDR width and height
    with pytest.raises(image_input.ImageRejected):
        image_input.accept(bytes(bomb))


def test_an_image_is_scaled_to_cover_the_frame_and_centre_cropped() -> None:
    """A wide image in a square frame keeps its middle; a tall one in a wide frame keeps its middle band."""
    wide = np.zeros((100, 300, 3), dtype=np.uint8)
    wide[:, 100:200] = 255  # the centre third is white
    fitted = np.asarray(image_input.fit(Image.fromarray(wide), 50, 50))
    assert fitted.shape == (50, 50, 3) and fitted.mean() > 250  # only the white centre is left
    tall = np.zeros((400, 100, 3), dtype=np.uint8)
    tall[150:250] = 255
    band = np.asarray(image_input.fit(Image.fromarray(tall), 200, 100))
    assert band.shape == (100, 200, 3) and band[10:90].mean() > 250


# --- fetching -------------------------------------------------------------------------------------------


SERVED = {"/a.png": IMAGE_A}
"""What the image server answers (a test swaps an image behind the same URL)."""


@pytest.fixture(scope="module")
def image_server() -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path in SERVED:
                body = SERVED[self.path]
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            elif self.path == "/moved.png":
                self.send_response(302)
                self.send_header("Location", "/a.png")
                self.end_headers()
            else:
                self.send_response(404)
                self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


async def test_a_fetch_gets_the_image_follows_no_redirect_and_refuses_what_netguard_refuses(image_server: str) -> None:
    assert await image_fetch.fetch_image(f"{image_server}/a.png", allow_http=True) == IMAGE_A
    with pytest.raises(image_fetch.FetchFailed, match="HTTP 302"):
        await image_fetch.fetch_image(f"{image_server}/moved.png", allow_http=True)
    with pytest.raises(image_fetch.FetchFailed, match="https://"):
        await image_fetch.fetch_image(f"{image_server}/a.png")  # http:// outside the development switch
    for private in ("https://10.0.0.8/a.png", "https://169.254.169.254/latest", "https://127.0.0.1/a.png"):
        with pytest.raises(image_fetch.FetchFailed, match="not allowed"):
            await image_fetch.fetch_image(private)


# --- the whole path -------------------------------------------------------------------------------------


async def test_two_images_give_two_first_frames_each_like_its_own_image(account: Api, tmp: Path) -> None:
    """The same request (prompt, seed, size) with two images renders different first frames.

    Each is closer to its own image than to the other (decoded from the MP4 the client downloads).
    """
    created = [await _generate_with(account, SMALL, image=image) for image in (IMAGE_A, IMAGE_B)]
    assert all(c.status_code == 200 for c in created), [c.text for c in created]
    done = [await account.wait(c.json()["task_id"]) for c in created]
    assert [d["status"] for d in done] == ["succeeded", "succeeded"], [(d["status"], d["error_code"]) for d in done]
    assert done[0]["render"]["conditioning"] == ["first_frame"]
    recorded = done[0]["request"]["image"]
    assert recorded["content_type"] == "image/png" and (recorded["width"], recorded["height"]) == (640, 360)
    assert recorded["url"] is None
    frame_a, frame_b = [await _first_frame(d, tmp) for d in done]
    assert np.abs(frame_a - frame_b).mean() > 5, "the image conditions the first frame"
    assert _correlation(frame_a, IMAGE_A) > _correlation(frame_a, IMAGE_B)
    assert _correlation(frame_b, IMAGE_B) > _correlation(frame_b, IMAGE_A)


async def test_a_first_and_a_last_frame_on_a_model_with_frame_conditioning(account: Api) -> None:
    fields = {**SMALL, "model_version": FRAMES_MODEL}
    created = await _generate_with(account, fields, image=IMAGE_A, last_frame=IMAGE_B)
    assert created.status_code == 200, created.text
    done = await account.wait(created.json()["task_id"])
    assert done["status"] == "succeeded", done
    assert done["render"]["conditioning"] == ["first_frame", "last_frame"]
    assert done["request"]["last_frame"]["sha256"] != done["request"]["image"]["sha256"]


async def test_each_refused_input_is_a_422_naming_its_field(account: Api) -> None:
    pixels = _halves(64, 48, vertical=True)
    assert _refused_field(await _generate_with(account, SMALL, image=_png(pixels, "GIF"))) == "image"
    assert _refused_field(await _generate_with(account, SMALL, image=b"not an image at all")) == "image"
    too_large = b"\x89PNG\r\n\x1a\n" + bytes(image_input.MAX_BYTES)
    answer = await _generate_with(account, SMALL, image=too_large)
    assert _refused_field(answer) == "image" and "20 MiB" in answer.json()["error"]["details"][0]["message"]
    assert _refused_field(await _generate_with(account, SMALL, image=_png(np.zeros((4, 4100, 3))))) == "image"
    text_model = {**SMALL, "model_version": "sora-2-latest", "resolution": "480x480"}
    answer = await _generate_with(account, text_model, image=IMAGE_A)
    assert _refused_field(answer) == "image" and MODEL in answer.json()["error"]["details"][0]["message"]
    assert _refused_field(await _generate_with(account, SMALL, image=IMAGE_A, last_frame=IMAGE_B)) == "last_frame"
    assert _refused_field(
        await _generate_with(account, {**SMALL, "model_version": FRAMES_MODEL}, last_frame=IMAGE_B)
    ) == ("last_frame")
    json_body = {"prompt": "A door opens", "model_version": MODEL, "duration": 1}
    for url in ("https://10.1.2.3/a.png", "https://169.254.169.254/latest/meta-data", "http://example.com/a.png"):
        answer = await account.generate({**json_body, "image_url": url})
        assert _refused_field(answer) == "image_url", url
    answer = await account.generate({**json_body, "image_url": "https://no-such-host.invalid/a.png"})
    assert _refused_field(answer) == "image_url" and "resolve" in answer.json()["error"]["details"][0]["message"]
    answer = await account.generate({**json_body, "model_version": "sora-2", "image_url": "https://example.com/a.png"})
    assert _refused_field(answer) == "image_url", "the model is checked before anything is fetched"
    batch = await account.http.post(
        "/api/batches",
        json={"items": [{**json_body, "image_url": "https://example.com/a.png"}]},
        headers=account.auth(),
    )
    assert _refused_field(batch) == "items[0].image_url"


async def test_the_same_key_with_another_image_is_idempotency_key_reused(account: Api) -> None:
    keyed = {**SMALL, "idempotency_key": "first-frame-1"}
    first = await _generate_with(account, keyed, image=IMAGE_A)
    again = await _generate_with(account, keyed, image=IMAGE_A)
    assert first.status_code == again.status_code == 200, (first.text, again.text)
    assert again.json()["task_id"] == first.json()["task_id"] and again.headers["idempotent-replayed"] == "true"
    other = await _generate_with(account, keyed, image=IMAGE_B)
    assert other.status_code == 422 and other.json()["error"]["code"] == "idempotency_key_reused"
    await account.wait(first.json()["task_id"])


async def test_the_input_image_lives_and_dies_with_its_task(account: Api, stack: Stack) -> None:
    """Stored under the task's prefix; gone after DELETE (with the outputs).

    Also gone when a task ends without succeeding (discard_outputs).
    """
    client, bucket = s3_of(stack)
    created = await _generate_with(account, SMALL, image=IMAGE_A)
    task_id = created.json()["task_id"]
    key = storage.object_key(task_id, "inputs/first_frame.png")
    assert await asyncio.to_thread(object_exists, client, bucket, key)
    assert (await account.wait(task_id))["status"] == "succeeded"
    assert await asyncio.to_thread(object_exists, client, bucket, key), "kept while the outputs are"
    deleted = await account.http.delete(f"/api/tasks/{task_id}", headers=account.auth())
    assert deleted.status_code in (200, 202), deleted.text
    await account.wait(task_id, until=frozenset({"expired"}))
    assert await until_object_gone(client, bucket, key)

    # A task cancelled while it waits for a slot (the Free plan's two are taken) never renders: its input
    # image is deleted all the same.
    fillers = [await account.generate({"prompt": "Rain on a window", "duration": 8, "resolution": "480x480"})]
    fillers.append(await account.generate({"prompt": "Rain on a roof", "duration": 8, "resolution": "480x480"}))
    waiting = await _generate_with(account, SMALL, image=IMAGE_B)
    waiting_id = waiting.json()["task_id"]
    waiting_key = storage.object_key(waiting_id, "inputs/first_frame.png")
    assert await asyncio.to_thread(object_exists, client, bucket, waiting_key)
    cancelled = await account.http.post(f"/api/tasks/{waiting_id}/cancel", headers=account.auth())
    assert cancelled.status_code == 202, cancelled.text
    assert (await account.wait(waiting_id))["status"] == "cancelled"
    assert await until_object_gone(client, bucket, waiting_key)
    for filler in fillers:
        await account.wait(filler.json()["task_id"])


async def test_models_say_which_take_images(account: Api) -> None:
    answer = await account.http.get("/api/models", headers=account.auth())
    assert answer.status_code == 200, answer.text
    models = {m["name"]: m for m in answer.json()["data"]}
    assert models[MODEL]["image_conditioning"] and not models[MODEL]["last_frame_conditioning"]
    assert models[FRAMES_MODEL]["image_conditioning"] and models[FRAMES_MODEL]["last_frame_conditioning"]
    assert not models["sora-2-latest"]["image_conditioning"]


# --- the OpenAI SDK -------------------------------------------------------------------------------------


@pytest.fixture
def sdk(account: Api) -> openai.OpenAI:
    return openai.OpenAI(base_url=account.base_url + "/v1", api_key=account.api_key, max_retries=0)


async def test_the_openai_sdk_sends_input_reference_as_a_file_or_an_image_url(sdk: openai.OpenAI, account: Api) -> None:
    video = await asyncio.to_thread(
        sdk.videos.create_and_poll,
        prompt="A door opens",
        model=MODEL,  # type: ignore[arg-type]
        seconds="1",  # type: ignore[arg-type]
        size="1280x720",
        input_reference=("door.png", IMAGE_A, "image/png"),
    )
    assert video.status == "completed", video
    recorded = (await account.status(video.id)).json()
    assert recorded["request"]["image"]["sha256"] == image_input.accept(IMAGE_A).sha256
    assert recorded["render"]["conditioning"] == ["first_frame"]

    # The SDK (3.57) sends only files for input_reference; the reference object goes as JSON or form fields.
    for body in (
        {
            "json": {
                "prompt": "A door opens",
                "model": MODEL,
                "input_reference": {"image_url": "https://10.0.0.1/d.png"},
            }
        },
        {"data": {"prompt": "A door opens", "model": MODEL, "input_reference[image_url]": "https://10.0.0.1/d.png"}},
    ):
        private = await account.http.post("/v1/videos", headers=account.auth(), **body)  # type: ignore[arg-type]
        assert _refused_field(private) == "input_reference"
        assert "not allowed" in private.json()["error"]["details"][0]["message"]
    with pytest.raises(openai.UnprocessableEntityError) as not_an_image:
        sdk.videos.create(prompt="A door opens", model=MODEL, input_reference=("door.gif", b"GIF89a", "image/gif"))  # type: ignore[arg-type]
    assert not_an_image.value.body["details"][0]["field"] == "input_reference"  # type: ignore[index]


# --- image_url on a stack with the development switch (http:// and loopback open, as for webhooks) ------


@pytest.fixture(scope="module")
def open_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with fresh_pg_database() as url:
        running = start_stack(tmp_path_factory.mktemp("stack-i2v"), url, SORAPI_WEBHOOK_ALLOW_HTTP="true")
        yield running
        running.stop()


async def test_an_image_url_is_fetched_recorded_and_its_content_is_in_the_fingerprint(
    open_stack: Stack, image_server: str
) -> None:
    from sorapi.store.engine import make_async_engine, make_sessionmaker

    engine = make_async_engine(open_stack.database_url)
    try:
        _, key = await make_account(make_sessionmaker(engine), credits=10_000)
    finally:
        await engine.dispose()
    client = Api(open_stack.base_url, key)
    url = f"{image_server}/a.png"
    body = {"prompt": "A door opens", "model_version": MODEL, "duration": 1, "image_url": url, "idempotency_key": "u1"}
    try:
        created = await client.generate(body)
        assert created.status_code == 200, created.text
        done = await client.wait(created.json()["task_id"])
        assert done["status"] == "succeeded", done
        assert done["request"]["image"]["url"] == url
        assert done["request"]["image"]["sha256"] == image_input.accept(IMAGE_A).sha256
        SERVED["/a.png"] = IMAGE_B  # the same URL, another image: the same key is now another request
        reused = await client.generate(body)
        assert reused.status_code == 422 and reused.json()["error"]["code"] == "idempotency_key_reused"
        missing = await client.generate({**body, "image_url": f"{image_server}/gone.png", "idempotency_key": "u2"})
        assert _refused_field(missing) == "image_url" and "404" in missing.json()["error"]["details"][0]["message"]
    finally:
        SERVED["/a.png"] = IMAGE_A
        await client.close()


# --- the pipelines --------------------------------------------------------------------------------------


def test_the_dev_models_image_variant_decodes_with_its_own_calibrated_vae_and_renders_deterministically() -> None:
    """Text-to-video keeps the tiny model's random VAE; the image-to-video variant gets a fitted copy.

    The copy is the same on every worker (seeded), so one request renders the same frames twice.
    """
    from sorapi.activities.conditioning import conditioned
    from sorapi.activities.pipelines import build_tiny_pipeline, render_clip

    pipe = build_tiny_pipeline("ltx")
    first = image_input.fit(image_input.open_rgb(IMAGE_A), 128, 64)
    same, no_image = conditioned(pipe, image=None, last_frame=None, frame_conditions=False, num_frames=9)
    assert same is pipe and no_image == {}
    variant, arguments = conditioned(pipe, image=first, last_frame=None, frame_conditions=False, num_frames=9)
    assert type(variant).__name__ == "LTXImageToVideoPipeline" and arguments == {"image": first}
    assert variant.vae is not pipe.vae and variant.transformer is pipe.transformer
    call = {
        "prompt": "A door opens",
        "negative_prompt": None,
        "width": 128,
        "height": 64,
        "num_frames": 9,
        "guidance_scale": 7.5,
        "num_inference_steps": 2,
        "seed": 7,
        "fps": 8,
    }
    once, twice = (render_clip(pipe, image=first, **call).frames for _ in range(2))  # type: ignore[arg-type]
    again = render_clip(build_tiny_pipeline("ltx"), image=first, **call).frames  # type: ignore[arg-type]
    assert np.array_equal(once, twice) and np.array_equal(once, again)
