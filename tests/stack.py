"""Test harness: a real SorAPI stack (`sorapi dev`) on free ports, plus an HTTP client for it."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
from sqlalchemy.engine import make_url
from temporalio.client import Client

from sorapi.adapters import secret_policy
from sorapi.adapters.payload_codec import data_converter
from sorapi.adapters.settings import settings_from_env
from sorapi.cli import servers
from tests.backing import pg_admin_url


def create_pg_database() -> str:
    """A fresh, empty PostgreSQL database for one test session; returns its URL."""
    name = f"sorapi_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_admin_url(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return make_url(pg_admin_url()).set(database=name).render_as_string(hide_password=False)


def drop_pg_database(url: str) -> None:
    name = make_url(url).database
    with psycopg.connect(pg_admin_url(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def fresh_pg_database() -> Iterator[str]:
    """A new, migrated PostgreSQL database for the block; dropped afterwards."""
    from sorapi.store.migrate import upgrade

    url = create_pg_database()
    try:
        upgrade(url)
        yield url
    finally:
        drop_pg_database(url)


@asynccontextmanager
async def own_sessions() -> AsyncIterator[Any]:
    """Sessions of a fresh, migrated database of the caller's own, for work that touches every row."""
    from sorapi.store.engine import make_async_engine, make_sessionmaker

    with fresh_pg_database() as url:
        engine = make_async_engine(url)
        try:
            yield make_sessionmaker(engine)
        finally:
            await engine.dispose()


@dataclass
class Stack:
    """A running `sorapi dev` process group and everything a test needs to talk to it."""

    proc: subprocess.Popen[bytes]
    env: dict[str, str]
    data_dir: Path
    log_path: Path
    base_url: str
    api_key: str
    database_url: str
    temporal_address: str
    s3_endpoint: str

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    @property
    def codec_url(self) -> str:
        return f"http://127.0.0.1:{self.env['SORAPI_CODEC_PORT']}"

    def env_for(self, process: str) -> dict[str, str]:
        """The environment `sorapi dev` gives `process` (e.g. "worker render"), for one more of it."""
        return secret_policy.scoped_env(self.env, process)

    async def temporal_client(self) -> Client:
        """A client of the stack's Temporal server that reads its encrypted payloads."""
        settings = settings_from_env(self.env)
        return await Client.connect(self.temporal_address, data_converter=data_converter(settings))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_stack(tmp: Path, database_url: str | None = None, **extra_env: str) -> Stack:
    """Run `sorapi dev` exactly as a newcomer would, but on free ports and a private data dir.

    Without `database_url` the stack runs its own embedded PostgreSQL, as `make dev` does.
    """
    data_dir = tmp / "sorapi-data"
    api_port, temporal_port, ui_port, s3_port, pg_port, valkey_port, codec_port = (
        servers.free_port() for _ in range(7)
    )
    api_key = "sk_sora2_test_" + uuid.uuid4().hex
    env = {
        **os.environ,
        "SORAPI_DATA_DIR": str(data_dir),
        "SORAPI_API_PORT": str(api_port),
        "SORAPI_TEMPORAL_ADDRESS": f"127.0.0.1:{temporal_port}",
        "SORAPI_TEMPORAL_UI_PORT": str(ui_port),
        "SORAPI_S3_ENDPOINT": f"127.0.0.1:{s3_port}",
        "SORAPI_DEV_POSTGRES_PORT": str(pg_port),
        "SORAPI_DEV_VALKEY_PORT": str(valkey_port),
        "SORAPI_CODEC_PORT": str(codec_port),
        "SORAPI_DEV_API_KEY": api_key,
        "SORAPI_LOG_JSON": "true",
        "SORAPI_DEV_STACK": "true",  # processes a test adds to the stack run on its dev secrets too
        "SORAPI_WORKFLOW_SANDBOX": "true",  # CI runs every workflow in Temporal's sandbox
        **extra_env,
    }
    if database_url:
        env["SORAPI_DATABASE_URL"] = database_url
    log_path = tmp / "sorapi-dev.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "sorapi", "dev"],
        env=env,
        stdout=open(log_path, "wb"),  # noqa: SIM115 - the child owns it
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    stack = Stack(
        proc=proc,
        env=env,
        data_dir=data_dir,
        log_path=log_path,
        base_url=f"http://127.0.0.1:{api_port}",
        api_key=api_key,
        database_url=database_url or servers.postgres_url(pg_port, "sorapi"),
        temporal_address=f"127.0.0.1:{temporal_port}",
        s3_endpoint=f"127.0.0.1:{s3_port}",
    )
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"sorapi dev exited with {proc.returncode}:\n{stack.logs()[-5000:]}")
        if "dev stack is up" in stack.logs():
            return stack
        time.sleep(0.3)
    stack.stop()
    raise TimeoutError(f"sorapi dev did not come up:\n{stack.logs()[-5000:]}")


class Api:
    """A thin async client for the public API, as a user's integration would call it."""

    def __init__(self, base_url: str, api_key: str) -> None:
        self.base_url = base_url
        self.api_key = api_key
        self.account_id: str | None = None
        """Set by fixtures that made the account, so tests can look at its rows only."""
        self.http = httpx.AsyncClient(base_url=base_url, timeout=30, limits=httpx.Limits(max_connections=None))

    def auth(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.api_key}"}

    async def generate(self, payload: Any, key: str | None = None, **kwargs: Any) -> httpx.Response:
        return await self.http.post(
            "/api/generate", json=payload, headers={**self.auth(key), **kwargs.pop("headers", {})}, **kwargs
        )

    async def status(self, task_id: str, key: str | None = None) -> httpx.Response:
        return await self.http.get("/api/status", params={"task_id": task_id}, headers=self.auth(key))

    async def wait(
        self,
        task_id: str,
        until: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"}),
        timeout_s: float = 120,
        key: str | None = None,
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        seen: list[str] = []
        while time.monotonic() < deadline:
            answer = await self.status(task_id, key)
            if answer.status_code == 429:  # status polling is rate limited (60/min): wait as told
                await asyncio.sleep(float(answer.headers.get("retry-after", "1")))
                continue
            body = answer.json()
            if not seen or seen[-1] != body["status"]:
                seen.append(body["status"])
            if body["status"] in until:
                body["_seen"] = seen
                return body
            await asyncio.sleep(0.25)
        raise TimeoutError(f"task {task_id} still {seen[-1] if seen else '?'} after {timeout_s}s (saw {seen})")

    async def events(
        self, task_id: str, *, last_event_id: str | None = None, key: str | None = None, timeout_s: float = 120
    ) -> list[dict[str, Any]]:
        """Read `GET /api/tasks/{id}/events` to its end: [{"event", "id", "data"}], comments as {"comment"}."""
        headers = {**self.auth(key), "Accept": "text/event-stream"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = last_event_id
        async with (
            asyncio.timeout(timeout_s),
            self.http.stream("GET", f"/api/tasks/{task_id}/events", headers=headers, timeout=None) as answer,
        ):
            answer.raise_for_status()
            assert answer.headers["content-type"].startswith("text/event-stream")
            return [message async for message in sse_messages(answer)]

    async def close(self) -> None:
        await self.http.aclose()


async def sse_messages(answer: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    """Server-Sent Events of a streaming response, as dicts (data JSON-decoded)."""
    message: dict[str, Any] = {}
    async for line in answer.aiter_lines():
        if line == "":
            if message:
                yield message
            message = {}
        elif line.startswith(":"):
            message["comment"] = line[1:].strip()
        else:
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            message[name] = json.loads(value) if name == "data" else value
    if message:
        yield message


async def make_account(sessions: Any, *, plan: str = "free", credits: int = 1000) -> tuple[str, str]:
    """A new account with one API key, written straight to the stack's database: (account_id, key)."""
    from sorapi.store.accounts import create_account, issue_api_key

    async with sessions.begin() as session:
        account = await create_account(session, name=f"test-{uuid.uuid4().hex[:6]}", plan=plan, credits=credits)
        key = await issue_api_key(session, account.id)
    return account.id, key


def s3_of(stack: Stack) -> tuple[Any, str]:
    """A client of the stack's S3 store and its bucket."""
    from sorapi.adapters import storage
    from sorapi.adapters.settings import settings_from_env

    settings = settings_from_env(stack.env)
    return storage.make_client(settings), settings.s3_bucket


def object_exists(client: Any, bucket: str, key: str) -> bool:
    from minio.error import S3Error

    try:
        client.stat_object(bucket, key)
    except S3Error:
        return False
    return True


async def until_object_gone(client: Any, bucket: str, key: str) -> bool:
    """Whether the object is deleted within a minute (a task's row moves first, then its objects go)."""
    for _ in range(240):
        if not await asyncio.to_thread(object_exists, client, bucket, key):
            return True
        await asyncio.sleep(0.25)
    return False
