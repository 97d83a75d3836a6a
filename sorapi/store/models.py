"""Tables. Money is integer credits; ledger rows are append-only and unique per (task, kind)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: DateTime(timezone=True), dict[str, Any]: JSON, list[Any]: JSON}


class Account(Base):
    __tablename__ = "accounts"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    plan: Mapped[str] = mapped_column(String(20))
    balance: Mapped[int] = mapped_column(BigInteger, default=0)
    """Credits owned: grants and adjustments minus captures. Kept in step with the ledger."""
    reserved: Mapped[int] = mapped_column(BigInteger, default=0)
    """Credits held by open reservations."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    webhook_secret: Mapped[str | None] = mapped_column(Text, default=None)
    """The webhook signing secret, encrypted (`sorapi.adapters.secretbox`); made on first use."""
    webhook_previous_secret: Mapped[str | None] = mapped_column(Text, default=None)
    """The secret before the last rotation, encrypted; it also signs until `webhook_previous_until`."""
    webhook_previous_until: Mapped[datetime | None] = mapped_column(default=None)
    monthly_credit_limit: Mapped[int | None] = mapped_column(BigInteger, default=None)
    """Most credits the account may use (held + captured) in a UTC calendar month; None: no cap."""
    key_credit_limits: Mapped[dict[str, int]] = mapped_column(JSONB, default=dict, server_default=text("'{}'::jsonb"))
    """key id → that key's monthly credit limit (keys without one are absent). Kept on the account
    row, which every hold locks, so the cap check costs no round trip (`sorapi.store.spend_limits`)."""


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    prefix: Mapped[str] = mapped_column(String(20))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[str] = mapped_column(String(200), default="generate,read")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    name: Mapped[str] = mapped_column(String(100), default="", server_default="")
    """A label for the seat that holds the key (a person, a service)."""


class LedgerEntry(Base):
    __tablename__ = "ledger_entries"
    __table_args__ = (
        UniqueConstraint("task_id", "kind", name="uq_ledger_task_kind"),
        Index("uq_ledger_account_kind_period", "account_id", "kind", "period", unique=True),
        Index("ix_ledger_account_id_id", "account_id", "id"),
        Index(
            "ix_ledger_captures_account_created",
            "account_id",
            "created_at",
            postgresql_where=text("kind = 'capture'"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    task_id: Mapped[str | None] = mapped_column(String(40), default=None)
    kind: Mapped[str] = mapped_column(String(20))
    amount: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(String(200), default="")
    actor: Mapped[str] = mapped_column(String(100), default="system")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    period: Mapped[str | None] = mapped_column(String(10), default=None)
    """Billing period ("2026-12") of a refresh or expiry: unique per account, so each runs once."""


class Task(Base):
    __tablename__ = "tasks"
    __table_args__ = (
        UniqueConstraint("account_id", "idempotency_key", name="uq_task_idempotency"),
        Index("ix_tasks_account_created", "account_id", "created_at"),
        Index("ix_tasks_queued_line", "account_id", "created_at", "id", postgresql_where=text("status = 'queued'")),
        Index("ix_tasks_running", "account_id", postgresql_where=text("status = 'running'")),
        Index("ix_tasks_recent_successes", "finished_at", postgresql_where=text("status = 'succeeded'")),
        Index(
            "ix_tasks_client_metadata",
            "client_metadata",
            postgresql_using="gin",
            postgresql_ops={"client_metadata": "jsonb_path_ops"},
        ),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"))
    idempotency_key: Mapped[str | None] = mapped_column(String(64), default=None)
    fingerprint: Mapped[str] = mapped_column(String(64))
    request: Mapped[dict[str, Any]] = mapped_column(JSON)
    callback_headers: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    client_metadata: Mapped[dict[str, str]] = mapped_column(JSONB, default=dict, server_default=text("'{}'::jsonb"))
    """The client's `metadata` labels; `@>` finds tasks by them (GIN index)."""
    key_id: Mapped[str | None] = mapped_column(String(40), default=None)
    """The API key that created the task (None for tasks created before spend caps)."""
    status: Mapped[str] = mapped_column(String(20), default="queued")
    progress: Mapped[int] = mapped_column(Integer, default=0)
    price: Mapped[int] = mapped_column(BigInteger)
    outputs: Mapped[list[Any]] = mapped_column(JSON, default=list)
    render: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    error_code: Mapped[str | None] = mapped_column(String(60), default=None)
    error_message: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    expires_at: Mapped[datetime | None] = mapped_column(default=None)


class TaskEvent(Base):
    __tablename__ = "task_events"
    __table_args__ = (Index("ix_task_events_task", "task_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task_id: Mapped[str] = mapped_column(ForeignKey("tasks.id"))
    kind: Mapped[str] = mapped_column(String(40))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    task: Mapped[Task] = relationship(lazy="raise")
    """Never loaded; declared so one flush inserts a new task before its first events (FK order)."""


class AuditEvent(Base):
    """Append-only record of key use and administrative actions (`GET /api/audit-log`)."""

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_account_id_id", "account_id", "id"),
        Index("ix_audit_events_key_use_created", "created_at", postgresql_where=text("action = 'key.use'")),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[str | None] = mapped_column(String(40), default=None)
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(60))
    target: Mapped[str] = mapped_column(String(100), default="")
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SlotWaiter(Base):
    """A queued task whose workflow is asking for a concurrency slot right now.

    `seen_at` is refreshed on every attempt; waiters not seen lately (their workflow is gone)
    drop out of the FIFO order, so a dead task can never block the queue.
    """

    __tablename__ = "slot_waiters"

    task_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(40), index=True)
    queued_at: Mapped[datetime] = mapped_column()
    seen_at: Mapped[datetime] = mapped_column()


class WebhookDelivery(Base):
    """One HTTP attempt to deliver a task event; unique per (delivery run, attempt) so retries never double-count."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("delivery_id", "attempt", name="uq_webhook_delivery_attempt"),
        Index("ix_webhook_deliveries_task", "task_id", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task_id: Mapped[str] = mapped_column(ForeignKey("tasks.id"))
    event_id: Mapped[str] = mapped_column(String(64))
    event_type: Mapped[str] = mapped_column(String(40))
    delivery_id: Mapped[str] = mapped_column(String(200))
    trigger: Mapped[str] = mapped_column(String(20), default="automatic")
    attempt: Mapped[int] = mapped_column(Integer)
    attempted_at: Mapped[datetime] = mapped_column(default=utcnow)
    outcome: Mapped[str] = mapped_column(String(20))
    status_code: Mapped[int | None] = mapped_column(Integer, default=None)
    latency_ms: Mapped[int | None] = mapped_column(Integer, default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    retry_after_s: Mapped[float | None] = mapped_column(Float, default=None)


class Batch(Base):
    """A `POST /api/batches`: its tasks were created (with their holds) in one transaction."""

    __tablename__ = "batches"
    __table_args__ = (UniqueConstraint("account_id", "idempotency_key", name="uq_batch_idempotency"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"))
    idempotency_key: Mapped[str | None] = mapped_column(String(64), default=None)
    fingerprint: Mapped[str] = mapped_column(String(64))
    task_ids: Mapped[list[Any]] = mapped_column(JSON)
    """The tasks, in the order of the request's items."""
    price: Mapped[int] = mapped_column(BigInteger)
    """Credits held for all its tasks at creation."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
