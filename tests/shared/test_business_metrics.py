"""`/metrics` tells what the business did (issue 13): the three services as real processes on a
database of their own, a real flow over HTTP (limit requests decided and referred, coverage
checks single and batch, a claim filed, approved and paid, a collection case escalated, webhooks
delivered, given up and gone), and each counter moved by exactly what happened; the outbox backlog
and the webhook endpoints as the database counts them; the pool and the process."""

from __future__ import annotations

import collections
import datetime as dt
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, func, select
from sqlalchemy.engine import Engine, make_url

from services.claims.models import events as claims_events
from services.claims.models import outbox as claims_outbox
from services.claims.models import webhooks as claims_webhooks
from services.collections.models import events as collections_events
from services.underwriting.models import events as underwriting_events
from shared.calendar import today as business_today
from shared.db import SERVICE_SCHEMAS
from shared.outbox import MAX_ATTEMPTS
from shared.settings import DEVELOPMENT_JWT_SECRET
from tests.builders import money
from tests.conftest import (
    ROOT,
    SERVICES,
    Running,
    Services,
    auth,
    backend,
    create_migrated_database,
    free_urls,
    start_services,
    unique,
)
from tests.e2e.test_services import approved_claim

pytestmark = pytest.mark.e2e

POOL_SIZE = 4
ENV = {
    "TCI_DB_POOL_SIZE": str(POOL_SIZE),
    # The outbox's loop runs at start only: every attempt in the test is one the test made.
    "TCI_OUTBOX_INTERVAL_SECONDS": "3600",
    # A webhook that fails twice is given up on (the second failure is past the span).
    "TCI_WEBHOOK_POLL_SECONDS": "0.05",
    "TCI_WEBHOOK_RETRY_BASE_SECONDS": "0.05",
    "TCI_WEBHOOK_MAX_BACKOFF_SECONDS": "0.05",
    "TCI_WEBHOOK_RETRY_SPAN_SECONDS": "0.01",
}
EVENTS = {"underwriting": underwriting_events, "claims": claims_events,
          "collections": collections_events}  # fmt: skip

Scrape = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str) -> Scrape:
    answer = httpx.get(f"{url}/metrics", headers=auth("service"), timeout=30)
    assert answer.status_code == 200, answer.text
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(answer.text)
            for sample in family.samples}  # fmt: skip


def value(scraped: Scrape, name: str, **labels: str) -> float:
    """The sum of the samples of `name` whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, have), v in scraped.items() if n == name and wanted <= have)


def moved(before: Scrape, after: Scrape, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


class Receiver:
    """A webhook receiver on loopback: `/ok` answers 200, `/gone` 410, `/broken` 500; it
    counts what each path was sent."""

    def __init__(self) -> None:
        self.posted: collections.Counter[str] = collections.Counter()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length", 0)))
                receiver.posted[self.path] += 1
                status = {"/ok": 200, "/gone": 410}.get(self.path, 500)
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class World:
    database: str
    urls: dict[str, str]
    running: Running
    engines: dict[str, Engine]
    receiver: Receiver

    @property
    def services(self) -> Services:
        return Services(self.urls)


def sync_engine(database: str, service: str) -> Engine:
    url = make_url(backend().url_for(database, service))
    if url.drivername.startswith("sqlite"):
        return create_engine(url.set(drivername="sqlite")).execution_options(
            schema_translate_map=dict.fromkeys(SERVICE_SCHEMAS)
        )
    return create_engine(url.set(drivername="postgresql+psycopg"))


@pytest.fixture
def world() -> Iterator[World]:
    b = backend()
    database = f"{b.main_database}_business_metrics"
    create_migrated_database(b, database)
    urls = free_urls()
    running = start_services(database, urls, env=ENV)
    engines = {s: sync_engine(database, s) for s in SERVICES}
    receiver = Receiver()
    try:
        yield World(database, urls, running, engines, receiver)
    finally:
        receiver.close()
        running.stop()
        for engine in engines.values():
            engine.dispose()
        b.drop_database(database)


def wait_for(condition: Callable[[], bool], what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def events_by_type(w: World, service: str) -> dict[str, int]:
    table = EVENTS[service].events
    with w.engines[service].connect() as connection:
        rows = connection.execute(select(table.c.type, func.count()).group_by(table.c.type))
        return {str(kind): int(count) for kind, count in rows.all()}


def outbox_counts(w: World) -> tuple[int, int]:
    """Claims' outbox as SQL counts it: pending (undelivered, still retried) and dead."""
    t = claims_outbox
    undelivered = select(func.count()).where(t.c.delivered_at.is_(None))
    with w.engines["claims"].connect() as connection:
        pending = connection.scalar(undelivered.where(t.c.attempts < MAX_ATTEMPTS))
        dead = connection.scalar(undelivered.where(t.c.attempts >= MAX_ATTEMPTS))
    return int(pending or 0), int(dead or 0)


def endpoint_statuses(w: World, service: str, tables: Any) -> dict[str, int]:
    table = tables.endpoints
    with w.engines[service].connect() as connection:
        rows = connection.execute(select(table.c.status, func.count()).group_by(table.c.status))
        return {str(status): int(count) for status, count in rows.all()}


def register_webhook(w: World, service: str, party: str, path: str, types: list[str]) -> str:
    answer = httpx.post(f"{w.urls[service]}/v1/webhook-endpoints", headers=auth("underwriter"),
                        json={"url": f"{w.receiver.url}{path}", "event_types": types,
                              "party_role": "policyholder", "party_id": party})  # fmt: skip
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def endpoint_status(w: World, service: str, endpoint_id: str) -> str:
    answer = httpx.get(f"{w.urls[service]}/v1/webhook-endpoints/{endpoint_id}",
                       headers=auth("underwriter"))  # fmt: skip
    return str(answer.json()["status"])


GOOD_INDICATORS = {
    "current_ratio": "2.5", "dso_days": "30", "dso_prior_year_days": "30", "overdue_ratio": "0",
    "litigation_count": 0, "management_changes_12m": 0, "equity": money("9000000"),
}  # fmt: skip


def case_of_claim(w: World, claim_id: str) -> dict[str, Any]:
    answer = httpx.get(f"{w.urls['collections']}/v1/cases?claim_id={claim_id}",
                       headers=auth("collector"))  # fmt: skip
    assert answer.status_code == 200, answer.text
    [case] = answer.json()["items"]
    return dict(case)


def days_to_next_rung(w: World, case: dict[str, Any]) -> int:
    """How many days on the case reaches the next rung of its ladder (`GET /v1/ladders`)."""
    answer = httpx.get(f"{w.urls['collections']}/v1/ladders", headers=auth("collector"))
    assert answer.status_code == 200, answer.text
    [rungs] = [ladder["rungs"] for ladder in answer.json()["items"]
               if ladder["name"] == case["ladder"]]  # fmt: skip
    reached = int(case["days_past_due"])
    return min(int(r["days_past_due"]) for r in rungs if r["days_past_due"] > reached) - reached


def decide_limits_and_check_coverage(w: World) -> tuple[str, list[dict[str, Any]], list[Any]]:
    """A policy and a buyer; limit requests approved and refused by the engine, one referred
    and partially approved by an underwriter; coverage checks single and batch. The
    policyholder, the single answers and the batch results."""
    holder, uw, bank = unique("ph"), auth("underwriter"), unique("bank")
    register_webhook(w, "underwriting", holder, "/ok", ["limit_request.decided"])
    with httpx.Client(base_url=w.urls["underwriting"], timeout=30) as client:
        policy = client.post("/v1/policies", headers=uw, json={
            "policyholder_id": holder, "currency": "EUR", "start_date": "2027-01-01",
            "end_date": "2027-12-31", "cover_type": "whole_turnover",
            "max_liability": money("5000000"), "premium_rate_pct": "0.5"}).json()  # fmt: skip
        buyer, related = (client.post("/v1/buyers", headers=uw, json={
            "name": name, "country": "DE", "registration_number": unique("HRB"),
            "indicators": GOOD_INDICATORS}).json() for name in ("Metrics GmbH", "Sister GmbH"))  # fmt: skip
        requests = f"/v1/policies/{policy['id']}/limit-requests"
        statuses = []
        for on, amount, is_related in ((buyer, "50000", False), (related, "40000", True),
                                       (buyer, "4000000", False)):  # fmt: skip
            answer = client.post(requests, headers=auth("policyholder", holder), json={
                "buyer_id": on["id"], "amount": money(amount), "payment_terms_days": 60,
                "related_to_policyholder": is_related})  # fmt: skip
            assert answer.status_code == 201, answer.text
            statuses.append(answer.json()["status"])
            referred = answer.json()["id"]
        assert statuses == ["approved", "refused", "referred"]
        decided = client.post(f"/v1/limit-requests/{referred}/decision", headers=uw, json={
            "decision": "partially_approve", "amount": money("100000"), "reason": "enough"})  # fmt: skip
        assert decided.status_code == 200, decided.text
        assert decided.json()["status"] == "partially_approved"
        client.post(f"/v1/policies/{policy['id']}/assignments", headers=uw, json={"bank_id": bank})
        item = {"policy_id": policy["id"], "buyer_id": buyer["id"],
                "shipment_date": "2027-03-01", "due_date": "2027-04-30"}  # fmt: skip
        singles = []
        for amount in ("70000", "500000"):
            answer = client.post("/v1/coverage-checks", headers=auth("bank", bank),
                                 json={**item, "invoice_amount": money(amount)})  # fmt: skip
            assert answer.status_code == 200, answer.text
            singles.append(answer.json())
        items = [{**item, "invoice_amount": money(str(20000 * n))} for n in range(1, 8)]
        items.append({**item, "buyer_id": "buy_unknown", "invoice_amount": money("1")})
        items.append({**item, "shipment_date": "2028-06-01", "due_date": "2028-07-01",
                      "invoice_amount": money("10")})  # fmt: skip
        batch = client.post("/v1/coverage-checks/batch", headers=auth("bank", bank),
                            json={"items": items})  # fmt: skip
        assert batch.status_code == 200, batch.text
        results = batch.json()["results"]
    return holder, singles, results


def coverage_tally(answers: list[Any]) -> tuple[collections.Counter[str], collections.Counter[str]]:
    """Outcomes and reasons as the answers themselves tell them."""
    outcomes: collections.Counter[str] = collections.Counter()
    reasons: collections.Counter[str] = collections.Counter()
    for answer in answers:
        if "error" in answer:
            outcomes["error"] += 1
            continue
        outcomes["covered" if answer["fully_covered"] else
                 "partially_covered" if answer["covered"] else "not_covered"] += 1  # fmt: skip
        reasons.update(answer["reasons"])
    return outcomes, reasons


def test_a_real_flow_moves_each_business_counter_by_exactly_what_happened(
    world: World,
) -> None:
    w = world
    before = {s: scrape(w.urls[s]) for s in SERVICES}

    # underwriting: decisions, referral, coverage; webhooks delivered
    _, singles, results = decide_limits_and_check_coverage(w)
    wait_for(lambda: w.receiver.posted["/ok"] == 3, "three decisions delivered to /ok")
    wait_for(lambda: moved(before["underwriting"], scrape(w.urls["underwriting"]),
                           "tci_webhook_delivery_attempts_total", outcome="delivered") == 3,
             "the third delivery marked")  # fmt: skip
    uw = scrape(w.urls["underwriting"])
    decisions = {(outcome, by): moved(before["underwriting"], uw, "tci_limit_decisions_total",
                                      outcome=outcome, decided_by=by)
                 for outcome in ("approved", "partially_approved", "refused", "referred")
                 for by in ("engine", "underwriter")}  # fmt: skip
    assert decisions == {
        ("approved", "engine"): 1, ("approved", "underwriter"): 0,
        ("partially_approved", "engine"): 0, ("partially_approved", "underwriter"): 1,
        ("refused", "engine"): 1, ("refused", "underwriter"): 0,
        ("referred", "engine"): 1, ("referred", "underwriter"): 0,
    }  # fmt: skip
    for mode, answers in (("single", singles), ("batch", results)):
        outcomes, reasons = coverage_tally(answers)
        for outcome in ("covered", "partially_covered", "not_covered", "error"):
            assert moved(before["underwriting"], uw, "tci_coverage_checks_total", mode=mode,
                         outcome=outcome) == outcomes[outcome], (mode, outcome)  # fmt: skip
        assert value(uw, "tci_coverage_check_reasons_total", mode=mode) - value(
            before["underwriting"], "tci_coverage_check_reasons_total", mode=mode
        ) == sum(reasons.values())
        for reason, count in reasons.items():
            assert moved(before["underwriting"], uw, "tci_coverage_check_reasons_total",
                         mode=mode, reason=reason) == count, (mode, reason)  # fmt: skip
    assert {"partially_covered", "not_covered", "error"} <= set(coverage_tally(results)[0])

    # claims: filed, approved; paid while collections is down (the case waits in the outbox)
    policy, _, claim_id = approved_claim(w.services)
    claim_holder = policy["policyholder_id"]
    broken = register_webhook(w, "claims", claim_holder, "/broken", ["claim.status_changed"])
    gone = register_webhook(w, "collections", claim_holder, "/gone", ["case.stage_changed"])
    w.running.stop("collections")
    paid = httpx.post(f"{w.urls['claims']}/v1/claims/{claim_id}/payment",
                      headers=auth("claims_handler"), timeout=30)  # fmt: skip
    assert paid.status_code == 200, paid.text
    assert paid.json()["collection_case_id"] is None
    wait_for(
        lambda: endpoint_status(w, "claims", broken) == "failing", "the claims webhook given up"
    )
    cl = scrape(w.urls["claims"])
    assert moved(before["claims"], cl, "tci_claims_filed_total", cause="insolvency") == 1
    assert moved(before["claims"], cl, "tci_claim_decisions_total", outcome="approved") == 1
    assert moved(before["claims"], cl, "tci_claim_decisions_total", outcome="rejected") == 0
    assert moved(before["claims"], cl, "tci_claims_paid_total", currency="EUR") == 1
    assert moved(before["claims"], cl, "tci_claim_indemnity_paid_total", currency="EUR") == 85000
    pending, dead = outbox_counts(w)
    assert pending == 1 and dead == 0
    assert value(cl, "tci_outbox_pending_messages", service="claims") == pending
    assert value(cl, "tci_outbox_dead_messages", service="claims") == dead
    assert value(cl, "tci_outbox_oldest_pending_age_seconds", service="claims") > 0
    attempts = {outcome: moved(before["claims"], cl, "tci_outbox_delivery_attempts_total",
                               service="claims", target="collections", outcome=outcome)
                for outcome in ("delivered", "failed", "given_up")}  # fmt: skip
    assert attempts == {"delivered": 0, "failed": 1, "given_up": 0}
    with w.engines["claims"].connect() as connection:
        to_underwriting = connection.scalar(select(func.count()).where(
            claims_outbox.c.target == "underwriting", claims_outbox.c.delivered_at.is_not(None)))  # fmt: skip
        broken_attempts = connection.scalar(select(func.count()).where(
            claims_webhooks.attempts.c.endpoint_id == broken))  # fmt: skip
    assert to_underwriting and moved(before["claims"], cl, "tci_outbox_delivery_attempts_total",
                                     target="underwriting", outcome="delivered") == to_underwriting  # fmt: skip
    assert (
        moved(before["claims"], cl, "tci_webhook_delivery_attempts_total", outcome="given_up") == 1
    )
    assert moved(before["claims"], cl, "tci_webhook_delivery_attempts_total",
                 outcome="failed") == broken_attempts - 1  # fmt: skip
    statuses = endpoint_statuses(w, "claims", claims_webhooks)
    for status in ("active", "failing", "disabled"):
        assert value(cl, "tci_webhook_endpoints", service="claims", status=status) == statuses.get(
            status, 0
        )
    assert statuses == {"failing": 1}
    for service, scraped in (("underwriting", scrape(w.urls["underwriting"])), ("claims", cl)):
        for kind, count in (events_by_type(w, service)).items():
            assert moved(before[service], scraped, "tci_events_total", service=service,
                         type=kind) == count, (service, kind)  # fmt: skip

    # collections back, claims started again: at start it delivers what waits in its outbox
    start_services(w.database, w.urls, only=["collections"], env=ENV, running=w.running)
    w.running.stop("claims")
    start_services(w.database, w.urls, only=["claims"], env=ENV, running=w.running)

    wait_for(lambda: outbox_counts(w) == (0, 0), "the subrogation case delivered")
    cl = scrape(w.urls["claims"])  # a new process: its counters start again
    assert value(cl, "tci_outbox_pending_messages", service="claims") == 0
    assert value(cl, "tci_outbox_delivery_attempts_total", target="collections",
                 outcome="delivered") == 1  # fmt: skip

    # collections: the case opened on today's rung; its creditor's webhook answered 410
    case = case_of_claim(w, claim_id)
    wait_for(lambda: endpoint_status(w, "collections", gone) == "disabled", "the 410 to disable")
    co = scrape(w.urls["collections"])
    assert value(co, "tci_collection_escalations_total") == 0  # opened on its rung: no climb
    assert (
        moved(before["collections"], co, "tci_webhook_delivery_attempts_total", outcome="gone") == 1
    )
    assert value(co, "tci_webhook_endpoints", service="collections", status="disabled") == 1
    opened_events = events_by_type(w, "collections")
    for kind, count in opened_events.items():
        assert moved(before["collections"], co, "tci_events_total", service="collections",
                     type=kind) == count, kind  # fmt: skip

    # days pass: collections starts again on the day the case reaches its next rung, and its
    # scheduler (at start) escalates it; a collector's run of that day moves nothing more
    later = business_today("Asia/Shanghai") + dt.timedelta(days=days_to_next_rung(w, case))
    w.running.stop("collections")
    start_services(w.database, w.urls, only=["collections"], running=w.running,
                   env={**ENV, "TCI_FIXED_TODAY": later.isoformat()})  # fmt: skip
    wait_for(lambda: value(scrape(w.urls["collections"]), "tci_collection_escalations_total") == 1,
             "the scheduler to escalate the case")  # fmt: skip
    climbed = case_of_claim(w, claim_id)
    assert climbed["stage"] != case["stage"]
    run = httpx.post(f"{w.urls['collections']}/v1/escalations/run", headers=auth("collector"),
                     json={"as_of": later.isoformat()})  # fmt: skip
    assert run.status_code == 200, run.text
    assert run.json()["moved"] == []
    co = scrape(w.urls["collections"])  # a new process: its counters start again
    assert value(co, "tci_collection_escalations_total") == 1
    assert value(co, "tci_collection_escalations_total", ladder=case["ladder"],
                 stage=climbed["stage"]) == 1  # fmt: skip
    assert value(co, "tci_webhook_delivery_attempts_total") == 0  # its endpoint is disabled
    for kind, count in (events_by_type(w, "collections")).items():
        assert value(co, "tci_events_total", service="collections",
                     type=kind) == count - opened_events.get(kind, 0), kind  # fmt: skip

    # the pool and the process, read when scraped
    for service in SERVICES:
        scraped = scrape(w.urls[service])
        size = value(scraped, "tci_db_pool_size", service=service)
        # SQLite keeps SQLAlchemy's own pool size (TCI_DB_POOL_SIZE is PostgreSQL's)
        assert size == POOL_SIZE if backend().kind == "postgresql" else size > 0
        out = value(scraped, "tci_db_pool_checked_out_connections", service=service)
        idle = value(scraped, "tci_db_pool_checked_in_connections", service=service)
        assert out >= 0 and 0 <= idle <= size
        assert value(scraped, "tci_db_pool_overflow_connections", service=service) >= 0
        assert value(scraped, "process_resident_memory_bytes") > 0


def test_with_two_workers_the_pool_is_summed_and_the_backlog_read_once(tmp_path: Path) -> None:
    """Multiprocess mode (the image's default): each worker keeps its pool's gauges, a scrape
    sums the live workers'; the backlog is the database's count, whichever worker reads it; the
    process collector, which would describe one worker only, is left out."""
    b = backend()
    database = f"{b.main_database}_business_metrics_workers"
    create_migrated_database(b, database)
    port, metrics_port = (int(free_urls()[s].rsplit(":", 1)[1]) for s in ("claims", "collections"))
    directory = tmp_path / "prometheus"
    directory.mkdir()
    env = {**os.environ, "DATABASE_URL": b.url_for(database, "claims"),
           "TCI_JWT_SECRET": DEVELOPMENT_JWT_SECRET, "TCI_LOG_LEVEL": "INFO",
           "TCI_DB_POOL_SIZE": str(POOL_SIZE), "TCI_METRICS_PORT": str(metrics_port),
           "PROMETHEUS_MULTIPROC_DIR": str(directory)}  # fmt: skip
    log = tmp_path / "claims.log"
    with open(log, "wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", "services.claims.main:create_app",
             "--host", "127.0.0.1", "--port", str(port), "--workers", "2", "--no-access-log"],
            env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
    engine = sync_engine(database, "claims")
    try:
        wait_for(lambda: log.read_text(errors="replace").count("Application startup complete")
                 == 2 or server.poll() is not None, "two workers", 60)  # fmt: skip
        assert server.poll() is None, log.read_text(errors="replace")
        answer = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=30)
        assert answer.status_code == 200
        scraped = {(s.name, frozenset(s.labels.items())): s.value
                   for family in text_string_to_metric_families(answer.text)
                   for s in family.samples}  # fmt: skip
        size = value(scraped, "tci_db_pool_size", service="claims")
        assert size == 2 * POOL_SIZE if b.kind == "postgresql" else size > 0
        with engine.connect() as connection:
            pending = connection.scalar(select(func.count()).select_from(claims_outbox)
                                        .where(claims_outbox.c.delivered_at.is_(None)))  # fmt: skip
        assert value(scraped, "tci_outbox_pending_messages", service="claims") == pending == 0
        assert value(scraped, "tci_webhook_endpoints", service="claims", status="active") == 0
        assert ("tci_webhook_endpoints", frozenset({("service", "claims"),
                                                    ("status", "active")})) in scraped  # fmt: skip
        assert not any(name.startswith("process_") for name, _ in scraped)
    finally:
        server.terminate()
        server.wait(timeout=30)
        engine.dispose()
        b.drop_database(database)
    assert "Traceback" not in log.read_text(errors="replace")
    assert not list(directory.glob("gauge_livesum_*.db"))  # stopped workers left the sums
