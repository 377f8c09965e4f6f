"""Claims as the API shows them: rows in, read models out. Pure: no I/O, no clock (today is
given)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from services.claims import rules
from services.claims.models import (
    CalendarDay,
    Claim,
    ClaimDocument,
    ClaimInvoice,
    Dispute,
    NotifiedInvoice,
    OverdueNotification,
)
from services.claims.schemas import (
    AssessmentRead,
    CalendarDayRead,
    ClaimInvoiceRead,
    ClaimRead,
    DisputeRead,
    DocumentRead,
    DocumentUploadRead,
    InvoiceAssessmentRead,
    NotificationRead,
    NotifiedInvoiceRead,
    StepRead,
)
from shared.contracts import MoneyModel, PolicyTerms
from shared.problems import (
    ALREADY_DECIDED,
    ALREADY_PAID,
    CLAIM_LAPSED,
    CLAIM_ON_HOLD,
    DOCUMENTS_MISSING,
    NOT_APPROVED,
    NOT_ASSESSED,
    Problem,
    conflict,
    unprocessable,
)
from shared.usecase import money_read


def state_of(claim: Claim) -> rules.ClaimState:
    """A claim row's place in its lifecycle."""
    held = None if claim.held_status is None else rules.ClaimStatus(claim.held_status)
    return rules.ClaimState(rules.ClaimStatus(claim.status), held)


def notification_read(
    notification: OverdueNotification, rows: Sequence[NotifiedInvoice], *,
    arrears_left: bool = False,
) -> NotificationRead:  # fmt: skip
    """A notification as the API shows it (`arrears_left`: other notified invoices were still in
    arrears once it was made, so arrears cleared did not end the stop-shipment)."""
    c = notification.currency
    rows = sorted(rows, key=lambda r: (r.due_date, r.number))
    signal = rules.notification_signal(
        notification.kind, [r.due_date for r in rows], notification.notified_on,
        arrears_left=arrears_left,
    )  # fmt: skip
    return NotificationRead(
        id=notification.id, created_at=notification.created_at,
        policy_id=notification.policy_id, buyer_id=notification.buyer_id, kind=notification.kind,
        notified_on=notification.notified_on, new_due_date=notification.new_due_date,
        extension_accepted=True if notification.kind == "extension_request" else None,
        instalments=notification.instalments,
        invoices=[NotifiedInvoiceRead(
            number=r.number, amount=money_read(r.amount, c), shipment_date=r.shipment_date,
            due_date=r.due_date, notification_deadline=r.notification_deadline, late=r.late)
            for r in rows],
        stop_shipment_signalled=signal == rules.SIGNAL_OVERDUE,
        stop_shipment_cleared=signal == rules.SIGNAL_ARREARS_CLEARED,
    )  # fmt: skip


def stored_assessment(claim: Claim) -> AssessmentRead | None:
    """The assessment as it was stored (the typed record of its JSON)."""
    if claim.assessment is None:
        return None
    stored = claim.assessment
    if any("recovered_in_collections" not in line for line in stored["invoices"]):
        # Assessed before collections' recoveries were read: none were counted.
        nothing = {"amount": "0", "currency": claim.currency}
        stored = {**stored, "invoices": [{"recovered_in_collections": nothing, **line}
                                         for line in stored["invoices"]]}  # fmt: skip
    return AssessmentRead.model_validate(stored)


def assessed_sum(claim: Claim) -> rules.AssessedSum | None:
    """The stored assessment's steps and the policy terms they applied, as the rules read them
    (None: the claim was not assessed)."""
    assessment = stored_assessment(claim)
    if assessment is None:
        return None
    terms = PolicyTerms.model_validate(claim.terms)
    step = {s.name: s.amount.amount for s in assessment.steps}
    return rules.AssessedSum(
        lines=tuple(rules.AssessedLine(line.number, line.unpaid.amount, tuple(line.exclusions))
                    for line in assessment.invoices),
        claim_exclusions=tuple(assessment.claim_exclusions),
        insured_loss=assessment.insured_loss.amount,
        after_percentage=step["indemnity_percentage"],
        after_deductible=step["deductible_and_threshold"], after_caps=step["caps"],
        claim_threshold=terms.claim_threshold.amount, deductible=terms.deductible.amount,
        currency=claim.currency,
    )  # fmt: skip


def stored_assessment_json(assessment: AssessmentRead) -> dict[str, Any]:
    """The assessment as it is stored: its API shape, as JSON."""
    return assessment.model_dump(mode="json")


def status_shown(claim: Claim, kinds: Sequence[str], today: dt.date) -> rules.ClaimStatus:
    """A claim's status as reads show it (`kinds`: the documents it received): a lapse at once,
    though the sweep (or the next change) records it later."""
    lapsed = rules.lapsed_now(state_of(claim), claim.documents_due, today, claim.cause, kinds)
    return rules.ClaimStatus.LAPSED if lapsed else rules.ClaimStatus(claim.status)


def claim_read(
    claim: Claim, documents: Sequence[ClaimDocument], invoices: Sequence[ClaimInvoice],
    disputes: Sequence[Dispute], today: dt.date,
) -> ClaimRead:  # fmt: skip
    kinds = [d.kind for d in documents]
    status = status_shown(claim, kinds, today)
    c = claim.currency
    return ClaimRead(
        id=claim.id, created_at=claim.created_at, policy_id=claim.policy_id,
        buyer_id=claim.buyer_id, policyholder_id=claim.policyholder_id, cause=claim.cause,
        event_date=claim.event_date, loss_date=claim.loss_date, filed_on=claim.filed_on,
        status=status,
        filing_deadline=claim.filing_deadline,
        required_documents=list(rules.required_documents(claim.cause)),
        missing_documents=rules.missing_documents(claim.cause, kinds),
        documents=[document_read(d) for d in documents], documents_due=claim.documents_due,
        decision_due=claim.decision_due,
        invoices=[ClaimInvoiceRead(number=i.number, amount=money_read(i.amount, c),
                                   shipment_date=i.shipment_date, due_date=i.due_date)
                  for i in invoices],
        reductions=money_read(claim.reductions, c),
        disputes=[dispute_read(d, status) for d in disputes],
        assessment=stored_assessment(claim),
        indemnity=None if claim.indemnity is None else money_read(claim.indemnity, c),
        decision=claim.decision, decision_reason=claim.decision_reason,
        decided_by=claim.decided_by, paid_on=claim.paid_on,
        collection_case_id=claim.collection_case_id,
    )  # fmt: skip


def document_read(d: ClaimDocument) -> DocumentRead:
    return DocumentRead(id=d.id, created_at=d.created_at, kind=d.kind, filename=d.filename,
                        content_type=d.content_type, size=d.size, sha256=d.sha256)  # fmt: skip


def document_upload_read(
    d: ClaimDocument, claim: Claim, missing: Sequence[str]
) -> DocumentUploadRead:
    return DocumentUploadRead(**document_read(d).model_dump(), claim_id=claim.id,
                              claim_status=claim.status, missing_documents=list(missing),
                              decision_due=claim.decision_due)  # fmt: skip


def dispute_read(d: Dispute, claim_status: str) -> DisputeRead:
    return DisputeRead(id=d.id, created_at=d.created_at, claim_id=d.claim_id,
                       raised_on=d.raised_on, raised_by=d.raised_by, description=d.description,
                       invoice_numbers=list(d.invoice_numbers), outcome=d.outcome,
                       resolved_on=d.resolved_on, resolved_by=d.resolved_by,
                       note=d.resolution_note, claim_status=claim_status)  # fmt: skip


def assessment_read(
    result: rules.Indemnity, facts: Sequence[rules.InvoiceFacts], claim_exclusions: Sequence[str],
    assessed_on: dt.date,
) -> AssessmentRead:  # fmt: skip
    c = result.currency
    by_number = {f.invoice.number: f for f in facts}
    return AssessmentRead(
        assessed_on=assessed_on,
        invoices=[InvoiceAssessmentRead(
            number=line.number, amount=money_read(line.amount, c),
            reduction=money_read(line.reduction, c),
            recovered_in_collections=money_read(line.recovered_in_collections, c),
            unpaid=money_read(line.unpaid, c),
            covered_on_shipment_date=by_number[line.number].covered_on_shipment,
            coverage_reasons=list(by_number[line.number].not_covered_reasons),
            limit_in_force=money_read(line.limit_in_force, c),
            exclusions=list(line.exclusions),
            covered=money_read(line.covered, c)) for line in result.lines],
        claim_exclusions=list(claim_exclusions),
        steps=[StepRead(step=s.step, name=s.name, amount=money_read(s.amount, c), note=s.note)
               for s in result.steps],
        insured_loss=money_read(result.insured_loss, c),
        indemnity=MoneyModel.of(result.amount),
    )  # fmt: skip


def staff_day(day: CalendarDay, name: str | None, *, to_staff: bool) -> CalendarDayRead:
    """A day as staff corrected it (with the package's name of it, if any); who corrected it is
    shown to staff only (`to_staff`)."""
    return CalendarDayRead(country=day.country, date=day.day, working=day.working, source="staff",
                           name=name, reason=day.reason,
                           set_by=day.set_by if to_staff else None, set_at=day.set_at)  # fmt: skip


def refusal_problem(refused: rules.Refused, claim: Claim, missing: Sequence[str] = ()) -> Problem:
    """A refused act as the problem the API answers."""
    r, status = rules.Refusal, refused.status
    if refused.refusal is r.ALREADY_DECIDED:
        return conflict(ALREADY_DECIDED, f"the claim is already {status}", status_now=status)
    if refused.refusal is r.ALREADY_PAID:
        return conflict(ALREADY_PAID, f"the claim was paid on {claim.paid_on}")
    if refused.refusal is r.CLAIM_ON_HOLD:
        return conflict(CLAIM_ON_HOLD, "a dispute is open: the claim holds until it is settled",
                        status_now=status)  # fmt: skip
    if refused.refusal is r.CLAIM_LAPSED:
        return unprocessable(CLAIM_LAPSED, f"documents were due by {claim.documents_due}; the "
                             "claim has lapsed with documents missing",
                             documents_due=claim.documents_due.isoformat())  # fmt: skip
    if refused.refusal is r.DOCUMENTS_MISSING:
        return unprocessable(DOCUMENTS_MISSING, f"documents missing: {', '.join(missing)}",
                             missing_documents=list(missing))  # fmt: skip
    if refused.refusal is r.NOT_ASSESSED:
        return unprocessable(NOT_ASSESSED, "a claim is approved only once it is assessed",
                             status_now=status)  # fmt: skip
    return conflict(NOT_APPROVED, "only an approved claim is paid", status_now=status)
