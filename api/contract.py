"""The parts of the published schema that the catalog and the settings decide at startup.

Which models and plans exist, the envelope of each model (its longest clip, the resolution tiers it renders), and where
callbacks may point.

A request is checked against its model's envelope before any credit is held; the schema states
the same envelope as JSON Schema conditions (`allOf` of `if`/`then`), so that whatever the schema
accepts the API accepts, and client generators and fuzzers know the model is part of the rule.
"""

from __future__ import annotations

from typing import Any

from sorapi.contracts.schemas import MAX_DURATION_S
from sorapi.domain.catalog import Catalog, ModelSpec
from sorapi.domain.resolutions import ASPECT_RATIO_VALUES, RESOLUTION_VALUES, resolve

JsonSchema = dict[str, Any]


def longest_clip(model: ModelSpec) -> int:
    """The most whole seconds the model renders (its seconds limit, and its frame limit at its fps)."""
    fits = [
        s
        for s in range(1, MAX_DURATION_S + 1)
        if s <= model.max_duration_s and (not model.max_frames or model.frames_for(s) <= model.max_frames)
    ]
    return max(fits, default=0)


def resolutions_rendered(model: ModelSpec, aspect_ratios: list[str | None]) -> list[str]:
    """The `resolution` values whose preset the model renders with every one of `aspect_ratios`.

    Catalog models list whole tiers (every orientation of a size), so this is exact; a model that
    listed single orientations would get a stricter schema than the API, never a looser one.
    """

    def renders(value: str, aspect: str | None) -> bool:
        width, height, _ = resolve(value, aspect)
        return model.renders(f"{width}x{height}")

    return [value for value in RESOLUTION_VALUES if all(renders(value, aspect) for aspect in aspect_ratios)]


def _condition(names: list[str], field: str, is_default: bool) -> JsonSchema:
    """`if` the request names one of `names` (or names none, for the default model)."""
    condition: JsonSchema = {"properties": {field: {"enum": names}}}
    return condition if is_default else {**condition, "required": [field]}


def _names(catalog: Catalog, model: str) -> list[str]:
    return [model, *catalog.models[model].aliases]


def generate_rules(catalog: Catalog, default_model: str, default_duration: int) -> list[JsonSchema]:
    """`GenerateRequest`'s conditions, per model.

    `duration` and `resolution` within the model's envelope, and `audio` only where the model renders a soundtrack.
    """
    rules = []
    every_aspect: list[str | None] = [None, *ASPECT_RATIO_VALUES]
    for model, spec in catalog.models.items():
        then: JsonSchema = {"properties": {}, "required": []}
        longest = longest_clip(spec)
        if longest < MAX_DURATION_S:
            then["properties"]["duration"] = {"maximum": longest}
            if longest < default_duration:
                then["required"].append("duration")
        sizes = resolutions_rendered(spec, every_aspect)
        if len(sizes) < len(RESOLUTION_VALUES):
            then["properties"]["resolution"] = {"enum": sizes}
            if not spec.renders(_default_size(None)):
                then["required"].append("resolution")
        if not spec.audio:  # `audio: true` is for the models that render a soundtrack
            then["properties"]["audio"] = {"enum": [False, None]}
        if then["properties"]:
            rules.append(
                {
                    "if": _condition(_names(catalog, model), "model_version", default_model in _names(catalog, model)),
                    "then": _without_empty(then),
                }
            )
    return rules


def create_video_rules(
    catalog: Catalog, default_model: str, default_seconds: int, default_size: str
) -> list[JsonSchema]:
    """`CreateVideo`'s conditions: per model, `seconds` and `size` within its envelope."""
    rules = []
    for model, spec in catalog.models.items():
        then: JsonSchema = {"properties": {}, "required": []}
        longest = longest_clip(spec)
        if longest < MAX_DURATION_S:
            then["properties"]["seconds"] = {
                "anyOf": [
                    {"type": "string", "enum": [str(s) for s in range(1, longest + 1)]},
                    {"type": "integer", "maximum": longest},
                ]
            }
            if longest < default_seconds:
                then["required"].append("seconds")
        sizes = resolutions_rendered(spec, [None])
        if len(sizes) < len(RESOLUTION_VALUES):
            then["properties"]["size"] = {"enum": sizes}
            if default_size not in sizes:
                then["required"].append("size")
        if then["properties"]:
            rules.append(
                {
                    "if": _condition(_names(catalog, model), "model", default_model in _names(catalog, model)),
                    "then": _without_empty(then),
                }
            )
    return rules


def _default_size(aspect: str | None) -> str:
    width, height, _ = resolve(None, aspect)
    return f"{width}x{height}"


def _without_empty(schema: JsonSchema) -> JsonSchema:
    return {key: value for key, value in schema.items() if value}


_LABEL = "[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_LAST_LABEL = "[A-Za-z_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
"""DNS labels as sorapi.adapters.netguard reads them; the last one is not numeric (that would be an IPv4 address)."""
_ANY_PORT = "(?:[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"


def callback_url_schema(allow_http: bool, ports: frozenset[int]) -> JsonSchema:
    """What `callback_url` may be, as two patterns.

    A URL on a DNS name (two labels at least: single names are local) with an allowed port, and a host of at most 253
    characters.

    A subset of what the API accepts (which also takes public IP literals and internationalised
    names): whatever matches is accepted, unless its name resolves to a non-public address.
    """
    scheme = "[Hh][Tt][Tt][Pp][Ss]?" if allow_http else "[Hh][Tt][Tt][Pp][Ss]"
    if allow_http:  # the development switch lifts the port rule
        port = f"(?::{_ANY_PORT})?"
    else:
        listed = "|".join(str(p) for p in sorted(ports))
        port = f"(?::(?:{listed}))?" if 443 in ports else f":(?:{listed})"
    url = f"^{scheme}://(?:{_LABEL}\\.)+{_LAST_LABEL}\\.?{port}(?:[/?#][!-~]*)?$"
    return {"allOf": [{"pattern": url}, {"pattern": "^[A-Za-z]+://[^/?#:]{1,253}(?:[/?#:]|$)"}]}


def publish_callbacks(schemas: dict[str, JsonSchema], allow_http: bool, ports: frozenset[int]) -> None:
    """Write the settings' callback rule into `GenerateRequest.callback_url`, in place."""
    callback = schemas["GenerateRequest"]["properties"]["callback_url"]
    callback.pop("pattern", None)  # the NUL rule the decoder enforces: the URL patterns exclude NUL too
    callback.update(callback_url_schema(allow_http, ports))


def publish_catalog(schemas: dict[str, JsonSchema], paths: dict[str, Any], catalog: Catalog) -> None:
    """Write the catalog's plans, model names and envelopes into the rendered document, in place."""
    for request in ("CreateAccountRequest", "PlanChange"):
        schemas[request]["properties"]["plan"]["enum"] = list(catalog.plans)
    names = catalog.model_names()
    generate = schemas["GenerateRequest"]
    generate["properties"]["model_version"]["enum"] = names
    generate["allOf"] = generate_rules(
        catalog, generate["properties"]["model_version"]["default"], generate["properties"]["duration"]["default"]
    )
    create = schemas["CreateVideo"]
    create["properties"]["model"]["enum"] = names
    create["allOf"] = create_video_rules(
        catalog,
        create["properties"]["model"]["default"],
        int(create["properties"]["seconds"]["default"]),
        create["properties"]["size"]["default"],
    )
    for parameter in paths["/api/credits/estimate"]["get"]["parameters"]:
        if parameter["name"] == "model_version":
            parameter["schema"]["enum"] = names
