"""Render-host activities: denoise on this GPU, encode, then upload from the same host.

The render worker holds pipelines warm across tasks, heartbeats progress every step (the API
reads it through `describe()`), and stops within one step when the workflow cancels. It has S3
credentials but no database: it returns small structs, never frames.
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
from pathlib import Path

import structlog
from minio import Minio
from temporalio import activity
from temporalio.exceptions import ApplicationError, CancelledError

from activities.encode import EncodedFile, encode_mp4
from activities.heartbeat import Heartbeater
from activities.pipelines import RenderInterrupted, frames_for, load_pipeline, run_pipeline
from sorapi import names
from sorapi import errors, storage
from sorapi.messages import LocalFile, RenderMeta, RenderProgress, RenderResult, RenderSpec, StoredObject, UploadInput
from sorapi.settings import Settings

log = structlog.get_logger()

DEV_SCALE = 10
"""Tiny dev models render at 1/DEV_SCALE of the requested size..."""
DEV_FPS = 8
"""...at this frame rate..."""
DEV_STEPS = 4
"""...with this many denoising steps, so a CPU finishes in seconds; RenderMeta records it all."""


SIZE_MULTIPLE = 32
"""Every supported family accepts multiples of 32 (Wan 16, LTX and Wan 2.2 32); 854 becomes 864."""


def _snap(value: float) -> int:
    return max(SIZE_MULTIPLE, int(value / SIZE_MULTIPLE + 0.5) * SIZE_MULTIPLE)


def effective_render(spec: RenderSpec, dev_model: bool) -> tuple[int, int, int, int]:
    """Width, height, fps and steps this host will really use for the spec (recorded in RenderMeta)."""
    if not dev_model:
        return _snap(spec.width), _snap(spec.height), spec.fps, spec.steps
    return _snap(spec.width / DEV_SCALE), _snap(spec.height / DEV_SCALE), DEV_FPS, DEV_STEPS


class RenderActivities:
    def __init__(self, settings: Settings, s3: Minio, host_queue: str) -> None:
        self._settings = settings
        self._s3 = s3
        self.host_queue = host_queue
        self._pipelines: dict[tuple[str, str | None], object] = {}
        self._load_lock = threading.Lock()

    def _weights_dir(self, spec: RenderSpec) -> str | None:
        if not self._settings.model_dir:
            return None
        path = Path(self._settings.model_dir) / spec.weights
        if not path.is_dir():
            raise ApplicationError(f"weights for {spec.model} not found at {path}", type=errors.RENDER_FAILED,
                                   non_retryable=True)
        return str(path)

    def _pipeline(self, spec: RenderSpec, weights_dir: str | None) -> object:
        """The warm pipeline for a model; only the first task of a model pays the load."""
        key = (spec.family, weights_dir)
        with self._load_lock:
            if key not in self._pipelines:
                self._pipelines[key] = load_pipeline(spec.family, weights_dir, device=self._settings.render_device)
            return self._pipelines[key]

    @activity.defn(name=names.RENDER_VIDEO)
    def render_video(self, spec: RenderSpec) -> RenderResult:
        structlog.contextvars.bind_contextvars(task_id=spec.task_id)
        info = activity.info()
        workdir = self._settings.resolved_render_dir / spec.task_id / f"attempt-{info.attempt}"
        workdir.mkdir(parents=True, exist_ok=True)
        try:
            with Heartbeater(RenderProgress(phase="loading")) as beat:
                return self._render(spec, workdir, beat)
        except RenderInterrupted:
            shutil.rmtree(workdir, ignore_errors=True)
            log.info("render cancelled", task_id=spec.task_id)
            raise CancelledError("render cancelled")
        except ApplicationError:
            shutil.rmtree(workdir, ignore_errors=True)
            raise
        except Exception as exc:  # a pipeline error or OOM is the task's failure, not a retry
            shutil.rmtree(workdir, ignore_errors=True)
            log.exception("render failed", task_id=spec.task_id)
            raise ApplicationError(f"render failed: {type(exc).__name__}: {exc}", type=errors.RENDER_FAILED,
                                   non_retryable=True) from exc
        finally:
            structlog.contextvars.unbind_contextvars("task_id")

    def _render(self, spec: RenderSpec, workdir: Path, beat: Heartbeater) -> RenderResult:
        weights_dir = self._weights_dir(spec)
        started = time.perf_counter()
        pipe = self._pipeline(spec, weights_dir)
        loaded = time.perf_counter()
        width, height, fps, steps = effective_render(spec, dev_model=weights_dir is None)
        num_frames = frames_for(spec.family, spec.duration_s, fps)
        log.info("render started", task_id=spec.task_id, width=width, height=height, frames=num_frames, steps=steps)

        def on_step(step: int, total: int) -> bool:
            beat.update(RenderProgress(phase="denoising", step=step, total=total))
            return activity.is_cancelled()

        frames = run_pipeline(pipe, prompt=spec.prompt, negative_prompt=spec.negative_prompt, width=width,
                              height=height, num_frames=num_frames, guidance_scale=spec.guidance_scale,
                              num_inference_steps=steps, seed=spec.seed, on_step=on_step)
        denoised = time.perf_counter()
        beat.update(RenderProgress(phase="encoding", step=steps, total=steps))
        files = [encode_mp4(frames, fps, workdir / "video.mp4")]
        encoded = time.perf_counter()
        meta = RenderMeta(
            model=spec.model, family=spec.family, width=width, height=height, num_frames=num_frames, fps=fps,
            steps=steps, seed=spec.seed, guidance_scale=spec.guidance_scale, requested_width=spec.width,
            requested_height=spec.height, dev_model=weights_dir is None, host=socket.gethostname(),
            load_s=round(loaded - started, 3), denoise_s=round(denoised - loaded, 3),
            encode_s=round(encoded - denoised, 3),
        )
        log.info("render finished", task_id=spec.task_id, denoise_s=meta.denoise_s, encode_s=meta.encode_s)
        return RenderResult(host_queue=self.host_queue, files=[_local(f) for f in files], meta=meta)

    @activity.defn(name=names.UPLOAD_OUTPUTS)
    def upload_outputs(self, arg: UploadInput) -> list[StoredObject]:
        """Put the rendered files under the task's prefix, then free the render host's disk."""
        stored = []
        for file in arg.files:
            path = Path(file.path)
            key = storage.object_key(arg.task_id, path.name)
            storage.put_file(self._s3, self._settings.s3_bucket, key, path, file.content_type)
            stored.append(StoredObject(format=file.format, key=key, content_type=file.content_type,
                                       size_bytes=file.size_bytes))
        shutil.rmtree(self._settings.resolved_render_dir / arg.task_id, ignore_errors=True)
        log.info("outputs uploaded", task_id=arg.task_id, keys=[s.key for s in stored])
        return stored


def _local(file: EncodedFile) -> LocalFile:
    return LocalFile(format=file.format, path=file.path, content_type=file.content_type, size_bytes=file.size_bytes)
