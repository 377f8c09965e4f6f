"""`create_app`: the same middleware, error mapping, health, readiness and metrics for every
service; engines and clients are built in the lifespan, never at import."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import datetime as dt
import gc
import json
import logging
import math
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.staticfiles import StaticFiles
from limits import RateLimitItem, parse_many
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import FixedWindowRateLimiter
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import Field
from sqlalchemy import MetaData, text
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from swagger_ui_bundle import swagger_ui_path  # type: ignore[import-untyped]

from shared.auth import VerifiedTokens, require
from shared.contracts import Schema, refer_to_components, refuse_unstorable_parameters
from shared.db import (
    Reader,
    SessionDep,
    build_engine,
    build_sessionmaker,
    is_sqlite,
    is_unavailable,
)
from shared.events import Event
from shared.events_api import declare_webhooks, only_declared_webhook_answers
from shared.idempotency import HEADER as IDEMPOTENCY_HEADER
from shared.idempotency import MAX_KEY_LENGTH, REPLAYED_HEADER, get_command, purge_periodically
from shared.logging import configure_logging, reset_request_id, set_request_id
from shared.metrics import Metrics, forget_worker, read_when_scraped, serve_metrics_port
from shared.migrations import refusal_in_one_line, refuse_unmigrated
from shared.outbox import MAX_ATTEMPTS as OUTBOX_MAX_ATTEMPTS
from shared.peers import get_peers
from shared.problems import (
    INTERNAL_ERROR,
    PAYLOAD_TOO_LARGE,
    PROBLEM_JSON,
    RATE_LIMITED,
    SERVICE_UNAVAILABLE,
    VALIDATION,
    Problem,
    describe_problems,
    install_problem_handlers,
    is_json_media,
    problem_components,
    problem_responses,
)
from shared.settings import Settings
from shared.tracing import start_tracing, stop_tracing, trace_engine
from shared.webhooks import WebhookTestEvent

log = logging.getLogger("tci.app")
REQUEST_ID_HEADER = b"x-request-id"
# A part of work committed in parts waits this long for a connection of its pool at most.
UNITS_WAIT_SECONDS = 3600.0
# While the shared rate-limit storage (Redis) is down, it is asked again this often (seconds);
# meanwhile each process counts in its own memory.
SHARED_RETRY_SECONDS = 5.0
# Probes answer whoever asks (an orchestrator, a load balancer) and are never rate limited.
UNLIMITED_PATHS = frozenset({"/healthz", "/readyz"})
# Every answer: never sniffed, never stored by a cache, no referrer, nothing loaded or run.
SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"cache-control", b"no-store"),
    (b"referrer-policy", b"no-referrer"),
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
)
# The interactive docs (Swagger UI, served from this service: nothing is loaded from elsewhere, so
# they work offline) run one inline script: they get a policy allowing exactly that.
DOCS_PATHS = frozenset({"/docs", "/docs/oauth2-redirect"})
DOCS_ASSETS = "/docs/assets"
DOCS_CSP = (
    b"default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    b"img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'"
)
JSON_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


class BodyTooLarge(Exception):
    """The request body exceeds the configured cap."""


class DuplicateKey(Exception):
    """A JSON body names one key twice in one object."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _refuse_duplicates(pairs: list[tuple[str, object]]) -> None:
    """`object_pairs_hook` that only checks: the parsed value is thrown away (FastAPI parses the
    body itself), so nothing is built."""
    if len(pairs) > 1:
        keys = {key for key, _ in pairs}
        if len(keys) != len(pairs):
            seen: set[str] = set()
            for key, _ in pairs:
                if key in seen:
                    raise DuplicateKey(key)
                seen.add(key)


def _request_id(scope: Scope) -> str:
    """The caller's request id if it is a sane one, else a new one."""
    request_id = _header(scope, REQUEST_ID_HEADER)
    if request_id is None or len(request_id) > 128 or not request_id.isprintable():
        return uuid.uuid4().hex
    return request_id


class _Answer:
    """What is sent back: the request id, the security headers (the docs' own policy on the docs)
    and `Retry-After` on a 503 added to the answer's start; its status remembered."""

    def __init__(self, send: Send, request_id: bytes, csp: bytes | None, retry_after: bytes):
        self.send, self.request_id, self.csp, self.retry_after = send, request_id, csp, retry_after
        self.status = 500
        self.started = False

    async def emit(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
            self.status = message["status"]
            headers = [*message.get("headers", []), (REQUEST_ID_HEADER, self.request_id)]
            present = {key.lower() for key, _ in headers}
            for key, value in SECURITY_HEADERS:
                if key not in present:
                    if self.csp is not None and key == b"content-security-policy":
                        value = self.csp
                    headers.append((key, value))
            if self.status == 503 and b"retry-after" not in present:
                headers.append((b"retry-after", self.retry_after))
            message["headers"] = headers
        await self.send(message)

    def unless(self, refusal: list[Exception]) -> Send:
        """The app's `send`: a body refused while the app read it (over the cap, a duplicate key)
        makes the app answer a parse error, which the precise answer (413, 422) replaces."""

        async def app_send(message: Message) -> None:
            if refusal and not self.started:
                return
            await self.emit(message)

        return app_send


class RequestContextMiddleware:
    """Pure ASGI: a request id for every request (in logs and the response header), security
    headers on every answer, the body cap (declared or chunked: 413), duplicate keys in a JSON
    body refused (422), metrics per route template, 503 with Retry-After when the database or a
    peer cannot be reached, and a problem+json 500 for anything else unexpected."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: Metrics,
        max_body_bytes: int,
        retry_after_seconds: int = 5,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self.retry_after = str(retry_after_seconds).encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        token = set_request_id(request_id)
        started = time.perf_counter()
        csp = DOCS_CSP if scope.get("path") in DOCS_PATHS else None
        answer = _Answer(send, request_id.encode(), csp, self.retry_after)
        refusal: list[Exception] = []  # why the body was refused while the app read it
        try:
            await self.app(scope, self._checked(scope, receive, refusal), answer.unless(refusal))
            if refusal:
                raise refusal[0]
        except Exception as exc:
            if not answer.started:
                await _send_problem(answer.emit, self._problem_for(exc, scope, request_id),
                                    instance=scope.get("path"))  # fmt: skip
        finally:
            self._count(scope, answer.status, started)
            reset_request_id(token)

    def _checked(self, scope: Scope, receive: Receive, refusal: list[Exception]) -> Receive:
        """The body as the app may read it: within the cap (declared or chunked), and for JSON
        without a key named twice."""
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            raise BodyTooLarge
        checked = self._capped(receive, refusal)
        if scope.get("method") in JSON_BODY_METHODS and _is_json(scope):
            checked = _checked_json(checked, refusal)
        return checked

    def _problem_for(self, exc: Exception, scope: Scope, request_id: str) -> Problem:
        """The answer to a request that failed: 413, 422, 503, or a 500 quoting the request id."""
        if isinstance(exc, BodyTooLarge):
            return Problem(
                PAYLOAD_TOO_LARGE, f"the request body exceeds {self.max_body_bytes} bytes"
            )
        if isinstance(exc, DuplicateKey):
            msg = f"the JSON body names the key {exc.key!r} more than once"
            return Problem(VALIDATION, msg, errors=[{"loc": ["body", exc.key], "msg": msg}])
        method, path = scope.get("method"), scope.get("path")
        if is_unavailable(exc):
            log.warning("unavailable on %s %s: %s", method, path, type(exc).__name__)
            return Problem(SERVICE_UNAVAILABLE,
                           "the service cannot reach its database or a peer service; retry later")  # fmt: skip
        log.exception("unhandled error on %s %s", method, path)
        return Problem(
            INTERNAL_ERROR, f"an unexpected error occurred; quote request id {request_id}"
        )

    def _count(self, scope: Scope, status: int, started: float) -> None:
        route = scope.get("route")
        template = getattr(route, "path", None) or "unmatched"
        method = scope.get("method", "")
        service = self.metrics.service
        self.metrics.requests.labels(service, method, template, str(status)).inc()
        self.metrics.latency.labels(service, method, template).observe(
            time.perf_counter() - started
        )

    def _capped(self, receive: Receive, refusal: list[Exception]) -> Receive:
        seen = 0
        cap = self.max_body_bytes

        async def capped_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > cap:
                    refusal.append(BodyTooLarge())
                    raise refusal[-1]
            return message

        return capped_receive


def _is_json(scope: Scope) -> bool:
    return is_json_media(_header(scope, b"content-type"))


def _checked_json(receive: Receive, refusal: list[Exception]) -> Receive:
    """The body as the app reads it, checked on the first read: the whole JSON body is read,
    duplicate keys in any object are refused (DuplicateKey, recorded in `refusal`), and the app
    gets the same body. A body that is not JSON at all is left to the app's own 422. Nothing is
    read before the app asks (a rate-limited request's body is never parsed)."""
    pending: list[Message] | None = None

    async def replay() -> Message:
        nonlocal pending
        if pending is None:
            pending = []
            chunks: list[bytes] = []
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    pending.append(message)
                    break
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    break
            body = b"".join(chunks)
            if body:
                try:
                    json.loads(body, object_pairs_hook=_refuse_duplicates)
                except DuplicateKey as exc:
                    refusal.append(exc)
                    raise
                except (ValueError, RecursionError):
                    pass
            pending.insert(0, {"type": "http.request", "body": body, "more_body": False})
        if pending:
            return pending.pop(0)
        return await receive()

    return replay


class RateLimits:
    """Requests per caller in fixed windows (the `limits` package): in this process's memory,
    or in Redis when a URL is given, so that every replica of a service counts against one
    budget. Three tiers, each a list of rates: `caller` (a token's subject), `anonymous` (the
    client address when there is no valid token) and `service` (our own services). While Redis
    cannot be reached, each process counts in its own memory (the limits hold per replica) and
    asks Redis again every SHARED_RETRY_SECONDS; the outage is logged once when it starts and
    once when it ends."""

    def __init__(
        self, service: str, *, caller: str, anonymous: str, service_tier: str,
        redis_url: str | None = None,
    ) -> None:  # fmt: skip
        self.local = FixedWindowRateLimiter(MemoryStorage())
        self.shared: FixedWindowRateLimiter | None = None
        storage: Storage = self.local.storage
        if redis_url:
            url = redis_url if redis_url.startswith("async+") else f"async+{redis_url}"
            storage = RedisStorage(url, implementation="redispy", key_prefix="tci")
            self.shared = FixedWindowRateLimiter(storage)
        self.storage = storage
        self.limiter = self.shared or self.local
        self.service = service
        self.tiers: dict[str, list[RateLimitItem]] = {
            "caller": parse_many(caller) if caller.strip() else [],
            "anonymous": parse_many(anonymous) if anonymous.strip() else [],
            "service": parse_many(service_tier) if service_tier.strip() else [],
        }
        self.shared_down_since: float | None = None  # time.monotonic() when Redis stopped answering
        self._ask_shared_at = 0.0

    async def retry_after(self, tier: str, key: str) -> int | None:
        """Count one request; None if it is within every rate, else the seconds until the
        window that refused it ends. Counted in Redis when it answers, else in this process."""
        if self.shared is not None:
            now = time.monotonic()
            if self.shared_down_since is None or now >= self._ask_shared_at:
                try:
                    wait = await self._count(self.shared, tier, key)
                except Exception as exc:  # Redis is down: count here until it answers again
                    if self.shared_down_since is None:
                        self.shared_down_since = now
                        log.warning("rate limit storage unavailable, counting per process until "
                                    "it answers again: %s", exc)  # fmt: skip
                    self._ask_shared_at = now + SHARED_RETRY_SECONDS
                else:
                    if self.shared_down_since is not None:
                        log.warning("rate limit storage available again after %.0f s, counting "
                                    "across replicas", now - self.shared_down_since)  # fmt: skip
                        self.shared_down_since = None
                    return wait
        return await self._count(self.local, tier, key)

    async def _count(self, limiter: FixedWindowRateLimiter, tier: str, key: str) -> int | None:
        for item in self.tiers[tier]:
            if not await limiter.hit(item, self.service, tier, key):
                stats = await limiter.get_window_stats(item, self.service, tier, key)
                return max(1, math.ceil(stats.reset_time - time.time()))
        return None


class RateLimitMiddleware:
    """Pure ASGI: 429 `rate-limited` with Retry-After for a caller past its rate. The caller is
    the bearer token's subject, read through the app's verified-token cache (the route reads the
    same entry: a token is decoded once); without a valid token, the client's address."""

    def __init__(self, app: ASGIApp, *, limits: RateLimits, tokens: VerifiedTokens) -> None:
        self.app = app
        self.limits = limits
        self.tokens = tokens
        self._served: list[BaseRoute] | None = None

    def _routes(self, scope: Scope) -> list[BaseRoute]:
        """The app's routes, read once (the middleware is built at the first request, when
        every router is included)."""
        if self._served is None:
            router = getattr(scope.get("app"), "router", None)
            self._served = list(_served_routes(getattr(router, "routes", ())))
        return self._served

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in UNLIMITED_PATHS:
            await self.app(scope, receive, send)
            return
        tier, key = self._caller(scope)
        if self.limits.tiers[tier]:
            wait = await self.limits.retry_after(tier, key)
            if wait is not None:
                _find_route(scope, self._routes(scope))  # counted under the route it was for
                await _send_problem(
                    send,
                    Problem(RATE_LIMITED, f"too many requests; retry in {wait} s"),
                    headers=[(b"retry-after", str(wait).encode())],
                    instance=scope.get("path"),
                )
                return
        await self.app(scope, receive, send)

    def _caller(self, scope: Scope) -> tuple[str, str]:
        header = _header(scope, b"authorization")
        if header:
            scheme, _, token = header.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                try:
                    caller = self.tokens.caller(token.strip())
                except Problem:
                    pass  # refused by the route too (401); counted against the address
                else:
                    if caller.role == "service":
                        return "service", caller.subject
                    return "caller", caller.subject
        client = scope.get("client")
        return "anonymous", str(client[0]) if client else "unknown"


def _served_routes(routes: Iterable[BaseRoute]) -> Iterator[BaseRoute]:
    """The routes an app serves, each router it included (FastAPI keeps one as a single route,
    its own routes inside) opened up; one included under a prefix is kept whole (not matched)."""
    for route in routes:
        included = getattr(route, "original_router", None)
        prefix = getattr(getattr(route, "include_context", None), "prefix", "")
        if included is not None and not prefix:
            yield from _served_routes(included.routes)
        else:
            yield route


def _find_route(scope: Scope, routes: Sequence[BaseRoute]) -> None:
    """Put the route a request is for in its scope, as the router would (a full match first,
    else one that differs in the method only), for a request answered before routing (429):
    the metrics then count it under its route template, not as `unmatched`."""
    partial = None
    for route in routes:
        match, _ = route.matches(scope)
        if match is Match.FULL:
            scope["route"] = route
            return
        if match is Match.PARTIAL and partial is None:
            partial = route
    if partial is not None:
        scope["route"] = partial


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return None


async def _send_problem(
    send: Send, problem: Problem, headers: Sequence[tuple[bytes, bytes]] = (),
    instance: str | None = None,
) -> None:  # fmt: skip
    """`problem` as problem+json, its `instance` the request's path (as the app's own errors)."""
    body = json.dumps(problem.body(instance)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": problem.status,
            "headers": [
                (b"content-type", PROBLEM_JSON.encode()),
                (b"content-length", str(len(body)).encode()),
                *headers,
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
    events: Sequence[type[Event]] = (),
) -> FastAPI:
    """A service app: its routers behind the shared middleware, error mapping and probes; the
    `events` it announces published as webhooks (with the test message an endpoint can ask
    for)."""
    configure_logging(service, settings.log_level, settings.log_format)
    metrics = Metrics(service)
    app = FastAPI(
        title=title,
        description=description,
        version="1.0.0",
        lifespan=_lifespan_of(service, settings, metadata, metrics, lifespan),
        dependencies=[Depends(refuse_unstorable_parameters)],
        docs_url=None,
        redoc_url=None,
        # Short, stable operation ids (the use case's name: `create_policy`), so a generated
        # client's methods read as the business does and do not change with a path.
        generate_unique_id_function=_operation_id,
        # One schema per model for requests and answers alike (no `-Input`/`-Output` twins).
        separate_input_output_schemas=False,
        # A path with a trailing slash is a 404 naming the path meant (`without_trailing_slash`),
        # not a 307 with no body.
        redirect_slashes=False,
    )
    app.state.settings = settings
    app.state.service = service
    app.state.tokens = VerifiedTokens(
        settings.jwt_secret,
        leeway_seconds=settings.jwt_leeway_seconds,
        max_ttl_seconds=settings.max_token_ttl_seconds,
    )
    app.state.idempotency_table = metadata.tables[f"{metadata.schema}.idempotency_keys"]
    _add_middleware(app, service, settings, metrics)
    start_tracing(app, service, settings)
    install_problem_handlers(app)
    for router in routers:
        app.include_router(router)
    if events:
        declare_webhooks(app.webhooks, [*events, WebhookTestEvent])
    _add_probes(app, metrics)
    _add_docs(app, title)
    _declare_everywhere(app, service, 413, 422, 429, 503)
    refusal_in_one_line(app)
    return app


def _lifespan_of(
    service: str, settings: Settings, metadata: MetaData, metrics: Metrics,
    lifespan: Lifespan | None,
) -> Lifespan:  # fmt: skip
    """What the app opens when it starts and closes when it stops: the engine, the sessions, the
    hot-path reader, the figures read when scraped, the metrics port (if set), the purge of old
    idempotency keys, and the service's own lifespan inside them."""

    @asynccontextmanager
    async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
        await refuse_unmigrated(service, settings.database_url_for(service))
        engine = build_engine(settings.database_url_for(service), pool_size=settings.db_pool_size)
        app.state.engine = engine
        trace_engine(app, engine)
        app.state.sessionmaker = build_sessionmaker(engine)
        # Work committed in parts draws on a pool of its own: it never waits for a connection
        # that the requests waiting on it hold, and its parts wait their turn there.
        units = engine
        if not is_sqlite(str(engine.url)):
            units = build_engine(settings.database_url_for(service),
                                 pool_size=settings.db_units_pool_size,
                                 pool_timeout=UNITS_WAIT_SECONDS)  # fmt: skip
        app.state.units_engine = units
        app.state.units_sessionmaker = build_sessionmaker(units)
        app.state.reader = Reader(engine)
        _tune_garbage_collector(settings.gc_gen0_threshold)
        tables, schema = metadata.tables, metadata.schema
        scraped = read_when_scraped(
            metrics, engine, outbox=tables.get(f"{schema}.outbox"),
            dead_after=OUTBOX_MAX_ATTEMPTS, endpoints=tables.get(f"{schema}.webhook_endpoints"),
        )  # fmt: skip
        metrics_server = serve_metrics_port(settings.metrics_port, metrics)
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
            if metrics_server is not None:
                metrics_server.shutdown()
                metrics_server.server_close()
            for collector in scraped:
                metrics.forget(collector)
            forget_worker()
            if units is not engine:
                await units.dispose()
            await engine.dispose()
            await stop_tracing(app)

    return _lifespan


def _add_middleware(app: FastAPI, service: str, settings: Settings, metrics: Metrics) -> None:
    """The rate limits inside the request context (ids, headers, body checks, error mapping)."""
    rate_limits = RateLimits(
        service,
        caller=settings.rate_limit,
        anonymous=settings.rate_limit_anonymous,
        service_tier=settings.rate_limit_service,
        redis_url=settings.redis_url,
    )
    app.state.rate_limits = rate_limits
    # Added first, so it runs inside RequestContextMiddleware: a 429 carries the request id and
    # the security headers, and is counted in the metrics.
    app.add_middleware(RateLimitMiddleware, limits=rate_limits, tokens=app.state.tokens)
    app.add_middleware(
        RequestContextMiddleware,
        metrics=metrics,
        max_body_bytes=settings.max_body_bytes,
        retry_after_seconds=settings.unavailable_retry_after_seconds,
    )


def _add_docs(app: FastAPI, title: str) -> None:
    """Swagger UI at `/docs`, its script and styles served from the `swagger-ui-bundle-v2`
    package (no CDN: the page works offline and under a strict content security policy)."""
    app.mount(DOCS_ASSETS, StaticFiles(directory=swagger_ui_path), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json", title=f"{title} — API",
            swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS}/favicon-32x32.png",
            oauth2_redirect_url="/docs/oauth2-redirect",
            swagger_ui_parameters={"persistAuthorization": True},
        )  # fmt: skip

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    async def oauth2_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()


def _operation_id(route: APIRoute) -> str:
    return route.name


def _declare_bearer_tokens(schema: dict[str, Any]) -> None:
    """The bearer JWT every `/v1` route needs, as a security scheme (so `/docs` has its Authorize
    button and a generated client its token)."""
    components = schema.setdefault("components", {})
    components.setdefault("securitySchemes", {})["bearerAuth"] = {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "an HS256 JWT with `sub`, `role`, `exp` (and `party_id` for a "
        "policyholder or a bank); `tci token` mints one in development",
    }
    for path, operations in schema.get("paths", {}).items():
        if path.startswith("/v1/") or path == "/metrics":
            for operation in operations.values():
                if isinstance(operation, dict):
                    operation["security"] = [{"bearerAuth": []}]


def _declare_everywhere(app: FastAPI, service: str, *statuses: int) -> None:
    """Declare the answers the shared checks give on any route, in every operation's OpenAPI
    responses as problem+json, where a route has not declared them itself: 413 (the body cap,
    read before any route, so a body sent to a route that takes none is refused the same), 422
    (the app-wide parameter check: any query parameter, declared or not, must be storable
    text), 429 (the rate limit) and 503 (the database or a peer unreachable); then every
    problem+json answer lists the problem types of the catalogue its status carries here."""
    declared = problem_responses(*statuses, service=service)
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            # What a route's dependencies can answer, wherever it takes them: a command (the
            # Idempotency-Key honoured) 409 `idempotency-key-in-use`; a route calling a peer
            # 502 `upstream-error` (shared.peers: any answer but 429, 503, 504).
            commands = routes_depending_on(app, get_command)
            by_dependency = {
                409: commands,
                502: routes_depending_on(app, get_peers),
            }
            for path, operations in schema.get("paths", {}).items():
                for method, operation in operations.items():
                    if isinstance(operation, dict) and "responses" in operation:
                        answers = dict(declared)
                        for dependent_status, routes in by_dependency.items():
                            if (method, path) in routes:
                                answers.update(problem_responses(dependent_status, service=service))
                        for status, answer in answers.items():
                            operation["responses"].setdefault(str(status), copy.deepcopy(answer))
            describe_problems(schema, service)
            _declare_bearer_tokens(schema)
            _declare_headers(schema, commands)
            _declare_components(schema)
            only_declared_webhook_answers(schema)
        return app.openapi_schema or generate()

    app.openapi = openapi  # type: ignore[method-assign]


def _declare_components(schema: dict[str, Any]) -> None:
    """The named schemas the document refers to but pydantic does not emit (the problem shapes,
    the enums marked by `shared.contracts.named_enum`, countries and currencies), and uploads
    declared as `format: binary`."""
    named = refer_to_components(schema)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.update(named)
    components.update(problem_components())
    for component in components.values():
        for prop in component.get("properties", {}).values():
            for variant in (prop, *prop.get("anyOf", ()), prop.get("items", {})):
                if variant.get("contentMediaType") == "application/octet-stream":
                    del variant["contentMediaType"]
                    variant["format"] = "binary"


def routes_depending_on(app: FastAPI, call: Callable[..., Any]) -> set[tuple[str, str]]:
    """The (method, path) of every route of `app` whose dependencies include `call`, as the
    OpenAPI document names them (`post`, `/v1/cases`)."""
    return {
        (method.lower(), str(context.path_format))
        for context in iter_route_contexts(app.routes)
        if isinstance(context.original_route, APIRoute)
        and _depends_on(context.original_route.dependant, call)
        for method in context.methods or ()
    }


def _depends_on(dependant: Dependant, call: Callable[..., Any]) -> bool:
    return any(d.call is call or _depends_on(d, call) for d in dependant.dependencies)


def _declare_headers(schema: dict[str, Any], commands: set[tuple[str, str]]) -> None:
    """The headers every answer carries (`X-Request-ID`; `Retry-After` on 429 and 503, and on a
    command's 409, `idempotency-key-in-use` telling when to ask again) and, on a command (a
    route honouring an Idempotency-Key: it runs through `CommandDep`), the optional
    `Idempotency-Key` and the `Idempotent-Replayed` of a replayed answer, so a generated client
    can read and send them."""
    text = {"type": "string"}
    retry_after = {"schema": {"type": "integer"}, "description": "seconds to wait"}
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            if not isinstance(operation, dict):
                continue
            command = (method, path) in commands
            if command:
                operation.setdefault("parameters", []).append({
                    "name": IDEMPOTENCY_HEADER, "in": "header", "required": False,
                    "schema": {**text, "minLength": 1, "maxLength": MAX_KEY_LENGTH},
                    "description": "a retry with the same key, caller and body returns the "
                    "first answer (kept at least 24 hours)"})  # fmt: skip
            for status, answer in operation.get("responses", {}).items():
                headers = answer.setdefault("headers", {})
                headers["X-Request-ID"] = {"schema": text, "description": "quote it to support"}
                if status in ("429", "503") or (command and status == "409"):
                    headers["Retry-After"] = dict(retry_after)
                if command and status.startswith("2"):
                    headers[REPLAYED_HEADER] = {"schema": {"type": "string", "enum": ["true"]},
                                                "description": "the answer is a replay"}  # fmt: skip


class Health(Schema):
    status: str = Field(description="`ok`: the process is alive", examples=["ok"])


# The Prometheus text format, as a generated client reads it: text.
METRICS_ANSWER = {"description": "the metrics in the Prometheus text format",
                  "content": {"text/plain": {"schema": {"type": "string"}}}}  # fmt: skip


def _add_probes(app: FastAPI, metrics: Metrics) -> None:
    @app.get("/healthz", tags=["operations"], response_model=Health)
    async def healthz() -> Response:
        """The process is alive."""
        return Response(b'{"status":"ok"}', media_type="application/json")

    @app.get(
        "/readyz",
        tags=["operations"],
        responses=problem_responses(503),
    )
    async def readyz(request: Request, session: SessionDep) -> Response:
        """The database answers."""
        try:
            await session.execute(text("SELECT 1"))
        except Exception as exc:
            log.warning("readiness check failed: %s", type(exc).__name__)
            problem = Problem(SERVICE_UNAVAILABLE, "the database does not answer")
            body = json.dumps(problem.body(request.url.path))
            return Response(body, status_code=503, media_type=PROBLEM_JSON)
        return Response(b'{"status":"ready"}', media_type="application/json")

    @app.get(
        "/metrics",
        tags=["operations"],
        response_class=Response,
        dependencies=[Depends(require())],
        responses={200: METRICS_ANSWER, **problem_responses(401, 403)},
    )
    async def prometheus_metrics() -> Response:
        """Request counts and latency, business counters, outbox and webhook deliveries and
        backlog, the connection pool and the process, in the Prometheus text format; only for a
        `service` token (and without one on `TCI_METRICS_PORT`, when that is set)."""
        # Rendered off the event loop: the figures read from the database run on the loop.
        body = await asyncio.to_thread(generate_latest, metrics.exposed())
        return Response(body, media_type=CONTENT_TYPE_LATEST)
