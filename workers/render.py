"""A render worker: one per GPU, one render at a time, plus its own host queue for uploads.

The host queue name is unique to this process, so an upload always runs where the files are;
if the process dies, the upload times out waiting for it and the workflow renders again.
"""

from __future__ import annotations

import socket
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from temporalio.client import Client
from temporalio.worker import Worker

from activities.render import RenderActivities
from sorapi import storage
from sorapi.settings import Settings
from sorapi.temporal import connect
from workers.run import run_until_signalled


def host_queue_name(settings: Settings) -> str:
    return f"{settings.render_queue}-host-{socket.gethostname()}-{uuid.uuid4().hex[:8]}"


def create_workers(client: Client, settings: Settings) -> tuple[Worker, Worker]:
    s3 = storage.make_client(settings)
    storage.ensure_bucket(s3, settings.s3_bucket)
    renders = RenderActivities(settings, s3, host_queue_name(settings))
    render = Worker(
        client, task_queue=settings.render_queue, activities=[renders.render_video],
        activity_executor=ThreadPoolExecutor(max_workers=1, thread_name_prefix="render"),
        max_concurrent_activities=1, graceful_shutdown_timeout=timedelta(seconds=5),
    )
    uploads = Worker(
        client, task_queue=renders.host_queue, activities=[renders.upload_outputs],
        activity_executor=ThreadPoolExecutor(max_workers=2, thread_name_prefix="upload"),
        max_concurrent_activities=2, graceful_shutdown_timeout=timedelta(seconds=30),
    )
    return render, uploads


async def main(settings: Settings) -> None:
    client = await connect(settings)
    await run_until_signalled(*create_workers(client, settings))
