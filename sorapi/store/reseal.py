"""Re-seal stored account secrets under the current server key, after a key rotation."""

from __future__ import annotations

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from sorapi.adapters.secretbox import SecretBox
from sorapi.store.models import Account

BATCH = 500


async def reseal_secrets(session: AsyncSession, box: SecretBox) -> int:
    """Move every stored webhook secret to the current key; returns how many accounts changed.

    Run with the old key in SORAPI_SECRET_KEY_PREVIOUS; once it reports 0, the old key can go.
    Rows are locked as they are re-sealed, so a rotation of one account's secret meanwhile waits.
    """
    changed, after = 0, ""
    while True:
        rows = (
            await session.scalars(
                select(Account)
                .where(
                    Account.id > after,
                    or_(Account.webhook_secret.is_not(None), Account.webhook_previous_secret.is_not(None)),
                )
                .order_by(Account.id)
                .limit(BATCH)
                .with_for_update()
            )
        ).all()
        if not rows:
            return changed
        for account in rows:
            before = (account.webhook_secret, account.webhook_previous_secret)
            if account.webhook_secret:
                account.webhook_secret = box.reseal(account.webhook_secret, account.id)
            if account.webhook_previous_secret:
                account.webhook_previous_secret = box.reseal(account.webhook_previous_secret, account.id)
            changed += before != (account.webhook_secret, account.webhook_previous_secret)
        after = rows[-1].id
        await session.flush()
