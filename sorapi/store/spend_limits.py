"""Spend caps: a `monthly_credit_limit` for an account and for each of its API keys.

A limit bounds the credits used in one UTC calendar month, where used = credits held now (open
holds) + credits captured since the month began:

- the account's: `accounts.reserved` (every open hold, exact like the ledger) + its captures of
  the month;
- a key's: the open holds it asked for (a hold's `actor` is the key that asked, `key_…`) + the
  captures of the month of holds it asked for. A hold is open only while its task is queued or
  running (every end captures or releases it before the task ends), so only those tasks are read.

Both limits live on the account row (`monthly_credit_limit`, `key_credit_limits`), the row every
hold locks: `check` runs inside `ledger.reserve`, under that lock and in the hold's transaction,
so concurrent creates can never pass a cap together, a limit change never interleaves with a hold,
and whoever takes holds through the ledger (generate, `/v1/videos`, batches) is capped for free.
With no limit set the check costs nothing (no query); with one, one statement.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import ColumnElement, and_, exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from sorapi.contracts import errors, status
from sorapi.domain.periods import period_bounds, period_of
from sorapi.store.models import Account, ApiKey, LedgerEntry, Task, utcnow

KEY_ID_PREFIX = "key_"
"""Every API key id starts so (`sorapi.store.accounts.issue_key`); other actors (`system`, `admin:…`) name no key."""
_RESERVE, _CAPTURE, _RELEASE = "reserve", "capture", "release"  # sorapi.store.ledger's kinds (it imports this module)

Scope = Literal["account", "key"]


@dataclass(frozen=True)
class Usage:
    """One limit that is set, and what the month has used of it so far."""

    scope: Scope
    key_id: str | None
    limit: int
    used: int
    resets_at: datetime
    """Start of the next UTC calendar month, when `used` starts again from the holds still open."""


def key_of(actor: str) -> str | None:
    """The API key an actor names, if it names one."""
    return actor if actor.startswith(KEY_ID_PREFIX) else None


def month_bounds(now: datetime | None = None) -> tuple[datetime, datetime]:
    """[start, end) of the UTC calendar month containing `now`."""
    return period_bounds(period_of(now or utcnow()))


def _captured(account_id: str, start: datetime, end: datetime, key_id: str | None = None) -> Any:
    """Credits captured in [start, end) (of holds `key_id` asked for, if given), as a scalar subquery."""
    capture = aliased(LedgerEntry)
    stmt = select(func.coalesce(func.sum(capture.amount), 0)).where(
        capture.account_id == account_id,
        capture.kind == _CAPTURE,
        capture.created_at >= start,
        capture.created_at < end,
    )
    if key_id is not None:
        hold = aliased(LedgerEntry)
        stmt = stmt.join(hold, and_(hold.task_id == capture.task_id, hold.kind == _RESERVE)).where(hold.actor == key_id)
    return stmt.scalar_subquery()


def _held_by(account_id: str, key_id: str) -> Any:
    """Credits of the open holds `key_id` asked for, as a scalar subquery."""
    hold, settled = aliased(LedgerEntry), aliased(LedgerEntry)
    open_: ColumnElement[bool] = ~exists().where(
        settled.task_id == hold.task_id, settled.kind.in_((_CAPTURE, _RELEASE))
    )
    return (
        select(func.coalesce(func.sum(hold.amount), 0))
        .select_from(Task)
        .join(hold, and_(hold.task_id == Task.id, hold.kind == _RESERVE))
        .where(
            Task.account_id == account_id,
            Task.status.in_((status.QUEUED, status.RUNNING)),
            hold.actor == key_id,
            open_,
        )
        .scalar_subquery()
    )


async def usage(
    session: AsyncSession, account: Account, *, key_ids: list[str] | None = None, now: datetime | None = None
) -> list[Usage]:
    """Every limit set on `account` (the account's first, then its keys' in id order), with its usage.

    `key_ids` narrows the keys to those (the check passes the one key asking). One statement, none
    when no limit applies. Read under the account row lock (`ledger.lock_account`), it is exact.
    """
    start, end = month_bounds(now)
    keys = sorted(account.key_credit_limits or {})
    if key_ids is not None:
        keys = [k for k in keys if k in key_ids]
    columns = []
    if account.monthly_credit_limit is not None:
        columns.append(_captured(account.id, start, end))
    for key_id in keys:
        columns += [_held_by(account.id, key_id), _captured(account.id, start, end, key_id)]
    if not columns:
        return []
    figures = [int(value) for value in (await session.execute(select(*columns))).one()]
    found = []
    if account.monthly_credit_limit is not None:
        found.append(Usage("account", None, account.monthly_credit_limit, account.reserved + figures.pop(0), end))
    for key_id in keys:
        held, captured = figures.pop(0), figures.pop(0)
        found.append(Usage("key", key_id, int(account.key_credit_limits[key_id]), held + captured, end))
    return found


def _at(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def refusal(hit: Usage, amount: int) -> errors.SpendLimitReached:
    """The 402 for a hold of `amount` that `hit` cannot take: which limit, what is left, when it resets."""
    whose = "the account's" if hit.scope == "account" else f"API key {hit.key_id}'s"
    left = max(hit.limit - hit.used, 0)
    return errors.SpendLimitReached(
        f"this task costs {amount} credits but {whose} monthly spend limit of {hit.limit} credits "
        f"has {left} left ({hit.used} used this month, held and captured); "
        f"the limit resets at {_at(hit.resets_at)}",
        details=[
            {"field": "monthly_credit_limit", "message": f"{hit.scope} limit reached; resets {_at(hit.resets_at)}"}
        ],
    )


async def first_hit(
    session: AsyncSession, account: Account, amount: int, actor: str | None = None, now: datetime | None = None
) -> Usage | None:
    """The first limit (the account's, then the key's) that holding `amount` more would pass, or None."""
    key_id = key_of(actor) if actor else None
    if account.monthly_credit_limit is None and (key_id is None or key_id not in (account.key_credit_limits or {})):
        return None  # the common case: no query at all
    for limit in await usage(session, account, key_ids=[key_id] if key_id else [], now=now):
        if limit.used + amount > limit.limit:
            return limit
    return None


async def check(
    session: AsyncSession, account: Account, amount: int, actor: str | None = None, now: datetime | None = None
) -> None:
    """Refuse (402 `spend_limit_reached`) holding `amount` more credits on a locked account.

    `actor` is who asks for the hold, as `ledger.reserve` records it: when it names an API key
    (`key_…`), that key's limit applies as well as the account's. `ledger.reserve` calls this for
    every hold. `amount` may be a sum: to refuse a group of holds at once (a batch) before taking
    any, call it with their total and the key; holds already taken in the same transaction count as
    used (the session flushes them before it reads), so checking each hold in turn is exact too.
    """
    hit = await first_hit(session, account, amount, actor, now)
    if hit is not None:
        raise refusal(hit, amount)


async def set_limit(session: AsyncSession, account: Account, limit: int | None, key_id: str | None = None) -> None:
    """Set (or with None clear) the account's limit, or one of its active keys' (on a locked account).

    A negative limit is a 422 naming the field; an unknown or revoked key a 404.
    """
    if limit is not None and limit < 0:
        raise errors.ValidationFailed(
            "invalid spend limit", details=[{"field": "monthly_credit_limit", "message": "must be 0 or more"}]
        )
    if key_id is None:
        account.monthly_credit_limit = limit
        return
    active = await session.scalar(
        select(ApiKey.id).where(ApiKey.id == key_id, ApiKey.account_id == account.id, ApiKey.revoked_at.is_(None))
    )
    if active is None:  # like any other unknown resource: a 404
        raise errors.NotFound(
            f"the account has no active API key {key_id!r}",
            details=[{"field": "key_id", "message": "must be one of the account's active API keys"}],
        )
    limits = {k: v for k, v in (account.key_credit_limits or {}).items() if k != key_id}
    if limit is not None:
        limits[key_id] = limit
    account.key_credit_limits = limits  # a new dict: the column sees the change


def forget_key(account: Account, key_id: str) -> None:
    """Drop a revoked key's limit (a key that cannot create anything needs no cap)."""
    if key_id in (account.key_credit_limits or {}):
        account.key_credit_limits = {k: v for k, v in account.key_credit_limits.items() if k != key_id}
