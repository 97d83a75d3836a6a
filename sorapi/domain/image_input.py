"""Conditioning images (image-to-video): what is accepted, how it is decoded, how it is fitted.

Accepted: PNG, JPEG or WEBP, recognised by content (Pillow's signature check, never the file name or
a declared type), at most `MAX_BYTES` and `MAX_SIDE`×`MAX_SIDE` pixels. The size is read from the
header before any pixel is decoded, and Pillow's decompression-bomb guard stays on (raised to an
error) while the whole image is decoded once to prove it is not truncated or corrupt.

The render host fits an accepted image to the output size by one rule (`fit`): scale it, keeping
its proportions, until it covers the whole frame, then crop the centre. Nothing is stretched and no
border is added; an image of another aspect ratio loses the edges of its longer side.

Pure data and Pillow: the API checks with it, the render host fits with it; no network, no S3.
"""

from __future__ import annotations

import hashlib
import io
import warnings

import msgspec
from PIL import Image, ImageOps, UnidentifiedImageError

MAX_BYTES = 20 * 1024 * 1024
"""Largest accepted file: 20 MiB."""
MAX_SIDE = 4096
"""Largest accepted width and height, in pixels."""
FORMATS = {"PNG": ("image/png", "png"), "JPEG": ("image/jpeg", "jpg"), "WEBP": ("image/webp", "webp")}
"""Pillow format → (content type, file extension) of every accepted format."""

FIRST_FRAME = "first_frame"
LAST_FRAME = "last_frame"
ROLES = (FIRST_FRAME, LAST_FRAME)
"""What an input image conditions: the video's first frame or its last frame."""


class ImageRejected(ValueError):
    """The bytes are not an acceptable image; the message says why (safe to show the client)."""


class InputImage(msgspec.Struct, frozen=True, kw_only=True):
    """An accepted image: its bytes and what was read from them."""

    data: bytes
    sha256: str
    content_type: str
    extension: str
    width: int
    height: int


def accept(data: bytes) -> InputImage:
    """The image `data` holds, checked as the module docstring says; `ImageRejected` otherwise."""
    if len(data) > MAX_BYTES:
        raise ImageRejected(f"the image is {len(data)} bytes; at most {MAX_BYTES} bytes (20 MiB) are accepted")
    if not data:
        raise ImageRejected("the image is empty")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)  # a bomb is refused, not decoded
        try:
            with Image.open(io.BytesIO(data), formats=list(FORMATS)) as image:
                kind, (width, height) = image.format, image.size
                if width > MAX_SIDE or height > MAX_SIDE:
                    raise ImageRejected(
                        f"the image is {width}x{height} pixels; at most {MAX_SIDE}x{MAX_SIDE} are accepted"
                    )
                image.load()  # every pixel once: a truncated or corrupt file is refused here, not on the GPU
        except UnidentifiedImageError:
            raise ImageRejected("not a PNG, JPEG or WEBP image (the format is read from the content)") from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise ImageRejected("the image decodes to too many pixels") from None
        except (OSError, SyntaxError, ValueError) as exc:
            if isinstance(exc, ImageRejected):
                raise
            raise ImageRejected("the image is truncated or corrupt") from None
    content_type, extension = FORMATS[str(kind)]
    return InputImage(
        data=data,
        sha256=hashlib.sha256(data).hexdigest(),
        content_type=content_type,
        extension=extension,
        width=width,
        height=height,
    )


def open_rgb(data: bytes) -> Image.Image:
    """An accepted image's pixels as RGB, upright (its EXIF orientation applied, as a viewer shows it)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(io.BytesIO(data), formats=list(FORMATS)) as image:
            return ImageOps.exif_transpose(image).convert("RGB")


def fit(image: Image.Image, width: int, height: int) -> Image.Image:
    """Scale to cover `width`×`height` keeping the proportions, then crop the centre (the documented rule)."""
    scale = max(width / image.width, height / image.height)
    scaled_w, scaled_h = max(width, round(image.width * scale)), max(height, round(image.height * scale))
    scaled = image.resize((scaled_w, scaled_h), Image.Resampling.LANCZOS)
    left, top = (scaled_w - width) // 2, (scaled_h - height) // 2
    return scaled.crop((left, top, left + width, top + height))


def object_name(role: str, extension: str) -> str:
    """The file name an input is stored under, inside its task's S3 prefix (`tasks/<id>/inputs/…`)."""
    return f"inputs/{role}.{extension}"
