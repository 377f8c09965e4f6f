"""Overdue notifications: each invoice in time or late, extension requests and repayment plans; an
overdue stops shipments in underwriting (told through the outbox), paid arrears end the stop."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping

from services.claims import messages, rules, views
from services.claims import repository as repo
from services.claims.models import NotifiedInvoice, OverdueNotification
from services.claims.schemas import NotificationCreate, NotificationRead
from services.claims.service import (
    ZERO,
    Context,
    invoice_amounts,
    own_policy_and_buyer,
    signal_underwriting,
)
from shared.contracts import PolicyTerms
from shared.db import new_id, utcnow
from shared.problems import (
    EXTENSION_TOO_LONG,
    NOT_OVERDUE,
    PLAN_EXCEEDS_DEBT,
    invalid,
    not_found,
    unprocessable,
)
from shared.usecase import positive_amount_in


def _check_notification(
    ctx: Context, report: NotificationCreate, policy: PolicyTerms, original: Mapping[str, dt.date],
    notified_before: Collection[str], on_record: Mapping[str, dt.date],
) -> None:  # fmt: skip
    """A notified invoice was shipped (not after today, as a claimed one) while the policy was
    active (`rules.insured_by_policy`; arrears cleared on an invoice notified before are taken
    whenever it was shipped, so that a stop it started still ends); a plan is in the policy's
    currency, agreed from today on, and no more than the debt; an overdue is past due; an
    extension moves the due date later than the one on record (`on_record`: as notified or
    extended before) and within what the policyholder may grant alone, from the invoice's
    original due date (`original`, by number)."""
    for index, invoice in enumerate(report.invoices):
        where: list[str | int] = ["body", "invoices", index, "shipment_date"]
        shipped = invoice.shipment_date
        if shipped > ctx.today:
            raise invalid(where,
                          f"a notified invoice was shipped, so not after today ({ctx.today})")  # fmt: skip
        clearing = report.kind == "arrears_cleared" and invoice.number in notified_before
        if not clearing and not rules.insured_by_policy(shipped, policy.start_date,
                                                        policy.end_date):  # fmt: skip
            when = (f"before the policy began ({policy.start_date})"
                    if shipped < policy.start_date
                    else f"after the policy ended ({policy.end_date})")  # fmt: skip
            raise invalid(where, f"invoice {invoice.number} was shipped on {shipped}, {when}: it "
                          "is not a receivable this policy insures")  # fmt: skip
    owed = invoice_amounts(report.invoices, policy.currency)
    planned = ZERO
    for index, step in enumerate(report.instalments or []):
        loc: list[str | int] = ["body", "instalments", index]
        planned += positive_amount_in(step.amount, policy.currency, [*loc, "amount"])
        if step.due_date < ctx.today:
            raise invalid(
                [*loc, "due_date"], "an instalment of a plan agreed now is not in the past"
            )
    if planned > owed:
        raise unprocessable(PLAN_EXCEEDS_DEBT,
                            f"the instalments add up to {planned}, more than the {owed} owed",
                            loc=["body", "instalments"])  # fmt: skip
    if report.kind == "overdue":
        for index, invoice in enumerate(report.invoices):
            if invoice.due_date >= ctx.today:
                raise unprocessable(NOT_OVERDUE, f"invoice {invoice.number} is not past due "
                                    f"(due {invoice.due_date})",
                                    loc=["body", "invoices", index, "due_date"])  # fmt: skip
    if report.kind == "extension_request":
        assert report.new_due_date is not None
        invoice, days = report.invoices[0], policy.max_extension_days
        first_due = original[invoice.number]
        current = max(invoice.due_date, on_record.get(invoice.number, invoice.due_date))
        if report.new_due_date <= current:
            raise invalid(["body", "new_due_date"], "an extension moves the due date later: "
                          f"after {current}, the due date on record")  # fmt: skip
        if not rules.extension_allowed(invoice.due_date, report.new_due_date, days, first_due):
            latest = rules.latest_extension(first_due, days)
            raise unprocessable(
                EXTENSION_TOO_LONG,
                f"the policyholder may move a due date by at most {days} days on its own "
                f"(to {latest})",
                max_new_due_date=latest.isoformat(),
            )


async def notify_overdue(ctx: Context, report: NotificationCreate) -> NotificationRead:
    """Record the notification; each invoice is in time or late; an overdue stops shipments on
    that policy (underwriting hears of it through the outbox)."""
    policy, _ = await own_policy_and_buyer(ctx, report.policy_id, report.buyer_id)
    # The clocks run from each invoice's original due date (one notified before an extension).
    # An invoice notified overdue before keeps the standing of that first notification (both
    # read at once).
    notices = await repo.invoice_notices(
        ctx.session, policy.id, report.buyer_id, [i.number for i in report.invoices]
    )
    due = {i.number: rules.original_due_date(i.due_date, notices.original_due_dates.get(i.number))
           for i in report.invoices}  # fmt: skip
    on_record = {} if report.kind != "extension_request" else await repo.due_dates_on_record(
        ctx.session, policy.id, report.buyer_id, [i.number for i in report.invoices])  # fmt: skip
    _check_notification(ctx, report, policy, due, notices.original_due_dates.keys(), on_record)
    notification = OverdueNotification(
        id=new_id("ovn"), created_at=utcnow(), policy_id=policy.id, buyer_id=report.buyer_id,
        policyholder_id=policy.policyholder_id, currency=policy.currency, kind=report.kind,
        notified_on=ctx.today, new_due_date=report.new_due_date,
        instalments=[i.model_dump(mode="json") for i in report.instalments or []] or None,
        note=report.note, created_by=ctx.caller.subject,
    )  # fmt: skip
    ctx.session.add(notification)
    await ctx.session.flush()  # before its invoices, which refer to it
    days = policy.overdue_notification_days
    first = notices.first_late
    rows = [NotifiedInvoice(
        id=new_id("nin"), notification_id=notification.id, policy_id=policy.id,
        buyer_id=report.buyer_id, number=invoice.number, amount=invoice.amount.amount,
        shipment_date=invoice.shipment_date, due_date=invoice.due_date,
        notification_deadline=rules.notification_deadline(due[invoice.number], days),
        late=report.kind != "arrears_cleared" and (
            first[invoice.number] if invoice.number in first
            else rules.notified_late(due[invoice.number], ctx.today, days)),
    ) for invoice in report.invoices]  # fmt: skip
    ctx.session.add_all(rows)
    await ctx.session.flush()
    arrears_left = await _arrears_left(ctx, notification)
    kind = rules.notification_signal(report.kind, [i.due_date for i in report.invoices],
                                     ctx.today, arrears_left=arrears_left)  # fmt: skip
    if kind is not None:
        details = f"overdue notification {notification.id} ({report.kind})"
        await signal_underwriting(ctx, notification.id, report.buyer_id,
                      messages.signal(kind, ctx.today, details, policy.id),
                      f"claims:overdue:{notification.id}")  # fmt: skip
    await ctx.session.flush()
    return views.notification_read(notification, rows, arrears_left=arrears_left)


async def _arrears_left(ctx: Context, notification: OverdueNotification) -> bool:
    """Whether arrears cleared left other notified invoices of the (policy, buyer) in arrears,
    once the notification was made (the stop-shipment then stays)."""
    if notification.kind != "arrears_cleared":
        return False
    return bool(rules.arrears_outstanding(await repo.notified_up_to(ctx.session, notification)))


async def get_notification(ctx: Context, notification_id: str) -> NotificationRead:
    notification = await repo.by_id(ctx.session, OverdueNotification, notification_id)
    if notification is None or (
        ctx.caller.role == "policyholder" and notification.policyholder_id != ctx.caller.party_id
    ):
        raise not_found("overdue notification", notification_id)
    rows = await repo.notified_invoices(ctx.session, notification.id)
    arrears_left = await _arrears_left(ctx, notification)
    return views.notification_read(notification, rows, arrears_left=arrears_left)
