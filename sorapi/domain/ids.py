"""Task and key identifiers."""

from __future__ import annotations

import hashlib
import secrets
import uuid

TASK_PREFIX = "sora2"


def new_task_id() -> str:
    """A random task id in the seed's shape (`sora2` + 32 hex digits)."""
    return TASK_PREFIX + uuid.uuid4().hex


def idempotent_task_id(account_id: str, idempotency_key: str) -> str:
    """The task id an idempotency key always maps to, so a retried create heals a half-done one.

    Deterministic ids make the Temporal workflow id known before the DB row commits: a crash
    between the two steps is repaired by the client's retry, never duplicated.
    """
    digest = hashlib.sha256(f"{account_id}\x00{idempotency_key}".encode()).hexdigest()
    return TASK_PREFIX + digest[:32]


def new_account_id() -> str:
    return "acct_" + uuid.uuid4().hex[:20]


def new_api_key() -> str:
    """A Bearer secret; only its hash is stored."""
    return "sk_sora2_" + secrets.token_urlsafe(32)


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def slot_gate_workflow_id(account_id: str) -> str:
    """The account's slot gate: one long-lived workflow that hands out its plan's concurrency slots."""
    return f"slot-gate-{account_id}"


def retention_workflow_id(task_id: str) -> str:
    """The workflow that keeps a succeeded task's assets until its retention window ends."""
    return f"{task_id}-retention"


def webhook_workflow_id(task_id: str, event: str) -> str:
    """The automatic delivery of one task event (redeliveries get their own ids)."""
    return f"{task_id}-webhook-{event}"


def redelivery_slot_workflow_id(task_id: str, slot: int) -> str:
    """One of a task's redelivery slots: Temporal runs at most one workflow per id, so at most one redelivery."""
    return f"{task_id}-redelivery-{slot}"


BATCH_PREFIX = "batch_"


def new_batch_id() -> str:
    """A random batch id (`batch_` + 32 hex digits), for a batch sent without an idempotency key."""
    return BATCH_PREFIX + uuid.uuid4().hex


def idempotent_batch_id(account_id: str, idempotency_key: str) -> str:
    """The batch id a batch's idempotency key always maps to.

    It has its own namespace: a batch and a task may share a key without sharing anything.
    """
    digest = hashlib.sha256(f"batch\x00{account_id}\x00{idempotency_key}".encode()).hexdigest()
    return BATCH_PREFIX + digest[:32]


def batch_item_key(batch_id: str, index: int) -> str:
    """The idempotency key of a keyed batch's item `index` (`batch_…/3`).

    Its task id follows from it (`idempotent_task_id`), so a retried batch finds each of its tasks again.
    """
    return f"{batch_id}/{index}"
