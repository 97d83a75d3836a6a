"""Harness for webhook-schedule and expiry tests.

The real task service, workflows and DB/S3/webhook activities against a time-skipping Temporal server, a real SeaweedFS
and real PostgreSQL.

Only the GPU side is faked, under the real activity names: `render_video` writes small files
(or fails / waits to be cancelled when the prompt says so) and `upload_outputs` puts them into S3.
Tasks are created through `sorapi.api.tasks.service.create_task`, exactly as `POST /api/generate` does.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from minio import Minio
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.api.testservice.v1 import LockTimeSkippingRequest, UnlockTimeSkippingRequest
from temporalio.client import WorkflowExecutionStatus, WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from sorapi.adapters import search_attributes, storage
from sorapi.adapters.converter import DATA_CONVERTER
from sorapi.adapters.settings import Settings
from sorapi.api.auth import Principal
from sorapi.api.state import Resources
from sorapi.api.tasks.task_service import create_task
from sorapi.cli import servers
from sorapi.contracts import names
from sorapi.contracts.messages import LocalFile, RenderMeta, RenderResult, RenderSpec, StoredObject, UploadInput
from sorapi.contracts.schemas import GenerateRequest
from sorapi.domain.catalog import get_catalog
from sorapi.store.engine import make_async_engine, make_autocommit_sessionmaker, make_sessionmaker
from sorapi.store.models import Task, TaskEvent, WebhookDelivery
from sorapi.workers.orchestrator import create_worker
from sorapi.workers.webhooks import create_webhook_workers
from tests.stack import make_account
from tests.webhook_receiver import Received, Receiver


@dataclass
class Lifecycle:
    env: WorkflowEnvironment
    res: Resources
    receiver: Receiver
    s3: Minio
    pg_url: str

    @property
    def settings(self) -> Settings:
        return self.res.settings

    @property
    def sessions(self) -> async_sessionmaker[AsyncSession]:
        return self.res.sessions

    async def create(
        self,
        *,
        plan: str = "pro",
        path: str = "/hook",
        prompt: str = "a calm lake at dawn",
        callback_headers: dict[str, str] | None = None,
    ) -> tuple[str, Principal]:
        account_id, _ = await make_account(self.sessions, plan=plan, credits=10_000)
        principal = Principal(
            account_id=account_id, plan=plan, key_id="key_test", scopes=frozenset({"generate", "read"})
        )
        request = GenerateRequest(
            prompt=prompt,
            duration=2,
            resolution="854x480",
            callback_url=self.receiver.url(path),
            callback_headers=callback_headers,
            idempotency_key=f"job-{uuid.uuid4().hex[:8]}",
        )
        created = await create_task(self.res, principal, request)
        return created.task.id, principal

    async def task(self, task_id: str) -> Task:
        async with self.sessions() as session:
            task = await session.get(Task, task_id)
            assert task is not None
            return task

    async def deliveries(self, task_id: str) -> list[WebhookDelivery]:
        async with self.sessions() as session:
            return list(
                (
                    await session.scalars(
                        select(WebhookDelivery).where(WebhookDelivery.task_id == task_id).order_by(WebhookDelivery.id)
                    )
                ).all()
            )

    async def events(self, task_id: str) -> list[TaskEvent]:
        async with self.sessions() as session:
            return list(
                (
                    await session.scalars(select(TaskEvent).where(TaskEvent.task_id == task_id).order_by(TaskEvent.id))
                ).all()
            )

    def objects(self, task_id: str) -> list[str]:
        return [
            o.object_name
            for o in self.s3.list_objects(self.settings.s3_bucket, prefix=storage.task_prefix(task_id), recursive=True)
        ]

    async def handle(self, workflow_id: str, timeout_s: float = 60) -> WorkflowHandle[Any, Any]:
        """A workflow's handle once it exists (children start only when their parent gets there)."""
        handle = self.env.client.get_workflow_handle(workflow_id)
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                await handle.describe()
                return handle
            except RPCError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)

    async def finished(self, workflow_id: str, timeout_s: float = 60) -> Any:
        """Wait for a workflow that needs no timers, WITHOUT letting the server skip time.

        Unlocking time skipping races: the moment a result returns, the idle server may jump
        to the next timer (e.g. a retention window) before the lock is taken back.
        """
        handle = await self.handle(workflow_id)
        deadline = time.monotonic() + timeout_s
        while (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{workflow_id} still running after {timeout_s}s")
            await asyncio.sleep(0.05)
        return await handle.result()

    async def result(self, workflow_id: str) -> Any:
        """Wait for a workflow's result, letting the test server skip time (timers) meanwhile.

        The SDK unlocks time skipping only for handles returned by `start_workflow`; children and
        workflows started elsewhere need the explicit unlock.
        """
        handle = await self.handle(workflow_id)
        service = self.env.client.test_service
        await service.unlock_time_skipping(UnlockTimeSkippingRequest())
        try:
            return await handle.result()
        finally:
            await service.lock_time_skipping(LockTimeSkippingRequest())

    def status_now(self, task_id: str) -> str:
        """The task row's status, read synchronously (used inside the receiver, at receipt)."""
        with psycopg.connect(self.pg_url) as conn:
            row = conn.execute("SELECT status FROM tasks WHERE id = %s", (task_id,)).fetchone()
        return row[0] if row else "missing"


def _meta(spec: RenderSpec) -> RenderMeta:
    return RenderMeta(
        model=spec.model,
        family=spec.family,
        width=96,
        height=64,
        num_frames=9,
        fps=8,
        steps=2,
        seed=spec.seed,
        guidance_scale=spec.guidance_scale,
        requested_width=spec.width,
        requested_height=spec.height,
        dev_model=True,
        host="fake-gpu",
    )


def fake_gpu(files_dir: Path, s3: Minio, bucket: str, host_queue: str) -> tuple[Any, Any]:
    """render_video / upload_outputs stand-ins: real files, real S3 objects, no GPU."""

    @activity.defn(name=names.RENDER_VIDEO)
    async def render_video(spec: RenderSpec) -> RenderResult:
        if "fail" in spec.prompt:
            raise ApplicationError("CUDA out of memory", type="render_failed", non_retryable=True)
        while "slow" in spec.prompt:  # runs until the task is cancelled
            activity.heartbeat()
            await asyncio.sleep(0.2)
        files = []
        for name, content_type in (("video.mp4", "video/mp4"), ("thumbnail.jpg", "image/jpeg")):
            path = files_dir / f"{spec.task_id}-{name}"
            path.write_bytes(f"{name} of {spec.task_id}".encode() * 10)
            files.append(
                LocalFile(
                    format=name.split(".")[1], path=str(path), content_type=content_type, size_bytes=path.stat().st_size
                )
            )
        if "partial" in spec.prompt:  # a file the upload will not find, after it has put the others
            files.append(
                LocalFile(
                    format="webm",
                    path=str(files_dir / f"{spec.task_id}-video.webm"),
                    content_type="video/webm",
                    size_bytes=1,
                )
            )
        return RenderResult(host_queue=host_queue, files=files, meta=_meta(spec))

    @activity.defn(name=names.UPLOAD_OUTPUTS)
    async def upload_outputs(arg: UploadInput) -> list[StoredObject]:
        stored = []
        for f in arg.files:
            if not Path(f.path).exists():
                raise ApplicationError(f"lost {f.path} mid-upload", type="upload_failed", non_retryable=True)
            key = storage.object_key(arg.task_id, Path(f.path).name.split("-", 1)[1])
            await asyncio.to_thread(storage.put_file, s3, bucket, key, Path(f.path), f.content_type)
            stored.append(StoredObject(format=f.format, key=key, content_type=f.content_type, size_bytes=f.size_bytes))
        return stored

    return render_video, upload_outputs


def _ensure_bucket(s3: Minio, bucket: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            storage.ensure_bucket(s3, bucket)
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


@asynccontextmanager
async def lifecycle_env(tmp: Path, pg_url: str) -> AsyncIterator[Lifecycle]:
    run = uuid.uuid4().hex[:8]
    s3_port = servers.free_port()
    settings = Settings(
        data_dir=str(tmp),
        database_url=pg_url,
        s3_endpoint=f"127.0.0.1:{s3_port}",
        s3_access_key="lifecycle",
        s3_secret_key="lifecycle-secret",
        s3_bucket="lifecycle",
        orchestration_queue=f"orch-{run}",
        render_queue=f"render-{run}",
        webhook_queue_prefix=f"hooks-{run}",
        webhook_allow_http=True,
        secret_key="lifecycle-test-server-key",
        render_heartbeat_timeout_s=2,
        workflow_sandbox=True,
    )
    weed = servers.start_seaweedfs(
        tmp / "s3", s3_port, settings.s3_access_key, settings.s3_secret_key, log_path=tmp / "seaweedfs.log"
    )
    receiver = Receiver().start()
    engine = make_async_engine(pg_url)
    try:
        s3 = storage.make_client(settings)
        await asyncio.to_thread(_ensure_bucket, s3, settings.s3_bucket)
        files = tmp / "renders"
        files.mkdir()
        async with AsyncExitStack() as stack:
            env = await stack.enter_async_context(
                await WorkflowEnvironment.start_time_skipping(
                    data_converter=DATA_CONVERTER, test_server_existing_path=servers.venv_binary("temporal-test-server")
                )
            )
            await search_attributes.register(env.client)  # the workflows upsert them
            sessions = make_sessionmaker(engine)
            host_queue = f"host-{run}"
            render, upload = fake_gpu(files, s3, settings.s3_bucket, host_queue)
            workers = [
                create_worker(env.client, settings, sessions),
                *create_webhook_workers(env.client, settings, sessions=sessions),
                Worker(env.client, task_queue=settings.render_queue, activities=[render]),
                Worker(env.client, task_queue=host_queue, activities=[upload]),
            ]
            for worker in workers:
                await stack.enter_async_context(worker)
            res = Resources(
                settings=settings,
                catalog=get_catalog(),
                engine=engine,
                sessions=sessions,
                autocommit_sessions=make_autocommit_sessionmaker(engine),
                temporal=env.client,
                s3=s3,
                signer=storage.make_client(settings, public=True),
            )
            lifecycle = Lifecycle(env=env, res=res, receiver=receiver, s3=s3, pg_url=pg_url)
            receiver.on_receive = task_status_at_receipt(lifecycle)
            yield lifecycle
    finally:
        receiver.stop()
        await engine.dispose()
        weed.stop()


def task_status_at_receipt(lifecycle: Lifecycle) -> Any:
    """An `on_receive` hook: what the task row says at the moment a webhook arrives."""

    def hook(got: Received) -> str | None:
        try:
            return lifecycle.status_now(json.loads(got.body)["task_id"])
        except (ValueError, KeyError):
            return None

    return hook
