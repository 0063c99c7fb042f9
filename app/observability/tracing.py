"""Tracing with OpenTelemetry, on when OTEL_EXPORTER_OTLP_ENDPOINT is set.

Spans, sent in batches over OTLP/HTTP (protobuf) to `<endpoint>/v1/traces`:
- each request, by FastAPI's own telemetry (`FastAPI(telemetry=...)`, which uses the global
  tracer provider once one is set): a server span named by the route's template, with a
  child span for its dependencies, its endpoint and its serialization, and the request id
  and the caller's organization as attributes (`SpanAttributesMiddleware`);
- every SQL statement, through asyncpg: both pools (the ORM's and the hot reads') speak
  asyncpg, so SQLAlchemy's own instrumentation would only add a second span per statement;
- every outbound HTTP request, through httpx (Clerk's keys, URL sources), httpx2 (the
  openai SDK's fork of it: embeddings) and aiohttp (the transport under the SDK's chat
  client: the model);
- every job a worker runs (`trace_job`), with the organization it acts for when it takes one.

Unset, none of it is imported and nothing runs per request: this module imports
OpenTelemetry inside the functions that only run when tracing is on. (FastAPI imports the
OpenTelemetry API for its own telemetry either way; with no tracer provider set, a request
costs it one check.)
"""

import logging
from collections.abc import MutableMapping
from typing import Any

from fastapi.telemetry import TelemetryConfig
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.settings import Settings

logger = logging.getLogger(__name__)

REQUEST_ID_ATTRIBUTE = "ajc.request_id"
ORGANIZATION_ATTRIBUTE = "ajc.organization_id"
# Where the caller's organization waits in the request's state for the span
# (app/auth/principal.py puts it there).
ORGANIZATION_STATE_KEY = "organization_id"
# Probes and scrapes every few seconds would be most of the traces, and tell nothing.
UNTRACED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})

_tracer_provider: Any = None


def _untraced(scope: MutableMapping[str, Any]) -> bool:
    return scope.get("path") in UNTRACED_PATHS


# FastAPI's own telemetry: spans only (the metrics are Prometheus', `app.observability`).
FASTAPI_TELEMETRY: TelemetryConfig = {"metrics": False, "logs": False, "exclude": _untraced}


def configure(settings: Settings) -> bool:
    """Set up tracing in this process, once, if OTEL_EXPORTER_OTLP_ENDPOINT is set; whether
    it is on. The tracer provider is OpenTelemetry's global one, so one per process."""
    global _tracer_provider
    endpoint = settings.otel_exporter_otlp_endpoint
    if not endpoint:
        return False
    if _tracer_provider is not None:
        return True
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
    from opentelemetry.instrumentation.httpx import (
        HTTPX2ClientInstrumentor,
        HTTPXClientInstrumentor,
    )
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: settings.otel_service_name}))
    # As the SDK reads OTEL_EXPORTER_OTLP_ENDPOINT itself: the traces' path under the base.
    exporter = OTLPSpanExporter(endpoint=f"{endpoint.rstrip('/')}/v1/traces")
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    AsyncPGInstrumentor().instrument(tracer_provider=provider)  # type: ignore[no-untyped-call]
    HTTPXClientInstrumentor().instrument(tracer_provider=provider)
    HTTPX2ClientInstrumentor().instrument(tracer_provider=provider)  # the openai SDK's
    AioHttpClientInstrumentor().instrument(tracer_provider=provider)  # under its chat client
    _tracer_provider = provider
    logger.info("tracing to %s", endpoint)
    return True


def job_middlewares() -> list[Any]:
    """procrastinate worker middlewares for tracing: none when tracing is off."""
    return [trace_job] if _tracer_provider is not None else []


async def trace_job(call_next: Any, context: Any, worker: Any) -> Any:
    """A span around a job (procrastinate has no OpenTelemetry instrumentation of its own)."""
    from opentelemetry.trace import SpanKind

    job = context.job
    attributes = {
        "messaging.system": "procrastinate",
        "messaging.destination.name": job.queue,
        "procrastinate.task": job.task_name,
        "procrastinate.job.id": job.id,
        "procrastinate.job.attempts": job.attempts,
    }
    organization_id = job.task_kwargs.get("organization_id")
    if organization_id:
        attributes[ORGANIZATION_ATTRIBUTE] = str(organization_id)
    tracer = _tracer_provider.get_tracer(__name__)
    with tracer.start_as_current_span(
        f"job {job.task_name}", kind=SpanKind.CONSUMER, attributes=attributes
    ):
        return await call_next()


class SpanAttributesMiddleware:
    """The request id and the caller's organization on the request's server span, set as the
    response starts (the route has found the caller by then; the span ends with the body).
    Added only when tracing is on."""

    def __init__(self, app: ASGIApp) -> None:
        from opentelemetry import trace

        self.app = app
        self._current_span = trace.get_current_span

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        span = self._current_span()
        described = False

        def describe() -> None:
            nonlocal described
            described = True
            state = scope.get("state", {})
            if request_id := state.get("request_id"):
                span.set_attribute(REQUEST_ID_ATTRIBUTE, request_id)
            if organization_id := state.get(ORGANIZATION_STATE_KEY):
                span.set_attribute(ORGANIZATION_ATTRIBUTE, str(organization_id))

        async def send_described(message: Message) -> None:
            if message["type"] == "http.response.start":
                describe()
            await send(message)

        try:
            await self.app(scope, receive, send_described)
        finally:
            if not described:  # an error answered outside (the 500), the span still open
                describe()
