"""OpenTelemetry traces, off unless `TCI_OTEL_ENDPOINT` names an OTLP/HTTP collector: server
spans for every request, client spans for every call to a peer (which carries `traceparent`) and a
span for every SQL statement, exported in batches. Off, nothing of OpenTelemetry is imported and
nothing is wrapped."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI

from shared.settings import Settings

if TYPE_CHECKING:
    import httpx
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.sampling import Sampler
    from sqlalchemy.ext.asyncio import AsyncEngine

# Probes and metrics are asked every few seconds by machines: a span for each would bury the
# traces of business requests.
UNTRACED_PATHS = "/healthz,/readyz,/metrics"

# This process's tracer provider while tracing is on; the peer clients read it when they are
# built (they know no app).
_provider: TracerProvider | None = None


def start_tracing(app: FastAPI, service: str, settings: Settings) -> None:
    """Trace the app's requests when an endpoint is configured; otherwise do nothing."""
    global _provider
    if not settings.otel_endpoint:
        return
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({SERVICE_NAME: settings.otel_service_name or service})
    provider = TracerProvider(resource=resource, sampler=_requests_only())
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(settings.otel_endpoint)))
    FastAPIInstrumentor.instrument_app(app, tracer_provider=provider, excluded_urls=UNTRACED_PATHS)
    app.state.tracer_provider = provider
    _provider = provider


def _requests_only() -> Sampler:
    """Every span of a request served, and nothing that starts on its own: the background loops
    (outbox, webhooks, purges) poll the database every second, and a trace for each poll would
    bury the requests' traces. A call that carries a sampled `traceparent` is traced."""
    from opentelemetry.sdk.trace.sampling import (
        Decision,
        ParentBased,
        Sampler,
        SamplingResult,
    )
    from opentelemetry.trace import SpanKind

    class ServedRequests(Sampler):
        def should_sample(self, parent_context: Any, trace_id: int, name: str,
                          kind: SpanKind | None = None, attributes: Any = None,
                          links: Any = None, trace_state: Any = None) -> SamplingResult:  # fmt: skip
            served = kind == SpanKind.SERVER
            decision = Decision.RECORD_AND_SAMPLE if served else Decision.DROP
            return SamplingResult(decision, attributes if served else None, trace_state)

        def get_description(self) -> str:
            return "ServedRequests"

    return ParentBased(root=ServedRequests())


def trace_engine(app: FastAPI, engine: AsyncEngine) -> None:
    """A span for each statement the engine runs (its SQL, never its bound values), when on.
    Reads through `shared.db.Reader` on asyncpg go to the driver directly and are not seen."""
    provider: TracerProvider | None = getattr(app.state, "tracer_provider", None)
    if provider is None:
        return
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

    instrumentor = SQLAlchemyInstrumentor()
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()  # an earlier app of this process (tests) had its own engine
    # The instrumentation names SQLAlchemy below 2.1 as the versions it knows; the
    # engine events it listens to are the same in 2.1.
    instrumentor.instrument(
        engine=engine.sync_engine, tracer_provider=provider, skip_dep_check=True
    )


def trace_peer_calls(client: httpx.AsyncClient) -> None:
    """A client span for each call to a peer, its context sent in `traceparent`, when on."""
    if _provider is None:
        return
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    HTTPXClientInstrumentor.instrument_client(client, tracer_provider=_provider)


async def stop_tracing(app: FastAPI) -> None:
    """Send the spans still waiting in the batch and stop, when on."""
    global _provider
    provider: TracerProvider | None = getattr(app.state, "tracer_provider", None)
    if provider is None:
        return
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

    instrumentor = SQLAlchemyInstrumentor()
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()
    if _provider is provider:
        _provider = None
    await asyncio.to_thread(provider.shutdown)
