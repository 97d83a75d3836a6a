"""One trace per task: `POST /api/generate`, the workflow, each activity and the webhook attempt.

The API runs in this process (`create_app`, Litestar's OpenTelemetry plugin), the orchestrator,
webhook and (fake-GPU) render workers too, all on clients from `sorapi.adapters.temporal.connect` against a
real Temporal dev server; spans go to an in-memory exporter instead of OTLP.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
from litestar.testing import AsyncTestClient
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from sorapi.adapters import storage, tracing
from sorapi.adapters.settings import Settings
from sorapi.adapters.temporal import connect
from sorapi.api.app import create_app
from sorapi.cli import servers
from sorapi.contracts import names
from sorapi.store.engine import make_async_engine, make_sessionmaker
from sorapi.workers.orchestrator import create_worker
from sorapi.workers.webhooks import create_webhook_workers
from tests.api_helpers import bearer
from tests.lifecycle_env import _ensure_bucket, fake_gpu
from tests.stack import fresh_pg_database, make_account
from tests.webhook_receiver import Receiver


@pytest.fixture(scope="module")
def exported() -> Iterator[InMemorySpanExporter]:
    """Every span this process ends, kept in memory (the provider a deployment gets from OTLP settings)."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield exporter
    exporter.shutdown()  # later spans of the session are dropped


def _settings(tmp: Path, database_url: str, temporal_address: str, s3_port: int) -> Settings:
    run = uuid.uuid4().hex[:8]
    return Settings(
        data_dir=str(tmp),
        database_url=database_url,
        temporal_address=temporal_address,
        s3_endpoint=f"127.0.0.1:{s3_port}",
        s3_access_key="tracing",
        s3_secret_key="tracing-secret",
        s3_bucket="tracing",
        orchestration_queue=f"orch-{run}",
        render_queue=f"render-{run}",
        webhook_queue_prefix=f"hooks-{run}",
        webhook_allow_http=True,
        secret_key="tracing-test-server-key",
        workflow_sandbox=True,
    )


@pytest.fixture
async def traced(
    tmp: Path, local_env: WorkflowEnvironment, exported: InMemorySpanExporter
) -> AsyncIterator[tuple[AsyncTestClient, str, Receiver]]:
    """The API in process and every worker on traced clients; yields (API client, API key, webhook receiver)."""
    assert tracing.enabled()
    s3_port = servers.free_port()
    address = local_env.client.service_client.config.target_host
    receiver = Receiver().start()
    with fresh_pg_database() as database_url:
        settings = _settings(tmp, database_url, address, s3_port)
        weed = servers.start_seaweedfs(
            tmp / "s3", s3_port, settings.s3_access_key, settings.s3_secret_key, log_path=tmp / "seaweedfs.log"
        )
        engine = make_async_engine(database_url)
        try:
            s3 = storage.make_client(settings)
            await asyncio.to_thread(_ensure_bucket, s3, settings.s3_bucket)
            (tmp / "renders").mkdir()
            sessions = make_sessionmaker(engine)
            _, key = await make_account(sessions, plan="pro", credits=10_000)
            client = await connect(settings)  # the workers' client: the API makes its own the same way
            host_queue = f"host-{uuid.uuid4().hex[:8]}"
            render, upload = fake_gpu(tmp / "renders", s3, settings.s3_bucket, host_queue)
            async with AsyncExitStack() as stack:
                for worker in (
                    create_worker(client, settings, sessions),
                    *create_webhook_workers(client, settings, sessions=sessions),
                    Worker(client, task_queue=settings.render_queue, activities=[render]),
                    Worker(client, task_queue=host_queue, activities=[upload]),
                ):
                    await stack.enter_async_context(worker)
                api = await stack.enter_async_context(AsyncTestClient(app=create_app(settings)))
                yield api, key, receiver
        finally:
            receiver.stop()
            await engine.dispose()
            weed.stop()


def _named(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    found = [s for s in spans if s.name == name]
    assert found, f"no span {name!r} among {sorted({s.name for s in spans})}"
    return found[0]


async def test_the_api_request_the_render_and_the_webhook_attempt_share_one_trace(
    traced: tuple[AsyncTestClient, str, Receiver], exported: InMemorySpanExporter
) -> None:
    api, key, receiver = traced
    answer = await api.post(
        "/api/generate",
        json={
            "prompt": "a lantern on a quiet pier",
            "duration": 1,
            "resolution": "480x480",
            "callback_url": receiver.url("/hook"),
        },
        headers=bearer(key),
    )
    assert answer.status_code in (200, 201, 202), answer.text
    task_id = answer.json()["task_id"]

    await receiver.wait_for(lambda got: any(task_id.encode() in r.body and b"succeeded" in r.body for r in got))
    request = _named(
        [s for s in exported.get_finished_spans() if s.kind == trace.SpanKind.SERVER], "POST /api/generate"
    )
    attempt = f"RunActivity:{names.DELIVER_WEBHOOK}"
    for _ in range(600):  # the attempt's span ends just after the receiver has answered
        in_trace = [s for s in exported.get_finished_spans() if s.context.trace_id == request.context.trace_id]
        if any(s.name == attempt for s in in_trace):
            break
        await asyncio.sleep(0.05)

    names_in_trace = {s.name for s in in_trace}
    assert f"RunWorkflow:{names.VIDEO_TASK_WORKFLOW}" in names_in_trace, names_in_trace
    assert f"RunActivity:{names.RENDER_VIDEO}" in names_in_trace, names_in_trace
    assert f"RunActivity:{names.UPLOAD_OUTPUTS}" in names_in_trace, names_in_trace
    assert attempt in names_in_trace, names_in_trace


_PROBE = """
from opentelemetry import trace
from sorapi.adapters import tracing
from sorapi.api.app import create_app
from litestar.plugins.opentelemetry import OpenTelemetryPlugin
hooks = tracing.interceptors()
app = create_app()
plugged = any(isinstance(p, OpenTelemetryPlugin) for p in app.plugins)
print(tracing.enabled(), [type(h).__name__ for h in hooks], plugged)
print(type(trace.get_tracer_provider()).__name__)
"""


@pytest.mark.parametrize(
    ("endpoint", "expected"),
    [
        ("", "False [] False\nProxyTracerProvider"),
        ("http://127.0.0.1:4318", "True ['TracingInterceptor'] True\nTracerProvider"),
    ],
)
def test_tracing_is_on_only_with_an_otlp_endpoint(endpoint: str, expected: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    if endpoint:
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = endpoint
    probe = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, timeout=120)
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.strip() == expected
