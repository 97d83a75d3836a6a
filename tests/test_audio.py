"""Native audio: LTX-2 renders a soundtrack with its video; the MP4 carries it as AAC, the WebM as Opus.

The tiny LTX-2 pipeline is the real `LTX2Pipeline` (Gemma 3 encoder, connectors, joint audio-video
transformer, video VAE, audio VAE, vocoder) at toy width. Every file is decoded with PyAV and its
audio measured against the video's length; the stack tests go through `/api/generate` and the
presigned downloads.
"""

from __future__ import annotations

import asyncio
import io
import warnings
from pathlib import Path
from typing import Any

import av
import httpx
import numpy as np
import openai
import pytest

from sorapi.activities.encode import AUDIO_RATE, Soundtrack, encode_mp4, encode_webm
from sorapi.activities.pipelines import Clip, build_tiny_pipeline, render_clip
from sorapi.domain.catalog import DEFAULT_CATALOG_PATH, load_catalog
from tests.stack import Api

warnings.filterwarnings("ignore", category=DeprecationWarning)  # the SDK marks the Sora endpoints deprecated

FPS = 8
FRAMES = 17  # 2 s at 8 fps, LTX's 8k+1


@pytest.fixture(scope="module")
def pipe() -> Any:
    return build_tiny_pipeline("ltx2")


def _render(pipe: Any, **overrides: Any) -> Clip:
    request: dict[str, Any] = dict(
        prompt="rain on a tin roof, thunder far away",
        negative_prompt=None,
        width=64,
        height=64,
        num_frames=FRAMES,
        guidance_scale=4.0,
        num_inference_steps=2,
        seed=11,
        fps=FPS,
    )
    return render_clip(pipe, **(request | overrides))


@pytest.fixture(scope="module")
def clip(pipe: Any) -> Clip:
    return _render(pipe)


def probe(data: bytes | Path) -> dict[str, Any]:
    """Streams of a media file, decoded: video frame count, and the audio's codec, rate, layout and length."""

    def opened() -> Any:
        return av.open(str(data) if isinstance(data, Path) else io.BytesIO(data))

    with opened() as container:
        facts: dict[str, Any] = {"audio_streams": len(container.streams.audio)}
        facts["frames"] = sum(1 for _ in container.decode(container.streams.video[0]))
    if not facts["audio_streams"]:
        return facts
    with opened() as container:
        stream = container.streams.audio[0]
        frames = list(container.decode(stream))
        facts |= {
            "codec": stream.codec_context.name,
            "rate": stream.codec_context.sample_rate,
            "channels": stream.codec_context.channels,
            "seconds": sum(frame.samples for frame in frames) / stream.codec_context.sample_rate,
            "peak": max(float(np.abs(frame.to_ndarray()).max()) for frame in frames),
        }
    return facts


# --- the tiny LTX-2 pipeline -------------------------------------------------------------------


def test_tiny_ltx2_renders_a_video_with_a_stereo_soundtrack_as_long_as_it(clip: Clip) -> None:
    assert clip.frames.shape == (FRAMES, 64, 64, 3) and clip.frames.dtype == np.uint8
    assert clip.frames.std() > 0
    track = clip.soundtrack
    assert track is not None, "LTX2Pipeline returns its vocoder's waveform"
    assert track.channels == 2 and track.samples.dtype == np.float32
    assert abs(track.samples.shape[1] / track.sample_rate - FRAMES / FPS) <= 1 / FPS
    assert np.abs(track.samples).max() > 0, "the vocoder produced a signal, not silence"


def test_the_seed_reproduces_the_soundtrack_and_another_seed_changes_it(pipe: Any, clip: Clip) -> None:
    again, other = _render(pipe), _render(pipe, seed=12)
    assert clip.soundtrack is not None and again.soundtrack is not None and other.soundtrack is not None
    assert np.array_equal(clip.soundtrack.samples, again.soundtrack.samples)
    assert np.array_equal(clip.frames, again.frames)
    assert not np.array_equal(clip.soundtrack.samples, other.soundtrack.samples)


def test_video_only_families_render_no_soundtrack() -> None:
    for family in ("wan", "ltx"):
        made = render_clip(
            build_tiny_pipeline(family),
            prompt="a quiet lake",
            negative_prompt=None,
            width=64,
            height=64,
            num_frames=9,
            guidance_scale=1.0,
            num_inference_steps=1,
            seed=1,
        )
        assert made.soundtrack is None


# --- encoding ----------------------------------------------------------------------------------


def test_mp4_carries_aac_and_webm_opus_for_the_videos_duration(clip: Clip, tmp_path: Path) -> None:
    mp4 = encode_mp4(clip.frames, FPS, tmp_path / "video.mp4", audio=clip.soundtrack)
    webm = encode_webm(clip.frames, FPS, tmp_path / "video.webm", audio=clip.soundtrack)

    for encoded, codec in ((mp4, "aac"), (webm, "opus")):
        facts = probe(Path(encoded.path))
        assert facts["audio_streams"] == 1
        assert (facts["codec"], facts["rate"], facts["channels"]) == (codec, AUDIO_RATE, 2)
        assert facts["frames"] == FRAMES
        assert abs(facts["seconds"] - FRAMES / FPS) <= 1 / FPS, facts
        assert facts["peak"] > 0


def test_files_without_a_soundtrack_have_no_audio_stream(clip: Clip, tmp_path: Path) -> None:
    for encoded in (
        encode_mp4(clip.frames, FPS, tmp_path / "video.mp4"),
        encode_webm(clip.frames, FPS, tmp_path / "video.webm"),
    ):
        assert probe(Path(encoded.path))["audio_streams"] == 0


def test_a_short_or_long_soundtrack_is_fitted_to_the_video(clip: Clip, tmp_path: Path) -> None:
    """Padded with silence or trimmed: the track never outlasts the picture, nor stops early."""
    for seconds in (0.5, 4.0):
        samples = np.full((1, int(seconds * 8000)), 0.25, dtype=np.float32)
        encoded = encode_mp4(clip.frames, FPS, tmp_path / f"{seconds}.mp4", audio=Soundtrack(samples, 8000))
        facts = probe(Path(encoded.path))
        assert facts["channels"] == 1
        assert abs(facts["seconds"] - FRAMES / FPS) <= 1 / FPS, facts


@pytest.mark.parametrize(
    "samples",
    [
        np.zeros((3, 100), np.float32),
        np.zeros((2, 0), np.float32),
        np.zeros(100, np.float32),
        np.zeros((2, 9), np.int16),
    ],
)
def test_malformed_audio_is_refused(clip: Clip, tmp_path: Path, samples: np.ndarray) -> None:
    with pytest.raises(ValueError):
        encode_mp4(clip.frames, FPS, tmp_path / "bad.mp4", audio=Soundtrack(samples, 8000))
    assert not (tmp_path / "bad.mp4").exists()


# --- catalog -----------------------------------------------------------------------------------


def test_the_catalog_names_the_models_with_audio_and_their_default() -> None:
    catalog = load_catalog(DEFAULT_CATALOG_PATH)
    with_audio = {name for name, spec in catalog.models.items() if spec.audio}
    assert with_audio == {"ltx-2"}
    assert catalog.models["ltx-2"].family == "ltx2" and catalog.models["ltx-2"].audio_default
    assert catalog.price("ltx-2", 4, "sd", audio=True) > catalog.price("ltx-2", 4, "sd")


@pytest.mark.parametrize(
    "body",
    [
        'family = "wan"\naudio = true',
        'family = "ltx2"\naudio_default = true',
        'family = "ltx2"\naudio = true\naudio_credit_multiplier = 0',
    ],
)
def test_audio_on_a_model_that_cannot_render_it_is_refused_at_load(tmp_path: Path, body: str) -> None:
    path = tmp_path / "catalog.toml"
    path.write_text(
        DEFAULT_CATALOG_PATH.read_text()
        + f'\n[models.bad]\n{body}\nweights = "x"\nfps = 24\nmax_duration_s = 5\ndefault_steps = 4\n'
    )
    with pytest.raises(Exception, match="audio"):
        load_catalog(path)


# --- through the API on the real stack ---------------------------------------------------------


async def _download(url: str) -> bytes:
    async with httpx.AsyncClient(timeout=30) as plain:
        answer = await plain.get(url)
    assert answer.status_code == 200, url
    return answer.content


async def _render_task(api: Api, **fields: Any) -> dict[str, Any]:
    payload = {"prompt": "waves breaking on rocks", "duration": 2, "resolution": "854x480", "seed": 5, **fields}
    created = await api.generate(payload)
    assert created.status_code == 200, created.text
    done = await api.wait(created.json()["task_id"], timeout_s=240)
    assert done["status"] == "succeeded", done
    return done


async def _files(done: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {o["format"]: probe(await _download(o["url"])) for o in done["outputs"] if o["format"] in ("mp4", "webm")}


async def test_a_task_with_audio_delivers_aac_and_opus_as_long_as_the_video(account: Api) -> None:
    done = await _render_task(account, model_version="ltx-2", audio=True)

    assert done["request"]["audio"] is True
    meta = done["render"]
    assert (meta["audio"], meta["audio_sample_rate"], meta["audio_channels"]) == (True, AUDIO_RATE, 2)
    assert meta["family"] == "ltx2" and meta["audio_source_rate"] > 0
    seconds = meta["num_frames"] / meta["fps"]
    files = await _files(done)
    assert (files["mp4"]["codec"], files["webm"]["codec"]) == ("aac", "opus")
    for facts in files.values():
        assert facts["frames"] == meta["num_frames"]
        assert abs(facts["seconds"] - seconds) <= 1 / meta["fps"], facts


async def test_the_audio_model_delivers_audio_by_default_and_audio_false_turns_it_off(account: Api) -> None:
    default = await _render_task(account, model_version="ltx-2-dev")  # an alias of ltx-2
    silent = await _render_task(account, model_version="ltx-2", audio=False)

    assert default["request"]["audio"] is True and default["render"]["audio"] is True
    assert silent["request"]["audio"] is False
    assert silent["render"]["audio"] is False and silent["render"]["audio_channels"] == 0
    for facts in (await _files(silent)).values():
        assert facts["audio_streams"] == 0
    assert all(f["audio_streams"] == 1 for f in (await _files(default)).values())


@pytest.mark.parametrize("model", ["sora-2-latest", "ltx-video-0.9", "wan2.1-t2v-1.3b"])
async def test_audio_true_on_a_model_without_audio_is_a_422_naming_the_field(account: Api, model: str) -> None:
    answer = await account.generate({"prompt": "a silent film", "model_version": model, "audio": True})

    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["code"] == "validation_error"
    details = [d for d in error["details"] if d["field"] == "audio"]
    assert details and "ltx-2" in details[0]["message"], error


async def test_audio_false_is_accepted_everywhere_and_renders_without_audio(account: Api) -> None:
    done = await _render_task(account, model_version="sora-2-latest", audio=False)
    assert done["request"]["audio"] is False and done["render"]["audio"] is False
    assert all(f["audio_streams"] == 0 for f in (await _files(done)).values())


async def test_the_estimate_prices_the_soundtrack(account: Api) -> None:
    body = {"prompt": "quote", "model_version": "ltx-2", "duration": 4, "resolution": "854x480"}
    with_audio = (await account.http.post("/api/credits/estimate", json=body, headers=account.auth())).json()
    without = (
        await account.http.post("/api/credits/estimate", json=body | {"audio": False}, headers=account.auth())
    ).json()
    by_query = await account.http.get(
        "/api/credits/estimate",
        params={"model_version": "ltx-2", "duration": 4, "resolution": "854x480", "audio": "false"},
        headers=account.auth(),
    )

    assert (with_audio["audio"], with_audio["audio_multiplier"]) == (True, 1.25)
    assert (without["audio"], without["audio_multiplier"]) == (False, 1.0)
    assert with_audio["credits"] > without["credits"] == by_query.json()["credits"]
    for wrong in ("true", "1", "True"):  # no audio on the default model; the flag is `true` or `false` exactly
        refused = await account.http.get("/api/credits/estimate", params={"audio": wrong}, headers=account.auth())
        assert refused.status_code == 422, wrong
        assert "audio" in {d["field"] for d in refused.json()["error"]["details"]}


@pytest.mark.parametrize("value", [0, 1, "true", "yes"])
async def test_audio_is_a_json_boolean_not_a_number_or_a_string(account: Api, value: Any) -> None:
    answer = await account.generate({"prompt": "a bell", "model_version": "ltx-2", "audio": value})
    assert answer.status_code == 422, answer.text
    assert "audio" in str(answer.json()["error"]["details"])


async def test_a_multipart_form_takes_audio_as_true_or_false(account: Api) -> None:
    form = {
        "prompt": (None, "a bell"),
        "model_version": (None, "ltx-2"),
        "duration": (None, "1"),
        "resolution": (None, "480x480"),
    }
    silent = await account.http.post("/api/generate", files=form | {"audio": (None, "false")}, headers=account.auth())
    assert silent.status_code == 200, silent.text
    done = await account.wait(silent.json()["task_id"], timeout_s=240)
    assert done["request"]["audio"] is False and done["status"] == "succeeded"
    wrong = await account.http.post("/api/generate", files=form | {"audio": (None, "0")}, headers=account.auth())
    assert wrong.status_code == 422


async def test_the_openapi_schema_documents_audio_and_which_models_take_it(api: Api) -> None:
    schema = (await api.http.get("/openapi.json")).json()
    generate = schema["components"]["schemas"]["GenerateRequest"]
    assert "audio" in generate["properties"]
    assert "ltx-2" in str(generate["properties"]["audio"])
    forbidding = {
        name
        for rule in generate["allOf"]
        if rule["then"].get("properties", {}).get("audio") == {"enum": [False, None]}
        for name in rule["if"]["properties"]["model_version"]["enum"]
    }
    assert "sora-2-latest" in forbidding and "ltx-video-0.9" in forbidding
    assert "ltx-2" not in forbidding and "ltx-2-dev" not in forbidding


async def test_the_openai_sdk_gets_the_soundtrack_of_an_audio_model(account: Api) -> None:
    """OpenAI's videos came with synchronized audio: `/v1/videos` on `ltx-2` takes its default (audio on)."""
    sdk = openai.OpenAI(base_url=account.base_url + "/v1", api_key=account.api_key, max_retries=0)
    queued = sdk.videos.create(prompt="a drum solo", model="ltx-2", seconds="1", size="480x480")
    done = await asyncio.to_thread(sdk.videos.poll, queued.id)
    assert done.status == "completed", done

    facts = probe(sdk.videos.download_content(done.id).content)
    assert (facts["audio_streams"], facts["codec"], facts["channels"]) == (1, "aac", 2)
    meta = (await account.status(done.id)).json()["render"]
    assert meta["audio"] is True
    assert abs(facts["seconds"] - meta["num_frames"] / meta["fps"]) <= 1 / meta["fps"]


async def test_the_model_list_says_which_models_have_audio(account: Api) -> None:
    models = {m["name"]: m for m in (await account.http.get("/api/models", headers=account.auth())).json()["data"]}
    assert (models["ltx-2"]["audio"], models["ltx-2"]["audio_default"]) == (True, True)
    assert not models["sora-2-latest"]["audio"] and not models["ltx-video-0.9"]["audio"]
