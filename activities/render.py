"""Render-host activities: denoise on this GPU, encode, then upload from the same host.

The render worker holds pipelines warm across tasks, heartbeats progress every step (the API
reads it through `describe()`), and stops within one step when the workflow cancels. A step that
hangs stops the heartbeats, so a stuck GPU fails its attempt after one heartbeat timeout. It has S3
credentials but no database: it returns small structs, never frames.

Cancellation is cooperative (`no_thread_cancel_exception`): the SDK's default would raise
CancelledError at an arbitrary bytecode of the render thread, possibly inside diffusers or our
own cleanup. Instead every step callback asks `activity.is_cancelled()` and the pipeline leaves
its loop at the step boundary, so the warm pipeline stays consistent for the next task.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import structlog
from minio import Minio
from temporalio import activity
from temporalio.exceptions import ApplicationError, CancelledError

from sorapi.activities import stitching
from sorapi.activities.conditioning import read_image
from sorapi.activities.encode import AUDIO_RATE, EncodedFile, Soundtrack, encode_mp4, encode_webm, write_thumbnail
from sorapi.activities.heartbeat import Heartbeater
from sorapi.activities.pipelines import (
    Clip,
    RenderInterrupted,
    frames_for,
    is_out_of_memory,
    load_pipeline,
    peak_gpu_memory,
    release_memory,
    render_clip,
    reset_peak_memory,
)
from sorapi.activities.progress_webhooks import ProgressWebhooks
from sorapi.activities.speed import speed_effects
from sorapi.adapters import metrics, storage
from sorapi.adapters.settings import Settings
from sorapi.contracts import errors, names
from sorapi.contracts.messages import (
    LocalFile,
    RenderMeta,
    RenderProgress,
    RenderResult,
    RenderSpec,
    StoredObject,
    UploadInput,
)
from sorapi.domain.families import canonical_dtype
from sorapi.domain.image_input import FIRST_FRAME, LAST_FRAME
from sorapi.domain.speed import scaled_steps

log = structlog.get_logger()

SIZE_MULTIPLE = 32
"""Every supported family accepts multiples of 32 (Wan 16, LTX and Wan 2.2 32); 854 becomes 864."""
SCRATCH_TTL_S = 6 * 3600
"""Scratch files older than this were never uploaded: the longest render is far shorter."""
WORKER_SHUTDOWN = "worker_shutdown"
"""Retryable failure type: the render stopped because its worker is shutting down, not the task."""


def _snap(value: float) -> int:
    return max(SIZE_MULTIPLE, int(value / SIZE_MULTIPLE + 0.5) * SIZE_MULTIPLE)


class EffectiveRender(msgspec.Struct, frozen=True, kw_only=True):
    """What this host really renders for a spec; the tiny dev model renders smaller, faster."""

    width: int
    height: int
    fps: int
    num_frames: int
    steps: int


def effective_render(spec: RenderSpec, settings: Settings, dev_model: bool) -> EffectiveRender:
    """Size, fps, frames and steps for the spec on this host (all recorded in RenderMeta)."""
    if dev_model:
        fps = settings.dev_fps
        return EffectiveRender(
            width=_snap(spec.width / settings.dev_scale),
            height=_snap(spec.height / settings.dev_scale),
            fps=fps,
            num_frames=frames_for(spec.family, spec.duration_s, fps),
            steps=scaled_steps(settings.dev_steps, spec.speed.steps_fraction),  # the profile's share of them
        )
    return EffectiveRender(
        width=_snap(spec.width),
        height=_snap(spec.height),
        fps=spec.fps,
        num_frames=spec.num_frames or frames_for(spec.family, spec.duration_s, spec.fps),
        steps=spec.steps,
    )


def spec_arguments(spec: RenderSpec, shape: EffectiveRender) -> dict[str, Any]:
    """The pipeline's arguments for `spec` at the size, frames and steps this host renders (`shape`)."""
    return {
        "prompt": spec.prompt,
        "negative_prompt": spec.negative_prompt,
        "width": shape.width,
        "height": shape.height,
        "num_frames": shape.num_frames,
        "guidance_scale": spec.guidance_scale,
        "num_inference_steps": shape.steps,
        "seed": spec.seed,
        "fps": shape.fps,
        "speed": spec.speed,
    }


def _heartbeat_interval(timeout: timedelta | None) -> float:
    """Beat well inside the heartbeat timeout (a quarter of it), and at least every 5 s."""
    return min(5.0, timeout.total_seconds() / 4) if timeout else 5.0


class RenderActivities:
    def __init__(self, settings: Settings, s3: Minio, host_queue: str) -> None:
        self._settings = settings
        self._s3 = s3
        self.host_queue = host_queue
        self._pipelines: dict[tuple[str, str | None, str], Any] = {}
        self._load_lock = threading.Lock()
        self._awaiting_upload: set[str] = set()
        self._models: dict[str, str] = {}
        """Model of each render awaiting its upload here: the upload phase's metric label."""
        """Tasks rendered here whose files wait on this host for their upload (a drain waits for them)."""
        self.progress_webhooks: ProgressWebhooks | None = None
        """Starts the `progress` webhooks of tasks that asked for them (set by the worker, which has the client)."""

    def awaiting_upload(self) -> int:
        return len(self._awaiting_upload)

    def _weights_dir(self, spec: RenderSpec) -> str | None:
        if not self._settings.model_dir:
            return None
        path = Path(self._settings.model_dir) / spec.weights
        if not path.is_dir():
            raise ApplicationError(
                f"weights for {spec.model} not found at {path}", type=errors.RENDER_FAILED, non_retryable=True
            )
        return str(path)

    def _dtype(self, spec: RenderSpec) -> str:
        return canonical_dtype(self._settings.render_dtype or spec.dtype)

    def pipeline(self, family: str, weights_dir: str | None, dtype: str) -> Any:
        """The warm pipeline for these weights; only the first task of a model pays the load."""
        key = (family, weights_dir, dtype)
        with self._load_lock:
            if key not in self._pipelines:
                s = self._settings
                self._pipelines[key] = load_pipeline(
                    family,
                    weights_dir,
                    device=s.render_device,
                    dtype=dtype,
                    offload=s.render_offload,
                    vae_tiling=s.render_vae_tiling,
                    vae_slicing=s.render_vae_slicing,
                    attention_backend=s.render_attention_backend,
                    compile=s.render_compile,
                )
                log.info(
                    "pipeline loaded",
                    family=family,
                    weights=weights_dir or "tiny dev model",
                    dtype=dtype,
                    device=s.render_device,
                )
            return self._pipelines[key]

    @activity.defn(name=names.RENDER_VIDEO, no_thread_cancel_exception=True)
    def render_video(self, spec: RenderSpec) -> RenderResult:
        structlog.contextvars.bind_contextvars(task_id=spec.task_id)
        info = activity.info()
        workdir = self._settings.resolved_render_dir / spec.task_id / f"attempt-{info.attempt}"
        workdir.mkdir(parents=True, exist_ok=True)
        try:
            with Heartbeater(RenderProgress(phase="loading"), _heartbeat_interval(info.heartbeat_timeout)) as beat:
                return self._render(spec, workdir, beat)
        except RenderInterrupted as stop:
            shutil.rmtree(workdir, ignore_errors=True)
            details = activity.cancellation_details()
            if details is not None and details.worker_shutdown and not details.cancel_requested:
                log.warning("render stopped: worker shutting down", task_id=spec.task_id, at=str(stop))
                raise ApplicationError(
                    "the render worker shut down; retrying elsewhere", type=WORKER_SHUTDOWN
                ) from None
            log.info("render cancelled", task_id=spec.task_id, at=str(stop), attempt=info.attempt)
            raise CancelledError("render cancelled") from None
        except ApplicationError:
            shutil.rmtree(workdir, ignore_errors=True)
            raise
        except Exception as exc:  # a pipeline error or OOM is the task's failure, not a retry
            shutil.rmtree(workdir, ignore_errors=True)
            log.exception("render failed", task_id=spec.task_id)
            raise ApplicationError(_failure_message(exc, spec), type=errors.RENDER_FAILED, non_retryable=True) from exc
        finally:
            structlog.contextvars.unbind_contextvars("task_id")

    def _render(self, spec: RenderSpec, workdir: Path, beat: Heartbeater) -> RenderResult:
        started = time.perf_counter()
        reset_peak_memory(self._settings.render_device)
        weights_dir = self._weights_dir(spec)
        dtype = self._dtype(spec)
        pipe = self.pipeline(spec.family, weights_dir, dtype)
        loaded = time.perf_counter()
        _stop_if_cancelled("after loading")
        plan = effective_render(spec, self._settings, dev_model=weights_dir is None)
        log.info(
            "render started",
            task_id=spec.task_id,
            width=plan.width,
            height=plan.height,
            frames=plan.num_frames,
            steps=plan.steps,
            pid=os.getpid(),
        )
        # How long one more denoising step may take before the heartbeats stop, so a hung GPU fails its
        # attempt after this plus one heartbeat timeout rather than the render timeout. Counted from the
        # first finished step: the first one alone absorbs once-per-shape costs (compile, autotune).
        stall_s = self._settings.render_step_timeout_s or None
        announce = self.progress_webhooks.for_render(spec) if self.progress_webhooks else None

        def on_step(step: int, total: int) -> bool:
            progress = RenderProgress(phase="denoising", step=step, total=total)
            beat.update(progress, stall_s=stall_s if step < total else None)  # after the last step comes the decode
            if announce is not None:
                announce(progress)
            if self._settings.dev_step_delay_s:
                time.sleep(self._settings.dev_step_delay_s)
            return activity.is_cancelled()  # a draining worker finishes its render (cancelled after the grace)

        images = self._input_images(spec, plan.width, plan.height)  # image-to-video: fitted to this render's size
        arguments = spec_arguments(spec, plan)
        source = self._source_frames(spec, plan.width, plan.height)  # an extension: the clip it continues
        if source is not None:
            arguments["num_frames"] = stitching.frames_to_render(plan.num_frames, spec.family)
            images = {"video": stitching.conditioning_frames(source, spec.family), "frame_conditions": True}
        clip = render_clip(pipe, **arguments, on_step=on_step, **images)
        frames, soundtrack = clip.frames, _soundtrack(spec, clip)
        if source is not None:
            frames = stitching.stitch(source, frames, spec.family)
        denoised = time.perf_counter()
        effects = speed_effects(pipe, spec.speed)
        _stop_if_cancelled("after decoding")
        beat.update(RenderProgress(phase="encoding", step=plan.steps, total=plan.steps))
        files = [
            encode_mp4(frames, plan.fps, workdir / "video.mp4", audio=soundtrack),
            encode_webm(frames, plan.fps, workdir / "video.webm", audio=soundtrack),
            write_thumbnail(frames, workdir / "thumbnail.jpg"),
        ]
        encoded = time.perf_counter()
        _stop_if_cancelled("after encoding")
        meta = RenderMeta(
            model=spec.model,
            family=spec.family,
            width=plan.width,
            height=plan.height,
            num_frames=len(frames),
            fps=plan.fps,
            steps=plan.steps,
            seed=spec.seed,
            guidance_scale=spec.guidance_scale,
            requested_width=spec.width,
            requested_height=spec.height,
            dev_model=weights_dir is None,
            host=socket.gethostname(),
            load_s=round(loaded - started, 3),
            denoise_s=round(denoised - loaded, 3),
            encode_s=round(encoded - denoised, 3),
            duration_s=spec.duration_s,
            dtype="float32" if weights_dir is None else dtype,
            device=self._settings.render_device,
            speed=spec.speed.name,
            cache=effects.cache,
            compiled=effects.compiled,
            conditioning=[role for role, key in _INPUT_ROLES if getattr(spec, key)],
            source_frames=0 if source is None else len(source),
            **_audio_meta(soundtrack),
        )
        files.append(_write_metadata(meta, workdir / "metadata.json"))
        log.info(
            "render finished",
            task_id=spec.task_id,
            load_s=meta.load_s,
            denoise_s=meta.denoise_s,
            encode_s=meta.encode_s,
        )
        _observe_render(meta, self._settings.render_device)
        self._models[spec.task_id] = spec.model
        self._awaiting_upload.add(spec.task_id)
        return RenderResult(host_queue=self.host_queue, files=[_local(f) for f in files], meta=meta)

    def _input_images(self, spec: RenderSpec, width: int, height: int) -> dict[str, Any]:
        """`render_clip`'s image arguments: the task's stored input images, each fitted to the render."""
        if not spec.image_key:
            return {}
        bucket = self._settings.s3_bucket
        images: dict[str, Any] = {
            role: read_image(self._s3, bucket, getattr(spec, key), width, height)
            for role, key in _IMAGE_ROLES
            if getattr(spec, key)
        }
        return {
            "image": images.get(FIRST_FRAME),
            "last_frame": images.get(LAST_FRAME),
            "frame_conditions": spec.frame_conditions,
        }

    def _source_frames(self, spec: RenderSpec, width: int, height: int) -> np.ndarray | None:
        """An extension's source frames at this render's size; None for any other task."""
        if not spec.source_video_key:
            return None
        return stitching.read_source(self._s3, self._settings.s3_bucket, spec.source_video_key, width, height)

    @activity.defn(name=names.UPLOAD_OUTPUTS)
    def upload_outputs(self, arg: UploadInput) -> list[StoredObject]:
        """Put the rendered files under the task's prefix, then free the render host's disk.

        It beats all along (a put may outlast the heartbeat timeout), so only a dead host goes silent.
        """
        stored = []
        started = time.perf_counter()
        progress = RenderProgress(phase="uploading", step=0, total=len(arg.files))
        with Heartbeater(progress, _heartbeat_interval(activity.info().heartbeat_timeout)) as beat:
            for file in arg.files:
                path = Path(file.path)
                key = storage.object_key(arg.task_id, path.name)
                storage.put_file(self._s3, self._settings.s3_bucket, key, path, file.content_type)
                stored.append(
                    StoredObject(
                        format=file.format, key=key, content_type=file.content_type, size_bytes=file.size_bytes
                    )
                )
                beat.update(RenderProgress(phase="uploading", step=len(stored), total=len(arg.files)))
        shutil.rmtree(self._settings.resolved_render_dir / arg.task_id, ignore_errors=True)
        self._awaiting_upload.discard(arg.task_id)
        model = self._models.pop(arg.task_id, "")
        metrics.RENDER_PHASE_SECONDS.labels(model=model, phase="upload").observe(time.perf_counter() - started)
        log.info("outputs uploaded", task_id=arg.task_id, keys=[s.key for s in stored], pid=os.getpid())
        return stored


_IMAGE_ROLES = ((FIRST_FRAME, "image_key"), (LAST_FRAME, "last_frame_key"))
"""Each input image's role and the RenderSpec field holding its S3 key."""
_INPUT_ROLES = (*_IMAGE_ROLES, ("source_video", "source_video_key"))
"""Every input's role (RenderMeta.conditioning) and its key's field."""


def _observe_render(meta: RenderMeta, device: str) -> None:
    """Phase timings, and the peak GPU memory on CUDA (none on the CPU: RSS is the process's, not the render's)."""
    for phase, seconds in (("load", meta.load_s), ("denoise", meta.denoise_s), ("encode", meta.encode_s)):
        metrics.RENDER_PHASE_SECONDS.labels(model=meta.model, phase=phase).observe(seconds)
    peak = peak_gpu_memory(device)
    if peak is not None:
        metrics.RENDER_PEAK_GPU_MEMORY.labels(model=meta.model, device=device).observe(peak)


def sweep_scratch(render_dir: Path, older_than_s: float = SCRATCH_TTL_S) -> int:
    """Delete task scratch dirs nobody uploaded; returns how many were removed.

    Those of a task cancelled between render and upload, or of a host that died mid-render. Run at worker start.
    """
    if not render_dir.is_dir():
        return 0
    cutoff = time.time() - older_than_s
    stale = [d for d in render_dir.iterdir() if d.is_dir() and d.stat().st_mtime < cutoff]
    for directory in stale:
        shutil.rmtree(directory, ignore_errors=True)
    return len(stale)


def _soundtrack(spec: RenderSpec, clip: Clip) -> Soundtrack | None:
    """The audio to deliver: the clip's when the request asked for it (a model without one is an error)."""
    if not spec.audio:
        return None
    if clip.soundtrack is None:
        raise ValueError(f"{spec.model} rendered no audio: its pipeline ({spec.family}) makes none")
    return clip.soundtrack


def _audio_meta(soundtrack: Soundtrack | None) -> dict[str, Any]:
    """RenderMeta's audio fields: delivered rate and channels, and the vocoder's own rate."""
    if soundtrack is None:
        return {}
    return {
        "audio": True,
        "audio_sample_rate": AUDIO_RATE,
        "audio_channels": soundtrack.channels,
        "audio_source_rate": soundtrack.sample_rate,
    }


def _stop_if_cancelled(where: str) -> None:
    """Between phases (load, decode) there is no step callback: look for a cancel here too."""
    if activity.is_cancelled():
        raise RenderInterrupted(f"stopped {where}")


def _failure_message(exc: Exception, spec: RenderSpec) -> str:
    """A message a client can act on; the traceback stays in the worker's log."""
    if is_out_of_memory(exc):
        release_memory()
        return (
            f"the render ran out of accelerator memory at {spec.width}x{spec.height} for {spec.duration_s} s; "
            "try a lower resolution or a shorter duration"
        )
    return f"render failed: {type(exc).__name__}: {exc}"


def _write_metadata(meta: RenderMeta, path: Path) -> EncodedFile:
    """The render's facts (model, seed, steps, fps, frames, timings) next to the video, as JSON."""
    partial = path.with_name(f".{path.name}.part")
    partial.write_bytes(msgspec.json.format(msgspec.json.encode(meta), indent=2))
    os.replace(partial, path)
    return EncodedFile(
        path=str(path),
        format="json",
        content_type="application/json",
        size_bytes=path.stat().st_size,
        width=meta.width,
        height=meta.height,
        frames=meta.num_frames,
        fps=meta.fps,
    )


def _local(file: EncodedFile) -> LocalFile:
    return LocalFile(format=file.format, path=file.path, content_type=file.content_type, size_bytes=file.size_bytes)
