"""The closed loop over real HTTP (domain.md, Collections: a buyer's payment behaviour in collections
and claims feeds its grade): a paid claim and a collection case's payment behaviour reach the
buyer's grade in underwriting through each sender's outbox, once, however often they are sent."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from shared.calendar import today as business_today
from tests.builders import money
from tests.conftest import (
    auth,
    backend,
    create_migrated_database,
    free_urls,
    start_services,
    token,
    unique,
)

pytestmark = pytest.mark.e2e

UW, HANDLER, COLLECTOR = auth("underwriter"), auth("claims_handler"), auth("collector")
GOOD_INDICATORS = {
    "current_ratio": "2.5", "dso_days": "40", "dso_prior_year_days": "40", "overdue_ratio": "0.01",
    "litigation_count": 0, "management_changes_12m": 0, "equity": money("50000000"),
}  # fmt: skip


@dataclass
class Loop:
    urls: dict[str, str]
    engines: dict[str, Engine]

    def rows(self, service: str, table: str, where: str, **params: Any) -> list[Any]:
        """Rows of a service's table, read straight from its database."""
        schema = f"{service}." if backend().kind == "postgresql" else ""
        with self.engines[service].connect() as connection:
            query = text(f"SELECT * FROM {schema}{table} WHERE {where} ORDER BY created_at")
            return list(connection.execute(query, params).mappings())


@pytest.fixture(scope="module")
def loop() -> Iterator[Loop]:
    """The three services on a database of their own, the outbox loops turning every 0.3 s."""
    b = backend()
    database = f"{b.main_database}_loop" if b.kind == "postgresql" else "loop"
    create_migrated_database(b, database)
    urls = free_urls()
    running = start_services(database, urls, env={"TCI_OUTBOX_INTERVAL_SECONDS": "0.3"})
    driver = "postgresql+psycopg" if b.kind == "postgresql" else "sqlite"
    engines = {s: create_engine(make_url(b.url_for(database, s)).set(drivername=driver))
               for s in ("underwriting", "claims", "collections")}  # fmt: skip
    try:
        yield Loop(urls, engines)
    finally:
        running.stop()
        for engine in engines.values():
            engine.dispose()
        b.drop_database(database)


def day(offset: int) -> str:
    return (business_today("Asia/Shanghai") + dt.timedelta(days=offset)).isoformat()


def a_buyer(loop: Loop, indicators: dict[str, Any] = GOOD_INDICATORS) -> dict[str, Any]:
    with httpx.Client(base_url=loop.urls["underwriting"]) as underwriting:
        created = underwriting.post("/v1/buyers", headers=UW, json={
            "name": "Loop GmbH", "country": "DE", "registration_number": unique("HRB"),
            "indicators": indicators})  # fmt: skip
        assert created.status_code == 201, created.text
        return created.json()  # type: ignore[no-any-return]


def buyer_now(loop: Loop, buyer_id: str) -> dict[str, Any]:
    with httpx.Client(base_url=loop.urls["underwriting"]) as underwriting:
        return underwriting.get(f"/v1/buyers/{buyer_id}", headers=UW).json()  # type: ignore[no-any-return]


def wait_for(read: Callable[[], Any], until: Callable[[Any], bool], seconds: float = 20) -> Any:
    deadline = time.monotonic() + seconds
    value = read()
    while not until(value) and time.monotonic() < deadline:
        time.sleep(0.2)
        value = read()
    return value


def signals_factor(buyer: dict[str, Any]) -> str | None:
    return next((f["value"] for f in buyer["grade_factors"] if f["factor"] == "signals"), None)


def kinds_recorded(loop: Loop, buyer_id: str) -> list[str]:
    return [r["kind"] for r in loop.rows("underwriting", "buyer_signals", "buyer_id = :b",
                                         b=buyer_id)]  # fmt: skip


# ---------------------------------------------------------------- a paid claim


def insured(loop: Loop, buyer_id: str) -> tuple[dict[str, Any], dict[str, str]]:
    """Over HTTP: a policy whose protracted-default waiting period is 30 days with a 100,000
    limit on the buyer; the policy and its policyholder's headers."""
    holder_id = unique("ph")
    with httpx.Client(base_url=loop.urls["underwriting"]) as underwriting:
        policy = underwriting.post("/v1/policies", headers=UW, json={
            "policyholder_id": holder_id, "currency": "EUR", "start_date": day(-250),
            "end_date": day(114), "cover_type": "whole_turnover",
            "max_liability": money("1000000"), "premium_rate_pct": "0.5",
            "protracted_default_wait_days": 30}).json()  # fmt: skip
        limit = underwriting.post(f"/v1/policies/{policy['id']}/limits", headers=UW, json={
            "buyer_id": buyer_id, "amount": money("100000"), "effective_from": day(-200),
            "payment_terms_days": 90, "reason": "migrated"})  # fmt: skip
        assert limit.status_code == 201, limit.text
    return policy, auth("policyholder", holder_id)


def holds_limits(loop: Loop, holder_id: str, *buyer_ids: str) -> dict[str, Any]:
    """Over HTTP: a policy of the policyholder with a 10,000 limit on each buyer, so that its
    collection cases' signals weigh on their grades (a creditor's stake in the buyer); the
    policy."""
    with httpx.Client(base_url=loop.urls["underwriting"]) as underwriting:
        policy = underwriting.post("/v1/policies", headers=UW, json={
            "policyholder_id": holder_id, "currency": "EUR", "start_date": day(-250),
            "end_date": day(114), "cover_type": "whole_turnover",
            "max_liability": money("1000000"), "premium_rate_pct": "0.5"}).json()  # fmt: skip
        for buyer_id in buyer_ids:
            limit = underwriting.post(f"/v1/policies/{policy['id']}/limits", headers=UW, json={
                "buyer_id": buyer_id, "amount": money("10000"), "effective_from": day(-200),
                "payment_terms_days": 90, "reason": "migrated"})  # fmt: skip
            assert limit.status_code == 201, limit.text
    return policy  # type: ignore[no-any-return]


LOOP_INVOICES = [
    {"number": "LOOP-1", "amount": money("30000"), "shipment_date": day(-100), "due_date": day(-40)},
    {"number": "LOOP-2", "amount": money("20000"), "shipment_date": day(-95), "due_date": day(-35)},
]  # fmt: skip


def notify_overdue(loop: Loop, policy: dict[str, Any], holder: dict[str, str], buyer_id: str,
                   invoices: list[dict[str, Any]]) -> None:  # fmt: skip
    with httpx.Client(base_url=loop.urls["claims"], timeout=30) as claims:
        notified = claims.post("/v1/overdue-notifications", headers=holder, json={
            "policy_id": policy["id"], "buyer_id": buyer_id, "kind": "overdue",
            "invoices": invoices})  # fmt: skip
        assert notified.status_code == 201, notified.text


def paid_claim(loop: Loop, policy: dict[str, Any], holder: dict[str, str], buyer_id: str,
               invoices: list[dict[str, Any]]) -> str:  # fmt: skip
    """A protracted-default claim on the invoices filed with every document, assessed,
    approved and paid; its id."""
    with httpx.Client(base_url=loop.urls["claims"], timeout=30) as claims:
        filed = claims.post("/v1/claims", headers=holder, json={
            "policy_id": policy["id"], "buyer_id": buyer_id, "cause": "protracted_default",
            "invoices": invoices})  # fmt: skip
        assert filed.status_code == 201, filed.text
        claim = filed.json()
        for kind in claim["missing_documents"]:
            uploaded = claims.post(f"/v1/claims/{claim['id']}/documents", headers=holder,
                                   data={"kind": kind},
                                   files={"file": ("scan.pdf", b"%PDF-1.4", "application/pdf")})  # fmt: skip
            assert uploaded.status_code == 201, uploaded.text
        for step, body in (("assessment", None), ("decision", {"decision": "approve", "reason": "ok"}),
                           ("payment", None)):  # fmt: skip
            done = claims.post(f"/v1/claims/{claim['id']}/{step}", headers=HANDLER, json=body)
            assert done.status_code == 200, (step, done.text)
        assert done.json()["status"] == "paid"
    return claim["id"]  # type: ignore[no-any-return]


def paid_protracted_default_claim(loop: Loop, buyer_id: str) -> tuple[dict[str, Any], str]:
    """Over HTTP: a policy whose protracted-default waiting period is 30 days, a 100,000 limit,
    two invoices 40 and 35 days overdue notified, a protracted-default claim filed with every
    document, assessed, approved and paid."""
    policy, holder = insured(loop, buyer_id)
    notify_overdue(loop, policy, holder, buyer_id, LOOP_INVOICES)
    return policy, paid_claim(loop, policy, holder, buyer_id, LOOP_INVOICES)


def test_a_paid_protracted_default_claim_moves_the_buyers_grade_and_its_history_shows_it(
    loop: Loop,
) -> None:
    buyer = a_buyer(loop)
    policy, claim_id = paid_protracted_default_claim(loop, buyer["id"])
    # overdue notified (+1), protracted default filed: a payment delay (+1), paid: confirmed (+2)
    now = wait_for(lambda: buyer_now(loop, buyer["id"]), lambda b: signals_factor(b) == "4")
    assert signals_factor(now) == "4" and now["grade"] == buyer["grade"] + 4
    # Each signal travels through its own outbox message: the first two may arrive either way.
    assert sorted(kinds_recorded(loop, buyer["id"])) == [
        "overdue_notified", "payment_delay", "protracted_default"]  # fmt: skip
    [paid] = loop.rows("underwriting", "buyer_signals", "buyer_id = :b AND kind = :k",
                       b=buyer["id"], k="protracted_default")  # fmt: skip
    assert paid["policy_id"] == policy["id"] and claim_id in paid["details"]
    assert str(paid["observed_on"]) == day(0)
    history = loop.rows("underwriting", "buyer_grades", "buyer_id = :b", b=buyer["id"])
    last = history[-1]
    assert (last["cause"], last["grade"], str(last["graded_on"])) == (
        "signal",
        now["grade"],
        day(0),
    )
    assert [g["grade"] for g in history] == [buyer["grade"] + n for n in range(5) if n != 3]


def test_a_paid_claims_signal_sent_again_is_recorded_once(loop: Loop) -> None:
    """The claim's payment replayed is refused; the outbox message delivered again (as a retry
    after a lost answer would) is answered from the receiver's idempotency record."""
    buyer = a_buyer(loop)
    _, claim_id = paid_protracted_default_claim(loop, buyer["id"])
    with httpx.Client(base_url=loop.urls["claims"], timeout=30) as claims:
        assert claims.post(f"/v1/claims/{claim_id}/payment", headers=HANDLER).status_code == 409
    # Delivered after the payment's answer, in the background: on a busy machine a moment later.
    [message] = wait_for(
        lambda: loop.rows("claims", "outbox", "idempotency_key = :k",
                          k=f"claims:claim-paid:{claim_id}"),
        lambda rows: len(rows) == 1 and rows[0]["delivered_at"] is not None,
    )  # fmt: skip
    assert message["delivered_at"] is not None and message["response_status"] == 201
    body = message["body"] if isinstance(message["body"], dict) else json.loads(message["body"])
    service = {"Authorization": f"Bearer {token('service', subject='claims')}",
               "Idempotency-Key": message["idempotency_key"]}  # fmt: skip
    with httpx.Client(base_url=loop.urls["underwriting"]) as underwriting:
        again = underwriting.post(message["path"], headers=service, json=body)
    assert again.status_code == 201 and again.headers.get("idempotent-replayed") == "true"
    assert kinds_recorded(loop, buyer["id"]).count("protracted_default") == 1
    assert signals_factor(buyer_now(loop, buyer["id"])) == "4"


# ---------------------------------------------------------------- a collection case


def test_a_collection_cases_legal_step_and_payment_in_full_reach_the_buyers_grade_once(
    loop: Loop,
) -> None:
    buyer = a_buyer(loop)
    holder_id = unique("ph")
    holds_limits(loop, holder_id, buyer["id"])
    with httpx.Client(base_url=loop.urls["collections"], timeout=30) as collections:
        opened = collections.post("/v1/cases", headers=auth("policyholder", holder_id), json={
            "creditor_id": holder_id, "buyer_id": buyer["id"], "debtor_country": "DE",
            # 40 days past due: below the legal rung (45), which would tell underwriting itself.
            "invoices": [{"number": "C-1", "amount": money("12000"), "due_date": day(-40)}]})  # fmt: skip
        assert opened.status_code == 201, opened.text
        case_id = opened.json()["id"]
        # The mandate: a payment delay (+1).
        now = wait_for(lambda: buyer_now(loop, buyer["id"]), lambda b: signals_factor(b) == "1")
        assert now["grade"] == buyer["grade"] + 1
        for note in ("lawsuit filed", "hearing set"):  # the first legal step signals, once (+1)
            logged = collections.post(f"/v1/cases/{case_id}/activities", headers=COLLECTOR,
                                      json={"kind": "legal_filing", "occurred_on": day(0),
                                            "note": note})  # fmt: skip
            assert logged.status_code == 201, logged.text
        now = wait_for(lambda: buyer_now(loop, buyer["id"]), lambda b: signals_factor(b) == "2")
        assert now["grade"] == buyer["grade"] + 2
        key = {**COLLECTOR, "Idempotency-Key": unique("pay")}
        payments = [collections.post(f"/v1/cases/{case_id}/payments", headers=key, json={
            "amount": money("12000"), "received_on": day(0)}) for _ in range(2)]  # fmt: skip
        assert [p.status_code for p in payments] == [201, 201]
        assert payments[1].headers.get("idempotent-replayed") == "true"
        assert (
            collections.get(f"/v1/cases/{case_id}", headers=COLLECTOR).json()["status"] == "closed"
        )
    # Paid in full (−1): the delay that opened the case is offset, the legal step stays.
    now = wait_for(lambda: buyer_now(loop, buyer["id"]), lambda b: signals_factor(b) == "1")
    assert now["grade"] == buyer["grade"] + 1
    time.sleep(1)  # a few more rounds of the outbox loop: nothing is sent twice
    assert kinds_recorded(loop, buyer["id"]) == [
        "payment_delay",
        "collection_legal",
        "collection_paid",
    ]
    keys = [m["idempotency_key"] for m in loop.rows("collections", "outbox", "aggregate_id = :c",
                                                     c=case_id)]  # fmt: skip
    assert sorted(keys) == sorted(
        f"collections:{k}:{case_id}" for k in ("mandate", "legal", "paid")
    )


def points_by_kind(loop: Loop, buyer_id: str) -> dict[str, list[Decimal]]:
    """The points each signal recorded on the buyer added, by kind (each list sorted), as
    underwriting lists them."""
    with httpx.Client(base_url=loop.urls["underwriting"]) as underwriting:
        listed = underwriting.get(f"/v1/buyers/{buyer_id}/signals", headers=UW).json()["items"]
    found: dict[str, list[Decimal]] = {}
    for signal in listed:
        found.setdefault(signal["kind"], []).append(Decimal(signal["points"]))
    return {kind: sorted(points) for kind, points in found.items()}


def test_two_claims_of_one_default_under_one_policy_move_the_grade_as_one_claim_of_both_invoices(
    loop: Loop,
) -> None:
    """One invoice per claim, filed and paid one after the other: overdue notified (+1), the
    first claim filed (+1) and paid (+2); the second claim's filing and payment repeat that
    default under the policy (0 each) until its arrears are cleared."""
    one_claim, two_claims = a_buyer(loop), a_buyer(loop)
    paid_protracted_default_claim(loop, one_claim["id"])
    policy, holder = insured(loop, two_claims["id"])
    notify_overdue(loop, policy, holder, two_claims["id"], LOOP_INVOICES)
    for invoice in LOOP_INVOICES:
        paid_claim(loop, policy, holder, two_claims["id"], [invoice])

    wanted = {"overdue_notified": [Decimal(1)], "payment_delay": [Decimal(0), Decimal(1)],
              "protracted_default": [Decimal(0), Decimal(2)]}  # fmt: skip
    assert wait_for(lambda: points_by_kind(loop, two_claims["id"]),
                    lambda found: found == wanted) == wanted  # fmt: skip
    both = wait_for(lambda: buyer_now(loop, one_claim["id"]), lambda b: signals_factor(b) == "4")
    split = buyer_now(loop, two_claims["id"])
    assert signals_factor(split) == signals_factor(both) == "4"
    assert split["grade"] - two_claims["grade"] == both["grade"] - one_claim["grade"] == 4
    [filed, _] = loop.rows("underwriting", "buyer_signals", "buyer_id = :b AND kind = :k",
                           b=two_claims["id"], k="payment_delay")  # fmt: skip
    assert filed["policy_id"] == policy["id"]  # a claim's delay is reported under its policy


def mandate(collections: httpx.Client, creditor: str, buyer_id: str, numbers: list[str]) -> str:
    opened = collections.post("/v1/cases", headers=auth("policyholder", creditor), json={
        "creditor_id": creditor, "buyer_id": buyer_id, "debtor_country": "DE",
        # 40 days past due: below the legal rung (45), which would tell underwriting itself.
        "invoices": [{"number": n, "amount": money("1000"), "due_date": day(-40)}
                     for n in numbers]})  # fmt: skip
    assert opened.status_code == 201, opened.text
    return opened.json()["id"]  # type: ignore[no-any-return]


def pay(collections: httpx.Client, case_id: str, amount: str) -> None:
    paid = collections.post(f"/v1/cases/{case_id}/payments", headers=COLLECTOR, json={
        "amount": money(amount), "received_on": day(0)})  # fmt: skip
    assert paid.status_code == 201, paid.text


def outbox_keys(loop: Loop, case_ids: list[str]) -> list[str]:
    return sorted(m["idempotency_key"] for case_id in case_ids
                  for m in loop.rows("collections", "outbox", "aggregate_id = :c", c=case_id))  # fmt: skip


def test_three_mandates_of_one_creditor_move_the_grade_as_one_mandate_of_the_three_invoices(
    loop: Loop,
) -> None:
    """A creditor's delay on a buyer counts once (+1) however many cases it hands over; a case
    paid in full while another of the creditor's cases still collects says nothing; the last
    one paid ends the delay (−1). Another creditor's mandate is more evidence (+1)."""
    three_cases, one_case = a_buyer(loop), a_buyer(loop)
    creditor, other = unique("ph"), unique("ph")
    holds_limits(loop, creditor, three_cases["id"], one_case["id"])
    holds_limits(loop, other, three_cases["id"])
    with httpx.Client(base_url=loop.urls["collections"], timeout=30) as collections:
        cases = [mandate(collections, creditor, three_cases["id"], [n])
                 for n in ("M-1", "M-2", "M-3")]  # fmt: skip
        single = mandate(collections, creditor, one_case["id"], ["M-1", "M-2", "M-3"])
        wanted = {"payment_delay": [Decimal(0), Decimal(0), Decimal(1)]}
        assert wait_for(lambda: points_by_kind(loop, three_cases["id"]),
                        lambda found: found == wanted) == wanted  # fmt: skip
        split = buyer_now(loop, three_cases["id"])
        whole = wait_for(
            lambda: buyer_now(loop, one_case["id"]), lambda b: signals_factor(b) == "1"
        )
        assert signals_factor(split) == signals_factor(whole) == "1"
        assert split["grade"] - three_cases["grade"] == whole["grade"] - one_case["grade"] == 1
        rows = loop.rows("underwriting", "buyer_signals", "buyer_id = :b", b=three_cases["id"])
        assert {(r["creditor_id"], r["case_id"]) for r in rows} == {(creditor, c) for c in cases}

        for case_id in cases[:2]:
            pay(collections, case_id, "1000")
        pay(collections, single, "2000")
        # Paid in full, but the creditor's third case still collects: nothing is sent.
        assert outbox_keys(loop, cases) == sorted(f"collections:mandate:{c}" for c in cases)
        mandate(collections, other, three_cases["id"], ["O-1"])
        pay(collections, cases[2], "1000")
        pay(collections, single, "1000")

    assert outbox_keys(loop, cases) == sorted([*(f"collections:mandate:{c}" for c in cases),
                                               f"collections:paid:{cases[2]}"])  # fmt: skip
    # The creditor's delay ended (+1 −1); the other creditor's goes on (+1).
    wanted = {"payment_delay": [Decimal(0), Decimal(0), Decimal(1), Decimal(1)],
              "collection_paid": [Decimal(-1)]}  # fmt: skip
    assert wait_for(lambda: points_by_kind(loop, three_cases["id"]),
                    lambda found: found == wanted) == wanted  # fmt: skip
    assert signals_factor(buyer_now(loop, three_cases["id"])) == "1"
    assert signals_factor(wait_for(lambda: buyer_now(loop, one_case["id"]),
                                   lambda b: signals_factor(b) is None)) is None  # fmt: skip


def test_the_creditors_last_cases_paid_at_once_end_its_delay_once(loop: Loop) -> None:
    """Four cases of one creditor on one buyer paid in full at the same moment: the payments
    take turns, so exactly one of them sees no other case still collecting and says the delay
    is paid."""
    buyer = a_buyer(loop)
    creditor = unique("ph")
    holds_limits(loop, creditor, buyer["id"])
    with httpx.Client(base_url=loop.urls["collections"], timeout=60) as collections:
        cases = [mandate(collections, creditor, buyer["id"], [f"R-{n}"]) for n in range(4)]
    with ThreadPoolExecutor(max_workers=len(cases)) as pool:

        def paid_at_once(case_id: str) -> int:
            with httpx.Client(base_url=loop.urls["collections"], timeout=60) as collections:
                return collections.post(f"/v1/cases/{case_id}/payments", headers=COLLECTOR,
                                        json={"amount": money("1000"),
                                              "received_on": day(0)}).status_code  # fmt: skip

        assert list(pool.map(paid_at_once, cases)) == [201] * len(cases)
    paid = [k for k in outbox_keys(loop, cases) if k.startswith("collections:paid:")]
    assert len(paid) == 1, paid
    back = wait_for(lambda: buyer_now(loop, buyer["id"]), lambda b: signals_factor(b) is None)
    assert signals_factor(back) is None and back["grade"] == buyer["grade"]


# ---------------------------------------------------------------- a creditor's stake in the buyer

# Six points in Germany (country level 2): grade 7, one signal's point from halving its limits.
WEAK_INDICATORS = {**GOOD_INDICATORS, "current_ratio": "0.5", "overdue_ratio": "0.2"}


def limit_histories(loop: Loop, policy: dict[str, Any]) -> list[list[tuple[str, str]]]:
    with httpx.Client(base_url=loop.urls["underwriting"]) as underwriting:
        listed = underwriting.get(f"/v1/policies/{policy['id']}/limits", headers=UW).json()
    return [[(e["amount"]["amount"], e["effective_from"]) for e in limit["history"]]
            for limit in listed["items"]]  # fmt: skip


def test_mandates_of_a_policyholder_without_a_limit_on_the_buyer_move_no_grade_and_no_limit(
    loop: Loop,
) -> None:
    """A policyholder holding no limit on a buyer mandates cases against it (and one goes to
    law): underwriting records each signal but weighs none, so the buyer's grade and another
    policyholder's limit on it stay; the same mandate of a policyholder holding a limit on the
    buyer lowers its grade as before, and halves the limits on it."""
    buyer = a_buyer(loop, WEAK_INDICATORS)
    assert buyer["grade"] == 7
    insured_policy, _ = insured(loop, buyer["id"])
    before = limit_histories(loop, insured_policy)
    stranger, creditor = unique("ph"), unique("ph")
    holds_limits(loop, creditor, buyer["id"])
    with httpx.Client(base_url=loop.urls["collections"], timeout=30) as collections:
        cases = [mandate(collections, stranger, buyer["id"], [n]) for n in ("S-1", "S-2")]
        went_to_law = collections.post(f"/v1/cases/{cases[0]}/activities", headers=COLLECTOR,
                                       json={"kind": "legal_filing", "occurred_on": day(0),
                                             "note": "lawsuit filed"})  # fmt: skip
        assert went_to_law.status_code == 201, went_to_law.text
        recorded = wait_for(lambda: kinds_recorded(loop, buyer["id"]), lambda k: len(k) == 3)
        assert sorted(recorded) == ["collection_legal", "payment_delay", "payment_delay"]
        rows = loop.rows("underwriting", "buyer_signals", "buyer_id = :b", b=buyer["id"])
        assert {(r["creditor_id"], bool(r["weighed"]), Decimal(r["points"])) for r in rows} == {
            (stranger, False, Decimal(0))}  # fmt: skip
        now = buyer_now(loop, buyer["id"])
        assert now["grade"] == 7 and signals_factor(now) is None
        assert limit_histories(loop, insured_policy) == before
        with httpx.Client(base_url=loop.urls["underwriting"]) as underwriting:
            listed = underwriting.get(f"/v1/buyers/{buyer['id']}/signals", headers=UW).json()
        assert {(s["weighed"], s["unweighed_reason"]["code"]) for s in listed["items"]} == {
            (False, "creditor_without_stake")}  # fmt: skip

        mandate(collections, creditor, buyer["id"], ["C-1"])
    now = wait_for(lambda: buyer_now(loop, buyer["id"]), lambda b: signals_factor(b) == "1")
    assert (now["grade"], signals_factor(now)) == (8, "1")
    [halved] = wait_for(lambda: limit_histories(loop, insured_policy), lambda h: h != before)
    assert ("50000.00", day(30)) in halved  # halved after the 30-day notice period
