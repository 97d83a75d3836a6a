"""Resolution presets: the sizes a render may be asked for, by tier and orientation.

Clients may name a size (`1280x720`), a tier (`hd`, `720p`) and/or an orientation through
`aspect_ratio` (`vertical`, `9:16`, ...). Everything resolves to one preset or a clear error.
"""

from __future__ import annotations

from typing import Literal

Tier = Literal["sd", "hd", "fhd"]
Orientation = Literal["landscape", "vertical", "square"]

PRESETS: dict[tuple[Tier, Orientation], tuple[int, int]] = {
    ("sd", "landscape"): (854, 480),
    ("hd", "landscape"): (1280, 720),
    ("fhd", "landscape"): (1920, 1080),
    ("sd", "vertical"): (480, 854),
    ("hd", "vertical"): (720, 1280),
    ("fhd", "vertical"): (1080, 1920),
    ("sd", "square"): (480, 480),
    ("hd", "square"): (720, 720),
    ("fhd", "square"): (1080, 1080),
}
SIZE_NAMES = {f"{w}x{h}": key for key, (w, h) in PRESETS.items()}
TIER_NAMES: dict[str, Tier] = {
    "sd": "sd", "480p": "sd",
    "hd": "hd", "720p": "hd",
    "fhd": "fhd", "full_hd": "fhd", "1080p": "fhd",
}
ORIENTATION_NAMES: dict[str, Orientation] = {
    "landscape": "landscape", "horizontal": "landscape", "16:9": "landscape",
    "vertical": "vertical", "portrait": "vertical", "9:16": "vertical",
    "square": "square", "1:1": "square",
}
RESOLUTION_VALUES = sorted(SIZE_NAMES) + sorted(TIER_NAMES)
ASPECT_RATIO_VALUES = sorted(ORIENTATION_NAMES)


class ResolutionError(ValueError):
    """A resolution/aspect-ratio pair that names no preset; `field` says which input is wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def resolve(resolution: str | None, aspect_ratio: str | None) -> tuple[int, int, Tier]:
    """Width, height and pricing tier for a request; `None` means the field was not sent."""
    orientation = None
    if aspect_ratio is not None:
        orientation = ORIENTATION_NAMES.get(aspect_ratio.strip().lower())
        if orientation is None:
            raise ResolutionError("aspect_ratio", f"aspect_ratio must be one of {', '.join(ASPECT_RATIO_VALUES)}")
    name = (resolution or "1280x720").strip().lower()
    if name in SIZE_NAMES:
        tier, size_orientation = SIZE_NAMES[name]
        if resolution is not None and orientation not in (None, size_orientation):
            raise ResolutionError(
                "aspect_ratio", f"aspect_ratio {aspect_ratio!r} contradicts resolution {resolution!r}"
            )
        orientation = orientation or size_orientation
    elif name in TIER_NAMES:
        tier = TIER_NAMES[name]
    else:
        raise ResolutionError("resolution", f"resolution must be one of {', '.join(RESOLUTION_VALUES)}")
    width, height = PRESETS[(tier, orientation or "landscape")]
    return width, height, tier
