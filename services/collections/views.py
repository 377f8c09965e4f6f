"""Collections read models: cases, activities, payments and ladders as the API shows them (pure:
rows in, `*Read` models out, or, for the reads, the same answers as plain JSON data)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from services.collections import rules
from services.collections.models import (
    Activity,
    ActivityRow,
    Case,
    CaseInvoice,
    CaseInvoiceRow,
    CaseRow,
    Payment,
    PaymentRow,
)
from services.collections.schemas import (
    ActivityRead,
    CaseRead,
    Ladder,
    LadderList,
    PaymentRead,
    Rung,
)
from shared.contracts import RecoveredInvoice, Recoveries, plain_decimal
from shared.money import rounded_text
from shared.usecase import money_read

ZERO = Decimal(0)
# How many decimals a case shows of the insurer's share (a display: splits use the exact share).
SHARE_PCT_SHOWN_PLACES = 4
# A case and its lines as the session holds them (a change's answer) or as a read gives them.
ACase = Case | CaseRow
AnInvoice = CaseInvoice | CaseInvoiceRow
AnActivity = Activity | ActivityRow
APayment = Payment | PaymentRow


def share_of(case: ACase) -> rules.InsurerShare | None:
    """The insurer's share a case keeps (none before a claim)."""
    return rules.InsurerShare.stored(case.insurer_share_numerator, case.insurer_share_denominator)


def open_invoices(invoices: Sequence[AnInvoice]) -> list[rules.OpenInvoice]:
    return [rules.OpenInvoice(i.number, i.due_date, i.amount - i.paid) for i in invoices]


def resolves(a: AnActivity) -> str | None:
    """The dispute a resolution names (None: not one, or recorded before resolutions named it)."""
    named = (a.details or {}).get("dispute_id") if a.kind == rules.DISPUTE_RESOLVED else None
    return named if isinstance(named, str) else None


def logged(activities: Sequence[AnActivity]) -> list[rules.LoggedActivity]:
    """A case's activities for its disputes, in the order they were recorded."""
    return [rules.LoggedActivity(a.id, a.kind, a.occurred_on, resolves(a))
            for a in sorted(activities, key=lambda a: (a.created_at, a.id))]  # fmt: skip


def promise_book(
    activities: Sequence[Activity], payments: Sequence[Payment]
) -> list[rules.PromiseMade | rules.PaymentReceived]:
    """A case's promises to pay and payments in the order they were recorded (for
    `rules.open_promises`)."""
    book: list[tuple[dt.datetime, str, rules.PromiseMade | rules.PaymentReceived]] = [
        (a.created_at, a.id, rules.PromiseMade(a.id, a.occurred_on, a.promised_on,
                                               a.promised_amount))
        for a in activities
        if a.kind == "promise_to_pay" and a.promised_amount is not None
        and a.promised_on is not None
    ]  # fmt: skip
    book += [(p.created_at, p.id, rules.PaymentReceived(p.received_on, p.amount))
             for p in payments]  # fmt: skip
    return [entry for _, _, entry in sorted(book, key=lambda e: (e[0], e[1]))]


def _money(amount: Decimal, currency: str) -> dict[str, str]:
    """An amount of the books as the wire carries it (`money_json`), without building a Money:
    a page of cases writes dozens."""
    return {"amount": rounded_text(amount, currency), "currency": currency}


def case_answer(
    case: ACase, invoices: Sequence[AnInvoice], activities: Sequence[AnActivity],
    payments: Sequence[APayment], ladder: rules.Rungs, today: dt.date,
) -> dict[str, Any]:  # fmt: skip
    """A case as `CaseRead` shows it, as plain JSON data (its dates and moments as such, written
    by pydantic as the model writes them): its stage the one its days past due reach today on
    `ladder` (`rules.stage_standing`), as they are shown beside it."""
    c = case.currency
    share = share_of(case)
    unpaid = open_invoices(invoices)
    days = rules.days_past_due(rules.oldest_unpaid_due(unpaid), today)
    return {
        "id": case.id, "created_at": case.created_at, "creditor_id": case.creditor_id,
        "buyer_id": case.buyer_id, "debtor_country": case.debtor_country, "currency": c,
        "ladder": case.ladder, "stage": rules.stage_standing(ladder, case.stage, case.status, days), "status": case.status,
        "claim_id": case.claim_id,
        "insurer_share_pct": None if share is None
        else plain_decimal(share.pct(SHARE_PCT_SHOWN_PLACES)),
        "insurer_share": None if share is None
        else {"numerator": plain_decimal(share.paid), "denominator": plain_decimal(share.of)},
        "fee_pct": plain_decimal(case.fee_pct),
        "opened_on": case.opened_on, "closed_on": case.closed_on,
        "days_past_due": days,
        "outstanding": _money(rules.outstanding(unpaid), c),
        "recovered": _money(sum((p.amount for p in payments), ZERO), c),
        "invoices": [{"number": i.number, "amount": _money(i.amount, c), "due_date": i.due_date,
                      "paid": _money(i.paid, c), "outstanding": _money(i.amount - i.paid, c)}
                     for i in invoices],
        "open_disputes": [d.activity_id for d in rules.open_disputes(logged(activities))],
        "activities": [activity_answer(a, case) for a in activities],
        "payments": [payment_answer(p, case) for p in payments],
    }  # fmt: skip


def case_read(
    case: ACase, invoices: Sequence[AnInvoice], activities: Sequence[AnActivity],
    payments: Sequence[APayment], ladder: rules.Rungs, today: dt.date,
) -> CaseRead:  # fmt: skip
    return CaseRead.model_validate(case_answer(case, invoices, activities, payments, ladder, today))


def activity_answer(a: AnActivity, case: ACase) -> dict[str, Any]:
    """An activity as `ActivityRead` shows it, as plain JSON data."""
    return {
        "id": a.id, "created_at": a.created_at, "case_id": a.case_id, "kind": a.kind,
        "occurred_on": a.occurred_on, "note": a.note,
        "promised_amount": None if a.promised_amount is None
        else _money(a.promised_amount, case.currency),
        "promised_on": a.promised_on, "dispute_id": resolves(a), "recorded_by": a.recorded_by,
        "case_status": case.status,
    }  # fmt: skip


def activity_read(a: AnActivity, case: ACase) -> ActivityRead:
    return ActivityRead.model_validate(activity_answer(a, case))


def payment_answer(
    p: APayment, case: ACase, outstanding_after: Decimal | None = None
) -> dict[str, Any]:
    """A payment as `PaymentRead` shows it, as plain JSON data: what the case still owes after
    it is the last credit's (or, just recorded, the amount given)."""
    c = case.currency
    if outstanding_after is None:
        outstanding_after = Decimal(p.credited[-1]["outstanding_after"]) if p.credited else ZERO
    return {
        "id": p.id, "created_at": p.created_at, "case_id": p.case_id,
        "amount": _money(p.amount, c), "received_on": p.received_on,
        "allocation": {"fee": _money(p.fee, c), "insurer": _money(p.insurer, c),
                       "policyholder": _money(p.policyholder, c)},
        "credited": [{"invoice_number": x["invoice_number"],
                      "amount": _money(Decimal(x["amount"]), c)} for x in p.credited],
        "outstanding_after": _money(outstanding_after, c),
        "case_status": case.status,
    }  # fmt: skip


def payment_read(p: APayment, case: ACase, outstanding_after: Decimal | None = None) -> PaymentRead:
    return PaymentRead.model_validate(payment_answer(p, case, outstanding_after))


def ladder_list(ladders: Mapping[str, Sequence[rules.Rung]]) -> LadderList:
    """The ladders, quickest to escalate first (by their first rung's day, then name)."""
    ordered = sorted(ladders.items(), key=lambda item: (item[1][0].days_past_due, item[0]))
    return LadderList(items=[
        Ladder(name=name, rungs=[Rung(days_past_due=r.days_past_due, stage=r.stage) for r in rungs])
        for name, rungs in ordered
    ])  # fmt: skip


def recoveries(
    creditor_id: str, buyer_id: str, currency: str, rows: Sequence[tuple[str, Decimal, str]]
) -> Recoveries:
    """Rows of `repo.mandate_recoveries` as one answer: per invoice number, what every mandate
    credited to it (an invoice on two mandates adds up), and the total."""
    by_number: dict[str, tuple[Decimal, list[str]]] = {}
    for number, paid, case_id in rows:
        amount, cases = by_number.get(number, (ZERO, []))
        by_number[number] = (amount + paid, [*cases, case_id])
    total = sum((amount for amount, _ in by_number.values()), ZERO)
    return Recoveries(
        creditor_id=creditor_id, buyer_id=buyer_id, currency=currency,
        invoices=[RecoveredInvoice(number=number, recovered=money_read(amount, currency),
                                   case_ids=cases)
                  for number, (amount, cases) in by_number.items()],
        total=money_read(total, currency),
    )  # fmt: skip
