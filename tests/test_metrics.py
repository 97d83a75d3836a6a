"""Prometheus metrics on the real stack.

Every `metrics:` URL `sorapi dev` prints serves Prometheus text in which a task is counted, /metrics is for operators
only, and the Grafana dashboard asks only for metrics that exist.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from sorapi.store.models import Account, Task
from tests.api_helpers import QUICK, app_client, bearer
from tests.stack import Api, Stack

ROOT = Path(__file__).resolve().parents[1]
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "sorapi.json"
BANNER_LINE = re.compile(r"metrics: (\w+)\s+(http://\S+)(?:\s+\(Temporal SDK: (http://\S+)\))?")
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def metrics_urls(stack: Stack) -> dict[str, str]:
    """Every `metrics:` URL of the banner, as {process: url}; SDK endpoints as `<process>-sdk`."""
    urls = {}
    for process, own, sdk in BANNER_LINE.findall(stack.logs()):
        urls[process] = own
        if sdk:
            urls[f"{process}-sdk"] = sdk
    return urls


def admin_token(stack: Stack) -> str:
    return (stack.data_dir / "admin-token").read_text().strip()


async def scrape(url: str, token: str) -> str:
    async with httpx.AsyncClient(timeout=30) as http:
        answer = await http.get(url, headers=bearer(token))
    assert answer.status_code == 200, (url, answer.status_code, answer.text[:300])
    assert answer.headers["content-type"].startswith("text/plain"), answer.headers["content-type"]
    return answer.text


def samples(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(found: Samples, name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


def names_in(text: str) -> set[str]:
    """Every metric family and sample name the text declares, with or without samples yet."""
    declared = {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")}
    return declared | {name for name, _ in samples(text)}


async def scrape_all(stack: Stack) -> dict[str, str]:
    urls = metrics_urls(stack)
    return {process: await scrape(url, admin_token(stack)) for process, url in urls.items()}


async def test_dev_prints_one_metrics_url_per_process(stack: Stack) -> None:
    urls = metrics_urls(stack)
    assert set(urls) == {"api", "orchestrator", "orchestrator-sdk", "render", "render-sdk"}
    assert urls["api"] == f"{stack.base_url}/metrics"
    assert len(set(urls.values())) == len(urls)


async def _finished_between(sessions: Any, start: Any, end: Any, model: str) -> int:
    """Free-plan tasks of `model` that succeeded in the window.

    The stack is shared, and a task of an earlier test may finish while this one runs.
    """
    async with sessions() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(Task)
            .join(Account, Account.id == Task.account_id)
            .where(
                Task.finished_at > start,
                Task.finished_at <= end,
                Task.status == "succeeded",
                Account.plan == "free",
                Task.request["model_version"].as_string() == model,
            )
        )
    return int(count or 0)


async def _db_now(sessions: Any) -> Any:
    async with sessions() as session:
        return await session.scalar(select(func.now()))


async def test_a_task_moves_the_metrics_of_every_process(stack: Stack, account: Api, sessions: Any) -> None:
    window_start = await _db_now(sessions)
    before = {process: samples(text) for process, text in (await scrape_all(stack)).items()}
    created = await account.generate(QUICK)
    assert created.status_code == 200, created.text
    task = await account.wait(created.json()["task_id"])
    assert task["status"] == "succeeded", task
    price = task["credits_charged"]
    async with sessions() as session:
        model = (await session.get(Task, task["task_id"])).request["model_version"]  # the release, aliases resolved
    after_text = await scrape_all(stack)
    window_end = await _db_now(sessions)
    after = {process: samples(text) for process, text in after_text.items()}

    def moved(process: str, name: str, **labels: str) -> float:
        return value(after[process], name, **labels) - value(before[process], name, **labels)

    assert moved("api", "sorapi_tasks_created_total", plan="free", model=model) == 1
    assert moved("api", "sorapi_credits_reserved_total", plan="free") == price
    generate = {"method": "POST", "path": "/api/generate", "status_code": "200", "app_name": "sorapi"}
    assert moved("api", "sorapi_http_requests_total", **generate) == 1
    assert moved("api", "sorapi_http_request_duration_seconds_count", **generate) == 1
    assert ("sorapi_tasks_waiting", frozenset({("plan", "free")})) in after["api"]
    assert ("sorapi_tasks_running", frozenset({("plan", "free")})) in after["api"]

    finished = {"plan": "free", "model": model, "status": "succeeded", "error_code": ""}
    # The stack is shared: earlier tests' tasks finish meanwhile, and a counter moves just after its
    # row commits, so the window's rows and the scrapes can disagree by a task at either edge.
    finished_in_window = await _finished_between(sessions, window_start, window_end, model)
    assert finished_in_window >= 1
    assert 1 <= moved("orchestrator", "sorapi_tasks_finished_total", **finished) <= finished_in_window + 1
    assert moved("orchestrator", "sorapi_credits_captured_total", plan="free") >= price

    for phase in ("load", "denoise", "encode", "upload"):
        assert moved("render", "sorapi_render_phase_seconds_count", model=model, phase=phase) >= 1, phase
    assert "sorapi_render_peak_gpu_memory_bytes" in names_in(after_text["render"])  # declared; samples on CUDA only

    # the Temporal SDK's runtime metrics of each worker, labelled with the queues it polls
    assert 'task_queue="sorapi-render"' in after_text["render-sdk"]
    assert 'task_queue="sorapi-orchestration"' in after_text["orchestrator-sdk"]
    assert any(name.startswith("temporal_") for name in names_in(after_text["render-sdk"]))


async def test_metrics_is_for_operators_only(stack: Stack, account: Api) -> None:
    url = f"{stack.base_url}/metrics"
    async with httpx.AsyncClient(timeout=30) as http:
        assert (await http.get(url)).status_code == 401
        customer = await http.get(url, headers=account.auth())
        assert customer.status_code == 401 and customer.json()["error"]["code"] == "unauthorized"
        assert (await http.get(url, headers=bearer("adm_wrong"))).status_code == 401
        assert (await http.get(url, headers=bearer(admin_token(stack)))).status_code == 200
        schema = (await http.get(f"{stack.base_url}/openapi.json")).json()
    assert "/metrics" not in schema["paths"], "no part of the client API"

    token = "mtr_" + "5d1c" * 10
    async with app_client(stack, metrics_token=token, admin_token=admin_token(stack)) as (client, _):
        assert (await client.get("/metrics", headers=bearer(token))).status_code == 200
        assert (await client.get("/metrics", headers=bearer(admin_token(stack)))).status_code == 200
        assert (await client.get("/metrics")).status_code == 401
    async with app_client(stack, metrics_token="", admin_token="") as (client, _):
        disabled = await client.get("/metrics", headers=bearer(token))
        assert disabled.status_code == 403 and disabled.json()["error"]["code"] == "metrics_disabled"
    async with app_client(stack, metrics_token="", admin_token="", metrics_public=True) as (client, _):
        assert (await client.get("/metrics")).status_code == 200


def dashboard_metrics() -> dict[str, set[str]]:
    """{panel title: metric names its queries use}."""
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text())
    names = re.compile(r"\b((?:sorapi|temporal)_[a-z0-9_]+)\b")
    return {
        panel["title"]: {name for target in panel["targets"] for name in names.findall(target["expr"])}
        for panel in dashboard["panels"]
    }


async def test_every_dashboard_panel_asks_for_metrics_that_exist(stack: Stack, account: Api) -> None:
    """After a task (the Temporal SDK declares a metric only once it first records it)."""
    task = await account.wait((await account.generate(QUICK)).json()["task_id"])
    assert task["status"] == "succeeded", task
    exposed = set().union(*(names_in(text) for text in (await scrape_all(stack)).values()))
    panels = dashboard_metrics()
    wanted = {
        "sorapi_tasks_created_total",
        "sorapi_tasks_finished_total",
        "sorapi_tasks_waiting",
        "sorapi_tasks_running",
        "sorapi_render_phase_seconds_bucket",
        "sorapi_render_peak_gpu_memory_bytes_bucket",
        "sorapi_webhook_attempts_total",
        "sorapi_webhook_delivery_latency_seconds_bucket",
        "sorapi_credits_reserved_total",
        "sorapi_credits_captured_total",
        "sorapi_credits_released_total",
        "sorapi_http_requests_total",
    }
    assert wanted <= set().union(*panels.values()), "the dashboard shows every business metric"
    for title, used in panels.items():
        assert used, title
        for name in used:
            family = re.sub(r"_(bucket|count|sum|total)$", "", name)
            assert name in exposed or family in exposed, f"panel {title!r} asks for {name}, which nothing serves"
