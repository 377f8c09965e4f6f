"""What `/metrics` tells: HTTP requests, business events counted once committed, outbox and
webhook deliveries, and gauges read when scraped (the outbox backlog, webhook endpoints, the
connection pool, the process).

Counters of business events are counted from the events a transaction committed
(`shared.events.observe_commits`): an event is written in the same transaction as the change it
announces, so what is counted is what happened. What no event announces (a limit request referred
to an underwriter) is counted with `count_at_commit`, when its transaction commits.

With several worker processes (`PROMETHEUS_MULTIPROC_DIR` set) every worker writes its figures to
that directory and a scrape sums them; what is read from the database at scrape time is read once,
by the worker answering the scrape; the pool's gauges are kept by each worker as its connections
come and go and summed over the live workers. The process collector describes one process only
and is left out then.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import threading
from collections import Counter as Tally
from collections.abc import Iterable, Iterator, Mapping, Sequence
from decimal import Decimal
from typing import Any

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    multiprocess,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Table, case, event, func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import Session, SessionTransaction
from sqlalchemy.pool import QueuePool

from shared.db import utcnow
from shared.events import Committed, observe_commits

log = logging.getLogger("tci.metrics")

# Set (to an empty directory) when several worker processes serve one service: each writes its
# figures there and a scrape sums them (prometheus_client's multiprocess mode).
MULTIPROCESS_DIRECTORY = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
# A scrape waits this long for the database's figures, then answers without them (Prometheus'
# own scrape timeout is 10 s by default).
SCRAPE_QUERY_SECONDS = 5.0
WEBHOOK_STATUSES = ("active", "failing", "disabled")

# ---------------------------------------------------------------- business (counted at commit)

LIMIT_DECISIONS = Counter(
    "tci_limit_decisions_total",
    "Credit-limit requests decided (approved, partially_approved, refused) or referred, by the "
    "engine or an underwriter",
    ["outcome", "decided_by"],
    registry=None,
)
COVERAGE_CHECKS = Counter(
    "tci_coverage_checks_total",
    "Coverage checks answered (mode single or batch; outcome covered, partially_covered, "
    "not_covered, or error for a batch item answered with a problem)",
    ["mode", "outcome"],
    registry=None,
)
COVERAGE_REASONS = Counter(
    "tci_coverage_check_reasons_total",
    "Reason codes given in coverage answers (an answer may give several)",
    ["mode", "reason"],
    registry=None,
)
CLAIMS_FILED = Counter("tci_claims_filed_total", "Claims filed", ["cause"], registry=None)
CLAIM_DECISIONS = Counter(
    "tci_claim_decisions_total",
    "Claims decided, each once, by the decision taken on it: approved, or rejected without an "
    "approval (an approved claim rejected afterwards, nothing being payable on it, is counted "
    "in tci_claim_approvals_withdrawn_total, not again here)",
    ["outcome"],
    registry=None,
)
APPROVALS_WITHDRAWN = Counter(
    "tci_claim_approvals_withdrawn_total",
    "Approved claims rejected afterwards because nothing can be paid on them (the buyer or its "
    "country sanctioned since the approval, or the indemnity nil once recoveries count): each "
    "was counted approved in tci_claim_decisions_total when it was approved",
    registry=None,
)
CLAIMS_PAID = Counter("tci_claims_paid_total", "Claims paid", ["currency"], registry=None)
INDEMNITY_PAID = Counter(
    "tci_claim_indemnity_paid_total",
    "Indemnity paid on claims, in units of the currency (a float: for charts, not accounts)",
    ["currency"],
    registry=None,
)
ESCALATIONS = Counter(
    "tci_collection_escalations_total",
    "Collection cases moved up their escalation ladder, by ladder and the stage reached",
    ["ladder", "stage"],
    registry=None,
)

# ---------------------------------------------------------------- every service

EVENTS = Counter(
    "tci_events_total", "Events committed (the feed's and webhooks' events), by type",
    ["service", "type"], registry=None,
)  # fmt: skip
OUTBOX_ATTEMPTS = Counter(
    "tci_outbox_delivery_attempts_total",
    "Outbox messages sent to another service, by outcome: delivered, failed (retried later) or "
    "given_up (the last attempt allowed failed: the message waits for an operator)",
    ["service", "target", "outcome"],
    registry=None,
)
WEBHOOK_ATTEMPTS = Counter(
    "tci_webhook_delivery_attempts_total",
    "Webhook deliveries attempted, by outcome: delivered, failed (retried later), given_up (the "
    "retry span passed: the endpoint is now failing) or gone (410: the endpoint is disabled)",
    ["service", "outcome"],
    registry=None,
)

BY_SERVICE: Mapping[str, tuple[Collector, ...]] = {
    "underwriting": (LIMIT_DECISIONS, COVERAGE_CHECKS, COVERAGE_REASONS),
    "claims": (CLAIMS_FILED, CLAIM_DECISIONS, APPROVALS_WITHDRAWN, CLAIMS_PAID, INDEMNITY_PAID),
    "collections": (ESCALATIONS,),
}
EVERY_SERVICE: tuple[Collector, ...] = (EVENTS, OUTBOX_ATTEMPTS, WEBHOOK_ATTEMPTS)

# ---------------------------------------------------------------- the pool

POOL_GAUGES = {
    "tci_db_pool_size": "Connections the pool keeps open (with several workers: their sum)",
    "tci_db_pool_checked_out_connections": "Pooled connections in use",
    "tci_db_pool_checked_in_connections": "Pooled connections idle",
    "tci_db_pool_overflow_connections": "Connections open beyond the pool's size",
}
# Only with several workers (see `track_pool`); alone, a process's pool is read when scraped.
_WORKER_POOL_GAUGES = [
    Gauge(name, text, ["service"], registry=None, multiprocess_mode="livesum")
    for name, text in POOL_GAUGES.items()
]


def multiprocess_directory() -> str | None:
    return os.environ.get(MULTIPROCESS_DIRECTORY) or None


class Metrics:
    """One service's metrics: its registry (HTTP requests and latency, its business counters,
    the process) and what a scrape reads."""

    def __init__(self, service: str) -> None:
        self.service = service
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
        self.directory = multiprocess_directory()
        if self.directory is None:
            for collector in (*BY_SERVICE.get(service, ()), *EVERY_SERVICE, PROCESS_COLLECTOR,
                              PLATFORM_COLLECTOR, GC_COLLECTOR):  # fmt: skip
                self.registry.register(collector)
            self._exposed = self.registry
        else:  # every worker's figures, summed from their files
            self._exposed = CollectorRegistry()
            multiprocess.MultiProcessCollector(self._exposed, path=self.directory)  # type: ignore[no-untyped-call]

    def exposed(self) -> CollectorRegistry:
        """What a scrape reads: this process's registry, or with several worker processes every
        worker's figures summed from their files; with the gauges read when scraped."""
        return self._exposed

    def read_when_scraped(self, collector: Collector) -> None:
        self._exposed.register(collector)

    def forget(self, collector: Collector) -> None:
        self._exposed.unregister(collector)


def serve_metrics_port(port: int | None, metrics: Metrics) -> Any:
    """`/metrics` on its own port when `TCI_METRICS_PORT` is set. With several workers the first
    to bind it serves every worker's figures (multiprocess mode); the others leave it to it."""
    if port is None:
        return None
    try:
        server, _ = start_http_server(port, registry=metrics.exposed())
    except OSError as exc:
        if not multiprocess_directory():
            raise
        log.info("metrics port %s already served by another worker (%s)", port, exc.strerror)
        return None
    return server


# ---------------------------------------------------------------- counting at commit


def _count_committed(committed: Sequence[Committed]) -> None:
    for written in committed:
        EVENTS.labels(written.service, written.type).inc(written.count)
        data = written.data
        if data is None:
            continue
        if written.type == "limit_request.decided":
            LIMIT_DECISIONS.labels(data["status"], data["decided_by"]).inc()
        elif written.type == "claim.status_changed":
            if data.get("previous_status") is None:
                CLAIMS_FILED.labels(data["cause"]).inc()
            elif data["status"] == "rejected" and data["previous_status"] == "approved":
                APPROVALS_WITHDRAWN.inc()  # its decision was counted when it was approved
            elif data["status"] in ("approved", "rejected"):
                CLAIM_DECISIONS.labels(data["status"]).inc()
        elif written.type == "claim.paid":
            currency = data["amount"]["currency"]
            CLAIMS_PAID.labels(currency).inc()
            INDEMNITY_PAID.labels(currency).inc(float(Decimal(data["amount"]["amount"])))
        elif written.type == "case.stage_changed":
            previous = data.get("previous_stage")
            if previous is not None and data["stage"] != previous:
                ESCALATIONS.labels(data["ladder"], data["stage"]).inc()


observe_commits(_count_committed)

_AT_COMMIT = "tci.metrics_at_commit"


def count_at_commit(session: AsyncSession, counter: Any, amount: float = 1) -> None:
    """Increment `counter` (a labelled child) by `amount` once the session's transaction has
    committed; never if it rolls back."""
    session.sync_session.info.setdefault(_AT_COMMIT, []).append((counter, amount))


@event.listens_for(Session, "after_commit")
def _count_at_commit(session: Session) -> None:
    for counter, amount in session.info.pop(_AT_COMMIT, ()):
        counter.inc(amount)


@event.listens_for(Session, "after_transaction_end")
def _forget_counts(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        session.info.pop(_AT_COMMIT, None)


def count_coverage(mode: str, answers: Iterable[Mapping[str, Any]]) -> None:
    """Coverage answers (`coverage_json`'s, or a batch item's `error`) by outcome and reason."""
    outcomes: Tally[str] = Tally()
    reasons: Tally[str] = Tally()
    for answer in answers:
        if "error" in answer:
            outcomes["error"] += 1
            continue
        if answer["fully_covered"]:
            outcomes["covered"] += 1
        elif answer["covered"]:
            outcomes["partially_covered"] += 1
        else:
            outcomes["not_covered"] += 1
        if answer["reasons"]:  # most answers have none
            reasons.update(answer["reasons"])
    for outcome, count in outcomes.items():
        COVERAGE_CHECKS.labels(mode, outcome).inc(count)
    for reason, count in reasons.items():
        COVERAGE_REASONS.labels(mode, reason).inc(count)


def count_outbox_attempt(service: str, target: str, outcome: str) -> None:
    OUTBOX_ATTEMPTS.labels(service, target, outcome).inc()


def count_webhook_attempt(service: str, outcome: str) -> None:
    WEBHOOK_ATTEMPTS.labels(service, outcome).inc()


# ---------------------------------------------------------------- read when scraped


class BacklogCollector:
    """The outbox backlog and the webhook endpoints by status, counted in the database when
    scraped (by whichever worker answers: the figures are the database's, not a worker's).

    prometheus_client collects synchronously: the count runs on the app's event loop, waited for
    from the scraping thread (`/metrics` renders in a worker thread, the metrics port serves from
    its own). If the database does not answer within `SCRAPE_QUERY_SECONDS` the scrape goes on
    without these gauges."""

    def __init__(
        self, service: str, engine: AsyncEngine, loop: asyncio.AbstractEventLoop, *,
        outbox: Table | None, dead_after: int, endpoints: Table | None,
    ) -> None:  # fmt: skip
        self.service, self.engine, self.loop = service, engine, loop
        self.outbox, self.dead_after, self.endpoints = outbox, dead_after, endpoints
        self.loop_thread = threading.get_ident()  # built in the lifespan, on the loop's thread

    def describe(self) -> Iterator[Metric]:
        yield from self._families()

    def _families(self) -> tuple[GaugeMetricFamily, ...]:
        families = []
        if self.outbox is not None:
            families += [
                GaugeMetricFamily("tci_outbox_pending_messages", "Outbox messages not yet "
                                  "delivered and still retried", labels=["service"]),
                GaugeMetricFamily("tci_outbox_dead_messages", "Outbox messages given up after "
                                  "the last attempt allowed, left for an operator",
                                  labels=["service"]),
                GaugeMetricFamily("tci_outbox_oldest_pending_age_seconds", "Age of the oldest "
                                  "pending outbox message (0: none)", labels=["service"]),
            ]  # fmt: skip
        if self.endpoints is not None:
            families.append(GaugeMetricFamily(
                "tci_webhook_endpoints", "Webhook endpoints by status", labels=["service", "status"]
            ))  # fmt: skip
        return tuple(families)

    def collect(self) -> Iterator[Metric]:
        if threading.get_ident() == self.loop_thread:  # it would wait on itself
            log.warning("metrics: the database's figures are not read on the event loop's thread")
            return
        future = asyncio.run_coroutine_threadsafe(self._read(), self.loop)
        try:
            outbox, endpoints = future.result(SCRAPE_QUERY_SECONDS)
        except Exception as exc:
            future.cancel()
            log.warning("metrics: the database's figures could not be read (%s)",
                        type(exc).__name__)  # fmt: skip
            return
        families = iter(self._families())
        if self.outbox is not None:
            pending, dead, oldest = outbox
            for value in (pending, dead, oldest):
                family = next(families)
                family.add_metric([self.service], value)
                yield family
        if self.endpoints is not None:
            family = next(families)
            for status in WEBHOOK_STATUSES:
                family.add_metric([self.service, status], endpoints.get(status, 0))
            yield family

    async def _read(self) -> tuple[tuple[int, int, float], dict[str, int]]:
        outbox: tuple[int, int, float] = (0, 0, 0.0)
        endpoints: dict[str, int] = {}
        async with self.engine.connect() as connection:
            if self.outbox is not None:
                table = self.outbox
                live = table.c.attempts < self.dead_after
                counted = select(
                    func.count(case((live, 1))),
                    func.count(case((~live, 1))),
                    func.min(case((live, table.c.created_at))),
                ).where(table.c.delivered_at.is_(None))
                row = (await connection.execute(counted)).one()
                oldest = _as_utc(row[2])
                age = 0.0 if oldest is None else max((utcnow() - oldest).total_seconds(), 0.0)
                outbox = (int(row[0]), int(row[1]), age)
            if self.endpoints is not None:
                status = self.endpoints.c.status
                rows = await connection.execute(select(status, func.count()).group_by(status))
                endpoints = {str(name): int(count) for name, count in rows.all()}
        return outbox, endpoints


def _as_utc(value: Any) -> dt.datetime | None:
    """`min()` over a `case` loses the column's type on some dialects: a naive or textual time
    is read as UTC, as the column stores it."""
    if value is None:
        return None
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if isinstance(value, dt.datetime) and value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    assert isinstance(value, dt.datetime)
    return value


class PoolCollector:
    """The connection pool as it is when scraped (one process: its own pool is the service's)."""

    def __init__(self, service: str, engine: AsyncEngine) -> None:
        self.service, self.pool = service, engine.sync_engine.pool

    def describe(self) -> Iterator[Metric]:
        for name, text in POOL_GAUGES.items():
            yield GaugeMetricFamily(name, text, labels=["service"])

    def collect(self) -> Iterator[Metric]:
        if not isinstance(self.pool, QueuePool):
            return
        values = _pool_values(self.pool, back=0)
        for (name, text), value in zip(POOL_GAUGES.items(), values, strict=True):
            family = GaugeMetricFamily(name, text, labels=["service"])
            family.add_metric([self.service], value)
            yield family


def _pool_values(pool: QueuePool, *, back: int) -> tuple[int, int, int, int]:
    """Size, checked out, checked in, overflow; `back` connections being returned (a checkin
    event comes before the connection is back in the pool)."""
    return (pool.size(), pool.checkedout() - back, pool.checkedin() + back,
            max(pool.overflow(), 0))  # fmt: skip


def track_pool(service: str, engine: AsyncEngine) -> None:
    """With several workers: this worker's pool mirrored into gauges summed over the live
    workers, set as connections are checked out and in (a scrape reaches one worker only)."""
    pool = engine.sync_engine.pool
    if not isinstance(pool, QueuePool):
        return
    gauges = [gauge.labels(service) for gauge in _WORKER_POOL_GAUGES]

    def mirror(back: int) -> None:
        for gauge, value in zip(gauges, _pool_values(pool, back=back), strict=True):
            gauge.set(value)

    mirror(0)
    event.listen(pool, "checkout", lambda *_: mirror(0))
    event.listen(pool, "checkin", lambda *_: mirror(1))


def forget_worker() -> None:
    """A worker that stops takes its pool out of the live workers' sums."""
    directory = multiprocess_directory()
    if directory is not None:
        multiprocess.mark_process_dead(os.getpid(), directory)  # type: ignore[no-untyped-call]


def read_when_scraped(
    metrics: Metrics, engine: AsyncEngine, *, outbox: Table | None, dead_after: int,
    endpoints: Table | None,
) -> list[Collector]:  # fmt: skip
    """Register what is read when scraped (called from the app's lifespan, on its event loop):
    the backlog, and the pool (read when scraped in one process, mirrored with several)."""
    service = metrics.service
    collectors: list[Collector] = [BacklogCollector(
        service, engine, asyncio.get_running_loop(), outbox=outbox, dead_after=dead_after,
        endpoints=endpoints)]  # fmt: skip
    if metrics.directory is None:
        collectors.append(PoolCollector(service, engine))
    else:
        track_pool(service, engine)
    for collector in collectors:
        metrics.read_when_scraped(collector)
    return collectors
