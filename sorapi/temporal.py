"""Temporal client construction: one place that knows the address, namespace and converter."""

from __future__ import annotations

from temporalio.client import Client

from sorapi.converter import DATA_CONVERTER
from sorapi.settings import Settings


async def connect(settings: Settings) -> Client:
    return await Client.connect(settings.temporal_address, namespace=settings.temporal_namespace,
                                data_converter=DATA_CONVERTER)
