"""Speed profiles on a real GPU: a 720p 8 s render of each profile on real weights, timed.

    SORAPI_MODEL_DIR=/models python -m bench.gpu [--model sora-2-latest] [--resolution 1280x720]
        [--duration 8] [--profiles quality,balanced,fast] [--repeats 1] [--device cuda:0]

The request is planned by the API's own code (`sorapi.domain.planning`), so each profile renders the steps,
the cache and the compilation a task of that profile gets; the pipeline loads as the render worker
loads it (SORAPI_RENDER_* honoured). Per profile: the denoise + decode seconds (CUDA-synchronised),
seconds per second of video, transformer forward passes and the blocks that computed, peak GPU
memory. The expected figures, from published benchmarks, are in docs/gpu.md; this measures yours.

It needs a CUDA device and real weights, and refuses clearly (exit status 2) without either: the
tiny dev models' figures are `python -m bench.render --only profiles`. Writes JSON to bench/results/.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parents[1] / "results"
PROMPT = "A red fox runs through fresh snow at golden hour, cinematic tracking shot"
REFUSED = 2
"""Exit status when this host cannot run the benchmark (no CUDA device, no weights)."""


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.gpu", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="sora-2-latest")
    parser.add_argument("--resolution", default="1280x720")
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--profiles", default="quality,balanced,fast")
    parser.add_argument("--repeats", type=int, default=1, help="timed renders of each profile, after a warm-up")
    parser.add_argument("--device", default="cuda", help="a CUDA device (default: cuda)")
    return parser.parse_args(argv)


def refusal(device: str, model_dir: str) -> str | None:
    """Why this host cannot run the benchmark, or None when it can."""
    import torch

    if not device.startswith("cuda"):
        return f"bench.gpu measures on a CUDA device; --device {device!r} is not one"
    if not torch.cuda.is_available():
        return (
            "bench.gpu needs a CUDA GPU and this host has none (torch.cuda.is_available() is False, "
            f"torch {torch.__version__}). Run it on a GPU host with SORAPI_MODEL_DIR set; on a CPU, "
            "`python -m bench.render --only profiles` measures the profiles on the tiny dev model."
        )
    if not model_dir:
        return "bench.gpu renders real weights: set SORAPI_MODEL_DIR to the directory holding the catalog's weights"
    return None


def _render(pipe: Any, spec: Any, settings: Any, device: str) -> dict[str, Any]:
    import torch

    from sorapi.activities.pipelines import peak_gpu_memory, reset_peak_memory, run_pipeline
    from sorapi.activities.render import effective_render, spec_arguments
    from sorapi.activities.speed import count_passes, speed_effects

    shape = effective_render(spec, settings, dev_model=False)
    reset_peak_memory(device)
    torch.cuda.synchronize(device)
    with count_passes(pipe) as passes:
        started = time.perf_counter()
        run_pipeline(pipe, **spec_arguments(spec, shape))
        torch.cuda.synchronize(device)
        seconds = time.perf_counter() - started
    effects = speed_effects(pipe, spec.speed)
    return {
        "size": f"{shape.width}x{shape.height}",
        "frames": shape.num_frames,
        "steps": shape.steps,
        "seconds": seconds,
        "seconds_per_video_second": seconds / spec.duration_s,
        "transformer_passes": passes.transformer,
        "block_passes": passes.blocks,
        "cache": effects.cache,
        "compiled": effects.compiled,
        "peak_gpu_bytes": peak_gpu_memory(device),
    }


def run(args: argparse.Namespace, settings: Any) -> dict[str, Any]:
    from bench.request import request_spec
    from sorapi.activities.pipelines import load_pipeline
    from sorapi.domain.families import canonical_dtype

    specs = {name: request_spec(PROMPT, args, f"gpu-{name}", speed=name) for name in args.profiles.split(",")}
    first = next(iter(specs.values()))
    weights = Path(settings.model_dir) / first.weights
    started = time.perf_counter()
    pipe = load_pipeline(
        first.family,
        str(weights),
        device=args.device,
        dtype=canonical_dtype(settings.render_dtype or first.dtype),
        offload=settings.render_offload,
        vae_tiling=settings.render_vae_tiling,
        vae_slicing=settings.render_vae_slicing,
        attention_backend=settings.render_attention_backend,
        compile=settings.render_compile,
    )
    load_s = time.perf_counter() - started
    results: dict[str, Any] = {}
    for name, spec in specs.items():
        warm = _render(pipe, spec, settings, args.device)  # first call: compiles, autotunes
        timed = [_render(pipe, spec, settings, args.device) for _ in range(args.repeats)]
        best = min(timed, key=lambda r: r["seconds"])
        results[name] = {**best, "first_call_seconds": warm["seconds"]}
        print(
            f"{name:<9} {best['size']} {best['frames']}f {best['steps']} steps: {best['seconds']:.1f} s "
            f"({best['seconds_per_video_second']:.1f} s per video second), {best['transformer_passes']} passes, "
            f"cache {best['cache'] or 'none'}, compiled {'yes' if best['compiled'] else 'no'}",
            flush=True,
        )
    base = results.get("quality")
    if base:
        for row in results.values():
            row["ratio_to_quality"] = row["seconds"] / base["seconds"]
    return {"load_s": load_s, "profiles": results}


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    from sorapi.adapters.settings import settings_from_env

    settings = settings_from_env()
    problem = refusal(args.device, settings.model_dir)
    if problem:
        print(f"bench.gpu: refused: {problem}", file=sys.stderr)
        return REFUSED
    import torch

    result = run(args, settings)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"gpu-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    host = {
        "platform": platform.platform(),
        "gpu": torch.cuda.get_device_name(args.device),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
    }
    out.write_text(json.dumps({"args": vars(args), "host": host, **result}, indent=2))
    print(f"\nwritten to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
