"""`python -m bench.faults`: a steady load on the real stack while each component is killed or stopped in turn.

Starts PostgreSQL, Valkey, the Temporal dev server (its SQLite file keeps its state), SeaweedFS S3,
the orchestrator worker, one render worker and the API as seven separate processes (the same
servers and commands `sorapi dev` uses), and a local webhook receiver. Then, optionally, the memory
check: a fresh render worker's RSS after 50 tasks vs after its first 5, and the API's after 10,000
requests vs after its first 1,000. Then, per fault, on three fresh accounts (free, pro, scale):
  load     `--rate` creates a second (1-second 480x480 dev renders with a callback_url), for
           `--before` seconds, through the fault, and `--after` seconds past its end;
  fault    api / orchestrator / render: SIGKILL (the render worker while it renders), restarted
           `--down` seconds later; temporal: stopped and started again on its database file;
           s3: SeaweedFS stopped for 60 s; db: PostgreSQL stopped for 30 s (same data, same port);
           render-upload (not in the default list): the render worker SIGKILLed during an upload
           (S3 frozen with SIGSTOP meanwhile, so that one is in flight);
  drain    until every task is terminal and its workflow closed, then every webhook received;
  checks   nothing lost, nothing charged twice or without outputs (nor outputs without a charge),
           each account's ledger equal to its balance and holds, nothing left in S3 for a failed
           task, exactly one delivered webhook per terminal event (`bench/faults/checks.py`);
  recovery seconds from the fault's end (the moment the component is started again) until the API
           answered again, and until the first task succeeded again.
A process that exits on its own is started again (as compose's `restart: unless-stopped` would) and
reported. JSON goes to bench/results/faults-<time>.json; the table to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.api.enums.v1 import PendingActivityState
from temporalio.client import Client

from bench.faults import checks, memory
from bench.faults.load import PAYLOAD, Load, Probe, pause
from bench.faults.stack import FaultStack, start_stack
from sorapi.adapters import storage
from sorapi.contracts import names
from sorapi.store.engine import make_async_engine, make_sessionmaker
from tests.stack import make_account
from tests.webhook_receiver import Receiver

RESULTS = Path(__file__).resolve().parent.parent / "results"
SORAPI_PROCESSES = ("api", "orchestrator", "render")
PLANS = ("free", "pro", "scale")


@dataclass(frozen=True)
class Fault:
    name: str
    component: str
    how: str
    """"kill" (SIGKILL) or "stop" (the process's clean stop)."""
    down_s: float
    label: str
    mid: str = ""
    """An activity the render worker must be executing when it is killed (render_video, upload_outputs)."""


def faults(down: dict[str, float]) -> dict[str, Fault]:
    return {
        f.name: f
        for f in (
            Fault("api", "api", "kill", down.get("api", 5), "SIGKILL API"),
            Fault("orchestrator", "orchestrator", "kill", down.get("orchestrator", 5), "SIGKILL orchestrator"),
            Fault(
                "render",
                "render",
                "kill",
                down.get("render", 5),
                "SIGKILL render worker mid-render",
                names.RENDER_VIDEO,
            ),
            Fault("temporal", "temporal", "stop", down.get("temporal", 5), "Temporal dev server restart"),
            Fault("s3", "s3", "stop", down.get("s3", 60), "S3 (SeaweedFS) unavailable"),
            Fault("db", "postgres", "stop", down.get("db", 30), "PostgreSQL unavailable"),
            Fault(
                "render-upload",
                "render",
                "kill",
                down.get("render-upload", 5),
                "SIGKILL render worker mid-upload",
                names.UPLOAD_OUTPUTS,
            ),
        )
    }


@dataclass
class Run:
    stack: FaultStack
    sessions: async_sessionmaker[AsyncSession]
    temporal: Client
    http: httpx.AsyncClient
    receiver: Receiver
    args: argparse.Namespace
    expected_down: set[str]
    exits: list[dict[str, Any]]


async def supervise(run: Run, stop: asyncio.Event) -> None:
    """Start again whatever died on its own, and record it: a finding, never part of a fault."""
    while not stop.is_set():
        for component in run.stack.components.values():
            if component.name in run.expected_down or component.alive():
                continue
            record = {
                "process": component.name,
                "returncode": component.proc.popen.returncode,
                "at": datetime.now(UTC).isoformat(),
                "log_tail": component.proc.log_tail(40),
            }
            run.exits.append(record)
            print(f"  !! {component.name} exited on its own ({record['returncode']}); starting it again", flush=True)
            try:
                await asyncio.to_thread(component.start)
            except Exception as exc:
                record["restart_error"] = repr(exc)
        await pause(stop, 1.0)


async def executing_now(run: Run, account_ids: list[str], activity: str, timeout_s: float = 60) -> list[dict[str, Any]]:
    """A task whose `activity` the render worker is executing right now (STARTED on its pid)."""
    from sqlalchemy import select

    from sorapi.store.models import Task

    pid = run.stack.components["render"].pid
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        async with run.sessions() as session:
            running = (
                await session.scalars(select(Task.id).where(Task.account_id.in_(account_ids), Task.status == "running"))
            ).all()
        for task_id in running:
            try:
                described = await run.temporal.get_workflow_handle(task_id).describe()
            except Exception:
                continue
            for pending in described.raw_description.pending_activities:
                if (
                    pending.activity_type.name == activity
                    and pending.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
                    and pending.last_worker_identity.startswith(f"{pid}@")
                ):
                    return [{"task_id": task_id, "attempt": pending.attempt}]
        await asyncio.sleep(0.05)
    return []


def log_offsets(run: Run) -> dict[str, int]:
    return {name: path.stat().st_size for name in SORAPI_PROCESSES if (path := run.stack.log(name)).exists()}


def log_digest(run: Run, since: dict[str, int], top: int = 6) -> dict[str, Any]:
    """Per sorapi process, the warnings and errors it logged since `since`: how many, and the most frequent messages.

    The messages are evidence of which retry paths a fault exercised, and of anything unexpected.
    """
    digest: dict[str, Any] = {}
    for name in SORAPI_PROCESSES:
        with run.stack.log(name).open("rb") as log:
            log.seek(since.get(name, 0))
            lines = log.read().decode(errors="replace").splitlines()
        levels: Counter[str] = Counter()
        events: Counter[str] = Counter()
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if not isinstance(record, dict):
                continue
            level = str(record.get("level", ""))
            if level in ("warning", "error", "critical"):
                levels[level] += 1
                events[f"{level}: {str(record.get('event', ''))[:120]}"] += 1
        digest[name] = {"counts": dict(levels), "top": dict(events.most_common(top))}
    return digest


def render_attempts(log: Path, task_id: str) -> int:
    """How many times the render worker logged starting this task's render (across its restarts)."""
    count = 0
    for line in log.read_text(errors="replace").splitlines():
        if task_id in line and '"render started"' in line:
            count += 1
    return count


async def phase(run: Run, fault: Fault) -> dict[str, Any]:
    args = run.args
    made = [await make_account(run.sessions, plan=plan, credits=10**6) for plan in PLANS]
    account_ids = [a for a, _ in made]
    load = Load(
        run.http,
        made,
        callback_url=lambda account_id: run.receiver.url(f"/hooks/{account_id}"),
        rate=args.rate,
        tag=f"{fault.name}-{int(time.time())}",
    )
    probe = Probe(run.http, made[0][1])
    stop_load, stop_probe = asyncio.Event(), asyncio.Event()
    exits_before = len(run.exits)
    logs_at = log_offsets(run)
    load_job = asyncio.create_task(load.run(stop_load))
    probe_job = asyncio.create_task(probe.run(stop_probe))
    print(f"{fault.name}: load for {args.before:.0f} s", flush=True)
    await asyncio.sleep(args.before)
    component = run.stack.components[fault.component]
    store = run.stack.components["s3"]
    freeze = fault.mid == names.UPLOAD_OUTPUTS  # a dev upload takes milliseconds: freeze S3 so that one hangs
    run.expected_down.add(component.name)
    if freeze:
        os.kill(store.pid, signal.SIGSTOP)
    try:
        victims = await executing_now(run, account_ids, fault.mid) if fault.mid else []
        in_flight = await checks.live_count(run.sessions, account_ids)
        t_start = time.time()
        if fault.how == "kill":
            component.kill()
        else:
            await asyncio.to_thread(component.stop)
    finally:
        if freeze:
            os.kill(store.pid, signal.SIGCONT)
    stopped_s = time.time() - t_start
    print(
        f"{fault.name}: {fault.how} {component.name} with {in_flight} in flight; down {fault.down_s:.0f} s", flush=True
    )
    await asyncio.sleep(fault.down_s)
    t_end = time.time()
    restart_errors = []
    while True:
        try:
            restart_s = await asyncio.to_thread(component.start)
            break
        except Exception as exc:  # a component that does not come back is a finding; try again
            restart_errors.append(repr(exc))
            print(f"{fault.name}: {component.name} did not come back: {exc!r}", flush=True)
            if len(restart_errors) >= 3:
                raise
            await asyncio.sleep(5)
    run.expected_down.discard(component.name)
    print(f"{fault.name}: {component.name} back after {restart_s:.1f} s; load for {args.after:.0f} s more", flush=True)
    await asyncio.sleep(args.after)
    stop_load.set()
    await load_job
    drained = await checks.drain(run.sessions, run.temporal, account_ids, args.drain_timeout)
    hooks_s = await checks.retrying(
        checks.wait_webhooks, run.sessions, run.receiver.received, account_ids, args.webhook_timeout
    )
    stop_probe.set()
    await probe_job
    accepted = {s.task_id: s.idempotency_key for s in load.submissions if s.task_id}
    s3 = storage.make_client(run.stack.settings)
    found = await checks.retrying(
        checks.invariants,
        run.sessions,
        s3,
        run.stack.settings.s3_bucket,
        account_ids,
        accepted,
        run.receiver.received,
    )
    recover_task = await checks.first_success_after(run.sessions, account_ids, t_end)
    ended = await statuses(run, [v["task_id"] for v in victims])
    for victim in victims:
        victim["render_attempts"] = render_attempts(run.stack.log("render"), victim["task_id"])
        victim["status"] = ended.get(victim["task_id"])
    summary = load.summary()
    exits = run.exits[exits_before:]
    problems = {key: found[key] for key in checks.FAILURES if found[key]}
    if summary["gave_up"]:
        problems["load_gave_up"] = summary["gave_up"]
    if summary["refused"]:
        problems["load_refused"] = summary["refused"]
    if exits:
        problems["unexpected_exits"] = exits
    if restart_errors:
        problems["restart_errors"] = restart_errors
    if drained["live"] or drained["open_workflows"]:
        problems["not_drained"] = drained
    if fault.mid and not victims:
        problems[f"no_{fault.mid}_in_progress_to_kill"] = True
    if any(v["status"] != "succeeded" for v in victims):  # "a dead render worker costs a retry, not the task"
        problems["killed_task_not_succeeded"] = victims
    result = {
        "fault": fault.name,
        "label": fault.label,
        "component": fault.component,
        "how": fault.how,
        "down_s": fault.down_s,
        "injected_at": datetime.fromtimestamp(t_start, UTC).isoformat(),
        "ended_at": datetime.fromtimestamp(t_end, UTC).isoformat(),
        "stop_took_s": round(stopped_s, 2),
        "in_flight": in_flight,
        "in_flight_total": sum(in_flight.values()),
        "killed_mid": {"activity": fault.mid, "tasks": victims} if fault.mid else None,
        "restart_s": round(restart_s, 2),
        "recover_api_s": probe.recovered_s(t_start, t_end),
        "recover_create_s": load.recovered_s(t_start, t_end),
        "recover_task_s": recover_task,
        "api_outage": _span(probe.outage(t_start)),
        "load": summary,
        "create_failures_after_end": load.failed_since(t_end),
        "logs": log_digest(run, logs_at),
        "drain": drained,
        "webhook_wait_s": hooks_s,
        "accounts": account_ids,
        "lost": len(found["lost"]) + len(found["phantom"]),
        "double_charges": len(found["double_charges"]),
        "checks": found,
        "problems": problems,
        "ok": not problems,
    }
    print(f"{fault.name}: {row(result)}", flush=True)
    return result


def _span(outage: tuple[float, float] | None) -> dict[str, str] | None:
    if outage is None:
        return None
    first, last = outage
    return {
        "first_failure": datetime.fromtimestamp(first, UTC).isoformat(),
        "last_failure": datetime.fromtimestamp(last, UTC).isoformat(),
    }


async def memory_phase(run: Run) -> dict[str, Any]:
    """Both memory checks on the fresh stack (a failure is recorded, and the faults still run)."""
    args = run.args
    account_id, key = await make_account(run.sessions, plan="scale", credits=10**7)
    report: dict[str, Any] = {}
    try:
        if args.memory_tasks:
            print(f"memory: render worker over {args.memory_tasks} tasks", flush=True)
            report["render"] = await memory.render_worker(
                run.http,
                run.sessions,
                key,
                run.stack.components["render"].pid,
                max(1, args.memory_tasks // 10),
                args.memory_tasks,
            )
            print(f"memory: render {report['render']}", flush=True)
        else:  # the first render loads the model: keep that out of the first fault's recovery
            answer = await run.http.post("/api/generate", json=PAYLOAD, headers={"Authorization": f"Bearer {key}"})
            answer.raise_for_status()
        if args.memory_requests:
            answer = await run.http.get("/api/tasks", params={"limit": 1}, headers={"Authorization": f"Bearer {key}"})
            task_id = answer.json()["data"][0]["task_id"]
            print(f"memory: API over {args.memory_requests} requests", flush=True)
            report["api"] = await memory.api(
                run.http,
                key,
                task_id,
                run.stack.components["api"].pid,
                max(1, args.memory_requests // 10),
                args.memory_requests,
            )
            print(f"memory: api {report['api']}", flush=True)
    except Exception as exc:
        report["error"] = {"met": False, "error": repr(exc)}
        print(f"memory: FAILED {exc!r}", flush=True)
    drained = await checks.drain(run.sessions, run.temporal, [account_id], args.drain_timeout)
    if drained["live"] or drained["open_workflows"]:
        report["not_drained"] = {"met": False, **drained}
    return report


async def statuses(run: Run, task_ids: list[str]) -> dict[str, str]:
    from sqlalchemy import select

    from sorapi.store.models import Task

    async with run.sessions() as session:
        return dict((await session.execute(select(Task.id, Task.status).where(Task.id.in_(task_ids)))).all())


def row(result: dict[str, Any]) -> str:
    flight = result["in_flight"]
    found = result["checks"]
    other = ", ".join(f"{k} {len(v) if isinstance(v, list) else v}" for k, v in result["problems"].items()) or "none"
    label = f"{result['label']} ({result['down_s']:.0f} s)"
    cell = f"{result['in_flight_total']} ({flight.get('queued', 0)}q/{flight.get('running', 0)}r)"
    return (
        f"{label:<42} {cell:>15} "
        f"{result['lost']:>4} {result['double_charges']:>7} "
        f"{_seconds(result['recover_api_s']):>6} {_seconds(result['recover_create_s']):>7} "
        f"{_seconds(result['recover_task_s']):>6} "
        f"{found['tasks']:>5} {found['ends'].get('succeeded', 0):>5} {found['webhook_redeliveries']:>6}  {other}"
    )


def _seconds(value: float | None) -> str:
    return "never" if value is None or value == float("inf") else f"{value:.1f}"


def table(report: dict[str, Any]) -> str:
    lines = [
        f"{'fault':<42} {'in flight':>15} {'lost':>4} {'2×charge':>7} {'read s':>6} {'create s':>7} {'task s':>6} "
        f"{'tasks':>5} {'ok':>5} {'redeliv':>6}  other violations",
    ]
    lines += [row(result) for result in report["phases"]]
    if "final" in report:
        final = report["final"]
        broken = {k: len(final[k]) for k in checks.FAILURES if final[k]}
        lines.append(f"final recheck of all {final['tasks']} tasks: {broken or 'every invariant holds'}")
    for name, figures in report.get("memory", {}).items():
        lines.append(
            f"memory {name}: "
            + ", ".join(f"{k} {v}" for k, v in figures.items() if k not in ("status_codes",))
            + ("" if figures["met"] else "  NOT within 10%")
        )
    return "\n".join(lines)


async def measure(stack: FaultStack, args: argparse.Namespace) -> dict[str, Any]:
    engine = make_async_engine(stack.database_url, pool_size=4)
    receiver = Receiver().start()
    report: dict[str, Any] = {"phases": []}
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as http:
        run = Run(
            stack=stack,
            sessions=make_sessionmaker(engine),
            temporal=await Client.connect(stack.settings.temporal_address),
            http=http,
            receiver=receiver,
            args=args,
            expected_down=set(),
            exits=[],
        )
        stop = asyncio.Event()
        supervisor = asyncio.create_task(supervise(run, stop))
        try:
            report["memory"] = await memory_phase(run)
            table_of = faults(args.down)
            for name in args.faults:
                report["phases"].append(await phase(run, table_of[name]))
            accounts = [a for p in report["phases"] for a in p["accounts"]]
            if accounts:  # once more over every phase: nothing changed for the worse after its check
                report["final"] = await checks.invariants(
                    run.sessions,
                    storage.make_client(stack.settings),
                    stack.settings.s3_bucket,
                    accounts,
                    {},
                    receiver.received,
                )
        finally:
            stop.set()
            await supervisor
            receiver.stop()
            await engine.dispose()
    report["unexpected_exits"] = run.exits
    report["webhook_requests"] = len(receiver.received)
    return report


def machine() -> dict[str, Any]:
    model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem_kib = next(
        int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")
    )
    return {"cpus": os.cpu_count(), "cpu": model, "memory_gib": round(mem_kib / 2**20, 1), "kernel": platform.release()}


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.faults", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--faults",
        default="api,orchestrator,render,temporal,s3,db",
        help="faults to inject, in order (api, orchestrator, render, temporal, s3, db; also render-upload: "
        "the render worker SIGKILLed while it uploads, S3 frozen meanwhile so that an upload is in flight; "
        "empty: none)",
    )
    parser.add_argument(
        "--down",
        default="",
        help="seconds each fault lasts, e.g. s3=60,db=30 (defaults: 5 for api, orchestrator, render, "
        "temporal; 60 for s3; 30 for db)",
    )
    parser.add_argument("--rate", type=float, default=0.75, help="task creates per second during each fault's load")
    parser.add_argument("--before", type=float, default=15.0, help="seconds of load before each fault")
    parser.add_argument("--after", type=float, default=15.0, help="seconds of load after each fault's end")
    parser.add_argument(
        "--drain-timeout", type=float, default=480.0, help="seconds for every task to end after the load stops"
    )
    parser.add_argument(
        "--webhook-timeout", type=float, default=150.0, help="seconds for every end's webhook to arrive after that"
    )
    parser.add_argument(
        "--memory-requests", type=int, default=10_000, help="API requests of the memory check (0: skip)"
    )
    parser.add_argument(
        "--memory-tasks", type=int, default=50, help="tasks of the render-worker memory check (0: skip)"
    )
    parser.add_argument("--dev-steps", type=int, default=1, help="denoising steps of the tiny dev model")
    parser.add_argument(
        "--step-delay",
        type=float,
        default=0.5,
        help="seconds each denoising step sleeps (SORAPI_DEV_STEP_DELAY_S): GPU-like render time that costs "
        "no CPU, so tasks are in flight when a fault hits and a render can be killed in its middle",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the stack's data and logs even when every check passed"
    )
    args = parser.parse_args()
    args.faults = [f for f in args.faults.split(",") if f]
    args.down = {k: float(v) for k, v in (part.split("=") for part in args.down.split(",") if part)}
    unknown = set(args.faults) - set(faults({}))
    if unknown:
        parser.error(f"unknown faults: {sorted(unknown)}")

    root = Path(tempfile.mkdtemp(prefix="sorapi-bench-faults-"))
    load_before = os.getloadavg()
    began = time.monotonic()
    stack = start_stack(root, dev_steps=args.dev_steps, step_delay_s=args.step_delay)
    print(f"stack up in {time.monotonic() - began:.0f} s under {root}", flush=True)
    try:
        report = asyncio.run(measure(stack, args))
    except BaseException:
        print(f"the run broke off; the stack's data and logs are kept under {root}", flush=True)
        raise
    finally:
        stack.stop()
    report.update(
        {
            "when": datetime.now(UTC).isoformat(),
            "wall_s": round(time.monotonic() - began, 1),
            "args": vars(args),
            "machine": machine(),
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
        }
    )
    report["ok"] = (
        all(p["ok"] for p in report["phases"])
        and not report["unexpected_exits"]
        and all(m["met"] for m in report["memory"].values())
        and not any(report.get("final", {}).get(k) for k in checks.FAILURES)
    )
    report["logs"] = str(root / "logs") if args.keep or not report["ok"] else None
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"faults-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    out.write_text(json.dumps(report, indent=2, default=str))
    if report["logs"] is None:
        shutil.rmtree(root, ignore_errors=True)
    sys.stdout.write(table(report) + f"\n\nwritten to {out}\n")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
