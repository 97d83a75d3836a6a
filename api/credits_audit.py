"""Key-use entries of the audit log, for plans that keep one (`audit_log` in catalog.toml)."""

from __future__ import annotations

from typing import Any

from litestar import Request
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession

from api.state import Resources
from sorapi.db import audit
from sorapi.db.accounts import KeyOwner

UNCOMMITTED_KEY_USE = "uncommitted_key_use"
"""`session.info` slot: the request's key-use entry until a commit has written it (api/request_db.py)."""


async def record_key_use(session: AsyncSession, resources: Resources, owner: KeyOwner, request: Request) -> None:
    """One audit event per authenticated request: which key (seat) called what. Inserted in
    `session`'s transaction; the caller commits."""
    plan = resources.catalog.plans.get(owner.plan)
    if plan is None or not plan.audit_log:
        return
    entry: dict[str, Any] = {
        "actor": owner.key_id, "action": "key.use", "account_id": owner.account_id, "target": owner.key_id,
        "details": {"method": request.method, "path": request.url.path, "key_name": owner.key_name,
                    "client": request.client.host if request.client else None}}
    await audit.append(session, **entry)
    session.info[UNCOMMITTED_KEY_USE] = entry
    event.listen(session.sync_session, "after_commit", _written)


def _written(session: Any) -> None:
    session.info.pop(UNCOMMITTED_KEY_USE, None)
