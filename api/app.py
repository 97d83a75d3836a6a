"""`create_app()`: wiring in one place (resources, dependencies, errors, OpenAPI)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin

from api.auth import provide_principal
from api.errors import EXCEPTION_HANDLERS
from api.routes import HealthController, VideoController
from api.state import Resources
from sorapi import storage
from sorapi.catalog import get_catalog
from sorapi.db.engine import make_async_engine, make_sessionmaker
from sorapi.settings import Settings, get_settings
from sorapi.temporal import connect


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or get_settings()

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
        route_handlers=[VideoController, HealthController],
        lifespan=[lifespan],
        dependencies={"resources": Provide(provide_resources, sync_to_thread=False),
                      "principal": Provide(provide_principal)},
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        openapi_config=OpenAPIConfig(title="SorAPI", version="0.1.0", path="/docs",
                                     render_plugins=[ScalarRenderPlugin(path="/")]),
    )
