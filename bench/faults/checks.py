"""What must hold once the load has drained after a fault, read from the rows, S3 and the receiver.

Webhooks, "exactly one per event": SorAPI promises at-least-once delivery with a stable id (the
README, Webhooks: `webhook-id`, also `Idempotency-Key` and the payload's `id`, "is the same on every
retry and redelivery of one event: dedupe on it"). So, with the receiver deduplicating on that id
as the README tells receivers to, each terminal task must have exactly one delivered event, the one
of its end state (`webhook_policy.event_id(task, status)`), answered 2xx, and no event of a state it
did not end in; the orchestrator must also have recorded exactly one `delivered` attempt for it. The
same id arriving twice (a worker killed between the POST and its record) is allowed by that
contract: it is counted as a redelivery, not as a second webhook.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime
from typing import Any

from minio import Minio
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client, WorkflowExecutionStatus

from sorapi.contracts import status
from sorapi.domain.webhook_policy import event_id
from sorapi.store.ledger import CAPTURE, RELEASE, RESERVE, fold
from sorapi.store.models import Account, LedgerEntry, Task, WebhookDelivery
from tests.webhook_receiver import Received

LIVE = (status.QUEUED, status.RUNNING)


async def retrying(what: Any, *args: Any, attempts: int = 60) -> Any:
    """The bench's own reads go through the faults too: retry them for about a minute."""
    for attempt in range(attempts):
        try:
            return await what(*args)
        except Exception:
            if attempt == attempts - 1:
                raise
            await asyncio.sleep(1.0)


async def live_count(sessions: async_sessionmaker[AsyncSession], account_ids: list[str]) -> dict[str, int]:
    async with sessions() as session:
        rows = await session.execute(
            select(Task.status, func.count())
            .where(Task.account_id.in_(account_ids), Task.status.in_(LIVE))
            .group_by(Task.status)
        )
    return {state: count for state, count in rows.all()}


async def drain(
    sessions: async_sessionmaker[AsyncSession],
    temporal: Client,
    account_ids: list[str],
    timeout_s: float,
) -> dict[str, Any]:
    """Wait until every task of the accounts is terminal and its workflow closed, or `timeout_s`.

    A closed task has its settlement, the discard of partial outputs and the start of its webhook all done.
    """
    began = time.monotonic()
    deadline = began + timeout_s
    closed: set[str] = set()
    live: list[tuple[str, str]] = []
    open_workflows: list[str] = []
    while True:
        try:
            async with sessions() as session:
                rows = (
                    await session.execute(select(Task.id, Task.status).where(Task.account_id.in_(account_ids)))
                ).all()
            live = [(task_id, state) for task_id, state in rows if state in LIVE]
            open_workflows = []
            if not live:
                for task_id, _ in rows:
                    if task_id in closed:
                        continue
                    described = await temporal.get_workflow_handle(task_id).describe()
                    if described.status == WorkflowExecutionStatus.RUNNING:
                        open_workflows.append(task_id)
                    else:
                        closed.add(task_id)
        except Exception as exc:  # a fault's tail: try again
            live, open_workflows = [("?", f"unreadable: {type(exc).__name__}")], []
        if not live and not open_workflows:
            return {"drain_s": round(time.monotonic() - began, 1), "live": [], "open_workflows": []}
        if time.monotonic() > deadline:
            return {"drain_s": round(time.monotonic() - began, 1), "live": live, "open_workflows": open_workflows}
        await asyncio.sleep(1.0)


async def wait_webhooks(
    sessions: async_sessionmaker[AsyncSession], received: list[Received], account_ids: list[str], timeout_s: float
) -> float:
    """Until the receiver holds the end event of every terminal task, or `timeout_s`; returns the wait."""
    began = time.monotonic()
    while True:
        async with sessions() as session:
            rows = (await session.execute(select(Task.id, Task.status).where(Task.account_id.in_(account_ids)))).all()
        got = {r.headers.get("webhook-id") for r in list(received)}
        if all(event_id(task_id, state) in got for task_id, state in rows if state in status.TERMINAL):
            return round(time.monotonic() - began, 1)
        if time.monotonic() - began > timeout_s:
            return round(time.monotonic() - began, 1)
        await asyncio.sleep(1.0)


def objects_by_task(s3: Minio, bucket: str, task_ids: set[str]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = defaultdict(list)
    for obj in s3.list_objects(bucket, prefix="tasks/", recursive=True):
        name = str(obj.object_name)
        task_id = name.split("/")[1]
        if task_id in task_ids:
            found[task_id].append(name)
    return found


async def first_success_after(
    sessions: async_sessionmaker[AsyncSession], account_ids: list[str], after: float
) -> float | None:
    """Seconds from `after` (epoch) until the first task of the accounts succeeded after it."""
    when = datetime.fromtimestamp(after, UTC)
    async with sessions() as session:
        first = await session.scalar(
            select(func.min(Task.finished_at)).where(
                Task.account_id.in_(account_ids), Task.status == status.SUCCEEDED, Task.finished_at >= when
            )
        )
    return None if first is None else round((first - when).total_seconds(), 2)


async def invariants(
    sessions: async_sessionmaker[AsyncSession],
    s3: Minio,
    bucket: str,
    account_ids: list[str],
    accepted: dict[str, str],
    received: list[Received],
) -> dict[str, Any]:
    """Every invariant of the issue over the accounts' tasks; each list names the tasks that break it.

    `accepted`: task id → idempotency key, for every create the API answered 200.
    """
    async with sessions() as session:
        tasks = (await session.scalars(select(Task).where(Task.account_id.in_(account_ids)))).all()
        entries = (await session.scalars(select(LedgerEntry).where(LedgerEntry.account_id.in_(account_ids)))).all()
        accounts = (await session.scalars(select(Account).where(Account.id.in_(account_ids)))).all()
        deliveries = (
            await session.scalars(select(WebhookDelivery).where(WebhookDelivery.task_id.in_([t.id for t in tasks])))
        ).all()
    by_id = {t.id: t for t in tasks}
    objects = await asyncio.to_thread(objects_by_task, s3, bucket, set(by_id))
    kinds: dict[str, Counter[str]] = defaultdict(Counter)
    captured: dict[str, int] = defaultdict(int)
    for entry in entries:
        if entry.task_id is not None:
            kinds[entry.task_id][entry.kind] += 1
            if entry.kind == CAPTURE:
                captured[entry.task_id] += entry.amount

    lost = [{"task_id": t.id, "status": t.status} for t in tasks if t.status not in status.TERMINAL]
    phantom = sorted(task_id for task_id in accepted if task_id not in by_id)
    double = []
    charged_without_outputs = []
    outputs_without_charge = []
    unsettled_holds = []
    left_in_s3 = []
    missing_objects = []
    for task in tasks:
        k = kinds[task.id]
        if k[CAPTURE] > 1 or captured[task.id] > task.price or (k[CAPTURE] and k[RELEASE]):
            double.append({"task_id": task.id, "status": task.status, "entries": dict(k), "price": task.price})
        has_outputs = bool(task.outputs) or bool(objects.get(task.id))
        if k[CAPTURE] and not (task.status in (status.SUCCEEDED, status.EXPIRED) and task.outputs):
            charged_without_outputs.append({"task_id": task.id, "status": task.status, "outputs": task.outputs})
        if has_outputs and not k[CAPTURE]:
            outputs_without_charge.append(
                {"task_id": task.id, "status": task.status, "objects": objects.get(task.id, [])}
            )
        if task.status in status.TERMINAL and (k[RESERVE] != 1 or k[CAPTURE] + k[RELEASE] != 1):
            unsettled_holds.append({"task_id": task.id, "status": task.status, "entries": dict(k)})
        if task.status in (status.FAILED, status.CANCELLED) and objects.get(task.id):
            left_in_s3.append({"task_id": task.id, "status": task.status, "objects": objects[task.id]})
        if task.status == status.SUCCEEDED:
            keys = {o["key"] for o in task.outputs}
            if not keys or not keys <= set(objects.get(task.id, [])):
                missing_objects.append({"task_id": task.id, "missing": sorted(keys - set(objects.get(task.id, [])))})

    ledger_off = []
    for account in accounts:
        truth = fold((e.kind, e.amount) for e in entries if e.account_id == account.id)
        if (truth.balance, truth.reserved) != (account.balance, account.reserved) or account.reserved != 0:
            ledger_off.append(
                {
                    "account_id": account.id,
                    "plan": account.plan,
                    "cached": [account.balance, account.reserved],
                    "ledger": [truth.balance, truth.reserved],
                    "note": "reserved must be 0 once every task has ended",
                }
            )

    hooks = webhook_checks(tasks, deliveries, received)
    ends = Counter(t.status for t in tasks)
    return {
        "tasks": len(tasks),
        "ends": dict(ends),
        "error_codes": dict(Counter(t.error_code for t in tasks if t.error_code)),
        "lost": lost,
        "phantom": phantom,
        "double_charges": double,
        "charged_without_outputs": charged_without_outputs,
        "outputs_without_charge": outputs_without_charge,
        "unsettled_holds": unsettled_holds,
        "ledger_off": ledger_off,
        "left_in_s3": left_in_s3,
        "succeeded_missing_objects": missing_objects,
        **hooks,
    }


def webhook_checks(tasks: Any, deliveries: Any, received: list[Received]) -> dict[str, Any]:
    """Per terminal task: one delivered event, its end state's, and one `delivered` row for it."""
    ours = {t.id for t in tasks}
    by_task: dict[str, list[Received]] = defaultdict(list)
    for hook in list(received):
        try:
            body = json.loads(hook.body)
        except ValueError:
            continue
        if body.get("task_id") in ours:
            by_task[str(body["task_id"])].append(hook)
    delivered_rows: Counter[str] = Counter(d.event_id for d in deliveries if d.outcome == "delivered")
    missing, wrong_event, rows_off, bad_body = [], [], [], []
    redeliveries = 0
    for task in tasks:
        if task.status not in status.TERMINAL:
            continue
        expected = event_id(task.id, task.status)
        hooks = by_task.get(task.id, [])
        ids = Counter(h.headers.get("webhook-id") for h in hooks)
        redeliveries += sum(n - 1 for n in ids.values())
        if expected not in ids:
            missing.append({"task_id": task.id, "status": task.status, "received": sorted(map(str, ids))})
        others = sorted(str(i) for i in ids if i != expected)
        if others:
            wrong_event.append({"task_id": task.id, "status": task.status, "other_events": others})
        for hook in hooks:
            body = json.loads(hook.body)
            if hook.headers.get("webhook-id") == expected and (
                body.get("id") != expected or body.get("status") != task.status
            ):
                bad_body.append({"task_id": task.id, "status": task.status, "body_status": body.get("status")})
        if delivered_rows[expected] != 1:
            rows_off.append({"task_id": task.id, "event_id": expected, "delivered_rows": delivered_rows[expected]})
    return {
        "webhooks_received": sum(len(v) for v in by_task.values()),
        "webhook_redeliveries": redeliveries,
        "webhooks_missing": missing,
        "webhooks_wrong_event": wrong_event,
        "webhooks_bad_body": bad_body,
        "webhook_delivered_rows_off": rows_off,
    }


FAILURES = (
    "lost",
    "phantom",
    "double_charges",
    "charged_without_outputs",
    "outputs_without_charge",
    "unsettled_holds",
    "ledger_off",
    "left_in_s3",
    "succeeded_missing_objects",
    "webhooks_missing",
    "webhooks_wrong_event",
    "webhooks_bad_body",
    "webhook_delivered_rows_off",
)
"""Keys of `invariants()` that must be empty lists."""
