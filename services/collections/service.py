"""Collections use cases: cases on an escalation ladder, activities, payments credited oldest first
and shared between insurer and policyholder, and the daily escalation run."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.collections import repository as repo
from services.collections import rules
from services.collections.config import CollectionsSettings
from services.collections.models import Activity, Case, CaseInvoice, Payment, outbox
from services.collections.schemas import (
    ActivityCreate,
    ActivityRead,
    AllocationRead,
    CaseCreate,
    CaseInvoiceRead,
    CaseMove,
    CaseRead,
    CreditRead,
    EscalationResult,
    PaymentCreate,
    PaymentRead,
)
from shared.auth import Caller
from shared.contracts import MoneyModel
from shared.db import new_id, utcnow
from shared.http import ServiceClient
from shared.money import Money
from shared.outbox import enqueue
from shared.peers import fetch_buyer
from shared.problems import conflict, invalid, not_found, unprocessable

ZERO = Decimal(0)
# How many decimals a case shows of the insurer's share (a display: splits use the exact share).
SHARE_PCT_SHOWN_PLACES = 4


@dataclass
class Context:
    session: AsyncSession
    caller: Caller
    today: dt.date
    settings: CollectionsSettings
    peers: Mapping[str, ServiceClient] = field(default_factory=dict)


def _money(amount: Decimal, currency: str) -> MoneyModel:
    return MoneyModel.of(Money(amount, currency))


async def open_case(ctx: Context, opening: CaseCreate) -> CaseRead:
    """A mandate from a policyholder (as creditor) or, from the claims service, the recovery of a
    paid claim (one case per claim: a second is 409 `case-exists` naming the first)."""
    if ctx.caller.role == "policyholder" and opening.creditor_id != ctx.caller.party_id:
        raise invalid(["body", "creditor_id"], "a policyholder opens cases as its own creditor")
    if opening.claim_id is not None and ctx.caller.role == "policyholder":
        raise invalid(["body", "claim_id"], "a subrogation case is opened by the claims service")
    await fetch_buyer(ctx.peers, opening.buyer_id)  # a buyer the insurer knows, else 404
    currency = opening.invoices[0].amount.currency
    for index, invoice in enumerate(opening.invoices):
        if invoice.amount.currency != currency:
            raise unprocessable("currency-mismatch", "all invoices of a case share one currency",
                                loc=["body", "invoices", index, "amount"])  # fmt: skip
        if invoice.amount.amount <= 0:
            raise invalid(["body", "invoices", index, "amount"], "must be greater than zero")
    share = _share_given(opening, currency)  # given only with a claim (the schema checks)
    if opening.claim_id is not None:
        existing = await repo.case_of_claim(ctx.session, opening.claim_id)
        if existing is not None:
            raise conflict("case-exists", f"claim {opening.claim_id} already has case {existing}",
                           case_id=existing)  # fmt: skip
        mandate = await _mandate_for(ctx, opening)
        if mandate is not None:
            return await _take_over(ctx, mandate, opening, share)
    ladder = rules.LADDERS[opening.ladder]
    oldest = min(i.due_date for i in opening.invoices)
    case = Case(
        id=new_id("case"), created_at=utcnow(), creditor_id=opening.creditor_id,
        buyer_id=opening.buyer_id, debtor_country=opening.debtor_country, currency=currency,
        ladder=opening.ladder, stage=rules.stage_on(ladder, rules.days_past_due(oldest, ctx.today)),
        status="open", claim_id=opening.claim_id,
        insurer_share_numerator=None if share is None else str(share.paid),
        insurer_share_denominator=None if share is None else str(share.of),
        fee_pct=ctx.settings.fee_pct, opened_on=ctx.today, closed_on=None,
        created_by=ctx.caller.subject,
    )  # fmt: skip
    ctx.session.add(case)
    await ctx.session.flush()
    for invoice in opening.invoices:
        ctx.session.add(CaseInvoice(id=new_id("cinv"), case_id=case.id, number=invoice.number,
                                    amount=invoice.amount.amount, due_date=invoice.due_date,
                                    paid=ZERO))  # fmt: skip
    try:
        await ctx.session.flush()
    except IntegrityError:  # a concurrent twin opened the claim's case first
        raise conflict("case-exists", f"claim {opening.claim_id} already has a case") from None
    if opening.claim_id is None:
        # A debt handed over for collection is a payment delay: underwriting grades it (a paid
        # claim's case needs no signal: the claim itself sent one).
        await enqueue(
            ctx.session, outbox, aggregate_id=case.id, target="underwriting",
            path=f"/v1/buyers/{case.buyer_id}/signals",
            body={"kind": "payment_delay", "observed_on": ctx.today.isoformat(),
                  "details": f"collection case {case.id} opened for {case.creditor_id}"},
            idempotency_key=f"collections:mandate:{case.id}",
        )  # fmt: skip
    return await read_case(ctx, case)


def _share_given(opening: CaseCreate, currency: str) -> rules.InsurerShare | None:
    """The insurer's share a paid claim hands over, exactly: the indemnity paid over the total of
    the claim's unpaid invoices, or the percentage given (none given: no share)."""
    if opening.insurer_share_pct is not None:
        return rules.InsurerShare.from_pct(opening.insurer_share_pct)
    if opening.indemnity_paid is None:
        return None
    paid = opening.indemnity_paid
    if paid.currency != currency:
        raise unprocessable("currency-mismatch", f"the invoices are in {currency}",
                            loc=["body", "indemnity_paid"])  # fmt: skip
    total = sum((i.amount.amount for i in opening.invoices), ZERO)
    if not ZERO <= paid.amount <= total:
        raise invalid(["body", "indemnity_paid", "amount"],
                      f"must be between 0 and the invoices' total of {total}")  # fmt: skip
    return rules.InsurerShare(paid.amount, total)


def _share_of(case: Case) -> rules.InsurerShare | None:
    if case.insurer_share_numerator is None or case.insurer_share_denominator is None:
        return None
    return rules.InsurerShare(
        Decimal(case.insurer_share_numerator), Decimal(case.insurer_share_denominator)
    )


async def _mandate_for(ctx: Context, opening: CaseCreate) -> Case | None:
    """The open mandate collecting the same debt (same creditor and buyer, an invoice in common)
    that a paid claim's recovery takes over, if any."""
    numbers = [i.number for i in opening.invoices]
    return await repo.open_mandate(ctx.session, opening.creditor_id, opening.buyer_id, numbers)


async def _take_over(
    ctx: Context, case: Case, opening: CaseCreate, share: rules.InsurerShare | None
) -> CaseRead:
    """The claim is paid: the mandate becomes the subrogation case, and what it recovers from now
    on is shared with the insurer. Invoices of the claim it did not have are added."""
    currency = opening.invoices[0].amount.currency
    if currency != case.currency:
        raise unprocessable("currency-mismatch", f"the mandate {case.id} is in {case.currency}")
    case.claim_id = opening.claim_id
    case.insurer_share_numerator = None if share is None else str(share.paid)
    case.insurer_share_denominator = None if share is None else str(share.of)
    shown = ZERO if share is None else share.pct(SHARE_PCT_SHOWN_PLACES)
    have = {i.number for i in await _invoices(ctx, case.id)}
    for invoice in opening.invoices:
        if invoice.number not in have:
            ctx.session.add(CaseInvoice(id=new_id("cinv"), case_id=case.id,
                                        number=invoice.number, amount=invoice.amount.amount,
                                        due_date=invoice.due_date, paid=ZERO))  # fmt: skip
    ctx.session.add(Activity(
        id=new_id("act"), created_at=utcnow(), case_id=case.id, kind="subrogation",
        occurred_on=ctx.today, note=f"claim {opening.claim_id} paid: recoveries from now on are "
        f"shared, {shown}% to the insurer", promised_amount=None,
        promised_on=None, details={"claim_id": opening.claim_id},
        recorded_by=ctx.caller.subject))  # fmt: skip
    try:
        await ctx.session.flush()
    except IntegrityError:
        raise conflict("case-exists", f"claim {opening.claim_id} already has a case") from None
    return await read_case(ctx, case)


async def case_of(ctx: Context, case_id: str, *, lock: bool = False) -> Case:
    case = await repo.case(ctx.session, case_id, lock=lock)
    if case is None or (ctx.caller.role == "policyholder"
                        and case.creditor_id != ctx.caller.party_id):  # fmt: skip
        raise not_found("case", case_id)
    return case


async def _invoices(ctx: Context, case_id: str) -> list[CaseInvoice]:
    return (await repo.invoices_of(ctx.session, [case_id])).get(case_id, [])


async def read_case(ctx: Context, case: Case) -> CaseRead:
    return (await read_cases(ctx, [case]))[0]


async def read_cases(ctx: Context, cases: Sequence[Case]) -> list[CaseRead]:
    """Cases as the API shows them, their invoices, activities and payments read in three
    queries for the whole page."""
    ids = [case.id for case in cases]
    invoices = await repo.invoices_of(ctx.session, ids)
    activities = await repo.activities_of(ctx.session, ids)
    payments = await repo.payments_of(ctx.session, ids)
    return [_case_read(ctx, case, invoices.get(case.id, []), activities.get(case.id, []),
                       payments.get(case.id, [])) for case in cases]  # fmt: skip


def _case_read(
    ctx: Context, case: Case, invoices: Sequence[CaseInvoice], activities: Sequence[Activity],
    payments: Sequence[Payment],
) -> CaseRead:  # fmt: skip
    c = case.currency
    share = _share_of(case)
    outstanding = sum((i.amount - i.paid for i in invoices), ZERO)
    unpaid_dues = [i.due_date for i in invoices if i.amount > i.paid]
    return CaseRead(
        id=case.id, created_at=case.created_at, creditor_id=case.creditor_id,
        buyer_id=case.buyer_id, debtor_country=case.debtor_country, currency=c,
        ladder=case.ladder, stage=case.stage, status=case.status, claim_id=case.claim_id,
        insurer_share_pct=None if share is None else share.pct(SHARE_PCT_SHOWN_PLACES),
        fee_pct=case.fee_pct,
        opened_on=case.opened_on, closed_on=case.closed_on,
        days_past_due=rules.days_past_due(min(unpaid_dues, default=None), ctx.today),
        outstanding=_money(outstanding, c),
        recovered=_money(sum((p.amount for p in payments), ZERO), c),
        invoices=[CaseInvoiceRead(number=i.number, amount=_money(i.amount, c),
                                  due_date=i.due_date, paid=_money(i.paid, c),
                                  outstanding=_money(i.amount - i.paid, c)) for i in invoices],
        activities=[_activity_read(a, case) for a in activities],
        payments=[_payment_read(p, case, None) for p in payments],
    )  # fmt: skip


def _activity_read(a: Activity, case: Case) -> ActivityRead:
    return ActivityRead(
        id=a.id, created_at=a.created_at, case_id=a.case_id, kind=a.kind,
        occurred_on=a.occurred_on, note=a.note,
        promised_amount=None if a.promised_amount is None else _money(a.promised_amount,
                                                                      case.currency),
        promised_on=a.promised_on, recorded_by=a.recorded_by, case_status=case.status,
    )  # fmt: skip


def _payment_read(p: Payment, case: Case, outstanding_after: Decimal | None) -> PaymentRead:
    c = case.currency
    return PaymentRead(
        id=p.id, created_at=p.created_at, case_id=p.case_id, amount=_money(p.amount, c),
        received_on=p.received_on,
        allocation=AllocationRead(fee=_money(p.fee, c), insurer=_money(p.insurer, c),
                                  policyholder=_money(p.policyholder, c)),
        credited=[CreditRead(invoice_number=x["invoice_number"],
                             amount=_money(Decimal(x["amount"]), c)) for x in p.credited],
        outstanding_after=_money(outstanding_after if outstanding_after is not None
                                 else Decimal(p.credited[-1]["outstanding_after"])
                                 if p.credited else ZERO, c),
        case_status=case.status,
    )  # fmt: skip


async def add_activity(ctx: Context, case_id: str, done: ActivityCreate) -> ActivityRead:
    """Log what was done; a dispute holds the case (it climbs no further) until it is resolved."""
    case = await case_of(ctx, case_id, lock=True)
    if case.status == "closed":
        raise conflict("case-closed", f"case {case.id} was closed on {case.closed_on}")
    if done.occurred_on > ctx.today:
        raise invalid(["body", "occurred_on"], "what was done did not happen after today")
    if done.promised_on is not None and done.promised_on < done.occurred_on:
        raise invalid(["body", "promised_on"], "a payment is promised for a date after the promise")
    promised = None
    if done.promised_amount is not None:
        if done.promised_amount.currency != case.currency:
            raise unprocessable("currency-mismatch", f"the case is in {case.currency}",
                                loc=["body", "promised_amount"])  # fmt: skip
        promised = done.promised_amount.amount
        if promised <= 0:
            raise invalid(["body", "promised_amount", "amount"], "must be greater than zero")
    if done.kind == "dispute":
        case.status = "on_hold"
    elif done.kind == "dispute_resolved":
        if case.status != "on_hold":
            raise unprocessable("no-open-dispute", "the case is not on hold")
        case.status = "open"
    activity = Activity(
        id=new_id("act"), created_at=utcnow(), case_id=case.id, kind=done.kind,
        occurred_on=done.occurred_on, note=done.note, promised_amount=promised,
        promised_on=done.promised_on, details=None, recorded_by=ctx.caller.subject,
    )  # fmt: skip
    ctx.session.add(activity)
    await ctx.session.flush()
    return _activity_read(activity, case)


async def record_payment(ctx: Context, case_id: str, received: PaymentCreate) -> PaymentRead:
    """Credit the oldest unpaid invoice first; the fee, then the insurer's and the policyholder's
    shares; more than is outstanding is 422 `overpayment`. Paid in full closes the case."""
    case = await case_of(ctx, case_id, lock=True)
    if case.status == "closed":
        raise conflict("case-closed", f"case {case.id} was closed on {case.closed_on}")
    if received.amount.currency != case.currency:
        raise unprocessable("currency-mismatch", f"the case is in {case.currency}",
                            loc=["body", "amount"])  # fmt: skip
    amount = received.amount.amount
    if amount <= 0:
        raise invalid(["body", "amount", "amount"], "must be greater than zero")
    if received.received_on > ctx.today:
        raise invalid(["body", "received_on"], "a payment is recorded once received, not ahead")
    invoices = await _invoices(ctx, case.id)
    outstanding = sum((i.amount - i.paid for i in invoices), ZERO)
    if amount > outstanding:
        raise unprocessable(
            "overpayment", f"{amount} exceeds the outstanding {outstanding} {case.currency}",
            outstanding=_money(outstanding, case.currency).model_dump(mode="json"))  # fmt: skip
    credits = rules.credit_oldest_first(
        [rules.OpenInvoice(i.number, i.due_date, i.amount - i.paid) for i in invoices], amount
    )
    by_number = {i.number: i for i in invoices}
    left = outstanding
    credited = []
    for number, part in credits:
        by_number[number].paid += part
        left -= part
        credited.append({"invoice_number": number, "amount": str(part),
                         "outstanding_after": str(left)})  # fmt: skip
    share = rules.share_recovery(Money(amount, case.currency), fee_pct=case.fee_pct,
                                 share=_share_of(case))  # fmt: skip
    payment = Payment(
        id=new_id("pay"), created_at=utcnow(), case_id=case.id, amount=amount,
        received_on=received.received_on, fee=share.fee.amount, insurer=share.insurer.amount,
        policyholder=share.policyholder.amount, credited=credited, recorded_by=ctx.caller.subject,
    )  # fmt: skip
    ctx.session.add(payment)
    if left == 0:
        case.status, case.closed_on = "closed", received.received_on
    await ctx.session.flush()
    return _payment_read(payment, case, left)


async def run_escalations(ctx: Context, as_of: dt.date) -> EscalationResult:
    """Move every open case up to the highest rung its days past due reach on `as_of` (never
    down; a case on hold stays where it is); each move is logged on the case. Set-based: one read
    of every open case with its oldest unpaid due date, one update and one insert of the moves."""
    rows = await repo.open_cases_with_oldest_due(ctx.session)
    moved: list[CaseMove] = []
    for case_id, ladder_name, stage, oldest in rows:
        ladder = rules.LADDERS[ladder_name]
        days = rules.days_past_due(oldest, as_of)
        target = rules.stage_on(ladder, days)
        if rules.rung_index(ladder, target) > rules.rung_index(ladder, stage):
            moved.append(CaseMove.model_construct(case_id=case_id, from_stage=stage,
                                                  to_stage=target, days_past_due=days))  # fmt: skip
    if moved:
        now = utcnow()
        await repo.move_stages(ctx.session, [(m.case_id, m.to_stage) for m in moved], [
            {"id": new_id("act"), "created_at": now, "case_id": m.case_id, "kind": "escalation",
             "occurred_on": as_of, "recorded_by": ctx.caller.subject,
             "note": f"{m.from_stage} → {m.to_stage} at {m.days_past_due} days past due",
             "details": {"from": m.from_stage, "to": m.to_stage,
                         "days_past_due": m.days_past_due}}
            for m in moved])  # fmt: skip
    return EscalationResult(as_of=as_of, moved=moved)


async def activity(ctx: Context, case_id: str, activity_id: str) -> ActivityRead:
    case = await case_of(ctx, case_id)
    found = await repo.by_id(ctx.session, Activity, activity_id)
    if found is None or found.case_id != case.id:
        raise not_found("activity", activity_id)
    return _activity_read(found, case)


async def payment(ctx: Context, case_id: str, payment_id: str) -> PaymentRead:
    case = await case_of(ctx, case_id)
    found = await repo.by_id(ctx.session, Payment, payment_id)
    if found is None or found.case_id != case.id:
        raise not_found("payment", payment_id)
    return _payment_read(found, case, None)
