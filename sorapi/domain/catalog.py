"""The catalog (models, pricing, plans) as data: `catalog.toml` decoded into typed structs."""

from __future__ import annotations

import functools
import math
import os
import tomllib
from pathlib import Path

import msgspec
from temporalio.common import Priority

from sorapi.adapters.settings import Settings, get_settings
from sorapi.domain.families import AUDIO_FAMILIES, DTYPES, FAMILIES, frames_for
from sorapi.domain.resolutions import SIZE_NAMES, Tier
from sorapi.domain.speed import DEFAULT_SPEED, SPEEDS, SpeedProfile

DEFAULT_CATALOG_PATH = Path(__file__).with_name("catalog.toml")


class Pricing(msgspec.Struct, frozen=True, kw_only=True):
    credits_per_second: dict[str, int]
    currency: str = "USD"


class Plan(msgspec.Struct, frozen=True, kw_only=True):
    """One plan's limits and prices; `catalog.toml` explains each field next to its value."""

    max_concurrent_jobs: int
    retention_hours: int
    commercial_use: bool
    starter_credits: int = 0
    included_credits: int = 0
    """Granted at the start of every monthly period (0: no monthly refresh)."""
    price_usd_month: float = 0.0
    overage_usd_per_credit: float = 0.0
    overage_limit_credits: int = 0
    """Credits a period may run past the balance, invoiced at `overage_usd_per_credit`; 0 = none."""
    rollover: bool = False
    rollover_cap_credits: int = 0
    max_api_keys: int = 1
    priority: int = 3
    dedicated_webhook_lane: bool = False
    audit_log: bool = False
    self_service_spend_limits: bool = False
    """Its accounts' admin-scope keys may set their own spend caps (`PUT /api/credits/spend-limits`)."""
    max_queue_seconds: int = 0
    """Default start deadline of its tasks (0: none; a request's `max_queue_seconds` overrides it)."""
    fairness_weight: float = 1.0
    """Share of the render fleet each of its accounts gets against others of the same priority."""

    @property
    def allows_overage(self) -> bool:
        return self.overage_limit_credits > 0


class ModelSpec(msgspec.Struct, frozen=True, kw_only=True):
    """One public model: which diffusers family renders it, from which weights, within which limits."""

    family: str
    """A pipeline family of `sorapi.domain.families` ("wan", "ltx" or "ltx2")."""
    weights: str
    """Diffusers-format directory, relative to SORAPI_MODEL_DIR (loaded with local_files_only)."""
    fps: int
    """Native frame rate: a request's duration becomes `fps × duration` frames, rounded per family."""
    max_duration_s: int
    default_steps: int
    dtype: str = "bfloat16"
    """bfloat16, float16 or float32; a render worker's SORAPI_RENDER_DTYPE overrides it."""
    max_frames: int = 0
    """Most frames one render may have (0: only `max_duration_s` limits it)."""
    resolutions: list[str] = []
    """Presets ("WxH") this model renders; empty: every preset."""
    credit_multiplier: float = 1.0
    aliases: list[str] = []
    image_conditioning: bool = False
    """It takes a first-frame image (image-to-video: `image_url` / `image`, `/v1/videos` `input_reference`)."""
    last_frame_conditioning: bool = False
    """It also takes a last-frame image (`last_frame_url` / `last_frame`); implies `image_conditioning`."""
    default_speed: str = DEFAULT_SPEED
    """The speed profile of a request that sends no `speed`."""
    speed_steps: dict[str, int] = {}
    """Steps of a profile on this model, where its `steps_fraction` of `default_steps` is not right
    (e.g. a distilled checkpoint's 4 steps)."""
    audio: bool = False
    """The model renders a soundtrack with the video (its family must make audio: LTX-2)."""
    audio_default: bool = False
    """Whether a request that sends no `audio` gets the soundtrack (only on a model with `audio`)."""
    audio_credit_multiplier: float = 1.0
    """Factor on the price of a render delivered with its soundtrack."""
    max_extended_duration_s: int = 0
    """Longest whole clip an extension of this model's videos may make, source plus added seconds
    (0: it extends none). Extending conditions on the source's last frames at frame indices, so it
    needs `last_frame_conditioning` (LTXConditionPipeline)."""

    def __post_init__(self) -> None:
        if self.default_speed not in SPEEDS:
            raise ValueError(f"default_speed must be one of {', '.join(SPEEDS)}, got {self.default_speed!r}")
        if any(name not in SPEEDS or steps < 1 for name, steps in self.speed_steps.items()):
            raise ValueError(f"speed_steps maps profiles ({', '.join(SPEEDS)}) to steps >= 1, got {self.speed_steps}")
        if self.family not in FAMILIES:
            raise ValueError(f"family must be one of {', '.join(FAMILIES)}, got {self.family!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if self.fps <= 0 or self.default_steps <= 0 or self.max_duration_s <= 0 or self.max_frames < 0:
            raise ValueError("fps, default_steps and max_duration_s must be positive, max_frames >= 0")
        unknown = [size for size in self.resolutions if size not in SIZE_NAMES]
        if unknown:
            raise ValueError(f"resolutions must be presets ({', '.join(SIZE_NAMES)}), got {unknown}")
        if self.audio and self.family not in AUDIO_FAMILIES:
            raise ValueError(f"audio needs a family that makes audio ({', '.join(sorted(AUDIO_FAMILIES))})")
        if self.audio_default and not self.audio:
            raise ValueError("audio_default needs audio = true")
        if self.audio_credit_multiplier <= 0:
            raise ValueError("audio_credit_multiplier must be positive")
        if self.max_extended_duration_s < 0 or (self.max_extended_duration_s and not self.last_frame_conditioning):
            raise ValueError("max_extended_duration_s must be >= 0, and > 0 only with last_frame_conditioning")

    def frames_for(self, duration_s: int) -> int:
        """Frames a render of `duration_s` seconds has: native fps, rounded as the family requires."""
        return frames_for(self.family, duration_s, self.fps)

    def renders(self, size: str) -> bool:
        return not self.resolutions or size in self.resolutions


class Catalog(msgspec.Struct, frozen=True):
    pricing: Pricing
    plans: dict[str, Plan]
    models: dict[str, ModelSpec]
    speed: dict[str, SpeedProfile] = {}
    """Speed profiles by name; one the file leaves out renders as `quality` does, at the model's price."""

    def __post_init__(self) -> None:
        unknown = [name for name in self.speed if name not in SPEEDS]
        if unknown:
            raise ValueError(f"speed profiles must be among {', '.join(SPEEDS)}, got {unknown}")

    def speed_profile(self, name: str) -> SpeedProfile:
        return self.speed.get(name) or SpeedProfile()

    def steps(self, model: str, speed: str) -> int:
        """Denoising steps of `model` under the profile `speed`."""
        spec = self.models[model]
        return spec.speed_steps.get(speed) or self.speed_profile(speed).steps(spec.default_steps)

    def model_names(self) -> list[str]:
        """Every accepted `model_version` value, canonical names first."""
        return [*self.models, *(a for m in self.models.values() for a in m.aliases)]

    def canonical_model(self, name: str) -> str | None:
        if name in self.models:
            return name
        return next((key for key, m in self.models.items() if name in m.aliases), None)

    def price(self, model: str, duration_s: int, tier: Tier, speed: str = DEFAULT_SPEED, audio: bool = False) -> int:
        """Credits a render costs, rounded up (float noise below 1e-9 is not a credit).

        Seconds × the tier's rate × the model's multiplier × the speed profile's (× the model's audio multiplier with
        audio).
        """
        spec = self.models[model]
        factor = self.speed_profile(speed).credit_multiplier * (spec.audio_credit_multiplier if audio else 1.0)
        return math.ceil(round(duration_s * self.pricing.credits_per_second[tier] * spec.credit_multiplier * factor, 9))


SETTING_OVERRIDES: dict[str, tuple[str, str]] = {
    "starter_credits": ("free", "starter_credits"),
    "pro_price": ("pro", "price_usd_month"),
    "pro_included_credits": ("pro", "included_credits"),
    "overage_rate": ("pro", "overage_usd_per_credit"),
    "scale_price": ("scale", "price_usd_month"),
    "scale_included_credits": ("scale", "included_credits"),
}
"""The seed's placeholders: setting name → (plan, field) it overrides when set."""


def load_catalog(path: str | os.PathLike[str] | None = None, settings: Settings | None = None) -> Catalog:
    """Decode a catalog file, then apply the placeholder settings that are set; errors name the key."""
    path = Path(path or os.environ.get("SORAPI_CATALOG_PATH") or DEFAULT_CATALOG_PATH)
    raw = tomllib.loads(path.read_text())
    for setting, (plan, field) in SETTING_OVERRIDES.items():
        value = getattr(settings, setting) if settings is not None else None
        if value is not None and plan in raw.get("plans", {}):
            raw["plans"][plan][field] = value
    return msgspec.convert(raw, Catalog)


@functools.cache
def get_catalog() -> Catalog:
    """The process-wide catalog: `catalog.toml` with the `SORAPI_*` placeholder overrides applied."""
    return load_catalog(settings=get_settings())


def task_priority(plan: Plan, account_id: str) -> Priority:
    """Temporal priority of a task's workflow, inherited by its renders.

    The plan's priority first, then fair shares between accounts (task-queue fairness), so one account's long line never
    stalls another account's task.
    """
    return Priority(priority_key=plan.priority, fairness_key=account_id[:64], fairness_weight=plan.fairness_weight)
