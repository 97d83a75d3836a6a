"""Read side of credits, shared by the customer API, the admin API and the CLI."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from sorapi.contracts import status
from sorapi.contracts.credit_schemas import (
    AuditEventView,
    CreditsResponse,
    EstimateResponse,
    LedgerEntryView,
    OverageFigures,
    SpendLimitView,
)
from sorapi.domain.catalog import Catalog
from sorapi.domain.periods import period_bounds, period_of
from sorapi.domain.planning import Planned
from sorapi.store import ledger, spend_limits
from sorapi.store.models import Account, AuditEvent, LedgerEntry, Task, utcnow


async def summary(
    session: AsyncSession, account: Account, catalog: Catalog, now: datetime | None = None
) -> CreditsResponse:
    now = now or utcnow()
    plan = catalog.plans[account.plan]
    monthly = plan.included_credits > 0
    period = period_of(now)
    start, end = period_bounds(period)
    refreshed = await session.scalar(
        select(LedgerEntry.amount).where(
            LedgerEntry.account_id == account.id, LedgerEntry.kind == ledger.REFRESH, LedgerEntry.period == period
        )
    )
    counts = dict(
        (
            await session.execute(
                select(Task.status, func.count())
                .where(Task.account_id == account.id, Task.status.in_((status.QUEUED, status.RUNNING)))
                .group_by(Task.status)
            )
        ).all()
    )
    overage = await ledger.period_overage(session, account.id, now)
    limits = await spend_limit_views(session, account, now)
    return CreditsResponse(
        account_id=account.id,
        plan=account.plan,
        balance=account.balance,
        reserved=account.reserved,
        available=ledger.available(account),
        period=period if monthly else None,
        period_start=start if monthly else None,
        period_end=end if monthly else None,
        included_credits=plan.included_credits,
        refreshed_this_period=int(refreshed or 0),
        rollover=plan.rollover,
        price_usd_month=plan.price_usd_month,
        currency=catalog.pricing.currency,
        max_concurrent_jobs=plan.max_concurrent_jobs,
        running=int(counts.get(status.RUNNING, 0)),
        queued=int(counts.get(status.QUEUED, 0)),
        overage=OverageFigures(
            allowed=plan.allows_overage,
            rate_usd_per_credit=plan.overage_usd_per_credit,
            limit_credits=plan.overage_limit_credits,
            credits_this_period=overage,
            amount_usd_this_period=round(overage * plan.overage_usd_per_credit, 2),
        ),
        spend_limits=limits,
    )


async def spend_limit_views(
    session: AsyncSession, account: Account, now: datetime | None = None
) -> list[SpendLimitView]:
    """The account's spend caps that are set, each with its usage this month (`sorapi.store.spend_limits`)."""
    return [
        SpendLimitView(scope=u.scope, key_id=u.key_id, monthly_credit_limit=u.limit, used=u.used, resets_at=u.resets_at)
        for u in await spend_limits.usage(session, account, now=now)
    ]


async def ledger_page(
    session: AsyncSession, account_id: str, *, before_id: int | None, limit: int, kind: str | None = None
) -> tuple[list[LedgerEntryView], bool]:
    """The account's entries newest first, strictly older than `before_id` (keyset pagination)."""
    stmt = select(LedgerEntry).where(LedgerEntry.account_id == account_id)
    if kind is not None:
        stmt = stmt.where(LedgerEntry.kind == kind)
    if before_id is not None:
        stmt = stmt.where(LedgerEntry.id < before_id)
    rows = list((await session.scalars(stmt.order_by(LedgerEntry.id.desc()).limit(limit + 1))).all())
    return [entry_view(e) for e in rows[:limit]], len(rows) > limit


def entry_view(entry: LedgerEntry) -> LedgerEntryView:
    return LedgerEntryView(
        id=entry.id,
        kind=entry.kind,
        amount=entry.amount,
        task_id=entry.task_id,
        reason=entry.reason,
        actor=entry.actor,
        period=entry.period,
        created_at=entry.created_at,
    )


def audit_view(event: AuditEvent) -> AuditEventView:
    return AuditEventView(
        id=event.id,
        account_id=event.account_id,
        actor=event.actor,
        action=event.action,
        target=event.target,
        details=event.details or {},
        created_at=event.created_at,
    )


async def estimate(
    session: AsyncSession, account: Account, planned: Planned, catalog: Catalog, key_id: str | None = None
) -> EstimateResponse:
    """The price `generate` would reserve, and whether the account (asked by `key_id`) could reserve it now.

    It could if its credits cover it and no spend cap refuses it.
    """
    request = planned.request
    affordable = await ledger.can_hold(
        session, account, planned.price, catalog.plans[account.plan]
    ) and not await spend_limits.first_hit(session, account, planned.price, key_id)
    return EstimateResponse(
        credits=planned.price,
        model_version=request.model_version,
        duration=request.duration,
        resolution=request.resolution,
        tier=planned.tier,
        credits_per_second=catalog.pricing.credits_per_second[planned.tier],
        credit_multiplier=catalog.models[request.model_version].credit_multiplier,
        available=ledger.available(account),
        affordable=affordable,
        speed=request.speed,
        speed_multiplier=catalog.speed_profile(request.speed).credit_multiplier,
        audio=request.audio,
        audio_multiplier=catalog.models[request.model_version].audio_credit_multiplier if request.audio else 1.0,
    )
