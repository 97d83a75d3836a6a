"""What the fuzzer found, pinned one rule at a time: what the OpenAPI document says is what the API does."""

from __future__ import annotations

import re
from typing import Any, get_args

import jsonschema_rs
import pytest

from sorapi.adapters.webhook_signing import valid_header_name
from sorapi.contracts.credit_schemas import LedgerKind
from sorapi.contracts.schemas import HEADER_NAME, PROMPT_PATTERN
from sorapi.store import ledger
from tests.api_helpers import QUICK
from tests.stack import Api

CUSTOMER_PREFIXES = ("/api/", "/v1/")


async def _document(api: Api) -> dict[str, Any]:
    return (await api.http.get("/openapi.json")).json()


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in ("get", "post", "put", "patch", "delete")
    ]


def _validator(document: dict[str, Any], schema: dict[str, Any]) -> Any:
    """A validator of `schema` that resolves `#/components/...` references against the document."""
    return jsonschema_rs.validator_for({**schema, "components": document["components"]}, validate_formats=True)


def _examples(node: Any) -> list[tuple[dict[str, Any], Any]]:
    """(schema, example) for every `examples` entry of every schema in `node`."""
    found = []
    if isinstance(node, dict):
        if isinstance(node.get("examples"), list) and ("type" in node or "oneOf" in node or "$ref" in node):
            found += [(node, example) for example in node["examples"]]
        for value in node.values():
            found += _examples(value)
    elif isinstance(node, list):
        for value in node:
            found += _examples(value)
    return found


async def test_every_example_validates_against_its_own_schema(api: Api) -> None:
    document = await _document(api)
    checked = 0
    for schema, example in _examples(document["components"]["schemas"]) + _examples(document["paths"]):
        assert _validator(document, {k: v for k, v in schema.items() if k != "examples"}).is_valid(example), (
            schema,
            example,
        )
        checked += 1
    for path, method, operation in _operations(document):
        for status, response in operation["responses"].items():
            for media in response.get("content", {}).values():
                for name, example in media.get("examples", {}).items():
                    valid = _validator(document, media["schema"]).is_valid(example["value"])
                    assert valid, (path, method, status, name)
                    checked += 1
    assert checked > 100


async def test_every_operation_documents_duplicate_header_and_every_keyed_one_insufficient_scope(api: Api) -> None:
    document = await _document(api)
    for path, method, operation in _operations(document):
        responses = operation["responses"]
        assert "duplicate_header" in responses["400"]["content"]["application/json"]["examples"], (method, path)
        if path.startswith(CUSTOMER_PREFIXES):
            assert "insufficient_scope" in responses["403"]["content"]["application/json"]["examples"], (method, path)
    for path in ("/api/tasks/{task_id}/content", "/v1/videos/{video_id}/content"):
        assert "410" in document["paths"][path]["get"]["responses"]


async def test_closed_sets_are_enums_and_the_ledger_kinds_are_the_ledgers(api: Api) -> None:
    document = await _document(api)
    schemas = document["components"]["schemas"]
    generate = schemas["GenerateRequest"]["properties"]
    assert "1920x1080" in generate["resolution"]["enum"] and "vertical" in generate["aspect_ratio"]["enum"]
    assert "sora-2-preview" in generate["model_version"]["enum"]
    assert set(schemas["StatusResponse"]["properties"]["status"]["enum"]) == {
        "queued",
        "running",
        "succeeded",
        "failed",
        "cancelled",
        "expired",
    }
    assert get_args(LedgerKind) == ledger.KINDS
    kind = next(p for p in document["paths"]["/api/credits/ledger"]["get"]["parameters"] if p["name"] == "kind")
    assert set(kind["schema"]["enum"]) - {None} == set(ledger.KINDS)
    assert schemas["GenerateRequest"]["additionalProperties"] is False, "unknown fields are refused: the schema says so"


def _matches(pattern: str, text: str) -> bool:
    """As a client's validator reads the schema's `pattern` (ECMA-262: `$` is the end of the text)."""
    return jsonschema_rs.validator_for({"type": "string", "pattern": pattern}).is_valid(text)


async def test_the_schema_and_the_api_agree_on_prompts_and_header_names() -> None:
    for prompt in (" ", "\u3000\t", "\x1f", "a\x00", " a ", "\ufeffx", "x\n"):
        assert _matches(PROMPT_PATTERN, prompt) is bool(re.search(PROMPT_PATTERN, prompt)), repr(prompt)
    assert not _matches(PROMPT_PATTERN, " \n\t") and _matches(PROMPT_PATTERN, " a ")
    for name in ("X-Env", "Bad Header", "X-Env\n", "x" * 64, "x" * 65, "a:b"):
        assert _matches(HEADER_NAME, name) is valid_header_name(name), repr(name)


async def test_status_requires_task_id_in_the_schema_and_still_answers_the_id_alias(account: Api) -> None:
    parameters = {p["name"]: p for p in (await _document(account))["paths"]["/api/status"]["get"]["parameters"]}
    assert parameters["task_id"]["required"] is True and parameters["task_id"]["schema"]["minLength"] == 1
    assert parameters["id"]["deprecated"] is True
    task_id = (await account.generate(QUICK)).json()["task_id"]
    by_alias = await account.http.get("/api/status", params={"id": task_id}, headers=account.auth())
    assert by_alias.status_code == 200 and by_alias.json()["task_id"] == task_id
    neither = await account.http.get("/api/status", headers=account.auth())
    assert neither.status_code == 422 and neither.json()["error"]["details"][0]["field"] == "task_id"


async def test_an_empty_cursor_is_the_first_page_on_every_list(account: Api) -> None:
    task_id = (await account.generate(QUICK)).json()["task_id"]
    for path, params in (
        ("/api/tasks", {"cursor": ""}),
        ("/api/credits/ledger", {"cursor": "", "kind": "reserve"}),
        ("/v1/videos", {"after": ""}),
        ("/api/status", {"task_id": task_id, "expand": "", "events_cursor": ""}),
    ):
        answer = await account.http.get(path, params=params, headers=account.auth())
        assert answer.status_code == 200, (path, answer.text)
    first = (await account.http.get("/v1/videos", params={"after": ""}, headers=account.auth())).json()
    assert first["data"][0]["id"] == task_id


async def test_cursors_keep_their_published_pattern(account: Api) -> None:
    """Every value of the pattern names a position (maybe past the end: an empty page); others are a 422."""
    for path, cursor in (("/api/tasks", "t1.sora2x"), ("/api/credits/ledger", "l0")):
        page = await account.http.get(path, params={"cursor": cursor}, headers=account.auth())
        assert page.status_code == 200 and page.json()["data"] == [], page.text
        wrong = await account.http.get(path, params={"cursor": cursor + " "}, headers=account.auth())
        assert wrong.status_code == 422 and wrong.json()["error"]["details"][0]["field"] == "cursor"


async def test_created_after_is_an_rfc_3339_date_time_not_a_number(account: Api) -> None:
    for value, status in (
        ("0.5", 422),
        ("2026-01-01T00:00:00", 422),
        ("2026-01-01T00:00:00Z", 200),
        ("2026-12-31T23:59:60Z", 200),
    ):
        answer = await account.http.get("/api/tasks", params={"created_before": value}, headers=account.auth())
        assert answer.status_code == status, (value, answer.text)


@pytest.mark.parametrize(
    ("body", "resolution"),
    [
        ({"resolution": "1920x1080", "aspect_ratio": "vertical"}, "1080x1920"),
        ({"resolution": "hd", "aspect_ratio": "square"}, "720x720"),
        ({"resolution": "480x854"}, "480x854"),
    ],
)
async def test_resolution_names_the_tier_and_aspect_ratio_the_orientation(
    account: Api, body: dict[str, str], resolution: str
) -> None:
    quote = await account.http.post("/api/credits/estimate", json={"prompt": "p", **body}, headers=account.auth())
    assert quote.status_code == 200 and quote.json()["resolution"] == resolution, quote.text
    query = await account.http.get("/api/credits/estimate", params=body, headers=account.auth())
    assert query.json()["resolution"] == resolution


async def test_a_nul_character_is_refused_naming_the_field_and_names_no_task(account: Api) -> None:
    for field in ("prompt", "negative_prompt", "idempotency_key"):
        refused = await account.generate({**QUICK, field: "a\x00b"})
        assert refused.status_code == 422 and field in [d["field"] for d in refused.json()["error"]["details"]]
    for path in ("/v1/videos/sora2%00", "/api/tasks/sora2%00/content"):
        assert (await account.http.get(path, headers=account.auth())).status_code == 404
    by_query = await account.http.get("/api/status", params={"task_id": "a\x00"}, headers=account.auth())
    assert by_query.status_code == 404


def _multipart(boundary: str, fields: dict[str, bytes]) -> bytes:
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode() + value + b"\r\n"
        for name, value in fields.items()
    ]
    return b"".join(parts) + f"--{boundary}--\r\n".encode()


async def test_a_form_field_that_is_not_utf8_is_a_422_naming_it_and_a_broken_form_a_400(account: Api) -> None:
    headers = {**account.auth(), "content-type": "multipart/form-data; boundary=XyZ"}
    not_text = await account.http.post(
        "/v1/videos", headers=headers, content=_multipart("XyZ", {"prompt": b"A kite", "size": b"\xff\xfe"})
    )
    assert not_text.status_code == 422, not_text.text
    assert not_text.json()["error"]["details"] == [{"field": "size", "message": "not valid UTF-8 text"}]
    broken = await account.http.post("/v1/videos", headers=headers, content=b"--XyZ\r\nno end")
    assert broken.status_code == 400 and broken.json()["error"]["code"] == "invalid_form"
    no_boundary = await account.http.post(
        "/v1/videos", content=b"x", headers={**account.auth(), "content-type": "multipart/form-data"}
    )
    assert no_boundary.status_code == 400 and no_boundary.json()["error"]["details"][0]["field"] == "body"
    form = {**account.auth(), "content-type": "application/x-www-form-urlencoded"}
    urlencoded = await account.http.post("/v1/videos", content=b"prompt=%FF", headers=form)
    assert urlencoded.status_code == 422 and urlencoded.json()["error"]["details"][0]["field"] == "prompt"


async def test_input_reference_is_offered_and_a_model_without_image_conditioning_refuses_it(account: Api) -> None:
    create = (await _document(account))["components"]["schemas"]["CreateVideo"]
    assert "input_reference" in create["properties"]
    refused = await account.http.post(
        "/v1/videos", json={"prompt": "A cat", "input_reference": "cat.png"}, headers=account.auth()
    )
    assert refused.status_code == 422 and refused.json()["error"]["details"][0]["field"] == "input_reference"
    by_file_id = await account.http.post(
        "/v1/videos", json={"prompt": "A cat", "input_reference": {"file_id": "file-1"}}, headers=account.auth()
    )
    assert by_file_id.status_code == 422 and by_file_id.json()["error"]["code"] == "unsupported_parameter"


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("/v1/videos", "GET, OPTIONS, POST"),
        ("/v1/videos/sora2x", "DELETE, GET, OPTIONS"),
        ("/api/credits/estimate", "GET, OPTIONS, POST"),
        ("/api/tasks/sora2x", "DELETE, OPTIONS"),
    ],
)
async def test_options_allow_lists_every_method_of_the_path(api: Api, path: str, allowed: str) -> None:
    """Whichever controller declares each method (a CORS preflight trusts this header)."""
    answer = await api.http.options(path)
    assert answer.status_code == 204 and answer.headers["allow"] == allowed
