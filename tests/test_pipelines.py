"""Tiny random-weight Wan and LTX pipelines: shapes, determinism, languages, interruption, validation."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("diffusers")

from torch import get_num_threads, set_num_threads

from sorapi.activities.pipelines import (
    SUPPORTED_FAMILIES,
    RenderInterrupted,
    build_tiny_pipeline,
    frames_for,
    load_pipeline,
    run_pipeline,
    set_cpu_threads,
)

FAMILIES = pytest.mark.parametrize("family", SUPPORTED_FAMILIES)


@pytest.fixture(scope="module")
def pipes() -> dict[str, Any]:
    """One tiny pipeline per family, shared by the module (they are stateless between calls)."""
    return {family: build_tiny_pipeline(family) for family in SUPPORTED_FAMILIES}


def request(**overrides: Any) -> dict[str, Any]:
    """A small valid request for both families (sizes are multiples of 32, frames 8k+1)."""
    base: dict[str, Any] = dict(
        prompt="a red fox running through fresh snow",
        negative_prompt="blurry, low quality",
        width=64,
        height=64,
        num_frames=9,
        guidance_scale=5.0,
        num_inference_steps=2,
        seed=7,
    )
    return base | overrides


# --- frames_for -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("family", "duration_s", "fps", "expected"),
    [
        ("wan", 5, 16, 81),
        ("wan", 4, 16, 65),
        ("wan", 2, 24, 49),
        ("wan", 1.4, 16, 25),  # 22.4 frames -> 24 + 1
        ("wan", 1.5, 12, 21),  # 18 frames: tie between 17 and 21 rounds up
        ("wan", 0.1, 16, 5),  # minimum
        ("ltx", 5, 24, 121),
        ("ltx", 4, 16, 65),
        ("ltx", 1, 24, 25),
        ("ltx", 1.3, 24, 33),  # 31.2 frames -> 32 + 1
        ("ltx", 0.1, 24, 9),  # minimum
    ],
)
def test_frames_for_rounds_to_family_rule(family: str, duration_s: float, fps: int, expected: int) -> None:
    assert frames_for(family, duration_s, fps) == expected


def test_frames_for_rule_holds_over_a_range() -> None:
    for family, step in (("wan", 4), ("ltx", 8)):
        for fps in (8, 16, 24, 30):
            for tenths in range(1, 120):
                wanted = tenths / 10 * fps
                frames = frames_for(family, tenths / 10, fps)
                assert (frames - 1) % step == 0
                assert frames >= step + 1
                assert abs(frames - 1 - wanted) <= step / 2 or frames == step + 1


@pytest.mark.parametrize(("family", "duration_s", "fps"), [("sora", 1, 16), ("wan", 0, 16), ("ltx", 1, 0)])
def test_frames_for_rejects_bad_input(family: str, duration_s: float, fps: int) -> None:
    with pytest.raises(ValueError):
        frames_for(family, duration_s, fps)


# --- rendering --------------------------------------------------------------------------------


@FAMILIES
@pytest.mark.parametrize(("width", "height"), [(64, 64), (96, 64)])
def test_renders_requested_shape_quickly(pipes: dict[str, Any], family: str, width: int, height: int) -> None:
    started = time.perf_counter()
    frames = run_pipeline(pipes[family], **request(width=width, height=height, num_inference_steps=4))
    elapsed = time.perf_counter() - started

    assert frames.shape == (9, height, width, 3)
    assert frames.dtype == np.uint8
    assert frames.flags["C_CONTIGUOUS"]
    assert frames.std() > 0, "a constant video means the decode produced nothing"
    assert elapsed < 10


@FAMILIES
def test_same_seed_is_bit_identical_and_seed_or_prompt_change_the_video(pipes: dict[str, Any], family: str) -> None:
    pipe = pipes[family]
    first = run_pipeline(pipe, **request())
    again = run_pipeline(pipe, **request())
    other_seed = run_pipeline(pipe, **request(seed=8))
    other_prompt = run_pipeline(pipe, **request(prompt="a lighthouse at dusk"))

    assert np.array_equal(first, again)
    assert not np.array_equal(first, other_seed)
    assert not np.array_equal(first, other_prompt)


@FAMILIES
def test_same_seed_reproduces_on_a_fresh_pipeline(pipes: dict[str, Any], family: str) -> None:
    fresh = build_tiny_pipeline(family)
    assert np.array_equal(run_pipeline(pipes[family], **request()), run_pipeline(fresh, **request()))


@FAMILIES
def test_multilingual_prompts_render_distinct_videos(pipes: dict[str, Any], family: str) -> None:
    prompts = ["一只红色的狐狸在雪地里奔跑", "un zorro rojo corriendo por la nieve", "雪の中を走る赤いキツネ"]
    videos = [run_pipeline(pipes[family], **request(prompt=prompt, negative_prompt=None)) for prompt in prompts]

    for video in videos:
        assert video.shape == (9, 64, 64, 3)
    for i in range(len(videos)):
        for j in range(i + 1, len(videos)):
            assert not np.array_equal(videos[i], videos[j])


# --- progress and interruption ----------------------------------------------------------------


@FAMILIES
def test_on_step_reports_every_step(pipes: dict[str, Any], family: str) -> None:
    calls: list[tuple[int, int]] = []

    def on_step(step: int, total: int) -> bool:
        calls.append((step, total))
        return False

    run_pipeline(pipes[family], **request(num_inference_steps=3), on_step=on_step)

    assert calls == [(1, 3), (2, 3), (3, 3)]


@FAMILIES
def test_on_step_returning_true_interrupts_after_first_step(pipes: dict[str, Any], family: str) -> None:
    pipe = pipes[family]
    calls: list[tuple[int, int]] = []

    def stop_now(step: int, total: int) -> bool:
        calls.append((step, total))
        return True

    with pytest.raises(RenderInterrupted):
        run_pipeline(pipe, **request(num_inference_steps=3), on_step=stop_now)

    assert calls == [(1, 3)]
    # The interrupted call leaves no state behind: the next render is the normal one.
    after = run_pipeline(pipe, **request(num_inference_steps=3))
    assert np.array_equal(after, run_pipeline(build_tiny_pipeline(family), **request(num_inference_steps=3)))


# --- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("family", "overrides"),
    [
        ("wan", {"width": 72}),  # not a multiple of 16
        ("wan", {"height": 0}),
        ("wan", {"num_frames": 10}),  # not 4k+1
        ("wan", {"num_frames": 1}),
        ("ltx", {"width": 48}),  # multiple of 16, not of 32
        ("ltx", {"num_frames": 13}),  # 4k+1 but not 8k+1
        ("ltx", {"num_frames": 5}),
        ("wan", {"num_inference_steps": 0}),
        ("ltx", {"prompt": "   "}),
        ("wan", {"guidance_scale": -1.0}),
        ("wan", {"seed": -1}),
    ],
)
def test_invalid_requests_raise_value_error(pipes: dict[str, Any], family: str, overrides: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        run_pipeline(pipes[family], **request(**overrides))


def test_valid_wan_only_sizes_are_accepted_for_wan(pipes: dict[str, Any]) -> None:
    frames = run_pipeline(pipes["wan"], **request(width=80, height=48, num_frames=5))
    assert frames.shape == (5, 48, 80, 3)


def test_unknown_family_and_dtype_are_rejected() -> None:
    with pytest.raises(ValueError):
        build_tiny_pipeline("sora")
    with pytest.raises(ValueError):
        load_pipeline("wan", None, dtype="float8")


# --- loading ----------------------------------------------------------------------------------


def test_load_pipeline_without_weights_is_the_tiny_model(pipes: dict[str, Any]) -> None:
    pipe = load_pipeline("wan", None, vae_tiling=True)

    assert pipe.vae.use_tiling
    assert np.array_equal(run_pipeline(pipe, **request()), run_pipeline(pipes["wan"], **request()))


@FAMILIES
def test_load_pipeline_reads_a_local_diffusers_directory(pipes: dict[str, Any], family: str, tmp_path: Path) -> None:
    pipes[family].save_pretrained(tmp_path)

    loaded = load_pipeline(family, str(tmp_path))

    assert type(loaded) is type(pipes[family])
    original = run_pipeline(pipes[family], **request()).astype(np.int16)
    reloaded = run_pipeline(loaded, **request()).astype(np.int16)
    # Weights round-trip exactly; the freshly loaded transformer may differ in the last float bit.
    assert np.abs(original - reloaded).max() <= 2


# --- worker options ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        {"attention_backend": "flash_hub"},  # would download kernels from the Hub
        {"attention_backend": "warp_drive"},
        {"offload": "everything"},
        {"dtype": "int8"},
    ],
)
def test_options_that_cannot_work_offline_are_rejected(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        load_pipeline("wan", None, **options)


def test_fps_conditions_ltx_motion_and_is_ignored_by_wan(pipes: dict[str, Any]) -> None:
    ltx = [run_pipeline(pipes["ltx"], **request(), fps=fps) for fps in (8, 24)]
    wan = [run_pipeline(pipes["wan"], **request(), fps=fps) for fps in (8, 24)]
    assert not np.array_equal(*ltx), "LTX-Video takes the frame rate as conditioning"
    assert np.array_equal(*wan)


def test_cpu_renders_of_the_dev_models_use_one_thread_and_real_weights_keep_torchs_default() -> None:
    before = get_num_threads()
    try:
        assert set_cpu_threads("cpu", 0, dev_models=True) == 1
        set_num_threads(before)
        assert set_cpu_threads("cpu", 0, dev_models=False) == before
        assert set_cpu_threads("cpu", 3, dev_models=False) == 3
        set_num_threads(before)
        assert set_cpu_threads("cuda", 0, dev_models=True) == before
    finally:
        set_num_threads(before)
