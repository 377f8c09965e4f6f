"""No indemnity is paid on a sanctioned buyer (domain.md, Sanctions), even on a claim assessed and
approved before the listing: at payment, claims asks underwriting again (its coverage batch answers
the sanctions of today) and refuses with 422 `buyer-sanctioned`; nothing is paid and no
subrogation case is opened. Once the sanction is lifted, the claim is paid. A claim assessed
before the listing is not approved afterwards either: the approval asks the same question and is
refused the same way, the claim left assessed for the handler to reject (or to approve once the
sanction is lifted)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.builders import make_buyer, ok
from tests.claims.test_api import INVOICES, TODAY, complete, insured
from tests.conftest import auth

HANDLER = auth("claims_handler")
UW = auth("underwriter")


@pytest.fixture
async def apis(api: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, httpx.AsyncClient]:
    monkeypatch.setenv("TCI_FIXED_TODAY", TODAY)
    return {"claims": await api.open("claims"), "underwriting": api("underwriting"),
            "collections": api("collections")}  # fmt: skip


APPROVE = {"decision": "approve", "reason": "file complete, cover confirmed"}


async def approved_claim(
    apis: dict[str, httpx.AsyncClient], buyer: dict[str, Any] | None = None
) -> dict[str, Any]:
    """An insolvency claim, documents complete, assessed (covered) and approved."""
    claim = await assessed_claim(apis, buyer)
    return ok(await apis["claims"].post(f"/v1/claims/{claim['id']}/decision", headers=HANDLER,
                                        json=APPROVE), 200)  # fmt: skip


async def assessed_claim(
    apis: dict[str, httpx.AsyncClient], buyer: dict[str, Any] | None = None
) -> dict[str, Any]:
    """An insolvency claim, documents complete, assessed (covered, 85,000)."""
    claims, uw = apis["claims"], apis["underwriting"]
    policy, insured_buyer = await insured(uw)
    if buyer is not None:  # the buyer of a given country instead, with the same limit
        ok(await uw.post(f"/v1/policies/{policy['id']}/limits", headers=UW, json={
            "buyer_id": buyer["id"], "amount": {"amount": "100000", "currency": "EUR"},
            "effective_from": "2027-01-01", "payment_terms_days": 90,
            "reason": "book migrated from the previous system"}), 201)  # fmt: skip
    holder = auth("policyholder", policy["policyholder_id"])
    claim = ok(await claims.post("/v1/claims", headers=holder, json={
        "policy_id": policy["id"], "buyer_id": (buyer or insured_buyer)["id"],
        "cause": "insolvency", "event_date": "2027-06-01", "invoices": INVOICES}), 201)  # fmt: skip
    claim = await complete(claims, claim, holder)
    assessed = ok(await claims.post(f"/v1/claims/{claim['id']}/assessment", headers=HANDLER), 200)
    assert assessed["indemnity"]["amount"] == "85000.00"
    assert all(not line["exclusions"] for line in assessed["assessment"]["invoices"])
    return assessed  # type: ignore[no-any-return]


async def refused_then_paid_once_lifted(
    apis: dict[str, httpx.AsyncClient], claim: dict[str, Any], sanction: dict[str, Any]
) -> None:
    claims, uw = apis["claims"], apis["underwriting"]
    refused = await claims.post(f"/v1/claims/{claim['id']}/payment", headers=HANDLER)
    assert refused.status_code == 422, refused.text
    problem = refused.json()
    assert problem["type"] == "buyer-sanctioned" and problem["buyer_id"] == claim["buyer_id"]
    assert "sanctioned" in problem["detail"]
    unpaid = ok(await claims.get(f"/v1/claims/{claim['id']}", headers=HANDLER), 200)
    assert unpaid["status"] == "approved" and unpaid["paid_on"] is None
    assert not unpaid.get("collection_case_id")
    cases = ok(await apis["collections"].get(f"/v1/cases?claim_id={claim['id']}",
                                             headers=auth("collector")), 200)  # fmt: skip
    assert cases["items"] == []

    ok(await uw.delete(f"/v1/sanctions/{sanction['id']}", headers=UW), 200)
    paid = ok(await claims.post(f"/v1/claims/{claim['id']}/payment", headers=HANDLER), 200)
    assert paid["status"] == "paid" and paid["paid_on"] == TODAY and paid["collection_case_id"]


async def test_a_claim_approved_before_its_buyer_was_sanctioned_is_not_paid_until_lifted(
    apis: dict[str, httpx.AsyncClient],
) -> None:
    claim = await approved_claim(apis)
    sanction = ok(await apis["underwriting"].post("/v1/sanctions", headers=UW, json={
        "buyer_id": claim["buyer_id"], "reason": "listed after the approval"}), 201)  # fmt: skip
    await refused_then_paid_once_lifted(apis, claim, sanction)


async def test_a_claim_approved_before_its_buyers_country_was_sanctioned_is_not_paid_until_lifted(
    apis: dict[str, httpx.AsyncClient],
) -> None:
    uw = apis["underwriting"]
    buyer = await make_buyer(uw, country="ER")  # a country no other test sanctions
    claim = await approved_claim(apis, buyer)
    sanction = ok(await uw.post("/v1/sanctions", headers=UW, json={
        "country": "ER", "reason": "country listed after the approval"}), 201)  # fmt: skip
    try:
        await refused_then_paid_once_lifted(apis, claim, sanction)
    finally:
        await uw.delete(f"/v1/sanctions/{sanction['id']}", headers=UW)


# ---------------------------------------------------------------- sanctioned before approval


async def sanction_of(
    apis: dict[str, httpx.AsyncClient], listed: str
) -> tuple[dict[str, Any], dict[str, str]]:
    """A claim assessed on a buyer (of its own country `ER` when the country is listed), and
    the listing that sanctions the buyer or its country."""
    buyer = await make_buyer(apis["underwriting"], country="ER") if listed == "country" else None
    claim = await assessed_claim(apis, buyer)
    listing = {"buyer_id": claim["buyer_id"]} if listed == "buyer" else {"country": "ER"}
    return claim, listing


async def refused_approval(apis: dict[str, httpx.AsyncClient], claim: dict[str, Any]) -> None:
    """The approval is refused as a payment would be: 422 `buyer-sanctioned` naming the buyer;
    the claim is left assessed, undecided, holding none of the caps."""
    claims = apis["claims"]
    refused = await claims.post(f"/v1/claims/{claim['id']}/decision", headers=HANDLER,
                                json=APPROVE)  # fmt: skip
    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    problem = refused.json()
    assert problem["type"] == "buyer-sanctioned" and problem["buyer_id"] == claim["buyer_id"]
    assert problem["status_now"] == "assessed"
    assert f"claim {claim['id']} is not approved" in problem["detail"]
    assert "sanctions list" in problem["detail"] and "reject it" in problem["detail"]
    still = ok(await claims.get(f"/v1/claims/{claim['id']}", headers=HANDLER), 200)
    assert still["status"] == "assessed" and still["decision"] is None
    assert still["decided_by"] is None and still["indemnity"] == claim["indemnity"]


@pytest.mark.parametrize("listed", ["buyer", "country"])
async def test_a_claim_assessed_before_its_buyer_was_sanctioned_is_not_approved_but_rejected(
    apis: dict[str, httpx.AsyncClient], listed: str
) -> None:
    claims, uw = apis["claims"], apis["underwriting"]
    claim, listing = await sanction_of(apis, listed)
    sanction = ok(await uw.post("/v1/sanctions", headers=UW, json={
        **listing, "reason": "listed after the assessment"}), 201)  # fmt: skip
    try:
        await refused_approval(apis, claim)
        reject = {"decision": "reject", "reason": "excluded: sanctioned buyer"}
        rejected = ok(await claims.post(f"/v1/claims/{claim['id']}/decision", headers=HANDLER,
                                        json=reject), 200)  # fmt: skip
        assert rejected["status"] == "rejected" and rejected["decision"] == "reject"
        assert rejected["decision_reason"] == "excluded: sanctioned buyer"
        unpaid = await claims.post(f"/v1/claims/{claim['id']}/payment", headers=HANDLER)
        assert unpaid.status_code == 409 and unpaid.json()["type"] == "not-approved"
    finally:
        ok(await uw.delete(f"/v1/sanctions/{sanction['id']}", headers=UW), 200)


async def test_a_claim_refused_approval_on_a_sanction_is_approved_and_paid_once_it_is_lifted(
    apis: dict[str, httpx.AsyncClient],
) -> None:
    claims, uw = apis["claims"], apis["underwriting"]
    claim, listing = await sanction_of(apis, "buyer")
    sanction = ok(await uw.post("/v1/sanctions", headers=UW, json={
        **listing, "reason": "listed after the assessment"}), 201)  # fmt: skip
    await refused_approval(apis, claim)
    ok(await uw.delete(f"/v1/sanctions/{sanction['id']}", headers=UW), 200)
    approved = ok(await claims.post(f"/v1/claims/{claim['id']}/decision", headers=HANDLER,
                                    json=APPROVE), 200)  # fmt: skip
    assert approved["status"] == "approved" and approved["indemnity"] == claim["indemnity"]
    paid = ok(await claims.post(f"/v1/claims/{claim['id']}/payment", headers=HANDLER), 200)
    assert paid["status"] == "paid" and paid["collection_case_id"]
