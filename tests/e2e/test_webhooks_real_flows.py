"""Webhooks proven with real business flows (issue 11): the three services as real processes, driven
only through their public API, produce at least 100 events of every type, and each event a party's
feed lists reaches that party's endpoint on the receiver (tests/webhook_receiver.py) once after
deduplication by `webhook-id`, in `seq` order, signed; a stranger's endpoints get nothing.

The flow, per buyer (`UNITS` of them, `WORKERS` at a time): an underwriter registers the buyer and
puts a limit on it (`limit.changed`); the policyholder asks for a limit on a second buyer (decided
at once: `limit_request.decided` and `limit.changed`); claims hears of two overdue invoices (a
stop-shipment starts, the grade moves) and of the insolvency claim (grade 10, limit withdrawn),
which is completed, assessed, approved and paid (`claim.status_changed` ×5, `claim.paid`); the
payment opens the subrogation case in collections through the outbox (`case.stage_changed`); the
arrears are cleared (`stop_shipment.cleared`). Then days pass (collections starts again with its
today pinned later), the escalation runs move the cases up their ladders, and each case is paid in
full (`case.payment_recorded`, `case.closed`).

The feeds (`GET /v1/events` as each party, every page) are the truth the receiver's records are
held to. Run with `-s` to see the figures."""

from __future__ import annotations

import collections
import datetime as dt
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.calendar import today as business_today
from tests import webhook_receiver
from tests.builders import money
from tests.conftest import (
    Running,
    auth,
    backend,
    create_migrated_database,
    free_urls,
    start_services,
    unique,
)
from tests.e2e.test_webhooks_delivery import (
    ENV,
    HOOKS,
    Endpoint,
    World,
    _port,
    attempts_log,
    check_arrivals,
    register,
    wait_for,
)

pytestmark = [pytest.mark.postgres, pytest.mark.e2e]

UNITS = 100  # buyers run through the whole flow: each yields one event of every type at least
WORKERS = 16  # requests in flight at once
AT_LEAST = 100  # events of every type
# The paid claims' cases are handed to collections by the outbox: its loop runs often here. A
# small pool per service: the PostgreSQL server is shared and allows 100 connections in all.
# The dispatchers look for endpoints with events waiting every 0.2 s, not 0.05: an endpoint is
# served until it has nothing left, so the events of a busy flow wait no longer, and the CPU
# the services and the database would spend on twenty claims a second each goes to the flow.
FLOW_ENV = {**ENV, "TCI_OUTBOX_INTERVAL_SECONDS": "0.5", "TCI_DB_POOL_SIZE": "4",
            "TCI_WEBHOOK_POLL_SECONDS": "0.2"}  # fmt: skip
UW, HANDLER, COLLECTOR = auth("underwriter"), auth("claims_handler"), auth("collector")
INDICATORS = {"current_ratio": "2.5", "dso_days": "40", "dso_prior_year_days": "40",
              "overdue_ratio": "0.01", "litigation_count": 0, "management_changes_12m": 0,
              "equity": money("50000000")}  # fmt: skip
ESCALATION_DAYS = (15, 45, 75)  # collections runs its ladder these many days from today
RETRIES = 10  # tries of a call answered 503


def day(offset: int) -> str:
    """A date `offset` days from the services' business day (Asia/Shanghai)."""
    return (business_today("Asia/Shanghai") + dt.timedelta(days=offset)).isoformat()


@dataclass
class Book:
    """Who acts, and the policy they act on."""

    holder: str = field(default_factory=lambda: unique("ph-flow"))
    bank: str = field(default_factory=lambda: unique("bank-flow"))
    stranger: str = field(default_factory=lambda: unique("ph-stranger"))
    policy_id: str = ""

    @property
    def as_holder(self) -> dict[str, str]:
        return auth("policyholder", self.holder)


class Api:
    """One client per service, shared by the pool's threads. Each write carries an
    Idempotency-Key, so that a 503 (the shared database server full, a peer busy) is retried as
    a partner would, after its Retry-After; each call checks its status."""

    def __init__(self, urls: dict[str, str]) -> None:
        limits = httpx.Limits(max_connections=2 * WORKERS, max_keepalive_connections=2 * WORKERS)
        self.clients = {s: httpx.Client(base_url=u, timeout=60, limits=limits)
                        for s, u in urls.items()}  # fmt: skip
        self.calls = self.retries = 0  # figures only: a lost increment under threads is harmless

    def call(self, service: str, method: str, path: str, headers: dict[str, str],
             status: int = 200, **kw: Any) -> dict[str, Any]:  # fmt: skip
        self.calls += 1
        if method == "POST":
            headers = {**headers, "Idempotency-Key": unique("flow")}
        for _ in range(RETRIES):
            answer = self.clients[service].request(method, path, headers=headers, **kw)
            if answer.status_code != 503:
                break
            self.retries += 1
            time.sleep(min(float(answer.headers.get("retry-after") or 1), 2.0))
        assert answer.status_code == status, f"{method} {path}: {answer.text}"
        body: dict[str, Any] = answer.json() if answer.content else {}
        return body

    def close(self) -> None:
        for client in self.clients.values():
            client.close()


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    """A committed database of this module's own with the three schemas, and the receiver."""
    b = backend()
    name = f"{b.main_database}_flows_{os.getpid()}"
    create_migrated_database(b, name)
    directory = Path(tempfile.mkdtemp(prefix="tci-webhooks-flows-"))
    port = _port()
    w = World(name, directory, port, webhook_receiver.start(directory, port))
    try:
        yield w
    finally:
        w.receiver.kill()
        w.receiver.wait()
        b.drop_database(name)


# ---------------------------------------------------------------- the flows


def open_policy(api: Api, book: Book) -> None:
    """The policyholder's one policy (long enough ago for old invoices), its bank assigned."""
    policy = api.call("underwriting", "POST", "/v1/policies", UW, 201, json={
        "policyholder_id": book.holder, "currency": "EUR", "start_date": day(-200),
        "end_date": day(165), "cover_type": "whole_turnover",
        "max_liability": money("1000000000"), "premium_rate_pct": "0.5",
        "deductible": money("5000")})  # fmt: skip
    book.policy_id = policy["id"]
    api.call("underwriting", "POST", f"/v1/policies/{book.policy_id}/assignments", UW, 201,
             json={"bank_id": book.bank})  # fmt: skip


def new_buyer(api: Api, n: int) -> str:
    buyer = api.call("underwriting", "POST", "/v1/buyers", UW, 201, json={
        "name": f"Flow buyer {n}", "country": "DE", "registration_number": unique("HRB"),
        "indicators": INDICATORS})  # fmt: skip
    return str(buyer["id"])


def trade(api: Api, book: Book, n: int) -> str:
    """A buyer with a limit since long ago (the claim's), and a request decided at once on a
    second buyer; the first buyer's id."""
    buyer = new_buyer(api, n)
    api.call("underwriting", "POST", f"/v1/policies/{book.policy_id}/limits", UW, 201, json={
        "buyer_id": buyer, "amount": money("100000"), "effective_from": day(-200),
        "payment_terms_days": 90, "reason": "book migrated"})  # fmt: skip
    request = api.call("underwriting", "POST", f"/v1/policies/{book.policy_id}/limit-requests",
                       book.as_holder, 201, json={"buyer_id": new_buyer(api, n),
                                                  "amount": money("50000"),
                                                  "payment_terms_days": 60})  # fmt: skip
    assert request["status"] == "approved", request
    return buyer


def invoices(n: int) -> list[dict[str, Any]]:
    return [{"number": f"F{n}-1", "amount": money("80000"), "shipment_date": day(-100),
             "due_date": day(-40)},
            {"number": f"F{n}-2", "amount": money("40000"), "shipment_date": day(-90),
             "due_date": day(-30)}]  # fmt: skip


def notify(api: Api, book: Book, buyer: str, n: int, kind: str) -> None:
    api.call("claims", "POST", "/v1/overdue-notifications", book.as_holder, 201, json={
        "policy_id": book.policy_id, "buyer_id": buyer, "kind": kind,
        "invoices": invoices(n)})  # fmt: skip


def claim_paid(api: Api, book: Book, buyer: str, n: int) -> tuple[str, str | None]:
    """The overdue notified, the insolvency claimed, completed, assessed, approved and paid; the
    arrears then cleared. The claim's id, and its subrogation case's if handed over already."""
    notify(api, book, buyer, n, "overdue")
    claim = api.call("claims", "POST", "/v1/claims", book.as_holder, 201, json={
        "policy_id": book.policy_id, "buyer_id": buyer, "cause": "insolvency",
        "event_date": day(-5), "invoices": invoices(n)})  # fmt: skip
    for kind in claim["missing_documents"]:
        api.call("claims", "POST", f"/v1/claims/{claim['id']}/documents", book.as_holder, 201,
                 data={"kind": kind},
                 files={"file": ("scan.pdf", b"%PDF-1.4 scanned", "application/pdf")})  # fmt: skip
    assessed = api.call("claims", "POST", f"/v1/claims/{claim['id']}/assessment", HANDLER)
    assert assessed["indemnity"] == money("85000.00")
    api.call("claims", "POST", f"/v1/claims/{claim['id']}/decision", HANDLER,
             json={"decision": "approve", "reason": "file complete, cover confirmed"})  # fmt: skip
    paid = api.call("claims", "POST", f"/v1/claims/{claim['id']}/payment", HANDLER)
    notify(api, book, buyer, n, "arrears_cleared")
    return str(claim["id"]), paid["collection_case_id"]


def case_of(api: Api, claim_id: str, case_id: str | None, seconds: float = 60) -> str:
    """The subrogation case the paid claim was handed to (the outbox may still be at it)."""
    deadline = time.monotonic() + seconds
    while case_id is None:
        claim = api.call("claims", "GET", f"/v1/claims/{claim_id}", HANDLER)
        case_id = claim["collection_case_id"]
        assert case_id or time.monotonic() < deadline, f"{claim_id}: no case after {seconds}s"
        time.sleep(0 if case_id else 0.2)
    return case_id


def recover(api: Api, case_id: str) -> None:
    """The debtor pays what the claim's invoices came to: the payment, and the case closed."""
    owed = sum(Decimal(i["amount"]["amount"]) for i in invoices(0))
    paid = api.call("collections", "POST", f"/v1/cases/{case_id}/payments", COLLECTOR, 201,
                    json={"amount": money(str(owed)), "received_on": day(0)})  # fmt: skip
    assert (paid["outstanding_after"], paid["case_status"]) == (money("0.00"), "closed"), paid


def in_pool(work: Callable[[int], Any], count: int) -> list[Any]:
    with ThreadPoolExecutor(WORKERS) as pool:
        return list(pool.map(work, range(count)))


def drive(api: Api, book: Book, days_pass: Callable[[int], None]) -> None:
    """Every flow, `WORKERS` requests in flight; the escalation runs as the days pass."""
    open_policy(api, book)
    claims = in_pool(lambda n: claim_paid(api, book, trade(api, book, n), n), UNITS)
    cases = in_pool(lambda n: case_of(api, *claims[n]), UNITS)
    assert len(set(cases)) == UNITS
    for offset in ESCALATION_DAYS:
        days_pass(offset)
        api.call("collections", "POST", "/v1/escalations/run", COLLECTOR,
                 json={"as_of": day(offset)})  # fmt: skip
    in_pool(lambda n: recover(api, cases[n]), UNITS)


def collections_later(world: World, urls: dict[str, str], running: Running, offset: int) -> None:
    """Time passes: collections starts again `offset` days on (its today pinned there); its
    scheduler runs the ladder at start, the collector's run of the same day finds what is left. The
    stop may cut a delivery between its post and its record: that event goes out again, right
    after itself, before the next one."""
    running.stop("collections")
    start_services(world.database, urls, only=["collections"], running=running,
                   env={**FLOW_ENV, "TCI_FIXED_TODAY": day(offset)})  # fmt: skip


# ---------------------------------------------------------------- the feeds and the receiver


def feed(api: Api, service: str, party: str, role: str) -> list[tuple[str, str]]:
    """(id, type) of every event the party's feed on the service lists, oldest first."""
    listed: list[tuple[str, str]] = []
    params: dict[str, Any] = {"limit": 500}
    while True:
        page = api.call(service, "GET", "/v1/events", auth(role, party), params=params)
        listed.extend((e["id"], e["type"]) for e in page["items"])
        if page["next_cursor"] is None:
            return listed
        params["cursor"] = page["next_cursor"]


def settled_feeds(api: Api, parties: Sequence[tuple[str, str]]
                  ) -> dict[tuple[str, str], list[tuple[str, str]]]:  # fmt: skip
    """Each (service, party)'s feed, read until two readings a second apart agree (the outbox
    and the background loops may still be writing)."""
    roles = dict(parties)
    last: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for _ in range(30):
        now = {(s, p): feed(api, s, p, roles[p]) for s in HOOKS for p, _ in parties}
        if now == last:
            return now
        last = now
        time.sleep(1.0)
    raise AssertionError("the feeds kept growing for 30 s after the flows ended")


def wire_types(w: World, path: str) -> collections.Counter[str]:
    """Events of each type the receiver recorded at `path`, once per `webhook-id`."""
    seen = {r.webhook_id: r.type for r in webhook_receiver.received(w.receiver_dir)
            if r.path == path}  # fmt: skip
    return collections.Counter(seen.values())


# ---------------------------------------------------------------- the test


def test_real_flows_deliver_each_event_of_every_type_to_each_partys_endpoint_once_in_order(
    world: World,
) -> None:
    urls = free_urls()
    running = start_services(world.database, urls, env=FLOW_ENV)
    api = Api(urls)
    book = Book()
    parties = [(book.holder, "policyholder"), (book.bank, "bank"),
               (book.stranger, "policyholder")]  # fmt: skip
    try:
        endpoints: list[Endpoint] = [
            register(urls, world, service, party, role, HOOKS[service].event_types)
            for service in HOOKS for party, role in parties
        ]  # fmt: skip
        started = time.monotonic()
        drive(api, book, lambda offset: collections_later(world, urls, running, offset))
        flows_took = time.monotonic() - started
        feeds = settled_feeds(api, parties)
        # each case opened on today's rung, then climbed as the days passed
        kinds = [kind for _, kind in feeds[("collections", book.holder)]]
        moved = kinds.count("case.stage_changed") - UNITS
        assert moved >= UNITS, moved
        expected = {e.path: [i for i, _ in feeds[(e.service, e.party)]] for e in endpoints}
        waited = time.monotonic()
        wait_for(world, endpoints, expected, seconds=180)
        lag = time.monotonic() - waited
    finally:
        api.close()
        running.stop()
    figures = check_all(world, endpoints, expected, feeds, book)
    print(f"\nwebhooks real flows: {UNITS} buyers through every flow, {api.calls} API calls "
          f"({api.retries} retried after a 503) in {flows_took:.1f}s, {WORKERS} in flight; "
          f"{moved} escalation moves; {figures}; every feed delivered {lag:.1f}s after the "
          "feeds settled")  # fmt: skip


def check_all(
    w: World, endpoints: Sequence[Endpoint], expected: dict[str, list[str]],
    feeds: dict[tuple[str, str], list[tuple[str, str]]], book: Book,
) -> str:  # fmt: skip
    """The assertions of the delivery, and its figures as one line."""
    holder_types: collections.Counter[str] = collections.Counter()
    for service in HOOKS:
        holder_types.update(kind for _, kind in feeds[(service, book.holder)])
        assert feeds[(service, book.stranger)] == []
    every_type = [kind for hooks in HOOKS.values() for kind in hooks.event_types]
    assert {kind: holder_types[kind] for kind in every_type if holder_types[kind] < AT_LEAST} == {}
    bank_heard = {kind for s in ("underwriting", "claims") for _, kind in feeds[(s, book.bank)]}
    assert bank_heard == set(HOOKS["underwriting"].event_types) | set(HOOKS["claims"].event_types)
    duplicates = check_arrivals(w, endpoints, expected)  # each once, in order, signed
    for endpoint in endpoints:  # and of the types the feed names
        wanted = collections.Counter(kind for _, kind in feeds[(endpoint.service, endpoint.party)])
        assert wire_types(w, endpoint.path) == wanted, endpoint.path
    strangers = [e for e in endpoints if e.party == book.stranger]
    assert attempts_log(w, strangers)[0] == 0  # not even tried
    # No bad signature, no unknown path. Collections is stopped three times to let the days pass:
    # a message it was sending then is cut off (and sent again: counted once below).
    assert [r for r in webhook_receiver.rejected(w.receiver_dir)
            if not (r[0].startswith("/collections/") and r[2].startswith("incomplete body"))] == []  # fmt: skip
    total, delivered, twice = attempts_log(w, endpoints)
    events = sum(len(ids) for ids in expected.values())
    assert twice == {} and delivered == events
    per_type = ", ".join(f"{kind} {holder_types[kind]}" for kind in every_type)
    return (f"{events} deliveries to {len(endpoints)} endpoints of 3 services (the "
            f"policyholder's events: {per_type}); {total} attempts, {delivered} 2xx, "
            f"{duplicates} duplicates on the wire, lost 0, stranger 0")  # fmt: skip
