"""Key-use entries of the audit log, for plans that keep one (`audit_log` in catalog.toml)."""

from __future__ import annotations

from typing import Any

from litestar import Request
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession

from sorapi.api.state import Resources
from sorapi.store.accounts import KeyOwner, KeyUse
from sorapi.store.models import utcnow

UNCOMMITTED_KEY_USE = "uncommitted_key_use"
"""`session.info` slot: the request's key-use entry until a commit has written it (api/request_db.py)."""


def key_use(resources: Resources, request: Request) -> KeyUse:
    """One audit event per authenticated request: which key (seat) called what, for `audit_log` plans.

    `sorapi.store.accounts.key_owner` writes it along with the key lookup, in the caller's session.
    """
    return KeyUse(
        plans=frozenset(name for name, plan in resources.catalog.plans.items() if plan.audit_log),
        method=request.method,
        path=request.url.path.replace("\x00", "%00"),  # as sent: text holds no NUL
        client=request.client.host if request.client else None,
        at=utcnow(),
    )


def remember_until_commit(session: AsyncSession, use: KeyUse, owner: KeyOwner) -> None:
    """Keep the entry in `session.info` until a commit writes it, so a rolled-back request can re-add it."""
    if owner.plan not in use.plans:
        return
    entry: dict[str, Any] = use.entry(owner)
    session.info[UNCOMMITTED_KEY_USE] = entry
    event.listen(session.sync_session, "after_commit", _written)


def _written(session: Any) -> None:
    session.info.pop(UNCOMMITTED_KEY_USE, None)
