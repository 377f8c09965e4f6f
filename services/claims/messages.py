"""What claims tells the other services, as the models of `shared.contracts` their receivers read:
signals about a buyer to underwriting (a paid claim's among them), the coverage checks of a
claim's invoices, and the subrogation case a paid claim opens in collections. Pure: rows in,
messages out."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from decimal import Decimal

from services.claims import rules
from services.claims.models import Claim, ClaimInvoice
from services.claims.schemas import AssessmentRead
from shared.contracts import (
    BuyerSignal,
    CaseInvoice,
    CaseOpening,
    CoverageCheck,
    LadderName,
    PolicyTerms,
    SettledInvoice,
    SignalKind,
)
from shared.usecase import money_read

SIGNALS_PATH = "/v1/buyers/{buyer_id}/signals"
COVERAGE_BATCH_PATH = "/v1/coverage-checks/batch"
CASES_PATH = "/v1/cases"
RECOVERIES_PATH = "/v1/creditors/{creditor_id}/recoveries"


def signal(
    kind: str, observed_on: dt.date, details: str, policy_id: str | None = None
) -> BuyerSignal:
    """A signal about a buyer, for underwriting (of the kinds `shared.contracts.SignalKind`)."""
    return BuyerSignal.model_validate(
        {"kind": kind, "observed_on": observed_on, "details": details, "policy_id": policy_id}
    )


# What a paid claim says of its buyer: the insurer bore a loss on it (an insolvency), or a
# protracted default is confirmed (the claim survived its exclusions and disputes, which a filing
# alone does not show); a political loss says nothing of the buyer.
PAID_CLAIM_SIGNALS: Mapping[str, SignalKind] = {
    "insolvency": "claim_paid",
    "protracted_default": "protracted_default",
}


def paid_claim_signal(claim: Claim) -> BuyerSignal | None:
    """The signal a paid claim sends about its buyer, observed on the day it was paid, with its
    policy; none for a cause that says nothing of the buyer, nor for a loss paid as political (a
    war under political cover: `rules.political_loss`)."""
    kind = PAID_CLAIM_SIGNALS.get(claim.cause)
    if kind is None or claim.paid_on is None:
        return None
    # The terms the claim was filed under (none kept on a claim filed before they were).
    cover = claim.terms is not None and PolicyTerms.model_validate(claim.terms).political_risk_cover
    if rules.political_loss(claim.cause, war_related=claim.war_related, political_risk_cover=cover):
        return None
    details = f"{claim.cause} claim {claim.id} paid under policy {claim.policy_id}"
    return signal(kind, claim.paid_on, details, claim.policy_id)


def coverage_checks(
    claim: Claim, invoices: Sequence[ClaimInvoice], due_dates: Mapping[str, dt.date]
) -> list[CoverageCheck]:
    """Each invoice of a claim, to be checked for cover on its shipment date with the credit
    period agreed then: its original due date (`due_dates`, by number: an extension within the
    maximum takes no cover away)."""
    return [CoverageCheck(policy_id=claim.policy_id, buyer_id=claim.buyer_id,
                          invoice_amount=money_read(i.amount, claim.currency),
                          shipment_date=i.shipment_date,
                          due_date=due_dates.get(i.number, i.due_date),
                          invoice_number=i.number) for i in invoices]  # fmt: skip


def recoveries_query(claim: Claim) -> dict[str, str]:
    """What collections is asked of a claim's debt (at RECOVERIES_PATH for the policyholder):
    its recoveries from the buyer in the claim's currency."""
    return {"buyer_id": claim.buyer_id, "currency": claim.currency}


def subrogation_case(
    claim: Claim, assessment: AssessmentRead, invoices: Sequence[ClaimInvoice],
    debtor_country: str,
) -> CaseOpening | None:  # fmt: skip
    """The case a paid claim opens: the insurer recovers, from the buyer, the invoices still unpaid
    after the reductions and owed by the buyer (not those a dispute settled for the buyer: it
    does not owe them, so they are neither collected nor part of the debt the insurer's share is
    of), with the indemnity it paid (collections shares recoveries by it; an indemnity of nothing
    is a share of 0 %: the insurer bore none of the loss); none when nothing is left owed. Each
    invoice says what the indemnity deducted as recovered by the policyholder's own collection
    cases, and the invoices the buyer owes nothing on (the reductions settled them, or a dispute
    did for the buyer) are named: a mandate taken over then owes what the claim left owed, and
    shares what it recovered beyond what the indemnity deducted."""
    assert claim.indemnity is not None
    unpaid = {line.number: line.unpaid.amount for line in assessment.invoices}
    counted = {line.number: money_read(line.recovered_in_collections.amount, claim.currency)
               for line in assessment.invoices}  # fmt: skip
    not_owed = {line.number for line in assessment.invoices
                if not rules.owed_by_buyer(line.exclusions)}  # fmt: skip
    owed = rules.subrogated_invoices(unpaid, {i.number: i.due_date for i in invoices}, not_owed)
    if not owed:
        return None
    ladder: LadderName = claim.terms["collection_ladder"]
    paid = claim.indemnity > 0
    return CaseOpening(
        creditor_id=claim.policyholder_id, buyer_id=claim.buyer_id, debtor_country=debtor_country,
        ladder=ladder, claim_id=claim.id, currency=claim.currency,
        indemnity_paid=money_read(claim.indemnity, claim.currency) if paid else None,
        insurer_share_pct=None if paid else Decimal(0),
        loss_payee_ids=list(claim.terms.get("assigned_bank_ids") or []),
        invoices=[CaseInvoice(number=o.number, amount=money_read(o.unpaid, claim.currency),
                              due_date=o.due_date, recovered_in_collections=counted[o.number])
                  for o in owed],
        settled_invoices=[SettledInvoice(number=number, recovered_in_collections=counted[number])
                          for number in rules.settled_invoices(unpaid, not_owed)],
    )  # fmt: skip
