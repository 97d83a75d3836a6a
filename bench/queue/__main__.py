"""`python -m bench.queue`: what queued tasks cost while they wait, and that a mixed-plan line drains whole.

Starts a real stack (`sorapi dev` on a fresh PostgreSQL database), then in one run:
  drain         M tasks over K accounts of mixed plans (free/pro/scale) run to the end: wall time,
                tasks/s, and that every task succeeded and every account's ledger adds up; with one
                account, also against 1.6 x M x one task's time / its slots. `--drain-render noop`
                renders nothing (orchestration only: how 10,000 tasks drain in minutes on 2 cores);
  waiting cost  with the render worker stopped (SIGSTOP, so no render can run and the lines stay),
                CPU-seconds per second of the orchestrator, Temporal, PostgreSQL and the API over a
                quiet window, first with nothing queued, then with each N of `--waiting` queued;
  create pace   POST /api/generate req/s on the account holding the longest line, against fresh accounts;
  throughput    tasks/s end to end with a no-op render, against raw workflows of as many no-op activities.
The line is one Free account's (2 slots, so nearly every task waits); every task is the 1-second,
480x480 request, rendered by the tiny dev model (at one denoising step by default: `--dev-steps`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import uvloop

from bench.queue import drain, tasks, throughput, waiting
from bench.queue.procs import flag, paused, render_workers, stack_processes

RESULTS = Path(__file__).resolve().parent.parent / "results"
UNLIMITED = {
    "SORAPI_RATE_GENERATE_PER_MIN": "1e9",
    "SORAPI_RATE_GENERATE_BURST": "1000000000",
    "SORAPI_RATE_STATUS_PER_MIN": "1e9",
    "SORAPI_RATE_STATUS_BURST": "1000000000",
}
TARGETS = {"waiting_cores_at_largest": 0.05, "create_pace_ratio": 0.8, "throughput_ratio": 0.7}
NOISE_CORES = 0.005
"""Two quiet windows differ by about this much with nothing changed (timers, the sweeper's minute):
the largest line "costs no more" than the smallest if it is within this of it."""


async def measure(stack: Any, args: argparse.Namespace) -> dict[str, Any]:

    from sorapi.store.engine import make_async_engine, make_sessionmaker

    processes = stack_processes(stack.proc.pid)
    metrics_port = flag(processes["temporal"], "--metrics-port")
    engine = make_async_engine(stack.database_url, pool_size=4)
    sessions = make_sessionmaker(engine)
    temporal = await stack.temporal_client()
    report: dict[str, Any] = {"processes": processes}
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as api:
        ((_, key),) = await tasks.accounts(sessions, ["free"])
        await tasks.wait_ended(sessions, [await tasks.create(api, key)], 300)  # the render worker loads its model
        if args.drain_tasks:
            report["drain"] = await run_drain(api, stack, sessions, temporal, args)
            print(f"drain: {report['drain']}", flush=True)
        if args.throughput:
            report["throughput"] = await throughput.run(
                stack.env,
                stack.data_dir.parent,
                sessions,
                temporal,
                args.throughput,
                concurrency=8,
                rounds=args.throughput_rounds,
                processes=processes,
            )
            print(f"throughput: {report['throughput']}", flush=True)
        rows: list[dict[str, Any]] = []
        if args.waiting:
            with paused(render_workers(processes)):
                ((_, line_key),) = await tasks.accounts(sessions, [args.plan])
                for target in [0, *args.waiting]:
                    live = sum((await tasks.live_per_account(sessions)).values())
                    await tasks.submit(api, [line_key], max(0, target - live))
                    settle_s = await waiting.settle(sessions, temporal, metrics_port)
                    rows.append(
                        {
                            "target": target,
                            "waiting": sum((await tasks.live_per_account(sessions)).values()),
                            "settle_s": round(settle_s, 1),
                            **await waiting.window(processes, metrics_port, args.window),
                        }
                    )
                    print(f"waiting: {rows[-1]}", flush=True)
                # last: its creates would lengthen the lines the windows measure
                paced = await waiting.pace(
                    api, sessions, temporal, processes, line_key, args.plan, args.concurrency, args.seconds, args.rounds
                )
                report["pace"] = {"waiting": rows[-1]["waiting"], **paced}
                print(f"pace: {report['pace']}", flush=True)
        report["waiting"] = rows
    await engine.dispose()
    return report


async def run_drain(
    api: httpx.AsyncClient, stack: Any, sessions: Any, temporal: Any, args: argparse.Namespace
) -> dict[str, Any]:
    """The drain on the stack's dev model, or through the no-op render host (`--drain-render noop`)."""
    timeout_s = 120 + 10 * args.drain_tasks
    if args.drain_render == "noop":
        async with throughput.noop_api(stack.env, stack.data_dir.parent, temporal) as noop:
            single_s = await drain.single_task_s(noop, sessions)
            result = await drain.run(
                noop, sessions, args.drain_tasks, args.drain_accounts, timeout_s, single_s=single_s
            )
    else:
        single_s = await drain.single_task_s(api, sessions)
        result = await drain.run(
            api,
            sessions,
            args.drain_tasks,
            args.drain_accounts,
            timeout_s,
            single_s=single_s,
            processes=stack_processes(stack.proc.pid),
            temporal=temporal,
        )
    return {"render": args.drain_render, **result}


def judge(report: dict[str, Any]) -> dict[str, Any]:
    verdicts: dict[str, Any] = {}
    rows = [row for row in report.get("waiting", []) if row["target"]]
    if rows:
        small, large = rows[0], rows[-1]
        verdicts["waiting_cores_at_largest"] = {
            "waiting": large["waiting"],
            "cores": large["total"],
            "met": large["total"] <= TARGETS["waiting_cores_at_largest"],
        }
        verdicts["largest_no_more_than_smallest"] = {
            "cores": [small["total"], large["total"]],
            "noise": NOISE_CORES,
            "met": large["total"] <= small["total"] + NOISE_CORES,
        }
        verdicts["create_pace_ratio"] = {
            "waiting": report["pace"]["waiting"],
            "ratio": report["pace"]["ratio"],
            "met": report["pace"]["ratio"] >= TARGETS["create_pace_ratio"],
        }
    if "drain" in report:
        drained = report["drain"]
        verdicts["drain_nothing_lost"] = {"tasks": drained["tasks"], "met": drained["ok"]}
        if "bound_s" in drained:
            verdicts["drain_within_bound"] = {
                "wall_s": drained["wall_s"],
                "bound_s": drained["bound_s"],
                "cpu_floor_s": drained.get("cpu_floor_s"),
                "met": drained["within"],
            }
    if "throughput" in report:
        t = report["throughput"]
        verdicts["throughput_ratio"] = {
            "ratio": t["ratio"],
            "succeeded": f"{t['task']['succeeded']}/{t['tasks']}",
            "met": t["ratio"] >= TARGETS["throughput_ratio"] and t["task"]["succeeded"] == t["tasks"],
        }
    return verdicts


def table(report: dict[str, Any], args: argparse.Namespace) -> str:
    lines: list[str] = []
    if report["waiting"]:
        lines += [
            f"waiting cost, CPU-seconds per second over {args.window:.0f} s, render worker stopped "
            "(others: cores busy outside this bench, at most, on a shared machine)",
            f"{'waiting':>8} " + " ".join(f"{c:>12}" for c in (*waiting.MEASURED, "total")) + f" {'others':>8}"
            "  temporal requests in the window (top 3)",
        ]
    for row in report["waiting"]:
        lines.append(
            f"{row['waiting']:>8} "
            + " ".join(f"{row[c]:>12.4f}" for c in (*waiting.MEASURED, "total"))
            + f" {row['others_cores']:>8.2f}  "
            + ", ".join(f"{op} {n}" for op, n in list(row["temporal_ops"].items())[:3])
        )
    if "pace" in report:
        pace = report["pace"]
        lines += [
            "",
            f"create pace with {pace['waiting']} waiting: POST /api/generate req/s, "
            f"{args.concurrency} at a time, {args.seconds:.0f} s a run; median ratio {pace['ratio']:.2f}x",
            f"{'round':>8} {'with line':>10} {'fresh before':>13} {'fresh after':>12} {'ratio':>7} {'others':>8}",
        ]
        for n, one in enumerate(pace["rounds"], 1):
            runs = [one["fresh"][0], one["queued"], one["fresh"][1]]
            lines.append(
                f"{n:>8} {one['queued']['rps']:>10.1f} {one['fresh'][0]['rps']:>13.1f} "
                f"{one['fresh'][1]['rps']:>12.1f} {one['ratio']:>6.2f}x "
                f"{max(r['others_cores'] for r in runs):>8.2f}"
            )
    if "drain" in report:
        d = report["drain"]
        lines += [
            "",
            f"drain ({d['render']} render): {d['tasks']} tasks over {d['accounts']} accounts "
            f"({'/'.join(d['plans'][: d['accounts']])}): "
            f"{d['wall_s']:.0f} s wall, {d['tasks_per_s']:.2f} tasks/s; ends {d['ends']}; "
            f"charged once: {d['charged_tasks']}/{d['tasks']}; accounts off: {len(d['accounts_off'])}"
            + (
                f"; bound 1.6 x N x {d['single_task_s']} s / {d['slots']} slots = {d['bound_s']} s: "
                + ("within" if d["within"] else "NOT within")
                if "bound_s" in d
                else ""
            )
            + (
                f"; CPU per task {d['cpu_s_per_task']} s, so {d['cpu_floor_s']} s on all cores at the least"
                if "cpu_floor_s" in d
                else ""
            ),
        ]
        if "handover" in d:
            lines.append(f"some render ran {d['handover']['render_busy']:.0%} of the drain; median seconds per task:")
            lines += [f"  {name:<30} {seconds:.3f}" for name, seconds in d["handover"]["median_s"].items()]
    if "throughput" in report:
        t = report["throughput"]
        lines += [
            "",
            f"orchestration throughput: {t['tasks']} tasks started {t['concurrency']} at a time, "
            f"{t['activities_per_task']} activities each: {t['task']['per_s']:.1f} tasks/s end to end "
            f"(no-op render) vs {t['raw']['per_s']:.1f}/s raw workflows: median ratio {t['ratio']:.2f}x "
            f"(rounds, each tasks then raw twice: {', '.join(f'{r:.2f}x' for r in t['rounds'])})",
        ]
    lines.append("")
    for name, verdict in report["verdicts"].items():
        figures = json.dumps({k: v for k, v in verdict.items() if k != "met"})
        lines.append(f"{name}: {'met' if verdict['met'] else 'NOT met'}  {figures}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.queue", description=__doc__.splitlines()[0])
    parser.add_argument("--waiting", default="300,1000", help="comma-separated line lengths to measure, ascending")
    parser.add_argument("--drain", default="300:30", help="TASKS:ACCOUNTS of the drain (0:0 skips it)")
    parser.add_argument(
        "--drain-render",
        choices=("dev", "noop"),
        default="dev",
        help="what renders the drain: the stack's tiny dev model, or a no-op host (orchestration only)",
    )
    parser.add_argument(
        "--throughput", type=int, default=200, help="tasks of the orchestration-throughput phase (0 skips it)"
    )
    parser.add_argument(
        "--window",
        type=float,
        default=60.0,
        help="seconds of each quiet CPU window (a multiple "
        "of the sweeper's minute, so that every window holds the same number of sweeps)",
    )
    parser.add_argument(
        "--throughput-rounds", type=int, default=5, help="rounds of the throughput phase; the median counts"
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds of each create-pace run")
    parser.add_argument("--concurrency", type=int, default=4, help="creates in flight in the create-pace runs")
    parser.add_argument(
        "--rounds", type=int, default=3, help="create-pace rounds (fresh, with line, fresh); the median counts"
    )
    parser.add_argument("--plan", default="free", help="plan of the account holding the line")
    parser.add_argument(
        "--render-workers",
        type=int,
        default=1,
        help="render workers of the stack (SORAPI_DEV_RENDER_WORKERS; `make dev` starts one)",
    )
    parser.add_argument(
        "--dev-steps",
        default="1",
        help="denoising steps of the tiny dev model (SORAPI_DEV_STEPS; "
        "the profile's 4 take 2-3 s a render on a busy 2-core box, and the drain is render-bound)",
    )
    args = parser.parse_args()
    args.waiting = sorted(int(n) for n in args.waiting.split(",") if n)
    args.drain_tasks, args.drain_accounts = (int(x) for x in args.drain.split(":"))

    from sorapi.store.migrate import upgrade
    from tests.stack import create_pg_database, drop_pg_database, start_stack

    load_before = os.getloadavg()
    database_url = create_pg_database()
    upgrade(database_url)
    stack = start_stack(
        Path(tempfile.mkdtemp(prefix="sorapi-bench-queue-")),
        database_url,
        **UNLIMITED,
        SORAPI_DEV_STEPS=args.dev_steps,
        SORAPI_DEV_RENDER_WORKERS=str(args.render_workers),
        SORAPI_WORKFLOW_SANDBOX="false",  # production's runner (the suite's stacks turn the sandbox on)
    )
    try:
        report = uvloop.run(measure(stack, args))
    finally:
        stack.stop()
        drop_pg_database(database_url)
    report["verdicts"] = judge(report)
    report.update(
        {
            "when": datetime.now(UTC).isoformat(),
            "args": {k: v for k, v in vars(args).items()},
            "cpus": os.cpu_count(),
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
            "database": "postgresql",
            "temporal": "dev server (its own SQLite store)",
        }
    )
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"queue-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    out.write_text(json.dumps(report, indent=2, default=str))
    sys.stdout.write(table(report, args) + f"\n\nwritten to {out}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
