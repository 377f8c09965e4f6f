"""The three services as real processes over loopback HTTP."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from typing import Any

import httpx
import pytest

from shared.calendar import today as business_today
from tests.builders import assert_no_floats, money
from tests.conftest import (
    Services,
    auth,
    backend,
    create_migrated_database,
    free_urls,
    start_services,
    unique,
)

pytestmark = pytest.mark.e2e


def test_the_three_services_answer_readyz(services: Services) -> None:
    for url in services.urls.values():
        response = httpx.get(f"{url}/readyz")
        assert response.status_code == 200 and response.json() == {"status": "ready"}
        assert response.headers["x-request-id"]


def test_collections_publishes_both_ladders(services: Services) -> None:
    url = f"{services.urls['collections']}/v1/ladders"
    assert httpx.get(url).status_code == 401  # like every /v1 route, it needs a token
    ladders = httpx.get(url, headers=auth("policyholder", "ph-1")).json()["items"]
    assert {ladder["name"] for ladder in ladders} >= {"reminder_15_30_45", "legal_30_60_90"}


def test_a_limit_request_and_a_bank_coverage_check_over_http(services: Services) -> None:
    base = services.urls["underwriting"]
    uw, holder, bank = auth("underwriter"), unique("ph"), unique("bank")
    with httpx.Client(base_url=base) as client:
        policy = client.post("/v1/policies", headers=uw, json={
            "policyholder_id": holder, "currency": "EUR", "start_date": "2027-01-01",
            "end_date": "2027-12-31", "cover_type": "whole_turnover",
            "max_liability": money("1000000"), "premium_rate_pct": "0.5"}).json()  # fmt: skip
        buyer = client.post(
            "/v1/buyers",
            headers=uw,
            json={
                "name": "E2E GmbH",
                "country": "DE",
                "registration_number": unique("HRB"),
                "indicators": {
                    "current_ratio": "2.5",
                    "dso_days": "30",
                    "dso_prior_year_days": "30",
                    "overdue_ratio": "0",
                    "litigation_count": 0,
                    "management_changes_12m": 0,
                    "equity": money("9000000"),
                },
            },
        ).json()
        answer = client.post(
            f"/v1/policies/{policy['id']}/limit-requests",
            headers=auth("policyholder", holder),
            json={"buyer_id": buyer["id"], "amount": money("50000"), "payment_terms_days": 60},
        )
        assert answer.status_code == 201 and answer.json()["status"] == "approved"
        client.post(f"/v1/policies/{policy['id']}/assignments", headers=uw,
                    json={"bank_id": bank})  # fmt: skip
        covered = client.post("/v1/coverage-checks", headers=auth("bank", bank), json={
            "policy_id": policy["id"], "buyer_id": buyer["id"], "invoice_amount": money("70000"),
            "shipment_date": "2027-03-01", "due_date": "2027-04-30"})  # fmt: skip
        items = [
            {"policy_id": policy["id"], "buyer_id": buyer["id"],
             "invoice_amount": money(str(10000 * n)), "shipment_date": f"2027-0{n}-01",
             "due_date": f"2027-0{n}-28"}
            for n in range(1, 10)
        ] + [{"policy_id": policy["id"], "buyer_id": "buy_unknown", "invoice_amount": money("1"),
              "shipment_date": "2027-03-01", "due_date": "2027-04-30"}]  # fmt: skip
        batch = client.post("/v1/coverage-checks/batch", headers=auth("bank", bank),
                            json={"items": items})  # fmt: skip
        assert batch.status_code == 200, batch.text
        results = batch.json()["results"]
        assert len(results) == len(items) and results[-1]["error"]["status"] == 404
        for item, result in zip(items[:-1], results[:-1], strict=True):
            single = client.post("/v1/coverage-checks", headers=auth("bank", bank), json=item)
            assert result == single.json()
        assert [r["covered_amount"]["amount"] for r in results[:6]] == [
            "10000.00",
            "20000.00",
            "30000.00",
            "40000.00",
            "50000.00",
            "50000.00",
        ]
    body = covered.json()
    assert_no_floats(body)
    assert body["covered_amount"] == money("50000.00")
    assert body["insured_amount"] == money("45000.00")
    assert body["reasons"] == ["partially_covered"]


@pytest.mark.postgres
async def test_concurrent_twins_with_one_idempotency_key_create_one_buyer(
    services: Services,
) -> None:
    headers = {**auth("underwriter"), "Idempotency-Key": unique("key")}
    body = {"name": "Twin", "country": "FR", "registration_number": unique("RCS")}
    async with httpx.AsyncClient(base_url=services.urls["underwriting"]) as client:
        answers = await asyncio.gather(
            *(client.post("/v1/buyers", json=body, headers=headers) for _ in range(40))
        )
        statuses = sorted(a.status_code for a in answers)
        created = {a.json()["id"] for a in answers if a.status_code == 201}
        found = await client.get(
            f"/v1/buyers?country=FR&registration_number={body['registration_number']}",
            headers=auth("underwriter"),
        )
    assert len(created) == 1, statuses
    assert set(statuses) <= {201, 409}
    assert len(found.json()["items"]) == 1


def approved_claim(services: Services) -> tuple[dict[str, Any], dict[str, Any], str]:
    """Over HTTP: a policy with a 100,000 limit since long ago, two overdue invoices notified,
    an insolvency claim with every document, assessed (85,000) and approved."""
    today = business_today("Asia/Shanghai")

    def day(offset: int) -> str:
        return (today + dt.timedelta(days=offset)).isoformat()

    holder_id, uw = unique("ph"), auth("underwriter")
    holder = auth("policyholder", holder_id)
    with httpx.Client(base_url=services.urls["underwriting"]) as underwriting:
        policy = underwriting.post("/v1/policies", headers=uw, json={
            "policyholder_id": holder_id, "currency": "EUR", "start_date": day(-200),
            "end_date": day(165), "cover_type": "whole_turnover",
            "max_liability": money("1000000"), "premium_rate_pct": "0.5",
            "deductible": money("5000")}).json()  # fmt: skip
        buyer = underwriting.post("/v1/buyers", headers=uw, json={
            "name": "Claim GmbH", "country": "DE", "registration_number": unique("HRB")}).json()  # fmt: skip
        limit = underwriting.post(f"/v1/policies/{policy['id']}/limits", headers=uw, json={
            "buyer_id": buyer["id"], "amount": money("100000"), "effective_from": day(-200),
            "payment_terms_days": 90, "reason": "migrated"})  # fmt: skip
        assert limit.status_code == 201, limit.text
    invoices = [
        {"number": "E2E-1", "amount": money("80000"), "shipment_date": day(-100), "due_date": day(-40)},
        {"number": "E2E-2", "amount": money("40000"), "shipment_date": day(-90), "due_date": day(-30)},
    ]  # fmt: skip
    with httpx.Client(base_url=services.urls["claims"], timeout=30) as claims:
        notified = claims.post("/v1/overdue-notifications", headers=holder, json={
            "policy_id": policy["id"], "buyer_id": buyer["id"], "kind": "overdue",
            "invoices": invoices})  # fmt: skip
        assert notified.status_code == 201, notified.text
        claim = claims.post("/v1/claims", headers=holder, json={
            "policy_id": policy["id"], "buyer_id": buyer["id"], "cause": "insolvency",
            "event_date": day(-5), "invoices": invoices}).json()  # fmt: skip
        for kind in claim["missing_documents"]:
            uploaded = claims.post(f"/v1/claims/{claim['id']}/documents", headers=holder,
                                   data={"kind": kind},
                                   files={"file": ("scan.pdf", b"%PDF-1.4", "application/pdf")})  # fmt: skip
            assert uploaded.status_code == 201, uploaded.text
        handler = auth("claims_handler")
        assessed = claims.post(f"/v1/claims/{claim['id']}/assessment", headers=handler)
        assert assessed.status_code == 200, assessed.text
        assert assessed.json()["indemnity"] == money("85000.00")
        decided = claims.post(f"/v1/claims/{claim['id']}/decision", headers=handler,
                              json={"decision": "approve", "reason": "ok"})  # fmt: skip
        assert decided.status_code == 200, decided.text
    return policy, buyer, claim["id"]


def test_a_claim_is_paid_and_its_debt_passes_to_collections_over_http(services: Services) -> None:
    """Claims asks underwriting for the policy and for coverage, notifies it of the overdue, and
    opens the subrogation case in collections: three processes, real HTTP."""
    policy, buyer, claim_id = approved_claim(services)
    handler = auth("claims_handler")
    with httpx.Client(base_url=services.urls["claims"], timeout=30) as claims:
        paid = claims.post(f"/v1/claims/{claim_id}/payment", headers=handler)
        assert paid.status_code == 200, paid.text
        case_id = paid.json()["collection_case_id"]
        assert case_id
        replay = claims.post(f"/v1/claims/{claim_id}/payment", headers=handler)
        assert replay.status_code == 409
    with httpx.Client(base_url=services.urls["collections"]) as collections:
        found = collections.get(f"/v1/cases?claim_id={claim_id}", headers=auth("collector"))
        [case] = found.json()["items"]
        assert case["id"] == case_id and case["outstanding"] == money("120000.00")
        assert case["insurer_share_pct"] == "70.8333"
    tomorrow = business_today("Asia/Shanghai") + dt.timedelta(days=1)
    with httpx.Client(base_url=services.urls["underwriting"]) as underwriting:
        stopped = underwriting.post("/v1/coverage-checks", headers=auth("service"), json={
            "policy_id": policy["id"], "buyer_id": buyer["id"], "invoice_amount": money("10"),
            "shipment_date": tomorrow.isoformat(),
            "due_date": (tomorrow + dt.timedelta(days=30)).isoformat()})  # fmt: skip
        reasons = stopped.json()["reasons"]
        assert "stop_shipment" in reasons and "limit_withdrawn" in reasons


def test_a_bank_check_made_once_the_policyholder_has_its_answer_sees_what_it_started(
    services: Services,
) -> None:
    """domain.md: a notification starts stop-shipment (underwriting hears of it), and an
    insolvency, once its claim is approved on its proof, withdraws the buyer's limit: a bank
    checking right after the policyholder's 201, or the handler's approval, sees it (claims tells
    underwriting before it answers, not after)."""
    today = business_today("Asia/Shanghai")

    def day(offset: int) -> str:
        return (today + dt.timedelta(days=offset)).isoformat()

    holder_id, bank_id, uw = unique("ph"), unique("bank"), auth("underwriter")
    holder, bank = auth("policyholder", holder_id), auth("bank", bank_id)
    with httpx.Client(base_url=services.urls["underwriting"]) as underwriting:
        policy = underwriting.post("/v1/policies", headers=uw, json={
            "policyholder_id": holder_id, "currency": "EUR", "start_date": day(-200),
            "end_date": day(165), "cover_type": "whole_turnover",
            "max_liability": money("1000000"), "premium_rate_pct": "0.5"}).json()  # fmt: skip
        buyer = underwriting.post("/v1/buyers", headers=uw, json={
            "name": "Stop GmbH", "country": "DE", "registration_number": unique("HRB")}).json()  # fmt: skip
        assert underwriting.post(f"/v1/policies/{policy['id']}/limits", headers=uw, json={
            "buyer_id": buyer["id"], "amount": money("100000"), "effective_from": day(-200),
            "payment_terms_days": 90, "reason": "migrated"}).status_code == 201  # fmt: skip
        assert underwriting.post(f"/v1/policies/{policy['id']}/assignments", headers=uw,
                                 json={"bank_id": bank_id}).status_code == 201  # fmt: skip
        check = {"policy_id": policy["id"], "buyer_id": buyer["id"],
                 "invoice_amount": money("1000"), "shipment_date": day(1), "due_date": day(31)}  # fmt: skip

        def reasons() -> list[str]:
            answer = underwriting.post("/v1/coverage-checks", headers=bank, json=check)
            assert answer.status_code == 200, answer.text
            return list(answer.json()["reasons"])

        assert reasons() == []
        invoices = [{"number": "STOP-1", "amount": money("30000"), "shipment_date": day(-80),
                     "due_date": day(-20)}]  # fmt: skip
        with httpx.Client(base_url=services.urls["claims"], timeout=30) as claims:
            notified = claims.post("/v1/overdue-notifications", headers=holder, json={
                "policy_id": policy["id"], "buyer_id": buyer["id"], "kind": "overdue",
                "invoices": invoices})  # fmt: skip
            assert notified.status_code == 201 and notified.json()["stop_shipment_signalled"]
            assert reasons() == ["stop_shipment"]
            filed = claims.post("/v1/claims", headers=holder, json={
                "policy_id": policy["id"], "buyer_id": buyer["id"], "cause": "insolvency",
                "event_date": day(-2), "invoices": invoices})  # fmt: skip
            assert filed.status_code == 201, filed.text
            assert reasons() == ["stop_shipment"]  # the insolvency is not confirmed yet
            claim, handler = filed.json(), auth("claims_handler")
            for kind in claim["missing_documents"]:
                assert claims.post(f"/v1/claims/{claim['id']}/documents", headers=holder,
                                   data={"kind": kind}, files={"file": (
                                       "scan.pdf", b"%PDF-1.4 scanned", "application/pdf")},
                                   ).status_code == 201  # fmt: skip
            assessed = claims.post(f"/v1/claims/{claim['id']}/assessment", headers=handler)
            assert assessed.status_code == 200, assessed.text
            approved = claims.post(f"/v1/claims/{claim['id']}/decision", headers=handler,
                                   json={"decision": "approve", "reason": "proof checked"})  # fmt: skip
            assert approved.status_code == 200, approved.text
            assert approved.json()["buyer_signal"] == {
                "kind": "insolvency_filing", "observed_on": day(-2), "delivery": "delivered"}  # fmt: skip
            assert "limit_withdrawn" in reasons()


@pytest.mark.postgres
async def test_concurrent_payments_pay_a_claim_once_and_open_one_case(services: Services) -> None:
    _, _, claim_id = approved_claim(services)
    async with httpx.AsyncClient(base_url=services.urls["claims"], timeout=30) as claims:
        answers = await asyncio.gather(*(
            claims.post(f"/v1/claims/{claim_id}/payment", headers=auth("claims_handler"))
            for _ in range(6)))  # fmt: skip
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200, 409, 409, 409, 409, 409], statuses
    assert {a.json()["type"] for a in answers if a.status_code == 409} == {"already-paid"}
    async with httpx.AsyncClient(base_url=services.urls["collections"]) as collections:
        found = await collections.get(f"/v1/cases?claim_id={claim_id}", headers=auth("collector"))
        assert len(found.json()["items"]) == 1
        # The claims service repeating itself (another key, or none) still opens no second case.
        body = {"creditor_id": "ph", "buyer_id": found.json()["items"][0]["buyer_id"],
                "debtor_country": "DE", "claim_id": claim_id,
                "invoices": [{"number": "X", "amount": money("1"), "due_date": "2026-01-01"}]}  # fmt: skip
        twins = await asyncio.gather(*(
            collections.post("/v1/cases", json=body,
                             headers={**auth("service"), "Idempotency-Key": unique("k")})
            for _ in range(4)))  # fmt: skip
        assert {t.status_code for t in twins} == {409}
        assert {t.json()["case_id"] for t in twins} == {found.json()["items"][0]["id"]}


def test_a_payment_during_a_collections_outage_is_handed_over_once_it_is_back() -> None:
    """Nothing is lost: the paid claim's case waits in the claims outbox while collections is
    down, and the background loop opens it, once, when collections answers again."""
    b = backend()
    database = f"{b.main_database}_outage" if b.kind == "postgresql" else "outage"
    create_migrated_database(b, database)
    urls = free_urls()
    fast = {"TCI_OUTBOX_INTERVAL_SECONDS": "0.3"}
    running = start_services(database, urls, env=fast)
    try:
        _, _, claim_id = approved_claim(Services(urls))  # assessed with collections' recoveries
        running.stop("collections")
        handler = auth("claims_handler")
        with httpx.Client(base_url=urls["claims"], timeout=30) as claims:
            paid = claims.post(f"/v1/claims/{claim_id}/payment", headers=handler)
            assert paid.status_code == 200 and paid.json()["status"] == "paid"
            assert paid.json()["collection_case_id"] is None  # collections is down
            start_services(database, urls, only=["collections"], env=fast, running=running)
            deadline = time.monotonic() + 20
            case_id = None
            while case_id is None and time.monotonic() < deadline:
                time.sleep(0.2)
                case_id = claims.get(f"/v1/claims/{claim_id}",
                                     headers=handler).json()["collection_case_id"]  # fmt: skip
        assert case_id, "the outbox did not deliver once collections was back"
        time.sleep(1)  # a few more rounds of the loop: still one case
        with httpx.Client(base_url=urls["collections"]) as collections:
            found = collections.get(f"/v1/cases?claim_id={claim_id}", headers=auth("collector"))
        assert [c["id"] for c in found.json()["items"]] == [case_id]
    finally:
        running.stop()
        b.drop_database(database)
