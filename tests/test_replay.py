"""Recorded histories replay on today's workflow code: a change that would break a workflow in
flight (a command added, removed or reordered without a `workflow.patched` marker) fails here.

The histories in tests/histories/ were recorded by `python -m tests.histories.record`; the
`before-*` ones with the workflows of older commits (`--ref`), before the `discard-outputs`,
`slot-gate`, `local-db-steps` and `search-attributes` patches. Record again after a deliberate,
patched change of a workflow.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from sorapi.converter import DATA_CONVERTER
from workers.orchestrator import WORKFLOWS, sandbox_runner

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


@pytest.mark.parametrize("path", HISTORIES, ids=[path.stem for path in HISTORIES])
async def test_recorded_history_replays_on_todays_code(path: Path) -> None:
    replayer = Replayer(workflows=WORKFLOWS, workflow_runner=sandbox_runner(), data_converter=DATA_CONVERTER)
    result = await replayer.replay_workflow(
        WorkflowHistory.from_json(path.stem, path.read_text()), raise_on_replay_failure=True
    )
    assert result.replay_failure is None
