"""`GET /metrics`: the API process's Prometheus metrics, for operators only.

Request rate, latency and status per route come from Litestar's Prometheus plugin
(`sorapi_http_requests_total`, `sorapi_http_request_duration_seconds`, labelled by the route's path
template, so task ids never become labels); the business metrics are sorapi.adapters.metrics'. The waiting
and running gauges are read at scrape time from the task rows' partial indexes (queued, running):
the work grows with the tasks in flight, never with the table. Every API replica reports the same
gauges: aggregate them with `max`, the counters with `sum`.

Auth: `Authorization: Bearer <SORAPI_METRICS_TOKEN>` (or the admin token); with neither set, 403
`metrics_disabled`. `SORAPI_METRICS_PUBLIC=true` drops the check, for networks that keep clients out.
Not in the OpenAPI schema: it is no part of the client API.
"""

from __future__ import annotations

import hmac

from litestar import Response, get
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from litestar.plugins.prometheus import PrometheusConfig
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from sqlalchemy import func, select

from sorapi.adapters import metrics
from sorapi.api.auth import authorization_header
from sorapi.api.state import Resources
from sorapi.contracts import errors, status
from sorapi.store.models import Account, Task

PROMETHEUS = PrometheusConfig(app_name="sorapi", prefix="sorapi_http", group_path=True)
"""Request metrics per route template; its middleware goes first, so refusals (401, 429) count too."""


def require_scraper(connection: ASGIConnection, _handler: BaseRouteHandler) -> None:
    """Constant-time check of the metrics token or the admin token, unless scraping is public."""
    settings = connection.app.state.resources.settings
    if settings.metrics_public:
        return
    accepted = [token for token in (settings.metrics_token, settings.admin_token) if token]
    if not accepted:
        raise errors.Forbidden(
            "/metrics is disabled: set SORAPI_METRICS_TOKEN (or SORAPI_ADMIN_TOKEN)", code=errors.METRICS_DISABLED
        )
    scheme, _, token = authorization_header(connection.scope["headers"]).partition(" ")
    given = token.strip().encode()
    # every token is compared, so the time taken says nothing about which one nearly matched
    matches = [hmac.compare_digest(given, expected.encode()) for expected in accepted]
    if scheme.lower() != "bearer" or not any(matches):
        raise errors.Unauthorized("missing or wrong metrics token", headers={"WWW-Authenticate": "Bearer"})


async def refresh_task_gauges(resources: Resources) -> None:
    """Tasks waiting and running per plan, from the partial indexes on queued and running rows."""
    counts = {(name, state): 0 for name in resources.catalog.plans for state in (status.QUEUED, status.RUNNING)}
    query = (
        select(Account.plan, Task.status, func.count())
        .join(Account, Account.id == Task.account_id)
        .where(Task.status.in_((status.QUEUED, status.RUNNING)))
        .group_by(Account.plan, Task.status)
    )
    async with resources.autocommit_sessions() as session:
        for plan, state, count in (await session.execute(query)).tuples():
            counts[(plan, state)] = count
    for (plan, state), count in counts.items():
        gauge = metrics.TASKS_WAITING if state == status.QUEUED else metrics.TASKS_RUNNING
        gauge.labels(plan=plan).set(count)


@get("/metrics", include_in_schema=False, guards=[require_scraper])
async def metrics_endpoint(resources: Resources) -> Response[bytes]:
    """Prometheus text exposition of this API process."""
    await refresh_task_gauges(resources)
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
