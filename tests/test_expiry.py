"""Retention: at the plan's retention time the task's objects really leave S3 (SeaweedFS).

The task becomes `expired` (request kept, `expires_at` said), the event is recorded and the `expired` webhook is sent;
`delete_task` does the same early. Time-skipping Temporal, real PostgreSQL.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from temporalio.client import WorkflowFailureError

from sorapi.api.tasks.deletion import delete_task
from sorapi.api.tasks.task_service import status_view
from sorapi.contracts import errors
from sorapi.contracts.messages import DeliveryReport
from sorapi.domain.catalog import get_catalog
from sorapi.store import ledger
from sorapi.store.models import Task, utcnow
from tests.lifecycle_env import Lifecycle, lifecycle_env
from tests.stack import fresh_pg_database


@pytest.fixture(scope="module")
async def lc(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Lifecycle]:
    """A database of the module's own (the stack's sweeper must not see tasks of another Temporal server)."""
    with fresh_pg_database() as url:
        async with lifecycle_env(tmp_path_factory.mktemp("expiry"), url) as lifecycle:
            yield lifecycle


async def _succeeded(lc: Lifecycle, plan: str, path: str) -> str:
    task_id, _ = await lc.create(plan=plan, path=path)
    assert await lc.finished(task_id) == "succeeded"  # no time skipping yet: the window must not pass
    assert DeliveryReport(**await lc.finished(f"{task_id}-webhook-succeeded")).outcome == "delivered"
    return task_id


async def test_assets_expire_at_the_plans_retention_time(lc: Lifecycle) -> None:
    path = f"/expiry-{uuid.uuid4().hex[:8]}"
    task_id = await _succeeded(lc, "free", path)
    retention = timedelta(hours=get_catalog().plans["free"].retention_hours)
    succeeded_at = (await (await lc.handle(task_id)).describe()).close_time
    task = await lc.task(task_id)
    promised = task.expires_at
    assert promised is not None and abs(promised - succeeded_at - retention) < timedelta(seconds=5)
    assert sorted(lc.objects(task_id)) == [f"tasks/{task_id}/thumbnail.jpg", f"tasks/{task_id}/video.mp4"]
    view = await status_view(lc.res, task, plan="free")
    assert view.status == "succeeded" and view.expires_at == promised and len(view.response) == 2
    async with httpx.AsyncClient() as http:
        assert (await http.get(view.response[0])).status_code == 200

    assert await lc.result(f"{task_id}-retention") == "retention"  # the server skips the 24 h here
    now = await lc.env.get_current_time()
    assert now >= promised, "not a moment early"

    assert lc.objects(task_id) == [], "the objects are really gone from S3"
    async with httpx.AsyncClient() as http:
        assert (await http.get(view.response[0])).status_code == 404
    task = await lc.task(task_id)
    assert (task.status, task.expires_at) == ("expired", promised)
    expired_view = await status_view(lc.res, task, plan="free")
    assert expired_view.response == [] and expired_view.outputs == []
    assert expired_view.request.prompt == "a calm lake at dawn" and expired_view.expires_at == promised
    events = {e.kind: e.data for e in await lc.events(task_id)}
    assert "expired" in events and events["assets_deleted"] == {"objects": 2, "reason": "retention"}

    assert DeliveryReport(**await lc.result(f"{task_id}-webhook-expired")).outcome == "delivered"
    expired = [r for r in lc.receiver.at(path) if json.loads(r.body)["type"] == "task.expired"]
    assert len(expired) == 1 and expired[0].extra == "expired", "the row said expired before the webhook"
    body = json.loads(expired[0].body)
    assert (body["status"], body["response"], body["task_id"]) == ("expired", [], task_id)
    assert body["expires_at"] is not None and body["request"]["prompt"] == "a calm lake at dawn"
    delivery = [d for d in await lc.deliveries(task_id) if d.event_type == "task.expired"]
    assert promised <= delivery[0].attempted_at < promised + timedelta(minutes=1)


async def test_delete_removes_assets_early_with_the_same_guarantees(lc: Lifecycle) -> None:
    path = f"/delete-{uuid.uuid4().hex[:8]}"
    task_id = await _succeeded(lc, "scale", path)
    _, principal = await lc.create(plan="scale", path=path)  # another account: a 404, not a deletion
    with pytest.raises(errors.NotFound):
        await delete_task(lc.res, principal, task_id)
    owner = principal.__class__(
        account_id=(await lc.task(task_id)).account_id, plan="scale", key_id="k", scopes=frozenset({"generate", "read"})
    )
    assert lc.objects(task_id)

    task = await delete_task(lc.res, owner, task_id)

    assert task.status == "expired" and task.expires_at is not None
    assert lc.objects(task_id) == []
    assert await lc.finished(f"{task_id}-retention") == "deleted"
    assert DeliveryReport(**await lc.finished(f"{task_id}-webhook-expired")).outcome == "delivered"
    events = {e.kind: e.data for e in await lc.events(task_id)}
    assert events["assets_deleted"] == {"objects": 2, "reason": "deleted"}
    assert (await delete_task(lc.res, owner, task_id)).status == "expired", "deleting again is a no-op"


async def test_delete_just_after_success_starts_the_retention_window_itself(lc: Lifecycle) -> None:
    """A delete before the retention workflow starts starts it (signal-with-start) instead of answering 503.

    The task row says `succeeded` a moment before its workflow starts the retention workflow; the delete lands in that
    moment.
    """
    first, principal = await lc.create(plan="pro", path=f"/early-{uuid.uuid4().hex[:8]}")
    await lc.finished(first)
    task_id = f"sora2early{uuid.uuid4().hex[:16]}"
    async with lc.sessions.begin() as session:
        session.add(
            Task(
                id=task_id,
                account_id=principal.account_id,
                fingerprint=task_id,
                status="succeeded",
                request={"prompt": "p"},
                price=1,
                outputs=[],
                expires_at=utcnow() + timedelta(days=7),
            )
        )

    task = await delete_task(lc.res, principal, task_id)

    assert task.status == "expired"
    assert await lc.finished(f"{task_id}-retention") == "deleted"


async def test_a_task_that_fails_mid_upload_keeps_nothing_in_s3(lc: Lifecycle) -> None:
    """The upload put the video, then failed: the task fails and its hold comes back.

    The video it will never serve is deleted rather than left in the bucket.
    """
    task_id, _ = await lc.create(plan="free", prompt="a partial upload of a calm lake")
    with pytest.raises(WorkflowFailureError):
        await lc.finished(task_id)
    task = await lc.task(task_id)
    assert (task.status, task.outputs) == ("failed", [])
    assert lc.objects(task_id) == [], "the partial upload is gone from S3"
    async with lc.sessions() as session:
        assert set(await ledger.task_entries(session, task_id)) == {ledger.RESERVE, ledger.RELEASE}


async def test_delete_refuses_an_unfinished_task(lc: Lifecycle) -> None:
    task_id, principal = await lc.create(plan="pro", path="/unfinished", prompt="a slow render")
    with pytest.raises(errors.Conflict):
        await delete_task(lc.res, principal, task_id)
    await (await lc.handle(task_id)).cancel()
