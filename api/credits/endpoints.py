"""Customer credit endpoints: balance and period, price estimates, the ledger, the audit log."""

from __future__ import annotations

from litestar import Controller, get, post, put
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import Parameter

from sorapi.api import pagination
from sorapi.api.auth import NEEDS_ADMIN, NEEDS_AUDIT, NEEDS_READ, Principal
from sorapi.api.credits import credit_service
from sorapi.api.openapi import error_responses
from sorapi.api.ratelimit import RATE_STATUS
from sorapi.api.state import Resources
from sorapi.api.tasks import task_service
from sorapi.contracts import errors
from sorapi.contracts.credit_schemas import (
    AuditPage,
    CreditsResponse,
    EstimateResponse,
    LedgerKind,
    LedgerPage,
    SpendLimitChange,
    SpendLimits,
)
from sorapi.contracts.schemas import ErrorEnvelope, GenerateRequest
from sorapi.domain.resolutions import ASPECT_RATIO_VALUES, RESOLUTION_VALUES
from sorapi.domain.speed import SPEEDS

AUDIO_VALUES = {"true": True, "false": False}

FORBIDDEN = {
    403: ResponseSpec(
        ErrorEnvelope,
        description="The key lacks the scope (`insufficient_scope`) or "
        "the plan lacks the feature (`plan_feature_unavailable`)",
    )
}
NO_SUCH_KEY = {404: ResponseSpec(ErrorEnvelope, description="`key_id` names no active key of the account")}
LIMIT = Parameter(query="limit", default=50, ge=1, le=200, description="Entries per page (1-200)")
LEDGER_CURSOR = pagination.cursor_parameter(credit_service.LEDGER_CURSOR)
AUDIT_CURSOR = pagination.cursor_parameter(credit_service.AUDIT_CURSOR)
ESTIMATE_DOC = (
    "Quote a render before submitting it: the credits `POST /api/generate` would reserve for the "
    "same fields (longer and higher resolution cost more), and whether the account can afford it now.\n\n"
    "The chosen model bounds `duration` and the resolution tier (see `GenerateRequest`); a query "
    "outside its envelope is a 422 naming the field. `POST /api/credits/estimate` takes the "
    "generate body, whose schema states each model's envelope."
)


class CreditsController(Controller):
    path = "/api"
    tags = ["credits"]

    @get("/credits", opt=RATE_STATUS | NEEDS_READ, responses={**error_responses(401, 429), **FORBIDDEN})
    async def balance(self, principal: Principal, resources: Resources) -> CreditsResponse:
        """The account's plan and credits.

        Balance, reserved by unfinished tasks, available, the billing period and its refresh, concurrency in use,
        overage this period (Pro), and each monthly spend cap that is set with what this month has used of it
        (`spend_limits`).
        """
        return await credit_service.account_credits(resources, principal.account_id)

    @put(
        "/credits/spend-limits",
        opt=RATE_STATUS | NEEDS_ADMIN,
        responses={**error_responses(400, 401, 422, 429), **FORBIDDEN, **NO_SUCH_KEY},
    )
    async def set_spend_limit(self, data: SpendLimitChange, principal: Principal, resources: Resources) -> SpendLimits:
        """Set or clear (`null`) a monthly spend cap: the account's, or one of its active keys' (`key_id`).

        For plans with `self_service_spend_limits` (Scale), with an `admin`-scope key; on other plans
        the operator sets caps (403 `plan_feature_unavailable`). A create that would take the month's
        usage (credits held by open tasks plus captured since the UTC month began) past a cap is
        refused with 402 `spend_limit_reached`, creating nothing. Answers every cap now set, with its usage.
        """
        return await credit_service.set_own_spend_limit(resources, principal, data)

    @get(
        "/credits/estimate",
        opt=RATE_STATUS | NEEDS_READ,
        description=ESTIMATE_DOC,
        responses={**error_responses(401, 422, 429), **FORBIDDEN},
    )
    async def estimate(
        self,
        principal: Principal,
        resources: Resources,
        model_version: str = Parameter(
            query="model_version",
            default="sora-2-latest",
            description="Model release, as `model_version` of the generate body",
        ),
        duration: int = Parameter(query="duration", default=8, ge=1, le=20, description="Seconds"),
        resolution: str | None = Parameter(
            query="resolution",
            default=None,
            description="As in the generate body",
            schema_extra={"enum": RESOLUTION_VALUES},
        ),
        aspect_ratio: str | None = Parameter(
            query="aspect_ratio",
            default=None,
            description="As in the generate body",
            schema_extra={"enum": ASPECT_RATIO_VALUES},
        ),
        prompt: str = Parameter(
            query="prompt", default="estimate", description="Ignored: the prompt does not change the price"
        ),
        speed: str | None = Parameter(
            query="speed",
            default=None,
            description="Speed profile, as `speed` of the generate body (default: the model's)",
            schema_extra={"enum": list(SPEEDS)},
        ),
        audio: str | None = Parameter(
            query="audio",
            default=None,
            description="With the soundtrack, as `audio` of the generate body (`true` on models with audio "
            "only; default: the model's)",
            schema_extra={"enum": list(AUDIO_VALUES)},
        ),
    ) -> EstimateResponse:
        """Quote a render before submitting it (the `prompt` is accepted but never read: it changes no price)."""
        req = GenerateRequest(
            prompt="estimate",
            model_version=model_version,
            duration=duration,
            resolution=resolution,
            aspect_ratio=aspect_ratio,
            speed=speed,
            audio=_flag("audio", audio),
        )
        return await credit_service.estimate(resources, principal, req)

    @post(
        "/credits/estimate",
        status_code=200,
        opt=RATE_STATUS | NEEDS_READ,
        responses={**error_responses(400, 401, 404, 409, 422, 429), **FORBIDDEN},
    )
    async def estimate_body(
        self, data: GenerateRequest, principal: Principal, resources: Resources
    ) -> EstimateResponse:
        """Quote exactly the body you would send to `POST /api/generate` (nothing is created).

        An extension (`extend_from`) is quoted as its source decides: the added seconds at its model and size.
        """
        _, rendered = await task_service.as_rendered(resources, principal, data)
        return await credit_service.estimate(resources, principal, rendered)

    @get("/credits/ledger", opt=RATE_STATUS | NEEDS_READ, responses={**error_responses(401, 422, 429), **FORBIDDEN})
    async def ledger(
        self,
        principal: Principal,
        resources: Resources,
        limit: int = LIMIT,
        cursor: str | None = LEDGER_CURSOR,
        kind: LedgerKind | None = Parameter(query="kind", default=None, description="Only entries of this kind"),
    ) -> LedgerPage:
        """Every credit movement of the account, newest first.

        Grant, refresh, reserve, capture, release, overage, expiry and adjust, each with its task, reason, actor and
        time.
        """
        return await credit_service.ledger_page(resources, principal.account_id, cursor, limit, kind)

    @get("/audit-log", opt=RATE_STATUS | NEEDS_AUDIT, responses={**error_responses(401, 422, 429), **FORBIDDEN})
    async def audit_log(
        self, principal: Principal, resources: Resources, limit: int = LIMIT, cursor: str | None = AUDIT_CURSOR
    ) -> AuditPage:
        """Key use and administrative actions on the account, newest first (Scale plans; `audit` scope)."""
        credit_service.audit_enabled(resources, principal)
        return await credit_service.audit_page(resources, principal.account_id, cursor, limit)


def _flag(name: str, value: str | None) -> bool | None:
    """A boolean query parameter: `true` or `false` exactly (absent: None)."""
    if value is None:
        return None
    if value not in AUDIO_VALUES:
        raise errors.ValidationFailed(
            "the request is invalid", details=[{"field": name, "message": f"{name} must be true or false"}]
        )
    return AUDIO_VALUES[value]
