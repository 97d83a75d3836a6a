"""The slot gate (workflows/slot_gate.py) on a real Temporal dev server and the real task rows.

The plan limit holds under load and across continue-as-new and a gate restart, the line is FIFO by creation, a plan
change reaches waiting tasks, a terminated task's slot comes back, and a start deadline expires a waiting task. Only the
render is faked, under its real name.
"""

from __future__ import annotations

import asyncio
import inspect
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment
from temporalio.worker import Worker

from sorapi.activities.slot_gate import GateActivities
from sorapi.activities.sweeper import SweeperActivities
from sorapi.adapters import gates
from sorapi.contracts import names
from sorapi.contracts.messages import (
    GateState,
    RenderResult,
    RenderSpec,
    StoredObject,
    SweepInput,
    UploadInput,
    VideoTaskInput,
)
from sorapi.domain.ids import new_task_id, slot_gate_workflow_id
from sorapi.store import ledger
from sorapi.store.models import Account, LedgerEntry, Task, utcnow
from sorapi.workers.orchestrator import WORKFLOWS, sandbox_runner
from tests.stack import make_account, own_sessions
from tests.test_workflow import PRICE, _meta, _spec, orchestration_activities


@pytest.fixture(scope="module")
async def sessions() -> AsyncIterator[Any]:
    """A database of the module's own: the sweeper looks at every task in it."""
    async with own_sessions() as own:
        yield own


class Renders:
    """A fake render that counts how many run at once and can hold them until released."""

    def __init__(self, hold: bool = False) -> None:
        self.now = self.most = 0
        self.order: list[str] = []
        self.gate = asyncio.Event()
        if not hold:
            self.gate.set()

    def activity(self) -> Callable[..., Any]:
        @activity.defn(name=names.RENDER_VIDEO)
        async def render(spec: RenderSpec) -> RenderResult:
            self.now += 1
            self.most = max(self.most, self.now)
            self.order.append(spec.task_id)
            try:
                await self.gate.wait()
                await asyncio.sleep(0.3)  # long enough that both slots' renders overlap on a busy box
            finally:
                self.now -= 1
            return RenderResult(host_queue=activity.info().task_queue, files=[], meta=_meta())

        return render


@activity.defn(name=names.UPLOAD_OUTPUTS)
async def upload(arg: UploadInput) -> list[StoredObject]:
    return [StoredObject(format="mp4", key=f"tasks/{arg.task_id}/video.mp4", content_type="video/mp4", size_bytes=1)]


class Orchestra:
    def __init__(self, env: WorkflowEnvironment, queue: str, render_queue: str) -> None:
        self.env, self.queue, self.render_queue = env, queue, render_queue

    async def start(self, account_id: str, task_id: str, max_queue_s: int = 0) -> WorkflowHandle[Any, Any]:
        return await self.env.client.start_workflow(
            names.VIDEO_TASK_WORKFLOW,
            VideoTaskInput(
                task_id=task_id,
                account_id=account_id,
                price=PRICE,
                render=_spec(task_id),
                render_queue=self.render_queue,
                max_queue_s=max_queue_s,
            ),
            id=task_id,
            task_queue=self.queue,
        )

    def gate(self, account_id: str) -> WorkflowHandle[Any, Any]:
        return self.env.client.get_workflow_handle(slot_gate_workflow_id(account_id))

    async def gate_state(self, account_id: str) -> GateState:
        return await self.gate(account_id).query(names.GATE_STATE_QUERY, result_type=GateState)


@asynccontextmanager
async def orchestra(
    env: WorkflowEnvironment,
    sessions: Any,
    renders: Renders,
    gate_max_history: int = 5_000,
    workflow_task_slots: int = 100,
) -> AsyncIterator[Orchestra]:
    queue, render_queue = f"orch-{uuid.uuid4().hex}", f"render-{uuid.uuid4().hex}"
    db_activities = orchestration_activities(sessions, gate_max_history)
    async with (
        Worker(
            env.client,
            task_queue=queue,
            workflows=WORKFLOWS,
            activities=db_activities,
            workflow_runner=sandbox_runner(),
            max_concurrent_activities=64,
            max_concurrent_workflow_tasks=workflow_task_slots,
        ),
        Worker(env.client, task_queue=render_queue, activities=[renders.activity(), upload]),
    ):
        yield Orchestra(env, queue, render_queue)


async def _tasks(
    sessions: Any,
    count: int,
    *,
    plan: str = "free",
    account_id: str | None = None,
    spacing: timedelta = timedelta(milliseconds=1),
) -> tuple[str, list[str]]:
    """`count` queued tasks with their holds, created `spacing` apart (oldest first)."""
    if account_id is None:
        account_id, _ = await make_account(sessions, plan=plan, credits=PRICE * count + 1000)
    ids, start = [new_task_id() for _ in range(count)], utcnow()
    async with sessions.begin() as session:
        account = await ledger.lock_account(session, account_id)
        for n, task_id in enumerate(ids):
            session.add(
                Task(
                    id=task_id,
                    account_id=account_id,
                    fingerprint=task_id,
                    request={},
                    price=PRICE,
                    outputs=[],
                    created_at=start + n * spacing,
                )
            )
            await session.flush()
            await ledger.reserve(session, account, task_id, PRICE)
    return account_id, ids


async def _until(check: Callable[[], Any], timeout_s: float = 30.0) -> None:
    """Wait until `check()` (a bool, or an awaitable of one) holds."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await _value(check()):
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


async def _statuses(sessions: Any, ids: list[str]) -> dict[str, str]:
    async with sessions() as session:
        return dict((await session.execute(select(Task.id, Task.status).where(Task.id.in_(ids)))).all())


async def test_fifty_tasks_at_once_never_exceed_the_plan_limit_across_continue_as_new(
    local_env: WorkflowEnvironment, sessions: Any
) -> None:
    renders = Renders()
    account_id, ids = await _tasks(sessions, 50)
    async with orchestra(local_env, sessions, renders, gate_max_history=150) as run:
        handles = await asyncio.gather(*(run.start(account_id, task_id) for task_id in ids))
        results = await asyncio.gather(*(handle.result() for handle in handles))
        history = await run.gate(account_id).fetch_history()
        state = await run.gate_state(account_id)
    assert results == ["succeeded"] * 50
    assert renders.most == 2, f"{renders.most} renders ran at once on a 2-slot plan"
    first = history.events[0].workflow_execution_started_event_attributes
    assert first.continued_execution_run_id, "the gate continued as new under load"
    assert (state.running, state.waiting) == ([], [])
    async with sessions() as session:
        account = await session.get(Account, account_id)
    assert account.reserved == 0 and account.balance == 1000


async def test_a_burst_larger_than_the_workers_workflow_task_slots_drains(
    local_env: WorkflowEnvironment, sessions: Any
) -> None:
    """Asking never waits on the gate's own workflow task: the ask is a signal the server takes at once.

    With 2 workflow-task slots and 12 tasks started together, tasks whose asks waited for the gate's answer would hold
    every slot the gate needs to answer (an update-based ask did exactly that: see docs/architecture.md).
    """
    renders = Renders()
    account_id, ids = await _tasks(sessions, 12)
    async with orchestra(local_env, sessions, renders, workflow_task_slots=2) as run:
        handles = await asyncio.gather(*(run.start(account_id, task_id) for task_id in ids))
        results = await asyncio.wait_for(asyncio.gather(*(handle.result() for handle in handles)), 120)
    assert results == ["succeeded"] * 12
    assert renders.most == 2


async def test_the_line_is_fifo_by_creation_whatever_order_tasks_ask_in(
    local_env: WorkflowEnvironment, sessions: Any
) -> None:
    renders = Renders(hold=True)
    account_id, ids = await _tasks(sessions, 6)
    busy, waiting = ids[:2], ids[2:]
    async with orchestra(local_env, sessions, renders) as run:
        handles = [await run.start(account_id, task_id) for task_id in busy]
        await _until(lambda: renders.now == 2)
        handles += [await run.start(account_id, task_id) for task_id in reversed(waiting)]
        await _until(lambda: _gate_waits(run, account_id, 4))
        assert [w.task_id for w in (await run.gate_state(account_id)).waiting] == waiting
        renders.gate.set()
        assert await asyncio.gather(*(h.result() for h in handles)) == ["succeeded"] * 6
    pairs = [set(renders.order[n : n + 2]) for n in (0, 2, 4)]  # two slots: tasks start two by two
    assert pairs == [set(busy), set(waiting[:2]), set(waiting[2:])]


async def test_a_plan_change_reaches_tasks_already_waiting(local_env: WorkflowEnvironment, sessions: Any) -> None:
    renders = Renders(hold=True)
    account_id, ids = await _tasks(sessions, 4)
    async with orchestra(local_env, sessions, renders) as run:
        handles = [await run.start(account_id, task_id) for task_id in ids]
        await _until(lambda: renders.now == 2)
        await _until(lambda: _gate_waits(run, account_id, 2))
        async with sessions.begin() as session:
            await session.execute(update(Account).where(Account.id == account_id).values(plan="pro"))
        await gates.tell_new_limit(local_env.client, account_id, 8)
        await _until(lambda: renders.now == 4)
        renders.gate.set()
        await asyncio.gather(*(h.result() for h in handles))


async def test_a_terminated_task_gives_its_slot_back_through_the_sweeper(
    local_env: WorkflowEnvironment, sessions: Any
) -> None:
    renders = Renders(hold=True)
    account_id, (dead, alive, waiter) = await _tasks(sessions, 3)
    async with orchestra(local_env, sessions, renders) as run:
        handles = {task_id: await run.start(account_id, task_id) for task_id in (dead, alive, waiter)}
        await _until(lambda: renders.now == 2)
        await _until(lambda: _gate_waits(run, account_id, 1))
        await handles[dead].terminate("an operator's terminate skips every settlement")
        sweeper = SweeperActivities(
            sessions, local_env.client, orchestration_queue=run.queue, webhook_queue_prefix="unused"
        )
        swept = await ActivityEnvironment().run(sweeper.sweep_stranded, SweepInput())
        assert swept.settled == [dead]
        await _until(lambda: renders.now == 2)  # the waiter got the freed slot
        renders.gate.set()
        assert await handles[waiter].result() == "succeeded"
    async with sessions() as session:
        task = await session.get(Task, dead)
        kinds = (await session.scalars(select(LedgerEntry.kind).where(LedgerEntry.task_id == dead))).all()
    assert (task.status, task.error_code) == ("failed", "internal_error")
    assert sorted(kinds) == ["release", "reserve"]


async def test_a_grant_that_reaches_a_task_before_its_workflow_starts_leaves_it_waiting(
    local_env: WorkflowEnvironment, sessions: Any
) -> None:
    """The API commits a task's row before it starts the workflow, and a fresh gate reads its line from the rows.

    The gate's grant to a task whose workflow has not started yet fails. The task stays queued, and it runs once its
    workflow starts. Before the `late-start` patch it was failed as an orphan (CI, 2026-12-02).
    """
    account_id, (first, late) = await _tasks(sessions, 2)
    async with orchestra(local_env, sessions, Renders()) as run:
        assert await (await run.start(account_id, first)).result() == "succeeded"
        await _until(lambda: _settle_orphan_ran(run, account_id))
        assert await _statuses(sessions, [late]) == {late: "queued"}
        assert await (await run.start(account_id, late)).result() == "succeeded"


async def test_after_a_failed_grant_only_a_task_whose_workflow_ended_is_settled(
    local_env: WorkflowEnvironment, sessions: Any
) -> None:
    """`settle_orphan`'s three answers: no workflow yet, a workflow that runs after all, one that ended."""
    account_id, (absent, alive, ended) = await _tasks(sessions, 3)
    nobody = f"nobody-{uuid.uuid4().hex}"  # no worker polls it: its workflows run and never move
    handles = [
        await local_env.client.start_workflow(
            names.VIDEO_TASK_WORKFLOW,
            VideoTaskInput(task_id=t, account_id=account_id, price=PRICE, render=_spec(t)),
            id=t,
            task_queue=nobody,
        )
        for t in (alive, ended)
    ]
    await handles[1].terminate("an operator's terminate skips every settlement")
    gate = GateActivities(sessions)
    answers = [await ActivityEnvironment(local_env.client).run(gate.settle_orphan, t) for t in (absent, alive, ended)]
    await handles[0].terminate("done")
    assert answers == [False, True, False]
    assert await _statuses(sessions, [absent, alive, ended]) == {absent: "queued", alive: "queued", ended: "failed"}
    async with sessions() as session:
        assert (await session.get(Account, account_id)).reserved == 2 * PRICE, "only the ended task's hold came back"


async def test_a_restarted_gate_rebuilds_its_line_from_the_task_rows(
    local_env: WorkflowEnvironment, sessions: Any
) -> None:
    renders = Renders(hold=True)
    account_id, ids = await _tasks(sessions, 5)
    async with orchestra(local_env, sessions, renders) as run:
        handles = [await run.start(account_id, task_id) for task_id in ids]
        await _until(lambda: renders.now == 2)
        await _until(lambda: _gate_waits(run, account_id, 3))
        await run.gate(account_id).terminate("operator restarts the gate")
        renders.gate.set()  # the running tasks' releases start a new gate, rebuilt from the rows
        assert await asyncio.gather(*(h.result() for h in handles)) == ["succeeded"] * 5
    assert renders.most == 2


async def test_a_task_past_its_start_deadline_expires_with_its_hold_released(
    local_env: WorkflowEnvironment, sessions: Any
) -> None:
    renders = Renders(hold=True)
    account_id, (one, two, late) = await _tasks(sessions, 3)
    async with orchestra(local_env, sessions, renders) as run:
        busy = [await run.start(account_id, task_id) for task_id in (one, two)]
        await _until(lambda: renders.now == 2)
        assert await (await run.start(account_id, late, max_queue_s=1)).result() == "expired"
        assert (await run.gate_state(account_id)).waiting == [], "the expired task left the line"
        renders.gate.set()
        await asyncio.gather(*(h.result() for h in busy))
    async with sessions() as session:
        task = await session.get(Task, late)
        account = await session.get(Account, account_id)
    assert (task.status, task.error_code, task.started_at) == ("expired", "queue_timeout", None)
    assert account.reserved == 0 and account.balance == 3 * PRICE + 1000 - 2 * PRICE


async def test_the_sweeper_settles_a_task_whose_workflow_never_started(
    local_env: WorkflowEnvironment, sessions: Any
) -> None:
    account_id, (stranded,) = await _tasks(sessions, 1)
    async with sessions.begin() as session:
        await session.execute(
            update(Task).where(Task.id == stranded).values(created_at=utcnow() - timedelta(minutes=5))
        )
    sweeper = SweeperActivities(
        sessions, local_env.client, orchestration_queue=f"orch-{uuid.uuid4().hex}", webhook_queue_prefix="unused"
    )
    swept = await ActivityEnvironment().run(sweeper.sweep_stranded, SweepInput())
    assert stranded in swept.settled
    again = await ActivityEnvironment().run(sweeper.sweep_stranded, SweepInput(since=swept.next_since))
    assert stranded not in again.settled
    assert (await _statuses(sessions, [stranded])) == {stranded: "failed"}
    async with sessions() as session:
        assert (await session.get(Account, account_id)).reserved == 0


async def _value(result: Any) -> bool:
    return bool(await result) if inspect.isawaitable(result) else bool(result)


async def _settle_orphan_ran(run: Orchestra, account_id: str) -> bool:
    """The gate's history has a completed `settle_orphan` (the answer to a failed grant)."""
    events = (await run.gate(account_id).fetch_history()).events
    scheduled = {
        e.event_id
        for e in events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and e.activity_task_scheduled_event_attributes.activity_type.name == names.SETTLE_ORPHAN
    }
    return any(
        e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED
        and e.activity_task_completed_event_attributes.scheduled_event_id in scheduled
        for e in events
    )


async def _gate_waits(run: Orchestra, account_id: str, count: int) -> bool:
    try:
        return len((await run.gate_state(account_id)).waiting) == count
    except Exception:  # the gate is not started yet
        return False
