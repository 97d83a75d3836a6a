"""Resources the API makes once per process (in the lifespan) and injects into handlers."""

from __future__ import annotations

from dataclasses import dataclass, field

from minio import Minio
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from temporalio.client import Client

from sorapi.adapters.settings import Settings
from sorapi.api.tasks.eta import RenderTimes
from sorapi.api.tasks.events import ProgressWatchers, StreamSlots, TaskEventHub
from sorapi.domain.catalog import Catalog


@dataclass
class Resources:
    settings: Settings
    catalog: Catalog
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    autocommit_sessions: async_sessionmaker[AsyncSession]
    """Each statement its own transaction (sorapi.store.engine.make_autocommit_sessionmaker): authentication
    and reads."""
    temporal: Client
    s3: Minio
    """Talks to the store (readiness checks)."""
    signer: Minio
    """Signs URLs for the host clients use (`s3_public_endpoint`); signing makes no request."""
    render_times: RenderTimes = field(default_factory=RenderTimes)
    """Recent render times per model, for ETAs."""
    task_events: TaskEventHub | None = None
    """The process's LISTEN connection for task news (event streams, `Prefer: wait`); set by the app."""
    progress: ProgressWatchers = field(default_factory=ProgressWatchers)
    """One shared render-progress watcher per followed task."""
    streams: StreamSlots = field(default_factory=lambda: StreamSlots(Settings().streams_per_key))
    """Open event streams per API key."""

    @property
    def news(self) -> TaskEventHub:
        if self.task_events is None:
            raise RuntimeError("this API process listens for no task events")
        return self.task_events
