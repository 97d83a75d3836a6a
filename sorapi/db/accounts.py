"""Accounts and API keys. Keys are shown once and stored only as SHA-256 hashes."""

from __future__ import annotations

import hmac
import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from sorapi.db import ledger
from sorapi.db.models import Account, ApiKey
from sorapi.ids import hash_api_key, new_account_id, new_api_key


async def create_account(session: AsyncSession, *, name: str, plan: str, credits: int,
                         account_id: str | None = None, actor: str = "admin") -> Account:
    account = Account(id=account_id or new_account_id(), name=name, plan=plan, balance=0, reserved=0)
    session.add(account)
    await session.flush()
    if credits:
        await ledger.grant(session, account, credits, reason="starter credits", actor=actor)
    return account


async def issue_api_key(session: AsyncSession, account_id: str, *, key: str | None = None,
                        scopes: str = "generate,read") -> str:
    """Store a new key for the account and return its plaintext (the only time it is visible)."""
    key = key or new_api_key()
    session.add(ApiKey(id="key_" + uuid.uuid4().hex[:20], account_id=account_id, prefix=key[:12],
                       key_hash=hash_api_key(key), scopes=scopes))
    return key


async def authenticate(session: AsyncSession, key: str) -> tuple[Account, ApiKey] | None:
    """The account and key record behind a Bearer secret, or None (unknown or revoked)."""
    digest = hash_api_key(key)
    row = (await session.execute(
        select(Account, ApiKey).join(ApiKey, ApiKey.account_id == Account.id)
        .where(ApiKey.key_hash == digest, ApiKey.revoked_at.is_(None))
    )).first()
    if row is None or not hmac.compare_digest(row[1].key_hash, digest):
        return None
    return row[0], row[1]


async def key_exists(session: AsyncSession, key: str) -> bool:
    digest = hash_api_key(key)
    return (await session.execute(select(ApiKey.id).where(ApiKey.key_hash == digest))).first() is not None
