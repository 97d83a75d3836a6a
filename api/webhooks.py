"""The account's webhook signing secret (`/api/webhooks/secret`): read and rotate it, admin keys only.

A task's delivery log and redelivery live with the task (`api/tasks/webhook_deliveries.py`).
"""

from __future__ import annotations

import functools
from datetime import timedelta

from litestar import Controller, get, post
from litestar.openapi.datastructures import ResponseSpec

from sorapi.adapters.secretbox import SecretBox, make_secret_box
from sorapi.adapters.settings import Settings
from sorapi.api.auth import NEEDS_ADMIN, Principal
from sorapi.api.openapi import error_responses
from sorapi.api.ratelimit import RATE_STATUS
from sorapi.api.state import Resources
from sorapi.contracts.schemas import ErrorEnvelope, WebhookSecret
from sorapi.store import webhook_rows

FORBIDDEN = {403: ResponseSpec(ErrorEnvelope, description="The API key lacks the `admin` scope (`insufficient_scope`)")}


@functools.lru_cache(maxsize=4)
def secret_box(settings: Settings) -> SecretBox:
    return make_secret_box(settings)


async def reveal_secret(res: Resources, principal: Principal) -> WebhookSecret:
    async with res.sessions.begin() as session:
        found = await webhook_rows.signing_secrets(session, principal.account_id, secret_box(res.settings))
    return WebhookSecret(secret=found.current, previous_secret_valid_until=found.previous_until)


async def rotate_secret(res: Resources, principal: Principal) -> WebhookSecret:
    overlap = timedelta(hours=res.settings.webhook_rotation_overlap_hours)
    async with res.sessions.begin() as session:
        fresh = await webhook_rows.rotate_secret(session, principal.account_id, secret_box(res.settings), overlap)
    return WebhookSecret(secret=fresh.current, previous_secret_valid_until=fresh.previous_until)


class WebhookSecretController(Controller):
    path = "/api/webhooks"
    tags = ["webhooks"]

    @get("/secret", opt=RATE_STATUS | NEEDS_ADMIN, responses={**error_responses(401, 429), **FORBIDDEN})
    async def get_secret(self, principal: Principal, resources: Resources) -> WebhookSecret:
        """The account's webhook signing secret (`whsec_...`), for admin-scoped keys only.

        Verify `X-Signature` with the seed's `verifySora2Webhook(rawBody, signature, secret)`, or
        the Standard Webhooks headers with any Standard Webhooks library (or `openai`'s
        `client.webhooks.unwrap`), passing this exact string as the secret.
        """
        return await reveal_secret(resources, principal)

    @post(
        "/secret/rotate",
        status_code=200,
        opt=RATE_STATUS | NEEDS_ADMIN,
        responses={**error_responses(401, 429), **FORBIDDEN},
    )
    async def rotate(self, principal: Principal, resources: Resources) -> WebhookSecret:
        """Replace the secret.

        Until `previous_secret_valid_until`, deliveries carry both signatures (`webhook-signature: v1,<new> v1,<old>`,
        `X-Signature` new and `X-Signature-Previous` old), so receivers can switch without dropping a webhook.
        """
        return await rotate_secret(resources, principal)
