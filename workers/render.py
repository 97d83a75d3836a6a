"""A render worker: one per GPU, one render at a time, plus its own host queue for uploads.

The host queue name is unique to this process, so an upload always runs where the files are;
if the process dies, the upload times out waiting for it and the workflow renders again.
"""

from __future__ import annotations

import socket
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import structlog
from temporalio.client import Client
from temporalio.worker import Worker

from activities.render import RenderActivities, sweep_scratch
from sorapi import storage
from sorapi.settings import Settings
from sorapi.temporal import connect
from workers.run import run_until_signalled

HEARTBEAT_THROTTLE = timedelta(seconds=0.25)
"""Heartbeats are sent per denoising step; this only caps steps faster than 4/s (tiny dev models)."""
log = structlog.get_logger()


def host_queue_name(settings: Settings) -> str:
    return f"{settings.render_queue}-host-{socket.gethostname()}-{uuid.uuid4().hex[:8]}"


def make_render_activities(settings: Settings) -> RenderActivities:
    """The activities of one render host: its warm pipelines, its S3 client and its own upload queue."""
    s3 = storage.make_client(settings)
    storage.ensure_bucket(s3, settings.s3_bucket)
    return RenderActivities(settings, s3, host_queue_name(settings))


def create_workers(
    client: Client, settings: Settings, renders: RenderActivities | None = None
) -> tuple[Worker, Worker]:
    renders = renders or make_render_activities(settings)
    render = Worker(
        client,
        task_queue=settings.render_queue,
        activities=[renders.render_video],
        activity_executor=ThreadPoolExecutor(max_workers=1, thread_name_prefix="render"),
        max_concurrent_activities=1,
        graceful_shutdown_timeout=timedelta(seconds=5),
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
    from activities.pipelines import device_available

    if not device_available(settings.render_device):
        log.error("render device is not available on this host", device=settings.render_device)
        raise SystemExit(2)
    swept = sweep_scratch(settings.resolved_render_dir)
    if swept:
        log.info("stale render scratch removed", directories=swept)
    client = await connect(settings)
    await run_until_signalled(*create_workers(client, settings))
