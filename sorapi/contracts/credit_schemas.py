"""Wire shapes of credits, plans and administration (customer `/api/credits*`, `/api/audit-log`, operator `/admin/...`).

The CLI prints the same shapes as JSON.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, get_args

import msgspec
from msgspec import Meta

from sorapi.contracts.schemas import NO_NUL, schema_only

SCOPES = ("generate", "read", "audit", "admin")
"""Key scopes: `generate` creates tasks, `read` reads tasks and credits, `audit` reads the audit
log; `admin` (an account administrator's key) implies the other three."""
Scope = Literal["generate", "read", "audit", "admin"]
Scopes = Annotated[list[Scope], Meta(min_length=1, description="What the key may do (at least one scope)")]
Label = Annotated[str, Meta(max_length=100, pattern=NO_NUL)]
MAX_CREDIT_CHANGE = 10**9
"""The largest grant or adjustment one request may make."""
Reason = Annotated[
    str, Meta(min_length=1, max_length=200, pattern=NO_NUL, description="Why, for the ledger and the audit log")
]
PlanName = Annotated[str, Meta(description="A plan of catalog.toml: free, pro or scale", examples=["pro"])]
LedgerKind = Literal["grant", "refresh", "expiry", "adjust", "reserve", "capture", "release", "overage"]
"""Every kind of ledger entry (sorapi.store.ledger.KINDS, in its order)."""


class OverageFigures(msgspec.Struct, kw_only=True):
    """Usage past the balance on a plan that allows it, invoiced at the end of the period."""

    allowed: bool
    rate_usd_per_credit: float
    limit_credits: Annotated[int, Meta(description="Most overage credits one period may use")]
    credits_this_period: Annotated[int, Meta(description="Overage credits recorded so far this period")]
    amount_usd_this_period: Annotated[float, Meta(description="What they will be invoiced at (USD)")]


class SpendLimitView(msgspec.Struct, kw_only=True):
    """One spend cap that is set, and what this UTC calendar month has used of it."""

    scope: Annotated[Literal["account", "key"], Meta(description="Whose limit: the account's or one API key's")]
    key_id: Annotated[str | None, Meta(description="The key, for a key's limit; null for the account's")] = None
    monthly_credit_limit: Annotated[int, Meta(description="Most credits usable per UTC calendar month")]
    used: Annotated[
        int,
        Meta(description="Credits used this month: held by open tasks plus captured since the month began"),
    ]
    resets_at: Annotated[datetime, Meta(description="Start of the next UTC calendar month, when `used` restarts")]


class SpendLimits(msgspec.Struct, kw_only=True):
    """The account's spend caps that are set (the account's first, then its keys'), with their usage."""

    spend_limits: list[SpendLimitView]


CreditLimit = Annotated[int, Meta(ge=0, le=MAX_CREDIT_CHANGE)]


class SpendLimitChange(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Set or clear a monthly spend cap: the account's, or one of its active keys' with `key_id`."""

    monthly_credit_limit: Annotated[
        CreditLimit | None,
        Meta(
            description="Credits usable per UTC calendar month (held + captured); null clears the limit. "
            "A create that would pass it is refused with 402 `spend_limit_reached`",
            extra_json_schema=schema_only(minimum=0, maximum=MAX_CREDIT_CHANGE),
        ),
    ]  # required: send null to clear
    key_id: Annotated[
        Annotated[str, Meta(max_length=40, pattern=NO_NUL)] | None,
        Meta(
            description="An active API key of the account: its limit instead of the account's "
            "(404 when the account has no such active key)",
            extra_json_schema=schema_only(maxLength=40, pattern=NO_NUL),
        ),
    ] = None


class CreditsResponse(msgspec.Struct, kw_only=True):
    """Body of `GET /api/credits`: where the account's credits stand right now."""

    account_id: str
    plan: str
    balance: Annotated[int, Meta(description="Credits owned (never negative)", examples=[4984])]
    reserved: Annotated[int, Meta(description="Credits held by queued and running tasks", examples=[16])]
    available: Annotated[
        int,
        Meta(
            description="balance - reserved: what new tasks can hold without overage; "
            "negative only while a plan with overage holds past it"
        ),
    ]
    period: Annotated[str | None, Meta(description="Billing period (calendar month, UTC)", examples=["2026-12"])]
    period_start: datetime | None
    period_end: Annotated[
        datetime | None, Meta(description="When the next refresh runs; null on plans without a monthly refresh")
    ]
    included_credits: Annotated[int, Meta(description="Credits the plan grants each period")]
    refreshed_this_period: Annotated[int, Meta(description="Credits this period's refresh granted (0 until it ran)")]
    rollover: Annotated[bool, Meta(description="Unused credits carry over to the next period")]
    price_usd_month: float
    currency: str = "USD"
    max_concurrent_jobs: int
    running: int
    queued: int
    overage: OverageFigures
    spend_limits: Annotated[
        list[SpendLimitView],
        Meta(description="The monthly spend caps that are set (account, then keys), each with this month's usage"),
    ] = []


class LedgerEntryView(msgspec.Struct, kw_only=True):
    id: int
    kind: Annotated[
        str,
        Meta(
            description="grant, refresh, reserve, capture, release, overage, expiry or adjust",
            extra_json_schema=schema_only(enum=list(get_args(LedgerKind))),
        ),
    ]
    amount: Annotated[int, Meta(description="Credits (positive; an adjust may be negative)")]
    task_id: str | None = None
    reason: str = ""
    actor: Annotated[str, Meta(description="Who wrote it: an API key id, `schedule`, `admin:...`, `system`")] = ""
    period: str | None = None
    created_at: datetime


class LedgerPage(msgspec.Struct, kw_only=True):
    """The account's ledger, newest first; pass `next_cursor` back as `cursor` for older entries."""

    data: list[LedgerEntryView]
    next_cursor: str | None = None
    has_more: bool = False


class EstimateResponse(msgspec.Struct, kw_only=True):
    """Body of `GET /api/credits/estimate`: what `POST /api/generate` would reserve for the same fields."""

    credits: Annotated[int, Meta(description="The price that would be reserved", examples=[16])]
    model_version: str
    duration: int
    resolution: str
    tier: Annotated[Literal["sd", "hd", "fhd"], Meta(description="Resolution tier priced: sd, hd or fhd")]
    credits_per_second: int
    credit_multiplier: float
    available: int
    affordable: Annotated[bool, Meta(description="Whether the account could reserve it right now")]
    speed: Annotated[
        str, Meta(description="The speed profile priced (sent, else the model's default)", examples=["quality"])
    ] = "quality"
    speed_multiplier: Annotated[
        float, Meta(description="The speed profile's factor on the price (catalog `[speed.<name>]`)", examples=[1.0])
    ] = 1.0
    audio: Annotated[
        bool, Meta(description="Whether the quote includes the soundtrack (sent, else the model's default)")
    ] = False
    audio_multiplier: Annotated[
        float, Meta(description="The soundtrack's factor on the price (the model's `audio_credit_multiplier`)")
    ] = 1.0


class AuditEventView(msgspec.Struct, kw_only=True):
    id: int
    account_id: str | None
    actor: str
    action: Annotated[
        str,
        Meta(
            description="key.use, key.issue, key.revoke, account.create, credits.grant, credits.adjust, "
            "plan.change, spend_limit.set",
            examples=["key.use"],
        ),
    ]
    target: str = ""
    details: dict[str, Any] = {}
    created_at: datetime


class AuditPage(msgspec.Struct, kw_only=True):
    data: list[AuditEventView]
    next_cursor: str | None = None
    has_more: bool = False


class CreateAccountRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: Annotated[str, Meta(min_length=1, max_length=200, pattern=NO_NUL)]
    plan: PlanName = "free"
    credits: Annotated[
        Annotated[int, Meta(ge=0, le=MAX_CREDIT_CHANGE)] | None,
        Meta(
            description="Initial credits; default: the plan's starter credits "
            "(and its included credits for this period)",
            extra_json_schema=schema_only(minimum=0, maximum=MAX_CREDIT_CHANGE),
        ),
    ] = None  # Litestar drops the bounds
    # of an optional field's inner type
    scopes: Scopes = msgspec.field(default_factory=lambda: ["generate", "read"])
    key_name: Label = ""


class IssueKeyRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    scopes: Scopes = msgspec.field(default_factory=lambda: ["generate", "read"])
    name: Annotated[Label, Meta(description="Who holds the seat", examples=["ci-bot"])] = ""


class IssuedKey(msgspec.Struct, kw_only=True):
    key_id: str
    api_key: Annotated[str, Meta(description="The Bearer secret: shown this once, stored only as a hash")]
    prefix: str
    scopes: list[str]
    name: str = ""


class CreatedAccount(msgspec.Struct, kw_only=True):
    account_id: str
    plan: str
    balance: int
    key: IssuedKey


class ApiKeyView(msgspec.Struct, kw_only=True):
    key_id: str
    prefix: Annotated[str, Meta(description="First characters of the key, to recognise it")]
    scopes: list[str]
    name: str = ""
    created_at: datetime
    revoked_at: datetime | None = None


class ApiKeyList(msgspec.Struct, kw_only=True):
    data: list[ApiKeyView]


class CreditGrant(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    amount: Annotated[int, Meta(ge=1, le=MAX_CREDIT_CHANGE, description="Credits to add")]
    reason: Reason


class CreditChange(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """An adjustment: it may take away only what is available (409 `ledger_conflict` otherwise)."""

    amount: Annotated[
        int,
        Meta(
            ge=-MAX_CREDIT_CHANGE,
            le=MAX_CREDIT_CHANGE,
            description="Credits, signed; never 0",
            extra_json_schema=schema_only(**{"not": {"const": 0}}),
        ),
    ]
    reason: Reason


class PlanChange(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    plan: PlanName


class AccountView(msgspec.Struct, kw_only=True):
    """An account as an operator sees it: identity plus its credits."""

    account_id: str
    name: str
    created_at: datetime
    credits: CreditsResponse
