"""`create_app()`: wiring in one place (resources, dependencies, errors, OpenAPI)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar
from litestar.datastructures import State
from litestar.di import Provide

from api import openapi, ratelimit
from api.admin_routes import AdminController
from api.auth import provide_principal
from api.credits_routes import CreditsController
from api.cancel import CancelController
from api.errors import EXCEPTION_HANDLERS
from api.lifecycle import LifecycleController
from api.listing import TasksController
from api.openai_videos import OpenAIVideosController
from api.ratelimit import RateLimitMiddleware
from api.request_id import RequestIdMiddleware, stamp_response
from api.routes import HealthController, VideoController
from api.state import Resources
from api.webhooks import TaskWebhooksController, WebhookSecretController
from sorapi import netguard, storage
from sorapi.catalog import get_catalog
from sorapi.db.engine import make_async_engine, make_sessionmaker
from sorapi.settings import Settings, get_settings
from sorapi.temporal import connect


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or get_settings()
    netguard.warn_if_open(settings.webhook_allow_http, "api")

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        engine = make_async_engine(settings.resolved_database_url)
        app.state.resources = Resources(
            settings=settings, catalog=get_catalog(), engine=engine, sessions=make_sessionmaker(engine),
            temporal=await connect(settings), s3=storage.make_client(settings), signer=storage.make_client(settings, public=True),
        )
        try:
            yield
        finally:
            await engine.dispose()

    def provide_resources(state: State) -> Resources:
        return state.resources

    return Litestar(
        route_handlers=[VideoController, HealthController, CreditsController, AdminController, CancelController, TasksController,
                        OpenAIVideosController, LifecycleController, WebhookSecretController, TaskWebhooksController,
                        openapi.openapi_json, openapi.docs_shortcut, openapi.docs_assets()],
        lifespan=[lifespan, ratelimit.lifespan(settings)],
        middleware=[RequestIdMiddleware(), RateLimitMiddleware()],
        before_send=[stamp_response],
        on_startup=[openapi.finalize],
        dependencies={"resources": Provide(provide_resources, sync_to_thread=False),
                      "principal": Provide(provide_principal)},
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        openapi_config=openapi.config(),
        logging_config=None,  # structlog (sorapi.logs) owns logging; keep Litestar from reconfiguring it
    )
