"""Key-use entries of the audit log, for plans that keep one (`audit_log` in catalog.toml)."""

from __future__ import annotations

from litestar import Request
from sqlalchemy.ext.asyncio import AsyncSession

from api.state import Resources
from sorapi.db import audit
from sorapi.db.models import Account, ApiKey, AuditEvent

PENDING_KEY_USE = "key_use"
"""`session.info` slot holding the request's key-use entry (see api/request_db.py)."""


def record_key_use(session: AsyncSession, resources: Resources, account: Account, api_key: ApiKey,
                   request: Request) -> AuditEvent | None:
    """One audit event per authenticated request: which key (seat) called what. Added to `session`;
    the caller's commit writes it."""
    plan = resources.catalog.plans.get(account.plan)
    if plan is None or not plan.audit_log:
        return None
    entry = audit.record(session, actor=api_key.id, action="key.use", account_id=account.id, target=api_key.id,
                         details={"method": request.method, "path": request.url.path, "key_name": api_key.name,
                                  "client": request.client.host if request.client else None})
    session.info[PENDING_KEY_USE] = entry
    return entry
