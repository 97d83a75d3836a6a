"""Resources the API makes once per process (in the lifespan) and injects into handlers."""

from __future__ import annotations

from dataclasses import dataclass, field

from minio import Minio
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from temporalio.client import Client

from api.eta import RenderTimes
from sorapi.catalog import Catalog
from sorapi.settings import Settings


@dataclass
class Resources:
    settings: Settings
    catalog: Catalog
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    autocommit_sessions: async_sessionmaker[AsyncSession]
    """Each statement its own transaction (sorapi.db.engine.make_autocommit_sessionmaker): authentication and reads."""
    temporal: Client
    s3: Minio
    """Talks to the store (readiness checks)."""
    signer: Minio
    """Signs URLs for the host clients use (`s3_public_endpoint`); signing makes no request."""
    render_times: RenderTimes = field(default_factory=RenderTimes)
    """Recent render times per model, for ETAs."""
