"""The catalog (models, pricing, plans) as data: `catalog.toml` decoded into typed structs."""

from __future__ import annotations

import functools
import math
import os
import tomllib
from pathlib import Path

import msgspec

from sorapi.resolutions import Tier

DEFAULT_CATALOG_PATH = Path(__file__).with_name("catalog.toml")


class Pricing(msgspec.Struct, frozen=True):
    credits_per_second: dict[str, int]


class Plan(msgspec.Struct, frozen=True, kw_only=True):
    max_concurrent_jobs: int
    retention_hours: int
    commercial_use: bool
    starter_credits: int = 0
    included_credits: int = 0
    price_usd_month: float = 0.0
    overage_usd_per_credit: float = 0.0


class ModelSpec(msgspec.Struct, frozen=True, kw_only=True):
    family: str
    weights: str
    fps: int
    max_duration_s: int
    default_steps: int
    credit_multiplier: float = 1.0
    aliases: list[str] = []


class Catalog(msgspec.Struct, frozen=True):
    pricing: Pricing
    plans: dict[str, Plan]
    models: dict[str, ModelSpec]

    def model_names(self) -> list[str]:
        """Every accepted `model_version` value, canonical names first."""
        return [*self.models, *(a for m in self.models.values() for a in m.aliases)]

    def canonical_model(self, name: str) -> str | None:
        if name in self.models:
            return name
        return next((key for key, m in self.models.items() if name in m.aliases), None)

    def price(self, model: str, duration_s: int, tier: Tier) -> int:
        """Credits a render costs: seconds × the tier's rate × the model's multiplier, rounded up."""
        spec = self.models[model]
        return math.ceil(duration_s * self.pricing.credits_per_second[tier] * spec.credit_multiplier)


def load_catalog(path: str | os.PathLike[str] | None = None) -> Catalog:
    """Decode a catalog file; errors name the offending key."""
    path = Path(path or os.environ.get("SORAPI_CATALOG_PATH") or DEFAULT_CATALOG_PATH)
    return msgspec.convert(tomllib.loads(path.read_text()), Catalog)


@functools.cache
def get_catalog() -> Catalog:
    return load_catalog()
