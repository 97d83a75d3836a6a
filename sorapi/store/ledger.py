"""The credit ledger.

Every function is idempotent (per task and kind, or per account, kind and period) and keeps the account's cached
`balance`/`reserved` in step with the append-only entries, inside the caller's transaction.

The account row is locked first (FOR UPDATE), so reads of a task's entries after the lock see every committed hold.

How each kind moves the two cached figures (amounts are positive; only `adjust` is signed):

    kind      balance  reserved   written by
    grant     +a                  account creation, admin
    refresh   +a                  the monthly schedule (once per account and period)
    expiry    -a                  the monthly schedule: unused credits that do not roll over
    adjust    ±a                  admin corrections (never below what is available)
    reserve            +a         task creation (the hold)
    capture   -a       -a         render succeeded (exactly the hold)
    release            -a         failure, cancellation, expired hold
    overage   +a                  a capture that ran past the balance on a plan that allows it:
                                  the shortfall, bought at the overage rate and invoiced monthly

So `balance` never goes negative on any plan: a prepaid plan cannot hold more than it has, and
a plan with overage turns the shortfall into an `overage` entry, the figure that gets invoiced.

Every hold also passes the spend caps (`sorapi.store.spend_limits.check`, the account's and the
asking key's `monthly_credit_limit`) under the same lock, so anything that reserves through here
is capped exactly.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from sorapi.contracts import status
from sorapi.contracts.errors import InsufficientCredits
from sorapi.domain.catalog import Plan, get_catalog
from sorapi.domain.periods import period_bounds, period_of
from sorapi.store import spend_limits
from sorapi.store.models import Account, LedgerEntry, Task, utcnow

GRANT = "grant"
REFRESH = "refresh"
EXPIRY = "expiry"
ADJUST = "adjust"
RESERVE = "reserve"
CAPTURE = "capture"
RELEASE = "release"
OVERAGE = "overage"

EFFECTS: dict[str, tuple[int, int]] = {
    GRANT: (1, 0),
    REFRESH: (1, 0),
    EXPIRY: (-1, 0),
    ADJUST: (1, 0),
    RESERVE: (0, 1),
    CAPTURE: (-1, -1),
    RELEASE: (0, -1),
    OVERAGE: (1, 0),
}
"""kind → (sign on balance, sign on reserved)."""
KINDS = tuple(EFFECTS)


class LedgerConflict(Exception):
    """A money operation that contradicts the history (capture after release, overdrawing adjust...)."""


@dataclass(frozen=True)
class Totals:
    balance: int
    reserved: int


def fold(entries: Iterable[tuple[str, int]]) -> Totals:
    """Balance and reserved as the entries say they are: the truth the cached columns must match."""
    balance = reserved = 0
    for kind, amount in entries:
        on_balance, on_reserved = EFFECTS[kind]
        balance += on_balance * amount
        reserved += on_reserved * amount
    return Totals(balance, reserved)


async def entry_totals(session: AsyncSession, account_id: str) -> Totals:
    rows = await session.execute(
        select(LedgerEntry.kind, func.sum(LedgerEntry.amount))
        .where(LedgerEntry.account_id == account_id)
        .group_by(LedgerEntry.kind)
    )
    return fold((kind, int(total)) for kind, total in rows.all())


async def lock_account(session: AsyncSession, account_id: str) -> Account:
    """The account row, locked, with its figures re-read even if the session had loaded it before."""
    stmt = select(Account).where(Account.id == account_id).with_for_update().execution_options(populate_existing=True)
    return (await session.execute(stmt)).scalar_one()


async def task_entries(session: AsyncSession, task_id: str) -> dict[str, LedgerEntry]:
    rows = await session.execute(select(LedgerEntry).where(LedgerEntry.task_id == task_id))
    return {entry.kind: entry for entry in rows.scalars()}


def available(account: Account) -> int:
    return account.balance - account.reserved


def plan_of(account: Account, plan: Plan | None = None) -> Plan:
    return plan if plan is not None else get_catalog().plans[account.plan]


def _add(
    session: AsyncSession,
    account: Account,
    kind: str,
    amount: int,
    *,
    task_id: str | None = None,
    reason: str = "",
    actor: str = "system",
    period: str | None = None,
) -> LedgerEntry:
    """Append one entry and move the cached figures by exactly its effect."""
    on_balance, on_reserved = EFFECTS[kind]
    account.balance += on_balance * amount
    account.reserved += on_reserved * amount
    entry = LedgerEntry(
        account_id=account.id, task_id=task_id, kind=kind, amount=amount, reason=reason, actor=actor, period=period
    )
    session.add(entry)
    return entry


async def period_overage(session: AsyncSession, account_id: str, now: datetime | None = None) -> int:
    """Overage credits recorded in the period containing `now` (what the next invoice bills)."""
    start, end = period_bounds(period_of(now or utcnow()))
    total = await session.scalar(
        select(func.coalesce(func.sum(LedgerEntry.amount), 0)).where(
            LedgerEntry.account_id == account_id,
            LedgerEntry.kind == OVERAGE,
            LedgerEntry.created_at >= start,
            LedgerEntry.created_at < end,
        )
    )
    return int(total or 0)


async def grant(
    session: AsyncSession, account: Account, amount: int, *, reason: str, actor: str = "system"
) -> LedgerEntry:
    """Add credits to a (locked) account."""
    if amount <= 0:
        raise LedgerConflict("a grant must be positive")
    return _add(session, account, GRANT, amount, reason=reason, actor=actor)


async def adjust(session: AsyncSession, account: Account, amount: int, *, reason: str, actor: str) -> LedgerEntry:
    """Correct a (locked) account by a signed amount; never takes away credits it does not have free."""
    if amount == 0:
        raise LedgerConflict("an adjustment must not be zero")
    if amount < 0 and available(account) + amount < 0:
        raise LedgerConflict(f"only {max(available(account), 0)} credits are available to take away")
    return _add(session, account, ADJUST, amount, reason=reason, actor=actor)


async def can_hold(session: AsyncSession, account: Account, amount: int, plan: Plan | None = None) -> bool:
    """Whether a hold of `amount` fits: in what is available, or within the plan's overage limit."""
    if available(account) >= amount:
        return True
    rules = plan_of(account, plan)
    if not rules.allows_overage:
        return False
    shortfall = account.reserved + amount - account.balance
    return await period_overage(session, account.id) + shortfall <= rules.overage_limit_credits


async def reserve(
    session: AsyncSession,
    account: Account,
    task_id: str,
    amount: int,
    *,
    actor: str = "system",
    plan: Plan | None = None,
    new_task: bool = False,
) -> LedgerEntry:
    """Hold `amount` for a task on a locked account; an existing hold is returned unchanged.

    Prepaid plans hold only what is available. A plan with overage may also hold past the
    balance, as long as the period's overage (recorded plus what open holds would add) stays
    within its limit. `new_task`: the task row was inserted in this transaction, so it can have
    no hold yet and the lookup is skipped (one round trip less on every generate).

    `actor` is who asks: the API passes the caller's key id, so the hold counts toward that key's
    spend and its `monthly_credit_limit` applies, with the account's (`spend_limits.check`:
    402 `spend_limit_reached`, nothing held).
    """
    existing = None if new_task else (await task_entries(session, task_id)).get(RESERVE)
    if existing is not None:
        return existing
    if not await can_hold(session, account, amount, plan):
        raise InsufficientCredits(
            f"this task costs {amount} credits but only {max(available(account), 0)} are available"
        )
    await spend_limits.check(session, account, amount, actor)
    return _add(session, account, RESERVE, amount, task_id=task_id, reason="hold for render", actor=actor)


async def capture(session: AsyncSession, account_id: str, task_id: str) -> int:
    """Charge a task's hold; returns the credits charged (the same on every repeat)."""
    account = await lock_account(session, account_id)
    entries = await task_entries(session, task_id)
    if CAPTURE in entries:
        return entries[CAPTURE].amount
    hold = entries.get(RESERVE)
    if hold is None or RELEASE in entries:
        raise LedgerConflict(f"task {task_id} has no open hold to capture")
    _add(session, account, CAPTURE, hold.amount, task_id=task_id, reason="render succeeded")
    if account.balance < 0:
        _add(
            session,
            account,
            OVERAGE,
            -account.balance,
            task_id=task_id,
            reason="usage past the balance, invoiced at the overage rate",
        )
    return hold.amount


async def release(session: AsyncSession, account_id: str, task_id: str, *, reason: str) -> int:
    """Return a task's open hold to the account; returns the credits released (0 if none open)."""
    account = await lock_account(session, account_id)
    entries = await task_entries(session, task_id)
    hold = entries.get(RESERVE)
    if hold is None or CAPTURE in entries:
        return 0
    if RELEASE in entries:
        return entries[RELEASE].amount
    _add(session, account, RELEASE, hold.amount, task_id=task_id, reason=reason)
    return hold.amount


@dataclass(frozen=True)
class Refreshed:
    period: str
    expired: int
    granted: int
    already: bool


async def refresh(
    session: AsyncSession,
    account: Account,
    period: str,
    *,
    plan: Plan | None = None,
    expire: bool = True,
    actor: str = "schedule",
) -> Refreshed:
    """Start `period` for a locked account: expire what does not roll over, grant the included credits.

    Runs at most once per account and period (a `refresh` entry marks it done), so schedule
    catch-ups, retries and overlapping runs grant nothing twice. Expiry applies from the account's
    second monthly period on; `expire=False` is for a plan that starts mid-period (an upgrade):
    the credits bought under the old plan are kept.
    """
    rules = plan_of(account, plan)
    refreshed = dict(
        (
            await session.execute(
                select(LedgerEntry.period, LedgerEntry.amount).where(
                    LedgerEntry.account_id == account.id, LedgerEntry.kind == REFRESH
                )
            )
        ).all()
    )
    if period in refreshed or rules.included_credits <= 0:
        return Refreshed(period, 0, int(refreshed.get(period) or 0), already=period in refreshed)
    unused = max(available(account), 0)
    carried = (
        (min(unused, rules.rollover_cap_credits) if rules.rollover_cap_credits else unused) if rules.rollover else 0
    )
    expired = unused - carried if expire and refreshed else 0  # a first period has nothing of ours to expire
    if expired:
        _add(
            session,
            account,
            EXPIRY,
            expired,
            period=period,
            actor=actor,
            reason="unused credits expire at the end of the period"
            if not rules.rollover
            else "unused credits above the rollover cap expire",
        )
    _add(
        session,
        account,
        REFRESH,
        rules.included_credits,
        period=period,
        actor=actor,
        reason=f"{account.plan} credits included for {period}",
    )
    return Refreshed(period, expired, rules.included_credits, already=False)


async def accounts_on(session: AsyncSession, plans: list[str], *, after: str, limit: int) -> list[str]:
    """Ids of up to `limit` accounts on `plans` past `after`, in id order: one batch of the monthly refresh."""
    ids = await session.scalars(
        select(Account.id).where(Account.plan.in_(plans), Account.id > after).order_by(Account.id).limit(limit)
    )
    return list(ids.all())


async def holds_of_ended_tasks(session: AsyncSession, *, limit: int) -> list[tuple[str, str]]:
    """(account id, task id) of up to `limit` holds still open on tasks that ended without a charge.

    Their workflow stopped between marking the task and releasing.
    """
    resolved = aliased(LedgerEntry)
    rows = await session.execute(
        select(LedgerEntry.account_id, Task.id)
        .join(Task, Task.id == LedgerEntry.task_id)
        .outerjoin(resolved, (resolved.task_id == LedgerEntry.task_id) & resolved.kind.in_((CAPTURE, RELEASE)))
        .where(
            LedgerEntry.kind == RESERVE,
            resolved.id.is_(None),
            Task.status.in_((status.FAILED, status.CANCELLED, status.EXPIRED)),
        )
        .limit(limit)
    )
    return [(account_id, task_id) for account_id, task_id in rows.all()]
