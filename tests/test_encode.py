"""Encoding frames to MP4/WebM/JPEG, checked by decoding the files back with PyAV."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

av = pytest.importorskip("av")

from sorapi.activities.encode import EncodedFile, encode_mp4, encode_webm, write_thumbnail  # noqa: E402

# Distinct flat colours per frame: survive lossy coding and reveal channel swaps or frame mix-ups.
COLOURS = np.array(
    [
        [200, 30, 30],
        [30, 200, 30],
        [30, 30, 200],
        [200, 200, 30],
        [30, 200, 200],
        [200, 30, 200],
        [120, 120, 120],
        [240, 240, 240],
        [20, 20, 20],
    ],
    dtype=np.uint8,
)


def make_frames(count: int = 9, height: int = 48, width: int = 64) -> np.ndarray:
    """``count`` flat-colour frames of the given size."""
    colours = COLOURS[np.arange(count) % len(COLOURS)]
    return np.ascontiguousarray(np.broadcast_to(colours[:, None, None, :], (count, height, width, 3)))


def decode(path: str) -> tuple[dict[str, object], list[np.ndarray]]:
    """Facts about the first video stream, and all its frames decoded to RGB."""
    with av.open(path) as container:
        stream = container.streams.video[0]
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
        facts = {
            "codec": stream.codec_context.name,
            "pix_fmt": stream.codec_context.pix_fmt,
            "width": stream.codec_context.width,
            "height": stream.codec_context.height,
            "rate": stream.average_rate,
        }
    return facts, frames


def assert_colours_match(decoded: list[np.ndarray], source: np.ndarray) -> None:
    """Each decoded frame keeps its source colour (RGB order, frame order)."""
    for got, want in zip(decoded, source, strict=True):
        assert np.abs(got.astype(int) - want.astype(int)).mean() < 12


def test_mp4_is_h264_yuv420p_with_faststart(tmp_path: Path) -> None:
    frames = make_frames()
    result = encode_mp4(frames, 16, tmp_path / "video.mp4")

    facts, decoded = decode(result.path)
    data = Path(result.path).read_bytes()

    assert facts["codec"] == "h264"
    assert facts["pix_fmt"] == "yuv420p"
    assert (facts["width"], facts["height"]) == (64, 48)
    assert facts["rate"] == 16
    assert len(decoded) == 9
    assert_colours_match(decoded, frames)
    assert 0 <= data.find(b"moov") < data.find(b"mdat"), "moov must precede mdat (+faststart)"
    assert result == EncodedFile(
        path=str(tmp_path / "video.mp4"),
        format="mp4",
        content_type="video/mp4",
        size_bytes=len(data),
        width=64,
        height=48,
        frames=9,
        fps=16,
    )


def test_mp4_pads_odd_dimensions_to_even(tmp_path: Path) -> None:
    result = encode_mp4(make_frames(5, 47, 63), 8, tmp_path / "odd.mp4")

    facts, decoded = decode(result.path)

    assert (result.width, result.height) == (64, 48)
    assert (facts["width"], facts["height"]) == (64, 48)
    assert len(decoded) == 5


def test_webm_is_vp9_with_all_frames(tmp_path: Path) -> None:
    frames = make_frames()
    result = encode_webm(frames, 24, tmp_path / "video.webm")

    facts, decoded = decode(result.path)

    assert facts["codec"] == "vp9"
    assert facts["pix_fmt"] == "yuv420p"
    assert (facts["width"], facts["height"]) == (64, 48)
    assert len(decoded) == 9
    assert_colours_match(decoded, frames)
    assert (result.format, result.content_type, result.frames, result.fps) == ("webm", "video/webm", 9, 24)
    assert result.size_bytes == Path(result.path).stat().st_size


def test_thumbnail_is_the_middle_frame_as_jpeg(tmp_path: Path) -> None:
    frames = make_frames(9, 47, 63)
    result = write_thumbnail(frames, tmp_path / "thumb.jpg")

    facts, decoded = decode(result.path)

    assert facts["codec"] == "mjpeg"
    assert len(decoded) == 1
    assert decoded[0].shape == (47, 63, 3)
    assert_colours_match(decoded, frames[4:5])
    assert (result.format, result.content_type, result.frames) == ("jpg", "image/jpeg", 1)
    assert (result.width, result.height) == (63, 47)
    assert Path(result.path).read_bytes()[:2] == b"\xff\xd8"


def test_output_is_written_atomically_into_new_directories(tmp_path: Path) -> None:
    target = tmp_path / "nested" / "dir" / "video.mp4"

    encode_mp4(make_frames(5), 8, target)

    assert sorted(p.name for p in target.parent.iterdir()) == ["video.mp4"]


@pytest.mark.parametrize(
    "frames",
    [
        make_frames().astype(np.float32),  # floats, not uint8
        make_frames()[..., :2],  # not RGB
        make_frames()[0],  # a single image, not a video
        make_frames(0),  # empty
    ],
)
def test_bad_frames_are_rejected(tmp_path: Path, frames: np.ndarray) -> None:
    with pytest.raises(ValueError):
        encode_mp4(frames, 16, tmp_path / "bad.mp4")
    with pytest.raises(ValueError):
        write_thumbnail(frames, tmp_path / "bad.jpg")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fps", [0, -5, 2.5])
def test_bad_fps_is_rejected(tmp_path: Path, fps: float) -> None:
    with pytest.raises(ValueError):
        encode_webm(make_frames(), fps, tmp_path / "bad.webm")  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []
