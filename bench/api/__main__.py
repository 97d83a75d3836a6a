"""`python -m bench.api`: requests/s and p50/p99 of generate and status beside their ceilings.

Starts a real stack (`sorapi dev` on a fresh PostgreSQL database), then a second API process
whose workflows go to a task queue no worker polls, so every generate costs exactly what the
API does (validate, price, row + hold in one transaction, start the workflow) and no render
competes for the CPU. Ceilings, measured in the same run on the same machine:
  generate ↔ a raw Temporal `start_workflow` loop (same workflow type, input and queue);
  status   ↔ a bare Litestar JSON endpoint on the same server (uvicorn, one process), sent the
             same request (query string, Bearer header).
Each round runs ceiling, subject, ceiling, and the ratio uses the mean of the two ceiling runs;
the report takes the median over rounds. By default the tier that sets a phase's pace gets CPU 0
to itself (`CpuReserved`): the load generator in the HTTP phases, the Temporal server in the
start_workflow phases. Rate limits are raised out of the way but the limiter still runs. Each row
reports where the CPU went (client, API, bare server, PostgreSQL, Temporal, machine).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import uvloop

from bench.api import load
from bench.api.cpu import CpuMeter, CpuReserved, pids_of
from sorapi.adapters.payload_codec import data_converter
from sorapi.adapters.settings import settings_from_env
from sorapi.cli import servers
from sorapi.contracts import names
from sorapi.contracts.messages import VIDEO_TASK_VERSION, VideoTaskInput
from sorapi.contracts.schemas import GenerateRequest
from sorapi.domain.catalog import get_catalog
from sorapi.domain.planning import plan, render_spec

RESULTS = Path(__file__).resolve().parent.parent / "results"
PAYLOAD = {
    "prompt": "A neon-lit city skyline at dusk with flying cars and dynamic lighting",
    "duration": 1,
    "resolution": "480x480",
}
CPU_COLUMNS = ("client", "api", "bare", "postgres", "temporal", "machine")
"""CPU per phase, in % of one core (machine: in % of all cores)."""
HTTP_PHASES = ("bare_endpoint", "status")
PAIRS = (("generate", "raw_start_workflow"), ("status", "bare_endpoint"))
"""(measured phase, its ceiling)."""
PHASES = ("raw_start_workflow", "generate", "bare_endpoint", "status")
TARGETS = {"generate_vs_raw_start_workflow": 0.8, "status_vs_bare_endpoint": 0.5}
UNLIMITED = {
    "SORAPI_RATE_GENERATE_PER_MIN": "1e9",
    "SORAPI_RATE_GENERATE_BURST": "1000000000",
    "SORAPI_RATE_STATUS_PER_MIN": "1e9",
    "SORAPI_RATE_STATUS_BURST": "1000000000",
}


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(args, env=env, stdout=open(log, "wb"), stderr=subprocess.STDOUT, start_new_session=True)


async def _accounts(database_url: str, count: int, plan_name: str) -> list[str]:
    from sorapi.store.accounts import create_account, issue_api_key
    from sorapi.store.engine import make_async_engine, make_sessionmaker

    engine = make_async_engine(database_url)
    keys = []
    async with make_sessionmaker(engine).begin() as session:
        for n in range(count):
            account = await create_account(session, name=f"bench-{n}", plan=plan_name, credits=10**9)
            keys.append(await issue_api_key(session, account.id))
    await engine.dispose()
    return keys


async def measure(
    stack_env: dict[str, str],
    database_url: str,
    temporal_address: str,
    api_url: str,
    bare_url: str,
    queue: str,
    concurrency: int,
    seconds: float,
    accounts: int,
    phases: tuple[str, ...] = PHASES,
    plan_name: str = "scale",
    meter: CpuMeter | None = None,
    pin: bool = True,
    rounds: int = 3,
) -> dict[str, Any]:
    from temporalio.client import Client
    from temporalio.common import Priority, WorkflowIDConflictPolicy, WorkflowIDReusePolicy

    keys = await _accounts(database_url, accounts, plan_name)
    # The API's own converter (payloads encrypted), so both sides pay the same per-start cost.
    converter = data_converter(settings_from_env(stack_env))
    temporal = await Client.connect(temporal_address, data_converter=converter)
    planned = plan(msgspec_request(), get_catalog())
    assert not isinstance(planned, list)

    async def raw_start(n: int) -> bool:
        task_id = "sora2" + uuid.uuid4().hex
        arg = VideoTaskInput(
            task_id=task_id,
            account_id="acct_bench",
            price=planned.price,
            render=render_spec(task_id, planned.request, get_catalog()),
            render_queue=queue,
            version=VIDEO_TASK_VERSION,  # as the API starts it
        )
        await temporal.start_workflow(
            names.VIDEO_TASK_WORKFLOW,
            arg,
            id=task_id,
            task_queue=queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,  # as the API starts it
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            priority=Priority(priority_key=get_catalog().plans[plan_name].priority),
        )
        return True

    # Idle connections are dropped before uvicorn's 5 s keep-alive timeout, or a request can race the close.
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency, keepalive_expiry=2.0)
    async with (
        httpx.AsyncClient(base_url=api_url, timeout=30, limits=limits) as api,
        httpx.AsyncClient(base_url=bare_url, timeout=30, limits=limits) as bare,
    ):
        created: list[tuple[str, str]] = []

        async def generate(n: int) -> bool:
            key = keys[n % len(keys)]
            answer = await api.post("/api/generate", json=PAYLOAD, headers={"Authorization": f"Bearer {key}"})
            if answer.status_code == 200:
                created.append((key, answer.json()["task_id"]))
            return answer.status_code == 200

        # Status and the bare endpoint get the same request (query string, Bearer header), so the
        # client spends the same on both and the difference between them is the server's.
        async def status(n: int) -> bool:
            key, task_id = created[n % len(created)]
            answer = await api.get(f"/api/status?task_id={task_id}", headers={"Authorization": f"Bearer {key}"})
            return answer.status_code == 200

        async def bare_get(n: int) -> bool:
            key, task_id = created[n % len(created)] if created else (keys[0], "none")
            answer = await bare.get(f"/bare?task_id={task_id}", headers={"Authorization": f"Bearer {key}"})
            return answer.status_code == 200

        calls = {"raw_start_workflow": raw_start, "generate": generate, "bare_endpoint": bare_get, "status": status}
        if ("status" in phases or "bare_endpoint" in phases) and "generate" not in phases:
            await load.run("seed", generate, concurrency=concurrency, seconds=2.0)  # tasks for status to read
        rounds_run: list[dict[str, list[dict[str, Any]]]] = []
        for _ in range(rounds):
            measured: dict[str, list[dict[str, Any]]] = {}
            for name in run_order(phases):
                with CpuReserved(pace_setter(name)) if pin else contextlib.nullcontext():
                    await load.run(name, calls[name], concurrency=concurrency, seconds=min(2.0, seconds))  # warm up
                    if meter:
                        meter.start()
                    result = await load.run(name, calls[name], concurrency=concurrency, seconds=seconds)
                    measured.setdefault(name, []).append(
                        {**result.as_dict(), **(meter.stop(result.seconds) if meter else {})}
                    )
            rounds_run.append(measured)
    return summarize(rounds_run)


def pace_setter(phase: str) -> set[int]:
    """The processes that get a core to themselves in `phase` (CpuReserved).

    The load generator for the HTTP phases (it needs a whole core there), the Temporal server for the start_workflow
    phases (the API, PostgreSQL and the light client share the other core, as if Temporal ran on hosts of its own).
    """
    return {os.getpid()} if phase in HTTP_PHASES else pids_of("temporal")


def run_order(phases: tuple[str, ...]) -> list[str]:
    """Each measured phase between two runs of its ceiling, whose mean the ratio uses.

    A machine that drifts during a round (Temporal slows as every start grows its history) then favours neither side.
    """
    order: list[str] = []
    for measured, ceiling in PAIRS:
        if measured in phases and ceiling in phases:
            order += [ceiling, measured, ceiling]
    return order + [name for name in phases if name not in order]


def summarize(rounds_run: list[dict[str, list[dict[str, Any]]]]) -> dict[str, Any]:
    """Per phase its median round (a ceiling's rps: the mean of its two runs); per ratio the median over rounds."""

    def rps(one: dict[str, list[dict[str, Any]]], name: str) -> float:
        return statistics.mean(run["rps"] for run in one[name])

    pairs = [(name, ceiling) for name, ceiling in PAIRS if name in rounds_run[0] and ceiling in rounds_run[0]]
    per_round = {
        f"{name}_vs_{ceiling}": [rps(one, name) / rps(one, ceiling) for one in rounds_run] for name, ceiling in pairs
    }
    results = {}
    for name in rounds_run[0]:
        middle = sorted(rounds_run, key=lambda one: rps(one, name))[len(rounds_run) // 2]
        results[name] = {**middle[name][0], "rps": round(rps(middle, name), 1)}
    return {
        "results": results,
        "ratios": {key: round(statistics.median(v), 3) for key, v in per_round.items()},
        "ratio_per_round": {key: [round(x, 3) for x in v] for key, v in per_round.items()},
        "targets": {key: TARGETS[key] for key in per_round},
        "each_round": rounds_run,
    }


def msgspec_request() -> GenerateRequest:
    import msgspec

    return msgspec.convert(PAYLOAD, GenerateRequest)


def _table(report: dict[str, Any]) -> str:
    results = report["results"]
    lines = [
        f"{'operation':<20} {'req/s':>9} {'p50 ms':>9} {'p99 ms':>9} {'errors':>7}  "
        + " ".join(f"{c + ' cpu':>13}" for c in CPU_COLUMNS)
    ]
    for name, r in results.items():
        lines.append(
            f"{name:<20} {r['rps']:>9.1f} {r['p50_ms']:>9.1f} {r['p99_ms']:>9.1f} {r['errors']:>7}  "
            + " ".join(f"{r.get(c + '_cpu_pct', float('nan')):>12.0f}%" for c in CPU_COLUMNS)
        )
    for name, ratio in report["ratios"].items():
        target = report["targets"][name]
        each = ", ".join(f"{x:.2f}" for x in report["ratio_per_round"][name])
        lines.append(
            f"{name:<32} {ratio:>6.2f}x median of rounds [{each}]  "
            f"(target >= {target}x: {'met' if ratio >= target else 'NOT met'})"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.api", description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--accounts", type=int, default=16, help="tenants the generate load is spread over")
    parser.add_argument(
        "--phases",
        default=",".join(PHASES),
        help=f"comma-separated subset of {','.join(PHASES)} (a ratio needs both of its phases)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="times each phase runs; the report takes medians")
    parser.add_argument(
        "--no-pin",
        action="store_true",
        help="let every process use every CPU (by default the "
        "load generator, or in the start_workflow phases the Temporal server, gets CPU 0 to itself)",
    )
    parser.add_argument(
        "--plan",
        default="scale",
        help="plan of the bench accounts (scale writes a key-use audit entry per request, the costliest case)",
    )
    args = parser.parse_args()

    from sorapi.store.migrate import upgrade
    from tests.stack import create_pg_database, drop_pg_database, start_stack

    load_before = os.getloadavg()
    database_url = create_pg_database()
    upgrade(database_url)
    workdir = Path(tempfile.mkdtemp(prefix="sorapi-bench-"))
    stack = start_stack(workdir, database_url)
    queue = f"bench-unpolled-{uuid.uuid4().hex[:8]}"
    api_port, bare_port = servers.free_port(), servers.free_port()
    api_env = {
        **stack.env,
        **UNLIMITED,
        "SORAPI_ORCHESTRATION_QUEUE": queue,
        "SORAPI_API_PORT": str(api_port),
        "SORAPI_LOG_LEVEL": "warning",
    }
    procs = [
        _spawn([sys.executable, "-m", "sorapi", "api"], api_env, workdir / "bench-api.log"),
        _spawn([sys.executable, "-m", "bench.api.bare", str(bare_port)], dict(os.environ), workdir / "bare.log"),
    ]
    try:
        api_url, bare_url = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{bare_port}"
        servers.wait_for_http(api_url + "/readyz", [procs[0]])
        servers.wait_for_http(bare_url + "/bare", [procs[1]])
        report = uvloop.run(
            measure(
                stack.env,
                database_url,
                stack.temporal_address,
                api_url,
                bare_url,
                queue,
                args.concurrency,
                args.seconds,
                args.accounts,
                tuple(p for p in args.phases.split(",") if p),
                args.plan,
                CpuMeter({"api": procs[0].pid, "bare": procs[1].pid}),
                not args.no_pin,
                args.rounds,
            )
        )
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=20)
        stack.stop()
        drop_pg_database(database_url)
    report.update(
        {
            "when": datetime.now(UTC).isoformat(),
            "concurrency": args.concurrency,
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
            "seconds": args.seconds,
            "rounds": args.rounds,
            "accounts": args.accounts,
            "plan": args.plan,
            "cpus": os.cpu_count(),
            "cpu0_reserved_for": {}
            if args.no_pin
            else {"load generator": list(HTTP_PHASES), "temporal server": ["raw_start_workflow", "generate"]},
            "database": "postgresql",
            "temporal": "dev server (its own SQLite store)",
        }
    )
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"api-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    out.write_text(json.dumps(report, indent=2))
    sys.stdout.write(_table(report) + f"\n\nwritten to {out}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
