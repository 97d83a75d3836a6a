"""Accounts and API keys. Keys are shown once and stored only as SHA-256 hashes."""

from __future__ import annotations

import hmac
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ARRAY, DateTime, String, bindparam, func, insert, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from sorapi.domain.ids import hash_api_key, new_account_id, new_api_key
from sorapi.store import ledger
from sorapi.store.models import Account, ApiKey, AuditEvent, utcnow


async def create_account(
    session: AsyncSession, *, name: str, plan: str, credits: int, account_id: str | None = None, actor: str = "admin"
) -> Account:
    account = Account(id=account_id or new_account_id(), name=name, plan=plan, balance=0, reserved=0)
    session.add(account)
    await session.flush()
    if credits:
        await ledger.grant(session, account, credits, reason="starter credits", actor=actor)
    return account


async def issue_api_key(
    session: AsyncSession, account_id: str, *, key: str | None = None, scopes: str = "generate,read"
) -> str:
    """Store a new key for the account and return its plaintext (the only time it is visible)."""
    return (await issue_key(session, account_id, key=key, scopes=scopes))[1]


async def issue_key(
    session: AsyncSession, account_id: str, *, key: str | None = None, scopes: str = "generate,read", name: str = ""
) -> tuple[ApiKey, str]:
    """Store a new key; returns its record and its plaintext (shown once, stored only hashed)."""
    key = key or new_api_key()
    record = ApiKey(
        id="key_" + uuid.uuid4().hex[:20],
        account_id=account_id,
        prefix=key[:12],
        key_hash=hash_api_key(key),
        scopes=scopes,
        name=name,
    )
    session.add(record)
    return record, key


async def list_keys(session: AsyncSession, account_id: str) -> list[ApiKey]:
    rows = await session.scalars(
        select(ApiKey).where(ApiKey.account_id == account_id).order_by(ApiKey.created_at, ApiKey.id)
    )
    return list(rows.all())


async def active_key_count(session: AsyncSession, account_id: str) -> int:
    return len([k for k in await list_keys(session, account_id) if k.revoked_at is None])


async def revoke_key(session: AsyncSession, account_id: str, key_id: str) -> ApiKey | None:
    """Revoke one of the account's keys (again: a no-op); None if the account has no such key."""
    record = (
        await session.scalars(
            select(ApiKey).where(ApiKey.id == key_id, ApiKey.account_id == account_id).with_for_update()
        )
    ).one_or_none()
    if record is not None and record.revoked_at is None:
        record.revoked_at = utcnow()
    return record


@dataclass(frozen=True)
class KeyOwner:
    """What a request needs to know about the key it presented and that key's account."""

    account_id: str
    plan: str
    key_id: str
    key_name: str
    scopes: str


KEY_USE = "key.use"
"""Audit action of an authenticated request."""


@dataclass(frozen=True)
class KeyUse:
    """The audit entry of one authenticated request, kept only when the key's plan is in `plans`."""

    plans: frozenset[str]
    method: str
    path: str
    client: str | None
    at: datetime

    def entry(self, owner: KeyOwner) -> dict[str, Any]:
        """The entry as `audit.append` arguments."""
        return {
            "actor": owner.key_id,
            "action": KEY_USE,
            "account_id": owner.account_id,
            "target": owner.key_id,
            "details": {"method": self.method, "path": self.path, "key_name": owner.key_name, "client": self.client},
        }


_KEY_OWNER = (
    select(
        Account.id.label("account_id"),
        Account.plan,
        ApiKey.id.label("key_id"),
        ApiKey.name.label("key_name"),
        ApiKey.scopes,
        ApiKey.key_hash,
    )
    .join_from(ApiKey, Account, ApiKey.account_id == Account.id)
    .where(ApiKey.key_hash == bindparam("digest"), ApiKey.revoked_at.is_(None))
)
OWNER = _KEY_OWNER.cte("owner")
"""PostgreSQL statements select from this CTE to read more in the key lookup's round trip; its six
columns come first in their rows (`owner_of`). Add `USE_LOGGED` and pass `owner_params`."""
USE_LOGGED = (
    insert(AuditEvent)
    .from_select(
        ["account_id", "actor", "action", "target", "details", "created_at"],
        select(
            OWNER.c.account_id,
            OWNER.c.key_id,
            literal(KEY_USE),
            OWNER.c.key_id,
            func.json_build_object(
                "method",
                bindparam("method", type_=String),
                "path",
                bindparam("path", type_=String),
                "key_name",
                OWNER.c.key_name,
                "client",
                bindparam("client", type_=String),
            ),
            bindparam("at", type_=DateTime(timezone=True)),
        ).where(OWNER.c.plan == func.any(bindparam("audit_plans", type_=ARRAY(String)))),
    )
    .cte("key_use")
)
"""The key-use audit entry, written by the lookup's own statement (a data-modifying CTE runs even unread)."""
_KEY_OWNER_AND_USE = select(OWNER).add_cte(USE_LOGGED)


def owner_params(key: str, use: KeyUse) -> dict[str, Any]:
    return {
        "digest": hash_api_key(key),
        "audit_plans": sorted(use.plans),
        "method": use.method,
        "path": use.path,
        "client": use.client,
        "at": use.at,
    }


def owner_of(row: Any, digest: str) -> KeyOwner | None:
    """The owner in a row that starts with `OWNER`'s columns (all None when the key matched nothing)."""
    if row is None or row[5] is None or not hmac.compare_digest(row[5], digest):
        return None
    return KeyOwner(account_id=row[0], plan=row[1], key_id=row[2], key_name=row[3], scopes=row[4])


async def key_owner(session: AsyncSession, key: str, use: KeyUse | None = None) -> KeyOwner | None:
    """`authenticate` as plain columns (no ORM objects): what every authenticated request runs.

    With `use`, the request's audit entry is written by the lookup's own statement when the key's
    plan keeps an audit log.
    """
    if use is not None:
        params = owner_params(key, use)
        return owner_of((await session.execute(_KEY_OWNER_AND_USE, params)).first(), params["digest"])
    digest = hash_api_key(key)
    return owner_of((await session.execute(_KEY_OWNER, {"digest": digest})).first(), digest)


async def key_exists(session: AsyncSession, key: str) -> bool:
    digest = hash_api_key(key)
    return (await session.execute(select(ApiKey.id).where(ApiKey.key_hash == digest))).first() is not None
