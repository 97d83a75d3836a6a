"""SlotGate: one long-lived workflow per account that hands out its plan's concurrency slots.

A task workflow asks once (the `request_slot` activity signals the gate, starting it if needed)
and then waits for the `slot_granted` signal. A waiting task costs nothing: no timer, no activity,
no query, no database work. The gate keeps the line (ordered by task creation, as
`queue_position` counts) and the running set in its state, and does work only when a task
arrives, leaves or the plan changes:

- every end of a task workflow signals `release`; a task whose workflow died is failed by the
  sweeper, and the gate's audit drops any slot holder whose task row has ended;
- a grant to a task whose workflow is gone fails; the gate settles that task and moves on. A grant
  can also reach a task whose workflow has not started yet (a fresh gate reads the line from the rows,
  and a row is committed before its workflow starts): that task waits in line again once its workflow
  runs (LATE_START_PATCH), and the sweeper settles it if its workflow never starts;
- a fresh gate (first use, or after an operator terminated it) rebuilds its state from the task
  rows before granting anything, so the plan limit holds across a gate restart;
- continue-as-new keeps the history bounded.
"""

from __future__ import annotations

import asyncio
import bisect
from datetime import timedelta
from typing import TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import FailureError

with workflow.unsafe.imports_passed_through():
    from sorapi.contracts import activities, names
    from sorapi.contracts.activities import Activity
    from sorapi.contracts.messages import GateRequest, GateState, GateWaiter
    from sorapi.workflows import steps

A = TypeVar("A")
R = TypeVar("R")
DB_TIMEOUT = timedelta(seconds=60)
DB_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30))
AUDIT_AFTER = timedelta(minutes=5)
"""While the account is full and tasks wait, check the slot holders this often: a slot whose release
never came (its task ended by a path that skipped it) comes back within this time."""
LATE_START_PATCH = "late-start"
"""Gates since ask, after a failed grant, whether the task's workflow runs after all, and queue it again if so.
Before, such a task was failed as an orphan, and a task whose workflow started just after the grant failed."""


@workflow.defn(name=names.SLOT_GATE_WORKFLOW)
class SlotGateWorkflow:
    @workflow.init
    def __init__(self, state: GateState) -> None:
        self._account_id = state.account_id
        self._limit = state.limit
        self._running: dict[str, None] = dict.fromkeys(state.running)
        self._waiting: list[GateWaiter] = sorted(state.waiting)
        self._queued = {waiter.task_id for waiter in self._waiting}
        self._max_history = state.max_history
        self._more_in_rows = state.more_in_rows
        self._released_while_recovering: set[str] | None = None

    @workflow.run
    async def run(self, state: GateState) -> None:
        if not state.recovered:
            await self._recover()
        while True:
            try:
                await workflow.wait_condition(
                    lambda: self._grantable() or self._history_full() or self._line_read(),
                    timeout=AUDIT_AFTER if self._waiting else None,
                )
            except asyncio.TimeoutError:
                await self._audit()
                continue
            if self._grantable():
                await self._grant()
                continue
            if self._line_read():
                await self._recover()
                continue
            await workflow.wait_condition(workflow.all_handlers_finished)
            workflow.continue_as_new(self._state(recovered=True))

    @workflow.signal(name=names.GATE_REQUEST_SIGNAL)
    def request(self, req: GateRequest) -> None:
        """A task waits for a slot (again, after an activity retry: then nothing changes)."""
        self._limit = req.limit
        self._enqueue(req.waiter)

    @workflow.signal(name=names.GATE_RELEASE_SIGNAL)
    def release(self, task_id: str) -> None:
        """A task ended: its slot, or its place in line, is free."""
        self._running.pop(task_id, None)
        if task_id in self._queued:
            self._queued.discard(task_id)
            self._waiting = [waiter for waiter in self._waiting if waiter.task_id != task_id]
        if self._released_while_recovering is not None:
            self._released_while_recovering.add(task_id)

    @workflow.signal(name=names.GATE_LIMIT_SIGNAL)
    def set_limit(self, limit: int) -> None:
        """The account changed plans: the new limit applies to the tasks already waiting."""
        self._limit = limit

    @workflow.query(name=names.GATE_STATE_QUERY)
    def state(self) -> GateState:
        return self._state(recovered=True)

    def _enqueue(self, waiter: GateWaiter) -> None:
        if waiter.task_id in self._running or waiter.task_id in self._queued:
            return
        bisect.insort(self._waiting, waiter)
        self._queued.add(waiter.task_id)

    def _grantable(self) -> bool:
        return bool(self._waiting) and len(self._running) < self._limit

    def _line_read(self) -> bool:
        """The part of a long line read from the rows is through: read the next part."""
        return self._more_in_rows and not self._waiting and len(self._running) < self._limit

    def _history_full(self) -> bool:
        info = workflow.info()
        return info.get_current_history_length() >= self._max_history or info.is_continue_as_new_suggested()

    async def _grant(self) -> None:
        """Hand every free slot to the front of the line, telling the tasks all at once."""
        granted = []
        while self._grantable():
            waiter = self._waiting.pop(0)
            self._queued.discard(waiter.task_id)
            self._running[waiter.task_id] = None
            granted.append(waiter)
        await asyncio.gather(*(self._tell(waiter) for waiter in granted))

    async def _tell(self, waiter: GateWaiter) -> None:
        try:
            await workflow.get_external_workflow_handle(waiter.task_id).signal(names.SLOT_GRANTED_SIGNAL)
        except FailureError:  # no workflow runs under the task's id: it ended, or it has not started yet
            self._running.pop(waiter.task_id, None)
            if not workflow.patched(LATE_START_PATCH):
                await self._db(activities.SETTLE_ORPHAN, waiter.task_id)
                return
            if await self._db(activities.SETTLE_ORPHAN, waiter.task_id):
                workflow.logger.info("task %s started after its grant was sent; it waits in line again", waiter.task_id)
                self._enqueue(waiter)

    async def _recover(self) -> None:
        """Rebuild the line and the slot holders from the task rows.

        Minds signals that arrive while the rows are read.
        """
        self._released_while_recovering = set()
        snapshot = await self._db(activities.GATE_SNAPSHOT, self._account_id)
        released, self._released_while_recovering = self._released_while_recovering, None
        self._limit = snapshot.limit
        self._more_in_rows = snapshot.more
        for task_id in snapshot.running:
            if task_id not in released:
                self._running[task_id] = None
        for waiter in snapshot.waiting:
            if waiter.task_id not in released:
                self._enqueue(waiter)

    async def _audit(self) -> None:
        """Drop slot holders whose task row has ended (the release of such a task never came)."""
        ended = await self._db(activities.ENDED_TASKS, list(self._running))
        for task_id in ended:
            self._running.pop(task_id, None)

    async def _db(self, activity: Activity[A, R], arg: A) -> R:
        return await steps.run(activity, arg, start_to_close_timeout=DB_TIMEOUT, retry_policy=DB_RETRY)

    def _state(self, *, recovered: bool) -> GateState:
        return GateState(
            account_id=self._account_id,
            limit=self._limit,
            running=list(self._running),
            waiting=list(self._waiting),
            recovered=recovered,
            more_in_rows=self._more_in_rows,
            max_history=self._max_history,
        )
