"""Collection rules: a case's status and its acts, the rung a case stands on and climbs to (never
down), payments credited oldest first, and recoveries shared exactly between fee, insurer and
policyholder. The ladders themselves are data (the table `collections.ladders`)."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction
from typing import Final, Literal, NamedTuple

from shared.money import Money, minor_units

ZERO = Decimal(0)


# ---------------------------------------------------------------- the case's status


class CaseStatus(StrEnum):
    OPEN = "open"  # climbing its ladder
    ON_HOLD = "on_hold"  # a dispute was raised: it climbs no further until it is resolved
    CLOSED = "closed"  # nothing is outstanding


# The cases still collecting (a paid claim takes over such a mandate) and the ones the daily run
# moves up their ladders.
LIVE = frozenset({CaseStatus.OPEN, CaseStatus.ON_HOLD})
CLIMBING = frozenset({CaseStatus.OPEN})


class CaseAct(StrEnum):
    LOG = "log"  # a letter, a call, a promise, a legal step, a note
    RAISE_DISPUTE = "raise_dispute"
    RESOLVE_DISPUTE = "resolve_dispute"
    CREDIT_PAYMENT = "credit_payment"  # something is still outstanding after it
    PAY_IN_FULL = "pay_in_full"  # nothing is outstanding after it


# Which act moves a case from which status to which; an act from a status not listed is refused.
TRANSITIONS: Mapping[CaseAct, Mapping[CaseStatus, CaseStatus]] = {
    CaseAct.LOG: {CaseStatus.OPEN: CaseStatus.OPEN, CaseStatus.ON_HOLD: CaseStatus.ON_HOLD},
    CaseAct.RAISE_DISPUTE: {CaseStatus.OPEN: CaseStatus.ON_HOLD,
                            CaseStatus.ON_HOLD: CaseStatus.ON_HOLD},
    CaseAct.RESOLVE_DISPUTE: {CaseStatus.ON_HOLD: CaseStatus.OPEN},
    CaseAct.CREDIT_PAYMENT: {CaseStatus.OPEN: CaseStatus.OPEN,
                             CaseStatus.ON_HOLD: CaseStatus.ON_HOLD},
    CaseAct.PAY_IN_FULL: {CaseStatus.OPEN: CaseStatus.CLOSED, CaseStatus.ON_HOLD: CaseStatus.CLOSED},
}  # fmt: skip

# The problem types of the refusals: a closed case takes no act (409); only a held case has a
# dispute to resolve (422).
CASE_CLOSED = "case-closed"
NO_OPEN_DISPUTE = "no-open-dispute"


class ActRefused(Exception):
    """An act the case's status does not allow; `problem` names the refusal."""

    def __init__(self, problem: str, status: CaseStatus, act: CaseAct) -> None:
        super().__init__(f"{act} refused on a case {status}")
        self.problem, self.status, self.act = problem, status, act


def status_after(status: str, act: CaseAct) -> CaseStatus:
    """The status a case has after an act, by the transition table: a closed case takes no more
    activities or payments (`case-closed`); a dispute holds the case; only a held case's dispute
    is resolved (`no-open-dispute`), which opens it again; paid in full closes it."""
    current = CaseStatus(status)
    after = TRANSITIONS[act].get(current)
    if after is None:
        problem = CASE_CLOSED if current is CaseStatus.CLOSED else NO_OPEN_DISPUTE
        raise ActRefused(problem, current, act)
    return after


def takes_acts(status: str) -> bool:
    """A case takes activities and payments until it is closed."""
    return CaseStatus(status) is not CaseStatus.CLOSED


def act_of_activity(kind: str) -> CaseAct:
    """What an activity does to the case: a dispute raised holds it, a dispute resolved opens it
    again, anything else is only logged."""
    if kind == "dispute":
        return CaseAct.RAISE_DISPUTE
    if kind == "dispute_resolved":
        return CaseAct.RESOLVE_DISPUTE
    return CaseAct.LOG


def act_of_payment(outstanding_after: Decimal) -> CaseAct:
    """A payment that leaves nothing outstanding pays the case in full (and closes it)."""
    return CaseAct.PAY_IN_FULL if outstanding_after == 0 else CaseAct.CREDIT_PAYMENT


# What a new mandate tells underwriting: a debt handed over for collection is a payment delay (a
# paid claim's case sends none: the claim itself sent one).
MANDATE_SIGNAL: Final = "payment_delay"


def signal_on_opening(claim_id: str | None) -> Literal["payment_delay"] | None:
    """The buyer signal a case sends when it opens: a mandate (no claim) is a payment delay; a
    paid claim's recovery sends none."""
    return MANDATE_SIGNAL if claim_id is None else None


# ---------------------------------------------------------------- ladders and stages

FIRST_STAGE = "new"


class Rung(NamedTuple):
    """A rung of a ladder: from this many days past the oldest due date the case is on `stage`."""

    days_past_due: int
    stage: str


# A ladder: its rungs, lowest first (as the table `collections.ladders` holds them).
Rungs = Sequence[tuple[int, str]]


def stage_on(ladder: Rungs, days_past_due: int) -> str:
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


def rung_index(ladder: Rungs, stage: str) -> int:
    """The position of a stage on its ladder (0 for `new`)."""
    names = [FIRST_STAGE] + [name for _, name in ladder]
    return names.index(stage)


def climb(ladder: Rungs, stage: str, days_past_due: int) -> str | None:
    """The stage a case moves up to: the highest rung its days past due reach, if that is above
    where it stands; a case never climbs down (None: it stays)."""
    target = stage_on(ladder, days_past_due)
    return target if rung_index(ladder, target) > rung_index(ladder, stage) else None


class StandingCase(NamedTuple):
    """A case the daily run looks at: its ladder, its stage and its oldest unpaid due date."""

    case_id: str
    ladder: str
    stage: str
    oldest_due: dt.date | None


class Move(NamedTuple):
    case_id: str
    from_stage: str
    to_stage: str
    days_past_due: int


def may_run_as_of(as_of: dt.date, today: dt.date) -> bool:
    """The ladder is run as of today or a day gone by, never ahead: a case never climbs down, so a
    run dated after today would leave it for good on a rung its days past due have not reached."""
    return as_of <= today


def escalations(
    cases: Iterable[StandingCase], ladders: Mapping[str, Rungs], as_of: dt.date
) -> list[Move]:
    """The daily run: every climbing case moves up to the highest rung its days past due reach on
    `as_of` (never down), on the ladder it was opened on."""
    moves: list[Move] = []
    for case_id, ladder_name, stage, oldest in cases:
        days = days_past_due(oldest, as_of)
        target = climb(ladders[ladder_name], stage, days)
        if target is not None:
            moves.append(Move(case_id, stage, target, days))
    return moves


# ---------------------------------------------------------------- payments


class OpenInvoice(NamedTuple):
    number: str
    due_date: dt.date
    outstanding: Decimal


def outstanding(invoices: Iterable[OpenInvoice]) -> Decimal:
    """What is outstanding on a case: the sum of its invoices' unpaid amounts."""
    return sum((i.outstanding for i in invoices), ZERO)


def oldest_unpaid_due(invoices: Iterable[OpenInvoice]) -> dt.date | None:
    """The due date a case's days past due count from: its oldest invoice not paid in full."""
    return min((i.due_date for i in invoices if i.outstanding > 0), default=None)


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


class Credit(NamedTuple):
    invoice_number: str
    amount: Decimal
    outstanding_after: Decimal  # on the whole case, once this credit is made


class Overpayment(Exception):
    """More than is outstanding was paid."""

    def __init__(self, amount: Decimal, outstanding: Decimal) -> None:
        super().__init__(f"{amount} exceeds the outstanding {outstanding}")
        self.amount, self.outstanding = amount, outstanding


def book_payment(invoices: Sequence[OpenInvoice], amount: Decimal) -> list[Credit]:
    """A payment's bookkeeping: credited oldest invoice first, each credit with what the case
    still owes after it; more than is outstanding is refused (`Overpayment`)."""
    owed = outstanding(invoices)
    if amount > owed:
        raise Overpayment(amount, owed)
    credits: list[Credit] = []
    for number, part in credit_oldest_first(invoices, amount):
        owed -= part
        credits.append(Credit(number, part, owed))
    return credits


# ---------------------------------------------------------------- recoveries shared


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

    @classmethod
    def stored(cls, numerator: str | None, denominator: str | None) -> InsurerShare | None:
        """The share as a case keeps it (two decimal strings), or none before a claim."""
        if numerator is None or denominator is None:
            return None
        return cls(Decimal(numerator), Decimal(denominator))

    def pct(self, places: int) -> Decimal:
        """The share as a percentage rounded half-up to `places` decimals: for display only,
        a split never uses it."""
        exact = Fraction(self.paid) * 100 / Fraction(self.of)
        return _round_half_up(exact, Decimal(1).scaleb(-places))


def indemnity_share(paid: Decimal, invoices_total: Decimal) -> InsurerShare | None:
    """The insurer's share after a paid claim: the indemnity paid over the whole unpaid debt
    (the claim's invoices), exactly; none when the indemnity is not between 0 and that debt."""
    if not ZERO <= paid <= invoices_total:
        return None
    return InsurerShare(paid, invoices_total)


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


def reduced_by_claim(
    outstanding: Mapping[str, Decimal], claimed_unpaid: Mapping[str, Decimal]
) -> dict[str, Decimal]:
    """When a paid claim takes a mandate over: per invoice they share, by how much the claim's
    unpaid falls short of what the case has outstanding — the credit notes, set-offs and direct
    recoveries the claim deducted, which the buyer no longer owes. Never an increase: a case
    that recovered more since the claim was assessed keeps its own figure."""
    return {number: outstanding[number] - unpaid for number, unpaid in claimed_unpaid.items()
            if number in outstanding and unpaid < outstanding[number]}  # fmt: skip
