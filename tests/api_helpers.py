"""Helpers for the API tests: an in-process app wired to the live stack's servers, with other settings."""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import msgspec
import uvicorn
from litestar import Litestar
from litestar.testing import AsyncTestClient

from sorapi.adapters.settings import settings_from_env
from sorapi.api.app import create_app
from sorapi.cli import servers
from tests.stack import Stack

QUICK = {"prompt": "A paper boat drifting down a rain gutter", "duration": 1, "resolution": "480x480"}
"""The cheapest real render: 1 s at the smallest preset (a fraction of a second on the dev model)."""


@asynccontextmanager
async def app_client(stack: Stack, **overrides: Any) -> AsyncIterator[tuple[AsyncTestClient[Litestar], Litestar]]:
    """A second API instance (in this process) on the stack's DB, Temporal and S3, with `overrides` settings."""
    settings = msgspec.structs.replace(settings_from_env(stack.env), **overrides)
    app = create_app(settings)
    async with AsyncTestClient(app=app, raise_server_exceptions=False) as client:
        yield client, app


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@contextmanager
def serve_replica(stack: Stack, **overrides: Any) -> Iterator[str]:
    """Another API replica over real HTTP (uvicorn in a thread), on the stack's servers; yields its base URL."""
    settings = msgspec.structs.replace(settings_from_env(stack.env), **overrides)
    port = servers.free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_config=None, access_log=False)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the API replica did not start")
        time.sleep(0.05)
    try:
        yield base_url
    finally:
        server.should_exit = True
        thread.join(timeout=15)
