"""Record workflow histories for the replay tests (tests/test_replay.py).

    python -m tests.histories.record                # this tree's workflows
    python -m tests.histories.record --ref 04b4545  # the workflows of an older commit

With `--ref`, the commit is checked out into a temporary git worktree and this module runs again
from there, so its workflows (and message shapes) are that commit's: a history recorded before a
patch stays in the suite and proves the patch keeps old workflows replayable. Activities are
faked under their real names (replay never runs them); the time-skipping server makes timers and
retries instant. Files are written to tests/histories/<prefix><scenario>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ref", help="record with the workflows of this commit")
    parser.add_argument("--prefix", default="", help="prefix of the written file names")
    parser.add_argument("--out", default=str(HERE), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.ref:
        sys.exit(_record_at(args.ref, args.prefix or f"{args.ref}-"))
    asyncio.run(record_all(Path(args.out), args.prefix))


def _record_at(ref: str, prefix: str) -> int:
    """Run this module inside a worktree of `ref`, writing into this tree's histories folder."""
    tree = Path(tempfile.mkdtemp(prefix="sorapi-history-"))
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), ref], check=True, capture_output=True
    )
    try:
        (tree / "tests" / "histories").mkdir(exist_ok=True)
        shutil.copy(Path(__file__), tree / "tests" / "histories" / "record.py")
        env = {**os.environ, "PYTHONPATH": str(tree)}
        return subprocess.run(
            [sys.executable, "-m", "tests.histories.record", "--prefix", prefix, "--out", str(HERE)],
            cwd=tree,
            env=env,
            check=False,
        ).returncode
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False)


async def record_all(out: Path, prefix: str) -> None:
    from temporalio.testing import WorkflowEnvironment

    from sorapi.adapters.converter import DATA_CONVERTER
    from sorapi.cli import servers

    for name, scenario in _scenarios().items():  # a server each: one scenario's leftovers never stop time
        async with await WorkflowEnvironment.start_time_skipping(
            data_converter=DATA_CONVERTER, test_server_existing_path=servers.venv_binary("temporal-test-server")
        ) as env:
            await _register_search_attributes(env.client)
            history = await asyncio.wait_for(scenario(env), timeout=120)
        (out / f"{prefix}{name}.json").write_text(history.to_json())
        print(f"recorded {prefix}{name}.json")


async def _register_search_attributes(client: Any) -> None:
    """The search attributes the workflows upsert (an older commit's upsert none, and lack the module)."""
    try:
        from sorapi.adapters.search_attributes import register
    except ImportError:
        return
    await register(client)


def _scenarios() -> dict[str, Callable[[Any], Awaitable[Any]]]:
    from sorapi.contracts import names

    found = {"video_task_succeeded": _video_task_succeeded, "video_task_render_failed": _video_task_render_failed}
    if hasattr(names, "SLOT_GATE_WORKFLOW"):
        found |= {"video_task_queue_timeout": _video_task_queue_timeout, "slot_gate": _slot_gate}
    found |= {"webhook_delivery": _webhook_delivery, "task_retention": _task_retention}
    return found


def _fakes(render: Callable[..., Any] | None = None) -> list[Any]:
    """Every orchestration and render activity, faked under its real name."""
    from temporalio import activity

    from sorapi.contracts import messages, names

    def fake(name: str, result: Any) -> Any:
        @activity.defn(name=name)
        async def run(*_: Any) -> Any:
            return result(*_) if callable(result) else result

        return run

    meta = messages.RenderMeta(
        model="sora-2-latest",
        family="wan",
        width=48,
        height=48,
        num_frames=9,
        fps=8,
        steps=4,
        seed=1,
        guidance_scale=7.5,
        requested_width=480,
        requested_height=480,
        dev_model=True,
        host="recorder",
    )
    rendered = messages.RenderResult(host_queue="recorder-render", files=[], meta=meta)
    stored = [messages.StoredObject(format="mp4", key="tasks/t/video.mp4", content_type="video/mp4", size_bytes=1)]
    table: dict[str, Any] = {
        "reserve_credits": 16,
        "capture_credits": 16,
        "release_credits": 16,
        "mark_succeeded": True,
        "mark_failed": True,
        "acquire_slot": True,
        "render_video": render or rendered,
        "upload_outputs": stored,
        "start_webhook_delivery": "wh",
        "start_retention": "ret",
        "discard_outputs": 0,
        "expire_task": 0,
        "deliver_webhook": messages.DeliveryOutcome(outcome="delivered", status_code=200),
        "release_slot": None,
        "mark_running": True,
        "gate_snapshot": lambda *_: messages.GateSnapshot(limit=1, running=[], waiting=[]),
        "ended_tasks": [],
        "settle_orphan": False,  # no workflow runs for the task (since the gate's `late-start` patch)
    }
    known = {value for key, value in vars(names).items() if key.isupper() and isinstance(value, str)}
    fakes = [
        result if hasattr(result, "__temporal_activity_definition") else fake(name, result)
        for name, result in table.items()
        if name in known
    ]
    return fakes + ([_request_slot()] if "request_slot" in known else [])


def _request_slot() -> Any:
    from temporalio import activity

    from sorapi.contracts import names

    @activity.defn(name="request_slot")
    async def request_slot(req: Any) -> bool:
        """As if the gate granted at once (the queue-timeout scenario's task never gets this)."""
        if not req["task_id"].startswith("never-granted"):
            await activity.client().get_workflow_handle(req["task_id"]).signal(names.SLOT_GRANTED_SIGNAL)
        return True

    return request_slot


async def _run_video_task(env: Any, task_id: str, *, render: Any = None, max_queue_s: int = 0) -> Any:
    from temporalio.worker import Worker

    from sorapi.contracts import messages, names
    from sorapi.workers.orchestrator import WORKFLOWS, sandbox_runner

    spec = messages.RenderSpec(
        task_id=task_id,
        model="sora-2-latest",
        family="wan",
        weights="w",
        prompt="p",
        negative_prompt=None,
        width=480,
        height=480,
        duration_s=1,
        fps=8,
        guidance_scale=7.5,
        steps=4,
        seed=1,
    )
    fields = {"max_queue_s": max_queue_s} if max_queue_s else {}
    arg = messages.VideoTaskInput(
        task_id=task_id,
        account_id="acct_recorder",
        price=16,
        render=spec,
        render_queue="recorder-render",
        retention_hours=1,
        has_callback=True,
        **fields,
    )
    queue = f"recorder-{uuid.uuid4().hex}"
    fakes = _fakes(render)
    async with (
        Worker(env.client, task_queue=queue, workflows=WORKFLOWS, activities=fakes, workflow_runner=sandbox_runner()),
        Worker(env.client, task_queue="recorder-render", activities=fakes),
    ):
        handle = await env.client.start_workflow(names.VIDEO_TASK_WORKFLOW, arg, id=task_id, task_queue=queue)
        with contextlib.suppress(Exception):  # a failed task's workflow fails: its history is what we keep
            await handle.result()
        return await handle.fetch_history()


async def _video_task_succeeded(env: Any) -> Any:
    return await _run_video_task(env, f"sora2recorded{uuid.uuid4().hex[:8]}")


async def _video_task_render_failed(env: Any) -> Any:
    from temporalio import activity
    from temporalio.exceptions import ApplicationError

    @activity.defn(name="render_video")
    async def broken(*_: Any) -> Any:
        raise ApplicationError("CUDA out of memory", type="render_failed", non_retryable=True)

    return await _run_video_task(env, f"sora2recorded{uuid.uuid4().hex[:8]}", render=broken)


async def _video_task_queue_timeout(env: Any) -> Any:
    return await _run_video_task(env, f"never-granted-{uuid.uuid4().hex[:8]}", max_queue_s=600)


async def _slot_gate(env: Any) -> Any:
    """A gate that grants two tasks whose workflows are gone: both grants fail, and neither task waits again."""
    from temporalio.worker import Worker

    from sorapi.contracts import messages, names
    from sorapi.workers.orchestrator import WORKFLOWS, sandbox_runner

    queue, gate_id = f"recorder-{uuid.uuid4().hex}", f"slot-gate-recorder-{uuid.uuid4().hex[:8]}"
    async with Worker(
        env.client, task_queue=queue, workflows=WORKFLOWS, activities=_fakes(), workflow_runner=sandbox_runner()
    ):
        handle = await env.client.start_workflow(
            names.SLOT_GATE_WORKFLOW, messages.GateState(account_id="acct_r"), id=gate_id, task_queue=queue
        )
        for n in range(2):
            waiter = messages.GateWaiter(queued_at=1_700_000_000.0 + n, task_id=f"gone-{n}")
            await handle.signal(names.GATE_REQUEST_SIGNAL, messages.GateRequest(waiter=waiter, limit=1))
        for _ in range(100):
            state = await handle.query(names.GATE_STATE_QUERY, result_type=messages.GateState)
            if not state.waiting and not state.running:
                break
            await asyncio.sleep(0.05)
        await handle.signal(names.GATE_LIMIT_SIGNAL, 2)
        await handle.terminate("recorded")
        return await handle.fetch_history()


async def _webhook_delivery(env: Any) -> Any:
    from sorapi.contracts import messages, names
    from sorapi.domain import webhook_policy

    return await _run_to_end(
        env,
        names.WEBHOOK_DELIVERY_WORKFLOW,
        lambda queue: messages.WebhookDeliveryInput(
            task_id="sora2recorded",
            event="succeeded",
            event_id=webhook_policy.event_id("sora2recorded", "succeeded"),
            lane=queue,
        ),
    )


async def _task_retention(env: Any) -> Any:
    from sorapi.contracts import messages, names

    expires_at = await env.get_current_time() + timedelta(hours=24)
    return await _run_to_end(
        env,
        names.TASK_RETENTION_WORKFLOW,
        lambda queue: messages.RetentionInput(
            task_id="sora2recorded", expires_at=expires_at, has_callback=True, webhook_queue=queue
        ),
    )


async def _run_to_end(env: Any, workflow: str, make_arg: Callable[[str], Any]) -> Any:
    """Run one workflow to its end on a queue of its own, every activity faked; return its history."""
    from temporalio.worker import Worker

    from sorapi.workers.orchestrator import WORKFLOWS, sandbox_runner

    queue = f"recorder-{uuid.uuid4().hex}"
    async with Worker(
        env.client, task_queue=queue, workflows=WORKFLOWS, activities=_fakes(), workflow_runner=sandbox_runner()
    ):
        handle = await env.client.start_workflow(
            workflow, make_arg(queue), id=f"{workflow}-{uuid.uuid4().hex}", task_queue=queue
        )
        await handle.result()
        return await handle.fetch_history()


if __name__ == "__main__":
    main()
