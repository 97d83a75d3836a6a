"""Credits service for the customer API: balances, ledger and audit pages, estimates, queue positions."""

from __future__ import annotations

import msgspec

from sorapi.api import pagination
from sorapi.api.auth import Principal
from sorapi.api.state import Resources
from sorapi.contracts import errors, status
from sorapi.contracts.credit_schemas import (
    AuditPage,
    CreditsResponse,
    EstimateResponse,
    LedgerPage,
    SpendLimitChange,
    SpendLimits,
)
from sorapi.contracts.schemas import GenerateRequest
from sorapi.domain.planning import plan
from sorapi.store import administration, audit, credits, ledger, slots
from sorapi.store.models import Account, Task


async def _account(session: object, account_id: str) -> Account:
    account = await session.get(Account, account_id)  # type: ignore[attr-defined]
    if account is None:
        raise errors.NotFound(f"no account {account_id!r}")
    return account


async def account_credits(res: Resources, account_id: str) -> CreditsResponse:
    async with res.sessions() as session:
        return await credits.summary(session, await _account(session, account_id), res.catalog)


LEDGER_CURSOR = "l"
AUDIT_CURSOR = "a"
"""Tags of the ledger's and the audit log's cursors (`l123`: entries before id 123)."""


async def ledger_page(res: Resources, account_id: str, cursor: str | None, limit: int, kind: str | None) -> LedgerPage:
    if kind is not None and kind not in ledger.KINDS:
        raise errors.ValidationFailed(
            "unknown ledger entry kind",
            details=[{"field": "kind", "message": f"must be one of {', '.join(ledger.KINDS)}"}],
        )
    async with res.sessions() as session:
        rows, more = await credits.ledger_page(
            session, account_id, limit=limit, kind=kind, before_id=pagination.decode_id_cursor(cursor, LEDGER_CURSOR)
        )
    return LedgerPage(
        data=rows,
        has_more=more,
        next_cursor=pagination.id_cursor(LEDGER_CURSOR, rows[-1].id) if more and rows else None,
    )


async def audit_page(res: Resources, account_id: str | None, cursor: str | None, limit: int) -> AuditPage:
    async with res.sessions() as session:
        rows, more = await audit.page(
            session, account_id, limit=limit, before_id=pagination.decode_id_cursor(cursor, AUDIT_CURSOR)
        )
    return AuditPage(
        data=[credits.audit_view(e) for e in rows],
        has_more=more,
        next_cursor=pagination.id_cursor(AUDIT_CURSOR, rows[-1].id) if more and rows else None,
    )


async def estimate(res: Resources, principal: Principal, req: GenerateRequest) -> EstimateResponse:
    planned = plan(req, res.catalog, allow_http_callbacks=res.settings.webhook_allow_http)
    if isinstance(planned, list):
        raise errors.ValidationFailed("the request is invalid", details=[msgspec.to_builtins(d) for d in planned])
    async with res.sessions() as session:
        return await credits.estimate(
            session, await _account(session, principal.account_id), planned, res.catalog, principal.key_id
        )


async def set_own_spend_limit(res: Resources, principal: Principal, change: SpendLimitChange) -> SpendLimits:
    """A Scale account's administrator sets its own caps (the route checked the `admin` scope)."""
    if not res.catalog.plans[principal.plan].self_service_spend_limits:
        raise errors.Forbidden(
            "setting your own spend limits is part of plans with `self_service_spend_limits` (Scale); "
            "your operator can set them",
            code=errors.PLAN_FEATURE,
        )
    async with res.sessions.begin() as session:
        return await administration.set_spend_limit(
            session, principal.account_id, change.monthly_credit_limit, key_id=change.key_id, actor=principal.key_id
        )


def audit_enabled(res: Resources, principal: Principal) -> None:
    if not res.catalog.plans[principal.plan].audit_log:
        raise errors.Forbidden("the audit log is part of plans with `audit_log` (Scale)", code=errors.PLAN_FEATURE)


async def queue_position(res: Resources, task: Task) -> int | None:
    """Place of a queued task in its account's concurrency queue (1 = next); None once it left the queue."""
    if task.status != status.QUEUED:
        return None
    async with res.autocommit_sessions() as session:
        return await slots.queue_position(session, task)
