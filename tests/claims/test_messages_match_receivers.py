"""What claims sends other services validates against the schema each receiver reads it with: the
signals about a buyer (underwriting), the coverage checks of a claim's invoices (underwriting) and
the subrogation case a paid claim opens (collections); ladder names and signal kinds are one list."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D
from typing import Any, get_args

from services.claims import messages, rules
from services.claims.models import Claim, ClaimInvoice
from services.claims.schemas import AssessmentRead
from services.collections.schemas import CaseCreate
from services.underwriting.schemas import CoverageCheckCreate, SignalCreate
from shared.contracts import LadderName, SignalKind
from tests.conftest import auth

DAY = dt.date
EUR = "EUR"


def money(amount: str) -> dict[str, str]:
    return {"amount": amount, "currency": EUR}


def a_paid_claim() -> tuple[Claim, list[ClaimInvoice], AssessmentRead]:
    claim = Claim(id="clm-1", policy_id="pol-1", buyer_id="buy-1", policyholder_id="ph-1",
                  currency=EUR, indemnity=D("85000.00"),
                  terms={"collection_ladder": "legal_30_60_90"})  # fmt: skip
    invoices = [
        ClaimInvoice(id="cin-1", claim_id=claim.id, number="A", amount=D("80000"),
                     shipment_date=DAY(2027, 1, 10), due_date=DAY(2027, 3, 11)),
        ClaimInvoice(id="cin-2", claim_id=claim.id, number="B", amount=D("40000"),
                     shipment_date=DAY(2027, 2, 10), due_date=DAY(2027, 4, 11)),
    ]  # fmt: skip
    line = {"reduction": money("0.00"), "recovered_in_collections": money("0.00"),
            "covered_on_shipment_date": True, "coverage_reasons": [],
            "limit_in_force": money("100000.00"), "exclusions": []}  # fmt: skip
    assessment = AssessmentRead.model_validate({
        "assessed_on": "2027-06-01", "claim_exclusions": [], "steps": [],
        "insured_loss": money("100000.00"), "indemnity": money("85000.00"),
        "invoices": [
            {**line, "number": "A", "amount": money("80000.00"), "unpaid": money("0.00"),
             "covered": money("80000.00")},
            {**line, "number": "B", "amount": money("40000.00"), "unpaid": money("40000.00"),
             "covered": money("20000.00")},
        ],
    })  # fmt: skip
    return claim, invoices, assessment


def test_the_subrogation_case_a_paid_claim_sends_is_a_case_collections_opens() -> None:
    claim, invoices, assessment = a_paid_claim()
    case = messages.subrogation_case(claim, assessment, invoices, "CN")
    assert case is not None
    received = CaseCreate.model_validate(case.model_dump(mode="json", exclude_none=True))
    assert received.claim_id == "clm-1" and received.ladder == "legal_30_60_90"
    assert [(i.number, i.amount.amount, i.due_date) for i in received.invoices] == [
        ("B", D("40000.00"), DAY(2027, 4, 11))
    ]
    assert received.indemnity_paid is not None and received.indemnity_paid.amount == D("85000.00")


def test_the_subrogation_case_says_what_the_indemnity_counted_and_which_invoices_it_settled() -> (
    None
):
    """A credit note left nothing unpaid on A (30,000 of it recovered by the policyholder's
    mandate and counted): collections hears that A is settled and what was counted on each
    invoice, so that a mandate it takes over owes what the claim left unpaid and shares what it
    recovered beyond."""
    claim, invoices, assessment = a_paid_claim()
    a_line = assessment.invoices[0].model_copy(
        update={"recovered_in_collections": assessment.invoices[0].amount.model_copy(
            update={"amount": D("30000.00")})})  # fmt: skip
    assessment = assessment.model_copy(update={"invoices": [a_line, *assessment.invoices[1:]]})
    case = messages.subrogation_case(claim, assessment, invoices, "CN")
    assert case is not None
    received = CaseCreate.model_validate(case.model_dump(mode="json", exclude_none=True))
    assert [i.number for i in received.settled_invoices] == ["A"]
    assert [i.number for i in received.invoices] == ["B"]
    settled = received.settled_invoices[0].recovered_in_collections
    owed = received.invoices[0].recovered_in_collections
    assert settled is not None and settled.amount == D("30000.00")
    assert owed is not None and (owed.amount, owed.currency) == (D("0.00"), EUR)


def test_every_signal_claims_sends_is_a_signal_underwriting_records() -> None:
    kinds = {rules.SIGNAL_OVERDUE, rules.SIGNAL_ARREARS_CLEARED, *rules.FILING_SIGNALS.values(),
             *rules.APPROVAL_SIGNALS.values()}  # fmt: skip
    for kind in kinds:
        sent = messages.signal(kind, DAY(2027, 6, 1), f"{kind} of a claim", "pol-1")
        received = SignalCreate.model_validate(sent.model_dump(mode="json", exclude_none=True))
        assert received.kind == kind and received.observed_on == DAY(2027, 6, 1)
    assert kinds <= set(get_args(SignalKind))


def test_each_coverage_check_of_a_claims_invoices_is_an_item_underwriting_checks() -> None:
    claim, invoices, _ = a_paid_claim()
    original = {i.number: i.due_date for i in invoices}  # none extended
    sent_checks = messages.coverage_checks(claim, invoices, original)
    for sent, invoice in zip(sent_checks, invoices, strict=True):
        received = CoverageCheckCreate.model_validate(sent.model_dump(mode="json"))
        assert received.invoice_number == invoice.number
        assert received.invoice_amount.amount == invoice.amount
        assert received.shipment_date == invoice.shipment_date
        assert received.due_date == invoice.due_date


async def test_the_ladders_a_policy_may_name_are_the_ladders_collections_holds(api: Any) -> None:
    collections = await api.open("collections")
    listed = await collections.get("/v1/ladders", headers=auth("collector"))
    assert listed.status_code == 200, listed.text
    assert {ladder["name"] for ladder in listed.json()["items"]} == set(get_args(LadderName))
