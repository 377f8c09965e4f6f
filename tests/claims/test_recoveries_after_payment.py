"""Between a paid claim and its subrogation case: once the claim is paid, what the policyholder's
own collection case (a mandate) recovers on the claim's invoices is a recovery after a paid claim,
shared between insurer and policyholder (domain.md, Collections), even when it is recorded before
collections has received the claim's message. When that message takes the mandate over, every
recovery the claim's indemnity did not deduct is shared again as if the takeover had been there,
and the case owes what the claim left unpaid (an invoice its credit notes settled owes nothing)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import httpx

from services.claims.models import outbox
from services.claims.service import record_delivery
from services.collections import rules
from shared.db import get_session
from shared.http import ServiceClient
from shared.money import Money
from shared.outbox import deliver
from shared.peers import get_peers
from shared.settings import DEVELOPMENT_JWT_SECRET
from tests.builders import money, ok
from tests.claims.test_api import INVOICES, complete
from tests.conftest import auth

COLLECTOR = auth("collector")
HANDLER = auth("claims_handler")


async def mandate(book: dict[str, Any], *recoveries: str) -> dict[str, Any]:
    """The policyholder's own collection case on both claimed invoices (80,000 due 30 April,
    40,000 due 19 May), with each recovery recorded on it before any claim."""
    policy, buyer = book["policy"], book["buyer"]
    holder = auth("policyholder", policy["policyholder_id"])
    case = ok(await book["collections"].post("/v1/cases", headers=holder, json={
        "creditor_id": policy["policyholder_id"], "buyer_id": buyer["id"],
        "debtor_country": buyer["country"], "ladder": "reminder_15_30_45",
        "invoices": [{"number": i["number"], "amount": i["amount"], "due_date": i["due_date"]}
                     for i in INVOICES]}), 201)  # fmt: skip
    for amount in recoveries:
        await recover(book, case["id"], amount, "2027-06-10")
    return case


async def recover(book: dict[str, Any], case_id: str, amount: str, on: str) -> dict[str, Any]:
    return ok(await book["collections"].post(f"/v1/cases/{case_id}/payments", headers=COLLECTOR,
                                             json={"amount": money(amount), "received_on": on}),
              201)  # fmt: skip


async def approved_claim(book: dict[str, Any], **filing: Any) -> dict[str, Any]:
    """The claim on both invoices, filed, complete, assessed and approved."""
    claims, policy = book["claims"], book["policy"]
    holder = auth("policyholder", policy["policyholder_id"])
    claim = ok(await claims.post("/v1/claims", headers=holder, json={
        "policy_id": policy["id"], "buyer_id": book["buyer"]["id"], "cause": "insolvency",
        "event_date": "2027-06-01", "invoices": INVOICES, **filing}), 201)  # fmt: skip
    claim = await complete(claims, claim, holder)
    ok(await claims.post(f"/v1/claims/{claim['id']}/assessment", headers=HANDLER), 200)
    return ok(await claims.post(f"/v1/claims/{claim['id']}/decision", headers=HANDLER,
                                json={"decision": "approve", "reason": "ok"}), 200)  # fmt: skip


@asynccontextmanager
async def collections_down(claims: httpx.AsyncClient) -> AsyncIterator[None]:
    """Claims cannot reach collections (each call answers 503) while the block runs."""
    app = claims._transport.app  # type: ignore[attr-defined]
    original = app.dependency_overrides[get_peers]
    working = await original()
    down = ServiceClient("http://collections", jwt_secret=DEVELOPMENT_JWT_SECRET,
                         caller_name="claims", retries=0,
                         transport=httpx.MockTransport(lambda _: httpx.Response(503)))  # fmt: skip

    async def peers_without_collections() -> dict[str, ServiceClient]:
        return {**working, "collections": down}

    app.dependency_overrides[get_peers] = peers_without_collections
    try:
        yield
    finally:
        await down.aclose()
        app.dependency_overrides[get_peers] = original


async def paid_while_collections_is_down(book: dict[str, Any], claim_id: str) -> dict[str, Any]:
    """The claim paid while collections cannot answer: the claim-paid message waits in the
    outbox, the mandate is not taken over yet."""
    async with collections_down(book["claims"]):
        paid = ok(await book["claims"].post(f"/v1/claims/{claim_id}/payment", headers=HANDLER),
                  200)  # fmt: skip
    assert paid["status"] == "paid" and paid["collection_case_id"] is None
    return paid


async def deliver_the_claims_messages(claims: httpx.AsyncClient) -> None:
    """Collections is back: the background loop delivers what waits in the outbox."""
    app = claims._transport.app  # type: ignore[attr-defined]
    working = await app.dependency_overrides[get_peers]()
    session: Callable[[], AsyncIterator[Any]] = app.dependency_overrides[get_session]
    async for s in session():
        for message in await deliver(s, outbox, working):
            await record_delivery(s, message)


async def case_of(book: dict[str, Any], case_id: str) -> dict[str, Any]:
    return ok(await book["collections"].get(f"/v1/cases/{case_id}", headers=COLLECTOR), 200)


def allocations(case: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """Each payment of the case: (amount, fee, insurer, policyholder), checked to add up."""
    out = []
    for p in case["payments"]:
        a = p["allocation"]
        parts = (a["fee"]["amount"], a["insurer"]["amount"], a["policyholder"]["amount"])
        assert sum(Decimal(x) for x in parts) == Decimal(p["amount"]["amount"])
        out.append((p["amount"]["amount"], *parts))
    return out


def outstanding(case: dict[str, Any]) -> dict[str, str]:
    return {i["number"]: i["outstanding"]["amount"] for i in case["invoices"]}


async def test_a_recovery_on_the_mandate_after_the_claim_is_paid_is_shared_at_the_takeover(
    book: dict[str, Any],
) -> None:
    """30,000 recovered before the claim: it pays 76,000 against 90,000 unpaid. 9,000 recovered
    on the mandate after the payment, before collections hears of it, first goes to the
    policyholder (fee 900, policyholder 8,100); the takeover shares it as a subrogation case
    would have: fee 900, insurer 8,100 × 76,000 / 90,000 = 6,840, policyholder 1,260. The 30,000
    the indemnity deducted stays the policyholder's. The case owes 90,000 − 9,000."""
    case = await mandate(book, "30000")
    claim = await approved_claim(book)
    assert claim["indemnity"] == money("76000.00")
    await paid_while_collections_is_down(book, claim["id"])
    before = await recover(book, case["id"], "9000", "2027-06-10")
    assert before["allocation"]["insurer"] == money("0.00")  # not a subrogation case yet

    await deliver_the_claims_messages(book["claims"])
    paid = ok(await book["claims"].get(f"/v1/claims/{claim['id']}", headers=HANDLER), 200)
    assert paid["collection_case_id"] == case["id"]
    taken = await case_of(book, case["id"])
    assert taken["claim_id"] == claim["id"]
    assert allocations(taken) == [("30000.00", "3000.00", "0.00", "27000.00"),
                                  ("9000.00", "900.00", "6840.00", "1260.00")]  # fmt: skip
    assert taken["outstanding"] == money("81000.00")
    again = [a for a in taken["activities"] if before["id"] in (a["note"] or "")]
    assert len(again) == 1 and again[0]["kind"] == "subrogation"
    assert "insurer 6840.00" in again[0]["note"] and "policyholder 1260.00" in again[0]["note"]
    # The payment as read alone says the same.
    read = ok(await book["collections"].get(f"/v1/cases/{case['id']}/payments/{before['id']}",
                                            headers=COLLECTOR), 200)  # fmt: skip
    assert read["allocation"]["insurer"] == money("6840.00")
    # Announced again, with the split it replaces: a partner reconciling from events (or
    # webhooks) sees what the policyholder keeps now.
    feed = ok(await book["collections"].get("/v1/events?types=case.payment_recorded&limit=500",
                                            headers=COLLECTOR), 200)["items"]  # fmt: skip
    told = [e["data"] for e in feed if e["data"]["payment_id"] == before["id"]]
    assert [(d["reshared_after_claim"], d["allocation"]["insurer"]["amount"],
             d["allocation"]["policyholder"]["amount"]) for d in told] == [
        (False, "0.00", "8100.00"), (True, "6840.00", "1260.00")]  # fmt: skip
    assert told[1]["previous_allocation"] == {"fee": money("900.00"), "insurer": money("0.00"),
                                              "policyholder": money("8100.00")}  # fmt: skip
    assert (told[1]["claim_id"], told[1]["outstanding_after"]) == (claim["id"], money("81000.00"))
    # What the case recovers from now on is shared too.
    after = await recover(book, case["id"], "1000", "2027-06-10")
    assert after["allocation"] == {"fee": money("100.00"), "insurer": money("760.00"),
                                   "policyholder": money("140.00")}  # fmt: skip


async def test_an_invoice_the_claims_credit_notes_settled_owes_nothing_on_the_mandate_taken_over(
    book: dict[str, Any],
) -> None:
    """A credit note of 80,000 leaves INV-1 with nothing unpaid: the claim pays 40,000 × 90% −
    5,000 = 31,000. The mandate taken over owes exactly what the claim left unpaid, 40,000 on
    INV-2, and INV-1 is settled on it (a recovery is credited to INV-2, not to INV-1)."""
    case = await mandate(book)
    claim = await approved_claim(book, credit_notes=money("80000"))
    assert claim["indemnity"] == money("31000.00")
    paid = ok(await book["claims"].post(f"/v1/claims/{claim['id']}/payment", headers=HANDLER),
              200)  # fmt: skip
    assert paid["collection_case_id"] == case["id"]
    taken = await case_of(book, case["id"])
    assert taken["outstanding"] == money("40000.00")
    assert outstanding(taken) == {"INV-1": "0.00", "INV-2": "40000.00"}
    assert "reduce INV-1 by 80000.00" in taken["activities"][-1]["note"]
    shared = await recover(book, case["id"], "4000", "2027-06-10")
    assert [c["invoice_number"] for c in shared["credited"]] == ["INV-2"]
    assert shared["allocation"] == {"fee": money("400.00"), "insurer": money("2790.00"),
                                    "policyholder": money("810.00")}  # fmt: skip


async def test_a_recovery_after_payment_on_an_invoice_the_claim_settled_is_credited_to_the_next(
    book: dict[str, Any],
) -> None:
    """The credit note settles INV-1 (indemnity 31,000 against 40,000 unpaid); 10,000 recovered
    on the mandate after the payment was credited to INV-1, which the buyer no longer owed: the
    takeover credits it to INV-2 (30,000 left) and shares it: fee 1,000, insurer 9,000 × 31,000
    / 40,000 = 6,975, policyholder 2,025."""
    case = await mandate(book)
    claim = await approved_claim(book, credit_notes=money("80000"))
    await paid_while_collections_is_down(book, claim["id"])
    early = await recover(book, case["id"], "10000", "2027-06-10")
    assert [c["invoice_number"] for c in early["credited"]] == ["INV-1"]
    await deliver_the_claims_messages(book["claims"])
    taken = await case_of(book, case["id"])
    assert taken["claim_id"] == claim["id"]
    assert outstanding(taken) == {"INV-1": "0.00", "INV-2": "30000.00"}
    assert taken["outstanding"] == money("30000.00")
    assert allocations(taken) == [("10000.00", "1000.00", "6975.00", "2025.00")]


async def test_a_mandate_paid_in_full_after_the_claim_is_paid_is_taken_over_not_opened_again(
    book: dict[str, Any],
) -> None:
    """After the payment the buyer pays the mandate's 90,000 in full and the mandate closes before
    collections hears of the claim: no second case claims the debt the buyer has paid; the
    closed mandate becomes the claim's case and the 90,000 is shared: fee 9,000, insurer 81,000 ×
    76,000 / 90,000 = 68,400, policyholder 12,600."""
    case = await mandate(book, "30000")
    claim = await approved_claim(book)
    await paid_while_collections_is_down(book, claim["id"])
    last = await recover(book, case["id"], "90000", "2027-06-10")
    assert last["case_status"] == "closed"
    await deliver_the_claims_messages(book["claims"])
    paid = ok(await book["claims"].get(f"/v1/claims/{claim['id']}", headers=HANDLER), 200)
    assert paid["collection_case_id"] == case["id"]
    listed = ok(await book["collections"].get("/v1/cases", headers=COLLECTOR,
                                              params={"claim_id": claim["id"]}), 200)  # fmt: skip
    assert [c["id"] for c in listed["items"]] == [case["id"]]
    taken = listed["items"][0]
    assert (taken["status"], taken["outstanding"]) == ("closed", money("0.00"))
    assert allocations(taken) == [("30000.00", "3000.00", "0.00", "27000.00"),
                                  ("90000.00", "9000.00", "68400.00", "12600.00")]  # fmt: skip


async def test_a_claim_over_two_mandates_leaves_one_case_collecting_its_debt(
    book: dict[str, Any],
) -> None:
    """A mandate per invoice (INV-1 on one, INV-2 on the other, 5,000 recovered on INV-2 before
    the claim): the paid claim takes the oldest over, which collects both invoices as the claim
    left them unpaid (80,000 and 35,000); the other stops collecting INV-2 and, owing nothing
    more, closes, saying so. A later recovery of INV-2 goes to the claim's case, shared."""
    policy, buyer = book["policy"], book["buyer"]
    holder = auth("policyholder", policy["policyholder_id"])
    opened = []
    for invoice in INVOICES:
        opened.append(ok(await book["collections"].post("/v1/cases", headers=holder, json={
            "creditor_id": policy["policyholder_id"], "buyer_id": buyer["id"],
            "debtor_country": buyer["country"], "ladder": "reminder_15_30_45",
            "invoices": [{"number": invoice["number"], "amount": invoice["amount"],
                          "due_date": invoice["due_date"]}]}), 201))  # fmt: skip
    first, second = opened
    await recover(book, second["id"], "5000", "2027-06-10")
    claim = await approved_claim(book)
    paid = ok(await book["claims"].post(f"/v1/claims/{claim['id']}/payment", headers=HANDLER),
              200)  # fmt: skip

    assert paid["collection_case_id"] == first["id"]
    taken = await case_of(book, first["id"])
    assert outstanding(taken) == {"INV-1": "80000.00", "INV-2": "35000.00"}
    left = await case_of(book, second["id"])
    assert left["status"] == "closed" and left["outstanding"] == money("0.00")
    assert f"collected by case {first['id']}" in left["activities"][-1]["note"]
    refused = await book["collections"].post(f"/v1/cases/{second['id']}/payments",
                                             headers=COLLECTOR, json={
                                                 "amount": money("1000"),
                                                 "received_on": "2027-06-10"})  # fmt: skip
    assert refused.status_code == 409
    shared = await recover(book, first["id"], "35000", "2027-06-10")
    assert shared["allocation"]["insurer"]["amount"] != "0.00"


async def test_a_recovery_on_an_invoice_outside_the_claim_is_the_policyholders_after_the_fee(
    book: dict[str, Any],
) -> None:
    """The mandate collects INV-1 (80,000) and INV-3 (20,000, due after it); the claim is on
    INV-1 alone and pays 67,000 against its 80,000 unpaid. Taken over, both invoices stay on the
    case; 100,000 recovered is credited 80,000 to INV-1 and 20,000 to INV-3: fee 10,000, the
    insurer 72,000 × 67,000 / 80,000 = 60,300 of INV-1's part only, the policyholder INV-1's
    remaining 11,700 and INV-3's 18,000 (never the insurer's share of INV-3)."""
    policy, buyer = book["policy"], book["buyer"]
    holder = auth("policyholder", policy["policyholder_id"])
    first = {k: INVOICES[0][k] for k in ("number", "amount", "due_date")}
    case = ok(await book["collections"].post("/v1/cases", headers=holder, json={
        "creditor_id": policy["policyholder_id"], "buyer_id": buyer["id"],
        "debtor_country": buyer["country"], "ladder": "reminder_15_30_45",
        "invoices": [first, {"number": "INV-3", "amount": money("20000"),
                             "due_date": "2027-05-31"}]}), 201)  # fmt: skip
    claim = await approved_claim(book, invoices=[INVOICES[0]])
    assert claim["indemnity"] == money("67000.00")
    paid = ok(await book["claims"].post(f"/v1/claims/{claim['id']}/payment", headers=HANDLER),
              200)  # fmt: skip
    assert paid["collection_case_id"] == case["id"]
    taken = await case_of(book, case["id"])
    assert outstanding(taken) == {"INV-1": "80000.00", "INV-3": "20000.00"}
    shared = await recover(book, case["id"], "100000", "2027-06-10")
    assert [(c["invoice_number"], c["amount"]["amount"]) for c in shared["credited"]] == [
        ("INV-1", "80000.00"), ("INV-3", "20000.00")]  # fmt: skip
    assert allocations(await case_of(book, case["id"])) == [
        ("100000.00", "10000.00", "60300.00", "29700.00")]  # fmt: skip


def totals(payments: list[tuple[str, str, str, str]]) -> tuple[str, str, str, str]:
    """What the payments (amount, fee, insurer, policyholder) come to, each part summed."""
    return tuple(str(sum((Decimal(p[k]) for p in payments), Decimal("0.00")))  # type: ignore[return-value]
                 for k in range(4))  # fmt: skip


async def test_recoveries_shared_again_and_after_share_the_whole_recovery_after_the_claim(
    book: dict[str, Any],
) -> None:
    """The trial's case: 10,000 recovered before the claim, which pays 85,000 against 110,000
    unpaid. Nineteen recoveries of 1,000.01 after the payment, before collections hears of it,
    then 100.00 after the takeover: the case shares the 19,100.19 recovered after the claim as
    one amount, fee 1,910.02, insurer 17,190.17 × 85,000 / 110,000 = 13,283.31, policyholder
    3,906.86 (each 1,000.01 shared again on its own gave the insurer 695.46, 0.03 short in all,
    and the 100.00 then 69.55 on its own: the gap never caught up)."""
    case = await mandate(book, "10000")
    claim = await approved_claim(book)
    assert claim["indemnity"] == money("85000.00")
    await paid_while_collections_is_down(book, claim["id"])
    for _ in range(19):
        await recover(book, case["id"], "1000.01", "2027-06-10")
    await deliver_the_claims_messages(book["claims"])
    taken = await case_of(book, case["id"])
    assert taken["claim_id"] == claim["id"]
    before, *shared_again = allocations(taken)
    assert before == ("10000.00", "1000.00", "0.00", "9000.00")
    assert totals(shared_again) == ("19000.19", "1900.02", "13213.77", "3886.40")
    share = rules.InsurerShare(Decimal("85000.00"), Decimal("110000.00"))
    whole = rules.share_recovery(Money(Decimal("19000.19"), "EUR"), fee_pct=Decimal(10),
                                 share=share)  # fmt: skip
    assert totals(shared_again)[1:] == tuple(str(x.amount) for x in whole)
    await recover(book, case["id"], "100.00", "2027-06-10")
    _, *after_claim = allocations(await case_of(book, case["id"]))
    assert totals(after_claim) == ("19100.19", "1910.02", "13283.31", "3906.86")
    whole = rules.share_recovery(Money(Decimal("19100.19"), "EUR"), fee_pct=Decimal(10),
                                 share=share)  # fmt: skip
    assert totals(after_claim)[1:] == tuple(str(x.amount) for x in whole)
