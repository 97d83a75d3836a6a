"""Every limit of the seed's parameter table: a clear 422 naming the field, and nothing created."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from sorapi.store.models import LedgerEntry, Task
from tests.stack import Api

OK_PROMPT = "Aerial shot of bioluminescent forests at dusk with cinematic lighting"

INVALID: list[tuple[str, dict[str, Any], str]] = [
    ("prompt missing", {}, "prompt"),
    ("prompt empty", {"prompt": ""}, "prompt"),
    ("prompt whitespace", {"prompt": "   \n "}, "prompt"),
    ("prompt too long", {"prompt": "x" * 5001}, "prompt"),
    ("prompt not a string", {"prompt": 42}, "prompt"),
    ("unknown model", {"model_version": "sora-1"}, "model_version"),
    ("duration zero", {"duration": 0}, "duration"),
    ("duration too long", {"duration": 21}, "duration"),
    ("duration fractional", {"duration": 8.5}, "duration"),
    ("duration not a number", {"duration": "eight"}, "duration"),
    ("resolution not a preset", {"resolution": "1000x1000"}, "resolution"),
    ("resolution garbage", {"resolution": "huge"}, "resolution"),
    ("aspect ratio unknown", {"aspect_ratio": "diagonal"}, "aspect_ratio"),
    ("guidance negative", {"guidance": -0.5}, "guidance"),
    ("guidance too high", {"guidance": 20.5}, "guidance"),
    ("seed negative", {"seed": -1}, "seed"),
    ("seed too large", {"seed": 2**32}, "seed"),
    ("negative prompt too long", {"negative_prompt": "n" * 5001}, "negative_prompt"),
    ("callback over http", {"callback_url": "http://example.com/hook"}, "callback_url"),
    ("callback not a url", {"callback_url": "example.com/hook"}, "callback_url"),
    ("callback header not a string", {"callback_headers": {"X-Env": 1}}, "callback_headers[...]"),
    (
        "callback header overrides signature",
        {"callback_headers": {"X-Signature": "forged"}},
        "callback_headers.X-Signature",
    ),
    ("callback header bad name", {"callback_headers": {"Bad Header": "x"}}, "callback_headers.Bad Header"),
    ("callback header injection", {"callback_headers": {"X-Env": "a\r\nX-Evil: 1"}}, "callback_headers.X-Env"),
    (
        "callback header name with a trailing newline",
        {"callback_headers": {"X-Env\n": "x"}},
        "callback_headers.X-Env\n",
    ),
    ("callback header value not ASCII", {"callback_headers": {"X-Env": "caf\u00e9"}}, "callback_headers.X-Env"),
    (
        "callback header value with a control character",
        {"callback_headers": {"X-Env": "a\x01b"}},
        "callback_headers.X-Env",
    ),
    ("too many callback headers", {"callback_headers": {f"X-H{i}": "v" for i in range(21)}}, "callback_headers"),
    ("idempotency key too long", {"idempotency_key": "k" * 65}, "idempotency_key"),
    ("idempotency key empty", {"idempotency_key": ""}, "idempotency_key"),
    ("unknown field", {"durration": 8}, "durration"),
]


async def _task_count(sessions: Any, account_id: str | None) -> tuple[int, int]:
    """The account's tasks and ledger entries (other tests' renders finish in the background)."""
    async with sessions() as session:
        tasks = await session.scalar(select(func.count()).select_from(Task).where(Task.account_id == account_id))
        entries = await session.scalar(
            select(func.count()).select_from(LedgerEntry).where(LedgerEntry.account_id == account_id)
        )
    return tasks, entries


@pytest.mark.parametrize(("case", "fields", "field"), INVALID, ids=[c[0] for c in INVALID])
async def test_invalid_request_is_422_with_field_and_creates_nothing(
    account: Api, sessions: Any, case: str, fields: dict[str, Any], field: str
) -> None:
    payload = {"prompt": OK_PROMPT, **fields}
    if case == "prompt missing":
        payload.pop("prompt")
    before = await _task_count(sessions, account.account_id)
    response = await account.generate(payload)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert field in [d["field"] for d in error["details"]], error
    assert await _task_count(sessions, account.account_id) == before


async def test_several_problems_are_reported_together(account: Api) -> None:
    response = await account.generate({"prompt": " ", "resolution": "1x1", "callback_url": "ftp://x"})
    assert response.status_code == 422
    fields = {d["field"] for d in response.json()["error"]["details"]}
    assert {"prompt", "resolution", "callback_url"} <= fields


async def test_malformed_json_is_400_invalid_json(account: Api) -> None:
    response = await account.http.post(
        "/api/generate", content=b'{"prompt": ', headers={**account.auth(), "Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"


async def test_limits_are_inclusive(account: Api) -> None:
    """The largest accepted values are accepted: 5,000-char prompt, 64-char key, 20 s, seed 2^32-1."""
    response = await account.generate(
        {
            "prompt": "p" * 5000,
            "negative_prompt": "n" * 5000,
            "idempotency_key": "k" * 64,
            "duration": 20,
            "seed": 2**32 - 1,
            "guidance": 20.0,
            "resolution": "854x480",
            "callback_headers": {f"X-H{i}": "v" for i in range(20)},
        }
    )
    assert response.status_code == 200, response.text
    assert response.json()["credits_reserved"] == 20  # 20 s × 1 credit/s at the sd tier


async def test_defaults_are_the_seeds(account: Api) -> None:
    created = (await account.generate({"prompt": OK_PROMPT})).json()
    request = (await account.status(created["task_id"])).json()["request"]
    assert request["model_version"] == "sora-2-latest"
    assert request["duration"] == 8
    assert request["resolution"] == "1280x720"
    assert request["guidance"] == 7.5
    assert isinstance(request["seed"], int), "a random seed is chosen and recorded for reproducibility"


@pytest.mark.parametrize(
    ("resolution", "aspect", "expected"),
    [
        ("hd", "vertical", "720x1280"),
        ("1080p", None, "1920x1080"),
        ("sd", "square", "480x480"),
        (None, "9:16", "720x1280"),
        ("1080x1920", "portrait", "1080x1920"),
        ("1920x1080", "vertical", "1080x1920"),  # the size names the tier, aspect_ratio the orientation
    ],
)
async def test_resolution_presets_and_names(
    account: Api, resolution: str | None, aspect: str | None, expected: str
) -> None:
    payload: dict[str, Any] = {"prompt": OK_PROMPT, "duration": 1}
    if resolution:
        payload["resolution"] = resolution
    if aspect:
        payload["aspect_ratio"] = aspect
    created = await account.generate(payload)
    assert created.status_code == 200, created.text
    status = (await account.status(created.json()["task_id"])).json()
    assert status["request"]["resolution"] == expected
