"""Resolution presets: the sizes a render may be asked for, by tier and orientation.

Clients may name a size (`1280x720`), a tier (`hd`, `720p`) and/or an orientation through
`aspect_ratio` (`vertical`, `9:16`, ...). The rule: `resolution` picks the tier (default hd) and
`aspect_ratio` the orientation; a WIDTHxHEIGHT size also names an orientation, used when no
`aspect_ratio` is sent. So `1920x1080` + `vertical` is 1080x1920: never a refusal for the pair.
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
    "sd": "sd",
    "480p": "sd",
    "hd": "hd",
    "720p": "hd",
    "fhd": "fhd",
    "full_hd": "fhd",
    "1080p": "fhd",
}
ORIENTATION_NAMES: dict[str, Orientation] = {
    "landscape": "landscape",
    "horizontal": "landscape",
    "16:9": "landscape",
    "vertical": "vertical",
    "portrait": "vertical",
    "9:16": "vertical",
    "square": "square",
    "1:1": "square",
}
RESOLUTION_VALUES = sorted(SIZE_NAMES) + sorted(TIER_NAMES)
ASPECT_RATIO_VALUES = sorted(ORIENTATION_NAMES)


class ResolutionError(ValueError):
    """A resolution or aspect ratio that is not one of the names above; `field` says which."""

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
        orientation = orientation or size_orientation  # an explicit aspect_ratio turns the size
    elif name in TIER_NAMES:
        tier = TIER_NAMES[name]
    else:
        raise ResolutionError("resolution", f"resolution must be one of {', '.join(RESOLUTION_VALUES)}")
    width, height = PRESETS[(tier, orientation or "landscape")]
    return width, height, tier
