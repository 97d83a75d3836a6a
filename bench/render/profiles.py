"""Speed profiles on one warm pipeline: transformer forward passes and denoise time against `quality`.

Each profile renders the same request (same seed, same size) through `run_pipeline` with its
`RenderSpeed`, as the render activity does: its share of the steps, its cache, its compilation (CUDA
only). Passes are counted with forward pre-hooks (`activities.speed.count_passes`): transformer
forward passes (steps × passes per step) and blocks that really computed (the cache skips all blocks
but the first on a pass it reuses). The denoise time is the time spent inside the transformer's
forward passes (hooks around them): on the tiny model the text encoder and the VAE decode dominate the
whole call, which is reported beside it. Profiles run in turns, so a busy moment of a shared box
falls on every profile alike; the minimum time of each is compared.
"""

from __future__ import annotations

import time
from typing import Any

from sorapi.activities.pipelines import run_pipeline
from sorapi.activities.render import effective_render, spec_arguments
from sorapi.activities.speed import count_passes, speed_effects
from sorapi.adapters.settings import Settings
from sorapi.contracts.messages import RenderSpec
from sorapi.domain.speed import SPEEDS

FAST_PASS_LIMIT = 0.60
"""`fast` runs at most this share of `quality`'s transformer forward passes."""


def _once(pipe: Any, spec: RenderSpec, settings: Settings, dev_model: bool) -> dict[str, Any]:
    shape = effective_render(spec, settings, dev_model=dev_model)
    with count_passes(pipe) as passes:
        started = time.perf_counter()
        run_pipeline(pipe, **spec_arguments(spec, shape))
        seconds = time.perf_counter() - started
    effects = speed_effects(pipe, spec.speed)
    return {
        "steps": shape.steps,
        "transformer_passes": passes.transformer,
        "block_passes": passes.blocks,
        "denoise_s": passes.seconds,
        "call_s": seconds,
        "cache": effects.cache,
        "compiled": effects.compiled,
    }


def profile_benchmark(
    pipe: Any, specs: dict[str, RenderSpec], settings: Settings, dev_model: bool, repeats: int
) -> dict[str, Any]:
    """Every profile `repeats` times in turns (after one untimed warm-up each); ratios against quality."""
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in SPEEDS}
    for name in SPEEDS:
        _once(pipe, specs[name], settings, dev_model)  # warm-up: first-call costs (and compiles) of each
    for _ in range(repeats):
        for name in SPEEDS:
            runs[name].append(_once(pipe, specs[name], settings, dev_model))
    base = runs["quality"][0]
    base_s = min(r["denoise_s"] for r in runs["quality"])
    table = {}
    for name in SPEEDS:
        first = runs[name][0]
        best = min(r["denoise_s"] for r in runs[name])
        call = min(r["call_s"] for r in runs[name])
        table[name] = {
            "steps": first["steps"],
            "transformer_passes": first["transformer_passes"],
            "block_passes": first["block_passes"],
            "cache": first["cache"],
            "compiled": first["compiled"],
            "denoise_s_min": best,
            "passes_ratio": first["transformer_passes"] / base["transformer_passes"],
            "block_passes_ratio": first["block_passes"] / base["block_passes"],
            "denoise_ratio": best / base_s,
            "call_s_min": call,
            "call_ratio": call / min(r["call_s"] for r in runs["quality"]),
        }
    meets = table["fast"]["passes_ratio"] <= FAST_PASS_LIMIT
    return {"profiles": table, "fast_meets_limit": meets, "runs": runs, "repeats": repeats}


def print_table(result: dict[str, Any], shape: str) -> None:
    print(f"\nspeed profiles, {shape}, min of {result['repeats']} runs each (ratios against quality)")
    header = (
        f"{'profile':<9} {'steps':>5} {'passes':>6} {'ratio':>6} {'blocks':>6} {'ratio':>6} {'denoise':>9} {'ratio':>6}"
    )
    print(header + f" {'whole call':>10} {'ratio':>6}  cache / compiled")
    for name in SPEEDS:
        row = result["profiles"][name]
        print(
            f"{name:<9} {row['steps']:>5} {row['transformer_passes']:>6} {row['passes_ratio']:>6.2f} "
            f"{row['block_passes']:>6} {row['block_passes_ratio']:>6.2f} {row['denoise_s_min']:>8.3f}s "
            f"{row['denoise_ratio']:>6.2f} {row['call_s_min']:>9.3f}s {row['call_ratio']:>6.2f}  "
            f"{row['cache'] or 'none'} / {'yes' if row['compiled'] else 'no'}"
        )
    verdict = "yes" if result["fast_meets_limit"] else "NO"
    print(f"fast runs <= {FAST_PASS_LIMIT:.0%} of quality's transformer passes: {verdict}")
