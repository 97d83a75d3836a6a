"""Operator API under `/admin`: accounts, keys (seats), credits, plans, audit log.

Authenticated by the operator token (`SORAPI_ADMIN_TOKEN`), never by a customer API key; with no
token configured the whole surface answers 403. Every change is written to the audit log with
the actor `admin:<X-Admin-Actor header or "http">`. Every route is rate limited per token (the
`admin` bucket, `SORAPI_RATE_ADMIN_*`): each can add rows (accounts, keys, audit entries).
"""

from __future__ import annotations

import hmac

from litestar import Controller, Request, delete, get, post, put
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import Parameter

from sorapi.adapters import gates
from sorapi.api import pagination, query
from sorapi.api.auth import AUTHENTICATED, authorization_header
from sorapi.api.credits import credit_service
from sorapi.api.ratelimit import RATE_ADMIN
from sorapi.api.state import Resources
from sorapi.api.tasks import task_service
from sorapi.contracts import errors, names
from sorapi.contracts.credit_schemas import (
    AccountView,
    ApiKeyList,
    ApiKeyView,
    AuditPage,
    CreateAccountRequest,
    CreatedAccount,
    CreditChange,
    CreditGrant,
    CreditsResponse,
    IssuedKey,
    IssueKeyRequest,
    LedgerEntryView,
    LedgerKind,
    LedgerPage,
    PlanChange,
    SpendLimitChange,
    SpendLimits,
)
from sorapi.contracts.schemas import ErrorEnvelope
from sorapi.store import administration

ERRORS = {
    401: ResponseSpec(ErrorEnvelope, description="Missing or wrong admin token"),
    403: ResponseSpec(
        ErrorEnvelope,
        description="The admin API is disabled (no SORAPI_ADMIN_TOKEN), or the "
        "plan does not allow it (`plan_feature_unavailable`)",
    ),
    404: ResponseSpec(ErrorEnvelope, description="No such account or key"),
    422: ResponseSpec(ErrorEnvelope, description="Validation failed"),
}
OVERDRAW = {
    409: ResponseSpec(ErrorEnvelope, description="The adjustment takes away more than is available (`ledger_conflict`)")
}
LIMIT = Parameter(query="limit", default=50, ge=1, le=200)
LEDGER_CURSOR = pagination.cursor_parameter(credit_service.LEDGER_CURSOR)
AUDIT_CURSOR = pagination.cursor_parameter(credit_service.AUDIT_CURSOR)


def require_admin(connection: ASGIConnection, _handler: BaseRouteHandler) -> None:
    """Constant-time check of `Authorization: Bearer <admin token>`."""
    expected = connection.app.state.resources.settings.admin_token
    if not expected:
        raise errors.Forbidden("the admin API is disabled: set SORAPI_ADMIN_TOKEN", code=errors.ADMIN_DISABLED)
    scheme, _, token = authorization_header(connection.scope["headers"]).partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), expected.encode()):
        raise errors.Unauthorized("missing or wrong admin token", headers={"WWW-Authenticate": "Bearer"})
    connection.scope.setdefault("state", {})[AUTHENTICATED] = True  # the limiter's evidence, as for a key


def actor(request: Request) -> str:
    return "admin:" + (request.headers.get("x-admin-actor") or "http")[:80]


class AdminController(Controller):
    path = "/admin"
    tags = ["admin"]
    guards = [require_admin]
    opt = RATE_ADMIN

    @post("/accounts", status_code=201, responses=ERRORS)
    async def create_account(
        self, data: CreateAccountRequest, resources: Resources, request: Request
    ) -> CreatedAccount:
        """Create an account on a plan with its first API key (the key is shown only in this response)."""
        async with resources.sessions.begin() as session:
            return await administration.create_account(
                session,
                resources.catalog,
                name=data.name,
                plan=data.plan,
                credits_=data.credits,
                scopes=list(data.scopes),
                key_name=data.key_name,
                actor=actor(request),
            )

    @get("/accounts/{account_id:str}", responses=ERRORS)
    async def account(self, account_id: str, resources: Resources) -> AccountView:
        """An account and its credits."""
        async with resources.sessions() as session:
            return await administration.account_view(session, resources.catalog, account_id)

    @post("/accounts/{account_id:str}/keys", status_code=201, responses=ERRORS)
    async def issue_key(
        self, account_id: str, data: IssueKeyRequest, resources: Resources, request: Request
    ) -> IssuedKey:
        """Issue another key (a seat) with the given scopes; shown once, stored hashed."""
        async with resources.sessions.begin() as session:
            return await administration.issue_key(
                session, resources.catalog, account_id, scopes=list(data.scopes), name=data.name, actor=actor(request)
            )

    @get("/accounts/{account_id:str}/keys", responses=ERRORS)
    async def list_keys(self, account_id: str, resources: Resources) -> ApiKeyList:
        """The account's keys (prefix, scopes, seat name, created, revoked); never the secrets."""
        async with resources.sessions() as session:
            return await administration.list_keys(session, account_id)

    @delete("/accounts/{account_id:str}/keys/{key_id:str}", status_code=200, responses=ERRORS)
    async def revoke_key(self, account_id: str, key_id: str, resources: Resources, request: Request) -> ApiKeyView:
        """Revoke a key: it stops authenticating at once. Revoking again changes nothing."""
        async with resources.sessions.begin() as session:
            return await administration.revoke_key(session, account_id, key_id, actor=actor(request))

    @post("/accounts/{account_id:str}/credits/grant", status_code=201, responses=ERRORS)
    async def grant(
        self, account_id: str, data: CreditGrant, resources: Resources, request: Request
    ) -> LedgerEntryView:
        """Grant credits (a positive amount)."""
        async with resources.sessions.begin() as session:
            return await administration.change_credits(
                session, account_id, data.amount, reason=data.reason, actor=actor(request), adjust=False
            )

    @post("/accounts/{account_id:str}/credits/adjust", status_code=201, responses={**ERRORS, **OVERDRAW})
    async def adjust(
        self, account_id: str, data: CreditChange, resources: Resources, request: Request
    ) -> LedgerEntryView:
        """Correct the balance by a signed amount; it cannot take away more than is available."""
        async with resources.sessions.begin() as session:
            return await administration.change_credits(
                session, account_id, data.amount, reason=data.reason, actor=actor(request), adjust=True
            )

    @put("/accounts/{account_id:str}/plan", responses=ERRORS)
    async def change_plan(
        self, account_id: str, data: PlanChange, resources: Resources, request: Request
    ) -> CreditsResponse:
        """Move the account to another plan.

        Limits change at once (tasks already waiting included), monthly credits start this period.
        """
        async with resources.sessions.begin() as session:
            changed = await administration.change_plan(
                session, resources.catalog, account_id, data.plan, actor=actor(request)
            )
        await gates.tell_new_limit(
            resources.temporal, account_id, resources.catalog.plans[data.plan].max_concurrent_jobs
        )
        return changed

    @put("/accounts/{account_id:str}/spend-limits", responses=ERRORS)
    async def set_spend_limit(
        self, account_id: str, data: SpendLimitChange, resources: Resources, request: Request
    ) -> SpendLimits:
        """Set or clear (`null`) a monthly spend cap: the account's, or one active key's (`key_id`).

        Creates that would take the month's usage (credits held plus captured this UTC month) past a
        cap are refused with 402 `spend_limit_reached`. Answers every cap now set, with its usage.
        """
        async with resources.sessions.begin() as session:
            return await administration.set_spend_limit(
                session, account_id, data.monthly_credit_limit, key_id=data.key_id, actor=actor(request)
            )

    @get("/accounts/{account_id:str}/ledger", responses=ERRORS)
    async def ledger(
        self,
        account_id: str,
        resources: Resources,
        limit: int = LIMIT,
        cursor: str | None = LEDGER_CURSOR,
        kind: LedgerKind | None = Parameter(query="kind", default=None),
    ) -> LedgerPage:
        """The account's ledger, newest first."""
        return await credit_service.ledger_page(resources, account_id, cursor, limit, kind)

    @get("/audit-log", responses=ERRORS)
    async def audit_log(
        self,
        resources: Resources,
        limit: int = LIMIT,
        cursor: str | None = AUDIT_CURSOR,
        account_id: str | None = Parameter(
            query="account_id", default=None, description=("Only this account's events." + query.EMPTY_MEANS_ABSENT)
        ),
    ) -> AuditPage:
        """Audit events of one account, or of all accounts, newest first."""
        only = task_service.lookup_id(account_id) if account_id else None  # an id with NUL: no account, no event
        return await credit_service.audit_page(resources, only, cursor, limit)

    @post("/credit-refresh", status_code=202, responses=ERRORS)
    async def trigger_refresh(self, resources: Resources) -> dict[str, str]:
        """Run the monthly credit refresh schedule now (it grants nothing twice within a period)."""
        await resources.temporal.get_schedule_handle(names.CREDIT_REFRESH_SCHEDULE).trigger()
        return {"schedule_id": names.CREDIT_REFRESH_SCHEDULE, "status": "triggered"}
