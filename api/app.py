"""`create_app()`: wiring in one place (resources, dependencies, errors, OpenAPI)."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar
from litestar.datastructures import State
from litestar.di import Provide

from sorapi.adapters import netguard, storage, tracing
from sorapi.adapters.settings import Settings, get_settings
from sorapi.adapters.temporal import connect
from sorapi.api import openapi, ratelimit
from sorapi.api.admin import AdminController
from sorapi.api.allow import AllowHeaderMiddleware
from sorapi.api.auth import SingleAuthorizationMiddleware, provide_principal
from sorapi.api.batches import BatchesController
from sorapi.api.console import console_routes
from sorapi.api.credits.endpoints import CreditsController
from sorapi.api.errors import EXCEPTION_HANDLERS
from sorapi.api.health import HealthController
from sorapi.api.metrics import PROMETHEUS, metrics_endpoint
from sorapi.api.model_catalog import ModelsController
from sorapi.api.openai_videos import OpenAIVideosController
from sorapi.api.paths import refuse_nul_path_parameters
from sorapi.api.ratelimit import RateLimitMiddleware
from sorapi.api.request_id import RequestIdMiddleware, stamp_response
from sorapi.api.state import Resources
from sorapi.api.tasks.cancel import CancelController
from sorapi.api.tasks.deletion import LifecycleController
from sorapi.api.tasks.endpoints import VideoController
from sorapi.api.tasks.events import StreamSlots, TaskEventHub
from sorapi.api.tasks.listing import TasksController
from sorapi.api.tasks.stream import TaskEventsController
from sorapi.api.tasks.webhook_deliveries import TaskWebhooksController
from sorapi.api.webhooks import WebhookSecretController
from sorapi.domain.catalog import get_catalog
from sorapi.store.engine import make_async_engine, make_autocommit_sessionmaker, make_sessionmaker

GC_GEN0_THRESHOLD = 20_000
"""Allocations between young-generation collections (CPython's default is 700)."""


def tune_garbage_collector() -> None:
    """Collect less often, and never rescan what startup built.

    A request allocates thousands of short-lived objects (ORM rows, msgspec structs, ASGI
    messages); at CPython's default threshold a young collection runs every few requests, and
    each older-generation pass rescans every module, route and mapper loaded at startup.
    Freezing the startup heap keeps it out of every collection; the higher threshold spreads
    collections out without letting cyclic garbage grow unbounded.
    """
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_GEN0_THRESHOLD, older, oldest)


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or get_settings()
    netguard.warn_if_open(settings.webhook_allow_http, "api")

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        engine = make_async_engine(settings.resolved_database_url, pool_size=settings.db_pool_size)
        app.state.resources = Resources(
            settings=settings,
            catalog=get_catalog(),
            engine=engine,
            sessions=make_sessionmaker(engine),
            autocommit_sessions=make_autocommit_sessionmaker(engine),
            temporal=await connect(settings),
            s3=storage.make_client(settings),
            signer=storage.make_client(settings, public=True),
            task_events=TaskEventHub(settings.resolved_database_url),
            streams=StreamSlots(settings.streams_per_key),
        )
        await app.state.resources.news.start()
        tune_garbage_collector()
        try:
            yield
        finally:
            await app.state.resources.news.stop()
            await engine.dispose()

    def provide_resources(state: State) -> Resources:
        return state.resources

    return Litestar(
        route_handlers=[
            VideoController,
            HealthController,
            CreditsController,
            AdminController,
            CancelController,
            TasksController,
            OpenAIVideosController,
            LifecycleController,
            WebhookSecretController,
            TaskWebhooksController,
            TaskEventsController,
            BatchesController,
            ModelsController,
            metrics_endpoint,
            openapi.openapi_json,
            openapi.docs_shortcut,
            openapi.docs_assets(),
            *console_routes(),
        ],
        lifespan=[lifespan, ratelimit.lifespan(settings)],
        middleware=[
            PROMETHEUS.middleware,  # outermost: refusals (401, 429) are counted too
            RequestIdMiddleware(),
            AllowHeaderMiddleware(),
            SingleAuthorizationMiddleware(),
            RateLimitMiddleware(),
        ],
        before_send=[stamp_response],
        plugins=[*tracing.litestar_plugins()],  # a span per request when tracing is on (sorapi.adapters.tracing)
        before_request=refuse_nul_path_parameters,
        on_startup=[openapi.finalize],
        dependencies={
            "resources": Provide(provide_resources, sync_to_thread=False),
            "principal": Provide(provide_principal),
        },
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        openapi_config=openapi.config(),
        logging_config=None,  # structlog (sorapi.adapters.logs) owns logging; keep Litestar from reconfiguring it
    )
