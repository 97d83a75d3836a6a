"""The render a bench asks for, planned by the API's own code: one place for `bench.render` and `bench.gpu`."""

from __future__ import annotations

import argparse

from sorapi.contracts.messages import RenderSpec
from sorapi.contracts.schemas import GenerateRequest
from sorapi.domain.catalog import get_catalog
from sorapi.domain.planning import plan, render_spec


def request_spec(prompt: str, args: argparse.Namespace, task_id: str, speed: str | None = None) -> RenderSpec:
    """The RenderSpec the API would hand the worker for `prompt`.

    It has the bench's model, duration, resolution and seed (`args`), at the `speed` profile (None: the model's
    default).
    """
    catalog = get_catalog()
    planned = plan(
        GenerateRequest(
            prompt=prompt,
            model_version=args.model,
            duration=args.duration,
            resolution=args.resolution,
            seed=args.seed,
            speed=speed,
        ),
        catalog,
    )
    if isinstance(planned, list):
        raise SystemExit(f"invalid bench request: {[(d.field, d.message) for d in planned]}")
    return render_spec(task_id, planned.request, catalog)
