"""Webhook rows: each account's signing secret (encrypted at rest) and the delivery log."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from sorapi.adapters.secretbox import SecretBox
from sorapi.adapters.webhook_signing import new_secret
from sorapi.store.history import rows_after
from sorapi.store.ledger import lock_account
from sorapi.store.models import Account, WebhookDelivery, utcnow


@dataclass(frozen=True)
class SigningSecrets:
    current: str
    previous: str | None
    previous_until: datetime | None


async def signing_secrets(
    session: AsyncSession, account_id: str, box: SecretBox, now: datetime | None = None
) -> SigningSecrets:
    """The account's secrets, creating the first one on demand (row-locked: one secret, ever, per race)."""
    now = now or utcnow()
    account = await session.get(Account, account_id)
    if account is None:
        raise LookupError(account_id)
    if account.webhook_secret is None:
        account = await lock_account(session, account_id)
        if account.webhook_secret is None:
            account.webhook_secret = box.seal(new_secret(), account_id)
    previous = None
    if account.webhook_previous_secret and account.webhook_previous_until and account.webhook_previous_until > now:
        previous = box.open(account.webhook_previous_secret, account_id)
    return SigningSecrets(
        current=box.open(account.webhook_secret, account_id),
        previous=previous,
        previous_until=account.webhook_previous_until if previous else None,
    )


async def rotate_secret(session: AsyncSession, account_id: str, box: SecretBox, overlap: timedelta) -> SigningSecrets:
    """A new current secret; the old one keeps signing (alongside) for `overlap`."""
    await signing_secrets(session, account_id, box)
    account = await lock_account(session, account_id)
    until = utcnow() + overlap
    account.webhook_previous_secret, account.webhook_previous_until = account.webhook_secret, until
    fresh = new_secret()
    account.webhook_secret = box.seal(fresh, account_id)
    return SigningSecrets(
        current=fresh, previous=box.open(account.webhook_previous_secret or "", account_id), previous_until=until
    )


async def find_attempt(session: AsyncSession, delivery_id: str, attempt: int) -> WebhookDelivery | None:
    stmt = select(WebhookDelivery).where(WebhookDelivery.delivery_id == delivery_id, WebhookDelivery.attempt == attempt)
    return (await session.execute(stmt)).scalar_one_or_none()


async def list_for_task(session: AsyncSession, task_id: str) -> list[WebhookDelivery]:
    stmt = select(WebhookDelivery).where(WebhookDelivery.task_id == task_id).order_by(WebhookDelivery.id)
    return list((await session.execute(stmt)).scalars())


async def deliveries_page(
    session: AsyncSession, task_id: str, *, after_id: int | None, limit: int
) -> tuple[list[WebhookDelivery], bool]:
    """Attempts oldest first, strictly after row `after_id` (index `ix_webhook_deliveries_task`); (page, has_more)."""
    stmt = select(WebhookDelivery).where(WebhookDelivery.task_id == task_id)
    return await rows_after(session, stmt, WebhookDelivery.id, after_id=after_id, limit=limit)
