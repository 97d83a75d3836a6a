"""Temporal client construction: one place that knows the address, namespace and converter."""

from __future__ import annotations

import asyncio
import time

import structlog
from temporalio.client import Client

from sorapi.converter import DATA_CONVERTER
from sorapi.settings import Settings

log = structlog.get_logger()


async def connect(settings: Settings, *, wait_s: float = 60.0) -> Client:
    """Connect, waiting up to `wait_s` for a frontend that is still starting.

    A freshly started server (or cluster in docker-compose) opens its port before it answers
    ("Frontend is not healthy yet"); processes started beside it should wait, not crash.
    """
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return await Client.connect(
                settings.temporal_address, namespace=settings.temporal_namespace, data_converter=DATA_CONVERTER
            )
        except RuntimeError as exc:  # the SDK reports connection failures as RuntimeError
            if time.monotonic() > deadline:
                raise
            log.info("waiting for Temporal", address=settings.temporal_address, error=str(exc))
            await asyncio.sleep(0.5)
