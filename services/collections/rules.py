"""Collection rules: the escalation ladders as data, the rung a case stands on, payments credited
oldest first, and recoveries shared exactly between fee, insurer and policyholder."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import NamedTuple

from shared.money import Money, minor_units

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


@dataclass(frozen=True)
class InsurerShare:
    """The proportion of the loss the insurer bore, kept as an exact fraction: `paid` / `of`
    (the indemnity paid over the whole unpaid debt, or a percentage over 100), never rounded."""

    paid: Decimal
    of: Decimal

    @classmethod
    def from_pct(cls, pct: Decimal) -> InsurerShare:
        return cls(pct, Decimal(100))

    def pct(self, places: int) -> Decimal:
        """The share as a percentage rounded half-up to `places` decimals: for display only,
        a split never uses it."""
        exact = Fraction(self.paid) * 100 / Fraction(self.of)
        return _round_half_up(exact, Decimal(1).scaleb(-places))


def _round_half_up(value: Fraction, quantum: Decimal) -> Decimal:
    """An exact value rounded once, half away from zero, to a multiple of `quantum`."""
    steps = abs(value) / Fraction(quantum)
    whole = math.floor(steps + Fraction(1, 2))
    return (Decimal(whole) * quantum * (1 if value >= 0 else -1)).quantize(quantum)


def share_recovery(payment: Money, *, fee_pct: Decimal, share: InsurerShare | None) -> Allocation:
    """What is recovered is shared: the collection fee first, payment × fee percentage rounded
    half-up once; then, after a paid claim, the insurer's part, (payment − fee) × the exact
    proportion it bore the loss (indemnity paid / unpaid debt), rounded half-up once; the
    policyholder's part is the rest, so the three always add up to the payment. Before a claim
    (no share) everything after the fee is the policyholder's."""
    quantum = Decimal(1).scaleb(-minor_units(payment.currency))
    fee = _round_half_up(Fraction(payment.amount) * Fraction(fee_pct) / 100, quantum)
    rest = payment.amount - fee
    insurer = Decimal(0).quantize(quantum)
    if share is not None and share.paid > 0 and share.of > 0:
        proportion = min(Fraction(1), Fraction(share.paid) / Fraction(share.of))
        insurer = _round_half_up(Fraction(rest) * proportion, quantum)
    c = payment.currency
    return Allocation(fee=Money(fee, c), insurer=Money(insurer, c),
                      policyholder=Money(rest - insurer, c))  # fmt: skip


def allocate(payment: Money, *, fee_pct: Decimal, insurer_share_pct: Decimal | None) -> Allocation:
    """`share_recovery` with the insurer's share given as a percentage (any number of
    decimals, taken exactly)."""
    share = None if insurer_share_pct is None else InsurerShare.from_pct(insurer_share_pct)
    return share_recovery(payment, fee_pct=fee_pct, share=share)
