"""A buyer's credit limit is one promise, however the invoices are split into claims: each invoice
is covered up to the limit in force on its shipment date less what the other live claims on the
policy and buyer covered, and an approval checks it again (in-process, on both engines; the same
under concurrent approvals is proved over real processes in
tests/e2e/test_money_under_concurrency.py)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import update

from services.claims.models import Claim
from shared.db import get_session
from tests.builders import money, ok
from tests.claims.test_api import complete, insured, invoice
from tests.conftest import auth
from tests.feed import of_type, read_feed

HANDLER = auth("claims_handler")


@pytest.fixture
async def apis(api: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, httpx.AsyncClient]:
    monkeypatch.setenv("TCI_FIXED_TODAY", "2027-06-10")
    return {"claims": await api.open("claims"), "underwriting": api("underwriting"),
            "collections": api("collections")}  # fmt: skip


async def complete_claim(
    claims: httpx.AsyncClient, policy: dict[str, Any], buyer: dict[str, Any], number: str,
    shipped: str,
) -> str:  # fmt: skip
    """A claim of one 80,000 invoice, its documents all given."""
    holder = auth("policyholder", policy["policyholder_id"])
    claim = ok(await claims.post("/v1/claims", headers=holder, json={
        "policy_id": policy["id"], "buyer_id": buyer["id"], "cause": "insolvency",
        "event_date": "2027-06-01",
        "invoices": [invoice(number, "80000", shipped, "2027-04-30")]}), 201)  # fmt: skip
    return str((await complete(claims, claim, holder))["id"])


async def assess(claims: httpx.AsyncClient, claim_id: str) -> dict[str, Any]:
    return ok(await claims.post(f"/v1/claims/{claim_id}/assessment", headers=HANDLER), 200)


async def approve(claims: httpx.AsyncClient, claim_id: str) -> httpx.Response:
    return await claims.post(f"/v1/claims/{claim_id}/decision", headers=HANDLER,
                             json={"decision": "approve", "reason": "ok"})  # fmt: skip


async def pay(claims: httpx.AsyncClient, claim_id: str) -> dict[str, Any]:
    return ok(await claims.post(f"/v1/claims/{claim_id}/payment", headers=HANDLER), 200)  # type: ignore[no-any-return]


async def approve_and_pay(claims: httpx.AsyncClient, claim_id: str) -> dict[str, Any]:
    ok(await approve(claims, claim_id), 200)
    return await pay(claims, claim_id)


def step(assessed: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in assessed["assessment"]["steps"] if s["name"] == name)


async def test_invoices_split_into_two_claims_are_covered_once_up_to_the_limit(
    apis: dict[str, httpx.AsyncClient],
) -> None:
    """Limit 100,000; invoices of 80,000 in two claims: the second covers the 20,000 the first
    left (its step 2 names the first claim), 90,000 paid in all, as for the two in one claim."""
    claims = apis["claims"]
    policy, buyer = await insured(apis["underwriting"], deductible=money("0"))
    first = await complete_claim(claims, policy, buyer, "A", "2027-03-01")
    second = await complete_claim(claims, policy, buyer, "B", "2027-03-02")
    assert (await assess(claims, first))["indemnity"] == money("72000.00")
    assessed = await assess(claims, second)
    line = assessed["assessment"]["invoices"][0]
    assert line["limit_in_force"] == money("100000.00") and line["covered"] == money("20000.00")
    assert assessed["indemnity"] == money("18000.00")
    note = step(assessed, "insured_loss")["note"]
    assert f"claim {first} 80000.00" in note and "already used by other claims" in note
    # Assessing the first again counts the second's 20,000: it still covers its 80,000.
    assert (await assess(claims, first))["indemnity"] == money("72000.00")
    paid = [await approve_and_pay(claims, c) for c in (first, second)]
    assert sum(float(p["indemnity"]["amount"]) for p in paid) == 90000


async def test_a_rejected_claim_frees_the_limit_it_used(
    apis: dict[str, httpx.AsyncClient],
) -> None:
    claims = apis["claims"]
    policy, buyer = await insured(apis["underwriting"], deductible=money("0"))
    first = await complete_claim(claims, policy, buyer, "A", "2027-03-01")
    second = await complete_claim(claims, policy, buyer, "B", "2027-03-02")
    await assess(claims, first)
    assert (await assess(claims, second))["indemnity"] == money("18000.00")
    ok(await claims.post(f"/v1/claims/{first}/decision", headers=HANDLER,
                         json={"decision": "reject", "reason": "not our risk"}), 200)  # fmt: skip
    again = await assess(claims, second)
    assert again["indemnity"] == money("72000.00")
    assert "already used" not in step(again, "insured_loss")["note"]


async def test_an_approval_whose_limit_was_taken_meanwhile_is_refused_until_assessed_again(
    apis: dict[str, httpx.AsyncClient],
) -> None:
    """Two claims assessed at the same moment each count on the whole limit (here the first is
    put back under review while the second is assessed, as if they ran at once): the first
    approved, the second's approval is refused naming it; assessed again it covers what is
    left."""
    claims = apis["claims"]
    policy, buyer = await insured(apis["underwriting"], deductible=money("0"))
    first = await complete_claim(claims, policy, buyer, "A", "2027-03-01")
    second = await complete_claim(claims, policy, buyer, "B", "2027-03-02")
    assert (await assess(claims, first))["indemnity"] == money("72000.00")
    session = claims._transport.app.dependency_overrides[get_session]  # type: ignore[attr-defined]

    async def status(claim_id: str, value: str) -> None:
        async for s in session():
            await s.execute(update(Claim).where(Claim.id == claim_id).values(status=value))
            await s.commit()

    await status(first, "under_review")
    assert (await assess(claims, second))["indemnity"] == money("72000.00")
    await status(first, "assessed")
    ok(await approve(claims, first), 200)
    refused = await approve(claims, second)
    assert refused.status_code == 409, refused.text
    assert refused.json()["type"] == "assessment-outdated"
    assert refused.json()["limit_used_by"] == {first: money("80000.00")}
    still = ok(await claims.get(f"/v1/claims/{second}", headers=HANDLER), 200)
    assert still["status"] == "assessed"
    assert (await assess(claims, second))["indemnity"] == money("18000.00")
    paid = [await approve_and_pay(claims, c) for c in (second,)]
    assert paid[0]["indemnity"] == money("18000.00")


async def test_an_approval_counting_on_less_limit_than_is_free_now_is_refused_until_assessed_again(
    apis: dict[str, httpx.AsyncClient],
) -> None:
    """The second claim was assessed while the first used 80,000 of the limit; the first is
    rejected: approving the second as assessed would pay 18,000 where 72,000 is owed. Refused
    (409 naming no claim now), assessed again it covers its whole invoice."""
    claims = apis["claims"]
    policy, buyer = await insured(apis["underwriting"], deductible=money("0"))
    first = await complete_claim(claims, policy, buyer, "A", "2027-03-01")
    second = await complete_claim(claims, policy, buyer, "B", "2027-03-02")
    await assess(claims, first)
    assert (await assess(claims, second))["indemnity"] == money("18000.00")
    ok(await claims.post(f"/v1/claims/{first}/decision", headers=HANDLER,
                         json={"decision": "reject", "reason": "not our risk"}), 200)  # fmt: skip
    stale = await approve(claims, second)
    assert stale.status_code == 409 and stale.json()["type"] == "assessment-outdated", stale.text
    assert stale.json()["limit_used_by"] == {}
    assert (await assess(claims, second))["indemnity"] == money("72000.00")
    assert (await approve_and_pay(claims, second))["indemnity"] == money("72000.00")


@pytest.mark.parametrize("later_first", [True, False])
async def test_the_earlier_shipment_covers_first_whichever_claim_is_assessed_first(
    apis: dict[str, httpx.AsyncClient], later_first: bool
) -> None:
    """Limit 100,000; A (80,000) shipped before B (80,000), each in its own claim, both live:
    A covers 80,000 and B the 20,000 left, in whichever order they are assessed and approved.
    B assessed alone before A was assessed counted on the whole limit: its approval is refused
    until it is assessed again."""
    claims = apis["claims"]
    policy, buyer = await insured(apis["underwriting"], deductible=money("0"))
    earlier = await complete_claim(claims, policy, buyer, "A", "2027-03-01")
    later = await complete_claim(claims, policy, buyer, "B", "2027-03-02")
    if later_first:
        assert (await assess(claims, later))["indemnity"] == money("72000.00")  # A not assessed
    assert (await assess(claims, earlier))["indemnity"] == money("72000.00")
    if later_first:
        stale = await approve(claims, later)
        assert stale.status_code == 409 and stale.json()["type"] == "assessment-outdated"
        assert stale.json()["limit_used_by"] == {earlier: money("80000.00")}
    assert (await assess(claims, later))["indemnity"] == money("18000.00")
    for claim_id in (later, earlier):  # the later approved first keeps to its 20,000
        ok(await approve(claims, claim_id), 200)
    paid = {c: (await pay(claims, c))["indemnity"] for c in (earlier, later)}
    assert paid == {earlier: money("72000.00"), later: money("18000.00")}


async def test_a_claim_assessed_again_for_another_sum_is_announced(
    apis: dict[str, httpx.AsyncClient],
) -> None:
    """The later shipment's claim assessed alone (72,000), then the earlier one: assessed again it
    is owed 18,000, and its parties hear so (assessed → assessed, the indemnity and why); assessed
    once more for the same sum, nothing new is announced."""
    claims = apis["claims"]
    policy, buyer = await insured(apis["underwriting"], deductible=money("0"))
    holder = auth("policyholder", policy["policyholder_id"])
    earlier = await complete_claim(claims, policy, buyer, "A", "2027-03-01")
    later = await complete_claim(claims, policy, buyer, "B", "2027-03-02")
    await assess(claims, later)
    await assess(claims, earlier)
    await assess(claims, later)
    await assess(claims, later)
    heard = [e["data"] for e in of_type(await read_feed(claims, holder), "claim.status_changed")
             if e["data"]["claim_id"] == later and e["data"]["status"] == "assessed"]  # fmt: skip
    assert [(e["previous_status"], e["indemnity"]) for e in heard] == [
        ("under_review", money("72000.00")), ("assessed", money("18000.00"))]  # fmt: skip
    assert heard[1]["reason"] == "assessed again: the indemnity is 18000.00 EUR, was 72000.00 EUR"
