"""Orchestration throughput: tasks/s end to end with a no-op render, against a raw Temporal workflow.

The raw workflow runs as many no-op activities as a task's workflow has steps (its activities and its local activities:
the baseline does the same number of things, each the plain way); both are started `concurrency` at a time.

The tasks go through a second API process whose SORAPI_RENDER_QUEUE is a queue of the bench's own,
served here by a render host that renders nothing and uploads nothing: what is left is the API, the
gates, the workflows and their database work. The stack's render worker never sees these tasks.
The raw workflow and its activity are served here too, by the runner the stack's orchestrator uses
(SORAPI_WORKFLOW_SANDBOX).
"""

from __future__ import annotations

import asyncio
import math
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.worker import Worker, WorkflowRunner

from bench.queue import noop, tasks
from bench.queue.drain import cpu_seconds
from sorapi.adapters.settings import settings_from_env
from sorapi.cli import servers
from sorapi.contracts import names, status
from sorapi.contracts.messages import RenderMeta, RenderResult, RenderSpec, StoredObject, UploadInput
from sorapi.store.models import Task
from sorapi.workers.orchestrator import workflow_runner


class NoopRenderHost:
    """Answers render and upload at once: a render host with infinitely fast hardware."""

    def __init__(self, host_queue: str) -> None:
        self.host_queue = host_queue

    @activity.defn(name=names.RENDER_VIDEO)
    async def render_video(self, spec: RenderSpec) -> RenderResult:
        meta = RenderMeta(
            model=spec.model,
            family=spec.family,
            width=spec.width,
            height=spec.height,
            num_frames=spec.num_frames,
            fps=spec.fps,
            steps=0,
            seed=spec.seed,
            guidance_scale=spec.guidance_scale,
            requested_width=spec.width,
            requested_height=spec.height,
            dev_model=True,
            host="bench-noop",
        )
        return RenderResult(host_queue=self.host_queue, files=[], meta=meta)

    @activity.defn(name=names.UPLOAD_OUTPUTS)
    async def upload_outputs(self, arg: UploadInput) -> list[StoredObject]:
        return []


class NoopApi(httpx.AsyncClient):
    """A client of the no-op API process, which knows that process's pid (its CPU is measured)."""

    pid: int


@asynccontextmanager
async def noop_api(stack_env: dict[str, str], workdir: Path, temporal: Client) -> AsyncIterator[NoopApi]:
    """A client of a second API process whose tasks render on a no-op host served here (see above)."""
    render_queue = f"bench-noop-render-{uuid.uuid4().hex[:8]}"
    host = NoopRenderHost(render_queue + "-host")
    port = servers.free_port()
    env = {**stack_env, "SORAPI_RENDER_QUEUE": render_queue, "SORAPI_API_PORT": str(port)}
    with open(workdir / f"noop-api-{port}.log", "wb") as log:
        api_proc = subprocess.Popen(
            [sys.executable, "-m", "sorapi", "api"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    try:
        servers.wait_for_http(f"http://127.0.0.1:{port}/readyz", [api_proc], 120)
        async with (
            Worker(temporal, task_queue=render_queue, activities=[host.render_video], max_concurrent_activities=200),
            Worker(temporal, task_queue=host.host_queue, activities=[host.upload_outputs]),
            NoopApi(base_url=f"http://127.0.0.1:{port}", timeout=60) as api,
        ):
            api.pid = api_proc.pid
            yield api
    finally:
        api_proc.terminate()
        api_proc.wait(timeout=30)


async def run(
    stack_env: dict[str, str],
    workdir: Path,
    sessions: async_sessionmaker[AsyncSession],
    temporal: Client,
    count: int,
    concurrency: int,
    rounds: int = 5,
    processes: dict[str, int] | None = None,
) -> dict[str, object]:
    """`rounds` rounds of tasks, then raw workflows twice.

    Each round's ratio is the raw runs' mean time against the tasks' time; the median counts (single rounds on 2 cores
    spread by ±0.15). With the stack's `processes`, each run also reports their CPU-seconds per task (and this
    process's, `bench`, which serves the no-op hosts and the raw workflows): steadier than the wall time.
    """
    runs: list[dict[str, Any]] = []
    runner = workflow_runner(settings_from_env(stack_env))
    async with noop_api(stack_env, workdir, temporal) as api:
        measured = {**(processes or {}), "noop_api": api.pid, "bench": os.getpid()}
        for _ in range(rounds):
            task = await _per_task(measured, count, _tasks(api, sessions, count, concurrency))
            steps = await _steps(temporal, task.pop("first"))
            before = await _per_task(measured, count, _raw(temporal, runner, count, concurrency, steps))
            runs.append({"raw_before": before, "task": task})
            runs[-1]["raw_after"] = await _per_task(measured, count, _raw(temporal, runner, count, concurrency, steps))
    for one in runs:
        raw_s = (one["raw_before"]["wall_s"] + one["raw_after"]["wall_s"]) / 2
        one["ratio"] = round(raw_s / one["task"]["wall_s"], 3)
    middle = sorted(runs, key=lambda one: one["ratio"])[len(runs) // 2]
    return {
        "tasks": count,
        "concurrency": concurrency,
        "activities_per_task": steps,
        "task": middle["task"],
        "raw": middle["raw_before"],
        "ratio": middle["ratio"],
        "rounds": [one["ratio"] for one in runs],
        "runs": runs,
    }


async def _per_task(processes: dict[str, int], count: int, phase: Awaitable[dict[str, Any]]) -> dict[str, Any]:
    """`phase`'s report, with the CPU-seconds per task of each of `processes` during it."""
    before = cpu_seconds(processes)
    report = await phase
    after = cpu_seconds(processes)
    spent = {role: round((after[role] - before[role]) / count, 4) for role in processes}
    return {**report, "cpu_s_per_task": {**spent, "total": round(sum(spent.values()), 4)}}


async def _tasks(
    api: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession], count: int, concurrency: int
) -> dict[str, Any]:
    """`count` tasks through the API on fresh Scale accounts (32 slots each: no task waits for a slot)."""
    made = await tasks.accounts(sessions, ["scale"] * math.ceil(count / 32))
    began_at, began = datetime.now(UTC), time.monotonic()
    created = await tasks.submit(api, [key for _, key in made], count, concurrency)
    submit_s = time.monotonic() - began
    await tasks.wait_ended(sessions, created, 60 + count)
    async with sessions() as session:
        last = await session.scalar(select(func.max(Task.finished_at)).where(Task.id.in_(created)))
        succeeded = await session.scalar(
            select(func.count()).where(Task.id.in_(created), Task.status == status.SUCCEEDED)
        )
    assert last is not None, "no task finished"
    wall_s = (last - began_at).total_seconds()
    return {
        "submit_s": round(submit_s, 1),
        "wall_s": round(wall_s, 1),
        "per_s": round(count / wall_s, 1),
        "succeeded": succeeded,
        "first": created[0],
    }


async def _steps(temporal: Client, task_id: str) -> int:
    """The steps of a task's workflow: what the raw baseline does as many no-op activities of."""
    history = await temporal.get_workflow_handle(task_id).fetch_history()
    return sum(map(_is_step, history.events))


async def _raw(temporal: Client, runner: WorkflowRunner, count: int, concurrency: int, steps: int) -> dict[str, Any]:
    """`count` raw workflows of `steps` no-op activities, started `concurrency` at a time."""
    raw_queue = f"bench-raw-{uuid.uuid4().hex[:8]}"
    async with Worker(
        temporal,
        task_queue=raw_queue,
        workflows=[noop.RawTaskWorkflow],
        activities=[noop.noop],
        workflow_runner=runner,
    ):
        began = time.monotonic()
        todo, handles = iter(range(count)), []

        async def starter() -> None:
            for n in todo:
                handles.append(
                    await temporal.start_workflow(
                        noop.RawTaskWorkflow.run, steps, id=f"{raw_queue}-{n}", task_queue=raw_queue
                    )
                )

        await asyncio.gather(*(starter() for _ in range(concurrency)))
        submit_s = time.monotonic() - began
        await asyncio.gather(*(handle.result() for handle in handles))
        wall_s = time.monotonic() - began
    return {"submit_s": round(submit_s, 1), "wall_s": round(wall_s, 1), "per_s": round(count / wall_s, 1)}


LOCAL_ACTIVITY_MARKER = "core_local_activity"


def _is_step(event: Any) -> bool:
    """An activity the workflow scheduled, or a local activity it ran (recorded as a marker)."""
    if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
        return True
    return (
        event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
        and event.marker_recorded_event_attributes.marker_name == LOCAL_ACTIVITY_MARKER
    )
