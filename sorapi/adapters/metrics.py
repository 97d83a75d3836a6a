"""Prometheus metrics: the business metrics every process emits, and how a worker serves them.

Each process serves its own registry (`prometheus_client`): the API on its `/metrics` route
(api/metrics.py, request metrics by Litestar's Prometheus plugin), each worker on
`SORAPI_<PROCESS>_METRICS_PORT` with `start_http_server`. A worker's Temporal SDK metrics (task
slots, poll and schedule-to-start latencies, activity failures...) come from the SDK's own runtime on
`SORAPI_<PROCESS>_SDK_METRICS_PORT`. Counters are per process, as Prometheus expects: sum them
across instances. Metrics are emitted where the event happens, after its transaction committed; a
Temporal retry of an activity whose result was lost after the commit may count it twice.

Names (all families are present from start-up, with or without samples):

| metric | type | labels | emitted by |
| --- | --- | --- | --- |
| `sorapi_tasks_created_total` | counter | plan, model | API (`api/tasks/task_service.py`) |
| `sorapi_tasks_finished_total` | counter | plan, model, status, error_code | orchestrator (activities/task_state.py) |
| `sorapi_tasks_waiting`, `sorapi_tasks_running` | gauge | plan | API, read at scrape time (`api/metrics.py`) |
| `sorapi_render_phase_seconds` | histogram | model, phase (load, denoise, encode, upload) | render worker |
| `sorapi_render_peak_gpu_memory_bytes` | histogram | model, device | render worker, CUDA only |
| `sorapi_webhook_attempts_total` | counter | outcome | orchestrator (webhook lanes) |
| `sorapi_webhook_attempt_seconds` | histogram | outcome | orchestrator (webhook lanes) |
| `sorapi_webhook_delivery_latency_seconds` | histogram | event | orchestrator: event to accepted delivery |
| `sorapi_credits_reserved_total`, `..._captured_total`, `..._released_total` | counter | plan | API, orchestrator |
"""

from __future__ import annotations

import structlog
from prometheus_client import Counter, Gauge, Histogram, start_http_server
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

log = structlog.get_logger()

__all__ = [
    "CREDITS_CAPTURED",
    "CREDITS_RELEASED",
    "CREDITS_RESERVED",
    "RENDER_PEAK_GPU_MEMORY",
    "RENDER_PHASE_SECONDS",
    "TASKS_CREATED",
    "TASKS_FINISHED",
    "TASKS_RUNNING",
    "TASKS_WAITING",
    "WEBHOOK_ATTEMPTS",
    "WEBHOOK_ATTEMPT_SECONDS",
    "WEBHOOK_DELIVERY_LATENCY",
    "sdk_runtime",
    "serve",
]

RENDER_BUCKETS = (0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200)
"""Seconds: a tiny dev render's phase takes under a second, a 20 s 1080p denoise tens of minutes."""
GIB = 1024**3
MEMORY_BUCKETS = tuple(float(g * GIB) for g in (1, 2, 4, 8, 12, 16, 24, 32, 40, 48, 64, 80, 96, 141, 192))
"""Bytes, sized to GPUs from 16 GB to 192 GB."""
WEBHOOK_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15)
"""An attempt is capped at SORAPI_WEBHOOK_TIMEOUT_S (15 s by default)."""
LATENCY_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 21600, 86400)
"""Event to accepted delivery: under a second normally, hours while a receiver is down (retries)."""

TASKS_CREATED = Counter("sorapi_tasks_created", "Tasks created (not idempotent replays)", ["plan", "model"])
TASKS_FINISHED = Counter(
    "sorapi_tasks_finished",
    "Tasks that reached a final status; error_code is empty on success",
    ["plan", "model", "status", "error_code"],
)
TASKS_WAITING = Gauge("sorapi_tasks_waiting", "Tasks queued (waiting for a plan slot or a render worker)", ["plan"])
TASKS_RUNNING = Gauge("sorapi_tasks_running", "Tasks holding a plan slot (rendering or uploading)", ["plan"])
RENDER_PHASE_SECONDS = Histogram(
    "sorapi_render_phase_seconds",
    "Seconds one render spent in a phase: load (pipeline, warm after the first), denoise, encode, upload",
    ["model", "phase"],
    buckets=RENDER_BUCKETS,
)
RENDER_PEAK_GPU_MEMORY = Histogram(
    "sorapi_render_peak_gpu_memory_bytes",
    "Peak GPU memory allocated by one render (torch.cuda.max_memory_allocated); not reported on the CPU",
    ["model", "device"],
    buckets=MEMORY_BUCKETS,
)
WEBHOOK_ATTEMPTS = Counter(
    "sorapi_webhook_attempts",
    "Webhook delivery attempts by outcome: delivered, retry (to be retried), failed (the last), gone (410)",
    ["outcome"],
)
WEBHOOK_ATTEMPT_SECONDS = Histogram(
    "sorapi_webhook_attempt_seconds", "Duration of one delivery attempt", ["outcome"], buckets=WEBHOOK_BUCKETS
)
WEBHOOK_DELIVERY_LATENCY = Histogram(
    "sorapi_webhook_delivery_latency_seconds",
    "From the event (the task's status change) to the receiver accepting it, retries included",
    ["event"],
    buckets=LATENCY_BUCKETS,
)
CREDITS_RESERVED = Counter("sorapi_credits_reserved", "Credits put on hold for new tasks", ["plan"])
CREDITS_CAPTURED = Counter("sorapi_credits_captured", "Credits charged for succeeded tasks", ["plan"])
CREDITS_RELEASED = Counter("sorapi_credits_released", "Credits given back by tasks that did not succeed", ["plan"])


def serve(process: str, host: str, port: int) -> bool:
    """Serve this process's registry on http://host:port/metrics (0: off).

    A port already taken is logged, not fatal: metrics are not worth a worker.
    """
    if not port:
        return False
    try:
        start_http_server(port, addr=host)
    except OSError as exc:
        log.error("metrics port unavailable; serving no metrics", process=process, port=port, error=str(exc))
        return False
    log.info("metrics served", process=process, url=f"http://{host}:{port}/metrics")
    return True


def sdk_runtime(process: str, host: str, port: int) -> Runtime | None:
    """A Temporal runtime whose SDK metrics Prometheus scrapes at http://host:port/metrics.

    None (the default runtime, no SDK metrics) when the port is 0 or taken. Connect the worker's client with it.
    """
    if not port:
        return None
    try:
        runtime = Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=f"{host}:{port}")))
    except Exception as exc:  # the core reports a taken port as a plain exception
        log.error("SDK metrics port unavailable; serving no SDK metrics", process=process, port=port, error=str(exc))
        return None
    log.info("SDK metrics served", process=process, url=f"http://{host}:{port}/metrics")
    return runtime
