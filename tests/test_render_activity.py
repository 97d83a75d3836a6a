"""The render activity on the tiny pipelines, run in Temporal's ActivityEnvironment (no server).

Outputs and metadata, the warm pipeline, cancellation at a step boundary, worker shutdown, and
readable render failures (missing or broken weights, an accelerator out-of-memory).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest
import torch
from temporalio.activity import ActivityCancellationDetails
from temporalio.exceptions import ApplicationError, CancelledError
from temporalio.testing import ActivityEnvironment

from sorapi.activities.heartbeat import Heartbeater
from sorapi.activities.pipelines import build_tiny_pipeline
from sorapi.activities.render import SCRATCH_TTL_S, WORKER_SHUTDOWN, RenderActivities, sweep_scratch
from sorapi.adapters.settings import Settings
from sorapi.contracts import errors
from sorapi.contracts.messages import RenderMeta, RenderProgress, RenderSpec


def make_spec(task_id: str = "sora2test", **overrides: Any) -> RenderSpec:
    base: dict[str, Any] = dict(
        task_id=task_id,
        model="sora-2-latest",
        family="wan",
        weights="tiny-wan",
        prompt="a lighthouse in a storm",
        negative_prompt="blurry",
        width=854,
        height=480,
        duration_s=1,
        fps=16,
        guidance_scale=5.0,
        steps=3,
        seed=11,
        dtype="bfloat16",
        num_frames=17,
    )
    return RenderSpec(**(base | overrides))


def make_activities(tmp: Path, **settings: Any) -> RenderActivities:
    base = Settings(data_dir=str(tmp), dev_steps=3, dev_scale=10, dev_fps=8)
    return RenderActivities(msgspec.structs.replace(base, **settings), s3=None, host_queue="host-test")  # type: ignore[arg-type]


def task_dir(acts: RenderActivities, task_id: str) -> Path:
    return acts._settings.resolved_render_dir / task_id


def test_render_writes_mp4_webm_thumbnail_and_metadata_and_stays_warm(tmp: Path) -> None:
    acts = make_activities(tmp)
    result = ActivityEnvironment().run(acts.render_video, make_spec())

    assert [f.format for f in result.files] == ["mp4", "webm", "jpg", "json"]
    assert [f.content_type for f in result.files] == ["video/mp4", "video/webm", "image/jpeg", "application/json"]
    for file in result.files:
        assert Path(file.path).stat().st_size == file.size_bytes > 0
        assert Path(file.path).parent == task_dir(acts, "sora2test") / "attempt-1"
    meta = result.meta
    # Dev model: 1/10 of 854x480 snapped to 32, 1 s at the dev 8 fps rounded to Wan's 4k+1 frames.
    assert (meta.width, meta.height, meta.fps, meta.num_frames, meta.steps) == (96, 64, 8, 9, 3)
    assert (meta.requested_width, meta.requested_height, meta.duration_s, meta.seed) == (854, 480, 1, 11)
    assert meta.dev_model and meta.device == "cpu" and meta.dtype == "float32"
    written = json.loads(Path(result.files[3].path).read_text())
    assert msgspec.convert(written, RenderMeta) == meta
    assert {"model", "seed", "steps", "fps", "num_frames", "load_s", "denoise_s", "encode_s"} <= written.keys()

    second = ActivityEnvironment().run(acts.render_video, make_spec("sora2second", seed=12)).meta
    assert meta.load_s > 0.005, "the first task of a model builds the pipeline"
    assert second.load_s <= 0.001 < meta.load_s, "the second task of the same weights pays no load"


def test_cancel_stops_at_the_step_it_arrives_and_cleans_partial_files(tmp: Path) -> None:
    acts = make_activities(tmp, dev_steps=8)
    env = ActivityEnvironment()
    steps: list[int] = []

    def on_heartbeat(*details: Any) -> None:
        beat = details[0]
        if isinstance(beat, RenderProgress) and beat.phase == "denoising":
            steps.append(beat.step)
            if beat.step == 2:
                env.cancel()  # the cancel lands while step 2 reports its progress

    env.on_heartbeat = on_heartbeat
    with pytest.raises(CancelledError):
        env.run(acts.render_video, make_spec("sora2cancel"))
    assert max(steps) == 2, f"the loop stopped at the step the cancel arrived in, saw steps {steps}"
    assert not (task_dir(acts, "sora2cancel") / "attempt-1").exists()


def test_a_draining_worker_finishes_its_render(tmp: Path) -> None:
    """Shutdown alone (a SIGTERM's drain) does not stop a render: it finishes, and waits for its upload."""
    acts = make_activities(tmp, dev_steps=8)
    env = ActivityEnvironment()
    env.on_heartbeat = lambda *d: env.worker_shutdown() if getattr(d[0], "step", 0) == 1 else None
    result = env.run(acts.render_video, make_spec("sora2drain"))
    assert result.meta.steps == 8 and acts.awaiting_upload() == 1


def test_a_render_stopped_when_the_grace_ends_is_a_retryable_failure_not_a_cancel(tmp: Path) -> None:
    acts = make_activities(tmp, dev_steps=8)
    env = ActivityEnvironment()

    def grace_over(*details: Any) -> None:
        if getattr(details[0], "step", 0) == 1:
            env.worker_shutdown()
            env.cancel(ActivityCancellationDetails(worker_shutdown=True))  # what the SDK does after the grace

    env.on_heartbeat = grace_over
    with pytest.raises(ApplicationError) as raised:
        env.run(acts.render_video, make_spec("sora2shutdown"))
    assert raised.value.type == WORKER_SHUTDOWN and not raised.value.non_retryable
    assert acts.awaiting_upload() == 0


def _beat_times(env: ActivityEnvironment) -> list[tuple[float, Any]]:
    beats: list[tuple[float, Any]] = []
    env.on_heartbeat = lambda *details: beats.append((time.monotonic(), details[0]))
    return beats


def _longest_silence(beats: list[tuple[float, Any]]) -> float:
    return max(later[0] - earlier[0] for earlier, later in itertools.pairwise(beats))


def test_a_hung_denoising_step_stops_the_heartbeats(tmp: Path) -> None:
    """The timer must not keep a hung GPU alive until the 2-hour render timeout.

    Once a step is overdue (`render_step_timeout_s`), the beats stop (so the server fails the attempt), and resume on
    progress.
    """
    acts = make_activities(tmp, dev_steps=4, render_step_timeout_s=0.4)
    pipe = acts.pipeline("wan", None, "bfloat16")
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, heartbeat_timeout=timedelta(seconds=0.4))  # timer beats every 0.1 s
    beats = _beat_times(env)
    hung = False

    def hang_in_step_3(*_: Any) -> None:
        nonlocal hung
        last = beats[-1][1]
        if not hung and isinstance(last, RenderProgress) and last.phase == "denoising" and last.step == 2:
            hung = True
            time.sleep(2.0)

    hook = pipe.transformer.register_forward_pre_hook(hang_in_step_3)
    try:
        env.run(acts.render_video, make_spec("sora2hung"))
    finally:
        hook.remove()
    assert hung
    assert _longest_silence(beats) > 1.4, "the timer kept beating through the hung step"
    assert sorted({b.step for _, b in beats if getattr(b, "phase", "") == "denoising"}) == [1, 2, 3, 4]


async def test_the_heartbeat_timer_vouches_for_quiet_phases_but_not_for_overdue_steps() -> None:
    """Loads and decodes never call back, so the timer beats for them; an overdue step it does not."""
    env = ActivityEnvironment()
    beats = _beat_times(env)

    async def work() -> tuple[int, int]:
        with Heartbeater("loading", interval_s=0.05) as beat:
            time.sleep(0.5)  # a load: no progress reports, the timer beats
            quiet = len(beats)
            beat.update("step 1", stall_s=0.2)
            time.sleep(0.6)  # step 2 overdue: the timer falls silent after 0.2 s
            return quiet, len(beats) - quiet

    quiet, during_step = await env.run(work)
    assert quiet >= 5, "the timer beat through the quiet load"
    assert during_step <= 1 + 0.2 / 0.05 + 1, "the timer kept beating for an overdue step"


def test_out_of_memory_fails_the_task_with_a_readable_message(tmp: Path) -> None:
    acts = make_activities(tmp)
    pipe = acts.pipeline("wan", None, "bfloat16")

    def out_of_memory(*_: Any) -> None:
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    hook = pipe.transformer.register_forward_pre_hook(out_of_memory)
    try:
        with pytest.raises(ApplicationError) as raised:
            ActivityEnvironment().run(acts.render_video, make_spec("sora2oom"))
    finally:
        hook.remove()
    assert raised.value.type == errors.RENDER_FAILED and raised.value.non_retryable
    assert "ran out of accelerator memory at 854x480" in raised.value.message
    assert not (task_dir(acts, "sora2oom") / "attempt-1").exists()
    # The warm pipeline is intact: the next task renders.
    assert ActivityEnvironment().run(acts.render_video, make_spec("sora2after")).meta.num_frames == 9


def test_missing_and_broken_weights_fail_with_render_failed(tmp: Path) -> None:
    models = tmp / "models"
    (models / "broken").mkdir(parents=True)
    (models / "broken" / "model_index.json").write_text('{"_class_name": "WanPipeline"}')
    acts = make_activities(tmp, model_dir=str(models))

    with pytest.raises(ApplicationError) as missing:
        ActivityEnvironment().run(acts.render_video, make_spec("sora2missing", weights="absent"))
    assert missing.value.type == errors.RENDER_FAILED and missing.value.non_retryable
    assert f"weights for sora-2-latest not found at {models / 'absent'}" == missing.value.message

    with pytest.raises(ApplicationError) as broken:
        ActivityEnvironment().run(acts.render_video, make_spec("sora2broken", weights="broken"))
    assert broken.value.type == errors.RENDER_FAILED and broken.value.message.startswith("render failed: ")


def test_real_weights_render_at_the_models_fps_and_frames(tmp: Path) -> None:
    """With SORAPI_MODEL_DIR set, the model's own size, fps, frame count and steps are used."""
    build_tiny_pipeline("ltx").save_pretrained(tmp / "models" / "tiny-ltx")
    acts = make_activities(tmp, model_dir=str(tmp / "models"), render_dtype="fp32")
    spec = make_spec(
        "sora2ltx",
        model="ltx-video-0.9",
        family="ltx",
        weights="tiny-ltx",
        width=480,
        height=480,
        fps=8,
        num_frames=9,
        steps=2,
    )
    meta = ActivityEnvironment().run(acts.render_video, spec).meta
    assert (meta.width, meta.height, meta.fps, meta.num_frames, meta.steps) == (480, 480, 8, 9, 2)
    assert not meta.dev_model and meta.dtype == "float32"


def test_worker_settings_reach_the_pipeline(tmp: Path) -> None:
    acts = make_activities(
        tmp, render_vae_tiling=True, render_vae_slicing=True, render_attention_backend="native", render_compile=True
    )
    pipe = acts.pipeline("wan", None, "bfloat16")
    assert pipe.vae.use_tiling and pipe.vae.use_slicing
    processors = [m.processor for m in pipe.transformer.modules() if hasattr(m, "processor")]
    assert processors and all(p._attention_backend.value == "native" for p in processors)
    compiled = [m for m in pipe.transformer.modules() if getattr(m, "_compiled_call_impl", None) is not None]
    assert [type(m).__name__ for m in compiled] == ["WanTransformerBlock", "WanTransformerBlock"]


def test_stale_scratch_is_swept_at_worker_start(tmp: Path) -> None:
    renders = tmp / "renders"
    old, fresh = renders / "sora2old" / "attempt-1", renders / "sora2fresh" / "attempt-1"
    for directory in (old, fresh):
        directory.mkdir(parents=True)
        (directory / "video.mp4").write_bytes(b"x")
    stale = time.time() - SCRATCH_TTL_S - 60
    os.utime(renders / "sora2old", (stale, stale))

    assert sweep_scratch(renders) == 1
    assert not old.exists() and fresh.exists()
    assert sweep_scratch(tmp / "missing") == 0
