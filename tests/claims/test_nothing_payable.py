"""A claim on which nothing can be paid is not left approved holding the caps (domain.md, Sanctions:
"a sanctioned buyer is never covered, and no indemnity is paid on it"; Indemnity: "paid and approved
claims count" against the caps). An approved claim whose buyer, or the buyer's country, is
sanctioned before payment is refused payment and may be rejected, the reason naming the exclusion,
which frees its share of the single-buyer cap and of the maximum liability at once; a claim whose
indemnity is nil (an exclusion of every invoice, credit notes or recoveries that leave nothing
unpaid, the claim threshold, the deductible) owes nothing: it is neither approved nor paid (422
`nil-indemnity` saying why), and is rejected as nothing payable."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import pytest

from services.claims import rules
from tests.builders import make_buyer, make_policy, money, ok
from tests.claims.test_api import INVOICES, TODAY, complete, invoice
from tests.claims.test_recoveries_before_payment import COLLECTOR, mandate_with_recovery
from tests.conftest import auth

HANDLER = auth("claims_handler")
UW = auth("underwriter")
SANCTIONED_COUNTRY = "SO"  # a country no other test sanctions
APPROVE = {"decision": "approve", "reason": "file complete, cover confirmed"}
REJECT = {"decision": "reject", "reason": "sanctions screening after approval"}


@pytest.fixture
async def apis(api: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, httpx.AsyncClient]:
    monkeypatch.setenv("TCI_FIXED_TODAY", TODAY)
    return {"claims": await api.open("claims"), "underwriting": api("underwriting"),
            "collections": api("collections")}  # fmt: skip


async def limited_buyer(
    uw: httpx.AsyncClient, policy: dict[str, Any], country: str = "DE"
) -> dict[str, Any]:
    """A buyer with a 100,000 limit on the policy since 1 January."""
    buyer = await make_buyer(uw, country=country)
    ok(await uw.post(f"/v1/policies/{policy['id']}/limits", headers=UW, json={
        "buyer_id": buyer["id"], "amount": money("100000"), "effective_from": "2027-01-01",
        "payment_terms_days": 90, "reason": "book migrated from the previous system"}), 201)  # fmt: skip
    return buyer


async def assessed(
    claims: httpx.AsyncClient, policy: dict[str, Any], buyer: dict[str, Any],
    invoices: list[dict[str, Any]] = INVOICES, **filing: Any,
) -> dict[str, Any]:  # fmt: skip
    """An insolvency claim, documents complete, assessed."""
    holder = auth("policyholder", policy["policyholder_id"])
    claim = ok(await claims.post("/v1/claims", headers=holder, json={
        "policy_id": policy["id"], "buyer_id": buyer["id"], "cause": "insolvency",
        "event_date": "2027-06-01", "invoices": invoices, **filing}), 201)  # fmt: skip
    claim = await complete(claims, claim, holder)
    return ok(await claims.post(f"/v1/claims/{claim['id']}/assessment", headers=HANDLER), 200)  # type: ignore[no-any-return]


async def decide(claims: httpx.AsyncClient, claim_id: str, body: dict[str, str]) -> httpx.Response:
    return await claims.post(f"/v1/claims/{claim_id}/decision", headers=HANDLER, json=body)


def problem_of(response: httpx.Response, status: int, kind: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem: dict[str, Any] = response.json()
    assert problem["type"] == kind and problem["status"] == status and problem["title"]
    return problem


# ---------------------------------------------------------------- sanctioned after approval


@pytest.mark.parametrize("listed", ["buyer", "country"])
async def test_an_approved_claim_on_a_buyer_sanctioned_since_is_rejected_and_frees_the_caps(
    apis: dict[str, httpx.AsyncClient], listed: str
) -> None:
    """Maximum liability 150,000, single-buyer cap 100,000. Claim 1 (85,000, buyer S) approved
    leaves 65,000 of the maximum liability to claim 2 (buyer O). S (or its country) is then
    sanctioned: claim 1 is refused payment, and rejected with the exclusion named; at once claim
    2, assessed again, gets its 85,000 in full. Once the sanction is lifted a new claim on S gets
    its 85,000 too: the single-buyer cap holds nothing for the rejected claim."""
    claims, uw, collections = apis["claims"], apis["underwriting"], apis["collections"]
    policy = await make_policy(uw, start_date="2027-01-01", end_date="2027-12-31",
                               deductible=money("5000"), max_liability=money("150000"),
                               single_buyer_cap=money("100000"))  # fmt: skip
    country = SANCTIONED_COUNTRY if listed == "country" else "DE"
    buyer, other = await limited_buyer(uw, policy, country), await limited_buyer(uw, policy)
    first = await assessed(claims, policy, buyer)
    assert first["indemnity"] == money("85000.00")
    ok(await decide(claims, first["id"], APPROVE), 200)
    others = [invoice("O-1", "80000", "2027-03-01", "2027-04-30"),
              invoice("O-2", "40000", "2027-03-20", "2027-05-19")]  # fmt: skip
    second = await assessed(claims, policy, other, others)
    assert second["indemnity"] == money("65000.00")  # 150,000 − the 85,000 approved
    assert "maximum liability" in second["assessment"]["steps"][4]["note"]

    listing = ({"buyer_id": buyer["id"]} if listed == "buyer"
               else {"country": SANCTIONED_COUNTRY})  # fmt: skip
    sanction = ok(await uw.post("/v1/sanctions", headers=UW,
                                json={**listing, "reason": "listed after the approval"}), 201)  # fmt: skip
    try:
        refused = problem_of(await claims.post(f"/v1/claims/{first['id']}/payment",
                                               headers=HANDLER), 422, "buyer-sanctioned")  # fmt: skip
        assert refused["buyer_id"] == buyer["id"] and refused["status_now"] == "approved"
        assert "sanctions list" in refused["detail"] and "reject it" in refused["detail"]
        again = problem_of(await decide(claims, first["id"], APPROVE), 409, "already-decided")
        assert again["status_now"] == "approved"

        rejected = ok(await decide(claims, first["id"], REJECT), 200)
        assert rejected["status"] == "rejected" and rejected["decision"] == "reject"
        assert rejected["decision_reason"] == (
            f"excluded: sanctioned buyer (buyer {buyer['id']} or its country is on the sanctions "
            "list: no indemnity is paid on it); sanctions screening after approval"
        )
        assert rejected["paid_on"] is None and not rejected["collection_case_id"]
        problem_of(await decide(claims, first["id"], REJECT), 409, "already-decided")
        unpaid = problem_of(await claims.post(f"/v1/claims/{first['id']}/payment",
                                              headers=HANDLER), 409, "not-approved")  # fmt: skip
        assert unpaid["status_now"] == "rejected"
        cases = ok(await collections.get(f"/v1/cases?claim_id={first['id']}",
                                         headers=COLLECTOR), 200)  # fmt: skip
        assert cases["items"] == []

        # The maximum liability is free at once, the sanction still in force.
        reassessed = ok(await claims.post(f"/v1/claims/{second['id']}/assessment",
                                          headers=HANDLER), 200)  # fmt: skip
        assert reassessed["indemnity"] == money("85000.00")
    finally:
        ok(await uw.delete(f"/v1/sanctions/{sanction['id']}", headers=UW), 200)

    again_on_buyer = [invoice("S-3", "80000", "2027-03-02", "2027-05-01"),
                      invoice("S-4", "40000", "2027-03-21", "2027-05-20")]  # fmt: skip
    third = await assessed(claims, policy, buyer, again_on_buyer)
    assert third["indemnity"] == money("85000.00")  # the single-buyer cap is whole again
    assert third["assessment"]["steps"][4]["note"] == "within the caps"
    ok(await decide(claims, third["id"], APPROVE), 200)
    paid = ok(await claims.post(f"/v1/claims/{third['id']}/payment", headers=HANDLER), 200)
    assert paid["status"] == "paid" and paid["indemnity"] == money("85000.00")


async def test_an_approved_claim_that_can_still_be_paid_is_not_rejected(
    apis: dict[str, httpx.AsyncClient],
) -> None:
    claims, uw = apis["claims"], apis["underwriting"]
    policy = await make_policy(uw, start_date="2027-01-01", end_date="2027-12-31",
                               deductible=money("5000"))  # fmt: skip
    claim = await assessed(claims, policy, await limited_buyer(uw, policy))
    ok(await decide(claims, claim["id"], APPROVE), 200)
    refused = problem_of(await decide(claims, claim["id"], REJECT), 409, "already-decided")
    assert refused["status_now"] == "approved"
    assert "rejected only when nothing can be paid on it" in refused["detail"]
    kept = ok(await claims.get(f"/v1/claims/{claim['id']}", headers=HANDLER), 200)
    assert kept["status"] == "approved" and kept["decision_reason"] == APPROVE["reason"]
    paid = ok(await claims.post(f"/v1/claims/{claim['id']}/payment", headers=HANDLER), 200)
    assert paid["status"] == "paid"


# ---------------------------------------------------------------- nil indemnity


@pytest.mark.parametrize(
    ("terms", "filing", "why"),
    [
        ({}, {"war_related": True},
         "the whole claim is excluded: war_without_political_cover"),
        ({}, {"credit_notes": money("120000")},
         "credit notes, set-offs and recoveries leave nothing unpaid on its invoices"),
        ({"deductible": money("95000")}, {},
         "the deductible of 95000.00 takes all of the 90000.00 the indemnity percentage leaves"),
        ({"claim_threshold": money("100000")}, {},
         "the insured loss of 100000.00 is at or below the claim threshold of 100000.00"),
    ],
    ids=["excluded", "credited", "deductible", "threshold"],
)  # fmt: skip
async def test_a_claim_with_a_nil_indemnity_is_not_approved_and_is_rejected_as_nothing_payable(
    apis: dict[str, httpx.AsyncClient], terms: dict[str, Any], filing: dict[str, Any], why: str
) -> None:
    claims, uw = apis["claims"], apis["underwriting"]
    policy = await make_policy(uw, start_date="2027-01-01", end_date="2027-12-31",
                               **{"deductible": money("5000"), **terms})  # fmt: skip
    claim = await assessed(claims, policy, await limited_buyer(uw, policy), **filing)
    assert claim["indemnity"] == money("0.00")
    refused = problem_of(await decide(claims, claim["id"], APPROVE), 422, "nil-indemnity")
    assert refused["detail"] == (f"claim {claim['id']} is not approved: its indemnity is nil "
                                 f"({why}), so nothing is owed on it; reject it as nothing "
                                 "payable")  # fmt: skip
    assert refused["status_now"] == "assessed"
    still = ok(await claims.get(f"/v1/claims/{claim['id']}", headers=HANDLER), 200)
    assert still["status"] == "assessed" and still["decision"] is None
    rejected = ok(await decide(claims, claim["id"], {"decision": "reject",
                                                     "reason": "nothing payable"}), 200)  # fmt: skip
    assert rejected["status"] == "rejected" and rejected["decision_reason"] == "nothing payable"


async def test_an_approved_claim_left_nil_by_recoveries_before_payment_is_not_paid_but_rejected(
    apis: dict[str, httpx.AsyncClient],
) -> None:
    """Assessed at 76,000 with 30,000 recovered on the policyholder's mandate, approved; the
    other 90,000 is recovered before payment: nothing is left unpaid, so nothing is owed. The
    payment is refused (no subrogation case with no insurer share) and the claim is rejected as
    nothing payable, its assessment worked out again at nil."""
    claims, uw, collections = apis["claims"], apis["underwriting"], apis["collections"]
    policy = await make_policy(uw, start_date="2027-01-01", end_date="2027-12-31",
                               deductible=money("5000"))  # fmt: skip
    buyer = await limited_buyer(uw, policy)
    case = await mandate_with_recovery(collections, policy, buyer, "30000")
    claim = await assessed(claims, policy, buyer)
    assert claim["indemnity"] == money("76000.00")
    ok(await decide(claims, claim["id"], APPROVE), 200)
    ok(await collections.post(f"/v1/cases/{case['id']}/payments", headers=COLLECTOR, json={
        "amount": money("90000"), "received_on": TODAY}), 201)  # fmt: skip

    why = "credit notes, set-offs and recoveries leave nothing unpaid on its invoices"
    refused = problem_of(await claims.post(f"/v1/claims/{claim['id']}/payment", headers=HANDLER),
                         422, "nil-indemnity")  # fmt: skip
    assert refused["detail"] == (f"claim {claim['id']} is not paid: its indemnity is nil ({why}), "
                                 "so nothing is owed on it; reject it as nothing payable")  # fmt: skip
    assert refused["status_now"] == "approved"
    rejected = ok(await decide(claims, claim["id"], {"decision": "reject", "reason": "recovered"}),
                  200)  # fmt: skip
    assert rejected["status"] == "rejected"
    said = f"nothing payable: the indemnity is nil ({why}); recovered"
    assert rejected["decision_reason"] == said
    assert rejected["indemnity"] == money("0.00") and rejected["paid_on"] is None
    mandate = ok(await collections.get(f"/v1/cases/{case['id']}", headers=COLLECTOR), 200)
    assert mandate["claim_id"] is None  # the policyholder's own case: no claim took it over


# ---------------------------------------------------------------- the rules


def test_an_approved_claim_is_rejected_only_when_nothing_can_be_paid_on_it() -> None:
    approved = rules.ClaimState(rules.ClaimStatus.APPROVED)
    sanctioned = rules.unpayable(Decimal("85000"), sanctioned=True)
    nil = rules.unpayable(Decimal("0.00"), sanctioned=False)
    assert (sanctioned, nil) == (rules.Unpayable.SANCTIONED_BUYER, rules.Unpayable.NIL_INDEMNITY)
    assert rules.unpayable(Decimal("85000"), sanctioned=False) is None
    for why in (sanctioned, nil):
        act = rules.rejection(approved.status, why)
        assert rules.after(approved, act).status == rules.ClaimStatus.REJECTED
    with pytest.raises(rules.Refused) as refused:
        rules.after(approved, rules.rejection(approved.status, None))
    assert refused.value.refusal is rules.Refusal.ALREADY_DECIDED
    paid = rules.ClaimState(rules.ClaimStatus.PAID)
    for act in (rules.Act.REJECT, rules.Act.REJECT_UNPAYABLE):
        with pytest.raises(rules.Refused):
            rules.after(paid, act)
    assert rules.rejection(rules.ClaimStatus.ASSESSED, nil) is rules.Act.REJECT
    assert rules.frees_invoices(rules.ClaimStatus.REJECTED)
    assert rules.ClaimStatus.REJECTED not in rules.COUNTS_AGAINST_CAPS


def test_a_nil_indemnity_is_not_payable() -> None:
    assert rules.unpayable(Decimal("0.00"), sanctioned=False) is rules.Unpayable.NIL_INDEMNITY
    assert rules.unpayable(Decimal("0.01"), sanctioned=False) is None


def test_why_nil_names_the_first_step_of_the_sum_that_leaves_nothing() -> None:
    def sums(**changes: Any) -> rules.AssessedSum:
        values: dict[str, Any] = {
            "lines": (rules.AssessedLine("A", Decimal(100), ()),), "claim_exclusions": (),
            "insured_loss": Decimal(100), "after_percentage": Decimal(90),
            "after_deductible": Decimal(85), "after_caps": Decimal(0),
            "claim_threshold": Decimal(0), "deductible": Decimal(5), "currency": "EUR",
        }  # fmt: skip
        return rules.AssessedSum(**{**values, **changes})

    assert rules.why_nil(sums()) == ("claims approved or paid on the policy use up its caps for "
                                     "the policy year of the loss")  # fmt: skip
    mixed = (rules.AssessedLine("A", Decimal(100), ("notified_late",)),
             rules.AssessedLine("B", Decimal(50), ()), rules.AssessedLine("C", Decimal(0), ()))  # fmt: skip
    assert rules.why_nil(sums(lines=mixed, insured_loss=Decimal(0))) == (
        "invoice A is excluded: notified_late; invoice B has none of the limit in force on its "
        "shipment date left to cover it (there is none, or earlier invoices or other claims on "
        "the policy and buyer use it all)"
    )
