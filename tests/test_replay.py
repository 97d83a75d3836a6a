"""Recorded histories replay on today's workflow code.

A change that would break a workflow in flight (a command added, removed or reordered without a `workflow.patched`
marker) fails here.

The histories in tests/histories/ were recorded by `python -m tests.histories.record`; the
`before-*` ones with the workflows of older commits (`--ref`), before the `discard-outputs`,
`slot-gate`, `local-db-steps` and `search-attributes` patches of the task workflow and the
`late-start` patch of the slot gate. Record again after a deliberate,
patched change of a workflow.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from sorapi.adapters.converter import DATA_CONVERTER
from sorapi.adapters.settings import Settings, settings_from_env
from sorapi.contracts import names
from sorapi.workers.orchestrator import WORKFLOWS, sandbox_runner, workflow_runner
from tests.api_helpers import QUICK
from tests.stack import Api, Stack

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def test_every_workflow_has_recorded_histories() -> None:
    names = {path.stem.split("-")[-1] for path in HISTORIES}
    assert {
        "video_task_succeeded",
        "video_task_render_failed",
        "video_task_queue_timeout",
        "slot_gate",
        "webhook_delivery",
        "task_retention",
    } <= names
    assert any(path.name.startswith("before-discard-patch-") for path in HISTORIES)
    assert any(path.name.startswith("before-slot-gate-") for path in HISTORIES)
    assert any(path.name.startswith("before-local-db-steps-") for path in HISTORIES)
    assert any(path.name.startswith("before-search-attributes-video_task_") for path in HISTORIES)
    assert any(path.name.startswith("before-late-start-slot_gate") for path in HISTORIES)


@pytest.mark.parametrize("path", HISTORIES, ids=[path.stem for path in HISTORIES])
async def test_recorded_history_replays_on_todays_code(path: Path) -> None:
    replayer = Replayer(workflows=WORKFLOWS, workflow_runner=sandbox_runner(), data_converter=DATA_CONVERTER)
    result = await replayer.replay_workflow(
        WorkflowHistory.from_json(path.stem, path.read_text()), raise_on_replay_failure=True
    )
    assert result.replay_failure is None


async def test_a_task_the_api_starts_takes_its_patched_steps_without_markers(api: Api, stack: Stack) -> None:
    """VIDEO_TASK_VERSION: the input, not `workflow.patched`, decides.

    Hence no patch marker and no `TemporalChangeVersion` upsert in the history, the retention starts as a local
    activity, the start's search attributes are not upserted again, no memo is written, and the history replays on
    today's code.
    """
    created = await api.generate(QUICK)
    assert created.status_code == 200, created.text
    task_id = created.json()["task_id"]
    assert (await api.wait(task_id))["status"] == "succeeded"
    client = await stack.temporal_client()
    history = await client.get_workflow_handle(task_id).fetch_history()
    markers = [
        e.marker_recorded_event_attributes.marker_name
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
    ]
    assert "core_patch" not in markers and "core_local_activity" in markers
    upserted = {
        name
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES
        for name in e.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields
    }
    assert "TemporalChangeVersion" not in upserted and "SorapiStatus" in upserted
    assert "SorapiAccountId" not in upserted, "the API starts it with these: not upserted again"
    kinds = {e.event_type for e in history.events}
    assert EventType.EVENT_TYPE_WORKFLOW_PROPERTIES_MODIFIED not in kinds, "no stage memo: the API reads the attributes"
    scheduled = [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]
    assert names.START_RETENTION not in scheduled, "the retention starts as a local activity"
    replayer = Replayer(workflows=WORKFLOWS, workflow_runner=sandbox_runner(), data_converter=client.data_converter)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None


async def test_ci_runs_the_workflows_in_the_sandbox_and_production_without(stack: Stack) -> None:
    """Production skips the sandbox's cost (SORAPI_WORKFLOW_SANDBOX off); the suite turns it on.

    Every stack and worker the suite starts turns it on, so a non-deterministic call in a workflow fails here before it
    ships.
    """
    assert isinstance(workflow_runner(Settings()), UnsandboxedWorkflowRunner)
    assert isinstance(workflow_runner(Settings(workflow_sandbox=True)), SandboxedWorkflowRunner)
    assert settings_from_env(stack.env).workflow_sandbox
