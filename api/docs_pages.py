"""The HTML pages under /docs: Swagger UI at /docs and ReDoc at /docs/redoc.

Both readers come from the `openapi-ui-bundles` wheel (Swagger UI 5.17, ReDoc 2) and are served by the
app itself, so the pages work with no internet. Swagger UI 5 is needed: 3.x cannot render the
OpenAPI 3.1 document Litestar emits. The pages fetch the document from its route rather than
inlining it, so no spec text ever lands inside a <script>.
"""

from __future__ import annotations

import functools
import html
import json
import mimetypes
from pathlib import Path
from typing import Any

from litestar import HttpMethod, Request, Response, route
from litestar.datastructures import CacheControlHeader
from litestar.exceptions import NotFoundException
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.plugins import OpenAPIRenderPlugin
from openapi_ui_bundles import redoc, swagger_ui

DOCS_ASSETS = "/docs-assets"
SWAGGER_ASSETS = f"{DOCS_ASSETS}/swagger-ui"
REDOC_ASSETS = f"{DOCS_ASSETS}/redoc"

ASSETS: dict[str, Path] = {
    "swagger-ui/swagger-ui-bundle.js": swagger_ui.static_path / "swagger-ui-bundle.js",
    "swagger-ui/swagger-ui.css": swagger_ui.static_path / "swagger-ui.css",
    "swagger-ui/favicon-32x32.png": swagger_ui.static_path / "favicon-32x32.png",
    "redoc/redoc.standalone.js": redoc.static_path / "redoc.standalone.js",
    "redoc/logo-mini.svg": redoc.static_path / "logo-mini.svg",
}
"""Only what the pages load: the wheel's demo index.html pages would fetch a petstore from the internet."""

REDOC_CDN_LOGO = b"https://cdn.redoc.ly/redoc/logo-mini.svg"
"""ReDoc's one outside reference (the Redocly logo in its menu); the wheel ships the file, so we point at it."""


@functools.cache
def _asset_bytes(name: str) -> bytes:
    """Read once; in ReDoc's bundle the logo URL is swapped for the local copy."""
    return ASSETS[name].read_bytes().replace(REDOC_CDN_LOGO, f"{REDOC_ASSETS}/logo-mini.svg".encode())


@route(
    f"{DOCS_ASSETS}/{{bundle:str}}/{{name:str}}",
    http_method=[HttpMethod.GET, HttpMethod.HEAD],
    include_in_schema=False,
    sync_to_thread=False,
    cache_control=CacheControlHeader(max_age=3600),
)
def docs_asset(bundle: str, name: str) -> Response[bytes]:
    """A vendored Swagger UI / ReDoc file, read once from the installed wheel."""
    if f"{bundle}/{name}" not in ASSETS:
        raise NotFoundException(f"no docs asset {bundle}/{name}")
    return Response(_asset_bytes(f"{bundle}/{name}"), media_type=mimetypes.guess_type(name)[0])


def docs_assets() -> HTTPRouteHandler:
    """The files /docs and /docs/redoc load, served by the app itself: no CDN, works offline."""
    return docs_asset


# charset first: without it Chromium guesses one and the Swagger UI bundle fails to parse.
_HEAD = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="icon" type="image/png" href="{swagger}/favicon-32x32.png">
<style>body {{ margin: 0; }}</style>
"""


def _page(schema: dict[str, Any], title: str, body: str) -> bytes:
    head = _HEAD.format(title=html.escape(f"{schema['info']['title']} {title}"), swagger=SWAGGER_ASSETS)
    return (head + body + "</html>\n").encode()


def _document_url(request: Request[Any, Any, Any]) -> str:
    """/docs/openapi.json as a JS string literal."""
    return json.dumps(OpenAPIRenderPlugin.get_openapi_json_route(request))


class SwaggerPage(OpenAPIRenderPlugin):
    """Swagger UI 5; `deepLinking` opens (expands and scrolls to) the `#/tag/operationId` operation."""

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        return _page(
            openapi_schema,
            "API reference",
            f"""<link rel="stylesheet" href="{SWAGGER_ASSETS}/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{SWAGGER_ASSETS}/swagger-ui-bundle.js"></script>
<script>
window.ui = SwaggerUIBundle({{
  url: {_document_url(request)},
  dom_id: "#swagger-ui",
  deepLinking: true,
  onComplete: () => {{ document.body.dataset.rendered = "swagger-ui"; }},
}});
</script>
</body>
""",
        )


class RedocPage(OpenAPIRenderPlugin):
    """ReDoc: the same document as one long, readable page (no Google Fonts: it stays offline)."""

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        return _page(
            openapi_schema,
            "API reference (ReDoc)",
            f"""</head>
<body>
<div id="redoc"></div>
<script src="{REDOC_ASSETS}/redoc.standalone.js"></script>
<script>
Redoc.init({_document_url(request)}, {{}}, document.getElementById("redoc"), (error) => {{
  document.body.dataset.rendered = error ? "error" : "redoc";
}});
</script>
</body>
""",
        )


def render_plugins() -> list[OpenAPIRenderPlugin]:
    """/docs (Swagger UI, the default) and /docs/redoc."""
    return [SwaggerPage(path="/"), RedocPage(path="/redoc")]
