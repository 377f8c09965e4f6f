"""Amounts recovered before payment reduce the unpaid invoices (domain.md, Indemnity step 1): what
the policyholder's own collection cases (mandates, opened before any claim) recovered on a
claimed invoice is read from collections when the claim is assessed, and again when it is paid;
a recovery the policyholder also declares is the same money, deducted once. The subrogation case
that takes the mandate over then shares what is left by the indemnity against what was unpaid."""

from __future__ import annotations

from typing import Any

import httpx

from tests.builders import money, ok
from tests.claims.test_api import INVOICES, complete
from tests.conftest import auth

COLLECTOR = auth("collector")
HANDLER = auth("claims_handler")


async def mandate_with_recovery(
    collections: httpx.AsyncClient, policy: dict[str, Any], buyer: dict[str, Any], amount: str
) -> dict[str, Any]:
    """The policyholder's own collection case on both claimed invoices, `amount` recovered on it
    (credited to the oldest invoice, INV-1, first)."""
    holder = auth("policyholder", policy["policyholder_id"])
    case = ok(await collections.post("/v1/cases", headers=holder, json={
        "creditor_id": policy["policyholder_id"], "buyer_id": buyer["id"],
        "debtor_country": buyer["country"], "ladder": "reminder_15_30_45",
        "invoices": [{"number": i["number"], "amount": i["amount"], "due_date": i["due_date"]}
                     for i in INVOICES]}), 201)  # fmt: skip
    ok(await collections.post(f"/v1/cases/{case['id']}/payments", headers=COLLECTOR, json={
        "amount": money(amount), "received_on": "2027-06-10"}), 201)  # fmt: skip
    return case


async def assessed_claim(
    claims: httpx.AsyncClient, policy: dict[str, Any], buyer: dict[str, Any], **filing: Any
) -> dict[str, Any]:
    holder = auth("policyholder", policy["policyholder_id"])
    claim = ok(await claims.post("/v1/claims", headers=holder, json={
        "policy_id": policy["id"], "buyer_id": buyer["id"], "cause": "insolvency",
        "event_date": "2027-06-01", "invoices": INVOICES, **filing}), 201)  # fmt: skip
    claim = await complete(claims, claim, holder)
    return ok(await claims.post(f"/v1/claims/{claim['id']}/assessment", headers=HANDLER), 200)


def lines(claim: dict[str, Any]) -> dict[str, tuple[str, str, str]]:
    return {line["number"]: (line["recovered_in_collections"]["amount"],
                             line["reduction"]["amount"], line["unpaid"]["amount"])
            for line in claim["assessment"]["invoices"]}  # fmt: skip


async def test_a_recovery_on_the_policyholders_mandate_reduces_the_indemnity_and_the_takeover_matches(
    book: dict[str, Any],
) -> None:
    """80,000 + 40,000 unpaid, 30,000 recovered on the mandate before the claim: unpaid 50,000 +
    40,000, all within the 100,000 limit → × 90% = 81,000 − 5,000 = 76,000 (not 85,000). The
    mandate becomes the subrogation case: its outstanding is the claim's unpaid, and a recovery
    of 9,000 is fee 900, insurer 8,100 × 76,000 / 90,000 = 6,840, policyholder 1,260."""
    claims, collections = book["claims"], book["collections"]
    case = await mandate_with_recovery(collections, book["policy"], book["buyer"], "30000")
    claim = await assessed_claim(claims, book["policy"], book["buyer"])
    assert claim["indemnity"] == money("76000.00")
    assert lines(claim) == {"INV-1": ("30000.00", "30000.00", "50000.00"),
                            "INV-2": ("0.00", "0.00", "40000.00")}  # fmt: skip
    step = claim["assessment"]["steps"][0]
    assert step["amount"] == money("30000.00")
    assert "recoveries of 30000.00 recorded by collection cases" in step["note"]
    ok(await claims.post(f"/v1/claims/{claim['id']}/decision", headers=HANDLER,
                         json={"decision": "approve", "reason": "ok"}), 200)  # fmt: skip
    paid = ok(await claims.post(f"/v1/claims/{claim['id']}/payment", headers=HANDLER), 200)
    assert paid["indemnity"] == money("76000.00") and paid["collection_case_id"] == case["id"]
    taken = ok(await collections.get(f"/v1/cases/{case['id']}", headers=COLLECTOR), 200)
    assert taken["claim_id"] == claim["id"] and taken["outstanding"] == money("90000.00")
    shared = ok(await collections.post(f"/v1/cases/{case['id']}/payments", headers=COLLECTOR,
                                       json={"amount": money("9000"),
                                             "received_on": "2027-06-10"}), 201)  # fmt: skip
    assert shared["allocation"] == {"fee": money("900.00"), "insurer": money("6840.00"),
                                    "policyholder": money("1260.00")}  # fmt: skip


async def test_a_recovery_declared_and_recorded_is_deducted_once(book: dict[str, Any]) -> None:
    """The policyholder declares the 30,000 its mandate recovered, and 4,000 of credit notes:
    30,000 on INV-1 (recorded), the credit notes oldest first (INV-1 again) → 46,000 + 40,000 →
    × 90% = 77,400 − 5,000 = 72,400."""
    await mandate_with_recovery(book["collections"], book["policy"], book["buyer"], "30000")
    claim = await assessed_claim(book["claims"], book["policy"], book["buyer"],
                                 recovered=money("30000"), credit_notes=money("4000"))  # fmt: skip
    assert claim["indemnity"] == money("72400.00")
    assert lines(claim)["INV-1"] == ("30000.00", "34000.00", "46000.00")
    assert (
        "already recorded by collections: counted once" in claim["assessment"]["steps"][0]["note"]
    )


async def test_a_recovery_after_the_assessment_is_deducted_when_the_claim_is_paid(
    book: dict[str, Any],
) -> None:
    """Assessed at 76,000 (30,000 recovered); 10,000 more recovered before the payment: paid
    80,000 − 40,000 = 40,000 + 40,000 = 80,000 × 90% − 5,000 = 67,000, the reason said."""
    claims, collections = book["claims"], book["collections"]
    case = await mandate_with_recovery(collections, book["policy"], book["buyer"], "30000")
    claim = await assessed_claim(claims, book["policy"], book["buyer"])
    assert claim["indemnity"] == money("76000.00")
    ok(await claims.post(f"/v1/claims/{claim['id']}/decision", headers=HANDLER,
                         json={"decision": "approve", "reason": "ok"}), 200)  # fmt: skip
    ok(await collections.post(f"/v1/cases/{case['id']}/payments", headers=COLLECTOR, json={
        "amount": money("10000"), "received_on": "2027-06-10"}), 201)  # fmt: skip
    paid = ok(await claims.post(f"/v1/claims/{claim['id']}/payment", headers=HANDLER), 200)
    assert paid["status"] == "paid" and paid["indemnity"] == money("67000.00")
    assert lines(paid)["INV-1"] == ("40000.00", "40000.00", "40000.00")
    taken = ok(await collections.get(f"/v1/cases/{case['id']}", headers=COLLECTOR), 200)
    assert taken["outstanding"] == money("80000.00")


async def test_recoveries_are_read_by_staff_and_by_their_own_creditor_only(
    book: dict[str, Any],
) -> None:
    collections, policy, buyer = book["collections"], book["policy"], book["buyer"]
    case = await mandate_with_recovery(collections, policy, buyer, "30000")
    url = f"/v1/creditors/{policy['policyholder_id']}/recoveries"
    query = {"buyer_id": buyer["id"], "currency": "EUR"}
    for headers in (COLLECTOR, auth("policyholder", policy["policyholder_id"])):
        read = ok(await collections.get(url, params=query, headers=headers), 200)
        assert read["total"] == money("30000.00")
        assert read["invoices"] == [{"number": "INV-1", "recovered": money("30000.00"),
                                     "case_ids": [case["id"]]}]  # fmt: skip
    stranger = await collections.get(url, params=query, headers=auth("policyholder", "other"))
    unknown = await collections.get("/v1/creditors/other/recoveries", params=query,
                                    headers=auth("policyholder", "other"))  # fmt: skip
    assert stranger.status_code == unknown.status_code == 404
    assert stranger.json()["detail"] == unknown.json()["detail"].replace(
        "other", policy["policyholder_id"]
    )
    other_currency = ok(await collections.get(url, headers=COLLECTOR,
                                              params={**query, "currency": "USD"}), 200)  # fmt: skip
    assert other_currency["invoices"] == [] and other_currency["total"] == money("0.00", "USD")
    bad = await collections.get(url, headers=COLLECTOR, params={**query, "currency": "EURO"})
    assert bad.status_code == 422


async def test_the_mandate_taken_over_owes_what_the_claim_left_unpaid_after_its_credit_notes(
    book: dict[str, Any],
) -> None:
    """30,000 recovered on the mandate and a 4,000 credit note declared: the claim leaves 46,000 +
    40,000 unpaid and pays 72,400. The mandate it takes over owed 50,000 + 40,000: the buyer owes
    4,000 less on INV-1, so the case's outstanding is the claim's 86,000, and a recovery of all of
    it is shared by 72,400 / 86,000 (fee 8,600; insurer 65,160; policyholder 12,240)."""
    claims, collections = book["claims"], book["collections"]
    case = await mandate_with_recovery(collections, book["policy"], book["buyer"], "30000")
    claim = await assessed_claim(claims, book["policy"], book["buyer"], credit_notes=money("4000"))
    assert claim["indemnity"] == money("72400.00")
    ok(await claims.post(f"/v1/claims/{claim['id']}/decision", headers=HANDLER,
                         json={"decision": "approve", "reason": "ok"}), 200)  # fmt: skip
    ok(await claims.post(f"/v1/claims/{claim['id']}/payment", headers=HANDLER), 200)
    taken = ok(await collections.get(f"/v1/cases/{case['id']}", headers=COLLECTOR), 200)
    assert taken["claim_id"] == claim["id"] and taken["outstanding"] == money("86000.00")
    assert "reduce INV-1 by 4000.00" in taken["activities"][-1]["note"]
    shared = ok(await collections.post(f"/v1/cases/{case['id']}/payments", headers=COLLECTOR,
                                       json={"amount": money("86000"),
                                             "received_on": "2027-06-10"}), 201)  # fmt: skip
    assert shared["allocation"] == {"fee": money("8600.00"), "insurer": money("65160.00"),
                                    "policyholder": money("12240.00")}  # fmt: skip
    assert ok(await collections.get(f"/v1/cases/{case['id']}", headers=COLLECTOR),
              200)["status"] == "closed"  # fmt: skip
