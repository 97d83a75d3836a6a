"""The published contract: OpenAPI 3.1 at /openapi.json, the /docs UI, and a schemathesis run against it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from tests.api_helpers import serve_replica
from tests.stack import Api, Stack, make_account

# The seed's "POST /api/generate parameters" table: description and example of each field.
SEED_FIELDS = {
    "prompt": ("Primary description of the scene to render; supports up to 5,000 characters.",
               "Aerial shot of bioluminescent forests at dusk with cinematic lighting"),
    "model_version": ("Model release to target. Use preview channels to test new capabilities before rollout.",
                      "sora-2-preview"),
    "duration": ("Clip length in seconds. Longer durations may consume additional credits.", 12),
    "guidance": ("Classifier-free guidance scale for adherence to the prompt. Higher values follow the text "
                 "more strictly.", 8.5),
    "seed": ("Use fixed seeds for reproducible frames and prompt engineering experiments.", 42),
    "negative_prompt": ("Elements to suppress in the output, such as watermarking, artifacts, or undesired "
                        "subjects.", "no watermark, no motion blur, avoid text overlays"),
    "callback_url": ("Webhook destination for job completion events. Must be HTTPS and respond with 2xx status.",
                     "https://example.com/webhooks/sora2"),
    "callback_headers": ("Custom headers appended to webhook deliveries for routing or verification.",
                         {"X-Env": "staging"}),
    "idempotency_key": ("Unique key (<= 64 chars) to guarantee at-most-once task creation on retries.",
                        "job-2024-03-12-001"),
}
DOCUMENTED = ["GenerateRequest", "GenerateResponse", "StatusResponse", "TaskRequest", "OutputLink", "HistoryEvent",
              "EventsPage", "LiveProgress", "TaskList", "TaskSummary", "ErrorEnvelope", "ErrorBody", "ErrorDetail",
              "Video", "VideoList", "VideoError", "VideoDeleted", "CreateVideo", "RemixVideo"]


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


async def test_schemathesis_finds_no_server_error_or_schema_violation(stack: Stack, sessions: Any,
                                                                      tmp_path: Path) -> None:
    """Fuzz the live schema with a fresh key on an API replica without rate limits (so the logic
    behind each operation is reached, not just the 429); a few credits let some generates succeed."""
    account_id, key = await make_account(sessions, credits=24)
    unlimited = {"rate_generate_per_min": 1e6, "rate_generate_burst": 10**6,
                 "rate_status_per_min": 1e6, "rate_status_burst": 10**6}
    with serve_replica(stack, **unlimited) as base_url:
        assert httpx.get(f"{base_url}/openapi.json").json() == httpx.get(f"{stack.base_url}/openapi.json").json()
        run = subprocess.run(
            [str(Path(sys.executable).parent / "schemathesis"), "run", f"{base_url}/openapi.json",
             "--header", f"Authorization: Bearer {key}",
             "--checks", "not_a_server_error,status_code_conformance,content_type_conformance,"
                         "response_schema_conformance,response_headers_conformance",
             "--phases", "examples,coverage,fuzzing", "--max-examples", "10", "--seed", "20261125",
             "--no-shrink", "--max-redirects", "0", "--request-timeout", "20", "--generation-database", "none",
             "--exclude-path-regex", "^/admin",  # operator endpoints need the admin scope
             "--report", "junit", "--report-dir", str(tmp_path), "--no-color"],
            capture_output=True, text=True, timeout=240, cwd=tmp_path)  # its caches stay out of the repo
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    summary = run.stdout.split("SUMMARY")[-1]
    assert "Failures:" not in summary and "Errors:" not in summary and " passed" in summary, summary
    async with httpx.AsyncClient(base_url=stack.base_url, headers={"Authorization": f"Bearer {key}"}) as client:
        for task in (await client.get("/api/tasks", params={"status": "queued,running", "limit": 100})).json()["data"]:
            await client.post(f"/api/tasks/{task['task_id']}/cancel")  # free the shared render worker
    assert account_id
