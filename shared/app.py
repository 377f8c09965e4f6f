"""`create_app`: the same middleware, error mapping, health, readiness and metrics for every
service; engines and clients are built in the lifespan, never at import."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import gc
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from fastapi import APIRouter, FastAPI, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from sqlalchemy import MetaData, text
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.auth import VerifiedTokens
from shared.db import Reader, SessionDep, build_engine, build_sessionmaker
from shared.idempotency import purge_periodically
from shared.logging import configure_logging, reset_request_id, set_request_id
from shared.problems import PROBLEM_JSON, Problem, install_problem_handlers
from shared.settings import Settings

log = logging.getLogger("tci.app")
REQUEST_ID_HEADER = b"x-request-id"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


class BodyTooLarge(Exception):
    """The request body exceeds the configured cap."""


class Metrics:
    def __init__(self, service: str) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "http_requests_total",
            "HTTP requests answered",
            ["service", "method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "http_request_duration_seconds",
            "Time to answer an HTTP request",
            ["service", "method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.service = service


class RequestContextMiddleware:
    """Pure ASGI: a request id for every request (in logs and the response header), the body cap,
    metrics per route template, and a problem+json 500 for anything unexpected."""

    def __init__(self, app: ASGIApp, *, metrics: Metrics, max_body_bytes: int) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _header(scope, REQUEST_ID_HEADER) or uuid.uuid4().hex
        if len(request_id) > 128 or not request_id.isprintable():
            request_id = uuid.uuid4().hex
        token = set_request_id(request_id)
        started = time.perf_counter()
        status = 500
        response_started = False
        encoded_id = request_id.encode()

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (REQUEST_ID_HEADER, encoded_id)]
            await send(message)

        try:
            declared = _header(scope, b"content-length")
            if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
                raise BodyTooLarge
            await self.app(scope, self._capped(receive), send_with_id)
        except BodyTooLarge:
            if not response_started:
                await _send_problem(
                    send_with_id,
                    Problem(
                        413,
                        "payload-too-large",
                        f"the request body exceeds {self.max_body_bytes} bytes",
                    ),
                )
        except Exception:
            log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            if not response_started:
                await _send_problem(
                    send_with_id,
                    Problem(
                        500,
                        "internal-error",
                        f"an unexpected error occurred; quote request id {request_id}",
                    ),
                )
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "")
            elapsed = time.perf_counter() - started
            service = self.metrics.service
            self.metrics.requests.labels(service, method, template, str(status)).inc()
            self.metrics.latency.labels(service, method, template).observe(elapsed)
            reset_request_id(token)

    def _capped(self, receive: Receive) -> Receive:
        seen = 0
        cap = self.max_body_bytes

        async def capped_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > cap:
                    raise BodyTooLarge
            return message

        return capped_receive


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return None


async def _send_problem(send: Send, problem: Problem) -> None:
    body = json.dumps(problem.body()).encode()
    await send(
        {
            "type": "http.response.start",
            "status": problem.status,
            "headers": [
                (b"content-type", PROBLEM_JSON.encode()),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _tune_garbage_collector(gen0_threshold: int) -> None:
    """Everything built at startup (modules, models, compiled statements) is kept for the life of
    the process: frozen out of the collector's sight, it is not traversed again on every full
    collection. A higher first threshold lets a request that builds many objects (a 10,000-item
    coverage batch) finish with a few collections instead of hundreds; reference counting still
    frees all non-cyclic garbage at once."""
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(max(gen0_threshold, 1), gen1, gen2)


def create_app(
    *,
    service: str,
    settings: Settings,
    metadata: MetaData,
    routers: Sequence[APIRouter],
    title: str,
    description: str,
    lifespan: Lifespan | None = None,
) -> FastAPI:
    """A service app: its routers behind the shared middleware, error mapping and probes."""
    configure_logging(service, settings.log_level)

    @asynccontextmanager
    async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = build_engine(settings.database_url_for(service), pool_size=settings.db_pool_size)
        app.state.engine = engine
        app.state.sessionmaker = build_sessionmaker(engine)
        app.state.reader = Reader(engine)
        _tune_garbage_collector(settings.gc_gen0_threshold)
        purge = asyncio.create_task(
            purge_periodically(
                engine,
                app.state.idempotency_table,
                retention=dt.timedelta(hours=settings.idempotency_retention_hours),
                every=dt.timedelta(minutes=settings.idempotency_purge_minutes),
            )
        )
        try:
            if lifespan is not None:
                async with lifespan(app):
                    yield
            else:
                yield
        finally:
            purge.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await purge
            await engine.dispose()

    app = FastAPI(title=title, description=description, version="1.0.0", lifespan=_lifespan)
    app.state.settings = settings
    app.state.service = service
    app.state.tokens = VerifiedTokens(
        settings.jwt_secret, leeway_seconds=settings.jwt_leeway_seconds
    )
    app.state.idempotency_table = metadata.tables[f"{metadata.schema}.idempotency_keys"]
    metrics = Metrics(service)
    app.add_middleware(
        RequestContextMiddleware,
        metrics=metrics,
        max_body_bytes=settings.max_body_bytes,
    )
    install_problem_handlers(app)
    for router in routers:
        app.include_router(router)
    _add_probes(app, metrics)
    return app


def _add_probes(app: FastAPI, metrics: Metrics) -> None:
    @app.get("/healthz", tags=["operations"])
    async def healthz() -> dict[str, str]:
        """The process is alive."""
        return {"status": "ok"}

    @app.get(
        "/readyz",
        tags=["operations"],
        responses={503: {"description": "the database does not answer"}},
    )
    async def readyz(session: SessionDep) -> Response:
        """The database answers."""
        try:
            await session.execute(text("SELECT 1"))
        except Exception as exc:
            log.warning("readiness check failed: %s", exc)
            return Response(
                json.dumps(Problem(503, "not-ready", "the database does not answer").body()),
                status_code=503,
                media_type=PROBLEM_JSON,
            )
        return Response(b'{"status":"ready"}', media_type="application/json")

    @app.get("/metrics", tags=["operations"], response_class=Response)
    async def prometheus_metrics() -> Response:
        """Request counts and latency histograms in the Prometheus text format."""
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
