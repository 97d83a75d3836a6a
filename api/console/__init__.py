"""The web console at `/` and `/console/...`: server-rendered pages and one small plain script.

No build step and nothing from a CDN: the HTML is written here, the script and style sheet are
files of this package (`api/console/static/`), served by the app, so the console works offline.
The pages are not API operations (they stay out of the OpenAPI document) and take no credential:
the browser keeps the pasted API key in `sessionStorage` and the script sends it as a Bearer
header to the public API, exactly as any client does. Every number on a page comes from the API.
"""

from __future__ import annotations

import functools
import hashlib
import html
import mimetypes
from dataclasses import dataclass
from pathlib import Path

import msgspec
from litestar import HttpMethod, Response, get, route
from litestar.datastructures import CacheControlHeader
from litestar.exceptions import NotFoundException
from litestar.handlers import HTTPRouteHandler

from sorapi.api.state import Resources
from sorapi.contracts import schemas, status
from sorapi.domain.catalog import Catalog
from sorapi.domain.resolutions import PRESETS

STATIC = Path(__file__).parent / "static"
ASSETS = ("console.js", "console.css")
"""The only files served from STATIC."""
ASSET_PREFIX = "/console/assets"

SECURITY_HEADERS = {
    # Scripts and styles only from the app; media, thumbnails and downloads come from the S3 store's
    # presigned URLs, whose host is the operator's (`SORAPI_S3_PUBLIC_ENDPOINT`).
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data: http: https:; media-src 'self' blob: http: https:; "
    "connect-src 'self' http: https:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


@dataclass(frozen=True)
class Page:
    name: str
    title: str
    nav: str
    """The navigation entry that is current on this page."""


NAV = (
    ("/console", "New video"),
    ("/console/tasks", "Tasks"),
    ("/console/credits", "Credits"),
    ("/console/webhooks", "Webhooks"),
    ("/console/keys", "Keys"),
)


@functools.cache
def _asset(name: str) -> tuple[bytes, str]:
    """A static file and a short hash of it (the page links carry it, so a deploy never serves stale code)."""
    body = (STATIC / name).read_bytes()
    return body, hashlib.sha256(body).hexdigest()[:12]


def _asset_url(name: str) -> str:
    return f"{ASSET_PREFIX}/{name}?v={_asset(name)[1]}"


def _config(catalog: Catalog) -> str:
    """What the script needs to know of the product, as JSON safe inside a <script> element."""
    config = {
        "models": [
            {
                "name": name,
                "max_duration_s": spec.max_duration_s,
                "resolutions": spec.resolutions,
                "credit_multiplier": spec.credit_multiplier,
            }
            for name, spec in catalog.models.items()
        ],
        "statuses": list(status.ALL),
        "terminal": sorted(status.TERMINAL),
        "limits": {
            "metadata_keys": schemas.MAX_METADATA_KEYS,
            "metadata_key_chars": schemas.MAX_METADATA_KEY_CHARS,
            "metadata_value_chars": schemas.MAX_METADATA_VALUE_CHARS,
        },
    }
    return msgspec.json.encode(config).decode().replace("<", "\\u003c")


def _options(values: list[tuple[str, str]], selected: str = "") -> str:
    return "".join(
        f'<option value="{html.escape(v)}"{" selected" if v == selected else ""}>{html.escape(label)}</option>'
        for v, label in values
    )


def _resolution_options() -> str:
    groups = []
    for tier, label in (("sd", "SD (480p)"), ("hd", "HD (720p)"), ("fhd", "Full HD (1080p)")):
        sizes = [(f"{w}x{h}", f"{w}×{h} {orientation}") for (t, orientation), (w, h) in PRESETS.items() if t == tier]
        groups.append(f'<optgroup label="{label}">{_options(sizes)}</optgroup>')
    return '<option value="">1280×720 (default)</option>' + "".join(groups)


def _field(name: str, label: str, tag: str, attributes: str, hint: str = "", inner: str = "") -> str:
    """A labelled control, its hint, and the place where the API's complaint about it is shown.

    `aria-describedby` names both, so a screen reader reads the error with the field.
    """
    described = f"hint-{name} err-{name}" if hint else f"err-{name}"
    control = f'<{tag} id="f-{name}" name="{name}" {attributes} aria-describedby="{described}">'
    if tag != "input":
        control += f"{inner}</{tag}>"
    hint_html = f'<p class="hint" id="hint-{name}">{hint}</p>' if hint else ""
    return (
        f'<div class="field" data-field="{name}"><label for="f-{name}">{label}</label>{control}{hint_html}'
        f'<p class="field-error" id="err-{name}" hidden></p></div>'
    )


ORIENTATIONS = [("", "From the resolution"), ("landscape", "Landscape"), ("vertical", "Vertical"), ("square", "Square")]


def _generate_form(catalog: Catalog) -> str:
    """The seed's generate fields with their defaults and presets, plus `metadata`."""
    models = _options([(name, name) for name in catalog.models], selected="sora-2-latest")
    row = '<div class="row">{}</div>'.format
    fields = [
        _field(
            "prompt",
            "Prompt",
            "textarea",
            f'rows="4" maxlength="{schemas.MAX_PROMPT_CHARS}" required',
            "What to render, up to 5,000 characters, in any language. Camera, lens and light cues help.",
        ),
        row(
            _field("model_version", "Model", "select", "", inner=models)
            + _field(
                "duration",
                "Duration (seconds)",
                "input",
                f'type="number" inputmode="numeric" min="1" max="{schemas.MAX_DURATION_S}" value="8"',
                "Longer clips cost more.",
            )
        ),
        row(
            _field("resolution", "Resolution", "select", "", inner=_resolution_options())
            + _field(
                "aspect_ratio",
                "Aspect ratio",
                "select",
                "",
                "Turns the preset: 1920×1080 + vertical renders 1080×1920.",
                inner=_options(ORIENTATIONS),
            )
        ),
        row(
            _field(
                "guidance",
                "Guidance",
                "input",
                'type="number" inputmode="decimal" min="0" max="20" step="0.1" value="7.5"',
                "7–9 for brand-critical shots; lower explores.",
            )
            + _field(
                "seed",
                "Seed",
                "input",
                f'type="number" inputmode="numeric" min="0" max="{schemas.MAX_SEED}"',
                "Empty: random. Reuse a seed to compare prompts.",
            )
        ),
        _field(
            "negative_prompt",
            "Negative prompt",
            "textarea",
            'rows="2"',
            "Elements to suppress, e.g. no watermark, no text overlays.",
        ),
        _field(
            "metadata",
            "Metadata",
            "textarea",
            'rows="2" placeholder="order_id=ord_1042"',
            "Your labels to find the task again: one key=value per line (at most 16).",
        ),
        row(
            _field(
                "callback_url",
                "Callback URL",
                "input",
                'type="url" placeholder="https://example.com/webhooks/sora2"',
                "Optional HTTPS webhook for the end of the task.",
            )
            + _field(
                "idempotency_key",
                "Idempotency key",
                "input",
                'maxlength="64"',
                "Optional: sending the same key again returns the same task.",
            )
        ),
    ]
    return (
        '<form id="generate-form" novalidate>'
        + "".join(fields)
        + '<div class="quote-bar"><p><span class="label">Price</span> '
        '<output id="quote" for="f-model_version f-duration f-resolution f-aspect_ratio" aria-live="polite">'
        "…</output></p>"
        '<button type="submit" class="primary">Generate</button></div>'
        '<div id="form-error" class="form-error" role="alert" hidden></div>'
        "</form>"
    )


def _task_page() -> str:
    return """
<section aria-labelledby="h-state" class="card">
  <h2 id="h-state">Status</h2>
  <p class="state"><span class="label">Status</span> <strong id="task-status" class="badge">loading…</strong>
    <span id="task-phase"></span></p>
  <p><label for="task-progress">Progress</label>
    <progress id="task-progress" max="100" value="0">0%</progress>
    <span id="task-percent" aria-hidden="true">0%</span></p>
  <p id="task-live" class="hint" role="status"></p>
  <p id="task-error" class="form-error" role="alert" hidden></p>
  <div class="actions">
    <button type="button" id="task-cancel" disabled>Cancel</button>
    <button type="button" id="task-delete" class="danger" disabled>Delete assets</button>
    <a id="task-webhooks" href="/console/webhooks">Webhook deliveries</a>
  </div>
</section>
<section aria-labelledby="h-video" class="card" id="video-card" hidden>
  <h2 id="h-video">Video</h2>
  <video id="task-video" controls preload="metadata" playsinline></video>
  <ul class="downloads" id="task-downloads" aria-label="Downloads"></ul>
</section>
<section aria-labelledby="h-request" class="card">
  <h2 id="h-request">Request</h2>
  <dl id="task-request" class="facts"></dl>
</section>
<section aria-labelledby="h-events" class="card">
  <h2 id="h-events">Events</h2>
  <ol id="task-events" class="events"></ol>
</section>
"""


def _tasks_page() -> str:
    statuses = _options([("", "Any status"), *((s, s) for s in status.ALL)])
    return f"""
<form id="task-filters" class="filters" role="search" aria-label="Filter tasks">
  <div class="field"><label for="filter-status">Status</label>
    <select id="filter-status" name="status">{statuses}</select></div>
  <div class="field"><label for="filter-metadata">Metadata</label>
    <input id="filter-metadata" name="metadata" placeholder="order_id=ord_1042"
      aria-describedby="hint-filter-metadata err-filter">
    <p class="hint" id="hint-filter-metadata">key=value, several separated by commas: all must match.</p></div>
  <button type="submit">Filter</button>
</form>
<p id="err-filter" class="form-error" role="alert" hidden></p>
<table class="list" id="task-table">
  <caption id="task-count" class="sr-only">Tasks</caption>
  <thead><tr><th scope="col">Task</th><th scope="col">Status</th><th scope="col">Prompt</th>
  <th scope="col">Created</th><th scope="col">Credits</th><th scope="col">Metadata</th></tr></thead>
  <tbody id="task-rows"></tbody>
</table>
<p id="task-list-state" role="status" class="hint"></p>
<button type="button" id="task-more" hidden>Load more</button>
<div id="task-sentinel" aria-hidden="true"></div>
"""


def _credits_page() -> str:
    return """
<section aria-labelledby="h-balance" class="card">
  <h2 id="h-balance">Balance</h2>
  <dl id="credit-figures" class="figures"></dl>
</section>
<section aria-labelledby="h-caps" class="card" id="caps-card" hidden>
  <h2 id="h-caps">Spend caps</h2>
  <table class="list"><thead><tr><th scope="col">Scope</th><th scope="col">Key</th><th scope="col">Monthly limit</th>
  <th scope="col">Used</th><th scope="col">Resets</th></tr></thead><tbody id="cap-rows"></tbody></table>
</section>
<section aria-labelledby="h-holds" class="card">
  <h2 id="h-holds">Holds</h2>
  <p class="hint">Credits held by queued and running tasks: charged on success, released otherwise.</p>
  <table class="list"><thead><tr><th scope="col">Task</th><th scope="col">Status</th><th scope="col">Held</th></tr>
  </thead>
  <tbody id="hold-rows"></tbody></table>
</section>
<section aria-labelledby="h-ledger" class="card">
  <h2 id="h-ledger">Ledger</h2>
  <table class="list"><thead><tr><th scope="col">When</th><th scope="col">Kind</th><th scope="col">Credits</th>
  <th scope="col">Task</th><th scope="col">Reason</th></tr></thead><tbody id="ledger-rows"></tbody></table>
  <button type="button" id="ledger-more" hidden>Older entries</button>
</section>
<p id="credits-error" class="form-error" role="alert" hidden></p>
"""


def _webhooks_page() -> str:
    return """
<section aria-labelledby="h-secret" class="card">
  <h2 id="h-secret">Signing secret</h2>
  <p class="hint">Verifies <code>X-Signature</code> and the Standard Webhooks headers. Admin keys only.</p>
  <button type="button" id="secret-reveal" aria-controls="secret-value" aria-expanded="false">Reveal secret</button>
  <p><code id="secret-value" hidden></code></p>
  <p id="secret-error" class="form-error" role="alert" hidden></p>
</section>
<section aria-labelledby="h-deliveries" class="card">
  <h2 id="h-deliveries">Delivery log</h2>
  <form id="delivery-form" class="filters">
    <div class="field"><label for="delivery-task">Task id</label>
      <input id="delivery-task" name="task" required pattern="\\S+" autocomplete="off"></div>
    <button type="submit">Show deliveries</button>
  </form>
  <p id="delivery-state" role="status" class="hint"></p>
  <table class="list"><thead><tr><th scope="col">When</th><th scope="col">Event</th><th scope="col">Trigger</th>
  <th scope="col">Attempt</th><th scope="col">Outcome</th><th scope="col">HTTP</th><th scope="col">Latency</th>
  <th scope="col">Error</th></tr></thead><tbody id="delivery-rows"></tbody></table>
  <button type="button" id="delivery-more" hidden>More attempts</button>
  <button type="button" id="redeliver" disabled>Redeliver the last event</button>
  <p id="redeliver-state" role="status"></p>
</section>
"""


def _keys_page() -> str:
    return """
<section aria-labelledby="h-key" class="card">
  <h2 id="h-key">This key</h2>
  <dl class="facts"><dt>Key</dt><dd><code id="key-prefix"></code></dd></dl>
  <table class="list"><caption>What this key may do, as the API answers it</caption>
  <thead><tr><th scope="col">Scope</th><th scope="col">Allows</th><th scope="col">This key</th></tr></thead>
  <tbody id="scope-rows"></tbody></table>
</section>
<section aria-labelledby="h-manage" class="card">
  <h2 id="h-manage">Managing keys</h2>
  <p>The API has no routes for an account's own keys: issuing and revoking them is the operator's,
  with <code>sorapi admin keys</code> or <code>/admin/accounts/{id}/keys</code> and the admin token.
  An <code>admin</code> key holds every scope of its account and reads the webhook secret.</p>
</section>
"""


def _sign_in_page() -> str:
    return """
<form id="sign-in-form" class="card narrow">
  <p>Paste an API key. It stays in this tab only (<code>sessionStorage</code>): closing the tab signs you out.</p>
  <div class="field"><label for="f-key">API key</label>
    <input id="f-key" name="key" type="password" autocomplete="off" spellcheck="false" required
      aria-describedby="err-key"></div>
  <p id="err-key" class="form-error" role="alert" hidden></p>
  <button type="submit" class="primary">Sign in</button>
</form>
"""


def _layout(page: Page, body: str, catalog: Catalog, data: dict[str, str] | None = None) -> Response[str]:
    current = ' aria-current="page"'
    nav = "".join(f'<li><a href="{href}"{current if label == page.nav else ""}>{label}</a></li>' for href, label in NAV)
    attributes = "".join(f' data-{k}="{html.escape(v)}"' for k, v in (data or {}).items())
    document = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(page.title)} · SorAPI console</title>
<link rel="stylesheet" href="{_asset_url("console.css")}">
<script type="application/json" id="console-config">{_config(catalog)}</script>
<script src="{_asset_url("console.js")}" defer></script>
</head>
<body data-page="{page.name}"{attributes}>
<a class="skip" href="#main">Skip to content</a>
<header class="top">
  <a class="brand" href="/console">SorAPI <span>console</span></a>
  <nav aria-label="Console"><ul>{nav}<li><a href="/docs">API docs</a></li></ul></nav>
  <div class="session"><span id="session-key"></span>
    <button type="button" id="sign-out" hidden>Sign out</button></div>
</header>
<main id="main" tabindex="-1">
<h1>{html.escape(page.title)}</h1>
{body}
</main>
</body>
</html>
"""
    return Response(document, media_type="text/html", headers=SECURITY_HEADERS)


@get(["/", "/console"], include_in_schema=False, sync_to_thread=False)
def new_video(resources: Resources) -> Response[str]:
    """The prompt form (the console's home)."""
    page = Page("new", "New video", "New video")
    return _layout(page, _generate_form(resources.catalog), resources.catalog)


@get("/console/sign-in", include_in_schema=False, sync_to_thread=False)
def sign_in(resources: Resources) -> Response[str]:
    return _layout(Page("sign-in", "Sign in", ""), _sign_in_page(), resources.catalog)


@get("/console/tasks", include_in_schema=False, sync_to_thread=False)
def task_list(resources: Resources) -> Response[str]:
    return _layout(Page("tasks", "Tasks", "Tasks"), _tasks_page(), resources.catalog)


@get("/console/tasks/{task_id:str}", include_in_schema=False, sync_to_thread=False)
def task_page(resources: Resources, task_id: str) -> Response[str]:
    page = Page("task", f"Task {task_id}", "Tasks")
    return _layout(page, _task_page(), resources.catalog, {"task-id": task_id})


@get("/console/credits", include_in_schema=False, sync_to_thread=False)
def credits_page(resources: Resources) -> Response[str]:
    return _layout(Page("credits", "Credits", "Credits"), _credits_page(), resources.catalog)


@get("/console/webhooks", include_in_schema=False, sync_to_thread=False)
def webhooks_page(resources: Resources) -> Response[str]:
    return _layout(Page("webhooks", "Webhooks", "Webhooks"), _webhooks_page(), resources.catalog)


@get("/console/keys", include_in_schema=False, sync_to_thread=False)
def keys_page(resources: Resources) -> Response[str]:
    return _layout(Page("keys", "Keys", "Keys"), _keys_page(), resources.catalog)


@route(
    f"{ASSET_PREFIX}/{{name:str}}",
    http_method=[HttpMethod.GET, HttpMethod.HEAD],
    cache_control=CacheControlHeader(max_age=86400),
    include_in_schema=False,
    sync_to_thread=False,
)
def console_asset(name: str) -> Response[bytes]:
    """The console's script or style sheet, from this package."""
    if name not in ASSETS:
        raise NotFoundException(f"no console asset {name}")
    return Response(
        _asset(name)[0],
        media_type=mimetypes.guess_type(name)[0],
        headers={"X-Content-Type-Options": "nosniff"},
    )


def console_routes() -> list[HTTPRouteHandler]:
    """Every console page and its two assets (mounted by api.app.create_app)."""
    return [new_video, sign_in, task_list, task_page, credits_page, webhooks_page, keys_page, console_asset]


__all__ = ["console_routes"]
