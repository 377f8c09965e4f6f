"""Settings from the environment, read when an app or command is built, never at import."""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Mapping
from typing import Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEVELOPMENT_JWT_SECRET = "development-only-secret-do-not-use-in-production-0123456789"
DEFAULT_OUTBOX_LEASE_SECONDS = 60.0
SERVICE_PORTS = {"underwriting": 8001, "claims": 8002, "collections": 8003}


def default_database_url(service: str) -> str:
    """The embedded default: one SQLite file per service under ./var/."""
    return f"sqlite+aiosqlite:///./var/{service}.db"


IN_MEMORY = ":memory:"


def sqlite_file(url: str) -> str | None:
    """The file a SQLite URL names (its real path), `IN_MEMORY` for an in-memory database, None
    for another engine's URL."""
    from sqlalchemy.engine import make_url

    parsed = make_url(async_database_url(url))
    if parsed.get_backend_name() != "sqlite":
        return None
    path = parsed.database or ""
    if path in ("", IN_MEMORY) or parsed.query.get("mode") == "memory":
        return IN_MEMORY
    return os.path.realpath(path.removeprefix("file:"))


def shared_database_refusal(urls: Mapping[str, str]) -> str | None:
    """Why the services cannot each run on the database URL given for it (None: they can). On
    SQLite the services' schemas are mapped away: two services in one file would share one
    Alembic version table and their tables of the same name (`events`, `outbox`, …). An
    in-memory database lives and dies with one connection of one process: nothing migrated
    there outlives the migration."""
    files: dict[str, list[str]] = {}
    for service, url in urls.items():
        path = sqlite_file(url)
        if path == IN_MEMORY:
            return (
                f"{service}: the database URL names an in-memory SQLite database, which lives "
                "only as long as one connection: migrated, it is gone before the service opens "
                "it; give each service a SQLite file (leave DATABASE_URL unset: "
                "./var/<service>.db) or a PostgreSQL database"
            )
        if path is not None:
            files.setdefault(path, []).append(service)
    for path, services in files.items():
        if len(services) > 1:
            variables = ", ".join(f"TCI_{s.upper()}_DATABASE_URL" for s in services)
            return (
                f"{_listed(services)} would share one SQLite file ({path}): on SQLite each "
                "service needs a file of its own (their version tables and tables of the same "
                "name collide); leave DATABASE_URL unset (./var/<service>.db each), set "
                f"{variables} to a file each, or use PostgreSQL (one database, a schema per "
                "service)"
            )
    return None


def _listed(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def async_database_url(url: str) -> str:
    """A plain `postgresql://` or `sqlite://` URL with the async driver this project uses."""
    for plain, driver in (
        ("postgresql://", "postgresql+asyncpg://"),
        ("postgres://", "postgresql+asyncpg://"),
        ("postgresql+psycopg2://", "postgresql+asyncpg://"),
        ("postgresql+psycopg://", "postgresql+asyncpg://"),
        ("sqlite://", "sqlite+aiosqlite://"),
    ):
        if url.startswith(plain):
            return driver + url[len(plain) :]
    return url


# The drivers the services run on, once `async_database_url` has given a plain URL its driver.
SUPPORTED_DRIVERS = frozenset({"postgresql+asyncpg", "sqlite+aiosqlite"})
SUPPORTED_DATABASES = "postgresql://user@host/database or sqlite:///path/to/file.db"


def database_url_refusal(url: str) -> str | None:
    """Why the services cannot run on `url` (None: they can): it is not a URL at all, or it
    names a database other than PostgreSQL or SQLite. The URL itself is not quoted (it may carry
    a password)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(async_database_url(url))
    except (ArgumentError, ValueError):
        return f"is not a database URL; the services run on {SUPPORTED_DATABASES}"
    if parsed.drivername not in SUPPORTED_DRIVERS:
        return (
            f"is a {parsed.drivername}:// URL; the services run on PostgreSQL or SQLite only "
            f"({SUPPORTED_DATABASES})"
        )
    return None


def masked_url(url: str) -> str:
    """A database URL fit to print or log: its password, if any, replaced by `***`."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):  # not a URL SQLAlchemy reads: mask what looks like one
        return re.sub(r"(://[^/@:]*:)[^/@]*@", r"\1***@", url)


def settings_refusal(exc: ValidationError) -> str:
    """A settings class's refusal in one line, each reason after the setting it is about."""
    reasons = []
    for error in exc.errors():
        message = str(error.get("msg", "")).removeprefix("Value error, ")
        where = ".".join(str(part) for part in error.get("loc", ()))
        reasons.append(f"{where}: {message}" if where else message)
    return "; ".join(reasons)


def _rate_limit_refusal(value: str) -> str | None:
    from limits import parse_many

    if not value.strip():
        return None
    try:
        parse_many(value)
    except ValueError:
        return (
            f"{value!r} is not a list of rates in the `limits` notation "
            '(e.g. "100/second;3000/minute"; empty: off)'
        )
    return None


class Settings(BaseSettings):
    """What every service reads from its environment."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    environment: str = Field(
        "development",
        alias="TCI_ENV",
        description="`development` or anything else (e.g. `production`): outside development the placeholder JWT secret is refused",
    )
    database_url: str | None = Field(
        None,
        alias="DATABASE_URL",
        description="the service's database (`postgresql://…` or `sqlite:///…`); unset: `sqlite:///./var/<service>.db`",
    )
    jwt_secret: str = Field(
        DEVELOPMENT_JWT_SECRET,
        alias="TCI_JWT_SECRET",
        description="the HS256 secret bearer tokens are signed with (and, through a key derived from it, list cursors: a change makes cursors given out before a 422), at least 32 bytes; the default is for development only",
    )
    jwt_leeway_seconds: int = Field(
        30,
        alias="TCI_JWT_LEEWAY_SECONDS",
        description="clock skew allowed when checking a token's `exp`, `iat` and `nbf`",
    )
    # A token whose `exp` lies further ahead than this is refused (401); `tci token` mints no more.
    max_token_ttl_seconds: int = Field(86_400, alias="TCI_MAX_TOKEN_TTL_SECONDS", ge=1)
    business_tz: str = Field(
        "Asia/Shanghai",
        alias="TCI_BUSINESS_TZ",
        description='the business time zone: what day "today" is (deadlines, lapses, escalations)',
    )
    underwriting_url: str = Field(
        "http://127.0.0.1:8001",
        alias="TCI_UNDERWRITING_URL",
        description="where the other services reach underwriting",
    )
    claims_url: str = Field(
        "http://127.0.0.1:8002",
        alias="TCI_CLAIMS_URL",
        description="where the other services reach claims",
    )
    collections_url: str = Field(
        "http://127.0.0.1:8003",
        alias="TCI_COLLECTIONS_URL",
        description="where the other services reach collections",
    )
    gc_gen0_threshold: int = Field(
        50_000,
        alias="TCI_GC_GEN0_THRESHOLD",
        description="the garbage collector's first-generation threshold (higher: fewer collections in large requests)",
        ge=1,
    )
    db_pool_size: int = Field(
        20, alias="TCI_DB_POOL_SIZE", description="database connections pooled per process", ge=1
    )
    db_units_pool_size: int = Field(
        4,
        alias="TCI_DB_UNITS_POOL_SIZE",
        description="database connections pooled apart for work committed in parts (a country's "
        "re-grade), its parts running at once on them (PostgreSQL)",
        ge=1,
    )
    max_body_bytes: int = Field(
        16 * 1024 * 1024,
        alias="TCI_MAX_BODY_BYTES",
        description="the largest request body accepted (413 above)",
    )
    idempotency_retention_hours: int = Field(
        48,
        alias="TCI_IDEMPOTENCY_RETENTION_HOURS",
        description="how long an `Idempotency-Key` and its answer are kept",
    )
    idempotency_purge_minutes: int = Field(
        60,
        alias="TCI_IDEMPOTENCY_PURGE_MINUTES",
        description="how often expired idempotency keys are purged",
        ge=1,
    )
    idempotency_wait_ms: int = Field(
        20,
        alias="TCI_IDEMPOTENCY_WAIT_MS",
        description="how long a retry waits for the first request with the same key to finish before answering 409",
    )
    # SQLite: how long a claimed key whose request has not finished answers its twins 409; the
    # key of a request that died is free again after this (longer than any request takes).
    idempotency_claim_seconds: float = Field(60.0, alias="TCI_IDEMPOTENCY_CLAIM_SECONDS", gt=0)
    # How long a delivery run holds the outbox messages it took (renewed after each message): a
    # replica that dies mid-batch leaves them to the others after this.
    outbox_lease_seconds: float = Field(
        DEFAULT_OUTBOX_LEASE_SECONDS, alias="TCI_OUTBOX_LEASE_SECONDS", gt=0
    )
    http_timeout_seconds: float = Field(
        10.0,
        alias="TCI_HTTP_TIMEOUT_SECONDS",
        description="timeout of a call to another service, its retries included",
        gt=0,
    )
    outbox_answer_wait_seconds: float = Field(
        2.0,
        alias="TCI_OUTBOX_ANSWER_WAIT_SECONDS",
        description="how long an answer waits, after its commit, for the messages its change "
        "put in the outbox to be delivered (a replay of its Idempotency-Key too); what is not "
        "delivered by then is left to the background delivery",
        gt=0,
    )
    log_level: str = Field(
        "INFO",
        alias="TCI_LOG_LEVEL",
        description="the log level (`DEBUG`, `INFO`, `WARNING`, `ERROR`)",
    )
    log_format: Literal["text", "json"] = Field(
        "text",
        alias="TCI_LOG_FORMAT",
        description="`text` (one readable line) or `json` (one object a line: time, level, service, request id, trace and span ids, message)",
    )
    otel_endpoint: str = Field(
        "",
        alias="TCI_OTEL_ENDPOINT",
        description="the OTLP/HTTP traces URL spans are exported to (e.g. `http://collector:4318/v1/traces`); empty: tracing off",
    )
    otel_service_name: str = Field(
        "",
        alias="TCI_OTEL_SERVICE_NAME",
        description="the `service.name` of this service's spans; empty: the service's own name",
    )
    # Rate limits per caller (a token's subject; the client address without a valid token), in
    # the `limits` notation ("100/second;3000/minute"); an empty string switches a tier off. Our
    # own services' calls (the `service` role) have their own tier, off by default. Counted per
    # process, or across every replica in Redis when TCI_REDIS_URL is set.
    rate_limit: str = Field("100/second;3000/minute", alias="TCI_RATE_LIMIT")
    rate_limit_anonymous: str = Field(
        "50/second;1000/minute",
        alias="TCI_RATE_LIMIT_ANONYMOUS",
        description="rate limits per client address for requests without a valid token (empty: off)",
    )
    rate_limit_service: str = Field(
        "",
        alias="TCI_RATE_LIMIT_SERVICE",
        description="rate limits for our own services' calls (the `service` role; empty: off)",
    )
    redis_url: str | None = Field(
        None,
        alias="TCI_REDIS_URL",
        description="Redis for the rate-limit counters shared by every replica; unset: counted per process",
    )
    # Retry-After (seconds) on a 503 when the database or a peer service cannot be reached.
    unavailable_retry_after_seconds: int = Field(
        5, alias="TCI_UNAVAILABLE_RETRY_AFTER_SECONDS", ge=1
    )
    # When set, /metrics is also served on this port (no token: keep the port inside the
    # cluster); on the service's own port it always needs a `service` token.
    metrics_port: int | None = Field(None, alias="TCI_METRICS_PORT", ge=1, le=65535)
    # Pins "today" for demonstrations and tests; unset in production.
    fixed_today: dt.date | None = Field(None, alias="TCI_FIXED_TODAY")
    # Webhooks (api.md, "Events and webhooks"). A failed delivery is retried after about
    # base × 2^(attempt-1) seconds (with jitter, at most the max backoff) until the retry span has
    # passed since the head event first failed; then the endpoint is marked `failing`. The span's
    # default keeps trying for three days (at least 24 hours, api.md).
    webhook_retry_base_seconds: float = Field(5.0, alias="TCI_WEBHOOK_RETRY_BASE_SECONDS", gt=0)
    webhook_max_backoff_seconds: float = Field(
        3600.0,
        alias="TCI_WEBHOOK_MAX_BACKOFF_SECONDS",
        description="the longest wait between two delivery attempts to a webhook endpoint",
        gt=0,
    )
    webhook_retry_span_seconds: float = Field(
        3 * 86_400.0,
        alias="TCI_WEBHOOK_RETRY_SPAN_SECONDS",
        description="how long a failing webhook delivery is retried before the endpoint is marked `failing`",
        gt=0,
    )
    # One POST to a receiver: connect, send and read its answer within this.
    webhook_timeout_seconds: float = Field(10.0, alias="TCI_WEBHOOK_TIMEOUT_SECONDS", gt=0)
    # How long a dispatcher holds an endpoint it claimed (renewed after each event): a replica
    # that dies leaves the endpoint to the others after this. Longer than one POST may take.
    webhook_lease_seconds: float = Field(60.0, alias="TCI_WEBHOOK_LEASE_SECONDS", gt=0)
    # Endpoints one dispatcher run claims (and serves side by side), and events read at a time.
    webhook_batch_size: int = Field(10, alias="TCI_WEBHOOK_BATCH_SIZE", ge=1, le=1000)
    # How often a dispatcher looks for endpoints with events to deliver.
    webhook_poll_seconds: float = Field(1.0, alias="TCI_WEBHOOK_POLL_SECONDS", gt=0)

    @field_validator("database_url")
    @classmethod
    def _refuse_unsupported_database(cls, value: str | None) -> str | None:
        refusal = database_url_refusal(value) if value else None  # empty: the default
        if refusal is not None:
            raise ValueError(f"the database URL {refusal}")
        return value

    @field_validator("rate_limit", "rate_limit_anonymous", "rate_limit_service")
    @classmethod
    def _refuse_unreadable_rates(cls, value: str) -> str:
        refusal = _rate_limit_refusal(value)
        if refusal is not None:
            raise ValueError(refusal)
        return value

    @model_validator(mode="after")
    def _refuse_placeholder_secret(self) -> Settings:
        if self.environment != "development" and self.jwt_secret == DEVELOPMENT_JWT_SECRET:
            raise ValueError("TCI_JWT_SECRET must be set outside development")
        if len(self.jwt_secret.encode()) < 32:
            raise ValueError("TCI_JWT_SECRET must be at least 32 bytes for HS256")
        if self.webhook_lease_seconds <= self.webhook_timeout_seconds:
            raise ValueError(
                "TCI_WEBHOOK_LEASE_SECONDS must be longer than TCI_WEBHOOK_TIMEOUT_SECONDS"
            )
        return self

    def today(self) -> dt.date:
        """Today in the business time zone (or the pinned date)."""
        from shared.calendar import today

        return self.fixed_today or today(self.business_tz)

    def database_url_for(self, service: str) -> str:
        return async_database_url(self.database_url or default_database_url(service))
