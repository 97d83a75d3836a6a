"""Encode rendered frames into deliverable files (MP4/H.264, WebM/VP9, JPEG thumbnail).

The soundtrack goes in when the render has one (AAC in the MP4, Opus in the WebM, 48 kHz).

Files are written next to their destination under a hidden ``.part`` name and renamed at the
end, so an upload step never picks up a half-written file.
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Iterator
from contextlib import contextmanager
from fractions import Fraction
from typing import Any

import av
import msgspec
import numpy as np
from PIL import Image


class EncodedFile(msgspec.Struct, frozen=True):
    """What was written, as the upload step and the job record need it."""

    path: str
    format: str
    content_type: str
    size_bytes: int
    width: int
    height: int
    frames: int
    fps: int


class Soundtrack(msgspec.Struct, frozen=True):
    """A render's audio: float32 samples in [-1, 1], shaped (channels, samples), at ``sample_rate``."""

    samples: np.ndarray
    sample_rate: int

    @property
    def channels(self) -> int:
        return int(self.samples.shape[0])


AUDIO_RATE = 48000
"""Delivered audio rate: Opus runs at 48 kHz, and AAC is resampled to the same so both files match."""
_AUDIO_CODECS = {"mp4": ("aac", {"b": "128k"}), "webm": ("libopus", {"b": "96k"})}

# Browser-friendly defaults; x264's CRF 20 is visually clean for short clips.
_MP4_CODEC_OPTIONS = {"crf": "20", "preset": "medium"}
# VP9 in constant-quality mode (b:v 0 + crf), with row multithreading and a sane speed.
_WEBM_CODEC_OPTIONS = {"crf": "32", "b": "0", "deadline": "good", "cpu-used": "4", "row-mt": "1"}


def _check_frames(frames: np.ndarray) -> np.ndarray:
    """Frames must be a non-empty uint8 (F, H, W, 3) array, as run_pipeline returns."""
    array = np.asarray(frames)
    if array.dtype != np.uint8 or array.ndim != 4 or array.shape[-1] != 3:
        raise ValueError(f"frames must be a uint8 array of shape (F, H, W, 3), got {array.dtype} {array.shape}")
    if 0 in array.shape:
        raise ValueError(f"frames must be non-empty, got shape {array.shape}")
    return array


def _check_fps(fps: int) -> None:
    """A container time base of 1/fps needs a positive integer."""
    if not isinstance(fps, (int, np.integer)) or isinstance(fps, bool) or fps <= 0:
        raise ValueError(f"fps must be a positive integer, got {fps!r}")


def _even(frames: np.ndarray) -> np.ndarray:
    """Pad odd dimensions by one replicated pixel: yuv420p subsamples chroma 2x2."""
    _, height, width, _ = frames.shape
    pad = ((0, 0), (0, height % 2), (0, width % 2), (0, 0))
    return np.pad(frames, pad, mode="edge") if any(p[1] for p in pad) else frames


def _check_soundtrack(audio: Soundtrack) -> np.ndarray:
    """Samples must be a non-empty float (channels, samples) array, mono or stereo, at a positive rate."""
    array = np.asarray(audio.samples)
    if array.ndim != 2 or array.shape[0] not in (1, 2) or array.shape[1] == 0 or array.dtype.kind != "f":
        raise ValueError(f"audio must be float samples shaped (1 or 2, N), got {array.dtype} {array.shape}")
    if audio.sample_rate <= 0:
        raise ValueError(f"audio sample_rate must be positive, got {audio.sample_rate}")
    return array.astype(np.float32)


def _fit_to(samples: np.ndarray, count: int) -> np.ndarray:
    """Exactly ``count`` samples: the tail trimmed, or padded with silence, so the track ends with the video."""
    if samples.shape[1] >= count:
        return np.ascontiguousarray(samples[:, :count])
    return np.ascontiguousarray(np.pad(samples, ((0, 0), (0, count - samples.shape[1]))))


def _add_audio(container: Any, audio: Soundtrack, codec: str, options: dict[str, str]) -> Any:
    """An audio stream of ``codec`` at 48 kHz with ``audio``'s layout (added before anything is muxed)."""
    stream = container.add_stream(codec, rate=AUDIO_RATE, options=dict(options))
    stream.layout = "mono" if audio.channels == 1 else "stereo"
    return stream


def _mux_audio(container: Any, stream: Any, audio: Soundtrack, seconds: float) -> None:
    """Encode ``audio`` into ``stream``, lasting ``seconds`` (the video's duration).

    PyAV's encoder resamples the one input frame to its own rate and sample format and cuts it
    into the codec's frame size (1024 samples for AAC, 960 for Opus).
    """
    samples = _fit_to(_check_soundtrack(audio), round(seconds * audio.sample_rate))
    frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout=stream.layout.name)
    frame.sample_rate = audio.sample_rate
    frame.time_base = Fraction(1, audio.sample_rate)
    frame.pts = 0
    container.mux(stream.encode(frame))
    container.mux(stream.encode(None))


@contextmanager
def _atomic_path(path: pathlib.Path) -> Iterator[pathlib.Path]:
    """Yield a temporary sibling of ``path``; rename it into place only on success."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.part")
    try:
        yield partial
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def _encode_video(
    frames: np.ndarray,
    fps: int,
    path: pathlib.Path,
    *,
    container_format: str,
    codec: str,
    codec_options: dict[str, str],
    container_options: dict[str, str] | None = None,
    audio: Soundtrack | None = None,
) -> tuple[int, int]:
    """Encode RGB frames as yuv420p with ``codec`` (and ``audio`` as the container's audio codec).

    Returns the encoded (width, height).
    """
    frames = _even(_check_frames(frames))
    _check_fps(fps)
    if audio is not None:
        _check_soundtrack(audio)
    _, height, width, _ = frames.shape
    with (
        _atomic_path(path) as partial,
        av.open(
            str(partial), mode="w", format=container_format, container_options=container_options or {}
        ) as container,
    ):
        stream: av.VideoStream = container.add_stream(  # type: ignore[assignment]  # a video codec's stream
            codec, rate=int(fps), options=dict(codec_options)
        )
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        sound = _add_audio(container, audio, *_AUDIO_CODECS[container_format]) if audio is not None else None
        for index, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
        if audio is not None:
            _mux_audio(container, sound, audio, len(frames) / fps)
    return width, height


def _describe(
    path: pathlib.Path, fmt: str, content_type: str, width: int, height: int, frames: int, fps: int
) -> EncodedFile:
    """EncodedFile for a file that now exists at ``path``."""
    path = pathlib.Path(path)
    return EncodedFile(
        path=str(path),
        format=fmt,
        content_type=content_type,
        size_bytes=path.stat().st_size,
        width=width,
        height=height,
        frames=frames,
        fps=int(fps),
    )


def encode_mp4(frames: np.ndarray, fps: int, path: pathlib.Path, audio: Soundtrack | None = None) -> EncodedFile:
    """H.264/yuv420p MP4 with the moov atom first (+faststart).

    Players can then start streaming before the download finishes. Odd sizes are padded by one pixel. ``audio`` becomes
    an AAC track.
    """
    width, height = _encode_video(
        frames,
        fps,
        path,
        container_format="mp4",
        codec="libx264",
        codec_options=_MP4_CODEC_OPTIONS,
        container_options={"movflags": "+faststart"},
        audio=audio,
    )
    return _describe(path, "mp4", "video/mp4", width, height, len(frames), fps)


def encode_webm(frames: np.ndarray, fps: int, path: pathlib.Path, audio: Soundtrack | None = None) -> EncodedFile:
    """VP9/yuv420p WebM, the royalty-free alternative delivery format. ``audio`` becomes an Opus track."""
    width, height = _encode_video(
        frames,
        fps,
        path,
        container_format="webm",
        codec="libvpx-vp9",
        codec_options=_WEBM_CODEC_OPTIONS,
        audio=audio,
    )
    return _describe(path, "webm", "video/webm", width, height, len(frames), fps)


def write_thumbnail(frames: np.ndarray, path: pathlib.Path) -> EncodedFile:
    """JPEG of the middle frame: more representative than the first, which is often a fade-in.

    ``fps`` is 0 in the result since a still image has none.
    """
    array = _check_frames(frames)
    middle = array[len(array) // 2]
    with _atomic_path(path) as partial:
        Image.fromarray(middle).save(partial, format="JPEG", quality=90)
    height, width = middle.shape[:2]
    return _describe(path, "jpg", "image/jpeg", width, height, 1, 0)
