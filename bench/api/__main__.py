"""`python -m bench.api`: requests/s and p50/p99 of generate and status beside their ceilings.

Starts a real stack (`sorapi dev` on a fresh PostgreSQL database), then a second API process
whose workflows go to a task queue no worker polls, so every generate costs exactly what the
API does (validate, price, row + hold in one transaction, start the workflow) and no render
competes for the CPU. Ceilings, measured in the same run on the same machine:
  generate ↔ a raw Temporal `start_workflow` loop (same workflow type, input and queue);
  status   ↔ a bare Litestar JSON endpoint on the same server (uvicorn, one process).
Rate limits are raised out of the way but the limiter still runs. Load stays on loopback.
Each row also reports the load generator's own CPU: a phase whose client sits near 100% of a
core measured the client, not the server (the bare endpoint usually does on 2 cores).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import uuid
from datetime import datetime, timezone
from pathlib import Path

import httpx

from bench.api import load
from sorapi import names, servers
from sorapi.catalog import get_catalog
from sorapi.converter import DATA_CONVERTER
from sorapi.messages import VideoTaskInput
from sorapi.planning import plan, render_spec
from sorapi.schemas import GenerateRequest

RESULTS = Path(__file__).resolve().parent.parent / "results"
PAYLOAD = {"prompt": "A neon-lit city skyline at dusk with flying cars and dynamic lighting", "duration": 1,
           "resolution": "480x480"}
UNLIMITED = {"SORAPI_RATE_GENERATE_PER_MIN": "1e9", "SORAPI_RATE_GENERATE_BURST": "1000000000",
             "SORAPI_RATE_STATUS_PER_MIN": "1e9", "SORAPI_RATE_STATUS_BURST": "1000000000"}


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(args, env=env, stdout=open(log, "wb"), stderr=subprocess.STDOUT, start_new_session=True)


async def _accounts(database_url: str, count: int) -> list[str]:
    from sorapi.db.accounts import create_account, issue_api_key
    from sorapi.db.engine import make_async_engine, make_sessionmaker

    engine = make_async_engine(database_url)
    keys = []
    async with make_sessionmaker(engine).begin() as session:
        for n in range(count):
            account = await create_account(session, name=f"bench-{n}", plan="scale", credits=10**9)
            keys.append(await issue_api_key(session, account.id))
    await engine.dispose()
    return keys


async def measure(stack_env: dict[str, str], database_url: str, temporal_address: str, api_url: str,
                  bare_url: str, queue: str, concurrency: int, seconds: float, accounts: int) -> dict[str, object]:
    from temporalio.client import Client
    from temporalio.common import Priority, WorkflowIDConflictPolicy, WorkflowIDReusePolicy

    keys = await _accounts(database_url, accounts)
    temporal = await Client.connect(temporal_address, data_converter=DATA_CONVERTER)
    planned = plan(msgspec_request(), get_catalog())
    assert not isinstance(planned, list)

    async def raw_start(n: int) -> bool:
        task_id = "sora2" + uuid.uuid4().hex
        arg = VideoTaskInput(task_id=task_id, account_id="acct_bench", price=planned.price,
                             render=render_spec(task_id, planned.request, get_catalog()), render_queue=queue)
        await temporal.start_workflow(names.VIDEO_TASK_WORKFLOW, arg, id=task_id, task_queue=queue,
                                      id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,  # as the API starts it
                                      id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                                      priority=Priority(priority_key=get_catalog().plans["scale"].priority))
        return True

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=api_url, timeout=30, limits=limits) as api, \
            httpx.AsyncClient(base_url=bare_url, timeout=30, limits=limits) as bare:
        created: list[tuple[str, str]] = []

        async def generate(n: int) -> bool:
            key = keys[n % len(keys)]
            answer = await api.post("/api/generate", json=PAYLOAD, headers={"Authorization": f"Bearer {key}"})
            if answer.status_code == 200:
                created.append((key, answer.json()["task_id"]))
            return answer.status_code == 200

        async def status(n: int) -> bool:
            key, task_id = created[n % len(created)]
            answer = await api.get("/api/status", params={"task_id": task_id},
                                   headers={"Authorization": f"Bearer {key}"})
            return answer.status_code == 200

        async def bare_get(n: int) -> bool:
            return (await bare.get("/bare")).status_code == 200

        results = {}
        for name, call in (("raw_start_workflow", raw_start), ("generate", generate), ("bare_endpoint", bare_get),
                           ("status", status)):
            await load.run(name, call, concurrency=concurrency, seconds=min(2.0, seconds))  # warm up
            results[name] = await load.run(name, call, concurrency=concurrency, seconds=seconds)
    return {
        "results": {name: r.as_dict() for name, r in results.items()},
        "ratios": {"generate_vs_raw_start_workflow":
                   round(results["generate"].rps / results["raw_start_workflow"].rps, 3),
                   "status_vs_bare_endpoint": round(results["status"].rps / results["bare_endpoint"].rps, 3)},
        "targets": {"generate_vs_raw_start_workflow": 0.8, "status_vs_bare_endpoint": 0.5},
    }


def msgspec_request() -> GenerateRequest:
    import msgspec

    return msgspec.convert(PAYLOAD, GenerateRequest)


def _table(report: dict[str, object]) -> str:
    results = report["results"]  # type: ignore[index]
    lines = [f"{'operation':<20} {'req/s':>9} {'p50 ms':>9} {'p99 ms':>9} {'errors':>7} {'client cpu':>11}"]
    for name in ("raw_start_workflow", "generate", "bare_endpoint", "status"):
        r = results[name]  # type: ignore[index]
        lines.append(f"{name:<20} {r['rps']:>9.1f} {r['p50_ms']:>9.1f} {r['p99_ms']:>9.1f} {r['errors']:>7} "
                     f"{r['client_cpu_pct']:>10.0f}%")
    for name, ratio in report["ratios"].items():  # type: ignore[attr-defined]
        target = report["targets"][name]  # type: ignore[index]
        lines.append(f"{name:<32} {ratio:>6.2f}x  (target >= {target}x: {'met' if ratio >= target else 'NOT met'})")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.api", description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--accounts", type=int, default=16, help="tenants the generate load is spread over")
    args = parser.parse_args()

    from tests.stack import create_pg_database, drop_pg_database, start_stack

    from sorapi.db.migrate import upgrade

    load_before = os.getloadavg()
    database_url = create_pg_database()
    upgrade(database_url)
    workdir = Path(tempfile.mkdtemp(prefix="sorapi-bench-"))
    stack = start_stack(workdir, database_url)
    queue = f"bench-unpolled-{uuid.uuid4().hex[:8]}"
    api_port, bare_port = servers.free_port(), servers.free_port()
    api_env = {**stack.env, **UNLIMITED, "SORAPI_ORCHESTRATION_QUEUE": queue, "SORAPI_API_PORT": str(api_port),
               "SORAPI_LOG_LEVEL": "warning"}
    procs = [
        _spawn([sys.executable, "-m", "sorapi", "api"], api_env, workdir / "bench-api.log"),
        _spawn([sys.executable, "-m", "bench.api.bare", str(bare_port)], dict(os.environ), workdir / "bare.log"),
    ]
    try:
        api_url, bare_url = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{bare_port}"
        servers.wait_for_http(api_url + "/readyz", [procs[0]])
        servers.wait_for_http(bare_url + "/bare", [procs[1]])
        report = asyncio.run(measure(stack.env, database_url, stack.temporal_address, api_url, bare_url, queue,
                                     args.concurrency, args.seconds, args.accounts))
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=20)
        stack.stop()
        drop_pg_database(database_url)
    report.update({"when": datetime.now(timezone.utc).isoformat(), "concurrency": args.concurrency,
                   "load_average_before": [round(x, 2) for x in load_before],
                   "load_average_after": [round(x, 2) for x in os.getloadavg()],
                   "seconds": args.seconds, "accounts": args.accounts, "cpus": os.cpu_count(),
                   "database": "postgresql", "temporal": "dev server (sqlite)"})
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"api-{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%SZ')}.json"
    out.write_text(json.dumps(report, indent=2))
    sys.stdout.write(_table(report) + f"\n\nwritten to {out}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
