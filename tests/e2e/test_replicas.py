"""Any number of replicas (issue 13): two processes per service on one PostgreSQL database, each
service behind a round-robin proxy (the services reach each other through the proxies too). A
claim goes end to end and the money races are fired while replicas are SIGKILLed mid-request; a
partner retries with the same Idempotency-Key. Counted in SQL at the end: nothing lost, nothing
doubled. The background work (outbox, escalations, lapses, idempotency purge) runs on both
replicas of each service at once without doing anything twice."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TypeVar

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from shared.calendar import today as business_today
from tests.builders import make_buyer, money
from tests.conftest import SERVICES, Services, auth, backend, create_migrated_database, unique
from tests.e2e.test_money_under_concurrency import (
    approve_and_pay_at_once,
    assessed_claim,
    buyer_with_limit,
    insured_policy,
    limited,
)
from tests.replicas import Replica, Replicas, Retrying, two_replicas_each

pytestmark = [pytest.mark.postgres, pytest.mark.e2e]

T = TypeVar("T")
UW, HANDLER, COLLECTOR = auth("underwriter"), auth("claims_handler"), auth("collector")
FIRED = 30
ENV = {
    # The background loops turn fast, and a killed replica's outbox lease runs out soon, so that
    # the survivors take over what it held within the test's time.
    "TCI_OUTBOX_INTERVAL_SECONDS": "0.3",
    "TCI_OUTBOX_LEASE_SECONDS": "3",
    "TCI_ESCALATION_INTERVAL_SECONDS": "0.3",
    "TCI_CLAIMS_LAPSE_SWEEP_INTERVAL_SECONDS": "0.3",
    "TCI_DB_POOL_SIZE": "10",
}
EXPIRED, FRESH = 5, 5  # idempotency keys seeded in each service before the replicas start
FIGURES: list[str] = []


def day(offset: int) -> str:
    return (business_today("Asia/Shanghai") + dt.timedelta(days=offset)).isoformat()


@dataclass(frozen=True)
class SeededKeys:
    expired: list[str]
    fresh: list[str]


def seed_idempotency_keys(database: str) -> SeededKeys:
    """Keys past their retention and keys within it, in every service's table, written before any
    replica starts (each replica purges at its start, then every
    `TCI_IDEMPOTENCY_PURGE_MINUTES`)."""
    b = backend()
    url = make_url(b.url_for(database, "claims")).set(drivername="postgresql+psycopg")
    engine = create_engine(url)
    batch = unique("seed")
    expired = [f"{batch}-old-{n}" for n in range(EXPIRED)]
    fresh = [f"{batch}-new-{n}" for n in range(FRESH)]
    now = dt.datetime.now(dt.UTC)
    with engine.begin() as connection:
        for service in SERVICES:
            connection.execute(
                text(f"INSERT INTO {service}.idempotency_keys (caller, route, key, fingerprint, "
                     "status_code, body, created_at) VALUES ('seed', 'POST /v1/seed', :key, 'f', "
                     "201, '{}', :at)"),
                [{"key": k, "at": now - dt.timedelta(days=30)} for k in expired]
                + [{"key": k, "at": now - dt.timedelta(minutes=5)} for k in fresh],
            )  # fmt: skip
    engine.dispose()
    return SeededKeys(expired, fresh)


@pytest.fixture(scope="module")
def seeded_database() -> Iterator[tuple[str, SeededKeys]]:
    b = backend()
    database = f"{b.main_database}_replicas"
    create_migrated_database(b, database)
    try:
        yield database, seed_idempotency_keys(database)
    finally:
        b.drop_database(database)


@pytest.fixture(scope="module")
def tier(seeded_database: tuple[str, SeededKeys]) -> Iterator[Replicas]:
    started = time.monotonic()
    with two_replicas_each(seeded_database[0], ENV) as group:
        FIGURES.append(f"six replicas ready in {time.monotonic() - started:.1f} s")
        yield group
    print("\n" + "\n".join(FIGURES))


@pytest.fixture
def replicas(tier: Replicas) -> Replicas:
    """The tier with every replica up (those a test before killed are started again now, so that
    the last test's victims are never restarted for nothing)."""
    tier.heal()
    return tier


@dataclass
class Partner:
    """A partner's clients (through the proxies) that retry what goes unanswered."""

    uw: httpx.AsyncClient
    claims: httpx.AsyncClient
    collections: httpx.AsyncClient
    retrying: Retrying = field(default_factory=Retrying)

    async def ok(self, client: httpx.AsyncClient, path: str, headers: dict[str, str],
                 status: int = 201, **kwargs: Any) -> dict[str, Any]:  # fmt: skip
        """A POST with a key of its own, retried until answered: the answer's body."""
        answer = await self.retrying.send(client, "POST", path, key=unique("key"),
                                          headers=headers, **kwargs)  # fmt: skip
        assert answer.status_code == status, answer.text
        body: dict[str, Any] = answer.json()
        return body


@asynccontextmanager
async def partner(replicas: Replicas) -> AsyncIterator[Partner]:
    urls = replicas.urls
    async with httpx.AsyncClient(base_url=urls["underwriting"], timeout=30) as uw, \
            httpx.AsyncClient(base_url=urls["claims"], timeout=30) as claims, \
            httpx.AsyncClient(base_url=urls["collections"], timeout=30) as collections:  # fmt: skip
        yield Partner(uw, claims, collections)


async def killing(
    replicas: Replicas, service: str, step: Awaitable[T], *, after_commit: bool = False,
    calling: str | None = None,
) -> tuple[T, Replica]:  # fmt: skip
    """Run `step` while a replica of `service` is SIGKILLed: the one that first holds a request
    it has not answered; or (`after_commit`) the one whose answer to a request it committed is
    lost on the way; or the one holding a request while its call to `calling` is unanswered (the
    killer watches the proxies from a thread of its own)."""
    if calling is not None:
        killer = asyncio.ensure_future(
            asyncio.to_thread(replicas.kill_while_calling, service, calling)
        )
    else:
        kill = replicas.kill_after_commit if after_commit else replicas.kill_mid_request
        killer = asyncio.ensure_future(asyncio.to_thread(kill, service))
    await asyncio.sleep(0)
    result = await step
    return result, await killer


async def subrogation_case(p: Partner, claim_id: str, seconds: float = 20) -> str | None:
    """The subrogation case the claim names, once it names one (None if not within `seconds`)."""
    deadline = time.monotonic() + seconds
    while True:
        read = await p.claims.get(f"/v1/claims/{claim_id}", headers=HANDLER)
        found: str | None = read.json()["collection_case_id"]
        if found is not None or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.1)


def wait_until(read: Callable[[], T], done: Callable[[T], bool], seconds: float = 20) -> T:
    deadline = time.monotonic() + seconds
    value = read()
    while not done(value) and time.monotonic() < deadline:
        time.sleep(0.1)
        value = read()
    return value


# ---------------------------------------------------------------- 1. a claim end to end


async def test_a_claim_end_to_end_with_replicas_killed_mid_request_leaves_every_object_once(
    replicas: Replicas,
) -> None:
    holder_id = unique("ph")
    holder = auth("policyholder", holder_id)
    kills_before = len(replicas.kills)
    invoices = [
        {"number": "R-1", "amount": money("80000"), "shipment_date": day(-100),
         "due_date": day(-40)},
        {"number": "R-2", "amount": money("40000"), "shipment_date": day(-90),
         "due_date": day(-30)},
    ]  # fmt: skip
    async with partner(replicas) as p:
        policy = await p.ok(p.uw, "/v1/policies", UW, json={
            "policyholder_id": holder_id, "currency": "EUR", "start_date": day(-200),
            "end_date": day(165), "cover_type": "whole_turnover",
            "max_liability": money("1000000"), "premium_rate_pct": "0.5",
            "deductible": money("5000")})  # fmt: skip
        buyer = await p.ok(p.uw, "/v1/buyers", UW, json={
            "name": "Replica GmbH", "country": "DE",
            "registration_number": unique("HRB")})  # fmt: skip
        # An underwriting replica dies holding the limit's request.
        _, uw_victim = await killing(replicas, "underwriting", p.ok(
            p.uw, f"/v1/policies/{policy['id']}/limits", UW, json={
                "buyer_id": buyer["id"], "amount": money("100000"), "effective_from": day(-200),
                "payment_terms_days": 90, "reason": "migrated"}))  # fmt: skip
        await p.ok(p.uw, f"/v1/policies/{policy['id']}/declarations", holder, json={
            "invoices": [{**i, "buyer_id": buyer["id"]} for i in invoices]})  # fmt: skip
        notification = await p.ok(p.claims, "/v1/overdue-notifications", holder, json={
            "policy_id": policy["id"], "buyer_id": buyer["id"], "kind": "overdue",
            "invoices": invoices})  # fmt: skip
        claim = await p.ok(p.claims, "/v1/claims", holder, json={
            "policy_id": policy["id"], "buyer_id": buyer["id"], "cause": "insolvency",
            "event_date": day(-5), "invoices": invoices})  # fmt: skip
        for kind in claim["missing_documents"]:
            await p.ok(p.claims, f"/v1/claims/{claim['id']}/documents", holder,
                       data={"kind": kind},
                       files={"file": (f"{kind}.pdf", b"%PDF-1.4", "application/pdf")})  # fmt: skip
        assessed = await p.ok(p.claims, f"/v1/claims/{claim['id']}/assessment", HANDLER, 200)
        assert assessed["indemnity"] == money("85000.00")
        await p.ok(p.claims, f"/v1/claims/{claim['id']}/decision", HANDLER, 200,
                   json={"decision": "approve", "reason": "ok"})  # fmt: skip
        # A claims replica dies once the payment is committed, half-way through handing the debt
        # to collections (its outbox lease held, the message unmarked): the retry with the same
        # key is answered the first answer, and the other replica's outbox loop hands the debt
        # over once the lease runs out, once.
        paid, claims_victim = await killing(replicas, "claims", p.ok(
            p.claims, f"/v1/claims/{claim['id']}/payment", HANDLER, 200),
            calling="collections")  # fmt: skip
        assert paid["status"] == "paid"

        case_id = await subrogation_case(p, claim["id"])
        assert case_id, "the subrogation case was never opened"
        # A collections replica dies holding the recovery.
        recovery, collections_victim = await killing(replicas, "collections", p.ok(
            p.collections, f"/v1/cases/{case_id}/payments", COLLECTOR,
            json={"amount": money("12000"), "received_on": day(0)}))  # fmt: skip
        retried = dict(p.retrying.retried)

    count = replicas.count
    outbox_pending = (
        "SELECT (SELECT count(*) FROM claims.outbox WHERE aggregate_id IN (:n, :c) "
        "        AND delivered_at IS NULL) "
        "     + (SELECT count(*) FROM collections.outbox WHERE aggregate_id = :case "
        "        AND delivered_at IS NULL)"
    )
    ids = {"n": notification["id"], "c": claim["id"], "case": case_id}
    await asyncio.to_thread(wait_until, lambda: count(outbox_pending, **ids), lambda n: n == 0)
    await asyncio.sleep(1.0)  # a late twin from a replica's loop would be recorded by now
    kills = replicas.kills[kills_before:]
    FIGURES.append(f"claim end to end: kills {kills} (victims "
                   f"{[v.index for v in (uw_victim, claims_victim, collections_victim)]}); "
                   f"partner retries {retried}")  # fmt: skip

    p_, b_ = policy["id"], buyer["id"]
    assert count(outbox_pending, **ids) == 0, "an outbox message was never delivered"
    assert count("SELECT count(*) FROM underwriting.credit_limits WHERE policy_id = :p "
                 "AND buyer_id = :b", p=p_, b=b_) == 1  # fmt: skip
    # The limit granted once, and withdrawn once on the insolvency the claim signalled.
    amounts = (
        "SELECT count(*) FROM underwriting.limit_amounts a JOIN underwriting.credit_limits "
        "l ON l.id = a.limit_id WHERE l.policy_id = :p AND (a.source = 'signal') = :signal"
    )
    assert count(amounts, p=p_, signal=False) == 1
    assert count(amounts, p=p_, signal=True) == 1
    assert count("SELECT count(*) FROM underwriting.receivables WHERE policy_id = :p", p=p_) == 2
    assert count("SELECT count(*) FROM underwriting.stop_shipments WHERE policy_id = :p "
                 "AND buyer_id = :b", p=p_, b=b_) == 1  # fmt: skip
    assert count("SELECT count(*) FROM claims.overdue_notifications WHERE policy_id = :p",
                 p=p_) == 1  # fmt: skip
    assert count("SELECT count(*) FROM claims.claims WHERE policy_id = :p", p=p_) == 1
    assert count("SELECT count(*) FROM claims.claim_documents WHERE claim_id = :c",
                 c=claim["id"]) == len(claim["missing_documents"])  # fmt: skip
    assert count("SELECT count(*) FROM claims.events WHERE type = 'claim.paid' AND "
                 "subject_id = :c", c=claim["id"]) == 1  # fmt: skip
    assert count("SELECT count(*) FROM claims.outbox WHERE aggregate_id = :c AND "
                 "target = 'collections'", c=claim["id"]) == 1  # fmt: skip
    assert count("SELECT count(*) FROM collections.idempotency_keys WHERE key = :k",
                 k=f"claims:subrogation:{claim['id']}") == 1  # fmt: skip
    assert count("SELECT count(*) FROM collections.cases WHERE claim_id = :c", c=claim["id"]) == 1
    assert count("SELECT count(*) FROM collections.payments WHERE case_id = :case",
                 case=case_id) == 1  # fmt: skip
    assert count("SELECT amount FROM collections.payments WHERE case_id = :case",
                 case=case_id) == 12000 and recovery["amount"] == money("12000.00")  # fmt: skip
    # Every signal about the buyer that the claims and collections outboxes carried is recorded
    # once in underwriting.
    sent = count(
        "SELECT (SELECT count(*) FROM claims.outbox WHERE aggregate_id IN (:n, :c) "
        "        AND target = 'underwriting') "
        "     + (SELECT count(*) FROM collections.outbox WHERE aggregate_id = :case "
        "        AND target = 'underwriting')", **ids)  # fmt: skip
    assert sent >= 1
    assert count("SELECT count(*) FROM underwriting.buyer_signals WHERE buyer_id = :b",
                 b=b_) == sent  # fmt: skip
    assert len(kills) == 3


# ---------------------------------------------------------------- 2. background work


async def test_background_work_on_both_replicas_is_done_once(
    replicas: Replicas, seeded_database: tuple[str, SeededKeys]
) -> None:
    count = replicas.count
    keys = seeded_database[1]
    async with partner(replicas) as p:
        # Escalations: mandate cases ten days overdue, then aged in the database by a hundred
        # days, while both replicas' schedulers turn and the run is triggered on each at once.
        buyer = await make_buyer(p.uw)
        holder_id = unique("ph")
        holder = auth("policyholder", holder_id)
        cases = await limited([p.ok(p.collections, "/v1/cases", holder, json={
            "creditor_id": holder_id, "buyer_id": buyer["id"], "debtor_country": "DE",
            "invoices": [{"number": f"M-{n}", "amount": money("1000"), "due_date": day(-10)}]})
            for n in range(10)])  # fmt: skip
        case_ids = [c["id"] for c in cases]
        first_stages = {c["stage"] for c in cases}
        replicas.execute("UPDATE collections.case_invoices SET due_date = due_date - 100 "
                         "WHERE case_id = ANY(:ids)", ids=case_ids)  # fmt: skip
        direct = [httpx.AsyncClient(base_url=r.url, timeout=30)
                  for r in replicas.replicas["collections"]]  # fmt: skip
        try:
            runs = await asyncio.gather(*(
                client.post("/v1/escalations/run", headers=COLLECTOR, json={"as_of": day(0)})
                for client in direct for _ in range(4)))  # fmt: skip
        finally:
            for client in direct:
                await client.aclose()
        assert {r.status_code for r in runs} == {200}, [r.text for r in runs]

        # Lapses: claims with documents missing whose grace period is moved into the past.
        policy = await insured_policy(p.uw, max_liability=money("1000000"))
        claim_buyer = await buyer_with_limit(p.uw, policy)
        claim_holder = auth("policyholder", policy["policyholder_id"])
        claims = await limited([p.ok(p.claims, "/v1/claims", claim_holder, json={
            "policy_id": policy["id"], "buyer_id": claim_buyer, "cause": "insolvency",
            "event_date": day(-5), "invoices": [{"number": f"L-{n}", "amount": money("1000"),
                                                 "shipment_date": day(-100),
                                                 "due_date": day(-40)}]})
            for n in range(6)])  # fmt: skip
        claim_ids = [c["id"] for c in claims]
        replicas.execute("UPDATE claims.claims SET documents_due = :due WHERE id = ANY(:ids)",
                         ids=claim_ids, due=dt.date.fromisoformat(day(-2)))  # fmt: skip

    lapsed = "SELECT count(*) FROM claims.claims WHERE id = ANY(:ids) AND status = 'lapsed'"
    await asyncio.to_thread(wait_until, lambda: count(lapsed, ids=claim_ids),
                            lambda n: n == len(claim_ids))  # fmt: skip
    await asyncio.sleep(1.0)  # more turns of both replicas' loops: still once

    escalations = [count("SELECT count(*) FROM collections.activities WHERE case_id = :c AND "
                         "kind = 'escalation'", c=c) for c in case_ids]  # fmt: skip
    stage_events = [count("SELECT count(*) FROM collections.events WHERE subject_id = :c AND "
                          "type = 'case.stage_changed' AND data->>'previous_stage' = ANY(:s)",
                          c=c, s=sorted(first_stages)) for c in case_ids]  # fmt: skip
    lapse_events = [count("SELECT count(*) FROM claims.events WHERE subject_id = :c AND "
                          "type = 'claim.status_changed' AND data->>'status' = 'lapsed'", c=c)
                    for c in claim_ids]  # fmt: skip
    moved = sum(len(r.json()["moved"]) for r in runs)
    FIGURES.append(f"background: {len(case_ids)} cases escalated (8 triggered runs moved {moved}, "
                   f"the schedulers the rest), {len(claim_ids)} claims lapsed, "
                   f"{EXPIRED * len(SERVICES)} expired keys purged")  # fmt: skip
    assert escalations == [1] * len(case_ids), escalations
    assert stage_events == [1] * len(case_ids), stage_events
    assert count(lapsed, ids=claim_ids) == len(claim_ids)
    assert lapse_events == [1] * len(claim_ids), lapse_events
    assert count("SELECT count(*) FROM claims.claimed_invoices WHERE claim_id = ANY(:ids)",
                 ids=claim_ids) == 0  # fmt: skip
    for service in SERVICES:
        table = f"{service}.idempotency_keys"
        assert count(f"SELECT count(*) FROM {table} WHERE key = ANY(:k)", k=keys.expired) == 0
        assert count(f"SELECT count(*) FROM {table} WHERE key = ANY(:k)",
                     k=keys.fresh) == FRESH  # fmt: skip


async def test_an_outbox_message_answered_key_in_use_is_sent_again_until_the_case_is_opened(
    replicas: Replicas,
) -> None:
    """A collections replica that dies while it opens a subrogation case leaves its transaction
    holding the case's Idempotency-Key until PostgreSQL notices the dead connection; the claims
    outbox (its peer client retrying on the other replica, or its loop) delivering the message
    meanwhile is answered 409 `idempotency-key-in-use`. That answer is no delivery (the twin may
    yet roll back): the message is sent again until collections answers what it did."""
    async with partner(replicas) as p:
        policy = await insured_policy(p.uw, max_liability=money("1000000"))
        buyer = await buyer_with_limit(p.uw, policy)
        claim_id = await assessed_claim(p.claims, policy, buyer, "HELD-1")
        await p.ok(p.claims, f"/v1/claims/{claim_id}/decision", HANDLER, 200,
                   json={"decision": "approve", "reason": "ok"})  # fmt: skip
        pending = ("SELECT count(*) FROM claims.outbox WHERE aggregate_id = :c AND "
                   "target = 'collections' AND delivered_at IS NULL")  # fmt: skip
        with replicas.engine.connect() as twin:  # the dying twin's claim of the key, uncommitted
            twin.execute(
                text("INSERT INTO collections.idempotency_keys (caller, route, key, fingerprint, "
                     "status_code, body, created_at) VALUES ('service:claims:', "
                     "'POST /v1/cases', :key, 'twin', 0, '', now())"),
                {"key": f"claims:subrogation:{claim_id}"},
            )  # fmt: skip
            paid = await p.ok(p.claims, f"/v1/claims/{claim_id}/payment", HANDLER, 200)
            # Several turns of both claims replicas' outbox loops (a second or so; longer on a
            # loaded machine: waited for, up to a bound, rather than slept a fixed time).
            attempts, deadline = 0, time.monotonic() + 20
            while attempts < 2 and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
                attempts = replicas.count(
                    "SELECT coalesce(max(attempts), 0) FROM claims.outbox WHERE "
                    "aggregate_id = :c AND target = 'collections'", c=claim_id)  # fmt: skip
            held = replicas.count(pending, c=claim_id)
            twin.rollback()  # the twin dies: nothing of it is kept

        case_id = await subrogation_case(p, claim_id)
    FIGURES.append(f"a case's key held by a dying twin: the message sent {attempts} times while "
                   f"it was held, then delivered")  # fmt: skip
    assert paid["status"] == "paid" and paid["collection_case_id"] is None
    assert held == 1 and attempts >= 2, (held, attempts)
    assert case_id, "the subrogation case was lost"
    assert replicas.count("SELECT count(*) FROM collections.cases WHERE claim_id = :c",
                          c=claim_id) == 1  # fmt: skip
    assert replicas.count(pending, c=claim_id) == 0


# ---------------------------------------------------------------- 3. money races
# (the last tests: the bursts' victims are not started again)


async def test_the_money_races_hold_through_the_proxies_across_both_replicas(
    replicas: Replicas,
) -> None:
    """The money issue's concurrency test, unchanged, through the proxies: fifty approvals and
    then fifty payments at once over twenty claims, spread over both claims replicas, never pass
    the maximum liability."""
    cap = Decimal(300000)  # four claims of 72,000 fit
    through = Services(replicas.urls)
    async with partner(replicas) as p:
        policy = await insured_policy(p.uw, max_liability=money(str(cap)))
        buyers = await limited([buyer_with_limit(p.uw, policy) for _ in range(20)])
        claim_ids = await limited([assessed_claim(p.claims, policy, b, f"INV-{n}")
                                   for n, b in enumerate(buyers)])  # fmt: skip
    served = Counter(replicas.proxies["claims"].served)
    await approve_and_pay_at_once(through, claim_ids, cap, "maximum liability, two replicas")
    spread = replicas.proxies["claims"].served - served
    assert len(spread) == 2 and min(spread.values()) > 0, spread


async def fire(p: Partner, client: httpx.AsyncClient, path: str, headers: dict[str, str],
               bodies: list[dict[str, Any] | None]) -> list[httpx.Response]:  # fmt: skip
    """Every request at once, each with its own Idempotency-Key, each retried until answered."""
    return await asyncio.gather(*(
        p.retrying.send(client, "POST", path, key=unique("burst"), headers=headers, json=body)
        for body in bodies))  # fmt: skip


async def test_bursts_with_a_replica_killed_mid_burst_commit_each_request_once_within_the_caps(
    replicas: Replicas,
) -> None:
    cap = Decimal(100000)
    async with partner(replicas) as p:
        # Limit requests at once on one buyer against the policy's single-buyer cap; an
        # underwriting replica dies during the burst.
        policy = await insured_policy(p.uw, max_liability=money("5000000"),
                                      single_buyer_cap=money(str(cap)))  # fmt: skip
        buyer = await make_buyer(p.uw)
        holder = auth("policyholder", policy["policyholder_id"])
        bodies: list[dict[str, Any] | None] = [
            {"buyer_id": buyer["id"], "amount": money(str(10000 * (n + 1))),
             "payment_terms_days": 90} for n in range(FIRED)]  # fmt: skip
        answers, uw_victim = await killing(replicas, "underwriting", fire(
            p, p.uw, f"/v1/policies/{policy['id']}/limit-requests", holder, bodies),
            after_commit=True)  # fmt: skip
        statuses = Counter(a.status_code for a in answers)
        decided = Counter(a.json()["status"] for a in answers if a.status_code == 201)
        limits = (await p.uw.get(f"/v1/policies/{policy['id']}/limits", headers=UW)).json()

        # Payments at once of one approved claim; a claims replica dies during the burst.
        claim_policy = await insured_policy(p.uw, max_liability=money("1000000"))
        claim_buyer = await buyer_with_limit(p.uw, claim_policy)
        claim_id = await assessed_claim(p.claims, claim_policy, claim_buyer, "ONE-1")
        await p.ok(p.claims, f"/v1/claims/{claim_id}/decision", HANDLER, 200,
                   json={"decision": "approve", "reason": "ok"})  # fmt: skip
        payments, claims_victim = await killing(replicas, "claims", fire(
            p, p.claims, f"/v1/claims/{claim_id}/payment", HANDLER, [None] * FIRED))  # fmt: skip
        paid = Counter(a.status_code for a in payments)

        def case_of_claim() -> int:
            return replicas.count("SELECT count(*) FROM collections.cases WHERE claim_id = :c",
                                  c=claim_id)  # fmt: skip

        await asyncio.to_thread(wait_until, case_of_claim, lambda n: n >= 1)
        case_id = (await p.collections.get(f"/v1/cases?claim_id={claim_id}",
                                           headers=COLLECTOR)).json()["items"][0]["id"]  # fmt: skip

        # Recoveries at once on that case (80,000 outstanding: sixteen of 5,000 fit); a
        # collections replica dies during the burst.
        recoveries, collections_victim = await killing(replicas, "collections", fire(
            p, p.collections, f"/v1/cases/{case_id}/payments", COLLECTOR,
            [{"amount": money("5000"), "received_on": day(0)}] * FIRED),
            after_commit=True)  # fmt: skip
        recovered = Counter(a.status_code for a in recoveries)
        refused = Counter(a.json()["type"] for a in recoveries if a.status_code != 201)
        retried = dict(p.retrying.retried)

    count = replicas.count
    FIGURES.append(
        f"{FIRED} limit requests at once (underwriting[{uw_victim.index}] killed after a "
        f"commit, its answer lost): answers {dict(statuses)} {dict(decided)}; {FIRED} payments "
        f"of one claim (claims[{claims_victim.index}] killed mid-request): {dict(paid)}; "
        f"{FIRED} recoveries of 5,000 on 80,000 (collections[{collections_victim.index}] killed "
        f"after a commit): {dict(recovered)} {dict(refused)}; "
        f"partner retries {retried}")  # fmt: skip

    # Each limit request answered and committed once; one limit, never above the cap.
    assert statuses == {201: FIRED}, [a.text for a in answers if a.status_code != 201][:3]
    assert set(decided) <= {"approved", "partially_approved"}
    answered = {a.json()["id"] for a in answers}
    assert len(answered) == FIRED
    assert count("SELECT count(*) FROM underwriting.limit_requests WHERE policy_id = :p",
                 p=policy["id"]) == FIRED  # fmt: skip
    assert count("SELECT count(*) FROM underwriting.limit_requests WHERE policy_id = :p "
                 "AND id = ANY(:ids)", p=policy["id"], ids=sorted(answered)) == FIRED  # fmt: skip
    [limit] = limits["items"]
    assert Decimal(limit["history"][-1]["amount"]["amount"]) <= cap
    assert count("SELECT count(*) FROM underwriting.credit_limits WHERE policy_id = :p",
                 p=policy["id"]) == 1  # fmt: skip

    # The claim paid once, its case opened once.
    assert paid[200] == 1 and set(paid) <= {200, 409}, paid
    assert {a.json()["type"] for a in payments if a.status_code == 409} <= {"already-paid"}
    assert count("SELECT count(*) FROM claims.events WHERE type = 'claim.paid' AND "
                 "subject_id = :c", c=claim_id) == 1  # fmt: skip
    assert case_of_claim() == 1

    # The recoveries: exactly what was outstanding, each accepted one recorded once.
    accepted = {a.json()["id"] for a in recoveries if a.status_code == 201}
    assert recovered[201] == len(accepted) == int(Decimal(80000) / Decimal(5000)), recovered
    assert set(refused) <= {"overpayment", "case-closed"}, refused
    assert count("SELECT count(*) FROM collections.payments WHERE case_id = :case",
                 case=case_id) == len(accepted)  # fmt: skip
    assert count("SELECT count(*) FROM collections.payments WHERE case_id = :case AND "
                 "id = ANY(:ids)", case=case_id, ids=sorted(accepted)) == len(accepted)  # fmt: skip
    assert count("SELECT sum(amount) FROM collections.payments WHERE case_id = :case",
                 case=case_id) == 80000  # fmt: skip
