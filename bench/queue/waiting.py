"""What waiting costs and what a long line does to creates.

Waiting cost: CPU-seconds per second of the orchestrator worker, the Temporal server, PostgreSQL
and the API over a quiet window while the tasks wait and no render can run. The window opens once
the queue has settled: every live task is in its gate's line; the sweeper, which looks at each
queued task once when it is `min_age_s` old (a cost per arrival, not per second of waiting), has
passed the newest; and the tail of the burst is through (no slot request reached Temporal for
`QUIET_S`: requests that timed out while a gate was swamped are retried for a while). Each window
also records what the Temporal server did meanwhile (its Prometheus counters), so that a figure
says where its CPU went.

Create pace: POST /api/generate on the account with the line, between two runs on fresh accounts
(empty lines) whose mean is the baseline, the same client all three times.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from collections import Counter
from datetime import datetime, timedelta

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError

from bench.api import load
from bench.api.cpu import CpuMeter
from bench.queue import tasks
from sorapi.contracts import names
from sorapi.contracts.messages import GateState, SweepResult
from sorapi.domain.ids import slot_gate_workflow_id

MEASURED = ("orchestrator", "temporal", "postgres", "api")
QUIET_S = 20.0
"""The burst is through when no slot request reached Temporal for this long."""
QUERY_TIMEOUT = timedelta(seconds=60)
"""A gate with a long line answers a query with all of it, after replaying its history if it was evicted."""


async def _sweeper_since(temporal: Client) -> datetime | None:
    """Where the last finished sweep left its watermark: every queued task created before it was looked at."""
    described = await temporal.get_schedule_handle(names.SWEEPER_SCHEDULE).describe()
    for run in reversed(described.info.recent_actions):
        handle = temporal.get_workflow_handle(
            run.action.workflow_id,  # type: ignore[attr-defined]
            run_id=run.action.first_execution_run_id,  # type: ignore[attr-defined]
            result_type=SweepResult,
        )
        if (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED:
            return (await handle.result()).next_since
    return None


async def _gates_hold(temporal: Client, live: dict[str, int]) -> bool:
    """Whether every account's gate holds (runs or lines up) all its live tasks.

    A gate still working through a burst of requests may not answer a query in time: then it does not hold them yet.
    """
    for account_id, count in live.items():
        try:
            state: GateState = await temporal.get_workflow_handle(slot_gate_workflow_id(account_id)).query(
                names.GATE_STATE_QUERY, result_type=GateState, rpc_timeout=QUERY_TIMEOUT
            )
        except RPCError:
            return False
        if len(state.running) + len(state.waiting) != count:
            return False
    return True


def temporal_ops(metrics_port: str) -> Counter[str]:
    """Requests the Temporal server has answered so far by operation, and `forwarded`.

    `forwarded` counts tasks its matching service passed between task-queue partitions (a backlog with no poller to take
    it).
    """
    ops: Counter[str] = Counter()
    for line in httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=30).text.splitlines():
        if line.startswith("service_requests{") and 'service_name="frontend"' in line:
            ops[line.split('operation="')[1].split('"')[0]] += int(float(line.rsplit(" ", 1)[1]))
        elif line.startswith("forwarded_per_tl{"):
            ops["forwarded"] += int(float(line.rsplit(" ", 1)[1]))
    return ops


async def settle(
    sessions: async_sessionmaker[AsyncSession],
    temporal: Client,
    metrics_port: str | None = None,
    *,
    timeout_s: float = 1800,
) -> float:
    """Seconds until the queue has settled (see the module docstring).

    Without `metrics_port`, only until the gates hold every live task (the backlog of creates is through).
    """
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        newest = await tasks.newest_queued(sessions)
        since = await _sweeper_since(temporal) if metrics_port else None
        swept = not metrics_port or newest is None or (since is not None and since > newest)
        if swept and await _gates_hold(temporal, await tasks.live_per_account(sessions)):
            if not metrics_port:
                return time.monotonic() - started
            before = temporal_ops(metrics_port)
            await asyncio.sleep(QUIET_S)
            if not (temporal_ops(metrics_port) - before)["SignalWithStartWorkflowExecution"]:
                return time.monotonic() - started
        await asyncio.sleep(3)
    raise TimeoutError(f"the queue did not settle within {timeout_s:.0f} s")


def _others(usage: dict[str, float]) -> float:
    """Cores busy outside this bench and everything it started: other engineers on a shared machine."""
    return round(usage["machine_cpu_pct"] / 100 * (os.cpu_count() or 1) - usage["ours_cpu_pct"] / 100, 2)


async def window(processes: dict[str, int], metrics_port: str, seconds: float) -> dict[str, object]:
    """CPU-seconds per second of each measured process over `seconds`, their total and the machine's.

    Also the Temporal requests meanwhile (long polls and worker heartbeats left out: always there).
    """
    meter = CpuMeter(
        {role: processes[role] for role in MEASURED if role != "postgres"},
        commands=(),
        trees={"postgres": processes["postgres"], "ours": os.getpid()},
    )
    ops = temporal_ops(metrics_port)
    meter.start()
    await asyncio.sleep(seconds)
    usage = meter.stop(seconds)
    done = {
        op: int(n)
        for op, n in (temporal_ops(metrics_port) - ops).most_common()
        if not op.startswith(("Poll", "RecordWorkerHeartbeat"))
    }
    cores = {role: usage[f"{role}_cpu_pct"] / 100 for role in MEASURED}
    return {
        **cores,
        "total": round(sum(cores.values()), 4),
        "machine_pct": usage["machine_cpu_pct"],
        "others_cores": _others(usage),
        "temporal_ops": done,
    }


async def pace(
    api: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    temporal: Client,
    processes: dict[str, int],
    queued_key: str,
    plan: str,
    concurrency: int,
    seconds: float,
    rounds: int,
) -> dict[str, object]:
    """Generate req/s on the account with the line, between two runs on fresh accounts whose mean is the baseline.

    The ratio is the median over `rounds`. Each run starts once the previous one's tasks are in their lines, so none
    pays for another's backlog, and records the API's and the machine's CPU, and the machine's beyond this bench's
    processes: on a shared machine a slow run shows whether someone else was busy.
    """

    async def run(key: str) -> dict[str, object]:
        async def call(n: int) -> bool:
            await tasks.create(api, key)
            return True

        await settle(sessions, temporal)
        meter = CpuMeter({"api": processes["api"]}, commands=(), trees={"ours": os.getpid()})
        meter.start()
        result = await load.run("generate", call, concurrency=concurrency, seconds=seconds)
        usage = meter.stop(result.seconds)
        return {**result.as_dict(), **usage, "others_cores": _others(usage)}

    async def fresh() -> dict[str, object]:
        ((_, key),) = await tasks.accounts(sessions, [plan])
        return await run(key)

    each = []
    for _ in range(rounds):
        before = await fresh()
        queued = await run(queued_key)
        after = await fresh()
        baseline = (float(before["rps"]) + float(after["rps"])) / 2  # type: ignore[arg-type]
        ratio = round(float(queued["rps"]) / baseline, 3)  # type: ignore[arg-type]
        each.append({"fresh": [before, after], "queued": queued, "ratio": ratio})
    return {"ratio": statistics.median(float(r["ratio"]) for r in each), "rounds": each}  # type: ignore[arg-type]
