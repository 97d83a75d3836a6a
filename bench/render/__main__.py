"""Render worker benchmark: what a task costs on a render worker, against the bare work it wraps.

    python -m bench.render [--repeats 3] [--scale 4] [--steps 10] [--duration 4]

1. Worker overhead: the same request rendered (a) as a task through a real Temporal dev server
   and the real render worker (render activity + upload from the host's queue), and (b) as a
   bare in-process pipeline call + the same encodes, alternately, in the same run. The target is
   render activity / bare <= 1.10 (judged on the minimums: on a shared machine noise only adds).
2. Warm vs cold: the worker's first task of a model loads the pipeline; later ones must not.
3. Encoding: PyAV (our encoders) vs the ffmpeg binary from `imageio-ffmpeg`, same frames,
   same codec settings, frames/s.
4. Speed profiles (`--only profiles` runs this part alone): for quality, balanced and fast on one
   warm pipeline, the transformer forward passes, the blocks that computed and the denoise time, as
   ratios against quality (`bench/render/profiles.py`); fast must run <= 60% of quality's passes.

Without SORAPI_MODEL_DIR the tiny dev model renders (at 1/--scale of the size); on a GPU host
set SORAPI_MODEL_DIR and SORAPI_RENDER_* as for the worker and pass --scale 1. Prints a table and
writes JSON to bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import imageio_ffmpeg
import msgspec
import numpy as np
import torch
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from bench.render.profiles import print_table, profile_benchmark
from bench.render.workflow import BENCH_WORKFLOW, BenchRenderTask, BenchTaskInput
from bench.request import request_spec as planned_spec
from sorapi.activities.encode import encode_mp4, encode_webm, write_thumbnail
from sorapi.activities.pipelines import load_pipeline, run_pipeline, set_cpu_threads
from sorapi.activities.render import RenderActivities, effective_render, spec_arguments
from sorapi.adapters.converter import DATA_CONVERTER
from sorapi.adapters.logs import configure_logging
from sorapi.adapters.settings import Settings, settings_from_env
from sorapi.cli import servers
from sorapi.contracts import names
from sorapi.contracts.messages import RenderMeta, RenderSpec
from sorapi.domain.families import canonical_dtype
from sorapi.domain.speed import SPEEDS
from sorapi.workers.orchestrator import sandbox_runner
from sorapi.workers.render import create_workers, make_render_activities

RESULTS = Path(__file__).resolve().parents[1] / "results"
PROMPT = "A neon-lit city skyline at dusk with flying cars and dynamic lighting"
TARGET_RATIO = 1.10


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.render", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="sora-2-latest")
    parser.add_argument("--resolution", default="854x480")
    parser.add_argument("--duration", type=int, default=4)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--repeats", type=int, default=5, help="warm task / bare pairs")
    parser.add_argument("--scale", type=int, default=4, help="dev model: render at 1/scale of the size")
    parser.add_argument("--fps", type=int, default=8, help="dev model frame rate")
    parser.add_argument("--steps", type=int, default=10, help="dev model denoising steps")
    parser.add_argument("--device", default=None, help="render device (default: SORAPI_RENDER_DEVICE)")
    parser.add_argument("--encode-frames", type=int, default=48, help="720p frames for the encoder comparison")
    parser.add_argument("--only", choices=("all", "profiles"), default="all", help="run every part, or the profiles")
    parser.add_argument("--profile-repeats", type=int, default=3, help="timed runs of each speed profile")
    return parser.parse_args()


def bench_settings(args: argparse.Namespace, data_dir: Path, s3_port: int) -> Settings:
    """The worker's own settings (SORAPI_* honoured), on a private data dir, S3 and queue."""
    base = settings_from_env()
    return msgspec.structs.replace(
        base,
        data_dir=str(data_dir),
        render_dir="",
        s3_endpoint=f"127.0.0.1:{s3_port}",
        render_queue="bench-render",
        dev_scale=args.scale,
        dev_fps=args.fps,
        dev_steps=args.steps,
        dev_step_delay_s=0.0,
        render_device=args.device or base.render_device,
        log_level="warning",
    )


def request_spec(args: argparse.Namespace, task_id: str, speed: str | None = None) -> RenderSpec:
    """The render the API would hand the worker for this bench's request (same planning code)."""
    return planned_spec(PROMPT, args, task_id, speed)


def bare_render(renders: RenderActivities, settings: Settings, spec: RenderSpec, workdir: Path) -> float:
    """The work a task wraps, called directly: warm pipeline, denoise + decode, the same four files."""
    started = time.perf_counter()
    weights_dir = str(Path(settings.model_dir) / spec.weights) if settings.model_dir else None
    pipe = renders.pipeline(spec.family, weights_dir, canonical_dtype(settings.render_dtype or spec.dtype))
    shape = effective_render(spec, settings, dev_model=weights_dir is None)
    frames = run_pipeline(pipe, **spec_arguments(spec, shape))
    encode_mp4(frames, shape.fps, workdir / "video.mp4")
    encode_webm(frames, shape.fps, workdir / "video.webm")
    write_thumbnail(frames, workdir / "thumbnail.jpg")
    (workdir / "metadata.json").write_bytes(msgspec.json.encode({"seed": spec.seed, "frames": shape.num_frames}))
    return time.perf_counter() - started


async def render_activity_seconds(client: Client, workflow_id: str) -> float:
    """Scheduled → completed of the task's render activity, from the workflow history."""
    scheduled: dict[int, datetime] = {}
    async for event in client.get_workflow_handle(workflow_id).fetch_history_events():
        if event.HasField("activity_task_scheduled_event_attributes"):
            if event.activity_task_scheduled_event_attributes.activity_type.name == names.RENDER_VIDEO:
                scheduled[event.event_id] = event.event_time.ToDatetime()
        elif event.HasField("activity_task_completed_event_attributes"):
            attrs = event.activity_task_completed_event_attributes
            if attrs.scheduled_event_id in scheduled:
                return (event.event_time.ToDatetime() - scheduled[attrs.scheduled_event_id]).total_seconds()
    raise RuntimeError(f"no completed render activity in {workflow_id}")


async def worker_task(client: Client, args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    """One task through Temporal and the render worker; wall time seen by the client."""
    task_id = f"bench-{uuid.uuid4().hex[:12]}"
    started = time.perf_counter()
    meta: RenderMeta = await client.execute_workflow(
        BENCH_WORKFLOW,
        BenchTaskInput(render=request_spec(args, task_id), render_queue=settings.render_queue),
        id=task_id,
        task_queue="bench-orchestration",
        result_type=RenderMeta,
    )
    wall = time.perf_counter() - started
    return {
        "task_s": wall,
        "render_activity_s": await render_activity_seconds(client, task_id),
        "load_s": meta.load_s,
        "denoise_s": meta.denoise_s,
        "encode_s": meta.encode_s,
        "shape": f"{meta.width}x{meta.height}x{meta.num_frames}f/{meta.steps} steps",
        "dev_model": meta.dev_model,
    }


def wait_for_s3(settings: Settings, timeout_s: float = 30) -> RenderActivities:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return make_render_activities(settings)
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


async def worker_benchmark(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    s3_port = servers.free_port()
    probe = bench_settings(args, root / "data", s3_port)
    weed = servers.start_seaweedfs(
        root / "s3", s3_port, probe.s3_access_key, probe.s3_secret_key, log_path=root / "seaweedfs.log"
    )
    try:
        settings = probe
        renders = wait_for_s3(settings)
        async with await WorkflowEnvironment.start_local(
            dev_server_existing_path=servers.venv_binary("temporal"), data_converter=DATA_CONVERTER
        ) as env:
            render_worker, upload_worker = create_workers(env.client, settings, renders)
            orchestration = Worker(
                env.client,
                task_queue="bench-orchestration",
                workflows=[BenchRenderTask],
                workflow_runner=sandbox_runner(),
            )
            async with render_worker, upload_worker, orchestration:
                cold = await worker_task(env.client, args, settings)
                warm, bare = [], []
                for i in range(args.repeats):
                    warm.append(await worker_task(env.client, args, settings))
                    workdir = root / f"bare-{i}"
                    workdir.mkdir()
                    bare.append(
                        await asyncio.to_thread(
                            bare_render, renders, settings, request_spec(args, f"bare-{i}"), workdir
                        )
                    )
    finally:
        weed.stop()
    return {"cold": cold, "warm": warm, "bare_s": bare}


def synthetic_frames(count: int, width: int = 1280, height: int = 720) -> np.ndarray:
    """Smooth moving colour fields: compressible like real footage, unlike random noise."""
    t = np.arange(count, dtype=np.float32)[:, None, None]
    y = np.arange(height, dtype=np.float32)[None, :, None]
    x = np.arange(width, dtype=np.float32)[None, None, :]
    channels = [128 + 100 * np.sin((x + 6 * t) / 53 + k) * np.cos((y - 3 * t) / 41 - k) for k in (0.0, 1.3, 2.6)]
    return np.ascontiguousarray(np.stack(channels, axis=-1).clip(0, 255).astype(np.uint8))


FFMPEG_ARGS = {
    "mp4": ["-c:v", "libx264", "-crf", "20", "-preset", "medium", "-pix_fmt", "yuv420p", "-movflags", "+faststart"],
    "webm": [
        "-c:v",
        "libvpx-vp9",
        "-crf",
        "32",
        "-b:v",
        "0",
        "-deadline",
        "good",
        "-cpu-used",
        "4",
        "-row-mt",
        "1",
        "-pix_fmt",
        "yuv420p",
    ],
}
"""The ffmpeg flags equal to activities.encode's PyAV options, codec by codec."""


def encode_benchmark(count: int, root: Path) -> dict[str, Any]:
    frames = synthetic_frames(count)
    _, height, width, _ = frames.shape
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    results: dict[str, Any] = {"frames": count, "size": f"{width}x{height}", "ffmpeg": ffmpeg}
    for fmt, encode in (("mp4", encode_mp4), ("webm", encode_webm)):
        started = time.perf_counter()
        pyav = encode(frames, 24, root / f"pyav.{fmt}")
        pyav_s = time.perf_counter() - started
        out = root / f"ffmpeg.{fmt}"
        started = time.perf_counter()
        subprocess.run(
            [
                ffmpeg,
                "-hide_banner",
                "-loglevel",
                "error",
                "-y",
                "-f",
                "rawvideo",
                "-pix_fmt",
                "rgb24",
                "-s",
                f"{width}x{height}",
                "-r",
                "24",
                "-i",
                "-",
                *FFMPEG_ARGS[fmt],
                str(out),
            ],
            input=frames.tobytes(),
            check=True,
        )
        ffmpeg_s = time.perf_counter() - started
        results[fmt] = {
            "pyav_fps": count / pyav_s,
            "ffmpeg_fps": count / ffmpeg_s,
            "pyav_bytes": pyav.size_bytes,
            "ffmpeg_bytes": out.stat().st_size,
        }
    return results


def speed_profiles(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    """The profile table on the worker's own pipeline (no Temporal, no S3: only the denoising differs)."""
    settings = bench_settings(args, root / "data", servers.free_port())
    specs = {name: request_spec(args, f"profile-{name}", speed=name) for name in SPEEDS}
    spec = specs["quality"]
    weights_dir = str(Path(settings.model_dir) / spec.weights) if settings.model_dir else None
    set_cpu_threads(settings.render_device, settings.render_cpu_threads, dev_models=weights_dir is None)
    pipe = load_pipeline(
        spec.family,
        weights_dir,
        device=settings.render_device,
        dtype=canonical_dtype(settings.render_dtype or spec.dtype),
        offload=settings.render_offload,
        attention_backend=settings.render_attention_backend,
        compile=settings.render_compile,
    )
    result = profile_benchmark(pipe, specs, settings, weights_dir is None, args.profile_repeats)
    shape = effective_render(spec, settings, dev_model=weights_dir is None)
    label = f"{args.model} {shape.width}x{shape.height}x{shape.num_frames}f" + (
        " (tiny dev model)" if weights_dir is None else ""
    )
    print_table(result, label)
    return {"shape": label, **result}


def report(work: dict[str, Any], encode: dict[str, Any]) -> dict[str, Any]:
    """Medians, and minimums (the least disturbed run: this box is shared, so noise only adds time)."""
    warm, bare = work["warm"], work["bare_s"]
    task = [w["task_s"] for w in warm]
    activity = [w["render_activity_s"] for w in warm]
    overhead = [w["render_activity_s"] - w["load_s"] - w["denoise_s"] - w["encode_s"] for w in warm]
    summary = {
        "shape": work["cold"]["shape"],
        "dev_model": work["cold"]["dev_model"],
        "bare_s": {"median": statistics.median(bare), "min": min(bare)},
        "render_activity_s": {"median": statistics.median(activity), "min": min(activity)},
        "task_s": {"median": statistics.median(task), "min": min(task)},
        "activity_overhead_s": {"median": statistics.median(overhead), "max": max(overhead)},
        "ratio_render_activity_vs_bare": {
            "median": statistics.median(activity) / statistics.median(bare),
            "min": min(activity) / min(bare),
        },
        "ratio_task_vs_bare": {
            "median": statistics.median(task) / statistics.median(bare),
            "min": min(task) / min(bare),
        },
        "target_ratio": TARGET_RATIO,
        "cold_task_s": work["cold"]["task_s"],
        "cold_load_s": work["cold"]["load_s"],
        "warm_load_s": max(w["load_s"] for w in warm),
    }
    summary["meets_target"] = summary["ratio_render_activity_vs_bare"]["min"] <= TARGET_RATIO

    def pair(key: str) -> str:
        return f"median {summary[key]['median']:.3f} s, min {summary[key]['min']:.3f} s"

    def ratio(key: str) -> str:
        return f"{summary[key]['median']:.3f}x median, {summary[key]['min']:.3f}x min"

    rows = [
        (
            "request",
            summary["shape"]
            + (" (tiny dev model)" if summary["dev_model"] else "")
            + f", {len(warm)} warm runs of each",
        ),
        ("bare pipeline call + encode", pair("bare_s")),
        ("worker: render activity (warm)", pair("render_activity_s")),
        ("  ratio to bare (target <= 1.10x)", ratio("ratio_render_activity_vs_bare")),
        (
            "  time outside load/denoise/encode",
            f"median {summary['activity_overhead_s']['median']:.3f} s, "
            f"max {summary['activity_overhead_s']['max']:.3f} s",
        ),
        ("worker: whole task incl. upload", pair("task_s")),
        ("  ratio to bare", ratio("ratio_task_vs_bare")),
        (
            "cold task (first of the model)",
            f"{summary['cold_task_s']:.3f} s, pipeline load {summary['cold_load_s']:.3f} s",
        ),
        ("warm tasks", f"median {summary['task_s']['median']:.3f} s, pipeline load <= {summary['warm_load_s']:.3f} s"),
    ]
    for fmt, codec in (("mp4", "H.264"), ("webm", "VP9")):
        e = encode[fmt]
        rows.append(
            (
                f"{codec} encode, {encode['frames']} frames {encode['size']}",
                f"PyAV {e['pyav_fps']:.1f} fps vs ffmpeg {e['ffmpeg_fps']:.1f} fps "
                f"({e['pyav_fps'] / e['ffmpeg_fps']:.2f}x); {e['pyav_bytes']} vs {e['ffmpeg_bytes']} bytes",
            )
        )
    width = max(len(name) for name, _ in rows)
    print("\n".join(f"{name:<{width}}  {value}" for name, value in rows))
    return summary


def main() -> None:
    args = parse_args()
    configure_logging("warning", json=False, process="bench")
    work: dict[str, Any] = {}
    encode: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="sorapi-bench-") as tmp:
        root = Path(tmp)
        profiles = speed_profiles(args, root)
        if args.only == "all":
            work = asyncio.run(worker_benchmark(args, root))
            encode = encode_benchmark(args.encode_frames, root)
    summary = report(work, encode) if args.only == "all" else {}
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS / f"render-{stamp}.json"
    out.write_text(
        json.dumps(
            {
                "args": vars(args),
                "summary": summary,
                "profiles": profiles,
                "worker": work or None,
                "encode": encode or None,
                "host": {
                    "platform": platform.platform(),
                    "cpus": os.cpu_count(),
                    "torch": torch.__version__,
                    "torch_threads": torch.get_num_threads(),
                    "cuda": torch.cuda.is_available(),
                },
            },
            indent=2,
        )
    )
    print(f"\nwritten to {out}")


if __name__ == "__main__":
    main()
