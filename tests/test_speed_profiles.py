"""Speed profiles (`speed`: quality, balanced, fast).

Fewer transformer passes, a cache that lasts one render on a warm shared pipeline, the price and the render meta the
catalog says, a 422 for a bad value.

The pipeline tests run the tiny Wan pipeline in this process, as the render worker does; the API
tests go through the shared `sorapi dev` stack.
"""

from __future__ import annotations

import math
from typing import Any

import msgspec
import numpy as np
import pytest

from bench.gpu.__main__ import REFUSED
from bench.gpu.__main__ import main as bench_gpu
from sorapi.activities.pipelines import RenderInterrupted, build_tiny_pipeline, run_pipeline
from sorapi.activities.render import effective_render, spec_arguments
from sorapi.activities.speed import count_passes, speed_effects
from sorapi.adapters.settings import Settings
from sorapi.contracts.messages import RenderSpec, RenderSpeed
from sorapi.contracts.schemas import GenerateRequest
from sorapi.domain.catalog import get_catalog
from sorapi.domain.planning import plan, render_spec
from sorapi.domain.speed import SPEEDS, scaled_steps
from tests.stack import Api

PROMPT = "A paper boat drifting down a rain-soaked street"


@pytest.fixture(scope="module")
def wan() -> Any:
    return build_tiny_pipeline("wan")


def spec_for(speed: str) -> RenderSpec:
    catalog = get_catalog()
    planned = plan(GenerateRequest(prompt=PROMPT, duration=1, resolution="480x480", seed=11, speed=speed), catalog)
    assert not isinstance(planned, list), planned
    return render_spec(f"speed-{speed}", planned.request, catalog)


def render(pipe: Any, spec: RenderSpec, **kwargs: Any) -> tuple[np.ndarray, int, int]:
    """Frames, transformer forward passes and computed blocks of one render on the dev settings."""
    shape = effective_render(spec, Settings(), dev_model=True)
    with count_passes(pipe) as passes:
        frames = run_pipeline(pipe, **spec_arguments(spec, shape), **kwargs)
    return frames, passes.transformer, passes.blocks


def no_cache_hooks(pipe: Any) -> bool:
    transformer = pipe.transformer
    hooks = [name for m in transformer.modules() if hasattr(m, "_diffusers_hook") for name in m._diffusers_hook.hooks]
    return not transformer.is_cache_enabled and not hooks


def test_fast_runs_at_most_60_percent_of_qualitys_transformer_passes_with_the_cache_on(wan: Any) -> None:
    quality, fast = spec_for("quality"), spec_for("fast")
    assert quality.speed == RenderSpeed() and fast.speed.name == "fast" and fast.speed.cache_threshold > 0
    cache_seen: list[bool] = []

    def on_step(step: int, total: int) -> bool:
        cache_seen.append(wan.transformer.is_cache_enabled)
        return False

    _, quality_passes, _ = render(wan, quality)
    _, fast_passes, _ = render(wan, fast, on_step=on_step)
    assert quality_passes > 0 and fast_passes <= 0.6 * quality_passes, (fast_passes, quality_passes)
    assert cache_seen and all(cache_seen), "fast renders with the First Block Cache on"
    assert speed_effects(wan, fast.speed).cache == f"first_block:{fast.speed.cache_threshold:g}"
    assert no_cache_hooks(wan), "and only for that render"


def test_the_cache_skips_blocks_when_the_first_block_barely_moves(wan: Any) -> None:
    quality = spec_for("quality")
    lax = RenderSpeed(name="fast", cache_threshold=0.99)  # any step below 99% relative change reuses the rest
    _, passes, blocks = render(wan, quality)
    _, cached_passes, cached_blocks = render(wan, msgspec.structs.replace(quality, speed=lax))
    assert cached_passes == passes, "the cache skips blocks, not passes"
    assert cached_blocks < blocks, (cached_blocks, blocks)
    assert no_cache_hooks(wan)


def test_a_cache_enabled_for_one_render_does_not_reach_the_next(wan: Any) -> None:
    quality = spec_for("quality")
    before, _, blocks = render(wan, quality)
    fast, _, _ = render(wan, spec_for("fast"))
    _, _, cached_blocks = render(wan, msgspec.structs.replace(quality, speed=RenderSpeed(cache_threshold=0.99)))
    assert cached_blocks < blocks, "this one reused cached residuals"
    with pytest.raises(RenderInterrupted):  # stopped mid-render: the cache comes off all the same
        render(wan, spec_for("balanced"), on_step=lambda step, total: True)
    after, _, _ = render(wan, quality)
    assert no_cache_hooks(wan)
    assert np.array_equal(before, after), "same seed, same quality frames before and after the cached renders"
    assert not np.array_equal(before, fast)


def test_profiles_scale_the_steps_and_the_price_as_the_catalog_says() -> None:
    catalog = get_catalog()
    assert set(catalog.speed) == set(SPEEDS)
    for name in SPEEDS:
        profile = catalog.speed_profile(name)
        spec = spec_for(name)
        assert spec.steps == scaled_steps(catalog.models["sora-2-latest"].default_steps, profile.steps_fraction)
        assert effective_render(spec, Settings(), dev_model=True).steps == scaled_steps(4, profile.steps_fraction)
        assert catalog.price("sora-2-latest", 8, "hd", name) == math.ceil(round(8 * 2 * profile.credit_multiplier, 9))
    assert catalog.price("sora-2-latest", 8, "hd", "fast") < catalog.price("sora-2-latest", 8, "hd", "quality")
    assert plan(GenerateRequest(prompt=PROMPT), catalog).request.speed == "quality"  # type: ignore[union-attr]


def test_bench_gpu_refuses_clearly_without_a_cuda_device(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_gpu([]) == REFUSED
    assert "needs a CUDA GPU and this host has none" in capsys.readouterr().err


async def test_fast_is_accepted_priced_as_the_catalog_says_and_recorded_in_the_render(account: Api) -> None:
    catalog = get_catalog()
    price = catalog.price("sora-2-latest", 1, "sd", "fast")
    quote = await account.http.get(
        "/api/credits/estimate",
        params={"duration": 1, "resolution": "480x480", "speed": "fast"},
        headers=account.auth(),
    )
    assert quote.status_code == 200, quote.text
    assert (quote.json()["credits"], quote.json()["speed"]) == (price, "fast")
    assert quote.json()["speed_multiplier"] == catalog.speed_profile("fast").credit_multiplier

    created = await account.generate({"prompt": PROMPT, "duration": 1, "resolution": "480x480", "speed": "fast"})
    assert created.status_code == 200, created.text
    assert created.json()["credits_reserved"] == price
    done = await account.wait(created.json()["task_id"], timeout_s=180)
    assert done["status"] == "succeeded", done
    assert done["request"]["speed"] == "fast" and done["credits_charged"] == price
    meta = done["render"]
    assert meta["speed"] == "fast" and meta["cache"].startswith("first_block:") and meta["compiled"] is False
    assert meta["steps"] == scaled_steps(Settings().dev_steps, catalog.speed_profile("fast").steps_fraction)

    models = {m["name"]: m for m in (await account.http.get("/api/models", headers=account.auth())).json()["data"]}
    assert models["sora-2-latest"]["default_speed"] == "quality"
    assert models["sora-2-latest"]["steps"] == {name: catalog.steps("sora-2-latest", name) for name in SPEEDS}


async def test_a_bad_speed_is_a_422_naming_the_field_everywhere(account: Api) -> None:
    bad = await account.generate({"prompt": PROMPT, "speed": "ludicrous"})
    assert bad.status_code == 422, bad.text
    assert [d["field"] for d in bad.json()["error"]["details"]] == ["speed"]
    quote = await account.http.get("/api/credits/estimate", params={"speed": "warp"}, headers=account.auth())
    assert quote.status_code == 422 and quote.json()["error"]["details"][0]["field"] == "speed"
    video = await account.http.post(
        "/v1/videos",
        json={"prompt": PROMPT, "seconds": "1", "size": "480x480", "speed": "turbo"},
        headers=account.auth(),
    )
    assert video.status_code == 422 and video.json()["error"]["details"][0]["field"] == "speed"


async def test_v1_videos_takes_speed_as_an_extension_and_the_schema_publishes_the_enum(account: Api) -> None:
    video = await account.http.post(
        "/v1/videos",
        files={
            "prompt": (None, PROMPT),
            "seconds": (None, "1"),
            "size": (None, "480x480"),
            "speed": (None, "balanced"),
        },
        headers=account.auth(),
    )
    assert video.status_code == 200, video.text
    status = (await account.status(video.json()["id"])).json()
    assert status["request"]["speed"] == "balanced"
    document = (await account.http.get("/openapi.json")).json()
    schemas = document["components"]["schemas"]
    speed_schema = schemas["GenerateRequest"]["properties"]["speed"]
    assert set(speed_schema.get("enum", [])) - {None} == set(SPEEDS), speed_schema
    assert set(schemas["TaskRequest"]["properties"]["speed"]["enum"]) == set(SPEEDS)
    await account.wait(video.json()["id"], timeout_s=180)
