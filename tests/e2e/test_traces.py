"""Traces across the services: with `TCI_OTEL_ENDPOINT` set, the three processes export their
spans over OTLP/HTTP to a receiver on loopback, and one claim filing is one trace from claims
into underwriting (the `traceparent` crossed)."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span as SpanMessage

from shared.calendar import today as business_today
from tests.builders import money
from tests.conftest import (
    auth,
    backend,
    create_migrated_database,
    free_urls,
    start_services,
    unique,
)

pytestmark = pytest.mark.e2e

SERVER = SpanMessage.SpanKind.SPAN_KIND_SERVER
CLIENT = SpanMessage.SpanKind.SPAN_KIND_CLIENT


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    kind: int
    attributes: dict[str, str]


class SpanReceiver(ThreadingHTTPServer):
    """An OTLP/HTTP traces endpoint on loopback that keeps every span it is sent."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _ExportHandler)
        self.spans: list[ReceivedSpan] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1/traces"

    def record(self, body: bytes) -> None:
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        received = []
        for resource_spans in request.resource_spans:
            service = next(
                (a.value.string_value for a in resource_spans.resource.attributes
                 if a.key == "service.name"), "")  # fmt: skip
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    attributes = {a.key: str(a.value.string_value) for a in span.attributes}
                    received.append(ReceivedSpan(
                        service, span.trace_id.hex(), span.span_id.hex(),
                        span.parent_span_id.hex(), span.name, span.kind, attributes))  # fmt: skip
        with self.lock:
            self.spans.extend(received)

    def snapshot(self) -> list[ReceivedSpan]:
        with self.lock:
            return list(self.spans)


class _ExportHandler(BaseHTTPRequestHandler):
    server: SpanReceiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.path != "/v1/traces":
            self.send_response(404)
            self.end_headers()
            return
        self.server.record(body)
        answer = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[SpanReceiver]:
    server = SpanReceiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _file_a_claim(urls: dict[str, str]) -> None:
    """A policy with a limit on a buyer, an overdue invoice notified, a claim filed."""
    today = business_today("Asia/Shanghai")

    def day(offset: int) -> str:
        return (today + dt.timedelta(days=offset)).isoformat()

    holder_id, uw = unique("ph"), auth("underwriter")
    with httpx.Client(base_url=urls["underwriting"], timeout=30) as underwriting:
        policy = underwriting.post("/v1/policies", headers=uw, json={
            "policyholder_id": holder_id, "currency": "EUR", "start_date": day(-200),
            "end_date": day(165), "cover_type": "whole_turnover",
            "max_liability": money("1000000"), "premium_rate_pct": "0.5"}).json()  # fmt: skip
        buyer = underwriting.post("/v1/buyers", headers=uw, json={
            "name": "Trace GmbH", "country": "DE", "registration_number": unique("HRB")}).json()  # fmt: skip
        limit = underwriting.post(f"/v1/policies/{policy['id']}/limits", headers=uw, json={
            "buyer_id": buyer["id"], "amount": money("100000"), "effective_from": day(-200),
            "payment_terms_days": 90, "reason": "migrated"})  # fmt: skip
        assert limit.status_code == 201, limit.text
    invoices = [{"number": "TR-1", "amount": money("80000"), "shipment_date": day(-100),
                 "due_date": day(-40)}]  # fmt: skip
    holder = auth("policyholder", holder_id)
    with httpx.Client(base_url=urls["claims"], timeout=30) as claims:
        notified = claims.post("/v1/overdue-notifications", headers=holder, json={
            "policy_id": policy["id"], "buyer_id": buyer["id"], "kind": "overdue",
            "invoices": invoices})  # fmt: skip
        assert notified.status_code == 201, notified.text
        claim = claims.post("/v1/claims", headers=holder, json={
            "policy_id": policy["id"], "buyer_id": buyer["id"], "cause": "insolvency",
            "event_date": day(-5), "invoices": invoices})  # fmt: skip
        assert claim.status_code == 201, claim.text


def _claim_filing_trace(receiver: SpanReceiver, timeout: float = 20.0) -> list[ReceivedSpan]:
    """The spans of the trace whose claims server span filed the claim, once underwriting's
    server spans in it and their callers' spans have arrived (batches go every 200 ms)."""
    deadline = time.monotonic() + timeout
    while True:
        spans = receiver.snapshot()
        filings = [s for s in spans if s.service == "claims" and s.kind == SERVER
                   and s.name.startswith("POST /v1/claims")]  # fmt: skip
        if filings:
            trace = [s for s in spans if s.trace_id == filings[0].trace_id]
            ids = {s.span_id for s in trace}
            served = [s for s in trace if s.service == "underwriting" and s.kind == SERVER]
            # Each process sends its own batches: wait for the callers' spans as well.
            if served and all(s.parent_span_id in ids for s in served):
                return trace
        if time.monotonic() > deadline:
            seen = sorted({(s.service, s.name) for s in spans})
            raise AssertionError(f"no claim filing trace reached underwriting; spans: {seen}")
        time.sleep(0.1)


def test_one_claim_filing_is_one_trace_from_claims_into_underwriting(
    receiver: SpanReceiver,
) -> None:
    b = backend()
    database = f"{b.main_database}_traces"
    create_migrated_database(b, database)
    urls = free_urls()
    env = {"TCI_OTEL_ENDPOINT": receiver.url, "OTEL_BSP_SCHEDULE_DELAY": "200"}
    running = start_services(database, urls, env=env)
    try:
        _file_a_claim(urls)
        trace = _claim_filing_trace(receiver)
    finally:
        running.stop()
    by_id = {s.span_id: s for s in trace}
    filing = next(s for s in trace if s.service == "claims" and s.kind == SERVER
                  and s.name.startswith("POST /v1/claims"))  # fmt: skip
    assert filing.parent_span_id == ""  # the trace starts at claims: the caller sent none
    peer_reads = [s for s in trace if s.service == "underwriting" and s.kind == SERVER]
    for read in peer_reads:
        caller = by_id[read.parent_span_id]  # the traceparent named claims' client span
        assert caller.service == "claims" and caller.kind == CLIENT
    assert any("/v1/policies/" in s.name for s in peer_reads), [s.name for s in peer_reads]
    # The statements claims ran for the filing are in the trace, their SQL without values.
    statements = [s for s in trace if s.service == "claims"
                  and ({"db.statement", "db.query.text"} & s.attributes.keys())]  # fmt: skip
    assert statements, sorted({(s.service, s.name) for s in trace})


def test_the_health_probes_are_not_traced(receiver: SpanReceiver) -> None:
    b = backend()
    database = f"{b.main_database}_traces"
    create_migrated_database(b, database)
    urls = free_urls()
    env = {"TCI_OTEL_ENDPOINT": receiver.url, "OTEL_BSP_SCHEDULE_DELAY": "200"}
    running = start_services(database, urls, only=["underwriting"], env=env)
    try:
        for _ in range(3):
            assert httpx.get(f"{urls['underwriting']}/readyz").status_code == 200
        created = httpx.post(f"{urls['underwriting']}/v1/buyers", headers=auth("underwriter"),
                             json={"name": "Probe GmbH", "country": "DE",
                                   "registration_number": unique("HRB")})  # fmt: skip
        assert created.status_code == 201, created.text
    finally:
        running.stop()  # the spans still batched are sent as the process stops
    spans = receiver.snapshot()
    # Only requests start traces: the background loops' polling statements are not exported.
    assert all(s.parent_span_id or s.kind == SERVER for s in spans)
    names = {s.name for s in spans if s.kind == SERVER}
    assert any(name.startswith("POST /v1/buyers") for name in names), names
    assert not any("readyz" in name or "healthz" in name for name in names), names
