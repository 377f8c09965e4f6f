"""Collections under requests fired at once, over the services as real processes on the suite's
database (PostgreSQL with `TEST_DATABASE_URL`, else SQLite): one live case per debt however many
mandates arrive together, and recoveries that never pass what a case owes and are shared, together,
as their total is to the cent."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import Counter
from decimal import Decimal

import httpx
import pytest

from services.collections import rules
from shared.calendar import today as business_today
from shared.money import Money
from tests.builders import make_buyer, money, ok
from tests.conftest import Services, auth, unique

pytestmark = [pytest.mark.e2e]

FIRED = 40


def day(offset: int) -> str:
    """A day from the services' today (a mandate collects a debt past due)."""
    return (business_today("Asia/Shanghai") + dt.timedelta(days=offset)).isoformat()


async def test_mandates_fired_at_once_for_one_debt_open_one_case_and_name_it_to_the_rest(
    services: Services,
) -> None:
    async with httpx.AsyncClient(base_url=services.urls["underwriting"], timeout=60) as uw:
        buyer = await make_buyer(uw)
    creditor = unique("ph")
    body = {"creditor_id": creditor, "buyer_id": buyer["id"], "debtor_country": "DE",
            "invoices": [{"number": "INV-1", "amount": money("6000"), "due_date": day(-40)},
                         {"number": "INV-2", "amount": money("4000"), "due_date": day(-10)}]}  # fmt: skip
    holder = auth("policyholder", creditor)
    async with httpx.AsyncClient(base_url=services.urls["collections"], timeout=120) as client:
        answers = await asyncio.gather(*(client.post("/v1/cases", headers=holder, json=body)
                                         for _ in range(FIRED)))  # fmt: skip
        listed = ok(await client.get("/v1/cases", headers=holder), 200)["items"]
    statuses = Counter(a.status_code for a in answers)
    assert statuses == Counter({201: 1, 409: FIRED - 1}), [a.text for a in answers][:3]
    opened = next(a.json()["id"] for a in answers if a.status_code == 201)
    assert {a.json()["type"] for a in answers if a.status_code == 409} == {"case-exists"}
    assert {a.json()["case_id"] for a in answers if a.status_code == 409} == {opened}
    assert [c["id"] for c in listed] == [opened]


async def test_recoveries_fired_at_once_never_pass_the_debt_and_share_their_total_to_the_cent(
    services: Services,
) -> None:
    """85,000 paid against 120,000 unpaid; forty recoveries of 3,333.33 at once: thirty-six fit
    (119,999.88), the rest are overpayments. Together they are shared as 119,999.88 is: fee
    11,999.99, insurer 76,499.92, policyholder 31,499.97 (each rounded on its own: 11,999.88,
    76,500.00 and 31,500.00)."""
    async with httpx.AsyncClient(base_url=services.urls["underwriting"], timeout=60) as uw:
        buyer = await make_buyer(uw)
    body = {"creditor_id": unique("ph"), "buyer_id": buyer["id"], "debtor_country": "DE",
            "invoices": [{"number": "INV-1", "amount": money("80000"), "due_date": "2027-01-10"},
                         {"number": "INV-2", "amount": money("40000"), "due_date": "2027-02-10"}],
            "claim_id": unique("clm"), "indemnity_paid": money("85000.00")}  # fmt: skip
    collector = auth("collector")
    async with httpx.AsyncClient(base_url=services.urls["collections"], timeout=120) as client:
        case = ok(await client.post("/v1/cases", headers=auth("service"), json=body), 201)
        answers = await asyncio.gather(*(
            client.post(f"/v1/cases/{case['id']}/payments", headers=collector,
                        json={"amount": money("3333.33"), "received_on": case["opened_on"]})
            for _ in range(FIRED)))  # fmt: skip
        after = ok(await client.get(f"/v1/cases/{case['id']}", headers=collector), 200)
    statuses = Counter((a.status_code, a.json().get("type")) for a in answers)
    assert statuses == Counter({(201, None): 36, (422, "overpayment"): FIRED - 36}), statuses
    assert len(after["payments"]) == 36
    assert after["recovered"] == money("119999.88") and after["outstanding"] == money("0.12")
    parts = {k: sum((Decimal(p["allocation"][k]["amount"]) for p in after["payments"]),
                    Decimal(0)) for k in ("fee", "insurer", "policyholder")}  # fmt: skip
    assert parts == {"fee": Decimal("11999.99"), "insurer": Decimal("76499.92"),
                     "policyholder": Decimal("31499.97")}  # fmt: skip
    whole = rules.share_recovery(Money(Decimal("119999.88"), "EUR"), fee_pct=Decimal(10),
                                 share=rules.InsurerShare(Decimal(85000), Decimal(120000)))  # fmt: skip
    assert (whole.fee.amount, whole.insurer.amount, whole.policyholder.amount) == (
        parts["fee"], parts["insurer"], parts["policyholder"])  # fmt: skip


PROMISES = 20


async def test_promises_fired_at_once_never_promise_together_more_than_the_case_owes(
    services: Services,
) -> None:
    """1,000 owed; twenty promises of 300 fired at once: three fit together (900), the other
    seventeen are refused as `promise-exceeds-outstanding`, and three promises are committed."""
    async with httpx.AsyncClient(base_url=services.urls["underwriting"], timeout=60) as uw:
        buyer = await make_buyer(uw)
    creditor = unique("ph")
    body = {"creditor_id": creditor, "buyer_id": buyer["id"], "debtor_country": "DE",
            "invoices": [{"number": "INV-1", "amount": money("1000"), "due_date": day(-10)}]}  # fmt: skip
    collector = auth("collector")
    async with httpx.AsyncClient(base_url=services.urls["collections"], timeout=120) as client:
        case = ok(await client.post("/v1/cases", headers=auth("policyholder", creditor),
                                    json=body), 201)  # fmt: skip
        due = (dt.date.fromisoformat(case["opened_on"]) + dt.timedelta(days=10)).isoformat()
        answers = await asyncio.gather(*(
            client.post(f"/v1/cases/{case['id']}/activities", headers=collector, json={
                "kind": "promise_to_pay", "occurred_on": case["opened_on"],
                "promised_amount": money("300"), "promised_on": due})
            for _ in range(PROMISES)))  # fmt: skip
        after = ok(await client.get(f"/v1/cases/{case['id']}", headers=collector), 200)
    statuses = Counter((a.status_code, a.json().get("type")) for a in answers)
    assert statuses == Counter({(201, None): 3,
                                (422, "promise-exceeds-outstanding"): PROMISES - 3}), statuses  # fmt: skip
    committed = [a for a in after["activities"] if a["kind"] == "promise_to_pay"]
    assert sorted(a["id"] for a in committed) == sorted(
        a.json()["id"] for a in answers if a.status_code == 201)  # fmt: skip
    refused = [a.json() for a in answers if a.status_code == 422]
    assert {r["promisable"]["amount"] for r in refused} == {"100.00"}
