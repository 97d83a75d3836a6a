"""Talking to an account's slot gate (`workflows/slot_gate.py`) from outside workflows.

Used by the gate's activities, the sweeper and the admin API; the gate's own logic lives in
its workflow.
"""

from __future__ import annotations

from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from sorapi.contracts import names
from sorapi.contracts.messages import GateState
from sorapi.domain.ids import slot_gate_workflow_id

DEFAULT_MAX_HISTORY = 5_000
"""A gate continues as new past this many history events."""


async def signal_gate(
    client: Client, account_id: str, signal: str, arg: object, task_queue: str, max_history: int = DEFAULT_MAX_HISTORY
) -> None:
    """Signal the account's gate, starting it first if it is not running.

    A started gate rebuilds its state from the task rows before it grants anything.
    """
    await client.start_workflow(
        names.SLOT_GATE_WORKFLOW,
        GateState(account_id=account_id, max_history=max_history),
        id=slot_gate_workflow_id(account_id),
        task_queue=task_queue,
        start_signal=signal,
        start_signal_args=[arg],
        static_summary=f"slot gate of {account_id}",
    )


async def tell_new_limit(client: Client, account_id: str, limit: int) -> None:
    """A plan change reaches the tasks already waiting at once.

    No running gate: nothing waits, and the next task's request carries the new limit.
    """
    try:
        await client.get_workflow_handle(slot_gate_workflow_id(account_id)).signal(names.GATE_LIMIT_SIGNAL, limit)
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise
