"""The published contract: OpenAPI 3.1 at /openapi.json, the /docs UI, and a schemathesis run against it."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from tests.api_helpers import serve_replica
from tests.stack import Api, Stack

# The seed's "POST /api/generate parameters" table: description and example of each field.
SEED_FIELDS = {
    "prompt": (
        "Primary description of the scene to render; supports up to 5,000 characters.",
        "Aerial shot of bioluminescent forests at dusk with cinematic lighting",
    ),
    "model_version": (
        "Model release to target. Use preview channels to test new capabilities before rollout.",
        "sora-2-preview",
    ),
    "duration": ("Clip length in seconds. Longer durations may consume additional credits.", 12),
    "guidance": (
        "Classifier-free guidance scale for adherence to the prompt. Higher values follow the text more strictly.",
        8.5,
    ),
    "seed": ("Use fixed seeds for reproducible frames and prompt engineering experiments.", 42),
    "negative_prompt": (
        "Elements to suppress in the output, such as watermarking, artifacts, or undesired subjects.",
        "no watermark, no motion blur, avoid text overlays",
    ),
    "callback_url": (
        "Webhook destination for job completion events. Must be HTTPS and respond with 2xx status.",
        "https://example.com/webhooks/sora2",
    ),
    "callback_headers": (
        "Custom headers appended to webhook deliveries for routing or verification.",
        {"X-Env": "staging"},
    ),
    "idempotency_key": (
        "Unique key (<= 64 chars) to guarantee at-most-once task creation on retries.",
        "job-2024-03-12-001",
    ),
}
DOCUMENTED = [
    "GenerateRequest",
    "GenerateResponse",
    "StatusResponse",
    "TaskRequest",
    "OutputLink",
    "HistoryEvent",
    "EventsPage",
    "LiveProgress",
    "TaskList",
    "TaskSummary",
    "ErrorEnvelope",
    "ErrorBody",
    "ErrorDetail",
    "Video",
    "VideoList",
    "VideoError",
    "VideoDeleted",
    "CreateVideo",
    "RemixVideo",
]


def _property(schema: dict[str, Any], name: str) -> dict[str, Any]:
    prop = schema["properties"][name]
    return next((option for option in prop.get("oneOf", []) if option.get("type") != "null"), prop) | prop


async def test_openapi_31_with_the_seed_descriptions_and_error_responses(api: Api) -> None:
    document = (await api.http.get("/openapi.json")).json()
    assert document["openapi"].startswith("3.1")
    assert document == (await api.http.get("/docs/openapi.json")).json()
    components = document["components"]["schemas"]
    generate = components["GenerateRequest"]
    for field, (description, example) in SEED_FIELDS.items():
        prop = _property(generate, field)
        assert prop["description"] == description, field
        assert example in prop["examples"], field
    assert generate["properties"]["resolution"]["description"].startswith("Target render resolution (default 1280x720)")
    for name in DOCUMENTED:
        undocumented = [p for p, v in components[name].get("properties", {}).items() if "description" not in v]
        assert not undocumented, (name, undocumented)

    for path, item in document["paths"].items():
        if not path.startswith(("/api/", "/v1/")):
            continue
        for method, operation in item.items():
            responses = operation["responses"]
            for status in ("401", "429", "500"):
                schema = responses[status]["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ErrorEnvelope"}, (method, path, status)
            assert "X-Request-ID" in responses["500"]["headers"]
            assert {"Retry-After", "RateLimit", "RateLimit-Policy"} <= set(responses["429"]["headers"])
    create = document["paths"]["/v1/videos"]["post"]["requestBody"]["content"]
    assert set(create) == {"application/json", "multipart/form-data"}
    assert document["components"]["securitySchemes"]["BearerAuth"]["scheme"] == "bearer"


async def test_docs_pages_load_only_the_apps_own_assets_and_seed_doc_paths_deep_link(api: Api) -> None:
    """What the pages look like in a browser is tests/test_docs_browser.py; here, that they work offline."""
    for page_path, bundle in (("/docs", "swagger-ui-bundle.js"), ("/docs/redoc", "redoc.standalone.js")):
        page = await api.http.get(page_path)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert '<meta charset="utf-8">' in page.text, "without it Chromium cannot parse the bundle"
        assert not re.search(r"https?://", page.text), "the pages work without internet"
        assets = re.findall(r'(?:src|href)="(/docs-assets/[^"]+)"', page.text)
        assert any(asset.endswith(bundle) for asset in assets), assets
        for asset in assets:
            served = await api.http.get(asset)
            assert served.status_code == 200 and served.content, asset
            assert b"https://cdn." not in served.content, asset
    assert (await api.http.get("/docs-assets/swagger-ui/index.html")).status_code == 404, "the wheel's petstore demo"
    document = (await api.http.get("/openapi.json")).json()
    for endpoint, path, method in (("generate", "/api/generate", "post"), ("status", "/api/status", "get")):
        operation = document["paths"][path][method]
        jump = await api.http.get(f"/docs/api/{endpoint}")
        assert jump.status_code == 302
        assert jump.headers["location"] == f"/docs#/{operation['tags'][0]}/{operation['operationId']}"


FUZZ_SEED = "20261125"
FUZZ_EXAMPLES = "12"
"""Cases per operation and phase: the whole run (about 1,800 requests) takes about a minute."""
UNLIMITED = {
    "rate_generate_per_min": 1e6,
    "rate_generate_burst": 10**6,
    "rate_status_per_min": 1e6,
    "rate_status_burst": 10**6,
    "rate_unauthenticated_per_min": 1e6,
    "rate_unauthenticated_burst": 10**6,
    "rate_delete_per_min": 1e6,
    "rate_delete_burst": 10**6,
    "rate_redeliver_per_min": 1e6,
    "rate_redeliver_burst": 10**6,
    "rate_admin_per_min": 1e6,
    "rate_admin_burst": 10**6,
}
RESOURCE_STATES = ["2xx", "3xx", "401", "403", "404", "409", "410", "429", "5xx"]
"""Answers to a schema-valid request that depend on the resource, not the request (schemathesis'
defaults, plus 410: the task's retention window ended). 5xx is `not_a_server_error`'s to judge."""


def fuzz_config(key: str, admin_token: str, capper_key: str) -> str:
    """schemathesis.toml: who authenticates where, and the things a schema cannot say.

    The customer key everywhere, the operator token under /admin, another Scale account's administrator for the spend
    caps, and the things a schema cannot say, each confined to the operations it concerns.
    """
    return f"""headers = {{ Authorization = "Bearer {key}" }}
request-timeout = 20
# An image field's 422 (unreachable URL, not an image, a model without image conditioning) is the remote
# resource's or the file's doing, which no schema states: waived for that field alone (the hooks module).
hooks = "{Path(__file__).with_name("schemathesis_hooks.py")}"

[checks.positive_data_acceptance]
expected-statuses = {json.dumps(RESOURCE_STATES)}

[[operations]]
include-path-regex = "^/admin/"
headers = {{ Authorization = "Bearer {admin_token}" }}

# A spend cap the fuzzer sets refuses later creates (402), which a schema cannot say: the caps are set
# on an account of their own, so every create of the run is still held to accepting valid bodies.
[[operations]]
include-operation-id = "setSpendLimit"
headers = {{ Authorization = "Bearer {capper_key}" }}

# Query parameters cannot state a rule across parameters (a model bounds duration and resolution);
# the POST form of the quote states it in its body schema, where schemathesis holds us to it.
[[operations]]
include-operation-id = "estimateCredits"
checks.positive_data_acceptance.expected-statuses = {json.dumps([*RESOURCE_STATES, "422"])}

# A batch's key sent again with other items is `idempotency_key_reused` (422), and a spend limit another
# operation set can refuse it (402): both depend on earlier requests, which a schema cannot say. Its items
# are the generate body, validated by the same code, whose acceptance `generate` is held to above.
[[operations]]
include-operation-id = "createBatch"
checks.positive_data_acceptance.expected-statuses = {json.dumps([*RESOURCE_STATES, "402", "422"])}

# An event stream lasts as long as its task: a task of the fuzz run may wait behind others for a while.
[[operations]]
include-operation-id = "streamTaskEvents"
request-timeout = 180

# A DELETE removes a task's assets and keeps its record (expired), so reads after it succeed: by design,
# not the use-after-free that the stateful phase would read into it. Every other phase covers them.
[[operations]]
include-method = "DELETE"
phases.stateful.enabled = false
"""


async def _admin_of_a_scale_account(sessions: Any) -> tuple[str, str]:
    """A Scale account (audit log, every feature) with ample credits, and a key with every scope."""
    from sorapi.store.accounts import create_account, issue_api_key

    async with sessions.begin() as session:
        account = await create_account(session, name="schemathesis", plan="scale", credits=10**7)
        return account.id, await issue_api_key(session, account.id, scopes="generate,read,audit,admin")


def _multipart_creates(har: Path) -> int:
    entries = json.loads(har.read_text())["log"]["entries"]
    return sum(
        1
        for e in entries
        if e["request"]["method"] == "POST"
        and e["request"]["url"].endswith("/v1/videos")
        and any(
            h["name"].lower() == "content-type" and h["value"].startswith("multipart/form-data")
            for h in e["request"]["headers"]
        )
    )


async def test_schemathesis_every_check_passes_on_every_operation(stack: Stack, sessions: Any, tmp_path: Path) -> None:
    """Every check of schemathesis, positive and negative data, all four phases, on every operation.

    The stateful phase goes along the schema's links (create, status, cancel, content). JSON and multipart bodies, every
    operation (/admin with the operator token), on an API replica without rate limits, so that the logic behind each
    operation is reached rather than its 429.
    """
    _, key = await _admin_of_a_scale_account(sessions)
    _, capper_key = await _admin_of_a_scale_account(sessions)
    admin_token = (stack.data_dir / "admin-token").read_text().strip()
    config = tmp_path / "schemathesis.toml"
    config.write_text(fuzz_config(key, admin_token, capper_key))
    with serve_replica(stack, admin_token=admin_token, **UNLIMITED) as base_url:
        assert httpx.get(f"{base_url}/openapi.json").json() == httpx.get(f"{stack.base_url}/openapi.json").json()
        started = time.monotonic()
        run = subprocess.run(
            [
                str(Path(sys.executable).parent / "schemathesis"),
                "--config-file",
                str(config),
                "run",
                f"{base_url}/openapi.json",
                "--checks",
                "all",
                "--mode",
                "all",
                "--phases",
                "examples,coverage,fuzzing,stateful",
                "--max-examples",
                FUZZ_EXAMPLES,
                "--seed",
                FUZZ_SEED,
                "--no-shrink",
                "--max-redirects",
                "0",
                "--generation-database",
                "none",
                "--report",
                "junit,har",
                "--report-dir",
                str(tmp_path),
                "--no-color",
            ],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=tmp_path,
        )  # its caches stay out of the repo
        elapsed = time.monotonic() - started
        await _settle(base_url, key)
    assert run.returncode == 0, run.stdout[-8000:] + run.stderr[-2000:]
    summary = run.stdout.split("SUMMARY")[-1]
    assert "Failures:" not in summary and "Errors:" not in summary, summary
    assert "Authentication failed" not in run.stdout, "every operation is reachable with the fuzzer's credentials"
    assert "Scenarios:" in run.stdout, "the stateful phase ran"
    assert _multipart_creates(next(tmp_path.glob("har*"))) > 0, "multipart/form-data bodies are fuzzed too"
    assert elapsed < 240, f"the fuzz run took {elapsed:.0f} s"


async def _settle(base_url: str, key: str, timeout_s: float = 120) -> None:
    """Cancel what the fuzzer left queued or running and wait for the cancellations to land.

    The next test then meets an idle orchestrator and render worker (on the replica: no rate limit on the way).
    """
    cancelled: set[str] = set()
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as client:
        while unfinished := await _unfinished(client):
            for task_id in unfinished - cancelled:
                await client.post(f"/api/tasks/{task_id}/cancel")
            cancelled |= unfinished
            assert time.monotonic() < deadline, f"{len(unfinished)} fuzzed tasks still unfinished"
            await asyncio.sleep(0.5)


async def _unfinished(client: httpx.AsyncClient) -> set[str]:
    found: set[str] = set()
    cursor = ""  # the first page
    while True:
        page = (
            await client.get("/api/tasks", params={"status": "queued,running", "limit": 100, "cursor": cursor})
        ).json()
        found |= {task["task_id"] for task in page["data"]}
        if not page["has_more"]:
            return found
        cursor = page["next_cursor"]
