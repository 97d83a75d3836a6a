"""OpenTelemetry: one trace per task.

The trace runs from `POST /api/generate` through the workflow and each activity to the webhook attempt.

Tracing is on when a tracer provider is installed. `configure()` installs one that exports OTLP
(HTTP/protobuf) when `OTEL_EXPORTER_OTLP_ENDPOINT` is set; the standard `OTEL_*` variables apply
(`OTEL_SERVICE_NAME`, `OTEL_EXPORTER_OTLP_HEADERS`, ...). Without it nothing is installed: the API
gets no tracing middleware and the Temporal clients no interceptor, so tracing off costs nothing.
A process that installs its own provider (a test with an in-memory exporter) turns tracing on too.

The Temporal side is `temporalio.contrib.opentelemetry.TracingInterceptor` on the client: workers
built from that client inherit it, and the span context travels in the workflow and activity
headers, so the API's request span is the parent of `StartWorkflow`, `RunWorkflow`, every
`RunActivity` and, through the follow-up activity that starts it, the webhook delivery workflow.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from opentelemetry import trace

if TYPE_CHECKING:
    from temporalio.client import Interceptor

__all__ = ["DEFAULT_SERVICE_NAME", "configure", "enabled", "interceptors", "litestar_plugins"]

DEFAULT_SERVICE_NAME = "sorapi"
"""`service.name` when `OTEL_SERVICE_NAME` is unset (the k8s manifests set one per Deployment)."""


UNTRACED_PATHS = ["^/healthz$", "^/readyz$", "^/metrics$"]
"""Probes and scrapes: a span every few seconds per replica, of no task."""


def enabled() -> bool:
    """Whether a real tracer provider is installed (the default proxy and no-op providers record nothing)."""
    return not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider | trace.NoOpTracerProvider)


def configure() -> bool:
    """Install the OTLP exporting provider if `OTEL_EXPORTER_OTLP_ENDPOINT` asks for one; idempotent.

    Returns whether tracing is on.
    """
    if enabled():
        return True
    if not os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return False
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: DEFAULT_SERVICE_NAME}
    provider = TracerProvider(resource=Resource.create(attributes))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    return True


def interceptors() -> list[Interceptor]:
    """The Temporal client's interceptors: the tracing one when tracing is on, else none."""
    if not configure():
        return []
    from temporalio.contrib.opentelemetry import TracingInterceptor

    return [TracingInterceptor()]


def litestar_plugins() -> list[Any]:
    """Litestar's OpenTelemetry plugin (a server span per request) when tracing is on, else none."""
    if not configure():
        return []
    from litestar.plugins.opentelemetry import OpenTelemetryConfig, OpenTelemetryPlugin

    return [OpenTelemetryPlugin(OpenTelemetryConfig(exclude=UNTRACED_PATHS))]
