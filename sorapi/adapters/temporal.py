"""Temporal client construction: one place that knows the address, namespace, security and converter."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import structlog
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.runtime import Runtime
from temporalio.service import RPCError, RPCStatusCode, TLSConfig

from sorapi.adapters import tracing
from sorapi.adapters.payload_codec import data_converter
from sorapi.adapters.settings import Settings

log = structlog.get_logger()


async def connect(settings: Settings, *, wait_s: float = 60.0, runtime: Runtime | None = None) -> Client:
    """Connect, waiting up to `wait_s` for a frontend that is still starting.

    A freshly started server (or cluster in docker-compose) opens its port before it answers
    ("Frontend is not healthy yet"); processes started beside it should wait, not crash.
    """
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return await Client.connect(
                settings.temporal_address,
                namespace=settings.temporal_namespace,
                data_converter=data_converter(settings),
                tls=tls_config(settings),
                api_key=settings.temporal_api_key or None,
                runtime=runtime,  # a worker's: serves its SDK metrics (sorapi.adapters.metrics.sdk_runtime)
                interceptors=tracing.interceptors(),  # workers built on this client inherit them
            )
        except RuntimeError as exc:  # the SDK reports connection failures as RuntimeError
            if time.monotonic() > deadline:
                raise
            log.info("waiting for Temporal", address=settings.temporal_address, error=str(exc))
            await asyncio.sleep(0.5)


def tls_config(settings: Settings) -> TLSConfig | bool:
    """TLS towards a secured cluster or Temporal Cloud: server CA, client certificate (mTLS), server name.

    Any of them, or an API key, turns TLS on; none keeps the plain connection of a dev server.
    """
    ca, cert, key = (
        Path(path).read_bytes() if path else None
        for path in (settings.temporal_tls_ca_path, settings.temporal_tls_cert_path, settings.temporal_tls_key_path)
    )
    if (cert is None) != (key is None):
        raise ValueError("SORAPI_TEMPORAL_TLS_CERT_PATH and SORAPI_TEMPORAL_TLS_KEY_PATH go together (mTLS)")
    wanted = settings.temporal_tls or settings.temporal_api_key or settings.temporal_tls_server_name
    if not (wanted or ca or cert):
        return False
    return TLSConfig(
        server_root_ca_cert=ca,
        client_cert=cert,
        client_private_key=key,
        domain=settings.temporal_tls_server_name or None,
    )


async def workflow_status(client: Client, workflow_id: str) -> WorkflowExecutionStatus | None:
    """The status of the latest run under `workflow_id`; None if no run was ever started under it."""
    try:
        described = await client.get_workflow_handle(workflow_id).describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return None
        raise
    return described.status
