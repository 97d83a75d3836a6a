"""The OpenAPI document is enough to build a client.

One generated from `/openapi.json` by `openapi-python-client` runs the quickstart on the real stack (create, poll to
`succeeded`, download the MP4) and reads the documented errors as typed values.
"""

from __future__ import annotations

import asyncio
import importlib
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from tests.stack import Api

PACKAGE = "sorapi_client"


def generate_client(spec: bytes, into: Path) -> Path:
    """`openapi-python-client generate` into `into/sorapi_client`; any warning fails it.

    A schema it cannot read fully is a contract a client cannot use. No formatting hooks: nothing but the venv.
    """
    spec_path, config = into / "openapi.json", into / "config.yaml"
    spec_path.write_bytes(spec)
    config.write_text("post_hooks: []\n")
    run = subprocess.run(
        [
            str(Path(sys.executable).parent / "openapi-python-client"),
            "generate",
            "--path",
            str(spec_path),
            "--output-path",
            str(into / PACKAGE),
            "--meta",
            "none",
            "--config",
            str(config),
            "--fail-on-warning",
        ],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=into,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    _import_unset_where_used(into / PACKAGE / "api")
    return into


def _import_unset_where_used(api_dir: Path) -> None:
    """Add the `Unset` import openapi-python-client 0.29 omits for an operation with two body types.

    It writes `body: A | B | Unset = UNSET` for such an operation (`/api/generate`: JSON or multipart) without importing
    `Unset` (its template sets `body_required` inside a Jinja loop, where the value does not survive). Nothing else of
    the generated code is touched.
    """
    for module in api_dir.rglob("*.py"):
        text = module.read_text()
        if "| Unset = UNSET" in text and "import Response, UNSET\n" in text:
            module.write_text(text.replace("import Response, UNSET\n", "import Response, UNSET, Unset\n", 1))


@pytest.fixture
def client_package(api: Api, tmp_path: Path) -> Iterator[ModuleType]:
    """The generated package, importable for the test's duration."""
    root = generate_client(httpx.get(f"{api.base_url}/openapi.json").content, tmp_path)
    sys.path.insert(0, str(root))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(root))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(f"{PACKAGE}.")]:
            del sys.modules[name]


def _module(name: str) -> Any:
    return importlib.import_module(f"{PACKAGE}.{name}")


async def _poll_until_done(client: Any, task_id: str, timeout_s: float = 180) -> Any:
    """`getTaskStatus` once a second (the status budget is 60 a minute) until a final status."""
    get_task_status, models = _module("api.videos.get_task_status"), _module("models")
    final = {
        models.StatusResponseStatus.SUCCEEDED,
        models.StatusResponseStatus.FAILED,
        models.StatusResponseStatus.CANCELLED,
    }
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        answer = await get_task_status.asyncio_detailed(client=client, task_id=task_id)
        if answer.status_code == 429:
            await asyncio.sleep(float(answer.headers.get("retry-after", "1")))
            continue
        assert isinstance(answer.parsed, models.StatusResponse), answer.content
        if answer.parsed.status in final:
            return answer.parsed
        await asyncio.sleep(1)
    raise TimeoutError(f"task {task_id} did not finish in {timeout_s} s")


async def test_a_generated_client_creates_polls_and_downloads_the_mp4(client_package: ModuleType, account: Api) -> None:
    models = _module("models")
    generate, download = _module("api.videos.generate"), _module("api.videos.download_task_content")
    client = client_package.AuthenticatedClient(
        base_url=account.base_url, token=account.api_key, follow_redirects=True, timeout=httpx.Timeout(60)
    )

    body = models.GenerateRequest(
        prompt="A paper boat drifting down a rain gutter",
        duration=1,
        resolution=models.GenerateRequestResolutionType1("480x480"),
    )
    created = await generate.asyncio_detailed(client=client, body=body)
    assert created.status_code == 200 and isinstance(created.parsed, models.GenerateResponse), created.content
    assert created.parsed.status == models.GenerateResponseStatus.QUEUED

    done = await _poll_until_done(client, created.parsed.task_id)
    assert done.status == models.StatusResponseStatus.SUCCEEDED, (done.error_code, done.error_message)
    assert done.request.resolution == models.TaskRequestResolution("480x480")

    video = await download.asyncio_detailed(created.parsed.task_id, client=client)  # 307, then the presigned URL
    assert video.status_code == 200 and video.content[4:8] == b"ftyp", video.headers


async def test_a_generated_client_reads_documented_errors_as_typed_values(
    client_package: ModuleType, account: Api
) -> None:
    models, generate = _module("models"), _module("api.videos.generate")
    client = client_package.AuthenticatedClient(base_url=account.base_url, token=account.api_key)
    refused = await generate.asyncio(client=client, body=models.GenerateRequest(prompt="   "))
    assert isinstance(refused, models.ErrorEnvelope) and refused.error.code == "validation_error"
    assert [d.field for d in refused.error.details] == ["prompt"]
    anonymous = client_package.Client(base_url=account.base_url)
    unauthorized = await generate.asyncio(client=anonymous, body=models.GenerateRequest(prompt="A kite"))
    assert isinstance(unauthorized, models.ErrorEnvelope) and unauthorized.error.code == "unauthorized"
