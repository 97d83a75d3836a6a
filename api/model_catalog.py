"""`GET /api/models`: the models a request may name, and what each takes (images, limits, price factor)."""

from __future__ import annotations

from litestar import Controller, get

from sorapi.api.auth import NEEDS_READ, Principal
from sorapi.api.openapi import error_responses
from sorapi.api.ratelimit import RATE_STATUS
from sorapi.api.state import Resources
from sorapi.contracts.model_schemas import ModelList, model_list


class ModelsController(Controller):
    path = "/api/models"
    tags = ["models"]

    @get("/", opt=RATE_STATUS | NEEDS_READ, responses=error_responses(401, 429))
    async def list_models(self, principal: Principal, resources: Resources) -> ModelList:
        """Every model of the catalog.

        Its names, family, limits, price factor, and whether it takes a first-frame image (`image_conditioning`) and a
        last-frame image (`last_frame_conditioning`).
        """
        del principal  # authenticated and scope-checked by its dependency; every account sees the same catalog
        return model_list(resources.catalog)
