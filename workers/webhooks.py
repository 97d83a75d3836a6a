"""Webhook delivery lanes: one task queue per plan (`sorapi-webhooks-<plan>`), each its own worker.

A lane's slots are the only thing a slow or dead receiver can occupy, so renders and other plans'
webhooks never wait behind it. Plans with `dedicated_webhook_lane` (Scale) get a wider lane.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.worker import Worker

from sorapi.activities.webhooks import WebhookActivities
from sorapi.adapters import netguard, storage
from sorapi.adapters.secretbox import make_secret_box
from sorapi.adapters.settings import Settings
from sorapi.domain.catalog import Catalog, get_catalog
from sorapi.domain.webhook_policy import lane
from sorapi.store.engine import make_async_engine, make_sessionmaker

LANE_SLOTS = 16
DEDICATED_LANE_SLOTS = 64
"""Concurrent attempts per lane; an attempt mostly waits on the network (at most 15 s)."""


def create_webhook_workers(
    client: Client,
    settings: Settings,
    *,
    catalog: Catalog | None = None,
    sessions: async_sessionmaker[AsyncSession] | None = None,
    **activity_options: Any,
) -> list[Worker]:
    catalog = catalog or get_catalog()
    sessions = sessions or make_sessionmaker(make_async_engine(settings.resolved_database_url))
    netguard.warn_if_open(settings.webhook_allow_http, "webhook workers")
    deliveries = WebhookActivities(
        sessions, settings, storage.make_client(settings, public=True), make_secret_box(settings), **activity_options
    )
    return [
        Worker(
            client,
            task_queue=lane(settings.webhook_queue_prefix, name),
            activities=[deliveries.deliver_webhook],
            max_concurrent_activities=DEDICATED_LANE_SLOTS if plan.dedicated_webhook_lane else LANE_SLOTS,
            graceful_shutdown_timeout=timedelta(seconds=20),
        )
        for name, plan in catalog.plans.items()
    ]
