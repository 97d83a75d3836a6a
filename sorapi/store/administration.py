"""Operator actions, shared by the `/admin` HTTP API and `sorapi admin ...`.

Each runs inside the caller's transaction, takes the account row lock before touching money or
keys, and appends an audit event naming the actor, so the account's audit log explains every
change an operator made.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.exc import NoResultFound
from sqlalchemy.ext.asyncio import AsyncSession

from sorapi.contracts import errors
from sorapi.contracts.credit_schemas import (
    SCOPES,
    AccountView,
    ApiKeyList,
    ApiKeyView,
    CreatedAccount,
    CreditsResponse,
    IssuedKey,
    LedgerEntryView,
    SpendLimits,
)
from sorapi.domain.catalog import Catalog
from sorapi.domain.periods import period_of
from sorapi.store import accounts, audit, credits, ledger, spend_limits
from sorapi.store.models import Account, ApiKey, utcnow


def _plan(catalog: Catalog, name: str) -> None:
    if name not in catalog.plans:
        raise errors.ValidationFailed(
            "unknown plan", details=[{"field": "plan", "message": f"must be one of {', '.join(catalog.plans)}"}]
        )


def _scopes(scopes: list[str]) -> str:
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown or not scopes:
        raise errors.ValidationFailed(
            "invalid scopes", details=[{"field": "scopes", "message": f"at least one of {', '.join(SCOPES)}"}]
        )
    return ",".join(dict.fromkeys(scopes))


async def _locked(session: AsyncSession, account_id: str) -> Account:
    try:
        return await ledger.lock_account(session, account_id)
    except NoResultFound:
        raise errors.NotFound(f"no account {account_id!r}") from None


def key_view(record: ApiKey) -> ApiKeyView:
    return ApiKeyView(
        key_id=record.id,
        prefix=record.prefix,
        scopes=record.scopes.split(","),
        name=record.name,
        created_at=record.created_at,
        revoked_at=record.revoked_at,
    )


async def _start_period(session: AsyncSession, account: Account, catalog: Catalog, actor: str, now: datetime) -> None:
    """A plan with monthly credits gets this period's at once (kept: nothing of the old plan expires)."""
    if catalog.plans[account.plan].included_credits > 0:
        await ledger.refresh(
            session, account, period_of(now), plan=catalog.plans[account.plan], expire=False, actor=actor
        )


async def create_account(
    session: AsyncSession,
    catalog: Catalog,
    *,
    name: str,
    plan: str,
    actor: str,
    credits_: int | None = None,
    scopes: list[str] | None = None,
    key_name: str = "",
    now: datetime | None = None,
) -> CreatedAccount:
    """A new account with its first key; initial credits default to the plan's starter credits."""
    _plan(catalog, plan)
    scope_text = _scopes(scopes or ["generate", "read"])
    initial = catalog.plans[plan].starter_credits if credits_ is None else credits_
    account = await accounts.create_account(session, name=name, plan=plan, credits=initial, actor=actor)
    await _start_period(session, account, catalog, actor, now or utcnow())
    record, key = await accounts.issue_key(session, account.id, scopes=scope_text, name=key_name)
    audit.record(
        session,
        actor=actor,
        action="account.create",
        account_id=account.id,
        target=account.id,
        details={"name": name, "plan": plan, "credits": initial, "key_id": record.id},
    )
    return CreatedAccount(
        account_id=account.id,
        plan=plan,
        balance=account.balance,
        key=IssuedKey(key_id=record.id, api_key=key, prefix=record.prefix, scopes=scope_text.split(","), name=key_name),
    )


async def issue_key(
    session: AsyncSession, catalog: Catalog, account_id: str, *, scopes: list[str], name: str, actor: str
) -> IssuedKey:
    """Another key (seat) for the account, within the plan's `max_api_keys`."""
    account = await _locked(session, account_id)
    scope_text = _scopes(scopes)
    seats = catalog.plans[account.plan].max_api_keys
    if await accounts.active_key_count(session, account_id) >= seats:
        raise errors.Forbidden(
            f"the {account.plan} plan allows {seats} active API keys; revoke one first", code=errors.PLAN_FEATURE
        )
    record, key = await accounts.issue_key(session, account_id, scopes=scope_text, name=name)
    audit.record(
        session,
        actor=actor,
        action="key.issue",
        account_id=account_id,
        target=record.id,
        details={"scopes": scope_text, "name": name, "prefix": record.prefix},
    )
    return IssuedKey(key_id=record.id, api_key=key, prefix=record.prefix, scopes=scope_text.split(","), name=name)


async def list_keys(session: AsyncSession, account_id: str) -> ApiKeyList:
    if await session.get(Account, account_id) is None:
        raise errors.NotFound(f"no account {account_id!r}")
    return ApiKeyList(data=[key_view(k) for k in await accounts.list_keys(session, account_id)])


async def revoke_key(session: AsyncSession, account_id: str, key_id: str, *, actor: str) -> ApiKeyView:
    account = await _locked(session, account_id)
    record = await accounts.revoke_key(session, account_id, key_id)
    if record is None:
        raise errors.NotFound(f"account {account_id!r} has no key {key_id!r}")
    spend_limits.forget_key(account, key_id)
    audit.record(session, actor=actor, action="key.revoke", account_id=account_id, target=key_id)
    return key_view(record)


async def change_credits(
    session: AsyncSession, account_id: str, amount: int, *, reason: str, actor: str, adjust: bool
) -> LedgerEntryView:
    """A grant (positive) or an adjustment (signed; never takes more than is available)."""
    invalid = (
        "an adjustment must not be zero"
        if adjust and amount == 0
        else "a grant must be positive"
        if not adjust and amount <= 0
        else None
    )
    if invalid:  # the request itself is wrong (422); what the account cannot take is a conflict (409)
        raise errors.ValidationFailed(invalid, details=[{"field": "amount", "message": invalid}])
    account = await _locked(session, account_id)
    try:
        if adjust:
            entry = await ledger.adjust(session, account, amount, reason=reason, actor=actor)
        else:
            entry = await ledger.grant(session, account, amount, reason=reason, actor=actor)
    except ledger.LedgerConflict as exc:  # a valid request the account's credits cannot take right now
        raise errors.Conflict(
            str(exc), code=errors.LEDGER_CONFLICT, details=[{"field": "amount", "message": str(exc)}]
        ) from exc
    await session.flush()
    audit.record(
        session,
        actor=actor,
        action="credits.adjust" if adjust else "credits.grant",
        account_id=account_id,
        target=str(entry.id),
        details={"amount": amount, "reason": reason},
    )
    return credits.entry_view(entry)


async def change_plan(
    session: AsyncSession, catalog: Catalog, account_id: str, plan: str, *, actor: str, now: datetime | None = None
) -> CreditsResponse:
    """Switch plans now: limits apply at once.

    A plan with monthly credits gets this period's unless the account already had a refresh this period.
    """
    _plan(catalog, plan)
    account = await _locked(session, account_id)
    previous = account.plan
    if previous != plan:
        account.plan = plan
        await _start_period(session, account, catalog, actor, now or utcnow())
        audit.record(
            session,
            actor=actor,
            action="plan.change",
            account_id=account_id,
            target=account_id,
            details={"from": previous, "to": plan},
        )
    await session.flush()
    return await credits.summary(session, account, catalog, now)


async def account_view(session: AsyncSession, catalog: Catalog, account_id: str) -> AccountView:
    account = await session.get(Account, account_id)
    if account is None:
        raise errors.NotFound(f"no account {account_id!r}")
    return AccountView(
        account_id=account.id,
        name=account.name,
        created_at=account.created_at,
        credits=await credits.summary(session, account, catalog),
    )


async def set_spend_limit(
    session: AsyncSession, account_id: str, limit: int | None, *, key_id: str | None = None, actor: str
) -> SpendLimits:
    """Set (or with None clear) the account's monthly credit limit, or one active key's.

    Returns every limit now set with its usage. It applies to the next hold (the same row lock orders them).
    """
    account = await _locked(session, account_id)
    await spend_limits.set_limit(session, account, limit, key_id)
    audit.record(
        session,
        actor=actor,
        action="spend_limit.set",
        account_id=account_id,
        target=key_id or account_id,
        details={"scope": "key" if key_id else "account", "key_id": key_id, "monthly_credit_limit": limit},
    )
    await session.flush()
    return SpendLimits(spend_limits=await credits.spend_limit_views(session, account))
