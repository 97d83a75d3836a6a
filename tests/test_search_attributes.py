"""The Temporal UI as the operator console, on the `sorapi dev` stack.

A task's workflow is found by its search attributes and reads well (summary, details, activity summaries);
`sorapi temporal setup` registers the attributes on a bare server, idempotently.

Visibility is eventually consistent: a query is repeated until the expected workflows show (or a
deadline passes, and the assertion then shows what was listed).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

from temporalio.api.enums.v1 import EventType, IndexedValueType
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.client import Client
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.testing import WorkflowEnvironment

from sorapi.adapters import search_attributes
from sorapi.cli import servers
from tests.api_helpers import QUICK, app_client, bearer
from tests.stack import Api, Stack

MODEL = "sora-2-latest"
"""The catalog's default model: QUICK names none."""


async def listed(client: Client, query: str, expected: set[str] | int, deadline_s: float = 30) -> set[str]:
    """The workflow ids `query` lists, once they include `expected` (or number that many), or at the deadline."""
    deadline = time.monotonic() + deadline_s
    while True:
        ids = {execution.id async for execution in client.list_workflows(query)}
        enough = len(ids) == expected if isinstance(expected, int) else expected <= ids
        if enough or time.monotonic() > deadline:
            return ids
        await asyncio.sleep(0.3)


async def activity_summaries(client: Client, workflow_id: str) -> list[str]:
    """The summary of every activity the workflow scheduled, decoded (summaries go through the codec)."""
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    payloads = [
        event.user_metadata.summary
        for event in history.events
        if event.event_type
        in (EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED, EventType.EVENT_TYPE_MARKER_RECORDED)  # local ones: markers
        and event.HasField("user_metadata")
        and event.user_metadata.HasField("summary")
    ]
    return [str(text) for text in await client.data_converter.decode(payloads, [str] * len(payloads))]


async def test_a_succeeded_task_is_found_by_account_status_and_model(account: Api, stack: Stack) -> None:
    created = await account.generate(QUICK)
    assert created.status_code == 200, created.text
    task_id, price = created.json()["task_id"], created.json()["credits_reserved"]
    done = await account.wait(task_id)
    assert done["status"] == "succeeded", done
    client = await stack.temporal_client()

    assert await listed(client, f'SorapiAccountId="{account.account_id}"', {task_id}) == {task_id}
    query = f'SorapiStatus="succeeded" AND SorapiModel="{MODEL}" AND SorapiAccountId="{account.account_id}"'
    assert await listed(client, query, {task_id}) == {task_id}

    described = await client.get_workflow_handle(task_id).describe()
    found = described.typed_search_attributes
    assert found.get(search_attributes.ACCOUNT_ID) == account.account_id
    assert found.get(search_attributes.PLAN) == "free"
    assert found.get(search_attributes.MODEL) == MODEL
    assert found.get(search_attributes.STATUS) == "succeeded"
    assert found.get(search_attributes.CREDITS_CHARGED) == price
    assert found.get(search_attributes.RENDER_HOST, "").startswith("sorapi-render-host-")
    assert found.get(search_attributes.ERROR_CODE) is None
    summary = await described.static_summary()
    assert summary is not None
    assert summary.startswith(f"{MODEL} 480×480 1 s · free · “A paper boat"), summary
    details = await described.static_details() or ""
    assert task_id in details and str(account.account_id) in details and str(QUICK["prompt"]) in details

    summaries = await activity_summaries(client, task_id)
    assert "render 1 s 480×480, 30 steps" in summaries, summaries
    assert any(s.startswith("upload 4 files from sorapi-render-host-") for s in summaries), summaries
    assert f"capture {price} credits" in summaries


async def test_queued_running_and_failed_tasks_are_found_by_status_plan_and_error_code(
    account: Api, stack: Stack, tmp: Path
) -> None:
    """Three tasks on a render queue nobody serves yet: two run (the free plan's two slots), one waits `queued`.

    A render host without weights then fails them all with render_failed.
    """
    queue = f"sa-render-{uuid.uuid4().hex[:8]}"
    async with app_client(stack, render_queue=queue) as (client, _):
        created = [await client.post("/api/generate", json=QUICK, headers=bearer(account.api_key)) for _ in range(3)]
    assert [c.status_code for c in created] == [200] * 3, [c.text for c in created]
    task_ids = [c.json()["task_id"] for c in created]
    temporal = await stack.temporal_client()
    mine = f'SorapiAccountId="{account.account_id}"'

    running = await listed(temporal, f'SorapiStatus="running" AND {mine}', 2)
    queued = await listed(temporal, f'SorapiStatus="queued" AND SorapiPlan="free" AND {mine}', 1)
    assert len(running) == 2 and len(queued) == 1 and running | queued == set(task_ids), (running, queued)

    worker = subprocess.Popen(
        [sys.executable, "-m", "sorapi", "worker", "render"],
        env={**stack.env_for("worker render"), "SORAPI_RENDER_QUEUE": queue, "SORAPI_MODEL_DIR": str(tmp)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        results = [await account.wait(task_id, timeout_s=180) for task_id in task_ids]
    finally:
        worker.terminate()
        worker.wait(timeout=60)
    assert [(r["status"], r["error_code"]) for r in results] == [("failed", "render_failed")] * 3, results

    failed = await listed(temporal, f'SorapiErrorCode="render_failed" AND {mine}', set(task_ids))
    assert failed == set(task_ids)
    assert await listed(temporal, f'SorapiStatus="failed" AND SorapiModel="{MODEL}" AND {mine}', set(task_ids)) == set(
        task_ids
    )
    found = (await temporal.get_workflow_handle(task_ids[0]).describe()).typed_search_attributes
    assert found.get(search_attributes.CREDITS_CHARGED) == 0
    assert "render 1 s 480×480, 30 steps" in await activity_summaries(temporal, task_ids[0])


async def test_the_temporal_cli_lists_a_customers_tasks(account: Api, stack: Stack) -> None:
    created = await account.generate(QUICK)
    task_id = created.json()["task_id"]
    await account.wait(task_id)
    await listed(await stack.temporal_client(), f'SorapiAccountId="{account.account_id}"', {task_id})
    command = [
        servers.venv_binary("temporal"),
        "workflow",
        "list",
        "--address",
        stack.temporal_address,
        "--query",
        f'SorapiAccountId="{account.account_id}" AND WorkflowType="VideoTask"',
        "--output",
        "json",
    ]
    out = await asyncio.to_thread(subprocess.run, command, capture_output=True, text=True, timeout=60, check=True)
    rows = json.loads(out.stdout)
    assert [row["execution"]["workflowId"] for row in rows] == [task_id], out.stdout


async def _custom_attributes(
    client: Client, *, until_has: int, deadline_s: float = 30
) -> dict[str, IndexedValueType.ValueType]:
    deadline = time.monotonic() + deadline_s
    while True:
        request = ListSearchAttributesRequest(namespace=client.namespace)
        custom = dict((await client.operator_service.list_search_attributes(request)).custom_attributes)
        if len([name for name in custom if name.startswith("Sorapi")]) >= until_has or time.monotonic() > deadline:
            return custom
        await asyncio.sleep(0.3)


def _setup(address: str, stack: Stack) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sorapi", "temporal", "setup"],
        env={**stack.env, "SORAPI_TEMPORAL_ADDRESS": address},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_temporal_setup_registers_the_attributes_once(stack: Stack) -> None:
    """On a bare dev server (no --search-attribute flags): the first run adds all seven, the second none."""
    async with await WorkflowEnvironment.start_local(dev_server_existing_path=servers.venv_binary("temporal")) as env:
        address = env.client.service_client.config.target_host
        first = await asyncio.to_thread(_setup, address, stack)
        custom = await _custom_attributes(env.client, until_has=len(search_attributes.KEYS))  # a listing may lag an add
        second = await asyncio.to_thread(_setup, address, stack)
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    assert first.stdout.count(" added") == 7 and "already registered" not in first.stdout, first.stdout
    assert second.stdout.count("already registered") == 7 and " added" not in second.stdout, second.stdout
    assert {key.name: custom.get(key.name) for key in search_attributes.KEYS} == {
        **{key.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD for key in search_attributes.KEYS},
        "SorapiCreditsCharged": IndexedValueType.INDEXED_VALUE_TYPE_INT,
    }


def test_a_running_tasks_stage_between_two_steps_comes_from_its_attributes() -> None:
    """Between two activities nothing is pending: the API then reads the stage from the attributes.

    This holds from input version 2 on, so a task's progress never falls back to 0 while it moves on.
    """

    def stage(*pairs: SearchAttributePair[str]) -> str | None:
        return search_attributes.stage(TypedSearchAttributes(list(pairs)))

    assert stage(SearchAttributePair(search_attributes.STATUS, "queued")) is None
    assert stage(SearchAttributePair(search_attributes.STATUS, "running")) == "render"
    assert (
        stage(
            SearchAttributePair(search_attributes.STATUS, "running"),
            SearchAttributePair(search_attributes.RENDER_HOST, "h1"),
        )
        == "upload"
    )
