"""A render's life on real workers: live progress, cancellation, a SIGKILLed worker, failures.

One dedicated stack renders from a SORAPI_MODEL_DIR of tiny pipelines saved in diffusers format
(the real `from_pretrained(..., local_files_only=True)` path), with a catalog that adds test
models: `test-slow` (480x480, 12 steps with a 0.3 s pause after each, so there is time to
watch, cancel and kill it on any machine), `test-broken` (weights that do not load) and
`test-missing` (no weights at all). The render heartbeat timeout is 4 s so a dead worker is
noticed quickly.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client

from sorapi.activities.pipelines import build_tiny_pipeline
from sorapi.adapters import storage
from sorapi.adapters.settings import settings_from_env
from sorapi.contracts import errors, names
from sorapi.contracts.messages import RenderProgress
from sorapi.domain.catalog import DEFAULT_CATALOG_PATH
from sorapi.store.engine import make_async_engine, make_sessionmaker
from sorapi.store.migrate import upgrade
from sorapi.store.models import Account, LedgerEntry
from tests.stack import Api, Stack, create_pg_database, drop_pg_database, make_account, start_stack

SLOW_STEPS = 12
LONG_STEPS = 40
TEST_MODELS = f"""
[models.test-slow]
family = "wan"
weights = "tiny-wan"
dtype = "float32"
fps = 4
max_duration_s = 2
default_steps = {SLOW_STEPS}
resolutions = ["480x480"]

[models.test-long]
family = "wan"
weights = "tiny-wan"
dtype = "float32"
fps = 4
max_duration_s = 2
default_steps = {LONG_STEPS}
resolutions = ["480x480"]

[models.test-broken]
family = "wan"
weights = "broken"
fps = 4
max_duration_s = 2
default_steps = 2

[models.test-missing]
family = "ltx"
weights = "absent"
fps = 8
max_duration_s = 2
default_steps = 2
"""
STREAMS = 200
"""Concurrent event streams on one task in the streaming test; also the per-key limit of this stack."""
SLOW = {
    "prompt": "a lighthouse beam sweeping over a stormy sea",
    "model_version": "test-slow",
    "resolution": "480x480",
    "duration": 1,
    "guidance": 1.0,
}  # guidance 1: no CFG pass, half the compute


@pytest.fixture(scope="module")
def lifecycle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, str]]:
    root = tmp_path_factory.mktemp("render-lifecycle")
    models = root / "models"
    build_tiny_pipeline("wan").save_pretrained(models / "tiny-wan")
    (models / "broken").mkdir()
    (models / "broken" / "model_index.json").write_text(json.dumps({"_class_name": "WanPipeline"}))
    catalog = root / "catalog.toml"
    catalog.write_text(DEFAULT_CATALOG_PATH.read_text() + TEST_MODELS)
    pg_url = create_pg_database()
    upgrade(pg_url)
    stack = start_stack(
        root,
        pg_url,
        SORAPI_MODEL_DIR=str(models),
        SORAPI_CATALOG_PATH=str(catalog),
        SORAPI_RENDER_HEARTBEAT_TIMEOUT_S="4",
        SORAPI_DEV_STEP_DELAY_S="0.3",
        SORAPI_RATE_STATUS_PER_MIN="100000",
        SORAPI_RATE_STATUS_BURST="100000",
        SORAPI_STREAMS_PER_KEY=str(STREAMS),
    )
    try:
        yield stack, pg_url
    finally:
        stack.stop()
        drop_pg_database(pg_url)


@pytest.fixture(scope="module")
async def db(lifecycle: tuple[Stack, str]) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = make_async_engine(lifecycle[1])
    yield make_sessionmaker(engine)
    await engine.dispose()


@pytest.fixture(scope="module")
async def temporal(lifecycle: tuple[Stack, str]) -> Client:
    return await lifecycle[0].temporal_client()


@pytest.fixture
async def client(lifecycle: tuple[Stack, str], db: async_sessionmaker[AsyncSession]) -> AsyncIterator[Api]:
    _, key = await make_account(db, credits=10_000)
    api = Api(lifecycle[0].base_url, key)
    yield api
    await api.close()


async def create(api: Api, payload: dict[str, Any]) -> str:
    answer = await api.generate(payload)
    assert answer.status_code == 200, answer.text
    return answer.json()["task_id"]


async def render_activity(temporal: Client, task_id: str) -> Any | None:
    """The task's pending render activity (worker identity, attempt, last heartbeat), if any."""
    desc = await temporal.get_workflow_handle(task_id).describe()
    return next(
        (p for p in desc.raw_description.pending_activities if p.activity_type.name == names.RENDER_VIDEO), None
    )


async def progress_of(temporal: Client, pending: Any) -> RenderProgress:
    """The last heartbeat, decrypted and decoded as the API does."""
    return (await temporal.data_converter.decode(pending.heartbeat_details.payloads, [RenderProgress]))[0]


async def denoising(temporal: Client, task_id: str, timeout_s: float = 60) -> Any:
    """Wait until the task's render heartbeats a denoising step; returns the pending activity."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        pending = await render_activity(temporal, task_id)
        if pending is not None and pending.heartbeat_details.payloads:
            beat = await progress_of(temporal, pending)
            if beat.phase == "denoising" and beat.step < beat.total:
                return pending
        await asyncio.sleep(0.05)
    raise TimeoutError(f"{task_id} never reported a denoising step")


async def ledger_kinds(db: async_sessionmaker[AsyncSession], task_id: str) -> list[str]:
    async with db() as session:
        rows = await session.scalars(select(LedgerEntry.kind).where(LedgerEntry.task_id == task_id))
        return sorted(rows)


def log_records(logs: str, task_id: str, event: str) -> list[dict[str, Any]]:
    records = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
    return [r for r in records if r.get("task_id") == task_id and r.get("event") == event]


async def test_progress_moves_strictly_between_0_and_100_while_rendering(
    lifecycle: tuple[Stack, str], client: Api
) -> None:
    task_id = await create(client, SLOW)
    seen: list[int] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        body = (await client.status(task_id)).json()
        if body["status"] == "running":
            seen.append(body["progress"])
        if body["status"] in ("succeeded", "failed"):
            break
        await asyncio.sleep(0.1)
    assert body["status"] == "succeeded", body
    assert body["progress"] == 100
    moving = sorted({p for p in seen if 0 < p < 100})
    assert len(moving) >= 3, f"progress should move while rendering, saw {seen}"
    assert seen == sorted(seen), f"progress never goes backwards, saw {seen}"
    render = body["render"]
    assert not render["dev_model"] and (render["width"], render["height"], render["steps"]) == (480, 480, SLOW_STEPS)
    assert (render["fps"], render["num_frames"]) == (4, 5), "1 s at the model's 4 fps, rounded to 4k+1"


async def test_cancel_stops_the_render_cleans_up_and_releases_credits(
    lifecycle: tuple[Stack, str], client: Api, temporal: Client, db: async_sessionmaker[AsyncSession]
) -> None:
    stack = lifecycle[0]
    task_id = await create(client, SLOW)
    pending = await denoising(temporal, task_id)
    step_at_cancel = (await progress_of(temporal, pending)).step

    asked = time.monotonic()
    cancel = await client.http.post(f"/api/tasks/{task_id}/cancel", headers=client.auth())
    assert cancel.status_code == 202, cancel.text
    assert cancel.json()["task_id"] == task_id
    done = await client.wait(task_id, timeout_s=60)
    took = time.monotonic() - asked

    assert done["status"] == "cancelled" and done["error_code"] == "cancelled", done
    assert done["response"] == [] and done["credits_charged"] == 0
    assert took < 15, f"cancellation took {took:.1f} s"
    [stopped] = log_records(stack.logs(), task_id, "render cancelled")
    step = int(stopped["at"].split("after step ")[1].split("/")[0])
    print(f"cancel asked at step {step_at_cancel}, render stopped after step {step}, task cancelled in {took:.2f} s")
    assert step_at_cancel <= step < SLOW_STEPS, stopped
    assert step - step_at_cancel <= 4, "the cancel reaches the loop within a step or so (+ heartbeat lag)"
    assert not log_records(stack.logs(), task_id, "render finished")
    assert not (stack.data_dir / "renders" / task_id / "attempt-1").exists(), "partial files are removed"
    assert await ledger_kinds(db, task_id) == ["release", "reserve"]
    async with db() as session:
        account = (
            await session.scalars(
                select(Account)
                .join(LedgerEntry, LedgerEntry.account_id == Account.id)
                .where(LedgerEntry.task_id == task_id)
            )
        ).first()
    assert account is not None and account.reserved == 0 and account.balance == 10_000

    again = await client.http.post(f"/api/tasks/{task_id}/cancel", headers=client.auth())
    assert again.status_code == 409 and again.json()["error"]["code"] == "task_not_cancellable"


@pytest.mark.parametrize(
    ("model", "detail"),
    [
        ("test-missing", "weights for test-missing not found at "),
        ("test-broken", "render failed: "),
    ],
)
async def test_a_pipeline_that_cannot_render_fails_the_task_with_render_failed(
    lifecycle: tuple[Stack, str], client: Api, db: async_sessionmaker[AsyncSession], model: str, detail: str
) -> None:
    """The customer gets the code and its fixed message; the paths and exception text go to the log."""
    task_id = await create(
        client, {"prompt": "a red kite over a beach", "model_version": model, "resolution": "854x480", "duration": 1}
    )
    done = await client.wait(task_id, timeout_s=60)
    assert done["status"] == "failed" and done["error_code"] == "render_failed", done
    assert done["error_message"] == errors.task_message("render_failed") and detail not in done["error_message"]
    assert any(task_id in line and detail in line for line in lifecycle[0].logs().splitlines())
    assert await ledger_kinds(db, task_id) == ["release", "reserve"]


async def extra_render_worker(stack: Stack, name: str, **env: str) -> tuple[subprocess.Popen[bytes], Path]:
    """One more render worker on the stack, started and polling; (process, its log)."""
    log_path = stack.data_dir / f"{name}.log"
    extra = subprocess.Popen(
        [sys.executable, "-m", "sorapi", "worker", "render"],
        env={**stack.env_for("worker render"), **env},
        stdout=open(log_path, "wb"),  # noqa: SIM115 - the child owns it
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while "workers started" not in log_path.read_text(errors="replace"):
        assert extra.poll() is None and time.monotonic() < deadline, log_path.read_text(errors="replace")
        await asyncio.sleep(0.2)
    return extra, log_path


async def test_sigkilled_render_worker_costs_a_retry_not_the_task(
    lifecycle: tuple[Stack, str], client: Api, temporal: Client, db: async_sessionmaker[AsyncSession]
) -> None:
    stack = lifecycle[0]
    extra, log_path = await extra_render_worker(stack, "extra-render-worker")
    try:
        # Two renders for two workers: one of them lands on the extra worker.
        task_ids = [await create(client, SLOW), await create(client, {**SLOW, "seed": 5})]
        pending = {task_id: await denoising(temporal, task_id) for task_id in task_ids}
        victim = next(t for t, p in pending.items() if p.last_worker_identity.startswith(f"{extra.pid}@"))
        assert pending[victim].attempt == 1
        os.kill(extra.pid, signal.SIGKILL)
        extra.wait()

        results = [await client.wait(task_id, timeout_s=150) for task_id in task_ids]
    finally:
        if extra.poll() is None:
            extra.kill()
            extra.wait()
    assert [r["status"] for r in results] == ["succeeded", "succeeded"], results
    done = results[task_ids.index(victim)]
    assert [o["format"] for o in done["outputs"]] == ["mp4", "webm", "jpg", "json"]
    settings = settings_from_env(stack.env)
    s3 = storage.make_client(settings)
    keys = sorted(
        o.object_name for o in s3.list_objects(settings.s3_bucket, prefix=storage.task_prefix(victim), recursive=True)
    )
    assert keys == sorted(
        storage.object_key(victim, name) for name in ("video.mp4", "video.webm", "thumbnail.jpg", "metadata.json")
    ), keys
    assert await ledger_kinds(db, victim) == ["capture", "reserve"], "one hold, one capture"
    logs = log_path.read_text(errors="replace") + stack.logs()
    starts = log_records(logs, victim, "render started")
    assert [s["pid"] for s in starts] == [extra.pid, starts[1]["pid"]] and starts[1]["pid"] != extra.pid, starts
    assert len(log_records(logs, victim, "render finished")) == 1
    assert not (stack.data_dir / "renders" / victim).exists(), "the killed attempt's scratch files are gone too"


async def test_sigterm_drains_a_render_worker_its_render_finishes_and_uploads_there(
    lifecycle: tuple[Stack, str], client: Api, temporal: Client, db: async_sessionmaker[AsyncSession]
) -> None:
    """SIGTERM mid-render: the worker takes no new render, finishes this one and uploads it itself.

    No second render runs anywhere, and the worker exits within the grace.
    """
    stack = lifecycle[0]
    grace_s = 60
    extra, log_path = await extra_render_worker(
        stack, "draining-render-worker", SORAPI_RENDER_DRAIN_GRACE_S=str(grace_s)
    )
    try:
        task_ids = [await create(client, {**SLOW, "seed": 21}), await create(client, {**SLOW, "seed": 22})]
        pending = {task_id: await denoising(temporal, task_id) for task_id in task_ids}
        victim = next(t for t, p in pending.items() if p.last_worker_identity.startswith(f"{extra.pid}@"))
        asked = time.monotonic()
        extra.send_signal(signal.SIGTERM)
        await asyncio.to_thread(extra.wait, grace_s + 30)
        exited_s = time.monotonic() - asked
        results = [await client.wait(task_id, timeout_s=150) for task_id in task_ids]
    finally:
        if extra.poll() is None:
            extra.kill()
            extra.wait()
    assert extra.returncode == 0 and exited_s < grace_s, (extra.returncode, exited_s)
    assert [r["status"] for r in results] == ["succeeded", "succeeded"], results
    logs = log_path.read_text(errors="replace") + stack.logs()
    assert [r["pid"] for r in log_records(logs, victim, "render started")] == [extra.pid], "rendered once, there"
    assert [r["pid"] for r in log_records(logs, victim, "outputs uploaded")] == [extra.pid], "uploaded by it"
    assert await ledger_kinds(db, victim) == ["capture", "reserve"]


def api_cpu_s(stack: Stack) -> float:
    """CPU seconds the stack's API process has used so far."""
    for stat in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = stat.read_bytes().split(b"\0")
        except OSError:
            continue
        if args[1:4] == [b"-m", b"sorapi", b"api"] and f"{stack.proc.pid}" in _ancestors(int(stat.parent.name)):
            fields = (stat.parent / "stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    raise LookupError("no API process under the stack")


def _ancestors(pid: int) -> list[str]:
    found = []
    while pid > 1:
        pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        found.append(str(pid))
    return found


async def test_200_streams_on_one_task_cost_the_api_less_than_200_pollers(
    lifecycle: tuple[Stack, str], client: Api
) -> None:
    """The streams share one progress watcher and wake on NOTIFY; pollers each ask every second.

    Same model, same render length, the API's CPU over each task's whole life. One more stream than the key's limit is a
    429.
    """
    stack = lifecycle[0]
    long = {**SLOW, "model_version": "test-long"}

    task_id = await create(client, long)
    before = api_cpu_s(stack)
    streams = [asyncio.create_task(client.events(task_id, timeout_s=180)) for _ in range(STREAMS)]
    await asyncio.sleep(3)
    over = await client.http.get(f"/api/tasks/{task_id}/events", headers=client.auth())
    results = await asyncio.gather(*streams)
    streaming_cpu = api_cpu_s(stack) - before
    assert over.status_code == 429 and over.json()["error"]["code"] == "too_many_streams", over.text
    for messages in results:
        kinds = [m["event"] for m in messages if "event" in m]
        assert kinds[0] == "queued" and kinds[-1] == "succeeded" and "progress" in kinds, kinds
        percents = [m["data"]["percent"] for m in messages if m.get("event") == "progress"]
        known = [p for p in percents if p is not None]
        assert known == sorted(known) and known, f"progress only moves forward: {percents}"

    task_id = await create(client, {**long, "seed": 99})
    before = api_cpu_s(stack)

    # Pollers get connections of their own: the streams' idle ones may be closed by the server's
    # keep-alive timeout just as a poller reuses one (a ReadError, once in CI).
    pollers = httpx.AsyncClient(
        base_url=str(client.http.base_url), timeout=30, limits=httpx.Limits(max_connections=None)
    )

    async def poll_every_second() -> None:
        while True:
            try:
                answer = await pollers.get("/api/status", params={"task_id": task_id}, headers=client.auth())
            except httpx.TransportError:  # a connection dropped under 400 at once: a poller asks again
                continue
            if answer.json()["status"] in ("succeeded", "failed"):
                return
            await asyncio.sleep(1)

    async with pollers:
        await asyncio.gather(*(poll_every_second() for _ in range(STREAMS)))
    polling_cpu = api_cpu_s(stack) - before
    assert streaming_cpu < polling_cpu, (streaming_cpu, polling_cpu)
