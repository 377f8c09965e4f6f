"""Claims use cases: overdue notifications, claims and their filing window, documents, disputes,
assessment with underwriting's coverage, decision and payment with the subrogation case."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.claims import repository as repo
from services.claims import rules
from services.claims.config import ClaimsSettings
from services.claims.models import (
    CalendarDay,
    Claim,
    ClaimDocument,
    ClaimInvoice,
    Dispute,
    NotifiedInvoice,
    OverdueNotification,
    outbox,
)
from services.claims.schemas import (
    AssessmentRead,
    CalendarDayRead,
    CalendarDaysRead,
    CalendarDayWrite,
    ClaimCreate,
    ClaimInvoiceRead,
    ClaimRead,
    DecisionCreate,
    DisputeCreate,
    DisputeRead,
    DisputeResolve,
    DocumentRead,
    DocumentUploadRead,
    InvoiceAssessmentRead,
    InvoiceIn,
    NotificationCreate,
    NotificationRead,
    NotifiedInvoiceRead,
    StepRead,
)
from shared.auth import Caller
from shared.calendar import CalendarError, check_year, is_working_day, package_days
from shared.contracts import CoverageFacts, MoneyModel, PolicyTerms
from shared.countries import CountryError, country_code
from shared.db import new_id, utcnow
from shared.http import ServiceClient
from shared.money import Money
from shared.outbox import deliver, enqueue
from shared.peers import fetch_buyer, fetch_policy, upstream_problem
from shared.problems import Problem, conflict, invalid, not_found, unprocessable

ZERO = Decimal(0)
DECIDED = frozenset({"approved", "rejected", "paid"})


@dataclass
class Context:
    session: AsyncSession
    caller: Caller
    today: dt.date
    settings: ClaimsSettings
    peers: Mapping[str, ServiceClient]


def _money(amount: Decimal, currency: str) -> MoneyModel:
    return MoneyModel.of(Money(amount, currency))


def _in_currency(model: MoneyModel | None, currency: str, loc: list[str | int]) -> Decimal:
    if model is None:
        return ZERO
    if model.currency != currency:
        raise unprocessable(
            "currency-mismatch",
            f"{'.'.join(str(p) for p in loc)} is in {model.currency}; the policy is in {currency}",
            loc=loc,
        )
    if model.amount < 0:
        raise invalid(loc, "must not be negative")
    return model.amount


def _invoice_amounts(invoices: Sequence[InvoiceIn], currency: str) -> None:
    for index, invoice in enumerate(invoices):
        amount = _in_currency(invoice.amount, currency, ["body", "invoices", index, "amount"])
        if amount <= 0:
            raise invalid(["body", "invoices", index, "amount"], "must be greater than zero")


async def _own_policy(ctx: Context, policy_id: str) -> PolicyTerms:
    policy = await fetch_policy(ctx.peers, policy_id)
    if ctx.caller.role == "policyholder" and ctx.caller.party_id != policy.policyholder_id:
        raise not_found("policy", policy_id)
    return policy


# ---------------------------------------------------------------- overdue notifications


async def notify_overdue(ctx: Context, report: NotificationCreate) -> NotificationRead:
    """Record the notification; each invoice is in time or late; an overdue stops shipments on
    that policy (underwriting hears of it through the outbox)."""
    policy = await _own_policy(ctx, report.policy_id)
    await fetch_buyer(ctx.peers, report.buyer_id)
    _invoice_amounts(report.invoices, policy.currency)
    planned = ZERO
    for index, step in enumerate(report.instalments or []):
        loc: list[str | int] = ["body", "instalments", index]
        planned += _in_currency(step.amount, policy.currency, [*loc, "amount"])
        if step.amount.amount <= 0:
            raise invalid([*loc, "amount"], "must be greater than zero")
        if step.due_date < ctx.today:
            raise invalid(
                [*loc, "due_date"], "an instalment of a plan agreed now is not in the past"
            )
    owed = sum((i.amount.amount for i in report.invoices), ZERO)
    if planned > owed:
        raise unprocessable("plan-exceeds-debt",
                            f"the instalments add up to {planned}, more than the {owed} owed",
                            loc=["body", "instalments"])  # fmt: skip
    if report.kind == "overdue":
        for index, invoice in enumerate(report.invoices):
            if invoice.due_date >= ctx.today:
                raise unprocessable("not-overdue", f"invoice {invoice.number} is not past due "
                                    f"(due {invoice.due_date})",
                                    loc=["body", "invoices", index, "due_date"])  # fmt: skip
    if report.kind == "extension_request":
        assert report.new_due_date is not None
        invoice = report.invoices[0]
        if not rules.extension_allowed(
            invoice.due_date, report.new_due_date, policy.max_extension_days
        ):
            raise unprocessable(
                "extension-too-long",
                f"the policyholder may move a due date by at most {policy.max_extension_days} "
                f"days on its own (to {invoice.due_date + dt.timedelta(policy.max_extension_days)})",
                max_new_due_date=(invoice.due_date
                                  + dt.timedelta(policy.max_extension_days)).isoformat(),
            )  # fmt: skip
    notification = OverdueNotification(
        id=new_id("ovn"), created_at=utcnow(), policy_id=policy.id, buyer_id=report.buyer_id,
        policyholder_id=policy.policyholder_id, currency=policy.currency, kind=report.kind,
        notified_on=ctx.today, new_due_date=report.new_due_date,
        instalments=[i.model_dump(mode="json") for i in report.instalments or []] or None,
        note=report.note, created_by=ctx.caller.subject,
    )  # fmt: skip
    ctx.session.add(notification)
    await ctx.session.flush()
    rows = []
    for invoice in report.invoices:
        deadline = rules.notification_deadline(invoice.due_date, policy.overdue_notification_days)
        row = NotifiedInvoice(
            id=new_id("nin"), notification_id=notification.id, policy_id=policy.id,
            buyer_id=report.buyer_id, number=invoice.number, amount=invoice.amount.amount,
            shipment_date=invoice.shipment_date, due_date=invoice.due_date,
            notification_deadline=deadline,
            late=report.kind != "arrears_cleared"
            and rules.notified_late(invoice.due_date, ctx.today, policy.overdue_notification_days),
        )  # fmt: skip
        ctx.session.add(row)
        rows.append(row)
    signal = _notification_signal(report.kind, [i.due_date for i in report.invoices], ctx.today)
    if signal is not None:
        await enqueue(
            ctx.session, outbox, aggregate_id=notification.id, target="underwriting",
            path=f"/v1/buyers/{report.buyer_id}/signals",
            body={"kind": signal, "observed_on": ctx.today.isoformat(), "policy_id": policy.id,
                  "details": f"overdue notification {notification.id} ({report.kind})"},
            idempotency_key=f"claims:overdue:{notification.id}",
        )  # fmt: skip
    await ctx.session.flush()
    return await read_notification(ctx, notification)


def _notification_signal(kind: str, due_dates: Sequence[dt.date], today: dt.date) -> str | None:
    """What underwriting hears of a notification: arrears paid end the stop-shipment; anything
    past due starts it; an extension of a due date not yet reached says nothing."""
    if kind == "arrears_cleared":
        return "arrears_cleared"
    return "overdue_notified" if any(due < today for due in due_dates) else None


async def read_notification(ctx: Context, notification: OverdueNotification) -> NotificationRead:
    rows = await repo.notified_invoices(ctx.session, notification.id)
    c = notification.currency
    return NotificationRead(
        id=notification.id, created_at=notification.created_at,
        policy_id=notification.policy_id, buyer_id=notification.buyer_id, kind=notification.kind,
        notified_on=notification.notified_on, new_due_date=notification.new_due_date,
        extension_accepted=True if notification.kind == "extension_request" else None,
        instalments=notification.instalments,
        invoices=[NotifiedInvoiceRead(
            number=r.number, amount=_money(r.amount, c), shipment_date=r.shipment_date,
            due_date=r.due_date, notification_deadline=r.notification_deadline, late=r.late)
            for r in rows],
        stop_shipment_signalled=_notification_signal(
            notification.kind, [r.due_date for r in rows], notification.notified_on
        ) == "overdue_notified",
        stop_shipment_cleared=notification.kind == "arrears_cleared",
    )  # fmt: skip


# ---------------------------------------------------------------- claims


async def file_claim(ctx: Context, filing: ClaimCreate) -> ClaimRead:
    """A claim within its filing window; documents pending until the file is complete."""
    policy = await _own_policy(ctx, filing.policy_id)
    await fetch_buyer(ctx.peers, filing.buyer_id)
    _invoice_amounts(filing.invoices, policy.currency)
    reductions = sum(
        (_in_currency(getattr(filing, name), policy.currency, ["body", name])
         for name in ("credit_notes", "set_offs", "recovered")), ZERO)  # fmt: skip
    if filing.event_date is not None and filing.event_date > ctx.today:
        raise invalid(
            ["body", "event_date"], "the date the event became known is not in the future"
        )
    for index, invoice in enumerate(filing.invoices):
        if invoice.shipment_date > ctx.today:
            raise invalid(["body", "invoices", index, "shipment_date"],
                          "a claimed invoice was shipped, so not after today")  # fmt: skip
    if filing.cause == "political" and not policy.political_risk_cover:
        raise unprocessable("political-risk-not-covered",
                            "the policy does not cover political risk")  # fmt: skip
    # The clocks run from the original due dates: an invoice notified earlier with an earlier due
    # date (before an extension) keeps that date.
    numbers = [i.number for i in filing.invoices]
    original = await repo.original_due_dates(ctx.session, policy.id, filing.buyer_id, numbers)
    oldest_due = min(min(i.due_date, original.get(i.number, i.due_date)) for i in filing.invoices)
    window = rules.filing_window(
        filing.cause, event_date=filing.event_date, oldest_due_date=oldest_due,
        filing_days=policy.claim_filing_days,
        protracted_wait_days=policy.protracted_default_wait_days,
    )  # fmt: skip
    verdict = window.verdict(ctx.today)
    if verdict == "too_early":
        raise unprocessable(
            "claim-too-early",
            f"a {filing.cause} claim may be filed from {window.opens.isoformat()}",
            first_filing_date=window.opens.isoformat(),
            filing_deadline=window.closes.isoformat(),
        )
    if verdict == "time_barred":
        raise unprocessable(
            "claim-time-barred",
            f"the filing window closed on {window.closes.isoformat()}",
            filing_deadline=window.closes.isoformat(),
        )
    # A claim that has lapsed without the lapse being recorded yet still holds its invoices:
    # record it now, which frees them.
    holders = await repo.holders_of(ctx.session, policy.id, filing.buyer_id, numbers)
    for holder_id in sorted({claim_id for _, claim_id in holders}):
        holder = await repo.claim(ctx.session, holder_id, lock=True)
        if holder is not None:
            await _refresh_lapse(ctx, holder)
    claim = Claim(
        id=new_id("clm"), created_at=utcnow(), policy_id=policy.id, buyer_id=filing.buyer_id,
        policyholder_id=policy.policyholder_id, currency=policy.currency, cause=filing.cause,
        event_date=filing.event_date,
        loss_date=window.opens if filing.cause == "protracted_default" else filing.event_date,
        filed_on=ctx.today, filing_opens=window.opens, filing_deadline=window.closes,
        status="documents_pending", held_status=None,
        documents_due=rules.documents_due(ctx.today, policy.documents_grace_days),
        reductions=reductions, war_related=filing.war_related,
        nuclear_related=filing.nuclear_related, terms=policy.model_dump(mode="json"),
        created_by=ctx.caller.subject, version=1,
    )  # fmt: skip
    ctx.session.add(claim)
    await ctx.session.flush()
    # The database holds each invoice for one live claim: of concurrent filings, one gets it.
    held = await repo.hold_invoices(ctx.session, claim, numbers)
    if len(held) < len(set(numbers)):
        claimed = await repo.holders_of(
            ctx.session, policy.id, filing.buyer_id, [n for n in numbers if n not in held]
        )
        raise conflict(
            "invoice-already-claimed",
            "already claimed: " + ", ".join(f"{n} (claim {c})" for n, c in claimed),
            claims={n: c for n, c in claimed},
        )
    for invoice in filing.invoices:
        ctx.session.add(ClaimInvoice(
            id=new_id("cin"), claim_id=claim.id, number=invoice.number,
            amount=invoice.amount.amount, shipment_date=invoice.shipment_date,
            due_date=invoice.due_date))  # fmt: skip
    signal = _CLAIM_SIGNALS.get(filing.cause)
    if signal is not None:
        # What the claim says of the buyer feeds its grade and limits in underwriting: an
        # insolvency withdraws its limits, a protracted default counts as a payment delay.
        observed = claim.event_date if filing.cause == "insolvency" else ctx.today
        assert observed is not None
        await enqueue(
            ctx.session, outbox, aggregate_id=claim.id, target="underwriting",
            path=f"/v1/buyers/{claim.buyer_id}/signals",
            body={"kind": signal, "observed_on": observed.isoformat(),
                  "details": f"{filing.cause} claim {claim.id} under policy {policy.id}"},
            idempotency_key=f"claims:claim-signal:{claim.id}",
        )  # fmt: skip
    await ctx.session.flush()
    return await read_claim(ctx, claim)


_CLAIM_SIGNALS = {"insolvency": "insolvency_filing", "protracted_default": "payment_delay"}


async def _claim(ctx: Context, claim_id: str, *, lock: bool = False) -> Claim:
    claim = await repo.claim(ctx.session, claim_id, lock=lock)
    if claim is None or (
        ctx.caller.role == "policyholder" and claim.policyholder_id != ctx.caller.party_id
    ):
        raise not_found("claim", claim_id)
    return claim


async def _documents(ctx: Context, claim_id: str) -> list[ClaimDocument]:
    return (await repo.documents_of(ctx.session, [claim_id])).get(claim_id, [])


async def _lapsed_now(ctx: Context, claim: Claim) -> bool:
    """Documents still missing after the grace period: the claim has lapsed."""
    return _lapsed(claim, [d.kind for d in await _documents(ctx, claim.id)], ctx.today)


def _lapsed(claim: Claim, kinds: Sequence[str], today: dt.date) -> bool:
    waiting = claim.status == "documents_pending" or (
        claim.status == "on_hold" and claim.held_status == "documents_pending"
    )
    return waiting and rules.lapsed(
        claim.documents_due, today, rules.missing_documents(claim.cause, kinds)
    )


async def _refresh_lapse(ctx: Context, claim: Claim) -> None:
    """Before a change: a claim that has lapsed is recorded as lapsed, and frees its invoices."""
    if await _lapsed_now(ctx, claim):
        claim.status, claim.held_status = "lapsed", None
        await repo.release_invoices(ctx.session, claim.id)


async def lapse_overdue(session: AsyncSession, today: dt.date) -> list[str]:
    """The sweep: every claim whose documents grace period has ended with documents still
    missing lapses (reads already show it; this records it). Returns the lapsed claims' ids."""
    waiting = await repo.waiting_for_documents(session, today)
    documents = await repo.documents_of(session, [claim.id for claim in waiting])
    lapsed = []
    for claim in waiting:
        kinds = [d.kind for d in documents.get(claim.id, [])]
        if rules.lapsed(claim.documents_due, today, rules.missing_documents(claim.cause, kinds)):
            claim.status, claim.held_status = "lapsed", None
            await repo.release_invoices(session, claim.id)
            lapsed.append(claim.id)
    await session.flush()
    return lapsed


async def get_claim(ctx: Context, claim_id: str) -> ClaimRead:
    return await read_claim(ctx, await _claim(ctx, claim_id))


async def list_claims(ctx: Context, claims: Sequence[Claim]) -> list[ClaimRead]:
    return await read_claims(ctx, claims)


async def read_claim(ctx: Context, claim: Claim) -> ClaimRead:
    return (await read_claims(ctx, [claim]))[0]


async def read_claims(ctx: Context, claims: Sequence[Claim]) -> list[ClaimRead]:
    """Claims as the API shows them, their documents, invoices and disputes read in three
    queries for the whole page."""
    ids = [claim.id for claim in claims]
    documents = await repo.documents_of(ctx.session, ids)
    invoices = await repo.invoices_of(ctx.session, ids)
    disputes = await repo.disputes_of(ctx.session, ids)
    return [_claim_read(ctx, claim, documents.get(claim.id, []), invoices.get(claim.id, []),
                        disputes.get(claim.id, [])) for claim in claims]  # fmt: skip


def _claim_read(
    ctx: Context, claim: Claim, documents: Sequence[ClaimDocument],
    invoices: Sequence[ClaimInvoice], disputes: Sequence[Dispute],
) -> ClaimRead:  # fmt: skip
    kinds = [d.kind for d in documents]
    # A read shows a lapse at once; the sweep (or the next change) records it.
    status = "lapsed" if _lapsed(claim, kinds, ctx.today) else claim.status
    c = claim.currency
    return ClaimRead(
        id=claim.id, created_at=claim.created_at, policy_id=claim.policy_id,
        buyer_id=claim.buyer_id, policyholder_id=claim.policyholder_id, cause=claim.cause,
        event_date=claim.event_date, loss_date=claim.loss_date, filed_on=claim.filed_on,
        status=status,
        filing_deadline=claim.filing_deadline,
        required_documents=list(rules.required_documents(claim.cause)),
        missing_documents=rules.missing_documents(claim.cause, kinds),
        documents=[_document_read(d) for d in documents], documents_due=claim.documents_due,
        decision_due=claim.decision_due,
        invoices=[ClaimInvoiceRead(number=i.number, amount=_money(i.amount, c),
                                   shipment_date=i.shipment_date, due_date=i.due_date)
                  for i in invoices],
        reductions=_money(claim.reductions, c),
        disputes=[_dispute_read(d, status) for d in disputes],
        assessment=AssessmentRead.model_validate(claim.assessment) if claim.assessment else None,
        indemnity=None if claim.indemnity is None else _money(claim.indemnity, c),
        decision=claim.decision, decision_reason=claim.decision_reason,
        decided_by=claim.decided_by, paid_on=claim.paid_on,
        collection_case_id=claim.collection_case_id,
    )  # fmt: skip


def _document_read(d: ClaimDocument) -> DocumentRead:
    return DocumentRead(id=d.id, created_at=d.created_at, kind=d.kind, filename=d.filename,
                        content_type=d.content_type, size=d.size, sha256=d.sha256)  # fmt: skip


def _dispute_read(d: Dispute, claim_status: str) -> DisputeRead:
    return DisputeRead(id=d.id, created_at=d.created_at, claim_id=d.claim_id,
                       raised_on=d.raised_on, description=d.description,
                       invoice_numbers=list(d.invoice_numbers), outcome=d.outcome,
                       resolved_on=d.resolved_on, claim_status=claim_status)  # fmt: skip


# ---------------------------------------------------------------- documents


async def add_document(
    ctx: Context, claim_id: str, kind: str, filename: str, content_type: str, content: bytes
) -> DocumentUploadRead:
    """Attach a document; the last missing one completes the file: under review, with the
    decision due within the working days of the claims calendar."""
    claim = await _claim(ctx, claim_id, lock=True)
    await _refresh_lapse(ctx, claim)
    if claim.status == "lapsed":
        raise unprocessable("claim-lapsed", f"documents were due by {claim.documents_due}; "
                            "the claim has lapsed", documents_due=claim.documents_due.isoformat())  # fmt: skip
    if claim.status in DECIDED:
        raise conflict("already-decided", f"the claim is {claim.status}")
    if kind not in rules.DOCUMENT_KINDS:
        raise invalid(["body", "kind"], f"kind must be one of {sorted(rules.DOCUMENT_KINDS)}")
    document = ClaimDocument(
        id=new_id("doc"), created_at=utcnow(), claim_id=claim.id, kind=kind,
        filename=filename[:255] or "document", content_type=content_type, size=len(content),
        sha256=hashlib.sha256(content).hexdigest(), content=content,
        uploaded_by=ctx.caller.subject,
    )  # fmt: skip
    ctx.session.add(document)
    await ctx.session.flush()
    missing = rules.missing_documents(
        claim.cause, [d.kind for d in await _documents(ctx, claim.id)]
    )
    pending = claim.status == "documents_pending" or claim.held_status == "documents_pending"
    if pending and not missing:
        claim.complete_on = ctx.today
        country = claim.terms["claims_calendar_country"]
        claim.decision_due = rules.decision_due(
            ctx.today, ctx.settings.decision_working_days, country,
            await repo.calendar_corrections(ctx.session, country, ctx.today),
        )  # fmt: skip
        if claim.status == "on_hold":
            claim.held_status = "under_review"
        else:
            claim.status = "under_review"
    await ctx.session.flush()
    return DocumentUploadRead(**_document_read(document).model_dump(), claim_id=claim.id,
                              claim_status=claim.status, missing_documents=missing,
                              decision_due=claim.decision_due)  # fmt: skip


# ---------------------------------------------------------------- disputes


async def raise_dispute(ctx: Context, claim_id: str, raised: DisputeCreate) -> DisputeRead:
    """The buyer disputes invoices: the claim holds until every dispute is settled."""
    claim = await _claim(ctx, claim_id, lock=True)
    await _refresh_lapse(ctx, claim)
    if claim.status in DECIDED or claim.status == "lapsed":
        raise conflict("already-decided", f"the claim is {claim.status}")
    numbers = {
        i.number for i in (await repo.invoices_of(ctx.session, [claim.id])).get(claim.id, [])
    }
    unknown = [n for n in raised.invoice_numbers if n not in numbers]
    if unknown:
        raise unprocessable("unknown-invoice", f"not in this claim: {', '.join(unknown)}",
                            invoice_numbers=unknown)  # fmt: skip
    dispute = Dispute(
        id=new_id("dsp"), created_at=utcnow(), claim_id=claim.id, raised_on=raised.raised_on,
        description=raised.description, invoice_numbers=list(dict.fromkeys(raised.invoice_numbers)),
        outcome=None, resolved_on=None, raised_by=ctx.caller.subject,
    )  # fmt: skip
    ctx.session.add(dispute)
    if claim.status != "on_hold":
        # An assessment made before the dispute no longer stands.
        claim.held_status = "under_review" if claim.status == "assessed" else claim.status
        claim.status = "on_hold"
    await ctx.session.flush()
    return _dispute_read(dispute, claim.status)


async def resolve_dispute(
    ctx: Context, claim_id: str, dispute_id: str, settlement: DisputeResolve
) -> DisputeRead:
    claim = await _claim(ctx, claim_id, lock=True)
    dispute = await repo.by_id(ctx.session, Dispute, dispute_id)
    if dispute is None or dispute.claim_id != claim.id:
        raise not_found("dispute", dispute_id)
    if dispute.outcome is not None:
        raise conflict("already-decided", f"the dispute was settled for the {dispute.outcome}")
    dispute.outcome = settlement.outcome
    dispute.resolved_on = settlement.resolved_on or ctx.today
    dispute.resolution_note = settlement.note
    dispute.resolved_by = ctx.caller.subject
    await ctx.session.flush()
    still_open = await repo.open_disputes(ctx.session, claim.id)
    if not still_open and claim.status == "on_hold":
        claim.status, claim.held_status = claim.held_status or "under_review", None
        claim.assessment, claim.indemnity = None, None
    await ctx.session.flush()
    return _dispute_read(dispute, claim.status)


# ---------------------------------------------------------------- assessment


async def assess(ctx: Context, claim_id: str) -> ClaimRead:
    """Per invoice: coverage on its shipment date (asked of underwriting) and the exclusions that
    apply; then the indemnity with each step of domain.md's sum."""
    claim = await _claim(ctx, claim_id, lock=True)
    await _refresh_lapse(ctx, claim)
    if claim.status in DECIDED:
        raise conflict("already-decided", f"the claim is {claim.status}")
    if claim.status == "on_hold":
        raise conflict("claim-on-hold", "a dispute is open: the claim holds until it is settled")
    if claim.status == "lapsed":
        raise unprocessable("claim-lapsed", "the claim lapsed with documents missing")
    if claim.status == "documents_pending":
        missing = rules.missing_documents(
            claim.cause, [d.kind for d in await _documents(ctx, claim.id)]
        )
        raise unprocessable("documents-missing", f"documents missing: {', '.join(missing)}",
                            missing_documents=missing)  # fmt: skip
    terms = PolicyTerms.model_validate(claim.terms)
    invoices = (await repo.invoices_of(ctx.session, [claim.id])).get(claim.id, [])
    coverage = await _coverage(ctx, claim, invoices)
    notified = await repo.first_notifications(ctx.session, claim.policy_id, claim.buyer_id)
    disputes = _dispute_outcomes(
        (await repo.disputes_of(ctx.session, [claim.id])).get(claim.id, [])
    )
    facts = []
    for invoice in invoices:
        answer = coverage[invoice.number]
        held = {c["condition"]: bool(c["held"]) for c in answer.conditions}
        covered_on_shipment = all(v for k, v in held.items() if k != "headroom_available")
        first = notified.get(invoice.number)
        deadline = rules.notification_deadline(invoice.due_date, terms.overdue_notification_days)
        late = first.late if first is not None else not (claim.filed_on <= deadline)
        facts.append(rules.InvoiceFacts(
            invoice=rules.ClaimInvoice(invoice.number, invoice.amount, invoice.shipment_date,
                                       invoice.due_date),
            covered_on_shipment=covered_on_shipment,
            not_covered_reasons=tuple(r for r in answer.reasons if r != "headroom_exhausted"
                                      and r != "partially_covered"),
            limit_in_force=answer.limit_in_force.amount if answer.limit_in_force else ZERO,
            sanctioned="sanctioned" in answer.reasons, notified_late=late,
            dispute=disputes.get(invoice.number),
        ))  # fmt: skip
    claim_exclusions = []
    if claim.nuclear_related:
        claim_exclusions.append("nuclear_risk")
    if claim.war_related and not terms.political_risk_cover:
        claim_exclusions.append("war_without_political_cover")
    if claim_exclusions:
        facts = [replace(f, covered_on_shipment=False) for f in facts]
    pct = terms.political_indemnity_pct if claim.cause == "political" else terms.indemnity_pct
    year_start, year_end = rules.policy_year(terms.start_date, claim.loss_date)
    paid_policy, paid_buyer = await repo.indemnities_in_year(
        ctx.session, claim, year_start, year_end
    )
    result = rules.indemnity(
        facts, reductions=claim.reductions, currency=claim.currency,
        terms=rules.IndemnityTerms(
            indemnity_pct=pct, deductible=terms.deductible.amount,
            claim_threshold=terms.claim_threshold.amount,
            single_buyer_cap_left=None if terms.single_buyer_cap is None
            else terms.single_buyer_cap.amount - paid_buyer,
            max_liability_left=terms.max_liability.amount - paid_policy,
        ),
    )  # fmt: skip
    c = claim.currency
    by_number = {f.invoice.number: f for f in facts}
    assessment = AssessmentRead(
        assessed_on=ctx.today,
        invoices=[InvoiceAssessmentRead(
            number=line.number, amount=_money(line.amount, c), reduction=_money(line.reduction, c),
            unpaid=_money(line.unpaid, c),
            covered_on_shipment_date=by_number[line.number].covered_on_shipment,
            coverage_reasons=list(by_number[line.number].not_covered_reasons),
            limit_in_force=_money(line.limit_in_force, c),
            exclusions=list(line.exclusions) + claim_exclusions,
            covered=_money(line.covered, c)) for line in result.lines],
        claim_exclusions=claim_exclusions,
        steps=[StepRead(step=s.step, name=s.name, amount=_money(s.amount, c), note=s.note)
               for s in result.steps],
        insured_loss=_money(result.insured_loss, c),
        indemnity=MoneyModel.of(result.amount),
    )  # fmt: skip
    claim.assessment = assessment.model_dump(mode="json")
    claim.indemnity = result.amount.amount
    claim.assessed_by, claim.assessed_at = ctx.caller.subject, utcnow()
    claim.status = "assessed"
    await ctx.session.flush()
    return await read_claim(ctx, claim)


async def _coverage(
    ctx: Context, claim: Claim, invoices: Sequence[ClaimInvoice]
) -> dict[str, CoverageFacts]:
    items = [{"policy_id": claim.policy_id, "buyer_id": claim.buyer_id,
              "invoice_amount": {"amount": str(i.amount), "currency": claim.currency},
              "shipment_date": i.shipment_date.isoformat(), "due_date": i.due_date.isoformat(),
              "invoice_number": i.number} for i in invoices]  # fmt: skip
    response = await ctx.peers["underwriting"].request(
        "POST", "/v1/coverage-checks/batch", json={"items": items}
    )
    if response.status_code != 200:
        raise upstream_problem(response.status_code, "underwriting", response.text)
    out: dict[str, CoverageFacts] = {}
    for invoice, result in zip(invoices, response.json()["results"], strict=True):
        if "error" in result:
            raise Problem(502, "upstream-error",
                          f"underwriting could not check invoice {invoice.number}",
                          upstream_error=result["error"])  # fmt: skip
        out[invoice.number] = CoverageFacts.model_validate(result)
    return out


def _dispute_outcomes(disputes: Sequence[Dispute]) -> dict[str, str]:
    """Per disputed invoice: `open`, or the side the last dispute naming it was settled for."""
    outcome: dict[str, str] = {}
    for dispute in disputes:
        for number in dispute.invoice_numbers:
            outcome[number] = dispute.outcome or "open"
    return outcome


# ---------------------------------------------------------------- decision and payment


async def decide(ctx: Context, claim_id: str, verdict: DecisionCreate) -> ClaimRead:
    claim = await _lock_with_policy_caps(ctx, claim_id)
    await _refresh_lapse(ctx, claim)
    if claim.status in DECIDED:
        raise conflict("already-decided", f"the claim is already {claim.status}",
                       status_now=claim.status)  # fmt: skip
    if claim.status == "lapsed":
        raise unprocessable("claim-lapsed", "the claim lapsed with documents missing")
    if verdict.decision == "approve" and claim.status != "assessed":
        raise unprocessable("not-assessed", "a claim is approved only once it is assessed",
                            status_now=claim.status)  # fmt: skip
    if verdict.decision == "approve":
        await _check_caps_still_hold(ctx, claim)
    else:
        await repo.release_invoices(ctx.session, claim.id)
    claim.decision = verdict.decision
    claim.status = "approved" if verdict.decision == "approve" else "rejected"
    claim.decision_reason = verdict.reason
    claim.decided_by, claim.decided_at = ctx.caller.subject, utcnow()
    await ctx.session.flush()
    return await read_claim(ctx, claim)


async def _lock_with_policy_caps(ctx: Context, claim_id: str) -> Claim:
    """The claim, locked, with its policy's caps taken for the transaction (always in that
    order): approvals and payments of one policy then run one at a time, and the claim is read
    again once they are taken (on SQLite the write lock is what serialises)."""
    claim = await _claim(ctx, claim_id, lock=True)
    await repo.lock_policy_caps(ctx.session, claim.policy_id)
    await ctx.session.refresh(claim)
    return claim


async def _check_caps_still_hold(ctx: Context, claim: Claim, *, paying: bool = False) -> None:
    """Claims approved or paid since this one was assessed use the same caps: if what is left of
    them no longer covers the assessed indemnity, the claim is not approved (it must be assessed
    again) nor paid. The caller holds the policy's caps (`_lock_with_policy_caps`)."""
    terms = PolicyTerms.model_validate(claim.terms)
    start, end = rules.policy_year(terms.start_date, claim.loss_date)
    used_policy, used_buyer = await repo.indemnities_in_year(ctx.session, claim, start, end)
    left = rules.caps_left(
        max_liability=terms.max_liability.amount,
        single_buyer_cap=None if terms.single_buyer_cap is None else terms.single_buyer_cap.amount,
        used_on_policy=used_policy, used_on_buyer=used_buyer,
    )  # fmt: skip
    if claim.indemnity is None or claim.indemnity <= left:
        return
    cap_left = _money(left, claim.currency).model_dump(mode="json")
    if paying:
        raise conflict("caps-exceeded", "claims approved or paid on the policy leave less of its "
                       "caps than this claim's indemnity", cap_left=cap_left)  # fmt: skip
    raise conflict(
        "assessment-outdated",
        "claims approved since the assessment leave less of the policy's caps than it "
        "assessed; assess the claim again",
        cap_left=cap_left,
    )


async def pay(ctx: Context, claim_id: str) -> ClaimRead:
    """Pay an approved claim once, if the caps still hold with it; the debt passes to collections
    as a subrogation case (an outbox message with a stable Idempotency-Key, so the case is opened
    exactly once) with the indemnity paid, from which collections shares recoveries exactly."""
    claim = await _lock_with_policy_caps(ctx, claim_id)
    if claim.status == "paid":
        raise conflict("already-paid", f"the claim was paid on {claim.paid_on}")
    if claim.status != "approved":
        raise unprocessable("not-approved", "only an approved claim is paid",
                            status_now=claim.status)  # fmt: skip
    assert claim.indemnity is not None and claim.assessment is not None
    await _check_caps_still_hold(ctx, claim, paying=True)
    buyer = await fetch_buyer(ctx.peers, claim.buyer_id)
    lines = claim.assessment["invoices"]
    invoices = (await repo.invoices_of(ctx.session, [claim.id])).get(claim.id, [])
    due = {i.number: i.due_date for i in invoices}
    claim.status, claim.paid_on, claim.paid_by = "paid", ctx.today, ctx.caller.subject
    await enqueue(
        ctx.session, outbox, aggregate_id=claim.id, target="collections", path="/v1/cases",
        body={
            "creditor_id": claim.policyholder_id, "buyer_id": claim.buyer_id,
            "debtor_country": buyer.country, "ladder": claim.terms["collection_ladder"],
            "claim_id": claim.id, "currency": claim.currency,
            "indemnity_paid": _money(claim.indemnity, claim.currency).model_dump(mode="json"),
            "invoices": [{"number": line["number"], "amount": line["unpaid"],
                          "due_date": due[line["number"]].isoformat()}
                         for line in lines if Decimal(line["unpaid"]["amount"]) > 0],
        },
        idempotency_key=f"claims:subrogation:{claim.id}",
    )  # fmt: skip
    await ctx.session.flush()
    return await read_claim(ctx, claim)


async def deliver_for(
    session: AsyncSession, peers: Mapping[str, ServiceClient], aggregate_id: str
) -> None:
    """After a commit: send what the change put in the outbox (the background loop retries what
    does not go through now)."""
    for message in await deliver(session, outbox, peers, aggregate_id=aggregate_id):
        await record_delivery(session, message)
    await session.commit()


async def record_delivery(session: AsyncSession, message: dict[str, Any]) -> None:
    """What a delivered message tells the claim: the subrogation case's id."""
    if message["target"] != "collections":
        return
    body = message.get("response_body") or {}
    case_id = body.get("id") or body.get("case_id")
    claim = await repo.by_id(session, Claim, message["aggregate_id"])
    if claim is not None and case_id and claim.collection_case_id is None:
        claim.collection_case_id = case_id
        await session.flush()


async def document(ctx: Context, claim_id: str, document_id: str) -> ClaimDocument:
    claim = await _claim(ctx, claim_id)
    found = await repo.by_id(ctx.session, ClaimDocument, document_id)
    if found is None or found.claim_id != claim.id:
        raise not_found("document", document_id)
    return found


async def dispute(ctx: Context, claim_id: str, dispute_id: str) -> DisputeRead:
    claim = await _claim(ctx, claim_id)
    found = await repo.by_id(ctx.session, Dispute, dispute_id)
    if found is None or found.claim_id != claim.id:
        raise not_found("dispute", dispute_id)
    return _dispute_read(found, claim.status)


# ---------------------------------------------------------------- calendars


def _calendar_country(country: str) -> str:
    try:
        return country_code(country)
    except CountryError as exc:
        raise invalid(["path", "country"], str(exc)) from None


def _calendar_year(year: int, loc: list[str | int]) -> int:
    try:
        return check_year(year)
    except CalendarError as exc:
        raise invalid(loc, str(exc)) from None


def _staff_day(day: CalendarDay, name: str | None) -> CalendarDayRead:
    return CalendarDayRead(country=day.country, date=day.day, working=day.working, source="staff",
                           name=name, reason=day.reason, set_by=day.set_by,
                           set_at=day.set_at)  # fmt: skip


async def calendar_days(session: AsyncSession, country: str, year: int) -> CalendarDaysRead:
    """The holidays and weekend working days of a country's year in force: the `holidays`
    package's, with the days staff corrected in their place."""
    country = _calendar_country(country)
    year = _calendar_year(year, ["query", "year"])
    days = {d.day: CalendarDayRead(country=country, date=d.day, working=d.working,
                                   source="holidays", name=d.name)
            for d in package_days(country, year)}  # fmt: skip
    corrected = await repo.calendar_days_in(
        session, country, dt.date(year, 1, 1), dt.date(year, 12, 31)
    )
    for day in corrected:
        known = days.get(day.day)
        days[day.day] = _staff_day(day, known.name if known else None)
    return CalendarDaysRead(country=country, year=year, items=[days[d] for d in sorted(days)])


async def calendar_day(session: AsyncSession, country: str, day: dt.date) -> CalendarDayRead:
    """One day as the calendar has it in force."""
    country = _calendar_country(country)
    _calendar_year(day.year, ["path", "date"])
    for read in (await calendar_days(session, country, day.year)).items:
        if read.date == day:
            return read
    return CalendarDayRead(country=country, date=day, working=is_working_day(day, country),
                           source="holidays")  # fmt: skip


async def set_calendar_day(
    ctx: Context, country: str, day: dt.date, change: CalendarDayWrite
) -> tuple[CalendarDayRead, bool]:
    """Staff correct one day of a country's calendar (working or not, and why): the day as it now
    stands, and whether the correction is new (a second one for the day replaces the first)."""
    country = _calendar_country(country)
    _calendar_year(day.year, ["path", "date"])
    values = {"country": country, "day": day, "working": change.working, "reason": change.reason,
              "set_by": ctx.caller.subject, "set_at": utcnow()}  # fmt: skip
    created = await repo.add_calendar_day(ctx.session, values)
    if not created:
        await repo.change_calendar_day(ctx.session, values)
    names = {d.day: d.name for d in package_days(country, day.year)}
    return _staff_day(CalendarDay(**values), names.get(day)), created


async def remove_calendar_day(ctx: Context, country: str, day: dt.date) -> None:
    """Withdraw a correction: the `holidays` package's calendar holds for that day again."""
    country = _calendar_country(country)
    _calendar_year(day.year, ["path", "date"])
    if not await repo.remove_calendar_day(ctx.session, country, day):
        raise not_found("calendar correction", f"{country}/{day.isoformat()}")
