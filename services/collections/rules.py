"""Collection rules: the escalation ladders as data, and the rung a case stands on."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import NamedTuple

from shared.money import Money

# A ladder is a list of (days past the oldest due date, stage), lowest first.
LADDERS: Mapping[str, tuple[tuple[int, str], ...]] = {
    "reminder_15_30_45": ((15, "reminder_letter"), (30, "phone_collection"), (45, "legal")),
    "legal_30_60_90": ((30, "amicable"), (60, "lawyer_letter"), (90, "lawsuit")),
}
FIRST_STAGE = "new"


def stage_on(ladder: tuple[tuple[int, str], ...], days_past_due: int) -> str:
    """The highest rung the days past due reach (on the rung's day the case is on it)."""
    stage = FIRST_STAGE
    for day, name in ladder:
        if days_past_due >= day:
            stage = name
    return stage


def days_past_due(oldest_due: dt.date | None, as_of: dt.date) -> int:
    """Days since the oldest unpaid due date (0 before it, or with nothing unpaid)."""
    if oldest_due is None:
        return 0
    return max(0, (as_of - oldest_due).days)


def rung_index(ladder: tuple[tuple[int, str], ...], stage: str) -> int:
    """The position of a stage on its ladder (0 for `new`)."""
    names = [FIRST_STAGE] + [name for _, name in ladder]
    return names.index(stage)


class OpenInvoice(NamedTuple):
    number: str
    due_date: dt.date
    outstanding: Decimal


def credit_oldest_first(
    invoices: Sequence[OpenInvoice], amount: Decimal
) -> list[tuple[str, Decimal]]:
    """A payment is credited to the oldest unpaid invoice first (due date, then number)."""
    credits: list[tuple[str, Decimal]] = []
    left = amount
    for invoice in sorted(invoices, key=lambda i: (i.due_date, i.number)):
        if left <= 0:
            break
        taken = min(left, invoice.outstanding)
        if taken > 0:
            credits.append((invoice.number, taken))
            left -= taken
    return credits


class Allocation(NamedTuple):
    fee: Money
    insurer: Money
    policyholder: Money


def allocate(payment: Money, *, fee_pct: Decimal, insurer_share_pct: Decimal | None) -> Allocation:
    """What is recovered: the collection fee first, then, after a paid claim, shared between
    insurer and policyholder in the proportion they bore the loss; before a claim the rest is the
    policyholder's. Each part is rounded once; the policyholder's part takes the remainder, so the
    three always add up to the payment."""
    fee = payment.percent(fee_pct).rounded()
    rest = payment - fee
    insurer = (
        rest.percent(insurer_share_pct).rounded()
        if insurer_share_pct
        else Money.zero(payment.currency)
    )
    return Allocation(fee=fee, insurer=insurer, policyholder=rest - insurer)
