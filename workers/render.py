"""A render worker: one per GPU, one render at a time, plus its own host queue for uploads.

The host queue name is unique to this process, so an upload always runs where the files are;
if the process dies, the upload times out waiting for it and the workflow renders again. On
SIGTERM it drains: no new render, the current one finished and uploaded within the grace.
"""

from __future__ import annotations

import asyncio
import socket
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import structlog
from temporalio.client import Client
from temporalio.worker import Worker

from sorapi.activities.progress_webhooks import ProgressWebhooks
from sorapi.activities.render import RenderActivities, sweep_scratch
from sorapi.adapters import metrics, storage
from sorapi.adapters.settings import Settings
from sorapi.adapters.temporal import connect
from sorapi.workers.run import run_until_signalled

HEARTBEAT_THROTTLE = timedelta(seconds=0.25)
"""Heartbeats are sent per denoising step; this only caps steps faster than 4/s (tiny dev models)."""
log = structlog.get_logger()


def host_queue_name(settings: Settings) -> str:
    return f"{settings.render_queue}-host-{socket.gethostname()}-{uuid.uuid4().hex[:8]}"


def make_render_activities(settings: Settings) -> RenderActivities:
    """The activities of one render host: its warm pipelines, its S3 client and its own upload queue.

    The bucket is not checked here: a render host's S3 user may only put objects.
    """
    return RenderActivities(settings, storage.make_client(settings), host_queue_name(settings))


def create_workers(
    client: Client, settings: Settings, renders: RenderActivities | None = None
) -> tuple[Worker, Worker]:
    renders = renders or make_render_activities(settings)
    if renders.progress_webhooks is None:
        renders.progress_webhooks = ProgressWebhooks(client, settings.orchestration_queue, asyncio.get_running_loop())
    render = Worker(
        client,
        task_queue=settings.render_queue,
        activities=[renders.render_video],
        activity_executor=ThreadPoolExecutor(max_workers=1, thread_name_prefix="render"),
        max_concurrent_activities=1,
        graceful_shutdown_timeout=timedelta(seconds=settings.render_drain_grace_s),
        # The SDK sends at most one heartbeat per 0.8 × heartbeat timeout (24 s by default), and a
        # cancel only arrives in a heartbeat's response: keep both progress and cancellation prompt.
        max_heartbeat_throttle_interval=HEARTBEAT_THROTTLE,
        default_heartbeat_throttle_interval=HEARTBEAT_THROTTLE,
    )
    uploads = Worker(
        client,
        task_queue=renders.host_queue,
        activities=[renders.upload_outputs],
        activity_executor=ThreadPoolExecutor(max_workers=2, thread_name_prefix="upload"),
        max_concurrent_activities=2,
        graceful_shutdown_timeout=timedelta(seconds=30),
    )
    return render, uploads


async def main(settings: Settings) -> None:
    from sorapi.activities.pipelines import device_available, set_cpu_threads

    if not device_available(settings.render_device):
        log.error("render device is not available on this host", device=settings.render_device)
        raise SystemExit(2)
    threads = set_cpu_threads(settings.render_device, settings.render_cpu_threads, dev_models=not settings.model_dir)
    log.info("render host ready", device=settings.render_device, cpu_threads=threads)
    swept = sweep_scratch(settings.resolved_render_dir)
    if swept:
        log.info("stale render scratch removed", directories=swept)
    metrics.serve("render", settings.metrics_host, settings.render_metrics_port)
    sdk = metrics.sdk_runtime("render", settings.metrics_host, settings.render_sdk_metrics_port)
    client = await connect(settings, runtime=sdk)
    renders = make_render_activities(settings)
    render, uploads = create_workers(client, settings, renders)
    await run_until_signalled(render, uploads, shutdown=lambda: drain(render, uploads, renders, settings))


async def drain(render: Worker, uploads: Worker, renders: RenderActivities, settings: Settings) -> None:
    """SIGTERM on a render host: take no new render, finish the current one and serve its upload; then stop.

    The render worker's graceful shutdown is the grace; the upload is served here because only this host has its files.
    A render still running when the grace ends is cancelled and retried elsewhere.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + settings.render_drain_grace_s
    log.info("draining: no new renders", grace_s=settings.render_drain_grace_s)
    await render.shutdown()
    while renders.awaiting_upload() and loop.time() < deadline:
        await asyncio.sleep(0.2)  # the workflow schedules the upload on this host's queue at once
    await uploads.shutdown()
