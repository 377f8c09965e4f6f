"""Money that holds under concurrent requests, over the three services as real processes on
PostgreSQL: the caps hold however many approvals and payments arrive at once, and an invoice
belongs to one live claim however many filings arrive at once."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections import Counter
from collections.abc import Awaitable
from decimal import Decimal
from typing import Any, TypeVar

import httpx
import pytest

from shared.calendar import today as business_today
from tests.builders import money
from tests.conftest import Services, auth, unique

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

T = TypeVar("T")
FIRED = 50
INDEMNITY = Decimal("72000.00")  # one 80,000 invoice within a 100,000 limit, × 90%, no deductible
HANDLER = auth("claims_handler")
UW = auth("underwriter")
KINDS_PER_CLAIM: dict[str, list[str]] = {}


def day(offset: int) -> str:
    return (business_today("Asia/Shanghai") + dt.timedelta(days=offset)).isoformat()


async def limited(tasks: list[Awaitable[T]], at_once: int = 8) -> list[T]:
    """Set-up steps, several at a time (the requests under test are fired all at once)."""
    gate = asyncio.Semaphore(at_once)

    async def run(task: Awaitable[T]) -> T:
        async with gate:
            return await task

    return await asyncio.gather(*(run(t) for t in tasks))


def created(response: httpx.Response, status: int = 201) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    return body


async def insured_policy(uw: httpx.AsyncClient, **terms: Any) -> dict[str, Any]:
    return created(await uw.post("/v1/policies", headers=UW, json={
        "policyholder_id": unique("ph"), "currency": "EUR", "start_date": day(-200),
        "end_date": day(165), "cover_type": "whole_turnover", "premium_rate_pct": "0.5",
        "deductible": money("0"), "claim_threshold": money("0"), **terms}))  # fmt: skip


async def buyer_with_limit(
    uw: httpx.AsyncClient, policy: dict[str, Any], limit: str = "100000"
) -> str:
    buyer = created(await uw.post("/v1/buyers", headers=UW, json={
        "name": "Concurrent GmbH", "country": "DE", "registration_number": unique("HRB")}))  # fmt: skip
    created(await uw.post(f"/v1/policies/{policy['id']}/limits", headers=UW, json={
        "buyer_id": buyer["id"], "amount": money(limit), "effective_from": day(-200),
        "payment_terms_days": 90, "reason": "migrated"}))  # fmt: skip
    return str(buyer["id"])


def claim_body(policy: dict[str, Any], buyer_id: str, number: str) -> dict[str, Any]:
    return {"policy_id": policy["id"], "buyer_id": buyer_id, "cause": "insolvency",
            "event_date": day(-5),
            "invoices": [{"number": number, "amount": money("80000"), "shipment_date": day(-100),
                          "due_date": day(-40)}]}  # fmt: skip


async def complete_claim(
    claims: httpx.AsyncClient, policy: dict[str, Any], buyer_id: str, number: str
) -> str:
    """A claim filed, every document uploaded (a tiny valid PDF each)."""
    holder = auth("policyholder", policy["policyholder_id"])
    claim = created(await claims.post("/v1/claims", headers=holder,
                                      json=claim_body(policy, buyer_id, number)))  # fmt: skip
    for kind in claim["missing_documents"]:
        created(await claims.post(f"/v1/claims/{claim['id']}/documents", headers=holder,
                                  data={"kind": kind},
                                  files={"file": ("d.pdf", b"%PDF-1.4", "application/pdf")}))  # fmt: skip
    return str(claim["id"])


async def assessed_claim(
    claims: httpx.AsyncClient, policy: dict[str, Any], buyer_id: str, number: str
) -> str:
    """A claim filed, every document uploaded, assessed at 72,000."""
    claim = {"id": await complete_claim(claims, policy, buyer_id, number)}
    assessed = created(await claims.post(f"/v1/claims/{claim['id']}/assessment", headers=HANDLER),
                       200)  # fmt: skip
    assert assessed["indemnity"] == money(str(INDEMNITY))
    return str(claim["id"])


async def fire_at_once(
    claims: httpx.AsyncClient, claim_ids: list[str], action: str
) -> list[httpx.Response]:
    """FIRED requests at once, spread over the claims (several per claim)."""
    body = {"decision": "approve", "reason": "ok"} if action == "decision" else None
    return await asyncio.gather(*(
        claims.post(f"/v1/claims/{claim_ids[i % len(claim_ids)]}/{action}", headers=HANDLER,
                    json=body)
        for i in range(FIRED)))  # fmt: skip


async def statuses_of(claims: httpx.AsyncClient, claim_ids: list[str]) -> Counter[str]:
    bodies = await asyncio.gather(*(claims.get(f"/v1/claims/{c}", headers=HANDLER)
                                    for c in claim_ids))  # fmt: skip
    return Counter(b.json()["status"] for b in bodies)


async def approve_and_pay_at_once(
    services: Services, claim_ids: list[str], cap: Decimal, name: str
) -> None:
    fits = int(cap // INDEMNITY)
    started = time.monotonic()
    async with httpx.AsyncClient(base_url=services.urls["claims"], timeout=120) as claims:
        approvals = await fire_at_once(claims, claim_ids, "decision")
        answers = Counter(a.status_code for a in approvals)
        refusals = Counter(a.json()["type"] for a in approvals if a.status_code != 200)
        approved = (await statuses_of(claims, claim_ids))["approved"]
        print(f"\n{name}: {FIRED} approvals fired over {len(claim_ids)} claims of {INDEMNITY}: "
              f"answers {dict(answers)} {dict(refusals)}; approved {approved} "
              f"= {approved * INDEMNITY} against a cap of {cap}")  # fmt: skip
        assert set(answers) <= {200, 409}, answers
        assert set(refusals) <= {"assessment-outdated", "already-decided"}, refusals
        assert answers[200] == approved == fits
        assert approved * INDEMNITY <= cap

        payments = await fire_at_once(claims, claim_ids, "payment")
        answers = Counter(p.status_code for p in payments)
        paid = (await statuses_of(claims, claim_ids))["paid"]
        print(f"{name}: {FIRED} payments fired: answers {dict(answers)}; paid {paid} "
              f"= {paid * INDEMNITY} against a cap of {cap} "
              f"({time.monotonic() - started:.1f} s for both rounds)")  # fmt: skip
        assert set(answers) <= {200, 409, 422}, answers
        assert answers[200] == paid == fits
        assert paid * INDEMNITY <= cap


async def test_approvals_and_payments_at_once_never_pass_the_maximum_liability(
    services: Services,
) -> None:
    cap = Decimal(300000)  # four claims of 72,000 fit (288,000), a fifth does not
    async with httpx.AsyncClient(base_url=services.urls["underwriting"], timeout=60) as uw, \
            httpx.AsyncClient(base_url=services.urls["claims"], timeout=60) as claims:  # fmt: skip
        policy = await insured_policy(uw, max_liability=money(str(cap)))
        buyers = await limited([buyer_with_limit(uw, policy) for _ in range(20)])
        claim_ids = await limited([assessed_claim(claims, policy, b, f"INV-{n}")
                                   for n, b in enumerate(buyers)])  # fmt: skip
    await approve_and_pay_at_once(services, claim_ids, cap, "maximum liability")


async def test_approvals_and_payments_at_once_never_pass_the_single_buyer_cap(
    services: Services,
) -> None:
    """One buyer's claims approved and paid at once never pass the single-buyer cap. A limit is
    never above the cap, and what one buyer's claims cover together never passes its limit
    (the next test), so with the indemnity percentage at 100 % the limit and the cap bind at
    the same amount: whichever check refuses, the approved and paid indemnities stay within
    both."""
    cap = Decimal(150000)
    async with httpx.AsyncClient(base_url=services.urls["underwriting"], timeout=60) as uw, \
            httpx.AsyncClient(base_url=services.urls["claims"], timeout=120) as claims:  # fmt: skip
        policy = await insured_policy(uw, max_liability=money("5000000"), indemnity_pct="100",
                                      single_buyer_cap=money(str(cap)))  # fmt: skip
        buyer = await buyer_with_limit(uw, policy, str(cap))
        claim_ids = await limited([complete_claim(claims, policy, buyer, f"INV-{n}")
                                   for n in range(20)])  # fmt: skip
        assessed = await asyncio.gather(*(
            claims.post(f"/v1/claims/{c}/assessment", headers=HANDLER) for c in claim_ids))  # fmt: skip
        assert {a.status_code for a in assessed} == {200}, [a.text for a in assessed]

        async def indemnities(status: str) -> Decimal:
            bodies = await asyncio.gather(*(claims.get(f"/v1/claims/{c}", headers=HANDLER)
                                            for c in claim_ids))  # fmt: skip
            return Decimal(sum(Decimal(b.json()["indemnity"]["amount"])
                               for b in bodies if b.json()["status"] == status))  # fmt: skip

        approvals = await fire_at_once(claims, claim_ids, "decision")
        answers = Counter(a.status_code for a in approvals)
        approved = await indemnities("approved")
        print(f"\nsingle-buyer cap: {FIRED} approvals fired over 20 claims: answers "
              f"{dict(answers)}; approved {approved} against a cap of {cap}")  # fmt: skip
        assert set(answers) <= {200, 409, 422}, answers
        assert 0 < approved <= cap
        payments = await fire_at_once(claims, claim_ids, "payment")
        paid = await indemnities("paid")
        print(f"single-buyer cap: {FIRED} payments fired: paid {paid}")
        assert set(Counter(p.status_code for p in payments)) <= {200, 409, 422}
        assert paid == approved <= cap


async def test_claims_assessed_and_approved_at_once_never_cover_more_than_the_buyers_limit(
    services: Services,
) -> None:
    """Twenty claims of one buyer, one 80,000 invoice each, on a 100,000 limit: assessed all at
    once (an assessment running beside another does not see it, so several count on the whole
    limit), then approvals fired at once: what the approved claims cover never passes the limit,
    nor what is paid 90 % of it; claims assessed again one after another then approve what the
    limit has left, and no more."""
    limit = Decimal(100000)
    async with httpx.AsyncClient(base_url=services.urls["underwriting"], timeout=60) as uw, \
            httpx.AsyncClient(base_url=services.urls["claims"], timeout=120) as claims:  # fmt: skip
        policy = await insured_policy(uw, max_liability=money("5000000"))
        buyer = await buyer_with_limit(uw, policy)
        claim_ids = await limited([complete_claim(claims, policy, buyer, f"LIM-{n}")
                                   for n in range(20)])  # fmt: skip
        assessed = await asyncio.gather(*(
            claims.post(f"/v1/claims/{c}/assessment", headers=HANDLER) for c in claim_ids))  # fmt: skip
        assert {a.status_code for a in assessed} == {200}, [a.text for a in assessed]
        counted = Decimal(sum(Decimal(a.json()["assessment"]["insured_loss"]["amount"])
                              for a in assessed))  # fmt: skip

        async def covered(status: str) -> Decimal:
            bodies = await asyncio.gather(*(claims.get(f"/v1/claims/{c}", headers=HANDLER)
                                            for c in claim_ids))  # fmt: skip
            return Decimal(sum(Decimal(b.json()["assessment"]["insured_loss"]["amount"])
                               for b in bodies if b.json()["status"] == status))  # fmt: skip

        approvals = await fire_at_once(claims, claim_ids, "decision")
        answers = Counter(a.status_code for a in approvals)
        refusals = Counter(a.json()["type"] for a in approvals if a.status_code != 200)
        approved = await covered("approved")
        print(f"\n20 claims of 80,000 assessed at once cover {counted} of a {limit} limit; "
              f"{FIRED} approvals fired: answers {dict(answers)} {dict(refusals)}; approved "
              f"claims cover {approved}")  # fmt: skip
        assert set(answers) <= {200, 409, 422}, answers
        assert set(refusals) <= {"assessment-outdated", "already-decided", "nil-indemnity"}
        assert 0 < approved <= limit

        payments = await fire_at_once(claims, claim_ids, "payment")
        paid = await covered("paid")
        paid_sum = sum(Decimal(p.json()["indemnity"]["amount"]) for p in payments
                       if p.status_code == 200)  # fmt: skip
        print(f"{FIRED} payments fired: paid claims cover {paid}, {paid_sum} paid")
        assert paid == approved and paid_sum <= limit * Decimal("0.9")

        for claim_id in claim_ids:  # one after another, each sees what the others left
            state = (await claims.get(f"/v1/claims/{claim_id}", headers=HANDLER)).json()
            if state["status"] != "assessed":
                continue
            again = created(await claims.post(f"/v1/claims/{claim_id}/assessment",
                                              headers=HANDLER), 200)  # fmt: skip
            if Decimal(again["indemnity"]["amount"]) > 0:
                created(await claims.post(f"/v1/claims/{claim_id}/decision", headers=HANDLER,
                                          json={"decision": "approve", "reason": "ok"}), 200)  # fmt: skip
        assert paid + await covered("approved") == limit


async def test_identical_filings_at_once_leave_one_live_claim_and_a_rejection_frees_it(
    services: Services,
) -> None:
    async with httpx.AsyncClient(base_url=services.urls["underwriting"], timeout=60) as uw:
        policy = await insured_policy(uw, max_liability=money("1000000"))
        buyer = await buyer_with_limit(uw, policy)
    holder = auth("policyholder", policy["policyholder_id"])
    body = claim_body(policy, buyer, "SAME-1")
    async with httpx.AsyncClient(base_url=services.urls["claims"], timeout=120) as claims:
        filings = await asyncio.gather(
            *(claims.post("/v1/claims", headers=holder, json=body) for _ in range(FIRED))
        )
        answers = Counter(f.status_code for f in filings)
        [winner] = [f.json()["id"] for f in filings if f.status_code == 201]
        named = {f.json()["claims"]["SAME-1"] for f in filings if f.status_code == 409}
        types = {f.json()["type"] for f in filings if f.status_code == 409}
        listed = (await claims.get(f"/v1/claims?policy_id={policy['id']}",
                                   headers=HANDLER)).json()["items"]  # fmt: skip
        print(f"\n{FIRED} identical filings fired: answers {dict(answers)}; "
              f"claims on the invoice {len(listed)}")  # fmt: skip
        assert answers == {201: 1, 409: FIRED - 1}
        assert types == {"invoice-already-claimed"} and named == {winner}
        assert [c["id"] for c in listed] == [winner]

        created(await claims.post(f"/v1/claims/{winner}/decision", headers=HANDLER,
                                  json={"decision": "reject", "reason": "no"}), 200)  # fmt: skip
        refiled = await asyncio.gather(
            *(claims.post("/v1/claims", headers=holder, json=body) for _ in range(10))
        )
        assert sorted(r.status_code for r in refiled) == [201] + [409] * 9


async def test_documents_uploaded_at_once_complete_the_file_once(services: Services) -> None:
    """A policyholder sends every missing document at once (twice each): whichever upload comes
    last sees the others, so the file is complete — under review, its decision due, one status
    change — and not left awaiting documents it has received."""
    async with httpx.AsyncClient(base_url=services.urls["underwriting"], timeout=60) as uw:
        policy = await insured_policy(uw, max_liability=money("1000000"))
        buyer = await buyer_with_limit(uw, policy)
    holder = auth("policyholder", policy["policyholder_id"])
    async with httpx.AsyncClient(base_url=services.urls["claims"], timeout=120) as claims:
        for n in range(3):
            claim = created(await claims.post("/v1/claims", headers=holder,
                                              json=claim_body(policy, buyer, f"DOCS-{n}")))  # fmt: skip
            uploads = await asyncio.gather(*(
                claims.post(f"/v1/claims/{claim['id']}/documents", headers=holder,
                            data={"kind": kind},
                            files={"file": ("d.pdf", b"%PDF-1.4", "application/pdf")})
                for kind in claim["missing_documents"] for _ in range(2)))  # fmt: skip
            assert {u.status_code for u in uploads} == {201}
            stored = created(await claims.get(f"/v1/claims/{claim['id']}", headers=holder), 200)
            assert stored["missing_documents"] == []
            assert stored["status"] == "under_review", stored["status"]
            assert stored["decision_due"] is not None
            completed = [u.json() for u in uploads if u.json()["claim_status"] == "under_review"]
            assert len(completed) >= 1
