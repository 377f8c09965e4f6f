"""A claim pays on the invoices as they were notified, not on what the claim says of them: an
invoice notified overdue is claimed with its notified shipment date, its original due date (or a
later one, an extension) and no more than the amount notified in time; a claim that says
otherwise is refused, and one filed before it was compared is assessed on the notified facts."""

from __future__ import annotations

from typing import Any

import httpx

from tests.builders import money, ok
from tests.claims.test_api import HANDLER, apis, complete, insured, invoice
from tests.conftest import auth

__all__ = ["apis"]

NOTIFIED_H1 = invoice("H1", "1000", "2027-03-01", "2027-04-15")  # deadline 14 June: in time
NOTIFIED_G1 = invoice("G1", "10000", "2027-03-01", "2027-04-15")


async def notified_book(
    apis: dict[str, httpx.AsyncClient],
) -> tuple[dict[str, Any], dict[str, str]]:
    """A policy (limit 100,000, deductible 5,000) with H1 and G1 notified overdue in time."""
    claims = apis["claims"]
    policy, buyer = await insured(apis["underwriting"])
    holder = auth("policyholder", policy["policyholder_id"])
    base = {"policy_id": policy["id"], "buyer_id": buyer["id"]}
    ok(await claims.post("/v1/overdue-notifications", headers=holder, json={
        **base, "kind": "overdue", "invoices": [NOTIFIED_H1, NOTIFIED_G1]}), 201)  # fmt: skip
    return base, holder


def insolvency(base: dict[str, Any], *invoices: dict[str, Any]) -> dict[str, Any]:
    return {**base, "cause": "insolvency", "event_date": "2027-06-01", "invoices": list(invoices)}


async def test_an_invoice_claimed_above_its_notified_amount_is_refused_naming_what_was_notified(
    apis: dict[str, httpx.AsyncClient],
) -> None:
    claims = apis["claims"]
    base, holder = await notified_book(apis)
    refused = await claims.post("/v1/claims", headers=holder, json=insolvency(
        base, {**NOTIFIED_H1, "amount": money("90000")}))  # fmt: skip
    assert refused.status_code == 422, refused.text
    problem = refused.json()
    assert problem["type"] == "invoice-differs-from-notification"
    assert problem["invoice_numbers"] == ["H1"]
    assert problem["notified"] == {
        "H1": {
            "shipment_date": "2027-03-01",
            "due_date": "2027-04-15",
            "amount": money("1000.00"),
            "differs": ["amount"],
        }
    }
    listed = ok(await claims.get("/v1/claims", headers=holder), 200)
    assert listed["items"] == []  # nothing filed, no invoice held


async def test_an_invoice_claimed_with_other_dates_than_notified_is_refused(
    apis: dict[str, httpx.AsyncClient],
) -> None:
    """A shipment date moved off the notified one (off a stop-shipment period, say), or a due date
    before the original one, is refused; a later due date is an extension and is taken."""
    claims = apis["claims"]
    base, holder = await notified_book(apis)
    moved = await claims.post("/v1/claims", headers=holder, json=insolvency(
        base, invoice("G1", "10000", "2027-02-01", "2027-05-20")))  # fmt: skip
    assert moved.status_code == 422, moved.text
    assert moved.json()["type"] == "invoice-differs-from-notification"
    assert moved.json()["notified"]["G1"]["differs"] == ["shipment_date"]
    assert moved.json()["notified"]["G1"]["shipment_date"] == "2027-03-01"
    earlier = await claims.post("/v1/claims", headers=holder, json=insolvency(
        base, {**NOTIFIED_G1, "due_date": "2027-04-01"}))  # fmt: skip
    assert earlier.status_code == 422 and earlier.json()["notified"]["G1"]["differs"] == [
        "due_date"
    ]


async def test_invoices_claimed_as_notified_are_filed_and_assessed_as_before(
    apis: dict[str, httpx.AsyncClient],
) -> None:
    claims = apis["claims"]
    base, holder = await notified_book(apis)
    claim = ok(await claims.post("/v1/claims", headers=holder, json=insolvency(
        base, {**NOTIFIED_H1, "amount": money("800")},
        {**NOTIFIED_G1, "due_date": "2027-05-20"})), 201)  # fmt: skip
    await complete(claims, claim, holder)
    assessed = ok(await claims.post(f"/v1/claims/{claim['id']}/assessment", headers=HANDLER), 200)
    lines = {i["number"]: (i["amount"]["amount"], i["exclusions"], i["covered"]["amount"])
             for i in assessed["assessment"]["invoices"]}  # fmt: skip
    assert lines == {"H1": ("800.00", [], "800.00"), "G1": ("10000.00", [], "10000.00")}
    assert assessed["indemnity"] == money("4720.00")  # 10,800 × 90% − 5,000


async def test_a_claim_filed_before_its_invoices_were_notified_is_assessed_on_the_notified_facts(
    apis: dict[str, httpx.AsyncClient],
) -> None:
    """A claim not compared with notifications when filed (here: notified after it) is assessed on
    what was notified: H1 counts for the 1,000 notified, not the 90,000 claimed, and G1, claimed
    as shipped on another day than notified, is excluded."""
    claims = apis["claims"]
    policy, buyer = await insured(apis["underwriting"])
    holder = auth("policyholder", policy["policyholder_id"])
    base = {"policy_id": policy["id"], "buyer_id": buyer["id"]}
    claim = ok(await claims.post("/v1/claims", headers=holder, json=insolvency(
        base, {**NOTIFIED_H1, "amount": money("90000")},
        invoice("G1", "10000", "2027-02-01", "2027-05-20"))), 201)  # fmt: skip
    ok(await claims.post("/v1/overdue-notifications", headers=holder, json={
        **base, "kind": "overdue", "invoices": [NOTIFIED_H1, NOTIFIED_G1]}), 201)  # fmt: skip
    await complete(claims, claim, holder)
    assessed = ok(await claims.post(f"/v1/claims/{claim['id']}/assessment", headers=HANDLER), 200)
    lines = {i["number"]: (i["amount"]["amount"], i["exclusions"], i["covered"]["amount"])
             for i in assessed["assessment"]["invoices"]}  # fmt: skip
    assert lines == {"H1": ("1000.00", [], "1000.00"),
                     "G1": ("10000.00", ["differs_from_notification"], "0.00")}  # fmt: skip
    reductions = assessed["assessment"]["steps"][0]
    assert reductions["note"].startswith("invoice H1 counted at the 1000.00 notified in time, "
                                         "not the 90000.00 claimed")  # fmt: skip
    assert assessed["indemnity"] == money("0.00")  # 1,000 × 90% is under the 5,000 deductible
